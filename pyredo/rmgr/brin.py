"""BRIN resource manager: redo of its page-modifying records.

Mirrors brin_redo (brin_xlog.c), brin_identify and brin_desc (brindesc.c).
One routine per record type, named after its C twin; the page helpers they
share (brin_page_init, brin_metapage_init, brinSetHeapBlockItemptr) live in
``pyredo.page.brin``.

Every C routine here stamps the LSN on each block it changes, so no routine
calls ``keep_page_lsn``. Block images of BRIN pages are restored by the
engine; the routines only run for blocks that need redo.

Bytes: BRIN redo builds no temp pages. The tuple in a record's block data is
the whole MAXALIGN'd item the primary added (brin_form_tuple palloc0s it, so
its padding is zeros), and PageAddItem copies exactly those bytes. Deleting
(PageIndexTupleDeleteNoCompact) and overwriting (PageIndexTupleOverwrite) a
tuple memmove the tuples below it and clear nothing, so the old bytes stay in
free space, as on the primary; pyredo.page.bufpage reproduces that.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from pyredo.page.brin import (
    BRIN_PAGETYPE_REGULAR,
    BRIN_PAGETYPE_REVMAP,
    brin_metapage_init,
    brin_metapage_set_last_revmap_page,
    brin_page_init,
    brinSetHeapBlockItemptr,
)
from pyredo.page.bufpage import (
    InvalidOffsetNumber,
    PageAddItem,
    PageGetMaxOffsetNumber,
    PageIndexTupleDeleteNoCompact,
    PageIndexTupleOverwrite,
)
from pyredo.wal.record import XLR_RMGR_INFO_MASK

if TYPE_CHECKING:
    from pyredo.wal.record import DecodedXLogRecord
    from pyredo.xlogutils import RedoContext, RedoFn

# xl_info values (C header names)
XLOG_BRIN_CREATE_INDEX = 0x00
XLOG_BRIN_INSERT = 0x10
XLOG_BRIN_UPDATE = 0x20
XLOG_BRIN_SAMEPAGE_UPDATE = 0x30
XLOG_BRIN_REVMAP_EXTEND = 0x40
XLOG_BRIN_DESUMMARIZE = 0x50
XLOG_BRIN_OPMASK = 0x70
XLOG_BRIN_INIT_PAGE = 0x80

OPMASK = XLOG_BRIN_OPMASK

_NAMES = {
    XLOG_BRIN_CREATE_INDEX: "CREATE_INDEX",
    XLOG_BRIN_INSERT: "INSERT",
    XLOG_BRIN_UPDATE: "UPDATE",
    XLOG_BRIN_SAMEPAGE_UPDATE: "SAMEPAGE_UPDATE",
    XLOG_BRIN_REVMAP_EXTEND: "REVMAP_EXTEND",
    XLOG_BRIN_DESUMMARIZE: "DESUMMARIZE",
    XLOG_BRIN_INSERT | XLOG_BRIN_INIT_PAGE: "INSERT+INIT",
    XLOG_BRIN_UPDATE | XLOG_BRIN_INIT_PAGE: "UPDATE+INIT",
}


def identify(info: int) -> str | None:
    return _NAMES.get(info & XLR_RMGR_INFO_MASK)

# record types whose redo changes a relation page (coverage counts these)
PAGE_MODIFYING: tuple[int, ...] = (
    XLOG_BRIN_CREATE_INDEX,
    XLOG_BRIN_INSERT,
    XLOG_BRIN_INSERT | XLOG_BRIN_INIT_PAGE,
    XLOG_BRIN_UPDATE,
    XLOG_BRIN_UPDATE | XLOG_BRIN_INIT_PAGE,
    XLOG_BRIN_SAMEPAGE_UPDATE,
    XLOG_BRIN_REVMAP_EXTEND,
    XLOG_BRIN_DESUMMARIZE,
)

# brin_xlog.h record structs, laid out as the C compiler does (natural alignment)
xl_brin_createidx = struct.Struct("<IH")  # pagesPerRange, version
xl_brin_insert = struct.Struct("<IIH")  # heapBlk, pagesPerRange, offnum
xl_brin_update = struct.Struct("<H2xIIH")  # oldOffnum, (pad), xl_brin_insert insert
xl_brin_samepage_update = struct.Struct("<H")  # offnum
xl_brin_revmap_extend = struct.Struct("<I")  # targetBlk
xl_brin_desummarize = struct.Struct("<IIH")  # pagesPerRange, heapBlk, regOffset


def _check_pages_per_range(ctx: RedoContext, pagesPerRange: int, block_id: int) -> None:
    # C divides by it (HEAPBLK_TO_REVMAP_INDEX): zero would crash the server
    if pagesPerRange == 0:
        raise ctx.error("pagesPerRange is 0", block_id=block_id)


# -- redo routines ----------------------------------------------------------------------
def brin_xlog_createidx(ctx: RedoContext) -> None:
    """Mirrors brin_xlog_createidx (brin_xlog.c): a fresh metapage."""
    pagesPerRange, version = ctx.main_struct(xl_brin_createidx, "xl_brin_createidx")
    page = ctx.init_buffer_for_redo(0)
    if page is not None:
        brin_metapage_init(page, pagesPerRange, version)


def brin_xlog_insert_update(ctx: RedoContext, heapBlk: int, pagesPerRange: int,
                            offnum: int) -> None:
    """Mirrors brin_xlog_insert_update (brin_xlog.c): put the tuple of block 0's
    data at ``offnum`` of the regular page (block 0, initialized first for
    +INIT), then point the range's revmap entry (block 1) at it."""
    if ctx.info & XLOG_BRIN_INIT_PAGE:
        page = ctx.init_buffer_for_redo(0)
        if page is not None:
            brin_page_init(page, BRIN_PAGETYPE_REGULAR)
    else:
        page = ctx.read_buffer_for_redo(0)

    # the revmap stores block 0's number, whichever block this engine rebuilds
    regpgno = ctx.record.blocks[0].blkno

    if page is not None:
        tuple_ = ctx.block_data(0).rest()
        if not tuple_:
            raise ctx.error("no BrinTuple in the block data", block_id=0)
        if PageGetMaxOffsetNumber(page) + 1 < offnum:
            raise ctx.error("brin_xlog_insert_update: invalid max offset number", block_id=0)
        added = PageAddItem(page, tuple_, offnum, overwrite=True)
        if added == InvalidOffsetNumber:
            raise ctx.error("brin_xlog_insert_update: failed to add tuple", block_id=0)

    revmap = ctx.read_buffer_for_redo(1)
    if revmap is not None:
        _check_pages_per_range(ctx, pagesPerRange, 1)
        brinSetHeapBlockItemptr(revmap, pagesPerRange, heapBlk, regpgno, offnum)


