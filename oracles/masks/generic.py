"""generic_mask (generic_xlog.c): the consistency mask of pages changed by
generic WAL records (contrib bloom, ...): LSN, checksum and unused space."""

from __future__ import annotations

from oracles.masks.bufmask import mask_page_lsn_and_checksum, mask_unused_space


def generic_mask(page: bytearray, blkno: int) -> None:
    """Mirrors generic_mask (generic_xlog.c)."""
    mask_page_lsn_and_checksum(page)
    mask_unused_space(page)
