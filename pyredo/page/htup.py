"""Heap tuple headers on a page (htup_details.h, itemptr.h, transam.h).

A ``HeapTupleHeader`` is a view of the 23-byte header of the tuple that
starts at byte ``off`` of a page (a bytearray): reading or assigning a field
reads or writes the page, as the C macros do through a pointer. Constants
keep their C names.
"""

from __future__ import annotations

import struct

# -- transam.h / c.h -------------------------------------------------------------
InvalidTransactionId = 0
BootstrapTransactionId = 1
FrozenTransactionId = 2
FirstNormalTransactionId = 3
FirstCommandId = 0
InvalidBlockNumber = 0xFFFFFFFF

# -- itemptr.h -------------------------------------------------------------------
SpecTokenOffsetNumber = 0xFFFE
MovedPartitionsOffsetNumber = 0xFFFD
MovedPartitionsBlockNumber = InvalidBlockNumber

# -- htup_details.h: t_infomask ----------------------------------------------------
HEAP_HASNULL = 0x0001
HEAP_HASVARWIDTH = 0x0002
HEAP_HASEXTERNAL = 0x0004
HEAP_HASOID_OLD = 0x0008
HEAP_XMAX_KEYSHR_LOCK = 0x0010
HEAP_COMBOCID = 0x0020
HEAP_XMAX_EXCL_LOCK = 0x0040
HEAP_XMAX_LOCK_ONLY = 0x0080
HEAP_XMAX_SHR_LOCK = HEAP_XMAX_EXCL_LOCK | HEAP_XMAX_KEYSHR_LOCK
HEAP_LOCK_MASK = HEAP_XMAX_SHR_LOCK | HEAP_XMAX_EXCL_LOCK | HEAP_XMAX_KEYSHR_LOCK
HEAP_XMIN_COMMITTED = 0x0100
HEAP_XMIN_INVALID = 0x0200
HEAP_XMIN_FROZEN = HEAP_XMIN_COMMITTED | HEAP_XMIN_INVALID
HEAP_XMAX_COMMITTED = 0x0400
HEAP_XMAX_INVALID = 0x0800
HEAP_XMAX_IS_MULTI = 0x1000
HEAP_UPDATED = 0x2000
HEAP_MOVED_OFF = 0x4000
HEAP_MOVED_IN = 0x8000
HEAP_MOVED = HEAP_MOVED_OFF | HEAP_MOVED_IN
HEAP_XACT_MASK = 0xFFF0
HEAP_XMAX_BITS = (
    HEAP_XMAX_COMMITTED | HEAP_XMAX_INVALID | HEAP_XMAX_IS_MULTI | HEAP_LOCK_MASK | HEAP_XMAX_LOCK_ONLY
)

# -- htup_details.h: t_infomask2 ---------------------------------------------------
HEAP_NATTS_MASK = 0x07FF
HEAP_KEYS_UPDATED = 0x2000
HEAP_HOT_UPDATED = 0x4000
HEAP_ONLY_TUPLE = 0x8000
HEAP2_XACT_MASK = 0xE000

# -- HeapTupleHeaderData layout ----------------------------------------------------
T_XMIN = 0
T_XMAX = 4
T_CID = 8  # t_field3: t_cid, or t_xvac for pre-9.0 VACUUM FULL moves
T_XVAC = 8
T_CTID = 12  # ItemPointerData: bi_hi, bi_lo, ip_posid
T_INFOMASK2 = 18
T_INFOMASK = 20
T_HOFF = 22
SizeofHeapTupleHeader = 23

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_ITEMPOINTER = struct.Struct("<HHH")


def MaxHeapTupleSize(blcksz: int = 8192) -> int:
    """BLCKSZ - MAXALIGN(SizeOfPageHeaderData + sizeof(ItemIdData))."""
    return blcksz - ((24 + 4 + 7) & ~7)


def HEAP_XMAX_IS_LOCKED_ONLY(infomask: int) -> bool:
    return bool(infomask & HEAP_XMAX_LOCK_ONLY) or (
        infomask & (HEAP_XMAX_IS_MULTI | HEAP_LOCK_MASK)
    ) == HEAP_XMAX_EXCL_LOCK


def TransactionIdIsValid(xid: int) -> bool:
    return xid != InvalidTransactionId


def TransactionIdIsNormal(xid: int) -> bool:
    return xid >= FirstNormalTransactionId


def TransactionIdPrecedes(id1: int, id2: int) -> bool:
    """transam.c: modulo-2^32 comparison for normal xids, plain for special ones."""
    if not TransactionIdIsNormal(id1) or not TransactionIdIsNormal(id2):
        return id1 < id2
    diff = (id1 - id2) & 0xFFFFFFFF
    return diff >= 0x80000000  # (int32) (id1 - id2) < 0


def pack_item_pointer(blkno: int, offnum: int) -> bytes:
    """ItemPointerSet: the 6 bytes of an ItemPointerData."""
    return _ITEMPOINTER.pack((blkno >> 16) & 0xFFFF, blkno & 0xFFFF, offnum)


