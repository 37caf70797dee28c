"""Mutation self-test: does the harness find redo bugs? A score.

For each mutant of the catalog (``harness.selftest.catalog``) a fuzz campaign
runs for a budget with pyredo over the mutant's table (``EngineSet.mutant``:
the table of the run's major, ``EngineSet.pg``, with that one routine replaced;
nothing global changes; only mutants that list that major run) — the product's
own ``run_campaign``, with both engines when the wal-redo server is available
and the primary as witness. The campaign stops at the first divergence the
mutant is responsible for: its bundle is replayed with the clean engine, and
must then agree (otherwise it is a false alarm of the harness, recorded and
not counted). Recorded per mutant: caught or not, seconds and iterations
to the first catch, the workload's size in steps, and — when minimization is
on (``minimize_trials`` > 0) — its size after ``harness.campaign.minimize`` with at
most that many trials; the minimized bundle must still show the same
divergence. Mutation score = caught / total.

Every mutant's campaign seed is ``mutant_seed(name, seed)``: the same mutant
always gets the same workloads, whatever else runs. A mutant of a record type few
workloads write (Btree/INSERT_META, Gin/DELETE_PAGE, ...) names the rules that write
it (``Mutant.aim``): its campaign's profile is aimed at them (``ci@btree_fastroot``,
``generators.rules.profile_named``: drawn ten times as often). A control campaign with
no mutant (same budget) measures false alarms: a harness that reports
divergences without a bug has no score worth reading.

Survivors get a reason from what the mutant's probe counted (the
``MutantStats`` of its campaign's engines, ``EngineSet.mutant_stats``): never
reached (no workload produced a record the mutated path redoes), reached but
never fired (the mutated condition never arose), or fired but unseen (the
comparisons missed a real change).

Ctrl-C or SIGTERM (``SelftestConfig.interrupts``, harness.interrupts) stops the
run within the campaign or minimization in progress (there is nothing to undo:
the mutated table belongs to that mutant's engines only); the report then holds
the mutants finished so far and says it was interrupted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.campaign.fuzz import FuzzConfig, FuzzReport, run_campaign
from harness.interrupts import Interrupts
from harness.reports.schema import CampaignDivergence
from harness.selftest.catalog import CATALOG, get
from harness.selftest.mutants import Mutant, MutantStats
from harness.verify.engines import EngineSet
from pyredo.rmgrlist import table_for


def mutant_seed(name: str, base: int = 0) -> int:
    """The campaign seed of mutant ``name``: deterministic, independent of catalog order."""
    return zlib.crc32(f"{base}:{name}".encode()) & 0xFFFFFF


def clone_engines(es: EngineSet, **changes: Any) -> EngineSet:
    """A fresh EngineSet reaching the same engines (its own wal-redo process, its
    own mutated table), with ``changes`` (e.g. ``mutant=None``: the clean engine)."""
    return dataclasses.replace(es.fresh(), **changes)


def walredo_available(es: EngineSet | None = None) -> tuple[bool, str]:
    """Can a wal-redo server be started and answer a ping? (ok, reason)"""
    probe = clone_engines(es) if es is not None else EngineSet(names=("pyredo", "walredo"))
    try:
        probe.walredo().ping()
        return True, "wal-redo server answers"
    except Exception as e:  # no extension, no PostgreSQL, a server that will not start
        return False, f"{type(e).__name__}: {e}"
    finally:
        probe.close()


@dataclass
class SelftestConfig:
    budget: float = 60.0  # seconds of fuzzing per mutant
    names: list[str] | None = None  # None: the whole catalog
    engines: EngineSet = field(default_factory=lambda: EngineSet(names=("pyredo", "walredo")))
    seed: int = 0
    profile: str = "ci"
    minimize_trials: int = 12  # 0: record the un-minimized size only
    control: bool = True  # also run the unmutated pyredo for one budget
    workdir: Path | None = None  # bundles and minimized bundles (default: a temp dir, removed)
    min_score: float = 0.9
    cluster: str | None = None  # where workload clusters run: local | docker:IMAGE (None: local)
    interrupts: Interrupts = field(default_factory=Interrupts)  # the run's stop request

    def mutants(self) -> list[Mutant]:
        """The named mutants, else every one that mutates the run's major's redo."""
        major = self.engines.wal_major
        if self.names is None:
            return [m for m in CATALOG.values() if m.applies_to(major)]
        chosen = [get(n) for n in self.names]
        for m in chosen:
            if not m.applies_to(major):
                raise ValueError(f"mutant {m.name} mutates the PostgreSQL {', '.join(map(str, m.majors))} "
                                 f"redo, not {major}'s")
        return chosen


@dataclass
class MutantResult:
    name: str
    rmgr: str
    record_type: str
    category: str
    masked: bool
    description: str
    history: str
    seed: int
    caught: bool = False
    seconds: float | None = None  # to the first (attributed) catch, from the campaign's start
    iterations: int | None = None  # iterations run up to and including the catching one
    campaign_seconds: float = 0.0
    iterations_run: int = 0
    divergence: dict[str, Any] | None = None
    original_steps: int | None = None  # the catching workload's steps
    minimized_steps: int | None = None  # after harness.campaign.minimize (None: not minimized)
    minimize_trials: int | None = None
    minimize_note: str | None = None
    false_alarms: int = 0  # divergences that the unmutated pyredo shows too
    probe: dict[str, Any] = field(default_factory=dict)  # calls, redone, fired, fired_on
    target_records_verified: int = 0  # records of the mutated type on verified pages
    infrastructure_errors: int = 0
    survivor_reason: str | None = None
    error: str | None = None
    function: str | None = None  # C mutants: the C function the patch breaks
    rebuild_seconds: float | None = None  # C mutants: patch + incremental rebuild + install

    @property
    def steps(self) -> int | None:
        """The case size to report: minimized if we have it, else the original."""
        return self.minimized_steps if self.minimized_steps is not None else self.original_steps

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["steps"] = self.steps
        return d


@dataclass
class SelftestReport:
    engines: list[str]
    budget: float
    seed: int
    profile: str
    minimize_trials: int
    results: list[MutantResult] = field(default_factory=list)
    control: dict[str, Any] | None = None
    interrupted: bool = False
    seconds: float = 0.0
    walredo_note: str | None = None
    min_score: float = 0.9
    pg_major: int = 15  # the PostgreSQL whose clusters, wal-redo server and rmgr table ran
    kind: str = "pyredo"  # whose redo the mutants break: "pyredo" (the Python engine) or "c" (PostgreSQL's)
    build: dict[str, Any] | None = None  # C mutants: the PostgreSQL build they were applied to

    @property
    def caught(self) -> int:
        return sum(1 for r in self.results if r.caught)

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def score(self) -> float:
        return self.caught / self.total if self.total else 0.0

    @property
    def false_alarms(self) -> int:
        return (self.control or {}).get("divergences", 0) + sum(r.false_alarms for r in self.results)

    @property
    def passed(self) -> bool:
        return not self.interrupted and self.total > 0 and self.score >= self.min_score and not self.false_alarms

    def to_json(self) -> dict[str, Any]:
        by_rmgr: dict[str, dict[str, int]] = {}
        for r in self.results:
            e = by_rmgr.setdefault(r.rmgr, {"caught": 0, "total": 0})
            e["total"] += 1
            e["caught"] += int(r.caught)
        return {
            "kind": self.kind,
            "pg_major": self.pg_major,
            "score": round(self.score, 4),
            "caught": self.caught,
            "total": self.total,
            "passed": self.passed,
            "min_score": self.min_score,
            "false_alarms": self.false_alarms,
            "engines": self.engines,
            "budget_per_mutant": self.budget,
            "seed": self.seed,
            "profile": self.profile,
            "minimize_trials": self.minimize_trials,
            "minimization": ("harness.campaign.minimize.minimize_bundle on the first catching bundle, at most "
                             f"{self.minimize_trials} workload runs" if self.minimize_trials
                             else "off: steps are the catching workload's, un-minimized"),
            "walredo": self.walredo_note,
            "control": self.control,
            "by_rmgr": dict(sorted(by_rmgr.items())),
            "survivors": [r.name for r in self.results if not r.caught],
            "interrupted": self.interrupted,
            "seconds": round(self.seconds, 1),
            "mutants": [r.to_json() for r in self.results],
            **({"build": self.build} if self.build is not None else {}),
        }


class _FirstCatch(Exception):
    """Raised from the campaign's progress callback to end it at the first catch."""


