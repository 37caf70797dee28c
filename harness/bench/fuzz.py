"""``redodiff bench fuzz``: a campaign's figures — pages verified per minute, the
harness's share of iteration time, seconds by phase, the slowest iterations."""

from __future__ import annotations

from typing import Any

from harness.reports.counts import ENGINE_PHASE, Seconds, phase_order
from harness.reports.schema import FuzzReport

# what PostgreSQL does for an iteration: a cluster (made once per settings), the workload's
# statements, and the CHECKPOINTs around them
CLUSTER_PHASES = ("cluster", "workload", "checkpoint")


def harness_seconds(phases: Seconds) -> float:
    """The harness's own phases: decode, plan, each engine, witness, coverage, judge (the
    check loop's own bookkeeping), commit log, bundles."""
    return sum(v for k, v in phases.items() if k not in CLUSTER_PHASES)


def fuzz_figures(rep: FuzzReport, slowest: int = 5, workers: int = 1) -> dict[str, Any]:
    """The figures of a finished campaign (``rep.phases`` sums its iterations' phases)."""
    it_secs = sum(r.seconds for r in rep.results)
    phases = {k: round(rep.phases[k], 2) for k in sorted(rep.phases, key=phase_order)}
    harness = harness_seconds(rep.phases)
    cluster = sum(rep.phases.get(k, 0.0) for k in CLUSTER_PHASES)

    def share(x: float) -> float:
        return round(x / it_secs, 3) if it_secs else 0.0

    slow = sorted(rep.results, key=lambda r: -r.seconds)[:slowest]
    return {
        "iterations": rep.iterations, "seconds": round(rep.seconds, 1), "workers_seen": workers,
        "engines": list(rep.engines), "pages_checked": rep.pages_checked, "records": rep.records,
        "pages_per_minute": round(rep.pages_checked / (rep.seconds / 60), 1) if rep.seconds else 0.0,
        "iteration_seconds": round(it_secs, 2),
        "harness_share": share(harness), "workload_share": share(rep.phases.get("workload", 0.0)),
        "checkpoint_share": share(rep.phases.get("checkpoint", 0.0)),
        "cluster_share": share(rep.phases.get("cluster", 0.0)),
        "other_share": share(max(0.0, it_secs - harness - cluster)),
        "engine_seconds": {k.removeprefix(ENGINE_PHASE): round(v, 2) for k, v in rep.phases.items()
                           if k.startswith(ENGINE_PHASE)},
        "phases": phases,
        "slowest": [{"index": r.index, "seed": r.seed, "settings": r.settings, "seconds": r.seconds,
                     "pages_checked": r.pages_checked,
                     "phases": {k: round(r.phases[k], 2) for k in sorted(r.phases, key=phase_order)}}
                    for r in slow],
        "divergences": len(rep.divergences),
        "unknown_divergences": len(rep.unknown_divergences),
        "infrastructure_errors": len(rep.infrastructure_errors),
        "replays_superseded": rep.replays_superseded,
    }
