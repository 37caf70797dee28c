"""One fuzz iteration: run a workload, capture its WAL, redo every page with
every engine, witness with the primary, and bundle each divergence."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from generators.workload import Workload
from harness.campaign.bundle import write_bundle
from harness.campaign.execute import ClusterLost, Execution, execute
from harness.clusters.datadir import DataDirPages
from harness.clusters.pool import ClusterPool
from harness.interrupts import Interrupted, Interrupts
from harness.reports.counts import PageCounts, Seconds
from harness.reports.schema import DivergenceEntry, IterationSummary
from harness.selftest.faults import NO_FAULTS, FaultPlan, IterationFaults
from harness.verify.capture import capture
from harness.verify.check import Checker, CheckReport
from harness.verify.clogcheck import check_clog
from harness.verify.engines import EngineSet, is_infrastructure
from harness.verify.plan import decode_all
from oracles.pgbin import SetupError
from pyredo.errors import MissingSegment
from pyredo.wal.record import DecodedXLogRecord

SCHEMA = "redodiff_w"
# A broken engine can diverge on every page of an iteration: bundle one divergence
# per distinct (kind, record type, page owner) up to this many, copy the WAL range
# into the first bundle only, and leave the rest in the report (bundle None).
MAX_BUNDLES_PER_ITERATION = 8


@dataclass
class IterationResult:
    index: int
    seed: int | None
    settings: str
    seconds: float = 0.0
    report: CheckReport | None = None
    step_errors: int = 0
    infrastructure_error: str | None = None
    bundles: list[str | None] = field(default_factory=list)  # None: not written (see bundles_skipped)
    bundles_skipped: int = 0  # divergences left unbundled: a repeat signature, or over the cap
    rules: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False  # a stop request ended it part-way (what it found is kept)
    phases: Seconds = field(default_factory=Seconds)  # seconds by phase before the check and after it
    script_errors: dict[str, str] = field(default_factory=dict)  # psql script (pg-regress file) -> its errors

    def summary(self) -> IterationSummary:
        """What the campaign's report takes from this iteration (harness.reports.schema)."""
        s = IterationSummary(self.index, self.seed, self.settings, round(self.seconds, 3),
                             step_errors=self.step_errors, infrastructure_error=self.infrastructure_error,
                             bundles=list(self.bundles), bundles_skipped=self.bundles_skipped,
                             rules=dict(self.rules), interrupted=self.interrupted,
                             script_errors=dict(self.script_errors))
        s.phases.add_all(self.phases)
        r = self.report
        if r is not None:
            s.records, s.pages_checked, s.pages_skipped_no_base = r.records, r.pages_checked, r.pages_skipped_no_base
            s.divergences = [d.entry() for d in r.divergences] + [DivergenceEntry.clog(c) for c in r.clog_divergences]
            s.clog_pages_checked, s.clog_xids_verified = r.clog_pages_checked, r.clog_xids_verified
            s.replays_superseded = r.replays_superseded
            s.unsupported, s.record_types = Counter(r.unsupported), Counter(r.record_types)
            s.cells, s.verdicts = Counter(r.cells), Counter(r.verdicts)
            s.pages_skipped = Counter(r.pages_skipped)
            s.phases.add_all(r.phases)
        return s

    def to_json(self) -> dict[str, Any]:
        return self.summary().to_json()


