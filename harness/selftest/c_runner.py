"""C mutation self-test: does the harness find bugs in PostgreSQL's own redo code?

``redodiff selftest --c``. PostgreSQL 15 is built once from Debian's source
(``harness.clusters.pgbuild.build``); its built tree is copied to a work tree
(``work_tree``). For each C mutant (``harness.selftest.c_mutants``) the patch is applied
to the work tree, only what it touches is recompiled and the server reinstalled
(``patched``), and a fuzz campaign runs with that build as the subject: the workload
clusters and the wal-redo server run the mutated binaries, pyredo and the primary's
page are the witnesses. The campaign stops at the first divergence the mutant is
responsible for: replayed with the engines of the unpatched build, its bundle must
agree (otherwise it is a false alarm, counted and not a catch), and replayed with the
mutated build it must diverge again (otherwise a transient failure — a wal-redo server
that timed out under load — counted as unconfirmed, and the campaign goes on). Then the patch is
reverted and the server rebuilt. Recorded per mutant: caught, seconds and iteration
to the catch, the record type of the first divergence, the rebuild seconds, and
(with ``minimize_trials``) the minimized case size.

A mutant whose record types few workloads produce (Heap2/LOCK_UPDATED, Gin/DELETE_PAGE)
names the workload rules that produce them (``CMutant.aim``): its campaign draws them ten
times as often (the profile ``ci@rule,...``, ``generators.rules.profile_named``), and fixes
the settings without which redo never meets the state the patch mishandles
(``wal_log_hints=on``: a hint's full-page image); the others run the profile's ordinary
workloads. The report's ``probe.profile`` names the profile a mutant ran.

A control campaign on the unpatched build counts false alarms. The report is the
Python self-test's (``harness.selftest.runner.SelftestReport``, ``kind: "c"``), so
``redodiff report`` renders it the same way.

C mutants have no probe (pyredo's mutants count how often their routine fired), so
a survivor's reason comes from the campaign's coverage: not reached (no record of the
types the patched function redoes was verified), or reached but not seen (the patched
condition never arose, or its effect was masked or overwritten).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.campaign.fuzz import FuzzConfig
from harness.clusters.pgbuild import BuildPlan, Built, build, patched, plan, work_tree
from harness.interrupts import Interrupts
from harness.reports.schema import CampaignDivergence
from harness.selftest.c_mutants import CATALOG, MAJOR, CMutant, get
from harness.selftest.runner import (
    MutantResult,
    ProgressFn,
    SelftestConfig,
    SelftestReport,
    _bundle_diverges,
    _minimize,
    campaign_to_first_catch,
    clone_engines,
    mutant_seed,
    run_catalog,
    run_control,
)
from harness.verify.engines import EngineSet
from oracles.pgbin import PgInstall, from_bindir

Log = Callable[[str], None]


def _quiet(msg: str) -> None:
    pass


@dataclass
class CSelftestConfig:
    budget: float = 120.0  # seconds of fuzzing per mutant
    names: list[str] | None = None  # None: the whole C catalog
    engine_names: tuple[str, ...] = ("pyredo", "walredo")
    tag_layout: str = "neon"
    seed: int = 0
    profile: str = "ci"
    minimize_trials: int = 0
    control: bool = True
    workdir: Path | None = None
    min_score: float = 0.9
    cluster: str | None = None
    jobs: int | None = None
    interrupts: Interrupts = field(default_factory=Interrupts)
    log: Log = _quiet

    def mutants(self) -> list[CMutant]:
        return list(CATALOG.values()) if self.names is None else [get(n) for n in self.names]

    def engines(self, pg: PgInstall) -> EngineSet:
        return EngineSet(names=self.engine_names, tag_layout=self.tag_layout, pg=pg)

    def python_config(self, engines: EngineSet, workdir: Path) -> SelftestConfig:
        """The Python self-test's configuration over ``engines`` (for its control run and minimizer)."""
        return SelftestConfig(budget=self.budget, engines=engines, seed=self.seed, profile=self.profile,
                              minimize_trials=self.minimize_trials, control=self.control, workdir=workdir,
                              min_score=self.min_score, cluster=self.cluster, interrupts=self.interrupts)