ProgressFn = Callable[[str, Any], None]


def _bundle_diverges(path: str, es: EngineSet) -> bool | None:
    """Replay a bundle (no workload run); None when it cannot be read."""
    from harness.campaign.bundle import BundleError, read_bundle
    from harness.campaign.replay import replay_bundle

    try:
        b = read_bundle(Path(path))
    except (BundleError, OSError):
        return None
    return replay_bundle(b, clone_engines(es)).diverges


def _attributed(div: CampaignDivergence, es: EngineSet) -> bool | None:
    """Is this divergence the mutant's doing? Its bundle, replayed with the clean
    engine (``es`` without its mutant), must agree. None when there is no bundle to tell."""
    if not div.bundle:
        return None
    diverges = _bundle_diverges(div.bundle, clone_engines(es, mutant=None))
    return None if diverges is None else not diverges


def _steps_of(bundle_path: str | None) -> int | None:
    if not bundle_path:
        return None
    wl = Path(bundle_path) / "workload.json"
    try:
        return len(json.loads(wl.read_text())["steps"])
    except (OSError, ValueError, KeyError):
        return None


def _survivor_reason(r: MutantResult, rep: FuzzReport | None, es: EngineSet) -> str:
    fired, redone = r.probe.get("fired", 0), r.probe.get("redone", 0)
    if r.error:
        return f"campaign failed: {r.error}"
    if fired == 0 and redone == 0:
        return (f"not reached: no workload produced a {r.record_type} record that redo had to apply "
                f"({r.target_records_verified} on verified pages, all restored from images or skipped)"
                if r.target_records_verified else f"not reached: no {r.record_type} record was generated")
    if fired == 0:
        return (f"reached, never fired: {redone} redone {r.record_type} records, none where the mutated "
                "condition arose")
    if r.masked and "walredo" not in es.names:
        return (f"fired {fired}x but unseen: the change hides under the consistency masks and only the "
                "engine-vs-engine comparison could see it (run with the wal-redo server)")
    return (f"fired {fired}x but unseen: every changed page was later overwritten, skipped by the "
            "checker, or differs only where the comparisons mask")


