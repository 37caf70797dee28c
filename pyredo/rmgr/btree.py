"""Btree resource manager: redo of its page-modifying records.

Mirrors btree_redo (nbtxlog.c), btree_identify, and the nbtdedup.c pieces that
redo of a deduplication pass calls (BTDedupState, _bt_dedup_start_pending,
_bt_dedup_save_htid, _bt_dedup_finish_pending). btree_desc (nbtdesc.c) is in
nbtdesc.py, the nbtxlog.h record layouts in nbtxlog.py; tuple and page layouts
live in ``pyredo.page.nbtree``.

Byte-exactness notes. Where C builds a page on a palloc'd temp page
(PageGetTempPageCopySpecial: the left half of a split, a deduplicated page),
that page was zeroed by PageInit, and PageRestoreTempPage copies all of it:
every byte of the result is defined, and the header's pd_flags and
pd_prune_xid start from zero. Where C edits the page in place (inserts,
deletes, posting-list updates), bufpage.py leaves the same stale bytes that
memmove leaves. New tuples (posting lists) are palloc0'd in C, so their
padding is zeros here too.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyredo import BLCKSZ
from pyredo.errors import RedoError
from pyredo.page import bufpage
from pyredo.page.bufpage import (
    MAXALIGN,
    FirstOffsetNumber,
    InvalidOffsetNumber,
    MaxIndexTuplesPerPage,
    PageGetContents,
    PageGetItemId,
    PageGetMaxOffsetNumber,
    PageGetTempPageCopySpecial,
    PageIndexMultiDelete,
    PageIndexTupleDelete,
    PageIndexTupleOverwrite,
    PageRestoreTempPage,
    SizeOfItemIdData,
    SizeOfPageHeaderData,
    set_pd_lower,
)
from pyredo.page.nbtree import (
    BTP_HALF_DEAD,
    BTP_HAS_GARBAGE,
    BTP_INCOMPLETE_SPLIT,
    BTP_LEAF,
    BTP_META,
    BTP_ROOT,
    BTREE_MAGIC,
    P_FIRSTDATAKEY,
    P_HAS_GARBAGE,
    P_HIKEY,
    P_NONE,
    P_RIGHTMOST,
    BTMaxItemSize,
    BTMetaPageData,
    BTPageGetOpaque,
    BTPageSetDeleted,
    BTPageSetMeta,
    BTreeTupleGetDownLink,
    BTreeTupleGetHeapTIDs,
    BTreeTupleGetPostingOffset,
    BTreeTupleIsPosting,
    BTreeTupleSetDownLink,
    IndexTupleSize,
    SizeOfBTMetaPageData,
    SizeOfIndexTupleData,
    SizeOfItemPointerData,
    _bt_form_posting,
    _bt_pageinit,
    _bt_swap_posting,
    _bt_update_posting,
    dummy_hikey,
)
from pyredo.rmgr.nbtdesc import btree_desc, btree_desc_16, btree_desc_17
from pyredo.rmgr.nbtxlog import (
    BT_DEDUP_INTERVAL,
    XL_BTREE_DEDUP,
    XL_BTREE_DELETE,
    XL_BTREE_INSERT,
    XL_BTREE_MARK_PAGE_HALFDEAD,
    XL_BTREE_METADATA,
    XL_BTREE_NEWROOT,
    XL_BTREE_SPLIT,
    XL_BTREE_UNLINK_PAGE,
    XL_BTREE_UPDATE,
    XL_BTREE_VACUUM,
    XLOG_BTREE_DEDUP,
    XLOG_BTREE_DELETE,
    XLOG_BTREE_INSERT_LEAF,
    XLOG_BTREE_INSERT_META,
    XLOG_BTREE_INSERT_POST,
    XLOG_BTREE_INSERT_UPPER,
    XLOG_BTREE_MARK_PAGE_HALFDEAD,
    XLOG_BTREE_META_CLEANUP,
    XLOG_BTREE_NEWROOT,
    XLOG_BTREE_REUSE_PAGE,
    XLOG_BTREE_SPLIT_L,
    XLOG_BTREE_SPLIT_R,
    XLOG_BTREE_UNLINK_PAGE,
    XLOG_BTREE_UNLINK_PAGE_META,
    XLOG_BTREE_VACUUM,
    SizeOfBtreeUnlinkPage,
)
from pyredo.wal.record import XLR_RMGR_INFO_MASK
from pyredo.xlogutils import BlkAction, RecordCursor

if TYPE_CHECKING:
    from pyredo.xlogutils import RedoContext, RedoFn

SwapPosting = Callable[[bytearray, "bytes | bytearray | memoryview", int], bytearray]
BlockStep = Callable[["RedoContext", int], None]  # _bt_clear_incomplete_split, _bt_restore_meta
MultiDelete = Callable[[bytearray, list[int]], None]  # PageIndexMultiDelete

_NAMES = {
    XLOG_BTREE_INSERT_LEAF: "INSERT_LEAF",
    XLOG_BTREE_INSERT_UPPER: "INSERT_UPPER",
    XLOG_BTREE_INSERT_META: "INSERT_META",
    XLOG_BTREE_SPLIT_L: "SPLIT_L",
    XLOG_BTREE_SPLIT_R: "SPLIT_R",
    XLOG_BTREE_INSERT_POST: "INSERT_POST",
    XLOG_BTREE_DEDUP: "DEDUP",
    XLOG_BTREE_DELETE: "DELETE",
    XLOG_BTREE_UNLINK_PAGE: "UNLINK_PAGE",
    XLOG_BTREE_UNLINK_PAGE_META: "UNLINK_PAGE_META",
    XLOG_BTREE_NEWROOT: "NEWROOT",
    XLOG_BTREE_MARK_PAGE_HALFDEAD: "MARK_PAGE_HALFDEAD",
    XLOG_BTREE_VACUUM: "VACUUM",
    XLOG_BTREE_REUSE_PAGE: "REUSE_PAGE",
    XLOG_BTREE_META_CLEANUP: "META_CLEANUP",
}


def identify(info: int) -> str | None:
    return _NAMES.get(info & XLR_RMGR_INFO_MASK)

# record types whose redo changes a relation page (coverage counts these)
PAGE_MODIFYING: tuple[int, ...] = (
    XLOG_BTREE_INSERT_LEAF,
    XLOG_BTREE_INSERT_UPPER,
    XLOG_BTREE_INSERT_META,
    XLOG_BTREE_SPLIT_L,
    XLOG_BTREE_SPLIT_R,
    XLOG_BTREE_INSERT_POST,
    XLOG_BTREE_DEDUP,
    XLOG_BTREE_DELETE,
    XLOG_BTREE_UNLINK_PAGE,
    XLOG_BTREE_UNLINK_PAGE_META,
    XLOG_BTREE_NEWROOT,
    XLOG_BTREE_MARK_PAGE_HALFDEAD,
    XLOG_BTREE_VACUUM,
    XLOG_BTREE_META_CLEANUP,
)

_U16 = struct.Struct("<H")


# -- small helpers --------------------------------------------------------------------
def _take_index_tuple(ctx: RedoContext, data: RecordCursor, what: str, block_id: int) -> bytes:
    """The next logged index tuple, MAXALIGNed: C would read past the data otherwise."""
    data.need(SizeOfIndexTupleData, what)
    itemsz = MAXALIGN(IndexTupleSize(data.data, data.pos))
    if itemsz == 0 or itemsz > data.remaining:
        raise ctx.error(f"{what} of {itemsz} bytes does not fit the record data", block_id=block_id)
    return data.take(itemsz, what)


def _item_at(ctx: RedoContext, page: bytes | bytearray, offnum: int, block_id: int) -> tuple[int, int]:
    """(lp_off, lp_len) of item ``offnum``, refusing what C would read out of bounds."""
    maxoff = PageGetMaxOffsetNumber(page)
    if not FirstOffsetNumber <= offnum <= maxoff:
        raise ctx.error(f"item offset {offnum} is not on the page (max offset {maxoff})",
                        block_id=block_id)
    lp_off, _flags, lp_len = PageGetItemId(page, offnum)
    if lp_off < SizeOfPageHeaderData or lp_off + max(lp_len, SizeOfIndexTupleData) > BLCKSZ:
        raise ctx.error(f"item {offnum} at {lp_off} of length {lp_len} is outside the page",
                        block_id=block_id)
    return lp_off, lp_len


def _index_tuple(ctx: RedoContext, page: bytes | bytearray, offnum: int, block_id: int) -> tuple[int, bytes]:
    """(offset, bytes) of the IndexTuple at ``offnum``: IndexTupleSize bytes, as
    the C code reads them through the pointer PageGetItem returns."""
    lp_off, _len = _item_at(ctx, page, offnum, block_id)
    size = IndexTupleSize(page, lp_off)
    if lp_off + size > BLCKSZ:
        raise ctx.error(f"index tuple {offnum} of {size} bytes runs past the page end",
                        block_id=block_id)
    return lp_off, bytes(page[lp_off : lp_off + size])


def _aligned_tuple(ctx: RedoContext, tup: bytes | bytearray, block_id: int) -> bytes:
    """MAXALIGN(IndexTupleSize(tup)) bytes of a palloc'd tuple. Tuples that C
    forms (index_form_tuple, _bt_form_posting) always have MAXALIGNed sizes; any
    other size would make C copy bytes past its palloc chunk."""
    size = IndexTupleSize(tup)
    if size != MAXALIGN(size) or size > len(tup):
        raise ctx.error(f"index tuple size {size} is not MAXALIGNed", block_id=block_id)
    return bytes(tup[:size])


def _page_add_item(ctx: RedoContext, page: bytearray, item: bytes, offnum: int,
                   failure: str, block_id: int) -> None:
    if bufpage.PageAddItem(page, item, offnum) == InvalidOffsetNumber:
        raise ctx.error(failure, block_id=block_id)


def _init_buffer(ctx: RedoContext, block_id: int) -> bytearray | None:
    """XLogInitBufferForRedo as nbtxlog.c uses it: the routine rebuilds the page
    whatever the buffer action was. (Were a WILL_INIT block also to carry an
    image to apply, C restores it and then rebuilds over it all the same.)"""
    page = ctx.init_buffer_for_redo(block_id)
    if page is None and ctx.actions.get(block_id) is BlkAction.BLK_RESTORED:
        ctx.actions[block_id] = BlkAction.BLK_NEEDS_REDO
        return ctx.page
    return page


# -- shared pieces of nbtxlog.c ---------------------------------------------------------
def _bt_restore_page(ctx: RedoContext, page: bytearray, data: bytes, block_id: int) -> None:
    """Mirrors _bt_restore_page (nbtxlog.c): re-add the tuples of a page's upper
    part, logged highest item number first, each with its MAXALIGNed size."""
    items: list[tuple[int, int]] = []
    pos = 0
    while pos < len(data):
        if pos + SizeOfIndexTupleData > len(data):
            raise ctx.error(f"truncated index tuple at offset {pos} of page data", block_id=block_id)
        itemsz = MAXALIGN(IndexTupleSize(data, pos))
        if itemsz == 0:  # C would loop here forever
            raise ctx.error(f"zero-length index tuple at offset {pos} of page data", block_id=block_id)
        if pos + itemsz > len(data):
            raise ctx.error(f"index tuple of {itemsz} bytes at offset {pos} runs past the "
                            f"{len(data)} bytes of page data", block_id=block_id)
        if len(items) >= MaxIndexTuplesPerPage:
            raise ctx.error("more than MaxIndexTuplesPerPage tuples in page data", block_id=block_id)
        items.append((pos, itemsz))
        pos += itemsz
    nitems = len(items)
    for i in range(nitems - 1, -1, -1):
        start, itemsz = items[i]
        _page_add_item(ctx, page, data[start : start + itemsz], nitems - i,
                       "_bt_restore_page: cannot add item to page", block_id)


def _bt_restore_meta(ctx: RedoContext, block_id: int) -> None:
    """Mirrors _bt_restore_meta (nbtxlog.c): rebuild the metapage from xl_btree_metadata."""
    page = _init_buffer(ctx, block_id)
    if page is None:
        return
    data = ctx.block_data(block_id)
    if len(data) != XL_BTREE_METADATA.size:
        raise ctx.error(f"xl_btree_metadata is {len(data)} bytes, not {XL_BTREE_METADATA.size}",
                        block_id=block_id)
    version, root, level, fastroot, fastlevel, delpages, allequalimage = data.unpack(
        XL_BTREE_METADATA, "xl_btree_metadata")
    _bt_pageinit(page)
    BTPageSetMeta(page, BTMetaPageData(
        btm_magic=BTREE_MAGIC, btm_version=version, btm_root=root, btm_level=level,
        btm_fastroot=fastroot, btm_fastlevel=fastlevel,
        btm_last_cleanup_num_delpages=delpages, btm_last_cleanup_num_heap_tuples=-1.0,
        btm_allequalimage=allequalimage,
    ))
    BTPageGetOpaque(page).btpo_flags = BTP_META
    # pd_lower just past the metadata, so that a compressed page image keeps it
    set_pd_lower(page, PageGetContents(page) + SizeOfBTMetaPageData)


def _bt_clear_incomplete_split(ctx: RedoContext, block_id: int) -> None:
    """Mirrors _bt_clear_incomplete_split (nbtxlog.c)."""
    page = ctx.read_buffer_for_redo(block_id)
    if page is not None:
        opaque = BTPageGetOpaque(page)
        opaque.btpo_flags &= ~BTP_INCOMPLETE_SPLIT


# -- INSERT_LEAF / INSERT_UPPER / INSERT_META / INSERT_POST -------------------------
def btree_xlog_insert(
    ctx: RedoContext, isleaf: bool, ismeta: bool, posting: bool, *,
    _bt_clear_incomplete_split: BlockStep = _bt_clear_incomplete_split,
    _bt_restore_meta: BlockStep = _bt_restore_meta,
    _bt_swap_posting: SwapPosting = _bt_swap_posting,
) -> None:
    """Mirrors btree_xlog_insert (nbtxlog.c)."""
    (offnum,) = ctx.main_struct(XL_BTREE_INSERT, "xl_btree_insert")
    # an insert into an internal page finishes the child's split
    if not isleaf:
        _bt_clear_incomplete_split(ctx, 1)
    page = ctx.read_buffer_for_redo(0)
    if page is not None:
        data = ctx.block_data(0)
        if not posting:
            _page_add_item(ctx, page, data.rest(), offnum, "failed to add new item", 0)
        else:
            _insert_posting_split(ctx, page, offnum, data, _bt_swap_posting=_bt_swap_posting)
    if ismeta:
        _bt_restore_meta(ctx, 2)


def _insert_posting_split(ctx: RedoContext, page: bytearray, offnum: int, data: RecordCursor, *,
                          _bt_swap_posting: SwapPosting = _bt_swap_posting) -> None:
    """INSERT_POST: the record carries postingoff and the *original* new item;
    repeat _bt_swap_posting, overwrite the posting list in place, insert the
    final new item."""
    postingoff = data.u16("INSERT_POST posting offset")
    orignewitem = data.rest()
    if len(orignewitem) < SizeOfIndexTupleData or IndexTupleSize(orignewitem) != len(orignewitem):
        raise ctx.error(f"INSERT_POST new item of {len(orignewitem)} bytes does not match "
                        "its IndexTupleSize", block_id=0)
    oposting_off, oposting = _index_tuple(ctx, page, offnum - 1, 0)
    newitem = bytearray(orignewitem)  # CopyIndexTuple: a mutable copy
    nposting = _aligned_tuple(ctx, _bt_swap_posting(newitem, oposting, postingoff), 0)
    page[oposting_off : oposting_off + len(nposting)] = nposting
    _page_add_item(ctx, page, bytes(newitem), offnum, "failed to add posting split new item", 0)


def btree_xlog_insert_leaf(ctx: RedoContext) -> None:
    """Mirrors btree_xlog_insert(true, false, false) (nbtxlog.c): XLOG_BTREE_INSERT_LEAF."""
    btree_xlog_insert(ctx, True, False, False)


def btree_xlog_insert_upper(
    ctx: RedoContext, *, _bt_clear_incomplete_split: BlockStep = _bt_clear_incomplete_split,
) -> None:
    """Mirrors btree_xlog_insert(false, false, false) (nbtxlog.c): XLOG_BTREE_INSERT_UPPER."""
    btree_xlog_insert(ctx, False, False, False, _bt_clear_incomplete_split=_bt_clear_incomplete_split)


def btree_xlog_insert_meta(ctx: RedoContext, *,
                           _bt_restore_meta: BlockStep = _bt_restore_meta) -> None:
    """Mirrors btree_xlog_insert(false, true, false) (nbtxlog.c): XLOG_BTREE_INSERT_META."""
    btree_xlog_insert(ctx, False, True, False, _bt_restore_meta=_bt_restore_meta)


def btree_xlog_insert_post(ctx: RedoContext, *,
                           _bt_swap_posting: SwapPosting = _bt_swap_posting) -> None:
    """Mirrors btree_xlog_insert(true, false, true) (nbtxlog.c): XLOG_BTREE_INSERT_POST."""
    btree_xlog_insert(ctx, True, False, True, _bt_swap_posting=_bt_swap_posting)


# -- SPLIT_L / SPLIT_R ------------------------------------------------------------------
@dataclass
class _Split:
    level: int
    firstrightoff: int
    newitemoff: int
    postingoff: int
    newitemonleft: bool


def btree_xlog_split(ctx: RedoContext, newitemonleft: bool) -> None:
    """Mirrors btree_xlog_split (nbtxlog.c)."""
    level, firstrightoff, newitemoff, postingoff = ctx.main_struct(XL_BTREE_SPLIT, "xl_btree_split")
    xlrec = _Split(level, firstrightoff, newitemoff, postingoff, newitemonleft)
    isleaf = level == 0
    origpagenumber = ctx.block_tag(0).blk
    rightpagenumber = ctx.block_tag(1).blk
    sblk = ctx.record.block(2)
    spagenumber = sblk.blkno if sblk is not None else P_NONE

    # an internal page split also finishes the split one level down
    if not isleaf:
        _bt_clear_incomplete_split(ctx, 3)

    # the new right sibling, from scratch
    rpage = _init_buffer(ctx, 1)
    if rpage is not None:
        _bt_pageinit(rpage)
        ropaque = BTPageGetOpaque(rpage)
        ropaque.btpo_prev = origpagenumber
        ropaque.btpo_next = spagenumber
        ropaque.btpo_level = level
        ropaque.btpo_flags = BTP_LEAF if isleaf else 0
        ropaque.btpo_cycleid = 0
        _bt_restore_page(ctx, rpage, ctx.block_data(1).rest(), 1)

    # the original page becomes the left half
    page = ctx.read_buffer_for_redo(0)
    if page is not None:
        _split_left_page(ctx, page, xlrec, rightpagenumber)

    # the page to the right of the new right sibling points back at it
    if spagenumber != P_NONE:
        spage = ctx.read_buffer_for_redo(2)
        if spage is not None:
            BTPageGetOpaque(spage).btpo_prev = rightpagenumber


def _split_left_page(ctx: RedoContext, page: bytearray, xlrec: _Split, rightpagenumber: int) -> None:
    """The left half of btree_xlog_split: add the logged high key, the kept items
    (and the new item / replacement posting list) to a temp page in item order."""
    origpage = bytes(page)
    oopaque = BTPageGetOpaque(page)
    data = ctx.block_data(0)
    newitem: bytes | None = None
    nposting: bytes | None = None
    replacepostingoff = InvalidOffsetNumber

    if xlrec.newitemonleft or xlrec.postingoff != 0:
        newitem = _take_index_tuple(ctx, data, "split new item", 0)
        if xlrec.postingoff != 0:
            # the posting list being split is just before the new item; the
            # copy of newitem keeps the record's padding (sizes are MAXALIGNed)
            replacepostingoff = xlrec.newitemoff - 1
            mutable = bytearray(newitem)
            _off, oposting = _index_tuple(ctx, origpage, replacepostingoff, 0)
            nposting = _aligned_tuple(ctx, _bt_swap_posting(mutable, oposting, xlrec.postingoff), 0)
            newitem = bytes(mutable)

    left_hikey = _take_index_tuple(ctx, data, "split left high key", 0)

    leftpage = PageGetTempPageCopySpecial(origpage)
    _page_add_item(ctx, leftpage, left_hikey, P_HIKEY,
                   "failed to add high key to left page after split", 0)
    leftoff = P_HIKEY + 1

    maxoff = PageGetMaxOffsetNumber(origpage)
    if xlrec.firstrightoff > maxoff + 1:
        raise ctx.error(f"split firstrightoff {xlrec.firstrightoff} is past the page's "
                        f"{maxoff} items", block_id=0)
    off = P_FIRSTDATAKEY(oopaque)
    while off < xlrec.firstrightoff:
        if off == replacepostingoff:
            assert nposting is not None
            _page_add_item(ctx, leftpage, nposting, leftoff,
                           "failed to add new posting list item to left page after split", 0)
            leftoff += 1
            off += 1
            continue  # the replacement stands in for the old posting list
        if xlrec.newitemonleft and off == xlrec.newitemoff:
            assert newitem is not None
            _page_add_item(ctx, leftpage, newitem, leftoff,
                           "failed to add new item to left page after split", 0)
            leftoff += 1
        lp_off, lp_len = _item_at(ctx, origpage, off, 0)
        _page_add_item(ctx, leftpage, origpage[lp_off : lp_off + lp_len], leftoff,
                       "failed to add old item to left page after split", 0)
        leftoff += 1
        off += 1

    # the new item may go last
    if xlrec.newitemonleft and off == xlrec.newitemoff:
        assert newitem is not None
        _page_add_item(ctx, leftpage, newitem, leftoff,
                       "failed to add new item to left page after split", 0)

    PageRestoreTempPage(leftpage, page)
    oopaque = BTPageGetOpaque(page)
    oopaque.btpo_flags = BTP_INCOMPLETE_SPLIT | (BTP_LEAF if xlrec.level == 0 else 0)
    oopaque.btpo_next = rightpagenumber
    oopaque.btpo_cycleid = 0


def btree_xlog_split_l(ctx: RedoContext) -> None:
    """Mirrors btree_xlog_split(true) (nbtxlog.c): XLOG_BTREE_SPLIT_L."""
    btree_xlog_split(ctx, True)


def btree_xlog_split_r(ctx: RedoContext) -> None:
    """Mirrors btree_xlog_split(false) (nbtxlog.c): XLOG_BTREE_SPLIT_R."""
    btree_xlog_split(ctx, False)


# -- DEDUP (nbtdedup.c pieces) ------------------------------------------------------------
@dataclass
class BTDedupState:
    """BTDedupStateData (nbtree.h), the fields redo uses. ``htids`` holds the
    pending posting list's TIDs as 6-byte ItemPointerData."""

    maxpostingsize: int
    base: bytes = b""
    baseoff: int = InvalidOffsetNumber
    basetupsize: int = 0
    htids: bytearray = field(default_factory=bytearray)
    nhtids: int = 0
    nitems: int = 0
    phystupsize: int = 0
    nmaxitems: int = 0
    nintervals: int = 0
    intervals: list[list[int]] = field(default_factory=list)  # [baseoff, nitems]

    def interval(self, i: int) -> list[int]:
        while len(self.intervals) <= i:
            self.intervals.append([InvalidOffsetNumber, 0])
        return self.intervals[i]


