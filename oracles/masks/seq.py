"""seq_mask (sequence.c): a sequence page differs only in LSN, checksum and free space."""

from __future__ import annotations

from oracles.masks.bufmask import mask_page_lsn_and_checksum, mask_unused_space


def seq_mask(page: bytearray, blkno: int) -> None:
    """Mirrors seq_mask (sequence.c)."""
    mask_page_lsn_and_checksum(page)
    mask_unused_space(page)
