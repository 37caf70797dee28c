"""heap_mask (heapam.c): what may differ between a replayed heap page and the primary's.

Hint bits (page flags, pd_prune_xid, tuple xact hint bits unless xmin is
frozen — then only the xmax hint bits), free space, t_cid (redo writes
FirstCommandId), the t_ctid of speculative tuples (the primary keeps the
insertion token there, redo writes the tuple's own TID), and the padding
after each item up to MAXALIGN. Also used for the Heap2 rmgr's pages.
"""

from __future__ import annotations

from oracles.masks.bufmask import (
    MASK_MARKER,
    MaskError,
    mask_page_hint_bits,
    mask_page_lsn_and_checksum,
    mask_unused_space,
)
from pyredo import BLCKSZ
from pyredo.page.bufpage import LP_NORMAL, MAXALIGN, PageGetItemId, PageGetMaxOffsetNumber
from pyredo.page.htup import (
    HEAP_XACT_MASK,
    HEAP_XMAX_COMMITTED,
    HEAP_XMAX_INVALID,
    HeapTupleHeader,
    SizeofHeapTupleHeader,
)


def heap_mask(page: bytearray, blkno: int) -> None:
    """Mirrors heap_mask (heapam.c)."""
    mask_page_lsn_and_checksum(page)
    mask_page_hint_bits(page)
    mask_unused_space(page)

    for off in range(1, PageGetMaxOffsetNumber(page) + 1):
        lp_off, lp_flags, lp_len = PageGetItemId(page, off)
        if lp_flags == LP_NORMAL:
            if lp_off + SizeofHeapTupleHeader > BLCKSZ:
                raise MaskError(f"line pointer {off} points past the page (lp_off {lp_off})")
            htup = HeapTupleHeader(page, lp_off)
            # hint bits are set without WAL unless xmin is frozen; then only
            # the xmax hint bits may still differ
            if not htup.XminFrozen():
                htup.t_infomask &= ~HEAP_XACT_MASK
            else:
                htup.t_infomask &= ~(HEAP_XMAX_INVALID | HEAP_XMAX_COMMITTED)
            # redo sets the command id to FirstCommandId
            htup.t_cid = MASK_MARKER
            # a speculative tuple's t_ctid holds the inserter's token on the primary
            if htup.IsSpeculative():
                htup.set_ctid(blkno, off)
        if lp_len != 0:  # ItemIdHasStorage: mask the padding up to MAXALIGN
            end = MAXALIGN(lp_len) + lp_off
            if end > BLCKSZ:
                raise MaskError(f"item {off} runs past the page (lp_off {lp_off}, lp_len {lp_len})")
            page[lp_off + lp_len : end] = bytes(end - lp_off - lp_len)
