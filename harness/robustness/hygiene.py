"""Resource hygiene of the fuzz loop: run many iterations and watch what the
process holds — open files, child processes, PostgreSQL server processes,
temporary directories, threads, memory — sampled every K iterations.

The campaign runs with ``tempfile.tempdir`` pointed at a private base
directory, so every cluster, snapshot and wal-redo scratch directory it makes
lands there and nothing else on the machine blurs the counts. Growth is
measured from the first sample after warm-up (iteration K: imports done,
caches filled, the wal-redo server started, a cluster or two made) to the last
one; the final sample, after the campaign closed its pool and engines, must
be back at the start-up baseline (the wal-redo server's scratch template and
spare directories, kept for reuse until the process exits, excepted).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oracles.pgbin import PgInstall

# bounds on growth between the warm-up sample and the last one (server processes and
# temporary directories: from the first sample with as many pool clusters alive as
# the last, since the pool makes one cluster per initdb key when it first needs it)
DEFAULT_BOUNDS = {
    "fds": 4,  # open file descriptors
    "children": 0,  # direct child processes (the wal-redo server)
    "server_processes": 0,  # PostgreSQL processes running in our directories
    "tempdirs": 0,  # entries in the private temporary base
    "threads": 0,
    "rss_mb": 64,  # resident memory, MB (the report itself grows a little per iteration)
}
# what may stay after the campaign closed everything: the wal-redo scratch
# template and spares (oracles.walredo_server keeps them until exit)
KEPT_UNTIL_EXIT = ("redodiff-walredo-",)
MAX_CLUSTERS = 4  # ClusterPool: one per (data_checksums, wal_log_hints)
PER_CLUSTER_SCALED = ("server_processes", "tempdirs")


@dataclass
class Sample:
    iteration: int
    seconds: float
    fds: int
    children: int
    server_processes: int
    clusters: int
    tempdirs: int
    threads: int
    rss_mb: float
    shm_segments: int  # /dev/shm/PostgreSQL.* machine-wide (other users' clusters count too)
    tempdir_kinds: dict[str, int] = field(default_factory=dict)


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _children() -> int:
    me = os.getpid()
    n = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{d}/stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == me:
                    n += 1
    return n


def _processes_under(base: Path) -> int:
    """Processes whose working directory is under ``base`` (PostgreSQL's is its PGDATA)."""
    prefix = str(base)
    n = 0
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{d}/cwd").startswith(prefix):
                    n += 1
    return n


def _settled(count: Callable[[], int], reads: int = 6, pause: float = 0.1) -> int:
    """The lowest of a few quick reads: a backend whose connection just closed may
    still be exiting when we look; a leaked process is there every time."""
    low = count()
    for _ in range(reads - 1):
        if low == 0:
            break
        time.sleep(pause)
        low = min(low, count())
    return low


def _kind(name: str) -> str:
    parts = name.split("-")
    return "-".join(parts[:2]) + "-" if len(parts) > 2 else name


def take_sample(base: Path, iteration: int, t0: float) -> Sample:
    entries = list(base.iterdir()) if base.exists() else []
    kinds = Counter(_kind(p.name) for p in entries)
    shm = 0
    with contextlib.suppress(OSError):
        shm = sum(1 for n in os.listdir("/dev/shm") if n.startswith("PostgreSQL."))
    return Sample(
        iteration=iteration,
        seconds=round(time.monotonic() - t0, 1),
        fds=len(os.listdir("/proc/self/fd")),
        children=_settled(_children),
        server_processes=_settled(lambda: _processes_under(base)),
        clusters=kinds.get("redodiff-pg-", 0),
        tempdirs=len(entries),
        threads=threading.active_count(),
        rss_mb=round(_rss_mb(), 1),
        shm_segments=shm,
        tempdir_kinds=dict(kinds),
    )


@dataclass
class HygieneReport:
    iterations: int
    every: int
    engines: list[str]
    profile: str
    seed: int
    base: str
    samples: list[Sample] = field(default_factory=list)
    after: Sample | None = None  # once the campaign closed its pool and engines
    seconds: float = 0.0
    infrastructure_errors: int = 0
    divergences: int = 0
    step_errors: int = 0
    records: int = 0
    pages_checked: int = 0
    bounds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_BOUNDS))

    def growth(self) -> dict[str, float]:
        """Last sample minus the warm-up sample (the first one after iteration 0);
        for server processes and temporary directories, minus the first sample
        with as many clusters alive as the last."""
        run = [s for s in self.samples if s.iteration > 0]
        if len(run) < 2:
            return {}
        a, b = run[0], run[-1]
        same = next(s for s in run if s.clusters == b.clusters)
        return {k: round(getattr(b, k) - getattr(same if k in PER_CLUSTER_SCALED else a, k), 1)
                for k in DEFAULT_BOUNDS}

    def peaks(self) -> dict[str, float]:
        return {k: max(getattr(s, k) for s in self.samples) for k in (*DEFAULT_BOUNDS, "clusters")}

    def leftovers(self) -> dict[str, float]:
        """What the closed campaign still holds compared with the start-up baseline."""
        if self.after is None or not self.samples:
            return {}
        a, z = self.samples[0], self.after
        kept = sum(n for k, n in z.tempdir_kinds.items() if k.startswith(KEPT_UNTIL_EXIT))
        return {"fds": z.fds - a.fds, "children": z.children - a.children,
                "server_processes": z.server_processes - a.server_processes,
                "tempdirs": z.tempdirs - kept - a.tempdirs, "threads": z.threads - a.threads}

    def violations(self) -> list[str]:
        out = [f"{k} grew by {v} (bound {self.bounds[k]})" for k, v in self.growth().items() if v > self.bounds[k]]
        if self.samples and self.peaks()["clusters"] > MAX_CLUSTERS:
            out.append(f"{self.peaks()['clusters']} clusters alive at once (the pool keeps {MAX_CLUSTERS})")
        out += [f"{k}: {v} more after the campaign closed than before it started"
                for k, v in self.leftovers().items() if v > 0]
        return out

    @property
    def passed(self) -> bool:
        return not self.violations()

    def to_json(self) -> dict[str, Any]:
        return {
            "iterations": self.iterations,
            "sample_every": self.every,
            "engines": self.engines,
            "profile": self.profile,
            "seed": self.seed,
            "seconds": round(self.seconds, 1),
            "temp_base": self.base,
            "bounds": self.bounds,
            "growth": self.growth(),
            "peaks": self.peaks() if self.samples else {},
            "leftovers_after_close": self.leftovers(),
            "kept_until_exit": {k: v for k, v in (self.after.tempdir_kinds if self.after else {}).items()
                                if k.startswith(KEPT_UNTIL_EXIT)},
            "violations": self.violations(),
            "passed": self.passed,
            "infrastructure_errors": self.infrastructure_errors,
            "divergences": self.divergences,
            "step_errors": self.step_errors,
            "records": self.records,
            "pages_checked": self.pages_checked,
            "samples": [asdict(s) for s in self.samples],
            "after": asdict(self.after) if self.after else None,
        }


