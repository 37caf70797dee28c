"""heap_mask (heapam.c): what may differ between a replayed heap page and the primary's.

Hint bits (page flags, pd_prune_xid, tuple xact hint bits unless xmin is
frozen — then only the xmax hint bits), free space, t_cid (redo writes
FirstCommandId), the t_ctid of speculative tuples (the primary keeps the
insertion token there, redo writes the tuple's own TID), and the padding
after each item up to MAXALIGN. Also used for the Heap2 rmgr's pages.
"""

from __future__ import annotations

import struct

from oracles.masks.bufmask import (
    MASK_MARKER,
    MaskError,
    mask_page_hint_bits,
    mask_page_lsn_and_checksum,
    mask_unused_space,
)
from pyredo import BLCKSZ
from pyredo.page.bufpage import (
    LP_NORMAL,
    PageGetMaxOffsetNumber,
    SizeOfItemIdData,
    SizeOfPageHeaderData,
)
from pyredo.page.htup import (
    HEAP_XACT_MASK,
    HEAP_XMAX_COMMITTED,
    HEAP_XMAX_INVALID,
    HEAP_XMIN_FROZEN,
    T_CID,
    T_CTID,
    T_INFOMASK,
    SizeofHeapTupleHeader,
    SpecTokenOffsetNumber,
    pack_item_pointer,
)

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_ITEMID = struct.Struct("<I")
_NOT_XMAX_HINTS = ~(HEAP_XMAX_INVALID | HEAP_XMAX_COMMITTED) & 0xFFFF
_NOT_XACT = ~HEAP_XACT_MASK & 0xFFFF
_ZEROS = tuple(bytes(n) for n in range(8))  # the padding up to MAXALIGN


def heap_mask(page: bytearray, blkno: int) -> None:
    """Mirrors heap_mask (heapam.c). The tuple header fields are read and written in
    place (each line pointer read when its turn comes, as C does)."""
    mask_page_lsn_and_checksum(page)
    mask_page_hint_bits(page)
    mask_unused_space(page)

    u16_at, u16_set, u32_set = _U16.unpack_from, _U16.pack_into, _U32.pack_into
    for off in range(1, PageGetMaxOffsetNumber(page) + 1):
        w = _ITEMID.unpack_from(page, SizeOfPageHeaderData + (off - 1) * SizeOfItemIdData)[0]
        lp_off, lp_len = w & 0x7FFF, w >> 17
        if (w >> 15) & 0x3 == LP_NORMAL:
            if lp_off + SizeofHeapTupleHeader > BLCKSZ:
                raise MaskError(f"line pointer {off} points past the page (lp_off {lp_off})")
            # hint bits are set without WAL unless xmin is frozen; then only
            # the xmax hint bits may still differ
            infomask = u16_at(page, lp_off + T_INFOMASK)[0]
            if infomask & HEAP_XMIN_FROZEN != HEAP_XMIN_FROZEN:
                u16_set(page, lp_off + T_INFOMASK, infomask & _NOT_XACT)
            else:
                u16_set(page, lp_off + T_INFOMASK, infomask & _NOT_XMAX_HINTS)
            # redo sets the command id to FirstCommandId
            u32_set(page, lp_off + T_CID, MASK_MARKER)
            # a speculative tuple's t_ctid holds the inserter's token on the primary
            if u16_at(page, lp_off + T_CTID + 4)[0] == SpecTokenOffsetNumber:
                page[lp_off + T_CTID : lp_off + T_CTID + 6] = pack_item_pointer(blkno, off)
        if lp_len != 0:  # ItemIdHasStorage: mask the padding up to MAXALIGN
            end = ((lp_len + 7) & ~7) + lp_off
            if end > BLCKSZ:
                raise MaskError(f"item {off} runs past the page (lp_off {lp_off}, lp_len {lp_len})")
            page[lp_off + lp_len : end] = _ZEROS[end - lp_off - lp_len]
