"""The coverage grid (harness.reports.cells): block forms, the reachable universe,
and ``coverage_cells`` in reports (written, read back, summed)."""

from __future__ import annotations

from collections import Counter

from harness.reports.cells import block_cells, block_form, compute_cells, reachable_cells
from harness.reports.schema import FuzzReport, IterationSummary
from pyredo.rmgr import RM_HASH_ID, RM_HEAP_ID
from pyredo.rmgrlist import PG15
from pyredo.wal.record import (
    BKPBLOCK_WILL_INIT,
    MAIN_FORKNUM,
    BufferTag,
    DecodedBkpBlock,
    DecodedXLogRecord,
    RelFileNode,
)

RNODE = RelFileNode(1663, 5, 16384)
TAG = BufferTag(1663, 5, 16384, MAIN_FORKNUM, 0)


def _rec(info: int, blk: DecodedBkpBlock | None) -> DecodedXLogRecord:
    return DecodedXLogRecord(100, 108, 0, 0, 0, info, RM_HEAP_ID, 0, b"", blocks={0: blk} if blk else {})


def test_block_forms() -> None:
    plain = DecodedBkpBlock(0, RNODE, MAIN_FORKNUM, 0, 0)
    applied = DecodedBkpBlock(0, RNODE, MAIN_FORKNUM, 0, 0, has_image=True, apply_image=True)
    check_only = DecodedBkpBlock(0, RNODE, MAIN_FORKNUM, 0, 0, has_image=True)
    init_checked = DecodedBkpBlock(0, RNODE, MAIN_FORKNUM, 0, BKPBLOCK_WILL_INIT, has_image=True)
    assert block_form(_rec(0, plain), TAG) == "data"
    assert block_form(_rec(0, applied), TAG) == "image-applied"
    assert block_form(_rec(0, check_only), TAG) == "image-not-applied"
    assert block_form(_rec(0x80, init_checked), TAG) == "will-init"  # redo inits; the image only checks
    vm = TAG._replace(fork=2)
    assert block_form(_rec(0, plain), vm) == "implicit"
    assert block_cells(TAG, [_rec(0, plain), _rec(0, check_only)], PG15) == Counter(
        {"Heap/INSERT|main|data": 1, "Heap/INSERT|main|image-not-applied": 1})
    # block 0 of a hash index is its metapage (XLOG_HASH_INSERT names it as block 1)
    meta = DecodedXLogRecord(100, 108, 0, 0, 0, 0x20, RM_HASH_ID, 0, b"", blocks={1: plain})
    assert block_cells(TAG, [meta], PG15) == Counter({"Hash/INSERT|main|metapage": 1})


def test_reachable_universe_of_15() -> None:
    cells = reachable_cells(PG15)
    for c in ("Heap/INSERT|main|data", "Heap/INSERT|main|image-not-applied", "Heap/INSERT+INIT|main|will-init",
              "XLOG/FPI|init|image-applied", "Hash/INIT_META_PAGE|init|will-init", "Sequence/LOG|init|will-init",
              "Heap2/VISIBLE|vm|data", "Heap/DELETE|vm|implicit", "XLOG/FPI|fsm|image-applied",
              "Hash/INSERT|main|metapage", "BRIN/REVMAP_EXTEND|main|metapage"):
        assert c in cells, c
    for c in ("Heap/INSERT+INIT|main|data", "XLOG/FPI|main|data", "Btree/INSERT_LEAF|init|data",
              "Hash/UPDATE_META_PAGE|main|data", "Btree/INSERT_LEAF|main|metapage"):
        assert c not in cells, c
    assert {c.split("|")[0] for c in cells} == set(PG15.page_modifying_types())


def test_fuzz_report_carries_the_grid() -> None:
    it = IterationSummary(0, 1, "fpw")
    it.cells.update({"Heap/INSERT|main|data": 3, "XLOG/FPI|init|image-applied": 2, "Odd/TYPE|main|data": 1})
    rep = FuzzReport(seed=1)
    rep.add(it)
    rep.add(it)
    d = rep.to_json()
    grid = d["coverage_cells"]
    assert grid["cells"]["Heap/INSERT|main|data"] == 6
    assert grid["covered"] == 2 and grid["total"] == len(reachable_cells(PG15))
    again = FuzzReport.from_json(d)
    assert again.cells == rep.cells
    assert IterationSummary.from_json(it.to_json()).cells == it.cells
    assert compute_cells(rep.cells, PG15).unexpected == ["Odd/TYPE|main|data"]


def test_from_18_heap_records_name_their_vm_page() -> None:
    """18 (and 17.11) register the VM page a heap record clears as a block of its own: its
    cells are data / image forms on the vm fork, no longer implicit; 15-17 (17.10) keep them implicit."""
    from pyredo.rmgrlist import PG16, PG17, PG18

    for table in (PG15, PG16, PG17):
        cells = reachable_cells(table)
        assert "Heap/INSERT|vm|implicit" in cells and "Heap/INSERT|vm|data" not in cells
    cells18 = reachable_cells(PG18)
    assert not any(c.endswith("|vm|implicit") for c in cells18)
    for form in ("data", "image-applied", "image-not-applied"):
        assert f"Heap/INSERT|vm|{form}" in cells18 and f"Heap2/MULTI_INSERT|vm|{form}" in cells18
    assert "Heap2/VISIBLE|vm|data" in cells18
