"""gin_mask (ginxlog.c): what may differ between a replayed GIN page and the primary's.

LSN and checksum, the hint bits (page flags and pd_prune_xid, which on GIN
pages holds the delete xid), and then either the whole content of a
GIN_DELETED page (redo re-initializes deleted pending-list pages empty while
the primary keeps their tuples) or the hole between pd_lower and pd_upper
when pd_lower looks set.
"""

from __future__ import annotations

from oracles.masks.bufmask import (
    MaskError,
    mask_page_content,
    mask_page_hint_bits,
    mask_page_lsn_and_checksum,
    mask_unused_space,
)
from pyredo import BLCKSZ
from pyredo.page.bufpage import SizeOfPageHeaderData, get_u16, pd_lower, pd_special
from pyredo.page.gin import GIN_DELETED, SizeOfGinPageOpaqueData

_OPAQUE_FLAGS = 6  # offsetof(GinPageOpaqueData, flags)


def gin_mask(page: bytearray, blkno: int) -> None:
    """Mirrors gin_mask (ginxlog.c)."""
    mask_page_lsn_and_checksum(page)
    mask_page_hint_bits(page)
    special = pd_special(page)
    if special + SizeOfGinPageOpaqueData > BLCKSZ:
        raise MaskError(f"invalid GIN page: pd_special {special}")
    # C reads opaque->flags after masking the hint bits; for a page whose
    # pd_special is 0 that read lands in the (masked) header, as here
    if get_u16(page, special + _OPAQUE_FLAGS) & GIN_DELETED:
        mask_page_content(page)
    elif pd_lower(page) > SizeOfPageHeaderData:
        mask_unused_space(page)
