"""Neon's deliberate differences from stock redo, as a named comparison profile.

Engines are compared byte for byte; a profile lists, for one engine, the
differences its authors made on purpose. Each allowance names the Neon source
it comes from, applies only under its exact conditions, and is counted on
every page where it applied (the page's verdict label says so); any other
difference stays a finding. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass

from pyredo.page.bufpage import PageGetLSN
from pyredo.wal.record import BufferTag, DecodedXLogRecord

__all__ = ["NEON_PROFILE", "OTHER_BLOCKS_DONE", "VISIBLE_SETS_LSN", "Allowance", "ComparisonProfile"]

RM_HEAP2_ID = 9
XLOG_HEAP2_VISIBLE = 0x40
XLOG_HEAP_OPMASK = 0x70
SizeOfPdLsn = 8  # pd_lsn opens the page header


@dataclass(frozen=True)
class Allowance:
    name: str
    source: str  # where in Neon's sources the difference is made
    what: str  # which bytes may differ, when


VISIBLE_SETS_LSN = Allowance(
    "neon: heap_xlog_visible sets the heap page LSN",
    "Neon's PostgreSQL 17 fork, heap_xlog_visible() (src/backend/access/heap/heapam.c): the heap page "
    "gets PageSetLSN unconditionally; stock PostgreSQL sets it only when XLogHintBitIsNeeded() "
    "(shared/neon-walredo/README.md, 'Known behaviour')",
    "pd_lsn alone, on a heap page whose last change is a Heap2/VISIBLE record naming it as block 1: "
    "Neon's pd_lsn is that record's end LSN, the other engine's is older; every other byte equal")
OTHER_BLOCKS_DONE = Allowance(
    "neon: blocks other than the target BLK_DONE",
    "Neon's docs/core_changes.md, 'Don't replay change in XLogReadBufferForRedo that are not for the "
    "target page' (xlogutils.c redo_read_buffer_filter, set by pgxn/neon_walredo/walredoproc.c)",
    "no byte: counted on the pages whose request has records naming other blocks, which Neon skips "
    "(full-page images included) where our stock server restores their images")


def _tag(rec: DecodedXLogRecord, block_id: int) -> BufferTag | None:
    b = rec.blocks.get(block_id)
    return None if b is None else BufferTag(b.rnode.spc, b.rnode.db, b.rnode.rel, b.forknum, b.blkno)


def _visible_lsns(tag: BufferTag, records: Sequence[DecodedXLogRecord]) -> set[int]:
    """End LSNs of the Heap2/VISIBLE records whose heap block (block 1) is ``tag``."""
    return {r.end_lsn for r in records
            if r.rmid == RM_HEAP2_ID and r.rmgr_info & XLOG_HEAP_OPMASK == XLOG_HEAP2_VISIBLE
            and _tag(r, 1) == tag}


@dataclass(frozen=True)
class ComparisonProfile:
    """The allowances of one engine (``engine``: its name in the run)."""

    name: str
    engine: str
    allowances: tuple[Allowance, ...]

    def reconcile(self, tag: BufferTag, records: Sequence[DecodedXLogRecord],
                  pages: MutableMapping[str, bytes]) -> list[str]:
        """Replace this engine's page by another engine's where the only difference
        is an allowance; return the allowances that applied (names)."""
        mine = pages.get(self.engine)
        if mine is None:
            return []
        applied: list[str] = []
        if OTHER_BLOCKS_DONE in self.allowances and any(
                _tag(r, bid) != tag for r in records for bid in r.blocks):
            applied.append(OTHER_BLOCKS_DONE.name)
        others = [p for n, p in pages.items() if n != self.engine and p != mine]
        if VISIBLE_SETS_LSN in self.allowances and others:
            lsns = _visible_lsns(tag, records)
            for ref in others:
                if (mine[SizeOfPdLsn:] == ref[SizeOfPdLsn:] and PageGetLSN(mine) in lsns
                        and PageGetLSN(ref) < PageGetLSN(mine)):
                    pages[self.engine] = ref
                    applied.append(VISIBLE_SETS_LSN.name)
                    break
        return applied


NEON_PROFILE = ComparisonProfile("neon", "neon", (VISIBLE_SETS_LSN, OTHER_BLOCKS_DONE))