def run_mutant(m: Mutant, cfg: SelftestConfig, workdir: Path,
               progress: ProgressFn | None = None) -> tuple[MutantResult, bool]:
    """One mutant's campaign (+ attribution, + minimization). Returns the result and
    whether the run was interrupted."""
    seed = mutant_seed(m.name, cfg.seed)
    res = MutantResult(m.name, m.rmgr, m.type_name(table_for(cfg.engines.wal_major)), m.category, m.masked,
                       m.description, m.history, seed)
    corpus = workdir / m.name
    es = clone_engines(cfg.engines, mutant=m.name)  # pyredo over the major's table with this mutant's routine
    stats: MutantStats | None = es.mutant_stats
    assert stats is not None
    # a mutant of a rarely written record type aims its campaign at the rules that write it
    fcfg = FuzzConfig(seed=seed, budget=cfg.budget, engines=es, profile=cfg.profile + m.profile_aim, corpus=corpus,
                      cluster=cfg.cluster, interrupts=cfg.interrupts)

    def on_iteration(rep: FuzzReport, elapsed: float) -> None:
        if progress:
            progress("iteration", (m.name, rep.iterations, elapsed, stats))

    run = campaign_to_first_catch(fcfg, lambda d: _attributed(d, es), on_iteration)
    res.probe = stats.to_json()
    interrupted = run.record(res)
    if run.first is not None:
        d = run.first[2]
        if cfg.minimize_trials > 0 and d.bundle and not interrupted:
            if progress:
                progress("minimize", m.name)
            try:
                _minimize(res, d.bundle, cfg, es, workdir / m.name / "minimized")
            except KeyboardInterrupt:
                interrupted = True
                res.minimize_note = "interrupted"
    if not res.caught:
        res.survivor_reason = _survivor_reason(res, run.report, cfg.engines)
    return res, interrupted