def brin_xlog_insert(ctx: RedoContext) -> None:
    """Mirrors brin_xlog_insert (brin_xlog.c)."""
    heapBlk, pagesPerRange, offnum = ctx.main_struct(xl_brin_insert, "xl_brin_insert")
    brin_xlog_insert_update(ctx, heapBlk, pagesPerRange, offnum)


def brin_xlog_update(
    ctx: RedoContext, *,
    PageIndexTupleDeleteNoCompact: Callable[[bytearray, int], None] = PageIndexTupleDeleteNoCompact,
) -> None:
    """Mirrors brin_xlog_update (brin_xlog.c): delete the old tuple from the old
    page (block 2), leaving its line pointer unused, then insert as above."""
    oldOffnum, heapBlk, pagesPerRange, offnum = ctx.main_struct(xl_brin_update, "xl_brin_update")
    page = ctx.read_buffer_for_redo(2)
    if page is not None:
        PageIndexTupleDeleteNoCompact(page, oldOffnum)
    brin_xlog_insert_update(ctx, heapBlk, pagesPerRange, offnum)


def brin_xlog_samepage_update(ctx: RedoContext) -> None:
    """Mirrors brin_xlog_samepage_update (brin_xlog.c): overwrite the tuple in place."""
    (offnum,) = ctx.main_struct(xl_brin_samepage_update, "xl_brin_samepage_update")
    page = ctx.read_buffer_for_redo(0)
    if page is None:
        return
    tuple_ = ctx.block_data(0).rest()
    if not tuple_:
        raise ctx.error("no BrinTuple in the block data", block_id=0)
    replaced = PageIndexTupleOverwrite(page, offnum, tuple_)
    if not replaced:
        raise ctx.error("brin_xlog_samepage_update: failed to replace tuple", block_id=0)


