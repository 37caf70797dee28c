"""Masking primitives (access/common/bufmask.c): each AM's mask is built from these.

A mask blanks what may legitimately differ between a replayed page and the
primary's page — hint bits, unused space, LSN and checksum, per-AM fields —
exactly as wal_consistency_checking does. MASK_MARKER is 0, as in C.
"""

from __future__ import annotations

import struct

from pyredo import BLCKSZ
from pyredo.page.bufpage import (
    LP_UNUSED,
    OFF_CHECKSUM,
    OFF_LOWER,
    OFF_LSN,
    OFF_PRUNE_XID,
    OFF_UPPER,
    PD_ALL_VISIBLE,
    PD_HAS_FREE_LINES,
    PD_PAGE_FULL,
    PageGetItemId,
    PageGetMaxOffsetNumber,
    PageSetItemId,
    SizeOfItemIdData,
    SizeOfPageHeaderData,
    pd_flags,
    pd_lower,
    pd_special,
    pd_upper,
    set_pd_flags,
)

MASK_MARKER = 0
_NOT_LP_FLAGS = ~(0x3 << 15) & 0xFFFFFFFF  # lp_flags set to LP_UNUSED (0), lp_off and lp_len kept


class MaskError(ValueError):
    """A page cannot be masked (its pointers are invalid)."""


def mask_page_lsn_and_checksum(page: bytearray) -> None:
    page[OFF_LSN : OFF_LSN + 8] = bytes(8)
    page[OFF_CHECKSUM : OFF_CHECKSUM + 2] = bytes(2)


def mask_page_hint_bits(page: bytearray) -> None:
    """pd_prune_xid and the PD_PAGE_FULL / PD_HAS_FREE_LINES / PD_ALL_VISIBLE flags."""
    page[OFF_PRUNE_XID : OFF_PRUNE_XID + 4] = bytes(4)
    set_pd_flags(page, pd_flags(page) & ~(PD_PAGE_FULL | PD_HAS_FREE_LINES | PD_ALL_VISIBLE) & 0xFFFF)


def mask_unused_space(page: bytearray) -> None:
    lower, upper, special = pd_lower(page), pd_upper(page), pd_special(page)
    if lower > upper or special < upper or lower < SizeOfPageHeaderData or special > BLCKSZ:
        raise MaskError(f"invalid page pd_lower {lower} pd_upper {upper} pd_special {special}")
    page[lower:upper] = bytes(upper - lower)


def mask_lp_flags(page: bytearray) -> None:
    """Line pointer flags of used items become LP_UNUSED (index AMs set LP_DEAD without WAL)."""
    n = PageGetMaxOffsetNumber(page)
    if SizeOfPageHeaderData + n * SizeOfItemIdData > len(page):  # pd_lower past the page: as C reads it
        for offnum in range(1, n + 1):
            off, flags, length = PageGetItemId(page, offnum)
            if flags != LP_UNUSED:
                PageSetItemId(page, offnum, off, LP_UNUSED, length)
    elif n:  # lp_flags (bits 15-16) cleared in every line pointer at once: LP_UNUSED is 0
        lps = struct.Struct(f"<{n}I")
        lps.pack_into(page, SizeOfPageHeaderData, *[w & _NOT_LP_FLAGS for w in lps.unpack_from(page, SizeOfPageHeaderData)])


def mask_page_content(page: bytearray) -> None:
    """Everything but the header, and pd_lower / pd_upper too (deleted index pages)."""
    page[SizeOfPageHeaderData:] = bytes(BLCKSZ - SizeOfPageHeaderData)
    page[OFF_LOWER : OFF_LOWER + 2] = bytes(2)
    page[OFF_UPPER : OFF_UPPER + 2] = bytes(2)
