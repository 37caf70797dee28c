"""Which records a block's wal-redo request needs, and whether the server can
answer it: pure functions of decoded records, no process.

The routing rule a planner must follow for visibility-map pages
(``vm_pages_cleared``, ``records_by_block``): heap records clear VM bits
without naming the VM block, so a VM page's records are the ones naming it
plus the heap records whose VM-clearing flags land on it.

``first_record_problem`` says why a request cannot be answered (no starting
point for the page): ``WalRedoProcess`` refuses such a request with
``WalRedoRequestError`` instead of sending it. Init-fork targets are answered
(the server redoes them in the main fork of its private copy: the same page).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from oracles.walredo_protocol import BLCKSZ
from pyredo.errors import format_lsn
from pyredo.rmgr import RM_HEAP2_ID
from pyredo.rmgr.heap2 import XLOG_HEAP2_VISIBLE, XLOG_HEAP_OPMASK
from pyredo.rmgrlist import PG15
from pyredo.wal.record import (
    VISIBILITYMAP_FORKNUM,
    BufferTag,
    DecodedXLogRecord,
)

__all__ = ["first_record_problem", "records_by_block", "vm_pages_cleared"]

# -- routing rule: which records a block needs ----------------------------------------


def vm_pages_cleared(rec: DecodedXLogRecord) -> list[BufferTag]:
    """The pages a record changes without naming them: the visibility-map pages
    whose bits heap records clear (ALL_VISIBLE_CLEARED and friends).

    The rule lives once, in the rmgr table (``implicit_tags`` of pyredo's heap
    and heap2 modules); the stock server accepts such a record for a VM target
    and routes its heap blocks so that ``visibilitymap_clear`` lands on it.
    """
    rmgr = PG15.get(rec.rmid)
    return rmgr.tags_changed_implicitly(rec) if rmgr is not None else []


def records_by_block(records: Iterable[DecodedXLogRecord]) -> dict[BufferTag, list[DecodedXLogRecord]]:
    """Group records by the blocks they change, in the order given (LSN order).

    A block's records are those whose block references name it, plus, for a
    visibility-map page, the heap records that clear its bits
    (``vm_pages_cleared``). This is the request a wal-redo server needs.
    """
    out: dict[BufferTag, list[DecodedXLogRecord]] = {}
    for rec in records:
        seen: set[BufferTag] = set()
        for blk in rec.blocks.values():
            t = blk.tag
            if t not in seen:
                seen.add(t)
                out.setdefault(t, []).append(rec)
        for t in vm_pages_cleared(rec):
            if t not in seen:
                seen.add(t)
                out.setdefault(t, []).append(rec)
    return out


def first_record_problem(
    tag: BufferTag, base_page: bytes | None, records: Sequence[DecodedXLogRecord]
) -> str | None:
    """Why the server could not answer this request (None: it can).

    Without a base page, the first record must give the page a starting
    point: restore a full-page image of it, or initialize it (WILL_INIT), or
    be a heap2 VISIBLE record naming it as its VM block (redo reads that
    page with RBM_ZERO_ON_ERROR and initializes it).
    """
    if base_page is not None:
        if len(base_page) != BLCKSZ:
            return f"base page for {tag} is {len(base_page)} bytes, not {BLCKSZ}"
        return None
    if not records:
        return f"no base page and no records for {tag}"
    first = records[0]
    if first.resets(tag):
        return None
    vm_block = first.blocks.get(0)
    if (first.rmid == RM_HEAP2_ID and first.info & XLOG_HEAP_OPMASK == XLOG_HEAP2_VISIBLE
            and tag.fork == VISIBILITYMAP_FORKNUM and vm_block is not None and vm_block.tag == tag):
        return None
    return (
        f"no base page for {tag} and its first record ({PG15.record_type(first)} at "
        f"{format_lsn(first.lsn)}) neither restores a full-page image of it nor "
        f"initializes it: send a base page"
    )
