"""Ctrl-C and SIGTERM on a running command (fuzz, check, replay, selftest, gate,
minimize): it stops wherever it is (a workload statement, the check of a page, a
wal-redo request in flight, a bundle), keeps what it found, says so in its report,
and leaves no server, worker or directory behind. Each test waits for a progress
signal (a statement running, a server up, a bundle written, a line printed), then
signals; no test measures how long the exit took (``redodiff bench interrupt``
does, under load). Tests that need a whole campaign are marked ``slow``."""

from __future__ import annotations

import json
import shutil
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from cli_run import CliRun

from harness.bench.interrupt import (
    MUTANT,
    SLEEP_STEP,
    large_seeds,
    sleeping_statements,
    walredo_running,
)
from harness.campaign.bundle import read_bundle
from harness.campaign.gate import run_gate
from harness.campaign.minimize import minimize_bundle
from harness.clusters.local import LocalCluster
from harness.interrupts import Interrupted, Interrupts
from harness.robustness.leftovers import cluster_dirs, processes
from harness.verify.engines import EngineSet
from pyredo.wal.lsn import format_lsn

BOTH = ("--engine", "pyredo", "--engine", "walredo")
# a wal-redo server that never answers: a request stays in flight until the client gives up
# (its name, under the run's directory, lets the test see it running)
HUNG_WALREDO = ("--walredo-cmd", f"{sys.executable} -c 'import time; time.sleep(3600)' {{root}}/hung-walredo")


def _report(run: CliRun) -> dict[str, Any]:
    return dict(json.loads(run.path("report.json").read_text()))


def _new_run(*extra: str) -> CliRun:
    return CliRun("fuzz", "--budget", "3600", "--corpus", "{root}/corpus", "--report", "{root}/report.json", *extra)


@pytest.mark.slow  # a campaign
def test_ctrl_c_cancels_the_running_statement() -> None:
    """A workload statement that would run for an hour is cancelled; the iteration
    is recorded as interrupted, with nothing verified."""
    with _new_run("--seed", "5", "--faults", f"step_sleep={SLEEP_STEP}@0") as run:
        run.wait_for(lambda: sleeping_statements(run.tmp), "the sleeping statement")
        rc = run.stop(signal.SIGINT)
        assert rc == 0, run.output[-2000:]
        assert "interrupted" in run.output
        rep = _report(run)
        last = rep["iteration_results"][-1]
        assert rep["interrupted"] is True and last["interrupted"] is True
        assert last["records"] == 0 and last["pages_checked"] == 0 and not rep["infrastructure_errors"]
        assert run.leftovers() == []


@pytest.mark.slow  # a campaign
def test_ctrl_c_during_the_check_keeps_what_was_found() -> None:
    """SIGTERM while a large iteration's pages are being redone by both engines: the
    pages not reached are said so (never counted as verified), the divergences found
    so far are bundled, and every cluster and wal-redo server is gone."""
    seed = large_seeds(1, 1)[0]
    with _new_run("--seed", str(seed), "--profile", "nightly", "--mutant", MUTANT, *BOTH) as run:
        run.wait_for(lambda: walredo_running(run.tmp), "the wal-redo server (the check began)")
        rc = run.stop(signal.SIGTERM)
        assert rc in (0, 1), run.output[-2000:]
        rep = _report(run)
        assert rep["interrupted"] is True
        assert rep["pages_skipped"].get("not reached: interrupted", 0) > 0
        on_disk = sorted(p for p in run.path("corpus/bundles").iterdir())
        assert not [p for p in on_disk if p.name.startswith(".tmp-")]
        bundled = {d["bundle"] for d in rep["divergences"] if d["bundle"]}
        assert bundled <= {str(p) for p in on_disk}
        if rep["divergences"]:
            assert bundled, "divergences found before the stop were not bundled"
        for p in on_disk:
            assert read_bundle(p).records
        assert run.leftovers() == []


@pytest.mark.slow  # a campaign
def test_ctrl_c_keeps_every_bundle_written() -> None:
    """Ctrl-C once bundles are being written: every bundle on disk is whole and in
    the report; no half-written temporary bundle is left."""
    with _new_run("--seed", "5", "--mutant", MUTANT) as run:
        bundles = run.path("corpus/bundles")
        run.wait_for(lambda: bundles.is_dir() and any(not p.name.startswith(".") for p in bundles.iterdir()),
                     "a bundle")
        rc = run.stop(signal.SIGINT)
        assert rc in (0, 1), run.output[-2000:]
        rep = _report(run)
        assert rep["interrupted"] is True
        on_disk = sorted(bundles.iterdir())
        assert on_disk and not [p for p in on_disk if p.name.startswith(".tmp-")]
        verdicts = {d["bundle"]: d.get("verdict") or "" for d in rep["divergences"] if d["bundle"]}
        for p in on_disk:
            b = read_bundle(p)
            assert b.records and b.pages
            # the primary's page is the witness, unless its relation was gone by the end
            # (a workout's table, dropped): then the bundle says so
            assert "primary" in b.pages or "block absent on the primary" in verdicts[str(p)], p
        assert verdicts and set(verdicts) <= {str(p) for p in on_disk}
        assert run.leftovers() == []


