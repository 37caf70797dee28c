"""B-tree page layout (nbtree.h, itup.h) and the posting-list tuple helpers redo uses.

Pages and tuples are ``bytearray``; the helpers read and write them in place
at a byte offset, the way the C macros work on pointers. Layout constants and
function names are the C ones, so this reads side by side with nbtree.h.

The posting-list builders ``_bt_form_posting``, ``_bt_update_posting`` and
``_bt_swap_posting`` mirror nbtdedup.c; like C they palloc0 a new tuple, so
their padding bytes are zeros.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pyredo import BLCKSZ
from pyredo.page.bufpage import (
    MAXALIGN,
    PageCorrupted,
    PageGetContents,
    PageInit,
    SizeOfItemIdData,
    SizeOfPageHeaderData,
    pd_special,
    set_pd_lower,
    set_pd_upper,
)

# -- itup.h ------------------------------------------------------------------------
SizeOfItemPointerData = 6
SizeOfIndexTupleData = 8  # t_tid (ItemPointerData) + t_info
OFF_T_INFO = 6
INDEX_SIZE_MASK = 0x1FFF
INDEX_AM_RESERVED_BIT = 0x2000
INDEX_VAR_MASK = 0x4000
INDEX_NULL_MASK = 0x8000

# -- nbtree.h: BTPageOpaqueData.btpo_flags -----------------------------------------
BTP_LEAF = 1 << 0
BTP_ROOT = 1 << 1
BTP_DELETED = 1 << 2
BTP_META = 1 << 3
BTP_HALF_DEAD = 1 << 4
BTP_SPLIT_END = 1 << 5
BTP_HAS_GARBAGE = 1 << 6
BTP_INCOMPLETE_SPLIT = 1 << 7
BTP_HAS_FULLXID = 1 << 8
MAX_BT_CYCLE_ID = 0xFF7F

# -- nbtree.h: metapage, page numbers, item numbers -------------------------------
BTREE_METAPAGE = 0
BTREE_MAGIC = 0x053162
BTREE_VERSION = 4
BTREE_MIN_VERSION = 2
BTREE_NOVAC_VERSION = 3
P_NONE = 0
P_HIKEY = 1
P_FIRSTKEY = 2

# -- nbtree.h: pivot / posting tuple representation --------------------------------
INDEX_ALT_TID_MASK = INDEX_AM_RESERVED_BIT
BT_OFFSET_MASK = 0x0FFF
BT_STATUS_OFFSET_MASK = 0xF000
BT_PIVOT_HEAP_TID_ATTR = 0x1000
BT_IS_POSTING = 0x2000

# BTPageOpaqueData: btpo_prev, btpo_next, btpo_level, btpo_flags, btpo_cycleid
_BT_OPAQUE = struct.Struct("<IIIHH")
SizeOfBTPageOpaqueData = _BT_OPAQUE.size  # 16

# BTMetaPageData: magic, version, root, level, fastroot, fastlevel,
# last_cleanup_num_delpages, (4 bytes padding), float8
# last_cleanup_num_heap_tuples, bool allequalimage (its byte, as C copies
# it), (7 bytes padding)
_BT_META = struct.Struct("<7I4xdB7x")
SizeOfBTMetaPageData = _BT_META.size  # 48

# BTDeletedPageData: FullTransactionId safexid
_BT_DELETED = struct.Struct("<Q")
SizeOfBTDeletedPageData = _BT_DELETED.size  # 8

_U16 = struct.Struct("<H")
_ITEMPOINTER = struct.Struct("<HHH")  # bi_hi, bi_lo, ip_posid

# BTMaxItemSize(page): a third of a page less header, three line pointers and
# three heap TIDs, and the special space
BTMaxItemSize = (
    (BLCKSZ - MAXALIGN(SizeOfPageHeaderData + 3 * SizeOfItemIdData + 3 * SizeOfItemPointerData)
     - MAXALIGN(SizeOfBTPageOpaqueData)) // 3
) & ~7


class BtreeTupleError(PageCorrupted):
    """An index tuple is inconsistent with what the operation on it needs."""


# -- BTPageOpaqueData ----------------------------------------------------------------
class BTPageOpaque:
    """BTPageGetOpaque(page): a view of the special space; writes go to the page."""

    __slots__ = ("off", "page")

    def __init__(self, page: bytearray, off: int) -> None:
        if off + SizeOfBTPageOpaqueData > len(page):
            raise PageCorrupted(f"btree special space at {off} runs past the page end")
        self.page = page
        self.off = off

    def _get(self, i: int) -> int:
        return int(_BT_OPAQUE.unpack_from(self.page, self.off)[i])

    def _set(self, i: int, value: int) -> None:
        fields = list(_BT_OPAQUE.unpack_from(self.page, self.off))
        fields[i] = value
        _BT_OPAQUE.pack_into(self.page, self.off, *fields)

    @property
    def btpo_prev(self) -> int:
        return self._get(0)

    @btpo_prev.setter
    def btpo_prev(self, v: int) -> None:
        self._set(0, v)

    @property
    def btpo_next(self) -> int:
        return self._get(1)

    @btpo_next.setter
    def btpo_next(self, v: int) -> None:
        self._set(1, v)

    @property
    def btpo_level(self) -> int:
        return self._get(2)

    @btpo_level.setter
    def btpo_level(self, v: int) -> None:
        self._set(2, v)

    @property
    def btpo_flags(self) -> int:
        return self._get(3)

    @btpo_flags.setter
    def btpo_flags(self, v: int) -> None:
        self._set(3, v & 0xFFFF)

    @property
    def btpo_cycleid(self) -> int:
        return self._get(4)

    @btpo_cycleid.setter
    def btpo_cycleid(self, v: int) -> None:
        self._set(4, v)


def BTPageGetOpaque(page: bytearray) -> BTPageOpaque:
    return BTPageOpaque(page, pd_special(page))


def P_LEFTMOST(opaque: BTPageOpaque) -> bool:
    return opaque.btpo_prev == P_NONE


def P_RIGHTMOST(opaque: BTPageOpaque) -> bool:
    return opaque.btpo_next == P_NONE


def P_ISLEAF(opaque: BTPageOpaque) -> bool:
    return bool(opaque.btpo_flags & BTP_LEAF)


def P_ISROOT(opaque: BTPageOpaque) -> bool:
    return bool(opaque.btpo_flags & BTP_ROOT)


def P_ISDELETED(opaque: BTPageOpaque) -> bool:
    return bool(opaque.btpo_flags & BTP_DELETED)


def P_ISHALFDEAD(opaque: BTPageOpaque) -> bool:
    return bool(opaque.btpo_flags & BTP_HALF_DEAD)


def P_HAS_GARBAGE(opaque: BTPageOpaque) -> bool:
    return bool(opaque.btpo_flags & BTP_HAS_GARBAGE)


def P_INCOMPLETE_SPLIT(opaque: BTPageOpaque) -> bool:
    return bool(opaque.btpo_flags & BTP_INCOMPLETE_SPLIT)


def P_HAS_FULLXID(opaque: BTPageOpaque) -> bool:
    return bool(opaque.btpo_flags & BTP_HAS_FULLXID)


def P_FIRSTDATAKEY(opaque: BTPageOpaque) -> int:
    return P_HIKEY if P_RIGHTMOST(opaque) else P_FIRSTKEY


def _bt_pageinit(page: bytearray, size: int = BLCKSZ) -> None:
    """Mirrors _bt_pageinit (nbtpage.c): PageInit with room for BTPageOpaqueData."""
    PageInit(page, size, SizeOfBTPageOpaqueData)


# -- BTMetaPageData ----------------------------------------------------------------
@dataclass
class BTMetaPageData:
    btm_magic: int
    btm_version: int
    btm_root: int
    btm_level: int
    btm_fastroot: int
    btm_fastlevel: int
    btm_last_cleanup_num_delpages: int
    btm_last_cleanup_num_heap_tuples: float
    btm_allequalimage: int

    def pack_into(self, page: bytearray, off: int) -> None:
        _BT_META.pack_into(page, off, self.btm_magic, self.btm_version, self.btm_root,
                           self.btm_level, self.btm_fastroot, self.btm_fastlevel,
                           self.btm_last_cleanup_num_delpages,
                           self.btm_last_cleanup_num_heap_tuples, self.btm_allequalimage)

    @classmethod
    def unpack_from(cls, page: bytes | bytearray, off: int) -> BTMetaPageData:
        return cls(*_BT_META.unpack_from(page, off))


def BTPageGetMeta(page: bytes | bytearray) -> BTMetaPageData:
    """BTPageGetMeta: the metapage contents (a copy; write back with BTPageSetMeta)."""
    return BTMetaPageData.unpack_from(page, PageGetContents(page))


def BTPageSetMeta(page: bytearray, md: BTMetaPageData) -> None:
    md.pack_into(page, PageGetContents(page))


# -- deleted pages -----------------------------------------------------------------
def BTPageSetDeleted(page: bytearray, safexid: int) -> None:
    """Mirrors BTPageSetDeleted (nbtree.h): flags, pd_lower/pd_upper, safexid."""
    opaque = BTPageGetOpaque(page)
    opaque.btpo_flags = (opaque.btpo_flags & ~BTP_HALF_DEAD) | BTP_DELETED | BTP_HAS_FULLXID
    set_pd_lower(page, MAXALIGN(SizeOfPageHeaderData) + SizeOfBTDeletedPageData)
    set_pd_upper(page, pd_special(page))
    _BT_DELETED.pack_into(page, PageGetContents(page), safexid)


def BTPageGetDeleteXid(page: bytes | bytearray) -> int:
    return int(_BT_DELETED.unpack_from(page, PageGetContents(page))[0])


# -- ItemPointerData ----------------------------------------------------------------
def ItemPointerGetBlockNumberNoCheck(buf: bytes | bytearray | memoryview, off: int = 0) -> int:
    hi, lo, _pos = _ITEMPOINTER.unpack_from(buf, off)
    return (hi << 16) | lo


def ItemPointerGetOffsetNumberNoCheck(buf: bytes | bytearray | memoryview, off: int = 0) -> int:
    return int(_ITEMPOINTER.unpack_from(buf, off)[2])


def ItemPointerSetBlockNumber(buf: bytearray, off: int, blkno: int) -> None:
    _U16.pack_into(buf, off, (blkno >> 16) & 0xFFFF)
    _U16.pack_into(buf, off + 2, blkno & 0xFFFF)


def ItemPointerSetOffsetNumber(buf: bytearray, off: int, offnum: int) -> None:
    _U16.pack_into(buf, off + 4, offnum & 0xFFFF)


# -- IndexTupleData (t_tid at 0, t_info at 6) ---------------------------------------
def IndexTupleGetInfo(tup: bytes | bytearray | memoryview, off: int = 0) -> int:
    return int(_U16.unpack_from(tup, off + OFF_T_INFO)[0])


def IndexTupleSetInfo(tup: bytearray, off: int, t_info: int) -> None:
    _U16.pack_into(tup, off + OFF_T_INFO, t_info & 0xFFFF)


def IndexTupleSize(tup: bytes | bytearray | memoryview, off: int = 0) -> int:
    return IndexTupleGetInfo(tup, off) & INDEX_SIZE_MASK


def BTreeTupleIsPivot(tup: bytes | bytearray | memoryview, off: int = 0) -> bool:
    if not IndexTupleGetInfo(tup, off) & INDEX_ALT_TID_MASK:
        return False
    return not ItemPointerGetOffsetNumberNoCheck(tup, off) & BT_IS_POSTING


def BTreeTupleIsPosting(tup: bytes | bytearray | memoryview, off: int = 0) -> bool:
    if not IndexTupleGetInfo(tup, off) & INDEX_ALT_TID_MASK:
        return False
    return bool(ItemPointerGetOffsetNumberNoCheck(tup, off) & BT_IS_POSTING)


def BTreeTupleGetNPosting(tup: bytes | bytearray | memoryview, off: int = 0) -> int:
    return ItemPointerGetOffsetNumberNoCheck(tup, off) & BT_OFFSET_MASK


def BTreeTupleGetPostingOffset(tup: bytes | bytearray | memoryview, off: int = 0) -> int:
    return ItemPointerGetBlockNumberNoCheck(tup, off)


def BTreeTupleSetPosting(tup: bytearray, nhtids: int, postingoffset: int) -> None:
    IndexTupleSetInfo(tup, 0, IndexTupleGetInfo(tup) | INDEX_ALT_TID_MASK)
    ItemPointerSetOffsetNumber(tup, 0, nhtids | BT_IS_POSTING)
    ItemPointerSetBlockNumber(tup, 0, postingoffset)


def BTreeTupleGetDownLink(tup: bytes | bytearray | memoryview, off: int = 0) -> int:
    return ItemPointerGetBlockNumberNoCheck(tup, off)


def BTreeTupleSetDownLink(tup: bytearray, off: int, blkno: int) -> None:
    ItemPointerSetBlockNumber(tup, off, blkno)


def BTreeTupleSetNAtts(tup: bytearray, off: int, nkeyatts: int, heaptid: bool) -> None:
    IndexTupleSetInfo(tup, off, IndexTupleGetInfo(tup, off) | INDEX_ALT_TID_MASK)
    if heaptid:
        nkeyatts |= BT_PIVOT_HEAP_TID_ATTR
    ItemPointerSetOffsetNumber(tup, off, nkeyatts)


def BTreeTupleGetTopParent(tup: bytes | bytearray | memoryview, off: int = 0) -> int:
    return ItemPointerGetBlockNumberNoCheck(tup, off)


def BTreeTupleSetTopParent(tup: bytearray, off: int, blkno: int) -> None:
    ItemPointerSetBlockNumber(tup, off, blkno)
    BTreeTupleSetNAtts(tup, off, 0, False)


def dummy_hikey(topparent: int) -> bytes:
    """The zeroed IndexTupleData that half-dead pages keep as high key, with
    t_info = sizeof(IndexTupleData) and a top-parent link (nbtxlog.c trunctuple)."""
    tup = bytearray(SizeOfIndexTupleData)
    IndexTupleSetInfo(tup, 0, SizeOfIndexTupleData)
    BTreeTupleSetTopParent(tup, 0, topparent)
    return bytes(tup)


def _posting_bounds(tup: bytes | bytearray | memoryview, what: str) -> tuple[int, int]:
    """(posting offset, number of TIDs) of a posting tuple, checked against its size."""
    if not BTreeTupleIsPosting(tup):
        raise BtreeTupleError(f"{what}: tuple is not a posting list tuple")
    postingoff = BTreeTupleGetPostingOffset(tup)
    nhtids = BTreeTupleGetNPosting(tup)
    if postingoff < SizeOfIndexTupleData or postingoff + nhtids * SizeOfItemPointerData > len(tup):
        raise BtreeTupleError(
            f"{what}: posting list of {nhtids} TIDs at {postingoff} does not fit in a "
            f"{len(tup)}-byte tuple")
    return postingoff, nhtids


def BTreeTupleGetPosting(tup: bytes | bytearray | memoryview) -> bytes:
    """The posting list's TIDs, as ``nhtids`` 6-byte ItemPointerData."""
    start, n = _posting_bounds(tup, "BTreeTupleGetPosting")
    return bytes(tup[start : start + n * SizeOfItemPointerData])


