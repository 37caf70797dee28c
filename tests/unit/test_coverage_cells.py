"""The coverage grid (harness.reports.cells): block forms, the reachable universe,
and ``coverage_cells`` in reports (written, read back, summed)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from harness.reports.cells import (
    BLOCKS,
    DOC_BEGIN,
    DOC_END,
    IMAGE_ONLY,
    RACES,
    REGISTRATIONS,
    SUPERSEDED,
    block_cells,
    block_form,
    compute_cells,
    race_cells,
    reachable_cells,
    render_universe,
)
from harness.reports.schema import FuzzReport, IterationSummary
from pyredo.rmgr import RM_HASH_ID, RM_HEAP_ID
from pyredo.rmgrlist import PG15, PG16, PG17, PG18
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
    for table in (PG15, PG16, PG17):
        cells = reachable_cells(table)
        assert "Heap/INSERT|vm|implicit" in cells and "Heap/INSERT|vm|data" not in cells
    cells18 = reachable_cells(PG18)
    assert not any(c.endswith("|vm|implicit") for c in cells18)
    for form in ("data", "image-applied", "image-not-applied"):
        assert f"Heap/INSERT|vm|{form}" in cells18 and f"Heap2/MULTI_INSERT|vm|{form}" in cells18
    assert "Heap2/VISIBLE|vm|data" in cells18


def test_universe_is_derived_block_by_block() -> None:
    """Forms no block of a type can take are out: all blocks REGBUF_WILL_INIT (shiftList),
    REGBUF_FORCE_IMAGE (xlogVacuumPage, log_split_page), or a metapage whose data form is
    ``metapage`` beside a WILL_INIT block (revmap_physical_extend, _hash_init)."""
    cells = reachable_cells(PG15)
    for t, only in (("Gin/DELETE_LISTPAGE", "will-init"), ("Gin/VACUUM_PAGE", "image-applied"),
                    ("Hash/SPLIT_PAGE", "image-applied")):
        assert {c for c in cells if c.startswith(t + "|")} == {f"{t}|main|{only}"}, t
    for t in ("BRIN/REVMAP_EXTEND", "Hash/INIT_BITMAP_PAGE"):
        assert f"{t}|main|data" not in cells and f"{t}|main|metapage" in cells and f"{t}|main|will-init" in cells
    # a forced image beside a standard block: every form (Gin/SPLIT's finished child)
    assert {"Gin/SPLIT|main|data", "Gin/SPLIT|main|image-not-applied", "Gin/SPLIT|main|image-applied"} <= cells
    # reachable, if no run of today reaches them: a CHECKPOINT between two statements does
    for c in ("Heap/HEAP_CONFIRM|main|image-applied", "Heap2/LOCK_UPDATED|main|image-applied",
              "Btree/INSERT_META|main|image-applied", "Hash/MOVE_PAGE_CONTENTS|main|image-applied"):
        assert c in cells, c


def test_race_only_cells_are_shown_not_counted() -> None:
    race = race_cells(PG15)
    assert set(race) == {"Btree/NEWROOT|main|image-applied", "Gist/PAGE_SPLIT|main|image-applied",
                         "Hash/INIT_BITMAP_PAGE|main|image-applied", "Hash/INIT_BITMAP_PAGE|init|image-applied",
                         "Hash/SPLIT_COMPLETE|main|image-applied", "Hash/SPLIT_CLEANUP|main|image-applied",
                         "Heap/UPDATE+INIT|main|image-applied",
                         # superseded: the same operation always re-initializes or images the page again
                         "Btree/MARK_PAGE_HALFDEAD|main|will-init", "Hash/SPLIT_ALLOCATE_PAGE|main|will-init"}
    assert race["Btree/MARK_PAGE_HALFDEAD|main|will-init"] == "btree-unlink"
    assert not set(race) & reachable_cells(PG15)
    grid = compute_cells({"Btree/NEWROOT|main|image-applied": 2, "Btree/NEWROOT|main|data": 1}, PG15)
    assert grid.unexpected == [] and grid.race_reached == ["Btree/NEWROOT|main|image-applied"]
    assert grid.covered == 1


def test_lock_updated_vm_cells_end_with_old_snapshot_threshold() -> None:
    assert "Heap2/LOCK_UPDATED|vm|implicit" in reachable_cells(PG16)
    assert not any(c.startswith("Heap2/LOCK_UPDATED|vm|") for c in reachable_cells(PG17) | reachable_cells(PG18))


def test_blocks_table_covers_every_major() -> None:
    """Every page-modifying type of every major has its blocks (or is an XLOG image type);
    no row names a type no major has; every registration and race is defined."""
    types: set[str] = set()
    for table in (PG15, PG16, PG17, PG18):
        mine = set(table.page_modifying_types())
        assert mine <= set(BLOCKS) | set(IMAGE_ONLY), (table.major, mine - set(BLOCKS) - set(IMAGE_ONLY))
        types |= mine
    assert set(BLOCKS) <= types
    for _, blocks in BLOCKS.values():
        assert all(b.reg in REGISTRATIONS and (not b.race or b.race in RACES)
                   and (not b.superseded or (b.superseded in SUPERSEDED and b.reg == "will-init")) for b in blocks)


def test_doc_is_in_sync() -> None:
    """docs/coverage-cells.md carries the rendered tables (regenerate:
    ``python -m harness.reports.cells docs/coverage-cells.md``)."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "coverage-cells.md").read_text()
    section = doc[doc.index(DOC_BEGIN):doc.index(DOC_END) + len(DOC_END)]
    assert section == render_universe((PG15, PG16, PG17, PG18))


def test_cli_shows_race_only_cells(tmp_path: Path) -> None:
    """``redodiff coverage --cells`` lists a reached race-only cell as such, not as unexpected."""
    import json

    from click.testing import CliRunner

    from harness.cli.reports import coverage

    rep = tmp_path / "r.json"
    rep.write_text(json.dumps({"pg_version": "postgres (PostgreSQL) 15.20", "coverage_cells": {
        "cells": {"Btree/NEWROOT|main|image-applied": 1, "Heap/INSERT|main|data": 2}}}))
    res = CliRunner().invoke(coverage, [str(rep), "--cells"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if "Btree/NEWROOT|main|image-applied" in x)
    assert "race-only" in line and "not in the universe" not in res.output
