"""SP-GiST's consistency mask (spgxlog.c spg_mask)."""

from __future__ import annotations

from oracles.masks.bufmask import mask_page_hint_bits, mask_page_lsn_and_checksum, mask_unused_space
from pyredo.page.bufpage import SizeOfPageHeaderData, pd_lower


def spg_mask(page: bytearray, blkno: int) -> None:
    """Mirrors spg_mask (spgxlog.c): LSN, checksum and hint bits; the unused
    space only when pd_lower looks set (not on a new, all-zero page)."""
    mask_page_lsn_and_checksum(page)
    mask_page_hint_bits(page)
    if pd_lower(page) >= SizeOfPageHeaderData:
        mask_unused_space(page)