def BTreeTupleGetHeapTIDs(tup: bytes | bytearray | memoryview) -> bytes:
    """The heap TID(s) of a non-pivot tuple: its posting list, or its t_tid."""
    if BTreeTupleIsPosting(tup):
        return BTreeTupleGetPosting(tup)
    return bytes(tup[0:SizeOfItemPointerData])


# -- nbtdedup.c: posting list tuples ------------------------------------------------
def _bt_form_posting(base: bytes | bytearray | memoryview, htids: bytes, nhtids: int) -> bytearray:
    """Mirrors _bt_form_posting (nbtdedup.c): ``base``'s key with ``htids``
    (``nhtids`` TIDs) as its posting list, or as its t_tid when there is one."""
    keysize = BTreeTupleGetPostingOffset(base) if BTreeTupleIsPosting(base) else IndexTupleSize(base)
    if keysize > len(base) or keysize < SizeOfIndexTupleData:
        raise BtreeTupleError(f"_bt_form_posting: key size {keysize} of a {len(base)}-byte base tuple")
    if not 0 < nhtids <= 0xFFFF or len(htids) < nhtids * SizeOfItemPointerData:
        raise BtreeTupleError(f"_bt_form_posting: {nhtids} heap TIDs")
    newsize = MAXALIGN(keysize + nhtids * SizeOfItemPointerData) if nhtids > 1 else keysize
    if newsize > INDEX_SIZE_MASK:
        raise BtreeTupleError(f"_bt_form_posting: new tuple of {newsize} bytes is too large")
    itup = bytearray(newsize)  # palloc0
    itup[:keysize] = base[:keysize]
    IndexTupleSetInfo(itup, 0, (IndexTupleGetInfo(itup) & ~INDEX_SIZE_MASK) | newsize)
    if nhtids > 1:
        BTreeTupleSetPosting(itup, nhtids, keysize)
        itup[keysize : keysize + nhtids * SizeOfItemPointerData] = htids[: nhtids * SizeOfItemPointerData]
    else:
        IndexTupleSetInfo(itup, 0, IndexTupleGetInfo(itup) & ~INDEX_ALT_TID_MASK)
        itup[0:SizeOfItemPointerData] = htids[0:SizeOfItemPointerData]
    return itup