@pytest.mark.slow  # a campaign
def test_a_second_signal_stops_at_once_and_still_leaves_nothing() -> None:
    with _new_run("--seed", "5", "--faults", f"step_sleep={SLEEP_STEP}@0", *BOTH) as run:
        run.wait_for(lambda: sleeping_statements(run.tmp), "the sleeping statement")
        rc = run.stop(signal.SIGINT, signal.SIGINT)
        assert rc == 0, run.output[-2000:]
        assert _report(run)["interrupted"] is True
        assert run.leftovers() == []


@pytest.mark.slow  # a campaign
def test_every_worker_stops() -> None:
    """--workers 2, both in a statement that only a cancel ends: Ctrl-C to the parent
    stops both workers, their clusters, and the parent."""
    with _new_run("--seed", "5", "--workers", "2", "--faults", f"step_sleep={SLEEP_STEP}@0+1") as run:
        run.wait_for(lambda: sleeping_statements(run.tmp) >= 2, "both workers' sleeping statements")
        rc = run.stop(signal.SIGINT)
        assert rc == 0, run.output[-2000:]
        rep = _report(run)
        assert rep["interrupted"] is True
        assert [r["interrupted"] for r in rep["iteration_results"]] == [True, True]
        assert run.leftovers() == []


@pytest.mark.slow  # a campaign
def test_leftovers_are_found_and_cleared() -> None:
    """The check this file relies on sees a server left running (a campaign killed
    before its cleanup could run), and clearing stops it."""
    # one process (fuzz defaults to a worker per core): its clusters lie directly in the run's directory
    with _new_run("--seed", "5", "--workers", "1", "--faults", f"step_sleep={SLEEP_STEP}@0") as run:
        run.wait_for(lambda: sleeping_statements(run.tmp), "the sleeping statement")
        run.stop(signal.SIGKILL)
        left = run.leftovers()
        assert any("postgres" in x for x in left) and any(x.startswith("redodiff-pg-") for x in left)
    assert not run.root.exists() and processes(run.tmp) == []


# -- the commands built on campaigns: in-process, with the stop request of a signal ------------
def _copy(bundle: Path, corpus: Path, n: int) -> None:
    for i in range(n):
        shutil.copytree(bundle, corpus / "bundles" / f"{bundle.name}-{i}")


@pytest.mark.slow  # mutant_bundle: a campaign
def test_the_gate_stops_between_saved_cases(tmp_path: Path, mutant_bundle: Path) -> None:
    """Asked to stop as its first case ends, the gate runs no other: neither passed nor failed."""
    corpus = tmp_path / "corpus"
    _copy(mutant_bundle, corpus, 3)
    it = Interrupts()
    res = run_gate(corpus, EngineSet(mutant=MUTANT), budget=600, progress=lambda line: it.request(), interrupts=it)
    assert res.interrupted and not res.passed
    assert len(res.cases) == 1 and res.fuzz is None


@pytest.mark.slow  # mutant_bundle: a campaign
def test_minimize_stops_after_the_trial_in_progress(tmp_path: Path, mutant_bundle: Path) -> None:
    """Asked to stop during a trial, minimization raises Interrupted, writes no bundle,
    and its clusters are shut down (the session's leak check sees any that is not)."""
    it = Interrupts()
    trials: list[str] = []

    def log(line: str) -> None:
        trials.append(line)
        it.request()

    with pytest.raises(Interrupted):
        minimize_bundle(read_bundle(mutant_bundle), EngineSet(mutant=MUTANT), out_dir=tmp_path / "out",
                        log=log, interrupts=it)
    assert len(trials) == 1  # the trial in progress finished; no other began
    assert not (tmp_path / "out").exists()


# -- check, replay, selftest, gate, minimize on the command line ------------------------------
def _hung_walredo(run: CliRun) -> bool:
    """Is the never-answering server running (not just named on redodiff's command line)?"""
    return any(p.cmdline.endswith("/hung-walredo") and "harness.cli" not in p.cmdline for p in processes(run.tmp))


