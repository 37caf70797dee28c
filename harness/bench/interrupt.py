"""``redodiff bench interrupt``: how long Ctrl-C takes, under load, and what it leaves.

A CPU hog runs on every core. For each point, ``trials`` fuzz campaigns (or
``redodiff check`` runs) with both engines are started, each as its own session
with a private temporary directory.
When a campaign reaches the point — seen from outside, by a progress signal, never
by guessing a time — it gets SIGINT (or SIGTERM), and the time to its exit is
measured. Then whatever it left is looked for: processes running in its temporary
directory or its session (PostgreSQL servers, wal-redo servers, workers) one
second after the exit, and ``redodiff-*`` directories. Leftovers are reported,
then cleared. The report tells whether the signal landed where it was meant to.

Points:

* ``workload`` — step 3 of the first workload is ``SELECT pg_sleep(3600)`` (fault
  ``step_sleep``); the signal comes once pg_stat_activity shows it running: the
  statement must be cancelled.
* ``check`` — a nightly iteration, of the largest workloads among the next seeds: the
  signal comes ``settle`` seconds after its wal-redo server started, i.e. during the
  page-by-page check; the report must show pages not reached.
* ``bundle`` — a mutant breaks heap insert redo, so divergences are bundled, each
  bundle write slowed by 300 ms (fault ``bundle_delay``, a slow disk); the signal
  comes when a bundle's temporary directory appears. With ``--workers 2`` both
  workers bundle, and the parent must stop them.
* ``check-command`` — ``redodiff check --pgdata`` of a large WAL range (a pgbench
  run on a throwaway cluster, made once before the trials): the signal comes
  ``settle`` seconds after its wal-redo server started, during the redo of the
  plan's pages; the report must show pages not reached.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.robustness.leftovers import cluster_dirs, end_session, processes, settled, temp_dirs
from oracles.pgbin import PgInstall

GOAL_SECONDS = 10.0
SLEEP_STEP = 3  # the workload step the ``workload`` point replaces with pg_sleep
MUTANT = "heap_insert_ctid_off_by_one"  # on a path every workload takes


@dataclass
class Trial:
    """One campaign of a point: its directories and process."""

    root: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def report(self) -> Path:
        return self.root / "report.json"

    @property
    def bundles(self) -> Path:
        return self.root / "corpus" / "bundles"


@dataclass(frozen=True)
class WalRange:
    """What a ``check-command`` trial verifies: a range of a cluster's WAL."""

    pgdata: Path
    start: str
    end: str


@dataclass(frozen=True)
class Point:
    name: str
    what: str
    args: tuple[str, ...]
    reached: Callable[[Trial], bool]  # the progress signal that says the campaign is there
    landed: Callable[[dict[str, Any]], bool]  # the report says the signal came there
    settle: float = 0.0  # seconds between the progress signal and the stop signal
    large: bool = False  # run the seeds whose first workload is largest
    command: str = "fuzz"  # or "check": `redodiff check` of the bench's large WAL range


def running_clusters(tmp: Path) -> Iterator[tuple[str, int]]:
    """(socket directory, port) of each running cluster under ``tmp`` (postmaster.pid)."""
    for d in cluster_dirs(tmp):
        with contextlib.suppress(OSError, ValueError, IndexError):
            lines = (d / "data" / "postmaster.pid").read_text().splitlines()
            yield lines[4], int(lines[3])


def sleeping_statements(tmp: Path) -> int:
    """How many statements of fault step_sleep run now, on the clusters under ``tmp``."""
    import psycopg

    n = 0
    for sockdir, port in running_clusters(tmp):
        with contextlib.suppress(psycopg.Error):  # a cluster starting or stopping
            with psycopg.connect(host=sockdir, port=port, user="postgres", dbname="postgres",
                                 connect_timeout=5, autocommit=True) as conn:
                row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                                   "AND query LIKE %s", (f"%step {SLEEP_STEP} sleeps%",)).fetchone()
            n += row[0] if row else 0
    return n


def walredo_running(tmp: Path) -> bool:
    """Does a wal-redo server run in a scratch cluster under ``tmp`` (a check has begun)?"""
    return any("--single" in p.cmdline and "pg_walredo.serve" in p.cmdline for p in processes(tmp))


def _bundle_in_progress(t: Trial) -> bool:
    return t.bundles.is_dir() and any(p.name.startswith(".tmp-") for p in t.bundles.iterdir())


def _interrupted(rep: dict[str, Any]) -> list[dict[str, Any]]:
    """The iterations a stop request ended part-way (one per worker at most)."""
    return [r for r in rep.get("iteration_results") or [] if r.get("interrupted")]


def _pages_not_reached(rep: dict[str, Any]) -> bool:
    return bool(rep.get("pages_skipped", {}).get("not reached: interrupted", 0) > 0)