# HeapTupleHeaderData as a whole: t_xmin, t_xmax, t_cid, t_ctid (bi_hi, bi_lo,
# ip_posid), t_infomask2, t_infomask, t_hoff (offsets T_XMIN .. T_HOFF)
_TUPLE_HEADER = struct.Struct("<IIIHHHHHB")


def new_tuple_header(t_infomask2: int, t_infomask: int, t_hoff: int, xmin: int,
                     ctid_blk: int, ctid_off: int, xmax: int = 0) -> bytes:
    """The header redo builds for a tuple it re-inserts (heap_xlog_insert and
    friends): zeroed, then xmin set, t_cid = FirstCommandId (HeapTupleHeaderSetCmin,
    which also clears HEAP_COMBOCID), t_ctid pointing at the tuple's own slot."""
    return _TUPLE_HEADER.pack(xmin, xmax, FirstCommandId, (ctid_blk >> 16) & 0xFFFF, ctid_blk & 0xFFFF,
                              ctid_off, t_infomask2, t_infomask & ~HEAP_COMBOCID & 0xFFFF, t_hoff)


class HeapTupleHeader:
    """A HeapTupleHeader pointer: the tuple header at ``page[off:]``."""

    __slots__ = ("off", "page")

    def __init__(self, page: bytearray, off: int) -> None:
        self.page = page
        self.off = off

    def _u16(self, at: int) -> int:
        return _U16.unpack_from(self.page, self.off + at)[0]

    def _u32(self, at: int) -> int:
        return _U32.unpack_from(self.page, self.off + at)[0]

    @property
    def t_xmin(self) -> int:
        return self._u32(T_XMIN)

    @t_xmin.setter
    def t_xmin(self, v: int) -> None:
        _U32.pack_into(self.page, self.off + T_XMIN, v)

    @property
    def t_xmax(self) -> int:
        return self._u32(T_XMAX)

    @t_xmax.setter
    def t_xmax(self, v: int) -> None:
        _U32.pack_into(self.page, self.off + T_XMAX, v)

    @property
    def t_cid(self) -> int:
        return self._u32(T_CID)

    @t_cid.setter
    def t_cid(self, v: int) -> None:
        _U32.pack_into(self.page, self.off + T_CID, v)

    @property
    def t_infomask(self) -> int:
        return self._u16(T_INFOMASK)

    @t_infomask.setter
    def t_infomask(self, v: int) -> None:
        _U16.pack_into(self.page, self.off + T_INFOMASK, v & 0xFFFF)

    @property
    def t_infomask2(self) -> int:
        return self._u16(T_INFOMASK2)

    @t_infomask2.setter
    def t_infomask2(self, v: int) -> None:
        _U16.pack_into(self.page, self.off + T_INFOMASK2, v & 0xFFFF)

    @property
    def t_hoff(self) -> int:
        return self.page[self.off + T_HOFF]

    @property
    def t_ctid(self) -> tuple[int, int]:
        """(block, offset) of t_ctid."""
        hi, lo, pos = _ITEMPOINTER.unpack_from(self.page, self.off + T_CTID)
        return (hi << 16) | lo, pos

    def set_ctid(self, blkno: int, offnum: int) -> None:
        """ItemPointerSet(&htup->t_ctid, blkno, offnum)."""
        at = self.off + T_CTID
        self.page[at : at + 6] = pack_item_pointer(blkno, offnum)

    # -- the htup_details.h macros redo uses -------------------------------------
    def SetXmax(self, xid: int) -> None:
        self.t_xmax = xid

    def SetXmin(self, xid: int) -> None:
        self.t_xmin = xid

    def SetCmax(self, cid: int, iscombo: bool) -> None:
        self.t_cid = cid
        if iscombo:
            self.t_infomask |= HEAP_COMBOCID
        else:
            self.t_infomask &= ~HEAP_COMBOCID

    def SetXvac(self, xid: int) -> None:
        _U32.pack_into(self.page, self.off + T_XVAC, xid)

    def SetHotUpdated(self) -> None:
        self.t_infomask2 |= HEAP_HOT_UPDATED

    def ClearHotUpdated(self) -> None:
        self.t_infomask2 &= ~HEAP_HOT_UPDATED

    def SetMovedPartitions(self) -> None:
        self.set_ctid(MovedPartitionsBlockNumber, MovedPartitionsOffsetNumber)

    def XminFrozen(self) -> bool:
        return (self.t_infomask & HEAP_XMIN_FROZEN) == HEAP_XMIN_FROZEN

    def IsSpeculative(self) -> bool:
        return self.t_ctid[1] == SpecTokenOffsetNumber


def HeapTupleHeaderIsSpeculative(page: bytes | bytearray, off: int) -> bool:
    """t_ctid's offset is the speculative-insertion token marker."""
    return int(_U16.unpack_from(page, off + T_CTID + 4)[0]) == SpecTokenOffsetNumber
