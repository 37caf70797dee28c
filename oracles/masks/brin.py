"""brin_mask (brin_xlog.c): the consistency mask of BRIN pages.

Every BRIN page loses LSN, checksum and the header hint bits. Unused space
(pd_lower..pd_upper) is masked on regular pages, and on the metapage only
when pd_lower was set past the metadata (pre-v11 metapages left it at the
header); revmap pages keep it, since their entries live there. The
BRIN_EVACUATE_PAGE flag is set on the primary without WAL, so it is cleared.
"""

from __future__ import annotations

from oracles.masks.bufmask import (
    MaskError,
    mask_page_hint_bits,
    mask_page_lsn_and_checksum,
    mask_unused_space,
)
from pyredo import BLCKSZ
from pyredo.page.brin import (
    BRIN_EVACUATE_PAGE,
    BRIN_IS_META_PAGE,
    BRIN_IS_REGULAR_PAGE,
    BrinPageFlags,
    SetBrinPageFlags,
    SizeOfBrinSpecialSpace,
)
from pyredo.page.bufpage import SizeOfPageHeaderData, pd_lower, pd_special


def brin_mask(page: bytearray, blkno: int) -> None:
    """Mirrors brin_mask (brin_xlog.c)."""
    # BrinPageType / BrinPageFlags read through pd_special; C would read past the page
    if pd_special(page) > BLCKSZ - SizeOfBrinSpecialSpace:
        raise MaskError(f"invalid BRIN page pd_special {pd_special(page)}")
    mask_page_lsn_and_checksum(page)
    mask_page_hint_bits(page)
    if BRIN_IS_REGULAR_PAGE(page) or (
        BRIN_IS_META_PAGE(page) and pd_lower(page) > SizeOfPageHeaderData
    ):
        mask_unused_space(page)
    SetBrinPageFlags(page, BrinPageFlags(page) & ~BRIN_EVACUATE_PAGE & 0xFFFF)
