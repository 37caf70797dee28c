"""Shrink a divergence: the workload to the fewest steps that still diverge the
same way (prefix bisection, then delta debugging of steps; psql script steps --
regression test files -- then cut into their statements and those shrunk too), then
the record list for the page to the shortest prefix ending at the first diverging record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from generators.regress import SETUP_RULE, split_script
from generators.workload import Step, Workload
from harness.campaign.bundle import Bundle, write_bundle
from harness.campaign.iteration import IterationResult, run_workload
from harness.clusters.pool import ClusterPool
from harness.interrupts import Interrupted, Interrupts
from harness.verify.check import Divergence
from harness.verify.engines import EngineSet

T = TypeVar("T")


@dataclass
class Signature:
    """What makes two divergences "the same": kind, record type, page owner."""

    kind: str
    record_type: str
    owner: str | None

    @classmethod
    def of(cls, d: Divergence | dict[str, Any]) -> Signature:
        if isinstance(d, Divergence):
            return cls(d.kind, d.record_type, d.owner)
        return cls(d["kind"], d["record_type"], d.get("owner"))

    def matches(self, d: Divergence) -> bool:
        return d.kind == self.kind and d.record_type == self.record_type and (
            self.owner is None or d.owner == self.owner)


@dataclass
class MinimizeResult:
    original_steps: int
    steps: int
    trials: int
    workload: Workload
    divergence: Divergence | None
    bundle: Path | None = None
    log: list[str] = field(default_factory=list)


def ddmin(items: Sequence[T], fails: Callable[[list[T]], bool], max_trials: int = 200) -> tuple[list[T], int]:
    """Zeller's delta debugging: a 1-minimal subsequence of ``items`` for which
    ``fails`` holds (``fails(items)`` must hold). Returns it and the trial count."""
    cur = list(items)
    n = 2
    trials = 0
    while len(cur) >= 2 and trials < max_trials:
        chunk = max(1, len(cur) // n)
        subsets = [cur[i : i + chunk] for i in range(0, len(cur), chunk)]
        reduced = False
        for i in range(len(subsets)):
            complement = [x for j, s in enumerate(subsets) if j != i for x in s]
            trials += 1
            if complement and fails(complement):
                cur = complement
                n = max(n - 1, 2)
                reduced = True
                break
            if trials >= max_trials:
                break
        if not reduced:
            if n >= len(cur):
                break
            n = min(len(cur), n * 2)
    return cur, trials


def shortest_failing_prefix(items: Sequence[T], fails: Callable[[list[T]], bool]) -> tuple[list[T], int]:
    """Binary search for the shortest prefix that still fails (assumes monotone)."""
    lo, hi = 1, len(items)
    trials = 0
    while lo < hi:
        mid = (lo + hi) // 2
        trials += 1
        if fails(list(items[:mid])):
            hi = mid
        else:
            lo = mid + 1
    return list(items[:hi]), trials


class WorkloadOracle:
    """Runs candidate workloads on one reused cluster pool; remembers the last hit."""

    def __init__(self, engines: EngineSet, signature: Signature, log: Callable[[str], None],
                 cluster: str | None = None, interrupts: Interrupts | None = None) -> None:
        self.engines = engines
        self.signature = signature
        self.interrupts = interrupts if interrupts is not None else Interrupts()
        self.pool = ClusterPool(cluster_spec=cluster, interrupts=self.interrupts)
        self.trials = 0
        self.last: tuple[Workload, IterationResult, Divergence] | None = None
        self.log = log

    def __call__(self, wl: Workload) -> bool:
        self.interrupts.check()
        self.trials += 1
        res = run_workload(self.pool, wl, self.engines)
        if res.interrupted:  # the trial did not finish: it says neither yes nor no
            raise Interrupted(f"stopped during trial {self.trials}")
        hit = next((d for d in (res.report.divergences if res.report else []) if self.signature.matches(d)), None)
        self.log(f"trial {self.trials}: {len(wl.steps)} steps -> {'diverges' if hit else 'clean'}"
                 + (f" (infrastructure: {res.infrastructure_error})" if res.infrastructure_error else ""))
        if hit is not None:
            self.last = (wl, res, hit)
        return hit is not None

    def close(self) -> None:
        with self.interrupts.holding():
            self.pool.close()
            self.engines.close()


def minimize_bundle(bundle: Bundle, engines: EngineSet, *, out_dir: Path, max_trials: int = 120,
                    log: Callable[[str], None] = lambda s: None, cluster: str | None = None,
                    interrupts: Interrupts | None = None) -> MinimizeResult:
    """``cluster``: where the candidate workloads run (local | docker:IMAGE; None: local).
    A stop request (``interrupts``) raises ``Interrupted`` (no bundle is written)."""
    if bundle.workload is None:
        raise ValueError(f"{bundle.path} has no workload.json to minimize")
    sig = Signature.of(bundle.meta)
    oracle = WorkloadOracle(engines, sig, log, cluster, interrupts)
    wl0 = bundle.workload
    try:
        if not oracle(wl0):
            return MinimizeResult(len(wl0.steps), len(wl0.steps), oracle.trials, wl0, None,
                                  log=["the bundle's workload no longer diverges"])

        # a pg-regress pass's set-up (a fresh regression database, the slot keeping its WAL)
        # stays: without it a trial would run on what the cluster's last trial left behind
        frame = [st for st in wl0.steps if st.rule == SETUP_RULE]

        def fails(steps: list[Step]) -> bool:
            return oracle(wl0.with_steps(frame + steps))

        steps, _ = shortest_failing_prefix([st for st in wl0.steps if st.rule != SETUP_RULE], fails)
        steps, _ = ddmin(steps, fails, max_trials=max(0, max_trials - oracle.trials))
        pieces = [x for st in steps for x in split_script(st)]  # psql scripts (pg-regress files): statements
        if len(pieces) > len(steps) and oracle.trials < max_trials and fails(pieces):
            steps, _ = ddmin(pieces, fails, max_trials=max(0, max_trials - oracle.trials))
        assert oracle.last is not None
        wl, _res, div = oracle.last
        if list(wl.steps) != frame + steps:  # make sure the bundle shows the final workload's run
            oracle(wl0.with_steps(frame + steps))
            wl, _res, div = oracle.last
        div = _trim_records(div)
        out = write_bundle(out_dir, div, workload=wl, seed=wl.seed, settings_label=wl.settings.label(),
                           pg_version=bundle.meta.get("pg_version"), wal_range=None,
                           extra={"minimized_from": str(bundle.path), "original_steps": len(wl0.steps),
                                  "hint_bits_logged": bundle.meta.get("hint_bits_logged", False)})
        return MinimizeResult(len(wl0.steps), len(wl.steps), oracle.trials, wl, div, out)
    finally:
        oracle.close()


def _trim_records(div: Divergence) -> Divergence:
    """Keep the records up to the first diverging one (the rest only obscure it)."""
    if div.first_diverging_lsn is None:
        return div
    keep = [r for r in div.records if r.lsn <= div.first_diverging_lsn]
    return Divergence(div.kind, div.tag, div.engines, div.record_type, div.first_diverging_lsn, keep,
                      div.base_page, div.pages, div.owner, div.diff, div.error)