def _bt_dedup_start_pending(state: BTDedupState, base: bytes, baseoff: int) -> None:
    """Mirrors _bt_dedup_start_pending (nbtdedup.c)."""
    htids = BTreeTupleGetHeapTIDs(base)
    if len(htids) > state.maxpostingsize:  # C's htids array holds maxpostingsize bytes
        raise RedoError(f"posting list of {len(htids) // SizeOfItemPointerData} TIDs overflows "
                        "the deduplication buffer")
    state.htids = bytearray(htids)
    state.nhtids = len(htids) // SizeOfItemPointerData
    # basetupsize excludes an existing posting list
    state.basetupsize = BTreeTupleGetPostingOffset(base) if BTreeTupleIsPosting(base) else IndexTupleSize(base)
    state.nitems = 1
    state.base = base
    state.baseoff = baseoff
    state.phystupsize = MAXALIGN(IndexTupleSize(base)) + SizeOfItemIdData
    state.interval(state.nintervals)[0] = baseoff


def _bt_dedup_save_htid(state: BTDedupState, itup: bytes) -> bool:
    """Mirrors _bt_dedup_save_htid (nbtdedup.c): merge itup's TID(s) if they fit."""
    htids = BTreeTupleGetHeapTIDs(itup)
    nhtids = len(htids) // SizeOfItemPointerData
    mergedtupsz = MAXALIGN(state.basetupsize + (state.nhtids + nhtids) * SizeOfItemPointerData)
    if mergedtupsz > state.maxpostingsize:
        if state.nhtids > 50:
            state.nmaxitems += 1
        return False
    state.nitems += 1
    state.htids += htids
    state.nhtids += nhtids
    state.phystupsize += MAXALIGN(IndexTupleSize(itup)) + SizeOfItemIdData
    return True