def _survivor_reason(m: CMutant, res: MutantResult, engines: tuple[str, ...]) -> str:
    if res.error:
        return f"campaign failed: {res.error}"
    if not res.target_records_verified:
        return (f"not reached: no {' / '.join(m.record_types)} record on a verified page in "
                f"{res.iterations_run} iterations (a workload that produces one would reach {m.function})")
    seen = (f"reached: {res.target_records_verified} {' / '.join(m.record_types)} records verified, "
            f"no divergence")
    if m.masked and ("walredo" not in engines or "pyredo" not in engines):
        return seen + "; the change hides under the consistency masks and needs the engine comparison"
    return seen + (f": the condition {m.function} mishandles never arose, or its effect was overwritten "
                   "or masked (C mutants have no probe to tell which)")


def run_c_mutant(m: CMutant, cfg: CSelftestConfig, work: BuildPlan, clean: EngineSet, workdir: Path,
                 progress: ProgressFn | None = None) -> tuple[MutantResult, bool]:
    """Apply ``m`` to the work tree, rebuild, fuzz with the mutated build, revert."""
    seed = mutant_seed(m.name, cfg.seed)
    res = MutantResult(m.name, m.rmgr, m.record_type, m.category, m.masked, m.description, m.history, seed,
                       function=m.function)
    interrupted = False
    try:
        with patched(work, m.patch, cfg.log) as rebuild:
            res.rebuild_seconds = round(rebuild, 1)
            if progress:
                progress("rebuilt", (m, rebuild))
            es = cfg.engines(from_bindir(work.bindir, f"redodiff pg build {work.name} + {m.name}"))
            fcfg = FuzzConfig(seed=seed, budget=cfg.budget, engines=es, profile=cfg.profile + m.profile_aim,
                              corpus=workdir / m.name, cluster=cfg.cluster, interrupts=cfg.interrupts)

            def attributed(d: CampaignDivergence) -> bool | None:
                """The mutant's when the unpatched build's engines replay the bundle cleanly."""
                if not d.bundle:
                    return None
                diverges = _bundle_diverges(d.bundle, clean)
                return None if diverges is None else not diverges

            def reproduced(d: CampaignDivergence) -> bool:
                """The bundle diverges again with the mutated build (not a transient server failure)."""
                return not d.bundle or bool(_bundle_diverges(d.bundle, es))

            try:
                run = campaign_to_first_catch(fcfg, attributed, confirm=reproduced)
                interrupted = run.record(res)
                res.probe = {"unconfirmed": run.unconfirmed, "profile": fcfg.profile}
                if run.first is not None and cfg.minimize_trials > 0 and run.first[2].bundle and not interrupted:
                    if progress:
                        progress("minimize", m.name)
                    _minimize(res, str(run.first[2].bundle), cfg.python_config(es, workdir), es,
                              workdir / m.name / "minimized")
            finally:
                es.close()
    except KeyboardInterrupt:
        interrupted = True
    except Exception as e:  # a patch that does not build, a server that does not start: recorded
        res.error = f"{type(e).__name__}: {e}"
    if not res.caught:
        res.survivor_reason = _survivor_reason(m, res, cfg.engine_names)
    return res, interrupted


def run_c_selftest(cfg: CSelftestConfig, progress: ProgressFn | None = None,
                   report_path: Path | None = None) -> SelftestReport:
    """Build (or reuse the build), control run on the unpatched build, then every C
    mutant; the report is rewritten after each mutant."""
    mutants = cfg.mutants()
    t0 = time.monotonic()
    base: Built = build(plan(MAJOR, jobs=cfg.jobs), log=cfg.log)
    work = work_tree(base, log=cfg.log)
    build_seconds = time.monotonic() - t0  # reusing a cached build: a manifest read and a copy at most
    clean = cfg.engines(base.install)
    report = SelftestReport(list(cfg.engine_names), cfg.budget, cfg.seed, cfg.profile, cfg.minimize_trials,
                            min_score=cfg.min_score, pg_major=MAJOR, kind="c",
                            build={**base.describe(), "work_tree": str(work.root),
                                   "prepare_seconds": round(build_seconds, 1)})
    own_workdir = cfg.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="redodiff-selftest-c-")) if own_workdir else cfg.workdir
    assert workdir is not None
    workdir.mkdir(parents=True, exist_ok=True)

    def control() -> dict[str, Any]:
        return run_control(cfg.python_config(clone_engines(clean), workdir), workdir)

    report = run_catalog(report, mutants, lambda m: run_c_mutant(m, cfg, work, clean, workdir, progress),
                         control if cfg.control else None, cfg.interrupts, progress, report_path,
                         cleanup=clean.close, remove=workdir if own_workdir else None)
    report.seconds += build_seconds
    return report


__all__ = ["CSelftestConfig", "run_c_mutant", "run_c_selftest"]
