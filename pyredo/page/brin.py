"""BRIN page layouts (brin_page.h) and the page helpers BRIN redo calls
(brin_page_init / brin_metapage_init of brin_pageops.c, brinSetHeapBlockItemptr
of brin_revmap.c).

Every BRIN page ends in a BrinSpecialSpace: four uint16 (one MAXALIGN'd
element), the page type in the last one and the flags in the one before it.
Page 0 is the metapage (BrinMetaPageData at PageGetContents), then come the
revmap pages (an array of ItemPointerData at PageGetContents filling the page
up to the special space), then the regular pages holding BrinTuples.
"""

from __future__ import annotations

import struct

from pyredo import BLCKSZ
from pyredo.page.bufpage import (
    MAXALIGN,
    PageGetContents,
    PageInit,
    SizeOfPageHeaderData,
    pd_special,
    set_pd_lower,
)

# -- BrinSpecialSpace ---------------------------------------------------------------
SizeOfBrinSpecialSpace = MAXALIGN(1)  # uint16 vector[MAXALIGN(1) / sizeof(uint16)]
_VECTOR_LEN = SizeOfBrinSpecialSpace // 2
_OFF_TYPE = 2 * (_VECTOR_LEN - 1)  # BrinPageType: vector[last]
_OFF_FLAGS = 2 * (_VECTOR_LEN - 2)  # BrinPageFlags: vector[last - 1]

BRIN_PAGETYPE_META = 0xF091
BRIN_PAGETYPE_REVMAP = 0xF092
BRIN_PAGETYPE_REGULAR = 0xF093

BRIN_EVACUATE_PAGE = 1 << 0

_U16 = struct.Struct("<H")


def BrinPageTypeOffset(page: bytes | bytearray | memoryview) -> int:
    """Byte offset of BrinPageType (found through pd_special, as the C macro does)."""
    return pd_special(page) + _OFF_TYPE


def BrinPageFlagsOffset(page: bytes | bytearray | memoryview) -> int:
    return pd_special(page) + _OFF_FLAGS


def BrinPageType(page: bytes | bytearray | memoryview) -> int:
    return int(_U16.unpack_from(page, BrinPageTypeOffset(page))[0])


def BrinPageFlags(page: bytes | bytearray | memoryview) -> int:
    return int(_U16.unpack_from(page, BrinPageFlagsOffset(page))[0])


def SetBrinPageType(page: bytearray, pagetype: int) -> None:
    _U16.pack_into(page, BrinPageTypeOffset(page), pagetype)


def SetBrinPageFlags(page: bytearray, flags: int) -> None:
    _U16.pack_into(page, BrinPageFlagsOffset(page), flags)


def BRIN_IS_META_PAGE(page: bytes | bytearray | memoryview) -> bool:
    return BrinPageType(page) == BRIN_PAGETYPE_META


def BRIN_IS_REVMAP_PAGE(page: bytes | bytearray | memoryview) -> bool:
    return BrinPageType(page) == BRIN_PAGETYPE_REVMAP


def BRIN_IS_REGULAR_PAGE(page: bytes | bytearray | memoryview) -> bool:
    return BrinPageType(page) == BRIN_PAGETYPE_REGULAR


# -- BrinMetaPageData -----------------------------------------------------------------
# brinMagic, brinVersion, pagesPerRange, lastRevmapPage
BrinMetaPageData = struct.Struct("<IIII")
OFF_LAST_REVMAP_PAGE = 12  # offsetof(BrinMetaPageData, lastRevmapPage)
_U32 = struct.Struct("<I")

BRIN_CURRENT_VERSION = 1
BRIN_META_MAGIC = 0xA8109CFA
BRIN_METAPAGE_BLKNO = 0

# -- RevmapContents -------------------------------------------------------------------
SizeOfItemPointerData = 6  # BlockIdData (bi_hi, bi_lo), OffsetNumber ip_posid
ItemPointerData = struct.Struct("<HHH")
REVMAP_CONTENT_SIZE = BLCKSZ - MAXALIGN(SizeOfPageHeaderData) - MAXALIGN(SizeOfBrinSpecialSpace)
REVMAP_PAGE_MAXITEMS = REVMAP_CONTENT_SIZE // SizeOfItemPointerData

InvalidBlockNumber = 0xFFFFFFFF
InvalidOffsetNumber = 0


def HEAPBLK_TO_REVMAP_BLK(pagesPerRange: int, heapBlk: int) -> int:
    return (heapBlk // pagesPerRange) // REVMAP_PAGE_MAXITEMS


def HEAPBLK_TO_REVMAP_INDEX(pagesPerRange: int, heapBlk: int) -> int:
    return (heapBlk // pagesPerRange) % REVMAP_PAGE_MAXITEMS


# -- brin_pageops.c / brin_revmap.c helpers ---------------------------------------------
def brin_page_init(page: bytearray, pagetype: int) -> None:
    """Mirrors brin_page_init (brin_pageops.c): an empty page of ``pagetype``."""
    PageInit(page, BLCKSZ, SizeOfBrinSpecialSpace)
    SetBrinPageType(page, pagetype)


def brin_metapage_init(page: bytearray, pagesPerRange: int, version: int) -> None:
    """Mirrors brin_metapage_init (brin_pageops.c). lastRevmapPage starts at 0,
    and pd_lower covers the metadata so a compressed image keeps it."""
    brin_page_init(page, BRIN_PAGETYPE_META)
    contents = PageGetContents(page)
    BrinMetaPageData.pack_into(page, contents, BRIN_META_MAGIC, version, pagesPerRange, 0)
    set_pd_lower(page, contents + BrinMetaPageData.size)


def brin_metapage_set_last_revmap_page(page: bytearray, blkno: int) -> None:
    """The metapage half of revmap_physical_extend: lastRevmapPage and pd_lower."""
    contents = PageGetContents(page)
    _U32.pack_into(page, contents + OFF_LAST_REVMAP_PAGE, blkno)
    set_pd_lower(page, contents + BrinMetaPageData.size)


def ItemPointerIsValid(blkno: int, offnum: int) -> bool:
    """itemptr.h: valid when the offset number is not InvalidOffsetNumber."""
    return offnum != InvalidOffsetNumber


def brinSetHeapBlockItemptr(page: bytearray, pagesPerRange: int, heapBlk: int,
                            blkno: int, offnum: int) -> None:
    """Mirrors brinSetHeapBlockItemptr (brin_revmap.c): point the revmap entry of
    ``heapBlk``'s range at (blkno, offnum), or make it invalid
    (InvalidBlockNumber, InvalidOffsetNumber) when that TID is not valid."""
    at = PageGetContents(page) + HEAPBLK_TO_REVMAP_INDEX(pagesPerRange, heapBlk) * SizeOfItemPointerData
    if not ItemPointerIsValid(blkno, offnum):
        blkno, offnum = InvalidBlockNumber, InvalidOffsetNumber
    ItemPointerData.pack_into(page, at, blkno >> 16, blkno & 0xFFFF, offnum)


def brinGetHeapBlockItemptr(page: bytes | bytearray, pagesPerRange: int,
                            heapBlk: int) -> tuple[int, int]:
    """The (blkno, offnum) a revmap page holds for ``heapBlk``'s range."""
    at = PageGetContents(page) + HEAPBLK_TO_REVMAP_INDEX(pagesPerRange, heapBlk) * SizeOfItemPointerData
    hi, lo, off = ItemPointerData.unpack_from(page, at)
    return (hi << 16) | lo, off