POINTS = {
    "workload": Point("workload", f"step {SLEEP_STEP} runs SELECT pg_sleep(3600)",
                      ("--faults", f"step_sleep={SLEEP_STEP}@0"), lambda t: sleeping_statements(t.tmp) > 0,
                      lambda rep: any(r["index"] == 0 and r.get("records") == 0 for r in _interrupted(rep))),
    "check": Point("check", "a nightly iteration is being checked", ("--profile", "nightly"),
                   lambda t: walredo_running(t.tmp),
                   _pages_not_reached, settle=1.0, large=True),
    "bundle": Point("bundle", "a bundle is being written (writes slowed by 300 ms)",
                    ("--mutant", MUTANT, "--faults", "bundle_delay=300"), _bundle_in_progress,
                    lambda rep: any(any(r.get("bundles") or []) for r in _interrupted(rep))),
    "check-command": Point("check-command", "`redodiff check` of a large WAL range is redoing its pages", (),
                           lambda t: walredo_running(t.tmp), _pages_not_reached, settle=1.0, command="check"),
}


@dataclass
class TrialResult:
    reached: bool
    exit_seconds: float | None = None  # None: did not exit within the limit (then killed)
    landed: bool = False
    left_processes: list[str] = field(default_factory=list)
    left_dirs: list[str] = field(default_factory=list)
    returncode: int | None = None
    note: str = ""

    @property
    def left(self) -> bool:
        return bool(self.left_processes or self.left_dirs)


# a busy loop that looks up now and then whether its parent still lives
_HOG = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    for _ in range(50_000): pass\n"


@contextlib.contextmanager
def cpu_hogs(n: int) -> Iterator[list[int]]:
    """``n`` busy loops, each in a session of its own; killed on the way out, and each ends
    by itself once its parent is gone (a bench killed with SIGKILL leaves no hog behind)."""
    hogs = [subprocess.Popen([sys.executable, "-c", _HOG], start_new_session=True) for _ in range(n)]
    try:
        yield [h.pid for h in hogs]
    finally:
        for h in hogs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(h.pid, signal.SIGKILL)
            h.wait()


def _wait_for(reached: Callable[[], bool], proc: subprocess.Popen[bytes], limit: float) -> bool:
    """Poll until ``reached``; False when the process ended first (or ``limit`` passed)."""
    deadline = time.monotonic() + limit
    while proc.poll() is None and time.monotonic() < deadline:
        if reached():
            return True
        time.sleep(0.05)
    return False


def _command(point: Point, t: Trial, seed: int, workers: int, wal: WalRange | None,
             pg: PgInstall | None = None) -> list[str]:
    both = ("--engine", "pyredo", "--engine", "walredo",
            *(("--pg-bindir", str(pg.bindir)) if pg is not None else ()))
    if point.command == "check":
        assert wal is not None, "a check point needs the bench's WAL range"
        return [sys.executable, "-m", "harness.cli", "check", "--pgdata", str(wal.pgdata), "--start", wal.start,
                "--end", wal.end, *both, "--report", str(t.report), *point.args]
    return [sys.executable, "-m", "harness.cli", "fuzz", "--budget", "3600", "--seed", str(seed), *both,
            "--workers", str(workers), "--corpus", str(t.root / "corpus"), "--report", str(t.report), *point.args]


def run_trial(point: Point, seed: int, *, signum: int = signal.SIGINT, workers: int = 1,
              limit: float = 300.0, wal: WalRange | None = None, pg: PgInstall | None = None) -> TrialResult:
    t = Trial(Path(tempfile.mkdtemp(prefix="redodiff-bi-")))
    t.root.chmod(0o755)
    t.tmp.mkdir(mode=0o755)
    cmd = _command(point, t, seed, workers, wal, pg)
    log = open(t.root / "run.log", "wb")  # noqa: SIM115 - closed below
    try:
        t.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                  env={**os.environ, "TMPDIR": str(t.tmp), "PYTHONUNBUFFERED": "1"})
        return _interrupt(t, point, signum, limit)
    finally:
        log.close()
        _clean(t)


def _interrupt(t: Trial, point: Point, signum: int, limit: float) -> TrialResult:
    assert t.proc is not None
    if not _wait_for(lambda: point.reached(t), t.proc, limit):
        tail = (t.root / "run.log").read_bytes()[-500:].decode(errors="replace")
        return TrialResult(False, note=f"never reached (exit {t.proc.poll()}): {tail}")
    time.sleep(point.settle)
    t0 = time.monotonic()
    t.proc.send_signal(signum)
    try:
        rc = t.proc.wait(limit)
    except subprocess.TimeoutExpired:
        return TrialResult(True, None, note=f"still running {limit:g} s after the signal")
    res = TrialResult(True, time.monotonic() - t0, returncode=rc)
    res.left_processes = [str(p) for p in settled(lambda: processes(t.tmp, session=t.proc.pid if t.proc else None),
                                                  wait=1.0)]
    res.left_dirs = temp_dirs(t.tmp)
    with contextlib.suppress(OSError, ValueError):
        res.landed = point.landed(json.loads(t.report.read_text()))
    return res


