"""Replay a bundle: rerun the engines on its saved records and pages, and say
whether it still diverges. Or rerun its workload end to end."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from generators.workload import Workload
from harness.campaign.bundle import Bundle
from harness.campaign.iteration import IterationResult, run_workload
from harness.clusters.pool import ClusterPool
from harness.interrupts import Interrupts
from harness.verify.check import (
    ENGINE_DISAGREEMENT,
    ENGINE_ERROR,
    ENGINE_VS_PRIMARY,
    Checker,
    CheckReport,
    Divergence,
)
from harness.verify.engines import EngineSet
from harness.verify.plan import BlockPlan


@dataclass
class ReplayResult:
    bundle: Path | None
    diverges: bool
    divergences: list[Divergence] = field(default_factory=list)
    same_kind: bool = False
    original_kind: str | None = None
    report: CheckReport | None = None

    def summary(self) -> str:
        if not self.diverges:
            return "no longer diverges: every engine agrees" + (" and matches the primary" if self.report else "")
        d = self.divergences[0]
        first = d.first_diverging_lsn
        where = f" first diverging record {first:X}" if first is not None else ""
        same = " (same kind as recorded)" if self.same_kind else f" (recorded: {self.original_kind})"
        verdict = f"\nverdict: {d.verdict}" if d.verdict else ""
        return f"still diverges: {d.kind} on {d.tag}, {d.record_type}{where}{same}{verdict}"


def replay_bundle(bundle: Bundle, engines: EngineSet | None = None, *, mutant: str | None = None,
                  interrupts: Interrupts | None = None) -> ReplayResult:
    """Rebuild the bundle's page from its records with each engine; compare engines
    byte for byte and each with the saved primary page under masks. Without
    ``engines``: the bundle's engines, pyredo with ``mutant`` applied if given.
    A stop request (``interrupts``) raises ``Interrupted``: a wal-redo request in
    flight gets a short grace, and the server is stopped."""
    interrupts = interrupts if interrupts is not None else Interrupts()
    names = tuple(n for n in bundle.meta.get("engines", ["pyredo"]) if n in ("pyredo", "walredo"))
    es = engines or EngineSet(names=names or ("pyredo",), mutant=mutant)
    primary = bundle.pages.get("primary")
    records = bundle.records
    end = records[-1].end_lsn if records else None
    tag = bundle.tag
    settings_hints = bool(bundle.meta.get("hint_bits_logged", False))
    from generators.workload import Settings

    engine_objs = es.for_settings(Settings(wal_log_hints=settings_hints))
    try:
        checker = Checker(engine_objs, (lambda t: primary) if primary is not None else None,
                          (lambda t: bundle.base_page), end_lsn=end, interrupts=interrupts)
        report = CheckReport(records=len(records), engines=[e.name for e in engine_objs])
        bp = BlockPlan(tag, list(records), owner=bundle.meta.get("owner"))
        if bundle.base_page is None and bp.needs_base:
            bp.base_absent = True
        checker.check_block(bp, report)
    finally:
        with interrupts.holding():
            es.close()
    kind = bundle.meta.get("kind")
    divs = report.divergences
    return ReplayResult(bundle.path, bool(divs), divs, bool(divs) and divs[0].kind == kind, kind, report)


def rerun_workload(workload: Workload, engines: EngineSet, *, bundle_dir: Path | None = None,
                   cluster: str | None = None, interrupts: Interrupts | None = None) -> IterationResult:
    """Run a workload end to end on a fresh cluster (the slow, faithful replay);
    ``cluster``: where it runs (local | docker:IMAGE; None: local). A stop request
    (``interrupts``) ends it part-way: the result says ``interrupted``."""
    interrupts = interrupts if interrupts is not None else Interrupts()
    with ClusterPool(cluster_spec=cluster, interrupts=interrupts, pg=engines.pg) as pool:
        try:
            return run_workload(pool, workload, engines, bundle_dir=bundle_dir)
        finally:
            with interrupts.holding():
                engines.close()


__all__ = ["ENGINE_DISAGREEMENT", "ENGINE_ERROR", "ENGINE_VS_PRIMARY", "ReplayResult", "replay_bundle",
           "rerun_workload"]
