"""Gist resource manager: redo of its page-modifying records.

Mirrors gist_redo (gistxlog.c), gist_identify and gist_desc (gistdesc.c).
One routine per record type, named after its C twin.

Where a C ``Assert`` states what a well-formed record holds (the tuple count
of PAGE_UPDATE, a split page's tuple list ending exactly at its data's end),
pyredo raises a RedoError instead of trusting the record: a production C
build would read past the data or loop on a zero-length tuple.

F_TUPLES_DELETED: PostgreSQL 15.20 stopped setting it (upstream "GiST:
Deprecate F_TUPLES_DELETED opaque area flag", back-patched to 14), because
redo of DELETE set it while gistprunepage on the primary did not, which
wal_consistency_checking flags. Up to 15.19, redo of DELETE, and of a
PAGE_UPDATE that deletes from a leaf, set it; pyredo does the same when its
engine mirrors such a server (``RedoEngine(server_version_num=150019)``).

Nothing GiST redo writes comes from a temp page: split pages are zeroed by
PageInit (GISTInitBuffer) and refilled with PageAddItem, which copies only
each tuple's own bytes, so alignment padding stays zero, as in C.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from pyredo.page import bufpage
from pyredo.page.bufpage import (
    FirstOffsetNumber,
    InvalidOffsetNumber,
    PageAddItem,
    PageGetMaxOffsetNumber,
    PageIndexMultiDelete,
    PageIndexTupleDelete,
    PageIndexTupleOverwrite,
    PageIsEmpty,
)
from pyredo.page.gist import (
    F_LEAF,
    GIST_ROOT_BLKNO,
    GistClearFollowRight,
    GistClearPageHasGarbage,
    GISTInitBuffer,
    GistMarkFollowRight,
    GistMarkTuplesDeleted,
    GistPageIsLeaf,
    GistPageSetDeleted,
    GistPageSetNSN,
    GistPageSetRightlink,
    InvalidBlockNumber,
    gistfillbuffer,
    index_tuple_at,
    split_index_tuples,
)
from pyredo.wal.record import XLR_RMGR_INFO_MASK
from pyredo.xlogutils import BlkAction

if TYPE_CHECKING:
    from pyredo.wal.record import DecodedXLogRecord
    from pyredo.xlogutils import RedoContext, RedoFn

# xl_info values (C header names)
XLOG_GIST_PAGE_UPDATE = 0x00
XLOG_GIST_DELETE = 0x10
XLOG_GIST_PAGE_REUSE = 0x20
XLOG_GIST_PAGE_SPLIT = 0x30
XLOG_GIST_PAGE_DELETE = 0x60
XLOG_GIST_ASSIGN_LSN = 0x70

# gistxlog.h structs (little-endian, C padding spelled out)
GISTXLOG_PAGE_UPDATE = struct.Struct("<HH")  # ntodelete, ntoinsert
GISTXLOG_DELETE = struct.Struct("<IH")  # latestRemovedXid, ntodelete
SizeOfGistxlogDelete = GISTXLOG_DELETE.size  # 6: the offsets follow at once
# origrlink, (pad), orignsn, origleaf, (pad), npage, markfollowright: the fields
# end at byte 21 (sizeof is 24; the tail padding is not read)
GISTXLOG_PAGE_SPLIT = struct.Struct("<I4xQBxHB")
GISTXLOG_PAGE_DELETE = struct.Struct("<QH")  # deleteXid, downlinkOffset
SizeOfGistxlogPageDelete = GISTXLOG_PAGE_DELETE.size  # 10
GISTXLOG_PAGE_REUSE = struct.Struct("<III I Q")  # node (spc, db, rel), block, latestRemovedFullXid
SizeOfGistxlogPageReuse = GISTXLOG_PAGE_REUSE.size  # 24
# the first minor release whose redo no longer sets F_TUPLES_DELETED
PG_VERSION_NUM_TUPLES_DELETED_DEPRECATED = 150020
_OFFSET = struct.Struct("<H")
_INT32 = struct.Struct("<i")

_NAMES = {
    XLOG_GIST_PAGE_UPDATE: "PAGE_UPDATE",
    XLOG_GIST_DELETE: "DELETE",
    XLOG_GIST_PAGE_REUSE: "PAGE_REUSE",
    XLOG_GIST_PAGE_SPLIT: "PAGE_SPLIT",
    XLOG_GIST_PAGE_DELETE: "PAGE_DELETE",
    XLOG_GIST_ASSIGN_LSN: "ASSIGN_LSN",
}


def identify(info: int) -> str | None:
    return _NAMES.get(info & XLR_RMGR_INFO_MASK)


# record types whose redo changes a relation page (coverage counts these)
PAGE_MODIFYING: tuple[int, ...] = (
    XLOG_GIST_PAGE_UPDATE,
    XLOG_GIST_DELETE,
    XLOG_GIST_PAGE_SPLIT,
    XLOG_GIST_PAGE_DELETE,
)


# -- helpers ------------------------------------------------------------------------------
def _mark_tuples_deleted(ctx: RedoContext, page: bytearray) -> None:
    """GistMarkTuplesDeleted, as servers before 15.20 did in redo (see module doc)."""
    if ctx.engine.redo_is_before(PG_VERSION_NUM_TUPLES_DELETED_DEPRECATED):
        GistMarkTuplesDeleted(page)


def _mark_tuples_deleted_16(ctx: RedoContext, page: bytearray) -> None:
    """GistMarkTuplesDeleted, as gistxlog.c of 16, 17 and 18 (16.15, 17.11, 18.6) does."""
    GistMarkTuplesDeleted(page)


MarkTuplesDeleted = Callable[["RedoContext", bytearray], None]


def _init_buffer(ctx: RedoContext, block_id: int) -> bytearray | None:
    """XLogInitBufferForRedo as its C callers use it: they rebuild the page even when
    an image was restored (WILL_INIT blocks never carry an image to apply in real WAL)."""
    page = ctx.init_buffer_for_redo(block_id)
    if page is None and ctx.actions.get(block_id) is BlkAction.BLK_RESTORED:
        return ctx.page
    return page


def gistRedoClearFollowRight(ctx: RedoContext, block_id: int, *,
                             GistClearFollowRight: Callable[[bytearray], None] = GistClearFollowRight,
                             ) -> None:
    """Mirrors gistRedoClearFollowRight (gistxlog.c).

    The child's NSN and F_FOLLOW_RIGHT change even when its image was just
    restored, because the image was taken before the change.
    """
    page = ctx.read_buffer_for_redo(block_id)
    if page is None and ctx.actions.get(block_id) is BlkAction.BLK_RESTORED:
        page = ctx.page
    if page is None:
        return
    GistPageSetNSN(page, ctx.lsn)
    GistClearFollowRight(page)
    bufpage.PageSetLSN(page, ctx.lsn)


# -- redo routines --------------------------------------------------------------------------
def gistRedoPageUpdateRecord(ctx: RedoContext, *,
                             GistClearFollowRight: Callable[[bytearray], None] = GistClearFollowRight,
                             ) -> None:
    """Mirrors gistRedoPageUpdateRecord (gistxlog.c) of 15.

    Block 0's data: ``ntodelete`` OffsetNumbers, then the tuples to add. One
    deleted and one added tuple replace each other in place
    (PageIndexTupleOverwrite, as gistplacetopage did); otherwise delete, then
    append after the last item.
    """
    _redo_page_update(ctx, _mark_tuples_deleted, GistClearFollowRight)


def gistRedoPageUpdateRecord_16(ctx: RedoContext, *,
                                GistClearFollowRight: Callable[[bytearray], None] = GistClearFollowRight,
                                ) -> None:
    """Mirrors gistRedoPageUpdateRecord (gistxlog.c) of 16, 17 and 18: as 15's, and a
    leaf that loses tuples always gets F_TUPLES_DELETED."""
    _redo_page_update(ctx, _mark_tuples_deleted_16, GistClearFollowRight)


def _redo_page_update(ctx: RedoContext, mark: MarkTuplesDeleted,
                      GistClearFollowRight: Callable[[bytearray], None]) -> None:
    ntodelete, ntoinsert = ctx.main_struct(GISTXLOG_PAGE_UPDATE, "PAGE_UPDATE")
    page = ctx.read_buffer_for_redo(0)
    if page is not None:
        _page_update(ctx, page, ntodelete, ntoinsert, mark)
    # the downlink completes a split: the left child's follow-right goes away
    if ctx.record.has_block_ref(1):
        gistRedoClearFollowRight(ctx, 1, GistClearFollowRight=GistClearFollowRight)


def _page_update(ctx: RedoContext, page: bytearray, ntodelete: int, ntoinsert: int,
                 mark: MarkTuplesDeleted) -> None:
    data = ctx.block_data(0)
    ninserted = 0
    if ntodelete == 1 and ntoinsert == 1:
        offnum = data.u16("offset to overwrite")
        itup = index_tuple_at(data.data, data.pos)
        if not PageIndexTupleOverwrite(page, offnum, itup):
            raise ctx.error(f"failed to add item to GiST index page, size {len(itup)} bytes",
                            block_id=0)
        data.skip(len(itup), "index tuple")
        ninserted += 1
    elif ntodelete > 0:
        todelete = data.u16_array(ntodelete, f"{ntodelete} offsets")
        PageIndexMultiDelete(page, todelete)
        if GistPageIsLeaf(page):
            mark(ctx, page)

    if not data.at_end:
        off = FirstOffsetNumber if PageIsEmpty(page) else PageGetMaxOffsetNumber(page) + 1
        for itup in split_index_tuples(data.rest()):
            if PageAddItem(page, itup, off) == InvalidOffsetNumber:
                raise ctx.error(f"failed to add item to GiST index page, size {len(itup)} bytes",
                                block_id=0)
            off += 1
            ninserted += 1
    if ninserted != ntoinsert:  # C: Assert(ninserted == xldata->ntoinsert)
        raise ctx.error(f"PAGE_UPDATE says {ntoinsert} tuples, block data holds {ninserted}",
                        block_id=0)


def gistRedoDeleteRecord(ctx: RedoContext) -> None:
    """Mirrors gistRedoDeleteRecord (gistxlog.c) of 15: drop the LP_DEAD tuples that
    gistprunepage removed; the offsets follow gistxlogDelete in the main data.
    F_HAS_GARBAGE is cleared, as gistprunepage did.
    """
    _latest_removed_xid, ntodelete = ctx.main_struct(GISTXLOG_DELETE, "DELETE")
    page = ctx.read_buffer_for_redo(0)
    if page is None:
        return
    main = ctx.main_data().seek(SizeOfGistxlogDelete)
    if main.remaining > 0:
        todelete = main.u16_array(ntodelete, f"{ntodelete} offsets")
        PageIndexMultiDelete(page, todelete)
    GistClearPageHasGarbage(page)
    _mark_tuples_deleted(ctx, page)


# 16: snapshotConflictHorizon, ntodelete, isCatalogRel, then offsets[] at
# offsetof(gistxlogDelete, offsets) = 8
GISTXLOG_DELETE_16 = struct.Struct("<IH?x")


def gistRedoDeleteRecord_16(ctx: RedoContext) -> None:
    """Mirrors gistRedoDeleteRecord (gistxlog.c) of 16, 17 and 18: gistxlogDelete
    gains isCatalogRel, so the offsets start at byte 8, and are always read; the page
    always gets F_TUPLES_DELETED."""
    _horizon, ntodelete, _catalog = ctx.main_struct(GISTXLOG_DELETE_16, "DELETE")
    page = ctx.read_buffer_for_redo(0)
    if page is None:
        return
    main = ctx.main_data().seek(GISTXLOG_DELETE_16.size)
    PageIndexMultiDelete(page, main.u16_array(ntodelete, f"{ntodelete} offsets"))
    GistClearPageHasGarbage(page)
    _mark_tuples_deleted_16(ctx, page)


def gistRedoPageSplitRecord(ctx: RedoContext, *,
                            GISTInitBuffer: Callable[[bytearray, int], None] = GISTInitBuffer,
                            ) -> None:
    """Mirrors gistRedoPageSplitRecord (gistxlog.c).

    Blocks 1..npage are the pages of the split, the original first; each is
    re-initialized and filled with the tuples of its block data (an int32
    count, then the tuples). Each page points right to the next listed page,
    the last to the original right sibling; all get the original NSN. In a
    root split block 1 is the root: it keeps no rightlink and is not a leaf,
    and no page gets F_FOLLOW_RIGHT. Block 0, if present, is the left child
    whose split this record completes.
    """
    origrlink, orignsn, origleaf, npage, markfollowright = ctx.main_struct(GISTXLOG_PAGE_SPLIT, "PAGE_SPLIT")
    isrootsplit = False
    for i in range(npage):
        blkno = ctx.block_tag(i + 1).blk
        if blkno == GIST_ROOT_BLKNO:
            isrootsplit = True  # C asserts i == 0: later pages see it
        page = _init_buffer(ctx, i + 1)
        if page is None:
            continue
        rightlink = InvalidBlockNumber
        follow_right = False
        if blkno != GIST_ROOT_BLKNO:
            rightlink = ctx.block_tag(i + 2).blk if i < npage - 1 else origrlink
            follow_right = i < npage - 1 and not isrootsplit and bool(markfollowright)
        _fill_split_page(ctx, page, i + 1, F_LEAF if origleaf and blkno != GIST_ROOT_BLKNO else 0,
                         orignsn, rightlink, follow_right, GISTInitBuffer=GISTInitBuffer)
    if ctx.record.has_block_ref(0):
        gistRedoClearFollowRight(ctx, 0)


def _fill_split_page(ctx: RedoContext, page: bytearray, block_id: int, flags: int,
                     orignsn: int, rightlink: int, follow_right: bool, *,
                     GISTInitBuffer: Callable[[bytearray, int], None] = GISTInitBuffer) -> None:
    """One page of a split: decodePageSplitRecord, GISTInitBuffer, gistfillbuffer, opaque.

    The root of a root split gets rightlink InvalidBlockNumber and no follow-right.
    """
    data = ctx.block_data(block_id)
    num = data.i32("split page tuple count")
    if num < 0:
        raise ctx.error(f"split page tuple count {num} is negative", block_id=block_id)
    tuples = split_index_tuples(data.rest(), num)

    GISTInitBuffer(page, flags)
    gistfillbuffer(page, tuples, FirstOffsetNumber)
    GistPageSetRightlink(page, rightlink)
    GistPageSetNSN(page, orignsn)
    if follow_right:
        GistMarkFollowRight(page)
    else:
        GistClearFollowRight(page)
    bufpage.PageSetLSN(page, ctx.lsn)


def gistRedoPageDelete(ctx: RedoContext, *,
                       PageIndexTupleDelete: Callable[[bytearray, int], None] = PageIndexTupleDelete,
                       ) -> None:
    """Mirrors gistRedoPageDelete (gistxlog.c): block 0 (an empty leaf) becomes a
    deleted page keeping deleteXid; block 1 (its parent) loses the downlink."""
    delete_xid, downlink_offset = ctx.main_struct(GISTXLOG_PAGE_DELETE, "PAGE_DELETE")
    leaf = ctx.read_buffer_for_redo(0)
    if leaf is not None:
        GistPageSetDeleted(leaf, delete_xid)
    parent = ctx.read_buffer_for_redo(1)
    if parent is not None:
        PageIndexTupleDelete(parent, downlink_offset)


def gistRedoPageReuse(ctx: RedoContext) -> None:
    """Mirrors gistRedoPageReuse (gistxlog.c): only a recovery-conflict point for
    hot standby; it names no block and changes no page."""


def gistRedoAssignLSN(ctx: RedoContext) -> None:
    """XLOG_GIST_ASSIGN_LSN in gist_redo: a no-op record that only takes an LSN
    (gistGetFakeLSN for WAL-skipped relations)."""


# -- desc (gistdesc.c) --------------------------------------------------------------------------
def desc(rec: DecodedXLogRecord) -> str:
    """Mirrors gist_desc (gistdesc.c)."""
    info = rec.info & XLR_RMGR_INFO_MASK
    data = rec.main_data
    try:
        if info == XLOG_GIST_PAGE_REUSE:
            spc, db, rel, blk, xid = GISTXLOG_PAGE_REUSE.unpack_from(data)
            return (f"rel {spc}/{db}/{rel}; blk {blk}; "
                    f"latestRemovedXid {xid >> 32}:{xid & 0xFFFFFFFF}")
        if info == XLOG_GIST_DELETE:
            xid, n = GISTXLOG_DELETE.unpack_from(data)
            return f"delete: latestRemovedXid {xid}, nitems: {n}"
        if info == XLOG_GIST_PAGE_SPLIT:
            return f"page_split: splits to {GISTXLOG_PAGE_SPLIT.unpack_from(data)[3]} pages"
        if info == XLOG_GIST_PAGE_DELETE:
            xid, off = GISTXLOG_PAGE_DELETE.unpack_from(data)
            return f"deleteXid {xid >> 32}:{xid & 0xFFFFFFFF}; downlink {off}"
    except struct.error:
        return f"<{len(data)} bytes of main data: too short>"
    return ""  # PAGE_UPDATE and ASSIGN_LSN print nothing


REDO: dict[int, RedoFn] = {
    XLOG_GIST_PAGE_UPDATE: gistRedoPageUpdateRecord,
    XLOG_GIST_DELETE: gistRedoDeleteRecord,
    XLOG_GIST_PAGE_REUSE: gistRedoPageReuse,
    XLOG_GIST_PAGE_SPLIT: gistRedoPageSplitRecord,
    XLOG_GIST_PAGE_DELETE: gistRedoPageDelete,
    XLOG_GIST_ASSIGN_LSN: gistRedoAssignLSN,
}

# gistxlog.c of 16 lays gistxlogDelete out anew (isCatalogRel; gistxlogPageReuse gains it
# too, but redo reads no page from it); 16-18 redo still sets F_TUPLES_DELETED, which 15.20
# stopped doing (module doc); 17 and 18 change no redo; gist_mask and the helpers
# redo calls (gistinitpage, GISTInitBuffer) are the same in 15-18
MAJORS: tuple[int, ...] = (15, 16, 17, 18)
REDO_SINCE: dict[int, dict[int, RedoFn | None]] = {
    16: {XLOG_GIST_PAGE_UPDATE: gistRedoPageUpdateRecord_16, XLOG_GIST_DELETE: gistRedoDeleteRecord_16},
}


def _desc_16(rec: DecodedXLogRecord, is_catalog_rel: bool) -> str:
    """gist_desc of 16 and on: PAGE_REUSE and DELETE gain isCatalogRel (printed from 17)
    and say snapshotConflictHorizon; every other record prints as in 15."""
    info = rec.info & XLR_RMGR_INFO_MASK
    data = rec.main_data
    try:
        if info == XLOG_GIST_PAGE_REUSE:
            spc, db, rel, blk, xid, catalog = GISTXLOG_PAGE_REUSE_16.unpack_from(data)
            cat = f", isCatalogRel {'T' if catalog else 'F'}" if is_catalog_rel else ""
            return (f"rel {spc}/{db}/{rel}; blk {blk}; "
                    f"snapshotConflictHorizon {xid >> 32}:{xid & 0xFFFFFFFF}{cat}")
        if info == XLOG_GIST_DELETE:
            xid, n, catalog = GISTXLOG_DELETE_16.unpack_from(data)
            cat = f", isCatalogRel {'T' if catalog else 'F'}" if is_catalog_rel else ""
            return f"delete: snapshotConflictHorizon {xid}, nitems: {n}{cat}"
    except struct.error:
        return f"<{len(data)} bytes of main data: too short>"
    return desc(rec)


def desc_16(rec: DecodedXLogRecord) -> str:
    """Mirrors gist_desc (gistdesc.c) of 16."""
    return _desc_16(rec, False)


def desc_17(rec: DecodedXLogRecord) -> str:
    """Mirrors gist_desc (gistdesc.c) of 17 and 18."""
    return _desc_16(rec, True)


# 16: gistxlogPageReuse gains isCatalogRel; SizeOfGistxlogPageReuse = 25 (padding not logged)
GISTXLOG_PAGE_REUSE_16 = struct.Struct("<IIIIQ?")
DESC_SINCE: dict[int, Callable[[DecodedXLogRecord], str] | None] = {16: desc_16, 17: desc_17}