def _bt_dedup_finish_pending(newpage: bytearray, state: BTDedupState) -> int:
    """Mirrors _bt_dedup_finish_pending (nbtdedup.c): add the pending tuple to
    ``newpage``; returns the space saved."""
    tupoff = PageGetMaxOffsetNumber(newpage) + 1
    if state.nitems == 1:
        # the base tuple, unchanged
        tuplesz = IndexTupleSize(state.base)
        if bufpage.PageAddItem(newpage, state.base[:tuplesz], tupoff) == InvalidOffsetNumber:
            raise RedoError("deduplication failed to add tuple to page")
        spacesaving = 0
    else:
        final = _bt_form_posting(state.base, bytes(state.htids), state.nhtids)
        tuplesz = IndexTupleSize(final)
        state.interval(state.nintervals)[1] = state.nitems
        if bufpage.PageAddItem(newpage, bytes(final[:tuplesz]), tupoff) == InvalidOffsetNumber:
            raise RedoError("deduplication failed to add tuple to page")
        spacesaving = state.phystupsize - (tuplesz + SizeOfItemIdData)
        state.nintervals += 1
    state.nhtids = 0
    state.htids = bytearray()
    state.nitems = 0
    state.phystupsize = 0
    return spacesaving


def btree_xlog_dedup(ctx: RedoContext) -> None:
    """Mirrors btree_xlog_dedup (nbtxlog.c): repeat the deduplication pass the
    record's intervals describe, on a temp page."""
    (nintervals,) = ctx.main_struct(XL_BTREE_DEDUP, "xl_btree_dedup")
    page = ctx.read_buffer_for_redo(0)
    if page is None:
        return
    ptr = ctx.block_data(0)
    ptr.need(nintervals * BT_DEDUP_INTERVAL.size, f"{nintervals} dedup intervals")
    intervals = [ptr.unpack(BT_DEDUP_INTERVAL, "BTDedupInterval") for _ in range(nintervals)]

    # redo uses a larger maxpostingsize than the primary did, conservatively
    state = BTDedupState(maxpostingsize=BTMaxItemSize)
    origpage = bytes(page)
    opaque = BTPageGetOpaque(page)
    minoff = P_FIRSTDATAKEY(opaque)
    maxoff = PageGetMaxOffsetNumber(origpage)
    if maxoff < minoff:  # C would form a posting list from a NULL base tuple
        raise ctx.error("deduplication of a page without data items", block_id=0)
    newpage = PageGetTempPageCopySpecial(origpage)

    if not P_RIGHTMOST(opaque):
        lp_off, lp_len = _item_at(ctx, origpage, P_HIKEY, 0)
        _page_add_item(ctx, newpage, origpage[lp_off : lp_off + lp_len], P_HIKEY,
                       "deduplication failed to add highkey", 0)

    for offnum in range(minoff, maxoff + 1):
        _off, itup = _index_tuple(ctx, origpage, offnum, 0)
        if offnum == minoff:
            _bt_dedup_start_pending(state, itup, offnum)
        elif (state.nintervals < nintervals
              and state.baseoff == intervals[state.nintervals][0]
              and state.nitems < intervals[state.nintervals][1]):
            if not _bt_dedup_save_htid(state, itup):
                raise ctx.error("deduplication failed to add heap tid to pending posting list",
                                block_id=0)
        else:
            _bt_dedup_finish_pending(newpage, state)
            _bt_dedup_start_pending(state, itup, offnum)
    _bt_dedup_finish_pending(newpage, state)

    if P_HAS_GARBAGE(opaque):
        nopaque = BTPageGetOpaque(newpage)
        nopaque.btpo_flags &= ~BTP_HAS_GARBAGE
    PageRestoreTempPage(newpage, page)


