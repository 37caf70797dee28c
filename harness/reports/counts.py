"""The counts every report keeps, and the seconds by phase that say where its time went.

``PageCounts`` is the base of a check's report (harness.verify.check), a check
report's JSON, an iteration's summary and a campaign's totals
(harness.reports.schema): one list of counts, one way to add two up.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.reports.cells import CellGrid, compute_cells
from pyredo.rmgrlist import PG15

JSONDict = dict[str, Any]


class Seconds(dict[str, float]):
    """Seconds by phase (PHASES, and "engine NAME" for each engine); adding adds up."""

    def add(self, phase: str, seconds: float) -> None:
        self[phase] = self.get(phase, 0.0) + seconds

    def add_all(self, other: Mapping[str, float]) -> None:
        for phase, seconds in other.items():
            self.add(phase, seconds)


def counts_of(d: Any) -> Counter[str]:
    return Counter({str(k): int(v) for k, v in (d or {}).items()})


# the phases of an iteration or a check, in the order they run; an engine's phase is "engine NAME"
PHASES = ("cluster", "workload", "checkpoint", "decode", "plan", "witness", "coverage", "judge", "clog", "bundles")
ENGINE_PHASE = "engine "


def phase_order(name: str) -> tuple[int, str]:
    """Sort key: the fixed phases in running order, each engine right after the plan."""
    if name.startswith(ENGINE_PHASE):
        return (2 * PHASES.index("plan") + 1, name)
    return (2 * PHASES.index(name) if name in PHASES else 2 * len(PHASES), name)


def phases_json(phases: Mapping[str, float]) -> JSONDict:
    """``{"phases": {phase: seconds}}`` when timed, else no key: reports written
    before phases were timed read back unchanged."""
    if not phases:
        return {}
    return {"phases": {k: round(phases[k], 3) for k in sorted(phases, key=phase_order)}}


def seconds_of(d: Any) -> Seconds:
    return Seconds({str(k): float(v) for k, v in (d or {}).items()})


@dataclass(kw_only=True)
class PageCounts:
    """The counts every report keeps (a check, an iteration, a campaign, a merge of
    campaigns) and how two of them add up: ``add_counts`` is the one merge."""

    records: int = 0
    pages_checked: int = 0
    pages_skipped_no_base: int = 0
    pages_skipped: Counter[str] = field(default_factory=Counter)
    unsupported: Counter[str] = field(default_factory=Counter)
    record_types: Counter[str] = field(default_factory=Counter)
    cells: Counter[str] = field(default_factory=Counter)  # "type|fork|form" -> blocks verified (harness.reports.cells)
    # pages by verdict ("verified", "primary_differs", "verified (allowed: ...)", ...: harness.verify.verdict)
    verdicts: Counter[str] = field(default_factory=Counter)
    clog_pages_checked: int = 0
    clog_xids_verified: int = 0
    # records left out of a page's redo: a later record of that page restores its full-page
    # image or re-initializes it, so they cannot reach the compared page (harness.verify.plan)
    replays_superseded: int = 0
    phases: Seconds = field(default_factory=Seconds)

    _SUMS = ("records", "pages_checked", "pages_skipped_no_base", "clog_pages_checked", "clog_xids_verified",
             "replays_superseded")
    _COUNTERS = ("pages_skipped", "unsupported", "record_types", "cells", "verdicts")

    def add_counts(self, other: PageCounts) -> None:
        for k in self._SUMS:
            setattr(self, k, getattr(self, k) + getattr(other, k))
        for c in self._COUNTERS:
            getattr(self, c).update(getattr(other, c))
        self.phases.add_all(other.phases)

    def verdicts_json(self) -> JSONDict:
        """``{"verdicts": {...}}`` once pages were judged, else no key (older reports)."""
        return {"verdicts": dict(sorted(self.verdicts.items()))} if self.verdicts else {}

    def superseded_json(self) -> JSONDict:
        """``{"replays_superseded": n}`` when records were left out, else no key (older reports)."""
        return {"replays_superseded": self.replays_superseded} if self.replays_superseded else {}

    def cells_json(self) -> JSONDict:
        """``{"coverage_cells": grid}`` once cells were counted, else no key: reports
        written before the grid read back unchanged."""
        if not self.cells:
            return {}
        return {"coverage_cells": self.cell_grid().to_json()}

    def cell_grid(self) -> CellGrid:
        """The grid against PostgreSQL 15's cells (reports that know their major override it)."""
        return compute_cells(self.cells, PG15)

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the seconds the block takes (also when it raises) to ``phase``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.phases.add(phase, time.perf_counter() - t0)

    def _load_counts(self, d: Mapping[str, Any]) -> None:
        """The counts of a report's JSON (the commit-log ones under ``clog``, or flat)."""
        clog = d.get("clog") or {}
        self.records, self.pages_checked = int(d.get("records", 0)), int(d.get("pages_checked", 0))
        self.pages_skipped_no_base = int(d.get("pages_skipped_no_base", 0))
        self.replays_superseded = int(d.get("replays_superseded", 0))
        self.clog_pages_checked = int(clog.get("pages_checked", d.get("clog_pages_checked", 0)))
        self.clog_xids_verified = int(clog.get("xids_verified", d.get("clog_xids_verified", 0)))
        for c in ("pages_skipped", "unsupported", "record_types", "verdicts"):
            setattr(self, c, counts_of(d.get(c)))
        raw = (d.get("coverage_cells") or {}).get("cells", d.get("cells"))  # a report's grid, an iteration's counts
        self.cells = counts_of(raw)
        self.phases = seconds_of(d.get("phases"))