def brin_xlog_revmap_extend(
    ctx: RedoContext, *,
    brin_metapage_set_last_revmap_page: Callable[[bytearray, int], None]
    = brin_metapage_set_last_revmap_page,
) -> None:
    """Mirrors brin_xlog_revmap_extend (brin_xlog.c): the metapage's lastRevmapPage
    becomes the target block (block 1), which is re-initialized as an empty
    revmap page (all entries invalid: PageInit zeroes them)."""
    (targetBlk,) = ctx.main_struct(xl_brin_revmap_extend, "xl_brin_revmap_extend")
    if 1 not in ctx.record.blocks:  # XLogRecGetBlockTag(record, 1, ...) comes first in C
        raise ctx.error("could not locate backup block with ID 1 in WAL record", block_id=1)

    meta = ctx.read_buffer_for_redo(0)
    if meta is not None:
        brin_metapage_set_last_revmap_page(meta, targetBlk)

    page = ctx.init_buffer_for_redo(1)
    if page is not None:
        brin_page_init(page, BRIN_PAGETYPE_REVMAP)


def brin_xlog_desummarize_page(
    ctx: RedoContext, *,
    brinSetHeapBlockItemptr: Callable[[bytearray, int, int, int, int], None] = brinSetHeapBlockItemptr,
) -> None:
    """Mirrors brin_xlog_desummarize_page (brin_xlog.c): invalidate the range's
    revmap entry (block 0), then delete its tuple from the regular page (block 1)."""
    pagesPerRange, heapBlk, regOffset = ctx.main_struct(xl_brin_desummarize, "xl_brin_desummarize")
    revmap = ctx.read_buffer_for_redo(0)
    if revmap is not None:
        _check_pages_per_range(ctx, pagesPerRange, 0)
        brinSetHeapBlockItemptr(revmap, pagesPerRange, heapBlk, 0xFFFFFFFF, InvalidOffsetNumber)

    page = ctx.read_buffer_for_redo(1)
    if page is not None:
        PageIndexTupleDeleteNoCompact(page, regOffset)


# -- brindesc.c ---------------------------------------------------------------------------
def desc(rec: DecodedXLogRecord) -> str:
    """Mirrors brin_desc (brindesc.c)."""
    info = rec.info & XLOG_BRIN_OPMASK
    data = rec.main_data
    fmt = {
        XLOG_BRIN_CREATE_INDEX: xl_brin_createidx,
        XLOG_BRIN_INSERT: xl_brin_insert,
        XLOG_BRIN_UPDATE: xl_brin_update,
        XLOG_BRIN_SAMEPAGE_UPDATE: xl_brin_samepage_update,
        XLOG_BRIN_REVMAP_EXTEND: xl_brin_revmap_extend,
        XLOG_BRIN_DESUMMARIZE: xl_brin_desummarize,
    }.get(info)
    if fmt is None:
        return ""
    if len(data) < fmt.size:
        return f"<malformed: {len(data)} bytes of main data>"
    v = fmt.unpack_from(data)
    if info == XLOG_BRIN_CREATE_INDEX:
        return f"v{v[1]} pagesPerRange {v[0]}"
    if info == XLOG_BRIN_INSERT:
        return f"heapBlk {v[0]} pagesPerRange {v[1]} offnum {v[2]}"
    if info == XLOG_BRIN_UPDATE:
        return f"heapBlk {v[1]} pagesPerRange {v[2]} old offnum {v[0]}, new offnum {v[3]}"
    if info == XLOG_BRIN_SAMEPAGE_UPDATE:
        return f"offnum {v[0]}"
    if info == XLOG_BRIN_REVMAP_EXTEND:
        return f"targetBlk {v[0]}"
    return f"pagesPerRange {v[0]}, heapBlk {v[1]}, page offset {v[2]}"


REDO: dict[int, RedoFn] = {
    XLOG_BRIN_CREATE_INDEX: brin_xlog_createidx,
    XLOG_BRIN_INSERT: brin_xlog_insert,
    XLOG_BRIN_UPDATE: brin_xlog_update,
    XLOG_BRIN_SAMEPAGE_UPDATE: brin_xlog_samepage_update,
    XLOG_BRIN_REVMAP_EXTEND: brin_xlog_revmap_extend,
    XLOG_BRIN_DESUMMARIZE: brin_xlog_desummarize_page,
}

# brin_xlog.c, brin_xlog.h, brindesc.c and brin_mask differ only in copyright lines
# across 15, 16, 17 and 18 (brin_page_init, brin_metapage_init and
# brinSetHeapBlockItemptr, which redo calls, are unchanged too)
MAJORS: tuple[int, ...] = (15, 16, 17, 18)
DESC_SINCE: dict[int, Callable[[DecodedXLogRecord], str] | None] = {16: desc}