# -- VACUUM / DELETE ------------------------------------------------------------------------
def _parse_item_changes(ctx: RedoContext, ndeleted: int, nupdated: int
                        ) -> tuple[list[int], list[int], list[list[int]]]:
    """Block 0 data of VACUUM/DELETE: deleted offsets, updated offsets, then one
    xl_btree_update (ndeletedtids + posting-list positions) per updated tuple."""
    ptr = ctx.block_data(0)
    ptr.need((ndeleted + nupdated) * _U16.size, f"{ndeleted} deleted and {nupdated} updated offsets")
    deleted = ptr.u16_array(ndeleted, "deleted offsets")
    updatedoffsets = ptr.u16_array(nupdated, "updated offsets")
    updates: list[list[int]] = []
    for _ in range(nupdated):
        (ndeletedtids,) = ptr.unpack(XL_BTREE_UPDATE, "xl_btree_update")
        updates.append(ptr.u16_array(ndeletedtids, f"xl_btree_update with {ndeletedtids} TID offsets"))
    return deleted, updatedoffsets, updates


def btree_xlog_updates(ctx: RedoContext, page: bytearray, updatedoffsets: list[int],
                       updates: list[list[int]]) -> None:
    """Mirrors btree_xlog_updates (nbtxlog.c): replace posting lists that lose some TIDs."""
    for updatedoffset, deletetids in zip(updatedoffsets, updates, strict=True):
        _off, origtuple = _index_tuple(ctx, page, updatedoffset, 0)
        itup = _bt_update_posting(origtuple, deletetids)
        itemsz = MAXALIGN(IndexTupleSize(itup))
        if not PageIndexTupleOverwrite(page, updatedoffset, bytes(itup[:itemsz])):
            raise ctx.error("failed to update partially dead item", block_id=0)


