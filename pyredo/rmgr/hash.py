"""Hash resource manager: redo of its page-modifying records.

Mirrors hash_redo (hash_xlog.c), hash_identify and hash_desc (hashdesc.c).
One routine per record type, named after its C twin; the page initializers
they call (``_hash_initbuf``, ``_hash_init_metabuffer`` ...) live in
``pyredo.page.hash``.

Two C idioms need care in a single-target engine:

* Several routines read the primary bucket page only to take a cleanup lock
  (``(void) XLogReadBufferForRedoExtended(record, 0, ..., true, &bucketbuf)``):
  they neither change it nor set its LSN, so when that page is the target and
  "needs redo" the engine must leave its LSN alone (``_lock_primary_bucket``).
* SPLIT_ALLOCATE_PAGE and SPLIT_COMPLETE change a bucket page's flags even when
  it was just restored from a full-page image (``_read_or_restored``).

Where C would read past the record data or the page (short main data, a
truncated tuple, a bitmap bit beyond the page), or would loop forever (a zero
tuple length), these routines raise a RedoError instead.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from pyredo.page.bufpage import (
    MAXALIGN,
    InvalidOffsetNumber,
    PageAddItem,
    PageIndexMultiDelete,
    PageSetLSN,
)
from pyredo.page.hash import (
    CLRBIT,
    HASHO_PAGE_ID,
    LH_BUCKET_NEEDS_SPLIT_CLEANUP,
    LH_OVERFLOW_PAGE,
    LH_PAGE_HAS_DEAD_TUPLES,
    LH_UNUSED_PAGE,
    SETBIT,
    HashPageGetMeta,
    HashPageGetOpaque,
    InvalidBlockNumber,
    InvalidBucket,
    _hash_init_metabuffer,
    _hash_initbitmapbuffer,
    _hash_initbuf,
    _hash_pageinit,
)
from pyredo.wal.record import XLR_RMGR_INFO_MASK
from pyredo.xlogutils import RBM_NORMAL, RBM_ZERO_AND_CLEANUP_LOCK, BlkAction

if TYPE_CHECKING:
    from pyredo.wal.record import DecodedXLogRecord
    from pyredo.xlogutils import RedoContext, RedoFn

# xl_info values (C header names)
XLOG_HASH_INIT_META_PAGE = 0x00
XLOG_HASH_INIT_BITMAP_PAGE = 0x10
XLOG_HASH_INSERT = 0x20
XLOG_HASH_ADD_OVFL_PAGE = 0x30
XLOG_HASH_SPLIT_ALLOCATE_PAGE = 0x40
XLOG_HASH_SPLIT_PAGE = 0x50
XLOG_HASH_SPLIT_COMPLETE = 0x60
XLOG_HASH_MOVE_PAGE_CONTENTS = 0x70
XLOG_HASH_SQUEEZE_PAGE = 0x80
XLOG_HASH_DELETE = 0x90
XLOG_HASH_SPLIT_CLEANUP = 0xA0
XLOG_HASH_UPDATE_META_PAGE = 0xB0
XLOG_HASH_VACUUM_ONE_PAGE = 0xC0

# xl_hash_split_allocate_page flags
XLH_SPLIT_META_UPDATE_MASKS = 1 << 0
XLH_SPLIT_META_UPDATE_SPLITPOINT = 1 << 1

# hash_xlog.h structs, little-endian, packed as SizeOfHash* counts them (no tail padding)
XL_HASH_INIT_META_PAGE = struct.Struct("<dIH")  # num_tuples, procid, ffactor
XL_HASH_INIT_BITMAP_PAGE = struct.Struct("<H")  # bmsize
XL_HASH_INSERT = struct.Struct("<H")  # offnum
XL_HASH_ADD_OVFL_PAGE = struct.Struct("<HB")  # bmsize, bmpage_found
XL_HASH_SPLIT_ALLOCATE_PAGE = struct.Struct("<IHHB")  # new_bucket, old/new_bucket_flag, flags
XL_HASH_SPLIT_COMPLETE = struct.Struct("<HH")  # old_bucket_flag, new_bucket_flag
XL_HASH_MOVE_PAGE_CONTENTS = struct.Struct("<HB")  # ntups, is_prim_bucket_same_wrt
XL_HASH_SQUEEZE_PAGE = struct.Struct("<IIHBB")  # prevblkno, nextblkno, ntups, is_prim.., is_prev..
XL_HASH_DELETE = struct.Struct("<BB")  # clear_dead_marking, is_primary_bucket_page
XL_HASH_UPDATE_META_PAGE = struct.Struct("<d")  # ntuples
XL_HASH_VACUUM_ONE_PAGE = struct.Struct("<Ii")  # latestRemovedXid, ntuples
SizeOfHashVacuumOnePage = XL_HASH_VACUUM_ONE_PAGE.size

_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")
_U32x2 = struct.Struct("<II")
SizeOfIndexTupleData = 8  # t_tid (6) + t_info (2)
INDEX_SIZE_MASK = 0x1FFF

_NAMES = {
    XLOG_HASH_INIT_META_PAGE: "INIT_META_PAGE",
    XLOG_HASH_INIT_BITMAP_PAGE: "INIT_BITMAP_PAGE",
    XLOG_HASH_INSERT: "INSERT",
    XLOG_HASH_ADD_OVFL_PAGE: "ADD_OVFL_PAGE",
    XLOG_HASH_SPLIT_ALLOCATE_PAGE: "SPLIT_ALLOCATE_PAGE",
    XLOG_HASH_SPLIT_PAGE: "SPLIT_PAGE",
    XLOG_HASH_SPLIT_COMPLETE: "SPLIT_COMPLETE",
    XLOG_HASH_MOVE_PAGE_CONTENTS: "MOVE_PAGE_CONTENTS",
    XLOG_HASH_SQUEEZE_PAGE: "SQUEEZE_PAGE",
    XLOG_HASH_DELETE: "DELETE",
    XLOG_HASH_SPLIT_CLEANUP: "SPLIT_CLEANUP",
    XLOG_HASH_UPDATE_META_PAGE: "UPDATE_META_PAGE",
    XLOG_HASH_VACUUM_ONE_PAGE: "VACUUM_ONE_PAGE",
}


def identify(info: int) -> str | None:
    return _NAMES.get(info & XLR_RMGR_INFO_MASK)

# record types whose redo changes a relation page (coverage counts these)
PAGE_MODIFYING: tuple[int, ...] = (
    XLOG_HASH_INIT_META_PAGE,
    XLOG_HASH_INIT_BITMAP_PAGE,
    XLOG_HASH_INSERT,
    XLOG_HASH_ADD_OVFL_PAGE,
    XLOG_HASH_SPLIT_ALLOCATE_PAGE,
    XLOG_HASH_SPLIT_PAGE,
    XLOG_HASH_SPLIT_COMPLETE,
    XLOG_HASH_MOVE_PAGE_CONTENTS,
    XLOG_HASH_SQUEEZE_PAGE,
    XLOG_HASH_DELETE,
    XLOG_HASH_SPLIT_CLEANUP,
    XLOG_HASH_UPDATE_META_PAGE,
    XLOG_HASH_VACUUM_ONE_PAGE,
)


# -- helpers ------------------------------------------------------------------------------
def _block_u32(ctx: RedoContext, block_id: int, what: str) -> int:
    """A uint32 registered as block data (``*(uint32 *) XLogRecGetBlockData(...)``)."""
    return ctx.block_data(block_id).u32(what)


def _lock_primary_bucket(ctx: RedoContext, block_id: int = 0) -> None:
    """``(void) XLogReadBufferForRedoExtended(record, 0, RBM_NORMAL, true, &bucketbuf)``:
    C reads the primary bucket page only for its cleanup lock. The page is not
    changed and, unlike every other block that needs redo, gets no PageSetLSN."""
    if ctx.read_buffer_for_redo(block_id, RBM_NORMAL, get_cleanup_lock=True) is not None:
        ctx.keep_page_lsn()


def _read_or_restored(ctx: RedoContext, block_id: int, *, cleanup: bool = False) -> bytearray | None:
    """The page when the action is BLK_NEEDS_REDO *or* BLK_RESTORED (split records
    re-apply the bucket flags on top of a restored image)."""
    page = ctx.read_buffer_for_redo(block_id, RBM_NORMAL, get_cleanup_lock=cleanup)
    if page is None and ctx.actions.get(block_id) is BlkAction.BLK_RESTORED:
        return ctx.page
    return page


def _multi_delete(ctx: RedoContext, page: bytearray, offsets: list[int], block_id: int) -> None:
    PageIndexMultiDelete(page, offsets)


def _add_moved_tuples(ctx: RedoContext, page: bytearray, ntups: int, block_id: int,
                      fn: str) -> None:
    """The tuple-adding loop of MOVE_PAGE_CONTENTS and SQUEEZE_PAGE: ``ntups``
    target offsets, then the index tuples, each MAXALIGNed and added with its
    aligned length (so the padding comes from the record, as in C)."""
    if ntups == 0:
        return
    data = ctx.block_data(block_id)
    towrite = data.u16_array(ntups, f"{fn}: target offsets")
    ninserted = 0
    while not data.at_end:
        pos = data.pos
        data.need(SizeOfIndexTupleData, f"{fn}: index tuple header at byte {pos}")
        itemsz = MAXALIGN(data.peek(_U16, "t_info", at=pos + 6)[0] & INDEX_SIZE_MASK)
        if itemsz == 0 or itemsz > data.remaining:
            raise ctx.error(f"{fn}: index tuple of {itemsz} bytes at byte {pos} does not fit "
                            f"the {len(data)} bytes of block data", block_id=block_id)
        if ninserted >= ntups:
            raise ctx.error(f"{fn}: more tuples than the {ntups} announced", block_id=block_id)
        got = PageAddItem(page, data.take(itemsz, "index tuple"), towrite[ninserted])
        if got == InvalidOffsetNumber:
            raise ctx.error(f"{fn}: failed to add item to hash index page, size {itemsz} bytes",
                            block_id=block_id)
        ninserted += 1
    if ninserted != ntups:
        raise ctx.error(f"{fn}: {ninserted} tuples in the record, {ntups} announced", block_id=block_id)


# -- redo routines ----------------------------------------------------------------------------
def hash_xlog_init_meta_page(ctx: RedoContext) -> None:
    """Mirrors hash_xlog_init_meta_page (hash_xlog.c)."""
    num_tuples, procid, ffactor = ctx.main_struct(XL_HASH_INIT_META_PAGE, "xl_hash_init_meta_page")
    page = ctx.init_buffer_for_redo(0)
    if page is None:
        return
    _hash_init_metabuffer(page, num_tuples, procid, ffactor, True)


def hash_xlog_init_bitmap_page(ctx: RedoContext) -> None:
    """Mirrors hash_xlog_init_bitmap_page (hash_xlog.c)."""
    (bmsize,) = ctx.main_struct(XL_HASH_INIT_BITMAP_PAGE, "xl_hash_init_bitmap_page")
    page = ctx.init_buffer_for_redo(0)
    if page is not None:
        _hash_initbitmapbuffer(page, bmsize, True)

    # add the new bitmap page to the metapage's list of bitmaps
    page = ctx.read_buffer_for_redo(1)
    if page is not None:
        metap = HashPageGetMeta(page)
        num_buckets = (metap.hashm_maxbucket + 1) & 0xFFFFFFFF
        metap.set_mapp(metap.hashm_nmaps, num_buckets + 1)
        metap.hashm_nmaps += 1


def hash_xlog_insert(ctx: RedoContext) -> None:
    """Mirrors hash_xlog_insert (hash_xlog.c)."""
    (offnum,) = ctx.main_struct(XL_HASH_INSERT, "xl_hash_insert")
    page = ctx.read_buffer_for_redo(0)
    if page is not None:
        got = PageAddItem(page, ctx.block_data(0).rest(), offnum)
        if got == InvalidOffsetNumber:
            raise ctx.error("hash_xlog_insert: failed to add item", block_id=0)

    page = ctx.read_buffer_for_redo(1)
    if page is not None:
        metap = HashPageGetMeta(page)
        metap.hashm_ntuples += 1


def hash_xlog_add_ovfl_page(ctx: RedoContext) -> None:
    """Mirrors hash_xlog_add_ovfl_page (hash_xlog.c)."""
    bmsize, bmpage_found = ctx.main_struct(XL_HASH_ADD_OVFL_PAGE, "xl_hash_add_ovfl_page")
    rightblk = ctx.block_tag(0).blk
    leftblk = ctx.block_tag(1).blk

    page = ctx.init_buffer_for_redo(0)
    if page is not None:
        num_bucket = _block_u32(ctx, 0, "hash_xlog_add_ovfl_page bucket number")
        _hash_initbuf(page, InvalidBlockNumber, num_bucket, LH_OVERFLOW_PAGE, True)
        HashPageGetOpaque(page).hasho_prevblkno = leftblk  # update backlink

    page = ctx.read_buffer_for_redo(1)
    if page is not None:
        HashPageGetOpaque(page).hasho_nextblkno = rightblk

    if ctx.record.has_block_ref(2):
        page = ctx.read_buffer_for_redo(2)
        if page is not None:
            bit = _block_u32(ctx, 2, "hash_xlog_add_ovfl_page bitmap bit")
            SETBIT(page, bit)

    # a new bitmap page: its block number goes into the metapage's hashm_mapp
    new_bmpage = ctx.record.has_block_ref(3)
    if new_bmpage:
        page = ctx.init_buffer_for_redo(3)
        if page is not None:
            _hash_initbitmapbuffer(page, bmsize, True)

    page = ctx.read_buffer_for_redo(4)
    if page is not None:
        firstfree = _block_u32(ctx, 4, "hash_xlog_add_ovfl_page firstfree")
        metap = HashPageGetMeta(page)
        metap.hashm_firstfree = firstfree
        if not bmpage_found:
            ovflpoint = metap.hashm_ovflpoint
            metap.set_spare(ovflpoint, metap.get_spare(ovflpoint) + 1)
            if new_bmpage:
                metap.set_mapp(metap.hashm_nmaps, ctx.block_tag(3).blk)
                metap.hashm_nmaps += 1
                metap.set_spare(ovflpoint, metap.get_spare(ovflpoint) + 1)


def hash_xlog_split_allocate_page(ctx: RedoContext) -> None:
    """Mirrors hash_xlog_split_allocate_page (hash_xlog.c)."""
    new_bucket, old_flag, new_flag, flags = ctx.main_struct(XL_HASH_SPLIT_ALLOCATE_PAGE, "xl_hash_split_allocate_page")

    # the old bucket is updated even when restored from an image
    page = _read_or_restored(ctx, 0, cleanup=True)
    if page is not None:
        op = HashPageGetOpaque(page)
        op.hasho_flag = old_flag
        op.hasho_prevblkno = new_bucket
        PageSetLSN(page, ctx.lsn)

    page = ctx.read_buffer_for_redo(1, RBM_ZERO_AND_CLEANUP_LOCK, get_cleanup_lock=True)
    if page is not None:
        _hash_initbuf(page, new_bucket, new_bucket, new_flag, True)

    page = ctx.read_buffer_for_redo(2)
    if page is None:
        return
    data = ctx.block_data(2)
    need = 8 * (bool(flags & XLH_SPLIT_META_UPDATE_MASKS) + bool(flags & XLH_SPLIT_META_UPDATE_SPLITPOINT))
    if len(data) < need:
        raise ctx.error(f"metapage data is {len(data)} bytes, flags 0x{flags:02X} need {need}",
                        block_id=2)
    metap = HashPageGetMeta(page)
    metap.hashm_maxbucket = new_bucket
    if flags & XLH_SPLIT_META_UPDATE_MASKS:
        lowmask, highmask = data.unpack(_U32x2, "lowmask, highmask")
        metap.hashm_lowmask = lowmask
        metap.hashm_highmask = highmask
    if flags & XLH_SPLIT_META_UPDATE_SPLITPOINT:
        ovflpoint, ovflpages = data.unpack(_U32x2, "ovflpoint, ovflpages")
        metap.set_spare(ovflpoint, ovflpages)
        metap.hashm_ovflpoint = ovflpoint


def hash_xlog_split_page(ctx: RedoContext) -> None:
    """Mirrors hash_xlog_split_page (hash_xlog.c): the page is always a full-page image."""
    ctx.read_buffer_for_redo(0)
    if ctx.actions[0] not in (BlkAction.BLK_RESTORED, BlkAction.NOT_TARGET):
        raise ctx.error("Hash split record did not contain a full-page image", block_id=0)


def hash_xlog_split_complete(ctx: RedoContext) -> None:
    """Mirrors hash_xlog_split_complete (hash_xlog.c)."""
    old_flag, new_flag = ctx.main_struct(XL_HASH_SPLIT_COMPLETE, "xl_hash_split_complete")
    # both buckets are updated even when restored from an image
    for block_id, flag in ((0, old_flag), (1, new_flag)):
        page = _read_or_restored(ctx, block_id)
        if page is not None:
            HashPageGetOpaque(page).hasho_flag = flag
            PageSetLSN(page, ctx.lsn)


def _read_write_page(ctx: RedoContext, is_prim_bucket_same_wrt: bool) -> bytearray | None:
    """The "write" page (block 1) of MOVE_PAGE_CONTENTS / SQUEEZE_PAGE: with a
    cleanup lock when it is the primary bucket page, else after taking the
    primary bucket's cleanup lock through block 0."""
    if is_prim_bucket_same_wrt:
        return ctx.read_buffer_for_redo(1, RBM_NORMAL, get_cleanup_lock=True)
    _lock_primary_bucket(ctx, 0)
    return ctx.read_buffer_for_redo(1)


