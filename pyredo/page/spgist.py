"""SP-GiST page layout (spgist_private.h) and the page helpers redo needs (spgutils.c).

An SP-GiST page has an 8-byte special space (SpGistPageOpaqueData) and holds
either inner tuples or leaf tuples; both, and the dead tuples (REDIRECT, DEAD,
PLACEHOLDER) that take their place, start with a 32-bit word whose two low
bits are ``tupstate`` (gcc on little-endian fills C bit fields from the low
bit). Layouts, as gcc lays them out on x86-64:

* inner tuple (SpGistInnerTupleData, SGITHDRSZ = 8): word = tupstate:2,
  allTheSame:1, nNodes:13, prefixSize:16; ``size`` u16 at 4; then the prefix
  (prefixSize bytes) and ``nNodes`` node tuples (IndexTupleData headers:
  t_tid at 0, t_info at 6, size = t_info & INDEX_SIZE_MASK);
* leaf tuple (SpGistLeafTupleData, 12 bytes; data at SGLTHDRSZ): word =
  tupstate:2, size:30; ``t_info`` u16 at 4 (nextOffset:14 + flag bits);
  heapPtr at 6;
* dead tuple (SpGistDeadTupleData, SGDTSIZE = 16): leaf word; t_info at 4;
  ``pointer`` at 6; ``xid`` at 12.

Offsets here are byte offsets into a page (bytearray); functions keep C names.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from pyredo import BLCKSZ
from pyredo.page.bufpage import (
    MAXALIGN,
    PageCorrupted,
    PageGetContents,
    PageInit,
    SizeOfPageHeaderData,
    get_u16,
    get_u32,
    pd_special,
    set_pd_lower,
    set_u16,
    set_u32,
)

# -- block numbers of fixed-location pages ----------------------------------------
SPGIST_METAPAGE_BLKNO = 0
SPGIST_ROOT_BLKNO = 1
SPGIST_NULL_BLKNO = 2
SPGIST_LAST_FIXED_BLKNO = SPGIST_NULL_BLKNO

# -- SpGistPageOpaqueData -----------------------------------------------------------
SPGIST_META = 1 << 0
SPGIST_DELETED = 1 << 1  # never set, kept for backwards compatibility
SPGIST_LEAF = 1 << 2
SPGIST_NULLS = 1 << 3
SPGIST_PAGE_ID = 0xFF82

# flags, nRedirection, nPlaceholder, spgist_page_id
SPGIST_OPAQUE = struct.Struct("<HHHH")
SizeOfSpGistPageOpaqueData = SPGIST_OPAQUE.size
OPAQUE_FLAGS = 0
OPAQUE_NREDIRECTION = 2
OPAQUE_NPLACEHOLDER = 4
OPAQUE_PAGE_ID = 6

# -- metapage ---------------------------------------------------------------------------
SPGIST_MAGIC_NUMBER = 0xBA0BABEE
SPGIST_CACHED_PAGES = 8
SizeOfSpGistLastUsedPage = 8  # blkno u32, freeSpace int32
SizeOfSpGistMetaPageData = 4 + SPGIST_CACHED_PAGES * SizeOfSpGistLastUsedPage

# -- tuple states -------------------------------------------------------------------------
SPGIST_LIVE = 0
SPGIST_REDIRECT = 1
SPGIST_DEAD = 2
SPGIST_PLACEHOLDER = 3
TUPSTATE_MASK = 0x3

# -- tuple layouts ------------------------------------------------------------------------
SizeOfSpGistInnerTupleData = 8
SGITHDRSZ = MAXALIGN(SizeOfSpGistInnerTupleData)
SGITMAXNNODES = 0x1FFF
SizeOfIndexTupleData = 8
SGNTHDRSZ = MAXALIGN(SizeOfIndexTupleData)
INDEX_SIZE_MASK = 0x1FFF
SizeOfSpGistLeafTupleData = 12
SGLT_NEXTOFFSET_MASK = 0x3FFF
SGLT_FLAGS_MASK = 0xC000
SizeOfSpGistDeadTupleData = 16
SGDTSIZE = MAXALIGN(SizeOfSpGistDeadTupleData)

TUP_T_INFO = 4  # t_info of leaf and dead tuples
TUP_POINTER = 6  # heapPtr of a leaf tuple, pointer of a dead tuple
DEAD_XID = 12
INNER_SIZE = 4
NODE_T_INFO = 6

SPGIST_PAGE_CAPACITY = (
    BLCKSZ - SizeOfPageHeaderData - MAXALIGN(SizeOfSpGistPageOpaqueData)
) & ~7  # MAXALIGN_DOWN

InvalidBlockNumber = 0xFFFFFFFF
InvalidOffsetNumber = 0
InvalidTransactionId = 0

# SpGistDeadTupleData: word (tupstate | size << 2), t_info, pointer (bi_hi, bi_lo,
# ip_posid), xid
_DEAD_TUPLE = struct.Struct("<IHHHHI")
_ITEMPOINTER = struct.Struct("<HHH")


class SpGistPageOpaqueData(NamedTuple):
    """The special space of an SP-GiST page."""

    flags: int
    nRedirection: int
    nPlaceholder: int
    spgist_page_id: int


class SpGistInnerTupleHeader(NamedTuple):
    """The decoded header of an inner tuple (SpGistInnerTupleData)."""

    tupstate: int
    allTheSame: int
    nNodes: int
    prefixSize: int
    size: int


# -- special space ------------------------------------------------------------------------
def _opaque(page: bytes | bytearray | memoryview) -> int:
    """Where SpGistPageGetOpaque points; a corrupted page if that is off the page."""
    sp = pd_special(page)
    if sp > BLCKSZ - SizeOfSpGistPageOpaqueData:
        raise PageCorrupted(f"pd_special {sp} leaves no room for SpGistPageOpaqueData")
    return sp


def SpGistPageGetOpaque(page: bytes | bytearray | memoryview) -> SpGistPageOpaqueData:
    return SpGistPageOpaqueData(*SPGIST_OPAQUE.unpack_from(page, _opaque(page)))


def SpGistPageIsLeaf(page: bytes | bytearray | memoryview) -> bool:
    return bool(SpGistPageGetOpaque(page).flags & SPGIST_LEAF)


def SpGistPageStoresNulls(page: bytes | bytearray | memoryview) -> bool:
    return bool(SpGistPageGetOpaque(page).flags & SPGIST_NULLS)


def SpGistPageAdjustCounts(page: bytearray, *, nRedirection: int = 0, nPlaceholder: int = 0) -> None:
    """``opaque->nRedirection += ...; opaque->nPlaceholder += ...`` on the
    uint16 fields, wrapping as C does (redo runs without Asserts)."""
    sp = _opaque(page)
    if nRedirection:
        at = sp + OPAQUE_NREDIRECTION
        set_u16(page, at, (get_u16(page, at) + nRedirection) & 0xFFFF)
    if nPlaceholder:
        at = sp + OPAQUE_NPLACEHOLDER
        set_u16(page, at, (get_u16(page, at) + nPlaceholder) & 0xFFFF)


def SpGistInitPage(page: bytearray, f: int) -> None:
    """Mirrors SpGistInitPage (spgutils.c): PageInit with the opaque special
    space, ``flags = f``, counters zero, the page id set. SpGistInitBuffer is
    this on the buffer's page."""
    PageInit(page, BLCKSZ, SizeOfSpGistPageOpaqueData)
    sp = pd_special(page)
    SPGIST_OPAQUE.pack_into(page, sp, f, 0, 0, SPGIST_PAGE_ID)


