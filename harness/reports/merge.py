"""Merge fuzz reports (shards of one nightly run) into one report."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from pyredo.rmgr import page_modifying_types

_COUNTERS = ("pages_skipped", "unsupported", "record_types", "settings_seen", "rules_used")
_SUMS = ("records", "pages_checked", "pages_skipped_no_base", "iterations", "step_errors")
_LISTS = ("divergences", "infrastructure_errors", "iteration_results")


def merge_reports(paths: list[Path]) -> dict[str, Any]:
    out: dict[str, Any] = {k: 0 for k in _SUMS}
    counters: dict[str, Counter[str]] = {k: Counter() for k in _COUNTERS}
    lists: dict[str, list[Any]] = {k: [] for k in _LISTS}
    shards, seeds, engines = [], set(), set()
    seconds = 0.0
    interrupted = False
    for p in paths:
        d = json.loads(p.read_text())
        for k in _SUMS:
            out[k] += d.get(k, 0)
        for k in _COUNTERS:
            counters[k].update(d.get(k, {}))
        for k in _LISTS:
            lists[k].extend(d.get(k, []))
        # a report may itself be a merge: its shard and seed fields are lists
        shard, seed = d.get("shards", d.get("shard")), d.get("seed")
        shards.extend(shard if isinstance(shard, list) else [shard])
        seeds.update(seed if isinstance(seed, list) else [seed])
        engines.update(d.get("engines", []))
        seconds = max(seconds, d.get("seconds", 0.0))
        interrupted |= bool(d.get("interrupted"))
    out.update({k: dict(sorted(v.items())) for k, v in counters.items()})
    out.update(lists)
    universe = page_modifying_types()
    covered = [t for t in universe if counters["record_types"].get(t)]
    out["coverage"] = {"covered": len(covered), "total": len(universe),
                       "share": round(len(covered) / len(universe), 3),
                       "missing": [t for t in universe if t not in covered]}
    out.update({"shards": shards, "seed": sorted(s for s in seeds if s is not None), "engines": sorted(engines),
                "seconds": seconds, "interrupted": interrupted, "merged_from": [str(p) for p in paths]})
    return out