def _delete_items(ctx: RedoContext, page: bytearray, ndeleted: int, nupdated: int, *,
                  PageIndexMultiDelete: MultiDelete = PageIndexMultiDelete,
                  ) -> None:
    """The common body of btree_xlog_vacuum and btree_xlog_delete: updates first,
    then deletes, then the page no longer has LP_DEAD items."""
    deleted, updatedoffsets, updates = _parse_item_changes(ctx, ndeleted, nupdated)
    if nupdated > 0:
        btree_xlog_updates(ctx, page, updatedoffsets, updates)
    if ndeleted > 0:
        PageIndexMultiDelete(page, deleted)
    opaque = BTPageGetOpaque(page)
    opaque.btpo_flags &= ~BTP_HAS_GARBAGE


def btree_xlog_vacuum(
    ctx: RedoContext, *,
    PageIndexMultiDelete: MultiDelete = PageIndexMultiDelete,
) -> None:
    """Mirrors btree_xlog_vacuum (nbtxlog.c) of 15, 16 and 17: btpo_cycleid is kept."""
    ndeleted, nupdated = ctx.main_struct(XL_BTREE_VACUUM, "xl_btree_vacuum")
    page = ctx.read_buffer_for_redo(0, get_cleanup_lock=True)
    if page is not None:
        _delete_items(ctx, page, ndeleted, nupdated, PageIndexMultiDelete=PageIndexMultiDelete)