@dataclass
class CampaignRun:
    """What ``campaign_to_first_catch`` saw: the campaign's report (None when it could
    not start), the first attributed divergence (seconds, iteration, divergence), how
    many divergences were not the mutant's (false alarms), and the error that ended it."""

    report: FuzzReport | None = None
    first: tuple[float, int, CampaignDivergence] | None = None
    false_alarms: int = 0
    unconfirmed: int = 0  # divergences whose bundle did not diverge again with the mutant (not counted)
    error: str | None = None
    seconds: float = 0.0

    def record(self, res: MutantResult) -> bool:
        """Fill ``res`` from this run (catch, iterations, divergence, counts); returns
        whether the campaign was interrupted."""
        res.false_alarms += self.false_alarms
        res.error = res.error or self.error
        res.campaign_seconds = round(self.seconds, 2)
        rep = self.report
        if rep is not None:
            res.iterations_run = rep.iterations
            res.target_records_verified = sum(int(rep.record_types.get(t, 0)) for t in res.record_type.split(" | "))
            res.infrastructure_errors = len(rep.infrastructure_errors)
        if self.first is not None:
            secs, its, d = self.first
            res.caught = True
            res.seconds, res.iterations = round(secs, 2), its
            dj = d.to_json()
            res.divergence = {k: dj.get(k) for k in ("kind", "tag", "record_type", "engines",
                                                     "first_diverging_lsn", "owner", "bundle", "seed")}
            res.divergence["diff"] = list(d.diff)[:8]
            res.original_steps = _steps_of(d.bundle)
        return bool(rep is not None and rep.interrupted)


def campaign_to_first_catch(fcfg: FuzzConfig, attributed: Callable[[CampaignDivergence], bool | None],
                            on_iteration: Callable[[FuzzReport, float], None] | None = None,
                            confirm: Callable[[CampaignDivergence], bool] | None = None) -> CampaignRun:
    """Run the campaign ``fcfg`` until its first divergence that ``attributed`` does not
    deny (False: a false alarm, counted; True or None: the catch) or its budget ends.
    With ``confirm``, a divergence it rejects (its bundle does not diverge again with
    the mutant: a transient failure) is counted as unconfirmed and the campaign goes on.
    Shared by the pyredo mutants and the C mutants (harness.selftest.c_runner)."""
    run = CampaignRun()
    seen = {"n": 0}
    t0 = time.monotonic()

    def progress(rep: FuzzReport) -> None:
        run.report = rep
        if on_iteration:
            on_iteration(rep, time.monotonic() - t0)
        new = rep.divergences[seen["n"]:]
        seen["n"] = len(rep.divergences)
        for d in new:
            if d.known is not None:  # a known PostgreSQL issue: neither a catch nor a false alarm
                continue
            if attributed(d) is False:
                run.false_alarms += 1
                continue
            if confirm is not None and not confirm(d):
                run.unconfirmed += 1
                continue
            run.first = (time.monotonic() - t0, rep.iterations, d)
            raise _FirstCatch

    try:
        run.report = run_campaign(fcfg, progress=progress)
    except _FirstCatch:
        pass
    except Exception as e:  # a campaign that cannot run is recorded, the self-test goes on
        run.error = f"{type(e).__name__}: {e}"
    run.seconds = time.monotonic() - t0
    return run


def _minimize(res: MutantResult, bundle_path: str, cfg: SelftestConfig, es: EngineSet, out_dir: Path) -> None:
    """Shrink the catching workload with the mutant's engines ``es``."""
    from harness.campaign.bundle import BundleError, read_bundle
    from harness.campaign.minimize import minimize_bundle

    try:
        b = read_bundle(Path(bundle_path))
    except (BundleError, OSError) as e:
        res.minimize_note = f"cannot read the bundle: {e}"
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        mr = minimize_bundle(b, clone_engines(es), out_dir=out_dir, max_trials=cfg.minimize_trials,
                             cluster=cfg.cluster, interrupts=cfg.interrupts)
    except Exception as e:
        res.minimize_note = f"minimization failed: {type(e).__name__}: {e}"
        return
    res.minimize_trials = mr.trials
    if mr.divergence is None:
        res.minimize_note = "the catching workload did not diverge again when rerun (not minimized)"
        return
    res.minimized_steps = mr.steps
    res.minimize_note = (f"{mr.original_steps} -> {mr.steps} steps in {mr.trials} trials"
                         + (f", bundle {mr.bundle}" if mr.bundle else ""))


