"""btree_mask (nbtxlog.c): what may legitimately differ on a replayed B-tree page."""

from __future__ import annotations

from oracles.masks.bufmask import (
    MaskError,
    mask_lp_flags,
    mask_page_hint_bits,
    mask_page_lsn_and_checksum,
    mask_unused_space,
)
from pyredo import BLCKSZ
from pyredo.page.bufpage import pd_special
from pyredo.page.nbtree import (
    BTP_HAS_GARBAGE,
    BTP_SPLIT_END,
    P_ISLEAF,
    BTPageGetOpaque,
    SizeOfBTPageOpaqueData,
)


def btree_mask(page: bytearray, blkno: int) -> None:
    """Mirrors btree_mask (nbtxlog.c)."""
    mask_page_lsn_and_checksum(page)
    mask_page_hint_bits(page)
    mask_unused_space(page)

    if pd_special(page) + SizeOfBTPageOpaqueData > BLCKSZ:
        raise MaskError(f"pd_special {pd_special(page)} leaves no room for BTPageOpaqueData")
    maskopaq = BTPageGetOpaque(page)
    if P_ISLEAF(maskopaq):
        # leaf line pointer flags change without WAL (_bt_killitems, _bt_check_unique)
        mask_lp_flags(page)
    # BTP_HAS_GARBAGE is an unlogged hint
    maskopaq.btpo_flags &= ~BTP_HAS_GARBAGE
    # split redo neither sets BTP_SPLIT_END on the right page nor keeps cycle ids
    maskopaq.btpo_flags &= ~BTP_SPLIT_END
    maskopaq.btpo_cycleid = 0