def run_hygiene(
    iterations: int,
    *,
    every: int = 50,
    seed: int = 0,
    profile: str = "tiny",
    engines: tuple[str, ...] = ("pyredo", "walredo"),
    bounds: dict[str, float] | None = None,
    keep_base: bool = False,
    progress: Callable[[Sample], None] | None = None,
    pg: PgInstall | None = None,
) -> HygieneReport:
    """Run ``iterations`` fuzz iterations, sampling every ``every``, on ``pg`` (None: the
    default PostgreSQL); see the module doc."""
    from harness.campaign.fuzz import FuzzConfig, FuzzReport, run_campaign
    from harness.verify.engines import EngineSet

    base = Path(tempfile.mkdtemp(prefix="redodiff-hygiene-"))
    base.chmod(0o755)  # the server user walks through it to its data directories
    rep = HygieneReport(iterations, every, list(engines), profile, seed, str(base))
    if bounds:
        rep.bounds.update(bounds)
    old_tempdir = tempfile.tempdir
    tempfile.tempdir = str(base)
    t0 = time.monotonic()
    try:
        rep.samples.append(take_sample(base, 0, t0))
        cfg = FuzzConfig(seed=seed, iterations=iterations, engines=EngineSet(names=engines, pg=pg), profile=profile)

        def on_iteration(fr: FuzzReport) -> None:
            if fr.iterations % every == 0 or fr.iterations == iterations:
                s = take_sample(base, fr.iterations, t0)
                rep.samples.append(s)
                if progress is not None:
                    progress(s)

        fr = run_campaign(cfg, progress=on_iteration)
        rep.after = take_sample(base, fr.iterations, t0)
        rep.seconds = time.monotonic() - t0
        rep.infrastructure_errors = len(fr.infrastructure_errors)
        rep.divergences = len(fr.divergences)
        rep.step_errors = fr.step_errors
        rep.records, rep.pages_checked = fr.records, fr.pages_checked
    finally:
        tempfile.tempdir = old_tempdir
        if not keep_base:
            shutil.rmtree(base, ignore_errors=True)
    return rep
