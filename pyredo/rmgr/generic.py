"""Generic resource manager: redo of generic WAL records (contrib bloom, ...).

Mirrors generic_redo (generic_xlog.c), generic_identify (genericdesc.c).

A generic record names up to MAX_GENERIC_XLOG_PAGES blocks. A block either
carries a full-page image (GENERIC_XLOG_FULL_IMAGE, or a full_page_writes
backup) that the engine restores, or a delta as its block data: fragments of
(OffsetNumber offset, OffsetNumber length, ``length`` bytes) copied onto the
page. The delta says nothing about the hole between pd_lower and pd_upper,
so redo zeroes it, as GenericXLogFinish did on the primary.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from pyredo import BLCKSZ
from pyredo.page.bufpage import pd_lower, pd_upper
from pyredo.xlogutils import RecordCursor

if TYPE_CHECKING:
    from pyredo.xlogutils import RedoContext, RedoFn

# generic_xlog.h: XLR_NORMAL_MAX_BLOCK_ID
MAX_GENERIC_XLOG_PAGES = 4
GENERIC_XLOG_FULL_IMAGE = 0x0001

# generic_xlog.c: a fragment header is two OffsetNumbers
FRAGMENT_HEADER = struct.Struct("<HH")  # offset, length
FRAGMENT_HEADER_SIZE = FRAGMENT_HEADER.size


def identify(info: int) -> str | None:
    return "Generic"


PAGE_MODIFYING: tuple[int, ...] = (0x00,)


def applyPageRedo(ctx: RedoContext, page: bytearray, delta: bytes, block_id: int) -> None:
    """Mirrors applyPageRedo (generic_xlog.c): copy each fragment onto the page.

    C trusts the delta; a fragment that would run past the delta or the page
    is an error here (C would read or write out of bounds)."""
    cur = RecordCursor(delta, f"block {block_id} data (generic delta)",
                       error=lambda m: ctx.error(m, block_id=block_id))
    while not cur.at_end:
        if cur.remaining < FRAGMENT_HEADER_SIZE:
            raise ctx.error(f"generic delta: truncated fragment header at delta offset {cur.pos}",
                            block_id=block_id)
        offset, length = cur.unpack(FRAGMENT_HEADER, "fragment header")
        if length > cur.remaining:
            raise ctx.error(f"generic delta: fragment at page offset {offset} needs {length} "
                            f"bytes, {cur.remaining} left", block_id=block_id)
        fragment = cur.take(length, f"fragment at page offset {offset}")
        if offset + length > BLCKSZ:
            raise ctx.error(f"generic delta: fragment {offset}+{length} runs past the page",
                            block_id=block_id)
        page[offset : offset + length] = fragment


def generic_redo(ctx: RedoContext, *,
                 applyPageRedo: Callable[[RedoContext, bytearray, bytes, int], None] = applyPageRedo,
                 ) -> None:
    """Mirrors generic_redo (generic_xlog.c): apply each block's delta, then zero
    the page between its (new) pd_lower and pd_upper."""
    rec = ctx.record
    if rec.max_block_id >= MAX_GENERIC_XLOG_PAGES:
        raise ctx.error(f"generic record names block {rec.max_block_id}, "
                        f"at most {MAX_GENERIC_XLOG_PAGES} blocks are allowed")
    for block_id in range(rec.max_block_id + 1):
        if not rec.has_block_ref(block_id):
            continue
        page = ctx.read_buffer_for_redo(block_id)
        if page is None:
            continue
        applyPageRedo(ctx, page, ctx.record.block_data(block_id), block_id)
        lower, upper = pd_lower(page), pd_upper(page)
        if lower > upper or upper > BLCKSZ:  # C's memset would wrap or overrun
            raise ctx.error(f"generic redo: bad hole pd_lower {lower} pd_upper {upper}",
                            block_id=block_id)
        page[lower:upper] = bytes(upper - lower)


REDO: dict[int, RedoFn] = {0x00: generic_redo}

# generic_redo, applyPageRedo and generic_mask are the same in 15, 16, 17 and 18
# (16 I/O-aligns GenericXLogState and 18 renames PageData: the delta format is unchanged)
MAJORS: tuple[int, ...] = (15, 16, 17, 18)