def run_workload(
    pool: ClusterPool,
    workload: Workload,
    engines: EngineSet,
    *,
    index: int = 0,
    bundle_dir: Path | None = None,
    pg_version: str | None = None,
    max_bundles: int = MAX_BUNDLES_PER_ITERATION,
    faults: FaultPlan | None = None,
) -> IterationResult:
    """Run one workload end to end. Never raises for infrastructure trouble: it
    is recorded in ``infrastructure_error`` (and the cluster discarded).
    ``faults``: a fault plan to inject from (iteration ``index`` of it).
    A stop request (``pool.interrupts``) ends it part-way, ``interrupted``: a check
    in progress keeps what it found, and its divergences are bundled (at the fast
    level, without copying WAL; not at all at the immediate level)."""
    t0 = time.monotonic()
    res = IterationResult(index, workload.seed, workload.settings.label(), rules=workload.rules_used())
    injected = faults.at(index) if faults is not None else NO_FAULTS
    interrupts = pool.interrupts
    cluster = None
    timing = PageCounts(phases=res.phases)
    try:
        with timing.timed("cluster"):  # a cluster of these settings (initdb the first time), a fresh schema
            cluster = pool.get(workload.settings)
            cluster.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
            cluster.execute(f"CREATE SCHEMA {SCHEMA}")
        holder: list[Execution] = []

        def run(c: Any) -> None:
            with timing.timed("workload"):
                holder.append(execute(c, workload, SCHEMA, faults=injected, interrupts=interrupts))

        with timing.timed("checkpoint"):  # the CHECKPOINTs and snapshots around the workload
            cap = capture(cluster, run, snapshot=not workload.settings.full_page_writes)
        res.phases.add("checkpoint", -res.phases.get("workload", 0.0))
        res.step_errors = len(holder[0].errors) if holder else 0
        res.script_errors = {e.step.script: e.error for e in (holder[0].errors if holder else []) if e.step.script}
        try:
            checker = Checker(injected.engines(engines.for_settings(workload.settings)),
                              DataDirPages(cluster.pgdata), cap.base, end_lsn=cap.end,
                              base_is_snapshot=cap.base is not None, interrupts=interrupts,
                              table=engines.pyredo_table())  # the major's record names
            records = _decode(cap, timing, interrupts)  # once: the plan, the commit-log check and bundles share it
            report = res.report = checker.check_records(records if records is not None else [],
                                                        start=cap.start, end=cap.end)
            report.interrupted |= records is None
            if cap.pg_xact_dir is not None and not report.interrupted:
                with report.timed("clog"):
                    _check_clog(report, records or [], cap, cluster, interrupts)
        finally:
            cap.cleanup()
        res.interrupted = report.interrupted
        if report.infrastructure:
            res.infrastructure_error = report.infrastructure[0]
        if bundle_dir is not None:
            with timing.timed("bundles"):
                _write_bundles(res, report, workload, engines, cap, cluster, bundle_dir, pg_version,
                               len(holder[0].errors) if holder else 0, max_bundles, injected, interrupts)
        interrupts.check()  # a stopping run leaves the schema to the cluster's shutdown
        cluster.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    except Interrupted:
        res.interrupted = True
    except (ClusterLost, SetupError, psycopg.OperationalError, OSError,
            MissingSegment) as e:  # MissingSegment: the range's WAL left pg_wal before it was read
        if interrupts.pending:  # e.g. initdb or pg_ctl, in our process group, got the terminal's Ctrl-C
            res.interrupted = True
        else:
            res.infrastructure_error = f"{type(e).__name__}: {e}"
        pool.discard(workload.settings)
    except Exception as e:
        if is_infrastructure(e):
            res.infrastructure_error = f"{type(e).__name__}: {e}"
        else:
            raise
    res.seconds = time.monotonic() - t0
    return res


def _decode(cap: Any, timing: PageCounts, interrupts: Interrupts) -> list[DecodedXLogRecord] | None:
    """The captured range decoded once (None: a stop request came first)."""
    try:
        with timing.timed("decode"):
            return decode_all(interrupts.each(cap.records()))
    except Interrupted:
        return None


def _check_clog(report: CheckReport, records: list[DecodedXLogRecord], cap: Any, cluster: Any,
                interrupts: Interrupts) -> None:
    """Fold the commit-log check into ``report``; a stop request leaves it out."""
    try:
        report.add_clog(check_clog(interrupts.each(records), cap.pg_xact_dir, cluster.pgdata))
    except Interrupted:
        report.interrupted = True


def _write_bundles(res: IterationResult, report: CheckReport, workload: Workload, engines: EngineSet,
                   cap: Any, cluster: Any, bundle_dir: Path, pg_version: str | None, step_errors: int,
                   max_bundles: int, faults: IterationFaults = NO_FAULTS,
                   interrupts: Interrupts | None = None) -> None:
    """Bundle the iteration's divergences; ``res.bundles[i]`` is the bundle of
    ``report.divergences[i]`` (None when not bundled). Once a stop is requested the
    WAL range is no longer copied (records.bin replays the page without it); at the
    immediate level no more bundles are written."""
    interrupts = interrupts if interrupts is not None else Interrupts()
    seen: set[tuple[str, str, str | None]] = set()
    wal_holder: str | None = None
    for div in report.divergences:
        sig = (div.kind, div.record_type, div.owner)
        if sig in seen or len([b for b in res.bundles if b]) >= max_bundles or interrupts.immediate:
            res.bundles.append(None)
            res.bundles_skipped += 1
            continue
        seen.add(sig)
        extra: dict[str, Any] = {"hint_bits_logged": workload.settings.hint_bits_logged and not engines.uses_walredo,
                                 "step_errors": step_errors}
        if wal_holder is not None:
            extra["wal_in_bundle"] = wal_holder  # the WAL range is copied once per iteration
        waldir = cluster.waldir if wal_holder is None and not interrupts.pending else None
        try:
            path = write_bundle(
                bundle_dir, div, workload=workload, seed=workload.seed,
                settings_label=workload.settings.label(), pg_version=pg_version,
                wal_range=(cap.start, cap.end), waldir=waldir,
                seg_size=cluster.wal_segsize, extra=extra, faults=faults,
            )
            res.bundles.append(str(path))
            if waldir is not None:
                wal_holder = path.name
        except OSError as e:  # disk full, read-only: keep going, say so
            res.bundles.append(None)  # bundles[i] stays the bundle of divergences[i]
            res.infrastructure_error = f"could not write bundle: {e}"


def merge_counts(target: Counter[str], src: dict[str, int]) -> None:
    for k, v in src.items():
        target[k] += v