def _a_cluster(run: CliRun) -> bool:
    return bool(cluster_dirs(run.tmp))


@pytest.fixture
def wal_range(pg: LocalCluster) -> tuple[str, str, Path]:
    """A WAL range of the session cluster that touches a few dozen pages: (start, end, pgdata)."""
    rel = f"interrupt_{uuid.uuid4().hex[:8]}"
    start = pg.checkpoint()
    pg.execute(f"CREATE TABLE {rel} (a int, b text)")
    pg.execute(f"INSERT INTO {rel} SELECT g, repeat('x', 200) FROM generate_series(1, 2000) g")
    end = pg.current_lsn()
    pg.checkpoint()
    return format_lsn(start), format_lsn(end), pg.pgdata


@pytest.mark.parametrize("signals", [(signal.SIGINT,), (signal.SIGTERM, signal.SIGINT)], ids=["once", "twice"])
def test_check_stops_during_a_wal_redo_request(wal_range: tuple[str, str, Path], signals: tuple[int, ...]) -> None:
    """`redodiff check` whose wal-redo server never answers (a 20 s request timeout):
    the stop gives the request in flight a short grace, kills the server, writes the
    report marked interrupted with the pages not reached, exits 130, leaves nothing.
    A second signal (immediate) still writes the report and leaves nothing."""
    start, end, pgdata = wal_range
    with CliRun("check", "--pgdata", str(pgdata), "--start", start, "--end", end, *BOTH, *HUNG_WALREDO,
                "--report", "{root}/report.json") as run:
        run.wait_for(lambda: _hung_walredo(run), "the wal-redo request in flight")
        rc = run.stop(*signals)
        assert rc == 130, run.output[-2000:]
        rep = _report(run)
        assert rep["interrupted"] is True and rep["pages_skipped"]["not reached: interrupted"] > 1
        assert rep["divergences"] == [] and rep["pages_checked"] == 0  # the stop's failure is no finding
        assert run.leftovers() == []


def test_replay_of_a_seed_stops_and_shuts_its_cluster_down() -> None:
    with CliRun("replay", "--seed", "5", *BOTH) as run:
        run.wait_for(lambda: _a_cluster(run), "the workload's cluster")
        rc = run.stop(signal.SIGINT)
        assert rc == 130 and "interrupted" in run.output, run.output[-2000:]
        assert run.leftovers() == []


@pytest.mark.slow  # mutant_bundle: a campaign
def test_replay_of_a_bundle_stops_during_a_wal_redo_request(mutant_bundle: Path) -> None:
    with CliRun("replay", str(mutant_bundle), *BOTH, *HUNG_WALREDO) as run:
        run.wait_for(lambda: _hung_walredo(run), "the wal-redo request in flight")
        rc = run.stop(signal.SIGINT)
        assert rc == 130 and "interrupted" in run.output, run.output[-2000:]
        assert run.leftovers() == []


def test_selftest_stops_and_writes_its_report() -> None:
    """Stopped during its control campaign: the report is written and says
    interrupted, no mutant is counted, its work directory is gone."""
    with CliRun("selftest", "--only", MUTANT, "--engine", "pyredo", "--budget-per-mutant", "3600",
                "--minimize-trials", "0", "--report", "{root}/report.json") as run:
        run.wait_for(lambda: "control" in run.output and _a_cluster(run), "the control campaign's cluster")
        rc = run.stop(signal.SIGTERM)
        assert rc == 1, run.output[-2000:]
        rep = _report(run)
        assert rep["interrupted"] is True and rep["control"]["interrupted"] is True and rep["mutants"] == []
        assert run.leftovers() == []


def test_gate_stops_during_its_fuzz_campaign() -> None:
    with CliRun("gate", "--corpus", "{root}/corpus", "--budget", "3600", *BOTH) as run:
        run.wait_for(lambda: _a_cluster(run), "the gate's fuzz cluster")
        rc = run.stop(signal.SIGINT, signal.SIGINT)
        assert rc == 130 and "gate interrupted" in run.output, run.output[-2000:]
        assert run.leftovers() == []


@pytest.mark.slow  # mutant_bundle: a campaign
def test_minimize_on_the_command_line_stops_and_writes_no_bundle(mutant_bundle: Path) -> None:
    with CliRun("minimize", str(mutant_bundle), "--out", "{root}/minimized", "--mutant", MUTANT) as run:
        run.wait_for(lambda: _a_cluster(run), "a trial's cluster")
        rc = run.stop(signal.SIGINT)
        assert rc == 130 and "interrupted" in run.output, run.output[-2000:]
        assert not run.path("minimized").exists()
        assert run.leftovers() == []