def _clean(t: Trial) -> None:
    """Kill the campaign's session if it is still there, clear what it left, remove the trial."""
    end_session(t.proc, t.tmp)
    shutil.rmtree(t.root, ignore_errors=True)


def summarize(results: list[TrialResult]) -> dict[str, Any]:
    times = [r.exit_seconds for r in results if r.exit_seconds is not None]
    reached = [r for r in results if r.reached]
    return {
        "trials": len(results),
        "reached": len(reached),
        "landed": sum(r.landed for r in results),
        "median_s": round(statistics.median(times), 2) if times else None,
        "max_s": round(max(times), 2) if times else None,
        "not_exited": sum(1 for r in reached if r.exit_seconds is None),
        "left_behind": sum(r.left for r in results),
        "leftovers": sorted({x for r in results for x in r.left_processes + r.left_dirs})[:10],
        "notes": sorted({r.note for r in results if r.note})[:5],
    }


def large_seeds(first: int, n: int, profile: str = "nightly", pool: int = 5) -> list[int]:
    """The ``n`` campaign seeds among the next ``pool * n`` whose first workload has the
    most steps (a rough measure of the WAL it makes), in increasing order."""
    from generators import generate
    from harness.campaign.fuzz import iteration_seed

    steps = {s: len(generate(iteration_seed(s, 0), profile).steps) for s in range(first, first + pool * n)}
    return sorted(sorted(steps, key=lambda s: -steps[s])[:n])


@contextlib.contextmanager
def large_wal_range(scale: int = 2, transactions: int = 1000, pg_install: PgInstall | None = None) -> Iterator[WalRange]:
    """A throwaway cluster (stopped, kept for the block) whose WAL holds a pgbench
    initialization at ``scale`` and ``transactions`` per client: thousands of pages
    to check. wal_keep_size keeps the range's segments through the last checkpoints."""
    from harness.clusters.local import ClusterSettings, LocalCluster
    from oracles.pgbin import program
    from pyredo.wal.lsn import format_lsn

    with LocalCluster(ClusterSettings(gucs={"wal_keep_size": "4GB"}, pg=pg_install)) as pg:
        pgbench = pg_install.program("pgbench") if pg_install is not None else program("pgbench")
        bench = [pgbench, "-h", str(pg.sockdir), "-p", str(pg.port), "-U", "postgres"]
        start = pg.checkpoint()
        subprocess.run([*bench, "-i", "-s", str(scale), "-q", "postgres"], check=True, capture_output=True)
        subprocess.run([*bench, "-c", "2", "-t", str(transactions), "postgres"], check=True, capture_output=True)
        end = pg.current_lsn()
        pg.checkpoint()
        pg.stop()
        yield WalRange(pg.pgdata, format_lsn(start), format_lsn(end))


def run_bench(points: list[str], trials: int, *, hog: bool = True, seed: int = 1, workers: int = 1,
              signum: int = signal.SIGINT, pg: PgInstall | None = None,
              progress: Callable[[str, int, TrialResult], None] = lambda p, i, r: None) -> dict[str, Any]:
    """Every point ``trials`` times (seeds ``seed``, ``seed+1``, ...) under the CPU hog,
    on ``pg`` (None: the default PostgreSQL)."""
    out: dict[str, Any] = {"cores": os.cpu_count(), "hog": hog, "workers": workers,
                           "signal": signal.Signals(signum).name, "goal_max_s": GOAL_SECONDS, "points": {}}
    with contextlib.ExitStack() as stack:
        wal = (stack.enter_context(large_wal_range(pg_install=pg)) if any(POINTS[n].command == "check" for n in points)
               else None)  # made before the hog starts: it is setup, not what is measured
        stack.enter_context(cpu_hogs((os.cpu_count() or 1) if hog else 0))
        for name in points:
            point = POINTS[name]
            seeds = large_seeds(seed, trials) if point.large else list(range(seed, seed + trials))
            results = []
            for i, s in enumerate(seeds):
                r = run_trial(point, s, signum=signum, workers=workers, wal=wal, pg=pg)
                progress(name, i, r)
                results.append(r)
            out["points"][name] = {"what": point.what, **summarize(results)}
    pts = out["points"].values()
    out["passed"] = all(p["reached"] == p["trials"] and p["not_exited"] == 0 and p["left_behind"] == 0
                        and p["max_s"] is not None and p["max_s"] <= GOAL_SECONDS for p in pts)
    return out