def run_control(cfg: SelftestConfig, workdir: Path) -> dict[str, Any]:
    """The same campaign with no mutant: every divergence here is a false alarm."""
    seed = mutant_seed("control", cfg.seed)
    rep = run_campaign(FuzzConfig(seed=seed, budget=cfg.budget, engines=clone_engines(cfg.engines, mutant=None),
                                  profile=cfg.profile, corpus=workdir / "control", cluster=cfg.cluster,
                                  interrupts=cfg.interrupts))
    cov = rep.coverage()
    return {
        "seed": seed,
        "iterations": rep.iterations,
        "seconds": round(rep.seconds, 1),
        "pages_checked": rep.pages_checked,
        "divergences": len(rep.unknown_divergences),  # known PostgreSQL issues aside
        "divergence_list": [{"kind": d.kind.value, "tag": d.tag, "record_type": d.record_type, "bundle": d.bundle}
                            for d in rep.divergences[:20]],
        "infrastructure_errors": len(rep.infrastructure_errors),
        "coverage": {"covered": cov.covered, "total": cov.total, "missing": cov.missing},
        "interrupted": rep.interrupted,
    }


def run_selftest(cfg: SelftestConfig, progress: ProgressFn | None = None,
                 report_path: Path | None = None) -> SelftestReport:
    """Run the control campaign and every mutant's campaign; the report is written to
    ``report_path`` (atomically) after each mutant, so a crash or Ctrl-C keeps what was done."""
    mutants = cfg.mutants()
    report = SelftestReport(list(cfg.engines.names), cfg.budget, cfg.seed, cfg.profile, cfg.minimize_trials,
                            min_score=cfg.min_score, pg_major=cfg.engines.wal_major)
    own_workdir = cfg.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="redodiff-selftest-")) if own_workdir else cfg.workdir
    assert workdir is not None
    workdir.mkdir(parents=True, exist_ok=True)
    return run_catalog(report, mutants, lambda m: run_mutant(m, cfg, workdir, progress),
                       (lambda: run_control(cfg, workdir)) if cfg.control else None, cfg.interrupts,
                       progress, report_path, cleanup=cfg.engines.close, remove=workdir if own_workdir else None)


def run_catalog(report: SelftestReport, mutants: Sequence[Any], run_one: Callable[[Any], tuple[MutantResult, bool]],
                control: Callable[[], dict[str, Any]] | None, interrupts: Interrupts,
                progress: ProgressFn | None, report_path: Path | None, *, cleanup: Callable[[], None],
                remove: Path | None = None) -> SelftestReport:
    """The control campaign, then ``run_one`` for each mutant in order, the report
    rewritten after each; a stop request ends it between or within mutants. Shared by
    the pyredo and the C self-tests. ``cleanup`` (engines) runs and ``remove`` (a
    temporary work directory) goes at the end, whatever happened."""
    t0 = time.monotonic()
    try:
        if control is not None:
            if progress:
                progress("control", None)
            report.control = control()
            report.interrupted = bool(report.control["interrupted"])
            if progress:
                progress("control_done", report.control)
            _write(report, report_path, t0)
        for i, m in enumerate(mutants):
            if report.interrupted or interrupts.pending:
                report.interrupted = True
                break
            if progress:
                progress("start", (i, len(mutants), m))
            try:
                res, interrupted = run_one(m)
            except KeyboardInterrupt:
                report.interrupted = True
                break
            if interrupted and not res.caught:  # its campaign did not finish: no survivor
                report.interrupted = True
                break
            report.results.append(res)
            report.interrupted = interrupted
            if progress:
                progress("done", (i, len(mutants), res))
            _write(report, report_path, t0)
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        with interrupts.holding():
            report.seconds = time.monotonic() - t0
            _write(report, report_path, t0)
            cleanup()
            if remove is not None:
                shutil.rmtree(remove, ignore_errors=True)
    return report


def _write(report: SelftestReport, path: Path | None, t0: float) -> None:
    if path is None:
        return
    report.seconds = time.monotonic() - t0
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    os.replace(tmp, path)
