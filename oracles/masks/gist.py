"""gist_mask (gistxlog.c): what may differ between a replayed GiST page and the primary's."""

from __future__ import annotations

from oracles.masks.bufmask import (
    MASK_MARKER,
    MaskError,
    mask_lp_flags,
    mask_page_hint_bits,
    mask_page_lsn_and_checksum,
    mask_unused_space,
)
from pyredo import BLCKSZ
from pyredo.page.bufpage import pd_special
from pyredo.page.gist import (
    GistClearPageHasGarbage,
    GistMarkFollowRight,
    GistPageIsLeaf,
    GistPageSetNSN,
    SizeOfGISTPageOpaqueData,
)


def gist_mask(page: bytearray, blkno: int) -> None:
    """Mirrors gist_mask (gistxlog.c).

    * LSN, checksum, hint bits and unused space, as every AM;
    * the NSN, a special-purpose LSN;
    * F_FOLLOW_RIGHT, which the primary clears on the left child after WAL
      insertion (gistplacetopage): it is set on both sides;
    * on leaf pages the line pointer flags, since gistkillitems sets LP_DEAD
      without WAL;
    * F_HAS_GARBAGE, which redo never sets.
    """
    mask_page_lsn_and_checksum(page)
    mask_page_hint_bits(page)
    mask_unused_space(page)
    if pd_special(page) + SizeOfGISTPageOpaqueData > BLCKSZ:
        # C would write the NSN past the page's end; mask_unused_space let pd_special through
        raise MaskError(f"no GiST special space: pd_special {pd_special(page)}")
    GistPageSetNSN(page, MASK_MARKER)
    GistMarkFollowRight(page)
    if GistPageIsLeaf(page):
        mask_lp_flags(page)
    GistClearPageHasGarbage(page)