def hash_xlog_move_page_contents(ctx: RedoContext) -> None:
    """Mirrors hash_xlog_move_page_contents (hash_xlog.c)."""
    ntups, is_prim = ctx.main_struct(XL_HASH_MOVE_PAGE_CONTENTS, "xl_hash_move_page_contents")

    page = _read_write_page(ctx, is_prim != 0)
    if page is not None:
        _add_moved_tuples(ctx, page, ntups, 1, "hash_xlog_move_page_contents")

    page = ctx.read_buffer_for_redo(2)
    if page is not None:
        data = ctx.block_data(2)
        if len(data):
            _multi_delete(ctx, page, data.u16_array(len(data) // 2, "deleted offsets"), 2)


def hash_xlog_squeeze_page(ctx: RedoContext, *,
                           CLRBIT: Callable[[bytearray, int], None] = CLRBIT) -> None:
    """Mirrors hash_xlog_squeeze_page (hash_xlog.c) of 15 and 16: the write page
    (block 1) is always read, and stamped with the LSN even when no tuple moved."""
    prevblkno, nextblkno, ntups, is_prim, is_prev = ctx.main_struct(XL_HASH_SQUEEZE_PAGE, "xl_hash_squeeze_page")

    page = _read_write_page(ctx, is_prim != 0)
    if page is not None:
        _add_moved_tuples(ctx, page, ntups, 1, "hash_xlog_squeeze_page")
        # the write page precedes the freed page: it takes over the forward link
        if is_prev:
            HashPageGetOpaque(page).hasho_nextblkno = nextblkno
    _squeeze_free_ovflpage(ctx, prevblkno, nextblkno, is_prev != 0, CLRBIT=CLRBIT)


def hash_xlog_squeeze_page_17(ctx: RedoContext, *,
                              CLRBIT: Callable[[bytearray, int], None] = CLRBIT) -> None:
    """Mirrors hash_xlog_squeeze_page (hash_xlog.c) of 17 and 18: with no tuple to move
    and a write page that is not the freed page's predecessor, 17's _hash_freeovflpage
    registers block 1 only for the primary bucket's cleanup lock (or not at all), and
    redo reads it only then; the write page gets the LSN only when it changed."""
    prevblkno, nextblkno, ntups, is_prim, is_prev = ctx.main_struct(XL_HASH_SQUEEZE_PAGE, "xl_hash_squeeze_page")

    if is_prim:
        page = ctx.read_buffer_for_redo(1, RBM_NORMAL, get_cleanup_lock=True)
    else:
        _lock_primary_bucket(ctx, 0)
        page = ctx.read_buffer_for_redo(1) if ntups > 0 or is_prev else None
    if page is not None:
        _add_moved_tuples(ctx, page, ntups, 1, "hash_xlog_squeeze_page")
        if is_prev:
            HashPageGetOpaque(page).hasho_nextblkno = nextblkno
        if ntups == 0 and not is_prev:  # mod_wbuf stays false
            ctx.keep_page_lsn()
    _squeeze_free_ovflpage(ctx, prevblkno, nextblkno, is_prev != 0, CLRBIT=CLRBIT)


def _squeeze_free_ovflpage(ctx: RedoContext, prevblkno: int, nextblkno: int, is_prev: bool, *,
                           CLRBIT: Callable[[bytearray, int], None]) -> None:
    """Blocks 2-6 of SQUEEZE_PAGE, alike in 15-18: the freed overflow page, its
    neighbours' links, its bitmap bit and the metapage's hashm_firstfree."""
    # the freed overflow page becomes an unused page
    page = ctx.read_buffer_for_redo(2)
    if page is not None:
        _hash_pageinit(page)
        op = HashPageGetOpaque(page)
        op.hasho_prevblkno = InvalidBlockNumber
        op.hasho_nextblkno = InvalidBlockNumber
        op.hasho_bucket = InvalidBucket
        op.hasho_flag = LH_UNUSED_PAGE
        op.hasho_page_id = HASHO_PAGE_ID

    if not is_prev:
        page = ctx.read_buffer_for_redo(3)
        if page is not None:
            HashPageGetOpaque(page).hasho_nextblkno = nextblkno

    if ctx.record.has_block_ref(4):
        page = ctx.read_buffer_for_redo(4)
        if page is not None:
            HashPageGetOpaque(page).hasho_prevblkno = prevblkno

    page = ctx.read_buffer_for_redo(5)
    if page is not None:
        bit = _block_u32(ctx, 5, "hash_xlog_squeeze_page bitmap bit")
        CLRBIT(page, bit)

    if ctx.record.has_block_ref(6):
        page = ctx.read_buffer_for_redo(6)
        if page is not None:
            HashPageGetMeta(page).hashm_firstfree = _block_u32(
                ctx, 6, "hash_xlog_squeeze_page firstfree")


def hash_xlog_delete(ctx: RedoContext) -> None:
    """Mirrors hash_xlog_delete (hash_xlog.c)."""
    clear_dead_marking, is_primary = ctx.main_struct(XL_HASH_DELETE, "xl_hash_delete")

    if is_primary:
        page = ctx.read_buffer_for_redo(1, RBM_NORMAL, get_cleanup_lock=True)
    else:
        _lock_primary_bucket(ctx, 0)
        page = ctx.read_buffer_for_redo(1)
    if page is None:
        return
    data = ctx.block_data(1)
    if len(data):
        _multi_delete(ctx, page, data.u16_array(len(data) // 2, "deleted offsets"), 1)
    if clear_dead_marking:
        op = HashPageGetOpaque(page)
        op.hasho_flag = op.hasho_flag & ~LH_PAGE_HAS_DEAD_TUPLES


def hash_xlog_split_cleanup(ctx: RedoContext) -> None:
    """Mirrors hash_xlog_split_cleanup (hash_xlog.c)."""
    page = ctx.read_buffer_for_redo(0)
    if page is not None:
        op = HashPageGetOpaque(page)
        op.hasho_flag = op.hasho_flag & ~LH_BUCKET_NEEDS_SPLIT_CLEANUP


def hash_xlog_update_meta_page(ctx: RedoContext) -> None:
    """Mirrors hash_xlog_update_meta_page (hash_xlog.c)."""
    ctx.main_struct(XL_HASH_UPDATE_META_PAGE, "xl_hash_update_meta_page")
    page = ctx.read_buffer_for_redo(0)
    if page is not None:
        HashPageGetMeta(page).set_ntuples_bytes(ctx.main_data().take(8, "xl_hash_update_meta_page.ntuples"))


def hash_xlog_vacuum_one_page(ctx: RedoContext) -> None:
    """Mirrors hash_xlog_vacuum_one_page (hash_xlog.c) of 15. The standby conflict
    (latestRemovedXid) changes no page."""
    _xid, ntuples = ctx.main_struct(XL_HASH_VACUUM_ONE_PAGE, "xl_hash_vacuum_one_page")

    page = ctx.read_buffer_for_redo(0, RBM_NORMAL, get_cleanup_lock=True)
    if page is not None:
        data = ctx.main_data().seek(SizeOfHashVacuumOnePage)
        # C passes ntuples straight to PageIndexMultiDelete: <= 0 deletes nothing
        if data.remaining > 0 and ntuples > 0:
            unused = data.u16_array(ntuples, "deleted offsets")
            _multi_delete(ctx, page, unused, 0)
        _clear_has_dead_tuples(page)
    _meta_ntuples_minus(ctx, ntuples)


# 16: snapshotConflictHorizon, uint16 ntuples, isCatalogRel, then offsets[] at
# offsetof(xl_hash_vacuum_one_page, offsets) = 8
XL_HASH_VACUUM_ONE_PAGE_16 = struct.Struct("<IH?x")


def hash_xlog_vacuum_one_page_16(ctx: RedoContext) -> None:
    """Mirrors hash_xlog_vacuum_one_page (hash_xlog.c) of 16, 17 and 18: ntuples is a
    uint16 (followed by isCatalogRel) and the offsets always follow in the main data."""
    _horizon, ntuples, _catalog = ctx.main_struct(XL_HASH_VACUUM_ONE_PAGE_16, "xl_hash_vacuum_one_page")

    page = ctx.read_buffer_for_redo(0, RBM_NORMAL, get_cleanup_lock=True)
    if page is not None:
        data = ctx.main_data().seek(XL_HASH_VACUUM_ONE_PAGE_16.size)
        _multi_delete(ctx, page, data.u16_array(ntuples, "deleted offsets"), 0)
        _clear_has_dead_tuples(page)
    _meta_ntuples_minus(ctx, ntuples)


def _clear_has_dead_tuples(page: bytearray) -> None:
    """VACUUM_ONE_PAGE: the bucket page has no LP_DEAD items left."""
    op = HashPageGetOpaque(page)
    op.hasho_flag = op.hasho_flag & ~LH_PAGE_HAS_DEAD_TUPLES


def _meta_ntuples_minus(ctx: RedoContext, ntuples: int) -> None:
    """VACUUM_ONE_PAGE: the metapage (block 1) counts ``ntuples`` fewer tuples."""
    meta = ctx.read_buffer_for_redo(1)
    if meta is not None:
        metap = HashPageGetMeta(meta)
        metap.hashm_ntuples -= ntuples


REDO: dict[int, RedoFn] = {
    XLOG_HASH_INIT_META_PAGE: hash_xlog_init_meta_page,
    XLOG_HASH_INIT_BITMAP_PAGE: hash_xlog_init_bitmap_page,
    XLOG_HASH_INSERT: hash_xlog_insert,
    XLOG_HASH_ADD_OVFL_PAGE: hash_xlog_add_ovfl_page,
    XLOG_HASH_SPLIT_ALLOCATE_PAGE: hash_xlog_split_allocate_page,
    XLOG_HASH_SPLIT_PAGE: hash_xlog_split_page,
    XLOG_HASH_SPLIT_COMPLETE: hash_xlog_split_complete,
    XLOG_HASH_MOVE_PAGE_CONTENTS: hash_xlog_move_page_contents,
    XLOG_HASH_SQUEEZE_PAGE: hash_xlog_squeeze_page,
    XLOG_HASH_DELETE: hash_xlog_delete,
    XLOG_HASH_SPLIT_CLEANUP: hash_xlog_split_cleanup,
    XLOG_HASH_UPDATE_META_PAGE: hash_xlog_update_meta_page,
    XLOG_HASH_VACUUM_ONE_PAGE: hash_xlog_vacuum_one_page,
}


# 16 lays xl_hash_vacuum_one_page out anew (isCatalogRel); 17 reads SQUEEZE_PAGE's write
# page only when it changes; hash_mask and the page helpers redo calls (_hash_pageinit,
# _hash_init_metabuffer, _hash_initbitmapbuffer) are the same in 15-18
MAJORS: tuple[int, ...] = (15, 16, 17, 18)
REDO_SINCE: dict[int, dict[int, RedoFn | None]] = {
    16: {XLOG_HASH_VACUUM_ONE_PAGE: hash_xlog_vacuum_one_page_16},
    17: {XLOG_HASH_SQUEEZE_PAGE: hash_xlog_squeeze_page_17},
}


# -- hashdesc.c ------------------------------------------------------------------------------
def _tf(v: int) -> str:
    return "T" if v else "F"


def _desc_fields(info: int, data: bytes) -> str:
    if info == XLOG_HASH_INIT_META_PAGE:
        num_tuples, _procid, ffactor = XL_HASH_INIT_META_PAGE.unpack_from(data)
        return f"num_tuples {num_tuples:g}, fillfactor {ffactor}"
    if info == XLOG_HASH_INIT_BITMAP_PAGE:
        return f"bmsize {XL_HASH_INIT_BITMAP_PAGE.unpack_from(data)[0]}"
    if info == XLOG_HASH_INSERT:
        return f"off {XL_HASH_INSERT.unpack_from(data)[0]}"
    if info == XLOG_HASH_ADD_OVFL_PAGE:
        bmsize, found = XL_HASH_ADD_OVFL_PAGE.unpack_from(data)
        return f"bmsize {bmsize}, bmpage_found {_tf(found)}"
    if info == XLOG_HASH_SPLIT_ALLOCATE_PAGE:
        new_bucket, _o, _n, flags = XL_HASH_SPLIT_ALLOCATE_PAGE.unpack_from(data)
        return (f"new_bucket {new_bucket}, meta_page_masks_updated "
                f"{_tf(flags & XLH_SPLIT_META_UPDATE_MASKS)}, issplitpoint_changed "
                f"{_tf(flags & XLH_SPLIT_META_UPDATE_SPLITPOINT)}")
    if info == XLOG_HASH_SPLIT_COMPLETE:
        old_flag, new_flag = XL_HASH_SPLIT_COMPLETE.unpack_from(data)
        return f"old_bucket_flag {old_flag}, new_bucket_flag {new_flag}"
    if info == XLOG_HASH_MOVE_PAGE_CONTENTS:
        ntups, is_prim = XL_HASH_MOVE_PAGE_CONTENTS.unpack_from(data)
        return f"ntups {ntups}, is_primary {_tf(is_prim)}"
    if info == XLOG_HASH_SQUEEZE_PAGE:
        prev, nxt, ntups, is_prim, _is_prev = XL_HASH_SQUEEZE_PAGE.unpack_from(data)
        return f"prevblkno {prev}, nextblkno {nxt}, ntups {ntups}, is_primary {_tf(is_prim)}"
    if info == XLOG_HASH_DELETE:
        clear, is_prim = XL_HASH_DELETE.unpack_from(data)
        return f"clear_dead_marking {_tf(clear)}, is_primary {_tf(is_prim)}"
    if info == XLOG_HASH_UPDATE_META_PAGE:
        return f"ntuples {XL_HASH_UPDATE_META_PAGE.unpack_from(data)[0]:g}"
    if info == XLOG_HASH_VACUUM_ONE_PAGE:
        xid, ntuples = XL_HASH_VACUUM_ONE_PAGE.unpack_from(data)
        return f"ntuples {ntuples}, latestRemovedXid {xid}"
    return ""


def desc(rec: DecodedXLogRecord) -> str:
    """Mirrors hash_desc (hashdesc.c); a short main data gives a note, not an error."""
    try:
        return _desc_fields(rec.info & XLR_RMGR_INFO_MASK, rec.main_data)
    except struct.error:
        return f"<main data of {len(rec.main_data)} bytes is too short>"


def _desc_16(rec: DecodedXLogRecord, is_catalog_rel: bool) -> str:
    """hash_desc of 16 and on: VACUUM_ONE_PAGE has 16's layout (and from 17 prints
    isCatalogRel); every other record prints as in 15."""
    if rec.info & XLR_RMGR_INFO_MASK != XLOG_HASH_VACUUM_ONE_PAGE:
        return desc(rec)
    if len(rec.main_data) < XL_HASH_VACUUM_ONE_PAGE_16.size:
        return f"<main data of {len(rec.main_data)} bytes is too short>"
    horizon, ntuples, catalog = XL_HASH_VACUUM_ONE_PAGE_16.unpack_from(rec.main_data)
    out = f"ntuples {ntuples}, snapshotConflictHorizon {horizon}"
    return out + (f", isCatalogRel {_tf(catalog)}" if is_catalog_rel else "")


def desc_16(rec: DecodedXLogRecord) -> str:
    """Mirrors hash_desc (hashdesc.c) of 16."""
    return _desc_16(rec, False)


def desc_17(rec: DecodedXLogRecord) -> str:
    """Mirrors hash_desc (hashdesc.c) of 17 and 18."""
    return _desc_16(rec, True)


DESC_SINCE: dict[int, Callable[[DecodedXLogRecord], str] | None] = {16: desc_16, 17: desc_17}