def _bt_update_posting(origtuple: bytes | bytearray | memoryview, deletetids: list[int]) -> bytearray:
    """Mirrors _bt_update_posting (nbtdedup.c): ``origtuple`` without the TIDs
    at the (ascending, 0-based) posting-list positions ``deletetids``."""
    keysize, norig = _posting_bounds(origtuple, "_bt_update_posting")
    nhtids = norig - len(deletetids)
    if not 0 < nhtids < norig:
        raise BtreeTupleError(
            f"_bt_update_posting: deleting {len(deletetids)} of {norig} TIDs of a posting list")
    newsize = MAXALIGN(keysize + nhtids * SizeOfItemPointerData) if nhtids > 1 else keysize
    if newsize > INDEX_SIZE_MASK:
        raise BtreeTupleError(f"_bt_update_posting: new tuple of {newsize} bytes is too large")
    itup = bytearray(newsize)  # palloc0
    itup[:keysize] = origtuple[:keysize]
    IndexTupleSetInfo(itup, 0, (IndexTupleGetInfo(itup) & ~INDEX_SIZE_MASK) | newsize)
    if nhtids > 1:
        BTreeTupleSetPosting(itup, nhtids, keysize)
        htids_at = keysize
    else:
        IndexTupleSetInfo(itup, 0, IndexTupleGetInfo(itup) & ~INDEX_ALT_TID_MASK)
        htids_at = 0  # the single remaining TID goes to t_tid
    ui = d = 0
    for i in range(norig):
        if d < len(deletetids) and deletetids[d] == i:
            d += 1
            continue
        if ui >= nhtids:  # deletetids not ascending: C would write past the tuple
            raise BtreeTupleError("_bt_update_posting: deleted TID offsets are not in ascending order")
        src = keysize + i * SizeOfItemPointerData
        dst = htids_at + ui * SizeOfItemPointerData
        itup[dst : dst + SizeOfItemPointerData] = origtuple[src : src + SizeOfItemPointerData]
        ui += 1
    return itup


