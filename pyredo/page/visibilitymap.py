"""Visibility-map pages (access/heap/visibilitymap.c): two bits per heap block."""

from __future__ import annotations

from pyredo import BLCKSZ
from pyredo.page.bufpage import MAXALIGN, PageInit, PageIsNew, PageSetLSN, SizeOfPageHeaderData

VISIBILITYMAP_ALL_VISIBLE = 0x01
VISIBILITYMAP_ALL_FROZEN = 0x02
VISIBILITYMAP_VALID_BITS = 0x03

MAPSIZE = BLCKSZ - MAXALIGN(SizeOfPageHeaderData)
BITS_PER_HEAPBLOCK = 2
HEAPBLOCKS_PER_BYTE = 8 // BITS_PER_HEAPBLOCK
HEAPBLOCKS_PER_PAGE = MAPSIZE * HEAPBLOCKS_PER_BYTE
_CONTENTS = MAXALIGN(SizeOfPageHeaderData)


def HEAPBLK_TO_MAPBLOCK(x: int) -> int:
    return x // HEAPBLOCKS_PER_PAGE


def HEAPBLK_TO_MAPBYTE(x: int) -> int:
    return (x % HEAPBLOCKS_PER_PAGE) // HEAPBLOCKS_PER_BYTE


def HEAPBLK_TO_OFFSET(x: int) -> int:
    return (x % HEAPBLOCKS_PER_BYTE) * BITS_PER_HEAPBLOCK


def vm_readbuf_init(page: bytearray) -> None:
    """vm_readbuf: a VM page read for the first time is initialized empty."""
    if PageIsNew(page):
        PageInit(page, BLCKSZ, 0)


def visibilitymap_clear(page: bytearray, heap_blk: int, flags: int) -> bool:
    """Clear ``flags`` for ``heap_blk``; True when a bit changed. No LSN stamp."""
    vm_readbuf_init(page)
    at = _CONTENTS + HEAPBLK_TO_MAPBYTE(heap_blk)
    mask = flags << HEAPBLK_TO_OFFSET(heap_blk)
    if page[at] & mask:
        page[at] &= ~mask & 0xFF
        return True
    return False


def visibilitymap_set(page: bytearray, heap_blk: int, flags: int, lsn: int) -> bool:
    """Set ``flags`` for ``heap_blk``; stamps ``lsn`` only when the bits changed (as in C)."""
    at = _CONTENTS + HEAPBLK_TO_MAPBYTE(heap_blk)
    shift = HEAPBLK_TO_OFFSET(heap_blk)
    if flags != (page[at] >> shift) & VISIBILITYMAP_VALID_BITS:
        page[at] |= (flags << shift) & 0xFF  # uint8 map byte: C truncates the same way
        PageSetLSN(page, lsn)
        return True
    return False


def visibilitymap_get_status(page: bytes | bytearray, heap_blk: int) -> int:
    at = _CONTENTS + HEAPBLK_TO_MAPBYTE(heap_blk)
    return (page[at] >> HEAPBLK_TO_OFFSET(heap_blk)) & VISIBILITYMAP_VALID_BITS