def btree_xlog_vacuum_18(
    ctx: RedoContext, *,
    PageIndexMultiDelete: MultiDelete = PageIndexMultiDelete,
) -> None:
    """Mirrors btree_xlog_vacuum (nbtxlog.c) of 18: as before, and the vacuum cycle ID
    is cleared too (18's _bt_delitems_vacuum clears it on the primary)."""
    ndeleted, nupdated = ctx.main_struct(XL_BTREE_VACUUM, "xl_btree_vacuum")
    page = ctx.read_buffer_for_redo(0, get_cleanup_lock=True)
    if page is not None:
        _delete_items(ctx, page, ndeleted, nupdated, PageIndexMultiDelete=PageIndexMultiDelete)
        BTPageGetOpaque(page).btpo_cycleid = 0


def btree_xlog_delete(
    ctx: RedoContext, *,
    PageIndexMultiDelete: MultiDelete = PageIndexMultiDelete,
) -> None:
    """Mirrors btree_xlog_delete (nbtxlog.c) of 15-18. 16 renames latestRemovedXid to
    snapshotConflictHorizon and appends isCatalogRel (SizeOfBtreeDelete 8 -> 9): both
    only matter to hot standby conflicts, and ndeleted/nupdated keep their offsets."""
    _xid, ndeleted, nupdated = ctx.main_struct(XL_BTREE_DELETE, "xl_btree_delete")
    page = ctx.read_buffer_for_redo(0)
    if page is not None:
        _delete_items(ctx, page, ndeleted, nupdated, PageIndexMultiDelete=PageIndexMultiDelete)