def _bt_swap_posting(newitem: bytearray, oposting: bytes | bytearray | memoryview, postingoff: int) -> bytearray:
    """Mirrors _bt_swap_posting (nbtdedup.c): returns the new posting list (same
    size as ``oposting``) with newitem's TID at ``postingoff``; ``newitem`` gets
    oposting's old maximum TID, in place."""
    start, nhtids = _posting_bounds(oposting, "_bt_swap_posting")
    if not 0 < postingoff < nhtids:
        raise BtreeTupleError(
            f"posting list tuple with {nhtids} items cannot be split at offset {postingoff}")
    if len(newitem) < SizeOfIndexTupleData:
        raise BtreeTupleError(f"_bt_swap_posting: new item of {len(newitem)} bytes")
    nposting = bytearray(oposting[: IndexTupleSize(oposting)])  # CopyIndexTuple
    replacepos = start + postingoff * SizeOfItemPointerData
    nmovebytes = (nhtids - postingoff - 1) * SizeOfItemPointerData
    nposting[replacepos + SizeOfItemPointerData : replacepos + SizeOfItemPointerData + nmovebytes] = (
        nposting[replacepos : replacepos + nmovebytes])
    nposting[replacepos : replacepos + SizeOfItemPointerData] = newitem[0:SizeOfItemPointerData]
    maxtid = start + (nhtids - 1) * SizeOfItemPointerData
    newitem[0:SizeOfItemPointerData] = oposting[maxtid : maxtid + SizeOfItemPointerData]
    return nposting
