"""The mutation self-test end to end: a small subset of mutants is caught within a
short budget, the unmutated pyredo raises no alarm over the same budget, and the
run stops cleanly (report kept, nothing global changed) on Ctrl-C."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.selftest.catalog import CATALOG
from harness.selftest.mutants import MutantStats
from harness.selftest.runner import SelftestConfig, mutant_seed, run_selftest, walredo_available
from harness.verify.engines import EngineSet
from pyredo.rmgrlist import PG15

pytestmark = pytest.mark.slow  # whole campaigns: left out of the fast loop (-m "not slow")

BUDGET = 40.0  # seconds per mutant, and for the control campaign


@pytest.fixture(scope="module")
def engines() -> EngineSet:
    ok, _why = walredo_available()
    return EngineSet(names=("pyredo", "walredo") if ok else ("pyredo",))


def _subset(es: EngineSet) -> list[str]:
    """Three mutants on paths nearly every workload takes; with the wal-redo server,
    one of them is LSN-only (only the engine comparison can see it)."""
    first = "heap_insert_no_page_lsn" if es.uses_walredo else "heap_insert_ctid_off_by_one"
    return [first, "btree_newroot_no_root_flag", "heap2_prune_skips_compaction"]


def _redo_tables() -> dict[str, dict[int, Any]]:
    """PG15's redo columns and the rmgr modules' REDO tables: no mutant may change them."""
    out = {f"PG15.{r.module}": dict(r.redo) for r in PG15 if r.redo}
    for r in PG15:
        out[r.module] = dict(getattr(importlib.import_module(f"pyredo.rmgr.{r.module}"), "REDO", {}))
    return out


def test_selftest_catches_a_mutant_subset_and_the_control_is_clean(tmp_path: Path, engines: EngineSet) -> None:
    tables = _redo_tables()
    names = _subset(engines)
    report_path = tmp_path / "selftest.json"
    cfg = SelftestConfig(budget=BUDGET, names=names, engines=engines, minimize_trials=6, control=True,
                         workdir=tmp_path / "work")
    rep = run_selftest(cfg, report_path=report_path)
    assert _redo_tables() == tables, "a mutant changed a global table"

    # no false alarms: the unmutated pyredo over the same budget finds nothing
    assert rep.control is not None
    # however few iterations a busy machine fits in the budget, each verified pages
    assert rep.control["iterations"] >= 1 and rep.control["pages_checked"] > 0
    assert rep.control["divergences"] == 0, rep.control["divergence_list"]
    assert rep.false_alarms == 0

    # every mutant of the subset is caught, within the budget, by a divergence it caused
    assert [r.name for r in rep.results] == names
    for r in rep.results:
        assert r.caught, f"{r.name} survived: {r.survivor_reason}"
        assert r.seed == mutant_seed(r.name)
        # caught in an iteration the campaign started within its budget (however long it ran)
        assert r.seconds is not None and r.iterations is not None and 1 <= r.iterations <= r.iterations_run
        assert r.divergence and r.divergence["bundle"]
        assert r.probe["fired"] >= 1
        assert r.original_steps and r.original_steps >= 1
        if r.minimized_steps is not None:
            assert 1 <= r.minimized_steps <= r.original_steps
    assert rep.score == 1.0 and rep.passed

    data = json.loads(report_path.read_text())
    assert data["caught"] == data["total"] == len(names) and data["score"] == 1.0
    assert data["survivors"] == [] and data["control"]["divergences"] == 0
    for m in data["mutants"]:
        assert {"name", "rmgr", "caught", "seconds", "iterations", "steps", "minimized_steps"} <= set(m)


def test_ctrl_c_stops_the_selftest_and_leaves_nothing_changed(tmp_path: Path, engines: EngineSet) -> None:
    tables = _redo_tables()
    name = "heap_delete_free_space_off"

    def progress(event: str, data: Any) -> None:
        if event == "iteration":
            stats = data[3]
            assert isinstance(stats, MutantStats) and stats.name == name  # its engines run ...
            raise KeyboardInterrupt  # ... and the user hits Ctrl-C

    cfg = SelftestConfig(budget=BUDGET, names=[name, "btree_newroot_no_root_flag"], engines=engines,
                         minimize_trials=0, control=False, workdir=tmp_path / "work")
    rep = run_selftest(cfg, progress=progress, report_path=tmp_path / "r.json")
    assert rep.interrupted
    assert len(rep.results) <= 1  # the second mutant never started
    assert _redo_tables() == tables  # ... and no global table was ever changed
    assert json.loads((tmp_path / "r.json").read_text())["interrupted"] is True


def _redodiff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          cwd=Path(__file__).parents[2], timeout=120)


def test_cli_lists_the_catalog_and_refuses_unknown_mutants() -> None:
    listed = _redodiff("selftest", "--list")
    assert listed.returncode == 0, listed.stderr
    assert f"{len(CATALOG)} mutants" in listed.stdout
    unknown = _redodiff("selftest", "--only", "no_such_mutant")
    assert unknown.returncode == 2
    assert "unknown mutant" in unknown.stderr
