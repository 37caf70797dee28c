"""The fuzz campaign: generate workloads, run them, redo twice, compare, bundle.

Iteration ``i`` of a campaign with seed ``S`` runs the workload of seed
``iteration_seed(S, i)``, so any iteration replays alone (``redodiff replay
--seed``). ``--shard K/N`` takes the iterations with ``i % N == K-1``; several
``--workers`` (processes, each with its own clusters) pull iterations from a
shared counter (harness.campaign.workers). A run ends at its budget or iteration
count, or on a stop request (``FuzzConfig.interrupts``: Ctrl-C or SIGTERM, see
harness.interrupts) — the iteration in progress stops part-way, every bundle
written so far and the report are kept, every cluster and wal-redo server is stopped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from generators import generate
from generators.capabilities import fit_workload
from harness.campaign.iteration import IterationResult, run_workload
from harness.campaign.workers import run_parallel
from harness.clusters.pool import ClusterPool, parse_cluster_spec
from harness.interrupts import Interrupts
from harness.reports.coverage import corpus_counts_json, read_corpus_cells, read_corpus_counts
from harness.reports.schema import FuzzReport as FuzzReport  # the report's schema; re-exported
from harness.reports.schema import IterationSummary
from harness.selftest.faults import FaultPlan
from harness.verify.engines import EngineSet
from oracles.pgbin import PgInstall, default_install

ITERATION_BITS = 20


def iteration_seed(seed: int, index: int) -> int:
    """The workload seed of iteration ``index`` of a campaign seeded ``seed``."""
    return (seed << ITERATION_BITS) | index


@dataclass
class FuzzConfig:
    seed: int = 0
    budget: float | None = None  # seconds
    iterations: int | None = None
    workers: int = 1
    shard: tuple[int, int] = (1, 1)
    engines: EngineSet = field(default_factory=EngineSet)
    profile: str = "ci"
    corpus: Path | None = None
    cluster_dir: Path | None = None
    cluster: str | None = None  # where clusters run: local | docker:IMAGE (None: local)
    faults: FaultPlan | None = None  # infrastructure faults to inject (harness.selftest.faults); None: none
    interrupts: Interrupts = field(default_factory=Interrupts)  # the run's stop request (shared with workers)
    workload: str = "generated"  # or "pg-regress": PostgreSQL's regression suite (harness.campaign.regress)
    interleave: bool = False  # pg-regress: the suite's files interleaved with a generated workload's steps

    def __post_init__(self) -> None:
        k, n = self.shard
        if not 1 <= k <= n:
            raise ValueError(f"shard {k}/{n}: K must be between 1 and N")
        if self.budget is None and self.iterations is None:
            raise ValueError("give a budget (seconds) or a number of iterations")
        if self.cluster is not None:
            parse_cluster_spec(self.cluster)  # ValueError on a bad spec

    @property
    def pg(self) -> PgInstall:
        """The PostgreSQL the campaign runs (``EngineSet.pg``; None there: the default one)."""
        return self.engines.pg if self.engines.pg is not None else default_install()

    @property
    def mutant(self) -> str | None:
        """The pyredo mutant the engines run with (``EngineSet.mutant``; workers rebuild it)."""
        return self.engines.mutant

    def global_index(self, j: int) -> int:
        """The j-th iteration of this shard, as a campaign-wide index."""
        k, n = self.shard
        return j * n + (k - 1)

    @property
    def bundle_dir(self) -> Path | None:
        return self.corpus / "bundles" if self.corpus else None

    def more(self, j: int, deadline: float | None) -> bool:
        """Start the j-th iteration of this shard? Not past the count, the budget, or a stop request."""
        return (not self.interrupts.pending and (self.iterations is None or j < self.iterations)
                and (deadline is None or time.monotonic() < deadline))

    def pool(self, base_dir: Path | None = None) -> ClusterPool:
        """The clusters of this campaign (of one worker: under ``base_dir``)."""
        return ClusterPool(base_dir=base_dir or self.cluster_dir, cluster_spec=self.cluster, pg=self.engines.pg,
                           interrupts=self.interrupts)


ProgressFn = Callable[[FuzzReport], None]


def spread_over_majors(cfg: FuzzConfig, engine_sets: Sequence[EngineSet]) -> list[FuzzConfig]:
    """``fuzz --pg all``: the campaign dealt over the majors, one after another. The k-th of
    M majors runs the iterations ``i`` with ``i % M == k`` (the campaign's shard k+1/M, so
    every iteration keeps its seed and replays alone with ``replay --seed S --pg V``), with
    its own engines and a budget of budget/M; a major dealt no iteration is left out."""
    if cfg.shard != (1, 1):
        raise ValueError("several majors deal the campaign's iterations among themselves: give --shard "
                         "with one --pg MAJOR (a CI matrix runs a job per major)")
    m = len(engine_sets)
    out = []
    for k, es in enumerate(engine_sets):
        n = None if cfg.iterations is None else len(range(k, cfg.iterations, m))
        if n == 0:
            continue
        out.append(replace(cfg, shard=(k + 1, m), iterations=n, engines=es,
                           budget=None if cfg.budget is None else cfg.budget / m))
    return out


def _run_one(pool: ClusterPool, cfg: FuzzConfig, gi: int, pg_version: str) -> IterationSummary:
    seed = iteration_seed(cfg.seed, gi)
    if cfg.workload == "pg-regress":
        from harness.campaign.regress import pg_regress_workload

        wl = pg_regress_workload(cfg.pg.major, seed, cfg.profile, interleave=cfg.interleave)
    else:
        wl = generate(seed, cfg.profile)
    wl = fit_workload(wl, cfg.pg.capabilities)
    res: IterationResult = run_workload(pool, wl, cfg.engines, index=gi, bundle_dir=cfg.bundle_dir,
                                        pg_version=pg_version, faults=cfg.faults)
    out = res.summary()
    if res.report and not res.report.clean and cfg.corpus:
        try:
            seeds = cfg.corpus / "seeds"
            seeds.mkdir(parents=True, exist_ok=True)
            _atomic_write(seeds / f"{seed}.json", wl.dumps() + "\n")
        except OSError as e:  # disk full, read-only: the campaign goes on, the report says so
            out.add_infrastructure_error(f"could not save seed {seed}: {e}")
    return out


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:  # a full disk leaves neither half a file nor the temporary
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def run_campaign(cfg: FuzzConfig, progress: ProgressFn | None = None) -> FuzzReport:
    """Run the campaign; returns the report (also on Ctrl-C, with ``interrupted``)."""
    rep = FuzzReport(seed=cfg.seed, shard=f"{cfg.shard[0]}/{cfg.shard[1]}", engines=list(cfg.engines.names),
                     profile=cfg.profile, pg_version=cfg.pg.server_version)
    if cfg.bundle_dir:
        cfg.bundle_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    deadline = t0 + cfg.budget if cfg.budget is not None else None
    try:
        if cfg.workers <= 1:
            _serial(cfg, rep, deadline, progress)
        else:
            run_parallel(cfg, rep, deadline, progress, _run_one)
    except KeyboardInterrupt:  # Interrupted (immediate), or Ctrl-C where no handler of ours is installed
        rep.interrupted = True
    finally:
        rep.interrupted |= cfg.interrupts.pending
        rep.seconds = time.monotonic() - t0
        with cfg.interrupts.holding():
            cfg.engines.close()
    return rep


def _serial(cfg: FuzzConfig, rep: FuzzReport, deadline: float | None, progress: ProgressFn | None) -> None:
    pg_version = cfg.pg.server_version
    with cfg.pool() as pool:
        j = 0
        while cfg.more(j, deadline):
            rep.add(_run_one(pool, cfg, cfg.global_index(j), pg_version))
            j += 1
            if progress:
                progress(rep)


def write_outputs(rep: FuzzReport, report_path: Path | None, junit_path: Path | None, corpus: Path | None) -> None:
    if report_path:
        _atomic_write(report_path, json.dumps(rep.to_json(), indent=2) + "\n")
    if junit_path:
        _atomic_write(junit_path, rep.junit_xml())
    if corpus:
        cov_path = corpus / "coverage.json"
        total: Counter[str] = Counter()
        cells: Counter[str] = Counter()
        if cov_path.exists():
            with contextlib.suppress(ValueError, OSError):
                total.update(read_corpus_counts(cov_path))
                cells.update(read_corpus_cells(cov_path))
        total.update(rep.record_types)
        cells.update(rep.cells)
        try:
            corpus.mkdir(parents=True, exist_ok=True)
            _atomic_write(cov_path, json.dumps(corpus_counts_json(total, cells), indent=2) + "\n")
        except OSError as e:  # the report (written first) has it all; the old coverage.json is intact
            logging.getLogger("redodiff.fuzz").warning("could not update %s: %s", cov_path, e)


def write_major_outputs(reps: Sequence[FuzzReport], report_path: Path | None, junit_path: Path | None,
                        corpus: Path | None) -> None:
    """``fuzz --pg all``: one report of the majors' campaigns -- their merge (counts summed,
    findings joined; ``pg_version`` absent, as the majors differ) with each major's own report
    under ``"majors"`` (keyed by major: its coverage is measured against its own record types)
    -- a JUnit file with a test suite per major, and the corpus's running coverage."""
    if report_path:
        merged = FuzzReport.merged(reps).to_json()
        merged["majors"] = {(r.pg_version or "?").split()[-1].split(".")[0]: r.to_json() for r in reps}
        _atomic_write(report_path, json.dumps(merged, indent=2) + "\n")
    if junit_path:
        suites = [r.junit_xml().split("\n", 1)[1] for r in reps]  # each without its XML declaration
        _atomic_write(junit_path, '<?xml version="1.0" encoding="utf-8"?>\n<testsuites>\n'
                      + "".join(suites) + "</testsuites>\n")
    for r in reps:
        write_outputs(r, None, None, corpus)
