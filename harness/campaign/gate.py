"""The regression gate: every saved case must now agree, then fuzz for a budget.

A corpus holds bundles (``bundles/*``) and diverging workload seeds
(``seeds/*.json``). For a redo change to pass the gate, replaying each bundle
must no longer diverge and rerunning each seed's workload must be clean;
then a fuzz campaign must find nothing new.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from generators.workload import Workload
from harness.campaign.bundle import is_bundle, read_bundle
from harness.campaign.fuzz import FuzzConfig, FuzzReport, run_campaign
from harness.campaign.replay import replay_bundle, rerun_workload
from harness.interrupts import Interrupted, Interrupts
from harness.verify.engines import EngineSet


@dataclass(frozen=True)
class SavedCase:
    kind: str  # "bundle" | "seed"
    path: Path

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.path.name}"


@dataclass
class CaseOutcome:
    case: SavedCase
    passed: bool
    detail: str


@dataclass
class GateResult:
    cases: list[CaseOutcome] = field(default_factory=list)
    fuzz: FuzzReport | None = None
    interrupted: bool = False  # a stop request ended it: it neither passed nor failed

    @property
    def failures(self) -> list[str]:
        out = [f"{c.case.name}: {c.detail}" for c in self.cases if not c.passed]
        if self.fuzz is not None:
            out += [f"fuzz seed {d.seed}: {d.kind} {d.tag} {d.record_type} (bundle {d.bundle})"
                    for d in self.fuzz.divergences if d.known is None]  # known PostgreSQL issues pass
        return out

    @property
    def passed(self) -> bool:
        return not self.failures and not self.interrupted


def saved_cases(corpus: Path) -> Iterator[SavedCase]:
    bundles = corpus / "bundles"
    if bundles.is_dir():
        for p in sorted(bundles.iterdir()):
            if not p.name.startswith(".") and is_bundle(p):
                yield SavedCase("bundle", p)
    seeds = corpus / "seeds"
    if seeds.is_dir():
        for p in sorted(seeds.glob("*.json")):
            yield SavedCase("seed", p)


def run_case(case: SavedCase, engines: EngineSet, cluster: str | None = None,
             interrupts: Interrupts | None = None) -> CaseOutcome:
    """Does this saved case agree now? Bundles replay at engine level; seeds rerun their
    workload (on a ``cluster`` of that spec; None: local). ``Interrupted`` when a stop
    request ended the rerun (it then says neither yes nor no)."""
    if case.kind == "bundle":
        b = read_bundle(case.path)
        names = engines.names if engines.names else tuple(b.meta.get("engines", ["pyredo"]))
        res = replay_bundle(b, engines.fresh(names))
        return CaseOutcome(case, not res.diverges, res.summary())
    wl = Workload.loads(case.path.read_text())
    r = rerun_workload(wl, engines.fresh(), cluster=cluster, interrupts=interrupts)
    if r.interrupted:
        raise Interrupted(f"stopped while rerunning {case.name}")
    if r.infrastructure_error:
        return CaseOutcome(case, False, f"infrastructure error: {r.infrastructure_error}")
    divs = r.report.unknown_divergences if r.report else []  # a known PostgreSQL issue is no regression
    detail = "clean" if not divs else "; ".join(f"{d.kind} {d.tag} {d.record_type}" for d in divs[:3])
    return CaseOutcome(case, not divs, detail)


def run_gate(corpus: Path, engines: EngineSet, *, budget: float, seed: int = 0, profile: str = "ci",
             progress: Callable[[str], None] = lambda s: None, cluster: str | None = None,
             interrupts: Interrupts | None = None) -> GateResult:
    """``cluster``: where workloads run (local | docker:IMAGE; None: local). A stop
    request (``interrupts``) ends the gate after the case or fuzz iteration in progress."""
    interrupts = interrupts if interrupts is not None else Interrupts()
    res = GateResult()
    try:
        for case in saved_cases(corpus):
            interrupts.check()
            outcome = run_case(case, engines, cluster, interrupts)
            progress(f"{'ok  ' if outcome.passed else 'FAIL'} {case.name}: {outcome.detail}")
            res.cases.append(outcome)
    except Interrupted:
        res.interrupted = True
        return res
    if budget > 0 and not interrupts.pending:
        cfg = FuzzConfig(seed=seed, budget=budget, engines=engines, profile=profile, corpus=corpus, cluster=cluster,
                         interrupts=interrupts)
        res.fuzz = run_campaign(cfg)
        res.interrupted = res.fuzz.interrupted
        progress(f"fuzz: {res.fuzz.iterations} iterations, {res.fuzz.pages_checked} pages, "
                 f"{len(res.fuzz.divergences)} divergences")
    return res