# -- page deletion ---------------------------------------------------------------------------
def _init_half_dead_leaf(page: bytearray, leftsib: int, rightsib: int, topparent: int,
                         ctx: RedoContext, block_id: int) -> None:
    """Rebuild an empty half-dead leaf whose dummy high key links to its top parent."""
    _bt_pageinit(page)
    opaque = BTPageGetOpaque(page)
    opaque.btpo_prev = leftsib
    opaque.btpo_next = rightsib
    opaque.btpo_level = 0
    opaque.btpo_flags = BTP_HALF_DEAD | BTP_LEAF
    opaque.btpo_cycleid = 0
    _page_add_item(ctx, page, dummy_hikey(topparent), P_HIKEY,
                   "could not add dummy high key to half-dead page", block_id)


def btree_xlog_mark_page_halfdead(ctx: RedoContext) -> None:
    """Mirrors btree_xlog_mark_page_halfdead (nbtxlog.c)."""
    poffset, _leafblk, leftblk, rightblk, topparent = ctx.main_struct(XL_BTREE_MARK_PAGE_HALFDEAD, "xl_btree_mark_page_halfdead")

    # the subtree's parent: poffset's downlink takes the next tuple's, which goes
    page = ctx.read_buffer_for_redo(1)
    if page is not None:
        nextoffset = (poffset + 1) & 0xFFFF
        next_off, _tup = _index_tuple(ctx, page, nextoffset, 1)
        rightsib = BTreeTupleGetDownLink(page, next_off)
        p_off, _tup = _index_tuple(ctx, page, poffset, 1)
        BTreeTupleSetDownLink(page, p_off, rightsib)
        PageIndexTupleDelete(page, nextoffset)

    page = _init_buffer(ctx, 0)
    if page is not None:
        _init_half_dead_leaf(page, leftblk, rightblk, topparent, ctx, 0)


