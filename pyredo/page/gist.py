"""GiST page layout (access/gist.h) and the page helpers GiST redo calls (gistutil.c).

The special space of a GiST page is GISTPageOpaqueData (16 bytes):

    nsn (PageGistNSN: xlogid u32, xrecoff u32) | rightlink u32 | flags u16 | gist_page_id u16

A deleted page keeps GISTDeletedPageContents (a FullTransactionId) right
after the page header, with pd_lower pointing past it.

Accessors take the page and work at ``pd_special``, as the C macros work at
PageGetSpecialPointer: on a page whose pd_special is off, they touch the same
bytes C would (callers check what C checks).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from pyredo import BLCKSZ
from pyredo.errors import RedoError
from pyredo.page.bufpage import (
    MAXALIGN,
    InvalidOffsetNumber,
    PageAddItem,
    PageGetContents,
    PageGetMaxOffsetNumber,
    PageInit,
    PageIsEmpty,
    SizeOfPageHeaderData,
    pd_lower,
    pd_special,
    set_pd_lower,
)

# gist.h: GISTPageOpaqueData.flags
F_LEAF = 1 << 0
F_DELETED = 1 << 1
F_TUPLES_DELETED = 1 << 2
F_FOLLOW_RIGHT = 1 << 3
F_HAS_GARBAGE = 1 << 4

GIST_PAGE_ID = 0xFF81
GIST_ROOT_BLKNO = 0
InvalidBlockNumber = 0xFFFFFFFF
GistBuildLSN = 1

# GISTPageOpaqueData: nsn (two u32 halves, as PageXLogRecPtr), rightlink, flags, gist_page_id
GIST_PAGE_OPAQUE = struct.Struct("<IIIHH")
SizeOfGISTPageOpaqueData = GIST_PAGE_OPAQUE.size  # 16
_OFF_NSN = 0
_OFF_RIGHTLINK = 8
_OFF_FLAGS = 12
_OFF_PAGE_ID = 14
_NSN = struct.Struct("<II")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")

# GISTDeletedPageContents: FullTransactionId deleteXid
_DELETE_XID = struct.Struct("<Q")
SizeOfGISTDeletedPageContents = _DELETE_XID.size
FirstNormalTransactionId = 3

# itup.h: IndexTupleData is t_tid (6 bytes) + t_info (u16); the size is in t_info's low bits
SizeOfIndexTupleData = 8
INDEX_SIZE_MASK = 0x1FFF
_T_INFO_OFF = 6


class GistPageError(RedoError):
    """A GiST page or tuple list is not what the redo routine expects."""


# -- opaque fields ----------------------------------------------------------------------
def GistPageGetFlags(page: bytes | bytearray | memoryview) -> int:
    return int(_U16.unpack_from(page, pd_special(page) + _OFF_FLAGS)[0])


def GistPageSetFlags(page: bytearray, flags: int) -> None:
    _U16.pack_into(page, pd_special(page) + _OFF_FLAGS, flags & 0xFFFF)


def _set_flag(page: bytearray, bit: int) -> None:
    GistPageSetFlags(page, GistPageGetFlags(page) | bit)


def _clear_flag(page: bytearray, bit: int) -> None:
    GistPageSetFlags(page, GistPageGetFlags(page) & ~bit)


def GistPageIsLeaf(page: bytes | bytearray | memoryview) -> bool:
    return bool(GistPageGetFlags(page) & F_LEAF)


def GistPageIsDeleted(page: bytes | bytearray | memoryview) -> bool:
    return bool(GistPageGetFlags(page) & F_DELETED)


def GistTuplesDeleted(page: bytes | bytearray | memoryview) -> bool:
    return bool(GistPageGetFlags(page) & F_TUPLES_DELETED)


def GistMarkTuplesDeleted(page: bytearray) -> None:
    _set_flag(page, F_TUPLES_DELETED)


def GistClearTuplesDeleted(page: bytearray) -> None:
    _clear_flag(page, F_TUPLES_DELETED)


def GistPageHasGarbage(page: bytes | bytearray | memoryview) -> bool:
    return bool(GistPageGetFlags(page) & F_HAS_GARBAGE)


def GistMarkPageHasGarbage(page: bytearray) -> None:
    _set_flag(page, F_HAS_GARBAGE)


def GistClearPageHasGarbage(page: bytearray) -> None:
    _clear_flag(page, F_HAS_GARBAGE)


def GistFollowRight(page: bytes | bytearray | memoryview) -> bool:
    return bool(GistPageGetFlags(page) & F_FOLLOW_RIGHT)


def GistMarkFollowRight(page: bytearray) -> None:
    _set_flag(page, F_FOLLOW_RIGHT)


def GistClearFollowRight(page: bytearray) -> None:
    _clear_flag(page, F_FOLLOW_RIGHT)


def GistPageGetNSN(page: bytes | bytearray | memoryview) -> int:
    hi, lo = _NSN.unpack_from(page, pd_special(page) + _OFF_NSN)
    return (hi << 32) | lo


def GistPageSetNSN(page: bytearray, nsn: int) -> None:
    """PageXLogRecPtrSet: the NSN is stored as two u32 halves, high first."""
    _NSN.pack_into(page, pd_special(page) + _OFF_NSN, (nsn >> 32) & 0xFFFFFFFF, nsn & 0xFFFFFFFF)


def GistPageGetRightlink(page: bytes | bytearray | memoryview) -> int:
    return int(_U32.unpack_from(page, pd_special(page) + _OFF_RIGHTLINK)[0])


def GistPageSetRightlink(page: bytearray, blkno: int) -> None:
    _U32.pack_into(page, pd_special(page) + _OFF_RIGHTLINK, blkno & 0xFFFFFFFF)


def GistPageGetPageId(page: bytes | bytearray | memoryview) -> int:
    return int(_U16.unpack_from(page, pd_special(page) + _OFF_PAGE_ID)[0])


# -- deleted pages ------------------------------------------------------------------
def GistPageSetDeleted(page: bytearray, deletexid: int) -> None:
    """GistPageSetDeleted (gist.h): flag the page, and keep deleteXid after the header.

    pd_upper is left alone (the page is empty, so it is pd_special already).
    """
    _set_flag(page, F_DELETED)
    set_pd_lower(page, MAXALIGN(SizeOfPageHeaderData) + SizeOfGISTDeletedPageContents)
    _DELETE_XID.pack_into(page, PageGetContents(page), deletexid & 0xFFFFFFFFFFFFFFFF)


def GistPageGetDeleteXid(page: bytes | bytearray | memoryview) -> int:
    """GistPageGetDeleteXid: pages deleted before v13 have no deleteXid (epoch 0, xid 3)."""
    if pd_lower(page) >= MAXALIGN(SizeOfPageHeaderData) + SizeOfGISTDeletedPageContents:
        return int(_DELETE_XID.unpack_from(page, PageGetContents(page))[0])
    return FirstNormalTransactionId


# -- page init / fill (gistutil.c) ----------------------------------------------------
def gistinitpage(page: bytearray, f: int) -> None:
    """gistinitpage: PageInit with GiST special space, no right sibling, flags ``f``.

    PageInit zeroes the whole page, so the NSN starts at 0.
    """
    PageInit(page, BLCKSZ, SizeOfGISTPageOpaqueData)
    GistPageSetRightlink(page, InvalidBlockNumber)
    GistPageSetFlags(page, f)
    _U16.pack_into(page, pd_special(page) + _OFF_PAGE_ID, GIST_PAGE_ID)


def GISTInitBuffer(page: bytearray, f: int) -> None:
    """GISTInitBuffer: gistinitpage on the buffer's page."""
    gistinitpage(page, f)