def SpGistInitMetapage(page: bytearray) -> None:
    """Mirrors SpGistInitMetapage (spgutils.c): an empty last-used-page cache and
    pd_lower just past the metadata (so a compressed image keeps it)."""
    SpGistInitPage(page, SPGIST_META)
    meta = PageGetContents(page)
    set_u32(page, meta, SPGIST_MAGIC_NUMBER)
    for i in range(SPGIST_CACHED_PAGES):
        set_u32(page, meta + 4 + i * SizeOfSpGistLastUsedPage, InvalidBlockNumber)
    set_pd_lower(page, meta + SizeOfSpGistMetaPageData)


# -- tuples ----------------------------------------------------------------------------------
def tupstate(buf: bytes | bytearray | memoryview, off: int) -> int:
    """The ``tupstate`` bit field shared by inner, leaf and dead tuples."""
    return get_u32(buf, off) & TUPSTATE_MASK


def set_tupstate(page: bytearray, off: int, state: int) -> None:
    """``tuple->tupstate = state``: only the two low bits of the word change."""
    set_u32(page, off, (get_u32(page, off) & ~TUPSTATE_MASK & 0xFFFFFFFF) | state)


def inner_tuple_header(buf: bytes | bytearray | memoryview, off: int) -> SpGistInnerTupleHeader:
    word = get_u32(buf, off)
    return SpGistInnerTupleHeader(
        tupstate=word & TUPSTATE_MASK,
        allTheSame=(word >> 2) & 0x1,
        nNodes=(word >> 3) & SGITMAXNNODES,
        prefixSize=word >> 16,
        size=get_u16(buf, off + INNER_SIZE),
    )


def leaf_tuple_size(buf: bytes | bytearray | memoryview, off: int) -> int:
    """The ``size`` bit field of a leaf (or dead) tuple."""
    return get_u32(buf, off) >> 2


def SGLT_GET_NEXTOFFSET(buf: bytes | bytearray | memoryview, off: int) -> int:
    return get_u16(buf, off + TUP_T_INFO) & SGLT_NEXTOFFSET_MASK


def SGLT_SET_NEXTOFFSET(page: bytearray, off: int, offsetNumber: int) -> None:
    """Set nextOffset, keeping the two flag bits of t_info."""
    at = off + TUP_T_INFO
    set_u16(page, at, (get_u16(page, at) & SGLT_FLAGS_MASK) | (offsetNumber & SGLT_NEXTOFFSET_MASK))


def ItemPointerSet(page: bytearray, off: int, blkno: int, posid: int) -> None:
    """itemptr.h ItemPointerSet at byte ``off`` (BlockIdData is two uint16 halves)."""
    _ITEMPOINTER.pack_into(page, off, (blkno >> 16) & 0xFFFF, blkno & 0xFFFF, posid & 0xFFFF)


def ItemPointerSetInvalid(page: bytearray, off: int) -> None:
    ItemPointerSet(page, off, InvalidBlockNumber, InvalidOffsetNumber)


def spgFormDeadTuple(state: int, blkno: int, offnum: int, myXid: int) -> bytes:
    """Mirrors spgFormDeadTuple (spgutils.c).

    The C function fills ``state->deadTupleStorage``, palloc0'd once per redo
    record (fillFakeState) and then written field by field; every one of its 16
    bytes is set (t_info's flag bits stay the zeros of palloc0), so the tuple
    is a pure function of its arguments.
    """
    if state == SPGIST_REDIRECT:
        bi_hi, bi_lo, posid, xid = (blkno >> 16) & 0xFFFF, blkno & 0xFFFF, offnum, myXid
    else:
        bi_hi, bi_lo, posid, xid = 0xFFFF, 0xFFFF, InvalidOffsetNumber, InvalidTransactionId
    return _DEAD_TUPLE.pack(state | (SGDTSIZE << 2), InvalidOffsetNumber, bi_hi, bi_lo, posid, xid)