def btree_xlog_unlink_page(ctx: RedoContext, info: int) -> None:
    """Mirrors btree_xlog_unlink_page (nbtxlog.c)."""
    (leftsib, rightsib, level, safexid, leafleftsib, leafrightsib,
     leaftopparent) = ctx.main_struct(XL_BTREE_UNLINK_PAGE, "xl_btree_unlink_page", size=SizeOfBtreeUnlinkPage)
    isleaf = level == 0

    # the left sibling's right-link skips the target
    if leftsib != P_NONE:
        page = ctx.read_buffer_for_redo(1)
        if page is not None:
            BTPageGetOpaque(page).btpo_next = rightsib

    # the target becomes an empty deleted page
    page = _init_buffer(ctx, 0)
    if page is not None:
        _bt_pageinit(page)
        opaque = BTPageGetOpaque(page)
        opaque.btpo_prev = leftsib
        opaque.btpo_next = rightsib
        opaque.btpo_level = level
        BTPageSetDeleted(page, safexid)
        if isleaf:
            opaque.btpo_flags |= BTP_LEAF
        opaque.btpo_cycleid = 0

    # the right sibling's left-link skips the target
    page = ctx.read_buffer_for_redo(2)
    if page is not None:
        BTPageGetOpaque(page).btpo_prev = leftsib

    # an internal target: the half-dead leaf now links to the next child down
    if ctx.record.has_block_ref(3):
        page = _init_buffer(ctx, 3)
        if page is not None:
            _init_half_dead_leaf(page, leafleftsib, leafrightsib, leaftopparent, ctx, 3)

    if info == XLOG_BTREE_UNLINK_PAGE_META:
        _bt_restore_meta(ctx, 4)


def btree_xlog_unlink_page_plain(ctx: RedoContext) -> None:
    """Mirrors btree_xlog_unlink_page(XLOG_BTREE_UNLINK_PAGE) (nbtxlog.c)."""
    btree_xlog_unlink_page(ctx, XLOG_BTREE_UNLINK_PAGE)


def btree_xlog_unlink_page_meta(ctx: RedoContext) -> None:
    """Mirrors btree_xlog_unlink_page(XLOG_BTREE_UNLINK_PAGE_META) (nbtxlog.c)."""
    btree_xlog_unlink_page(ctx, XLOG_BTREE_UNLINK_PAGE_META)


# -- NEWROOT / REUSE_PAGE / META_CLEANUP ----------------------------------------------------
def btree_xlog_newroot(ctx: RedoContext) -> None:
    """Mirrors btree_xlog_newroot (nbtxlog.c)."""
    _rootblk, level = ctx.main_struct(XL_BTREE_NEWROOT, "xl_btree_newroot")
    page = _init_buffer(ctx, 0)
    if page is not None:
        _bt_pageinit(page)
        opaque = BTPageGetOpaque(page)
        opaque.btpo_flags = BTP_ROOT
        opaque.btpo_prev = P_NONE
        opaque.btpo_next = P_NONE
        opaque.btpo_level = level
        if level == 0:
            opaque.btpo_flags |= BTP_LEAF
        opaque.btpo_cycleid = 0
        if level > 0:
            _bt_restore_page(ctx, page, ctx.block_data(0).rest(), 0)
    if level > 0:
        # the old root (left child) had its split finished by the new root
        _bt_clear_incomplete_split(ctx, 1)
    _bt_restore_meta(ctx, 2)


def btree_xlog_reuse_page(ctx: RedoContext) -> None:
    """Mirrors btree_xlog_reuse_page (nbtxlog.c) of 15-18: only a recovery-conflict point
    for hot standby (16 appends isCatalogRel); it names no block and changes no page."""


def btree_xlog_meta_cleanup(ctx: RedoContext) -> None:
    """Mirrors btree_redo's XLOG_BTREE_META_CLEANUP case (nbtxlog.c): _bt_restore_meta(record, 0)."""
    _bt_restore_meta(ctx, 0)


# -- pg_waldump's description (nbtdesc.c, in nbtdesc.py) -----------------------------------
desc = btree_desc  # rm_desc of 15; DESC_SINCE below for 16+


REDO: dict[int, RedoFn] = {
    XLOG_BTREE_INSERT_LEAF: btree_xlog_insert_leaf,
    XLOG_BTREE_INSERT_UPPER: btree_xlog_insert_upper,
    XLOG_BTREE_INSERT_META: btree_xlog_insert_meta,
    XLOG_BTREE_SPLIT_L: btree_xlog_split_l,
    XLOG_BTREE_SPLIT_R: btree_xlog_split_r,
    XLOG_BTREE_INSERT_POST: btree_xlog_insert_post,
    XLOG_BTREE_DEDUP: btree_xlog_dedup,
    XLOG_BTREE_DELETE: btree_xlog_delete,
    XLOG_BTREE_UNLINK_PAGE: btree_xlog_unlink_page_plain,
    XLOG_BTREE_UNLINK_PAGE_META: btree_xlog_unlink_page_meta,
    XLOG_BTREE_NEWROOT: btree_xlog_newroot,
    XLOG_BTREE_MARK_PAGE_HALFDEAD: btree_xlog_mark_page_halfdead,
    XLOG_BTREE_VACUUM: btree_xlog_vacuum,
    XLOG_BTREE_REUSE_PAGE: btree_xlog_reuse_page,
    XLOG_BTREE_META_CLEANUP: btree_xlog_meta_cleanup,
}

# nbtxlog.c of 16 and 17 changes only hot-standby conflict arguments (isCatalogRel) and
# btree_mask is the same in 15-18; 18's btree_xlog_vacuum also clears btpo_cycleid
MAJORS: tuple[int, ...] = (15, 16, 17, 18)
REDO_SINCE: dict[int, dict[int, RedoFn | None]] = {
    18: {XLOG_BTREE_VACUUM: btree_xlog_vacuum_18},
}
# nbtdesc.c: 16 prints key: value pairs and the VACUUM/DELETE offset arrays, 17 adds isCatalogRel
DESC_SINCE = {16: btree_desc_16, 17: btree_desc_17}