def IndexTupleSize(data: bytes | bytearray | memoryview, off: int = 0) -> int:
    """itup.h IndexTupleSize: t_info & INDEX_SIZE_MASK of the tuple at ``off``."""
    return int(_U16.unpack_from(data, off + _T_INFO_OFF)[0]) & INDEX_SIZE_MASK


def index_tuple_at(data: bytes | bytearray | memoryview, pos: int) -> memoryview:
    """The IndexTuple that starts at byte ``pos`` of ``data`` (as GiST WAL stores them:
    end to end). A tuple shorter than its header or running past the data raises
    GistPageError, where C would loop on a zero size or read past the record."""
    view = memoryview(data)
    if pos + SizeOfIndexTupleData > len(view):
        raise GistPageError(f"index tuple at byte {pos} is cut off ({len(view) - pos} bytes left)")
    sz = IndexTupleSize(view, pos)
    if sz < SizeOfIndexTupleData or pos + sz > len(view):
        raise GistPageError(f"index tuple at byte {pos} has bad size {sz} "
                            f"({len(view) - pos} bytes left)")
    return view[pos : pos + sz]


def split_index_tuples(data: bytes | bytearray | memoryview, count: int | None = None) -> list[memoryview]:
    """Cut a run of IndexTuples laid end to end: exactly ``count`` of them when
    given, else until the data ends. Bytes left over after them raise GistPageError."""
    out: list[memoryview] = []
    pos = 0
    while (len(out) < count) if count is not None else (pos < len(data)):
        tup = index_tuple_at(data, pos)
        out.append(tup)
        pos += len(tup)
    if pos != len(data):
        raise GistPageError(f"{len(data) - pos} bytes left over after {len(out)} index tuples")
    return out


def gistfillbuffer(page: bytearray, itup: Sequence[bytes | bytearray | memoryview], off: int) -> None:
    """gistfillbuffer: add the tuples at ``off``, ``off + 1`` ... (after the last item when Invalid)."""
    if off == InvalidOffsetNumber:
        off = 1 if PageIsEmpty(page) else PageGetMaxOffsetNumber(page) + 1
    for i, tup in enumerate(itup):
        if PageAddItem(page, tup, off) == InvalidOffsetNumber:
            raise GistPageError(f"failed to add item to GiST index page, item {i} out of "
                                f"{len(itup)}, size {len(tup)} bytes")
        off += 1
