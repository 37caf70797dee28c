"""hash_mask (hash_xlog.c): what may differ between a replayed hash page and the primary's."""

from __future__ import annotations

from oracles.masks.bufmask import (
    MaskError,
    mask_lp_flags,
    mask_page_content,
    mask_page_hint_bits,
    mask_page_lsn_and_checksum,
    mask_unused_space,
)
from pyredo import BLCKSZ
from pyredo.page.bufpage import get_u16, pd_special, set_u16
from pyredo.page.hash import (
    LH_BUCKET_PAGE,
    LH_OVERFLOW_PAGE,
    LH_PAGE_HAS_DEAD_TUPLES,
    LH_PAGE_TYPE,
    LH_UNUSED_PAGE,
    SizeOfHashPageOpaqueData,
)

_FLAG = 12  # offsetof(HashPageOpaqueData, hasho_flag)


def hash_mask(page: bytearray, blkno: int) -> None:
    """Mirrors hash_mask (hash_xlog.c).

    LP flags of bucket and overflow pages (LP_DEAD set by scans without WAL)
    and the LH_PAGE_HAS_DEAD_TUPLES hint are masked; an unused page is masked
    whole. The special-space pointer is taken before masking, as C does.
    """
    mask_page_lsn_and_checksum(page)
    mask_page_hint_bits(page)
    mask_unused_space(page)

    flag_at = pd_special(page) + _FLAG
    if pd_special(page) + SizeOfHashPageOpaqueData > BLCKSZ:
        raise MaskError(f"hash special space at {pd_special(page)} runs past the page")
    pagetype = get_u16(page, flag_at) & LH_PAGE_TYPE
    if pagetype == LH_UNUSED_PAGE:
        mask_page_content(page)
    elif pagetype in (LH_BUCKET_PAGE, LH_OVERFLOW_PAGE):
        mask_lp_flags(page)

    # LH_PAGE_HAS_DEAD_TUPLES may be set without WAL (_hash_kill_items)
    set_u16(page, flag_at, get_u16(page, flag_at) & ~LH_PAGE_HAS_DEAD_TUPLES & 0xFFFF)
