"""Coverage: every page-modifying record type of PostgreSQL 15, and how many
times it was verified (from fuzz/check reports and a corpus's running total).

``compute_coverage`` is the one place coverage is computed: the fuzz report,
``FuzzReport.merged``, ``redodiff coverage`` and the HTML report all call it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyredo.rmgrlist import PG15, RmgrTable, table_for

# the rmgr table coverage is measured against (the universe of page-modifying types)
TABLE: RmgrTable = PG15


def implemented(type_name: str, table: RmgrTable = TABLE) -> bool:
    """Does pyredo have a redo routine for ``Rmgr/TYPE``?"""
    return table.implemented(type_name)


@dataclass(frozen=True)
class CoverageRow:
    """One page-modifying record type: how often verified, and whether pyredo redoes it."""

    type: str
    verified: int
    pyredo_implements: bool

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "verified": self.verified, "pyredo_implements": self.pyredo_implements}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CoverageRow:
        return cls(str(d["type"]), int(d["verified"]), bool(d["pyredo_implements"]))


def _share(n: int, total: int) -> float:
    return round(n / total, 3) if total else 0.0


@dataclass(frozen=True)
class CoverageSummary:
    """The short form a fuzz (or merged) report holds under ``coverage``."""

    covered: int
    total: int
    share: float
    missing: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"covered": self.covered, "total": self.total, "share": self.share, "missing": list(self.missing)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CoverageSummary:
        return cls(int(d["covered"]), int(d["total"]), float(d["share"]), [str(t) for t in d.get("missing", [])])


@dataclass(frozen=True)
class Coverage:
    """The full table (``redodiff coverage --report``), one row per page-modifying type."""

    rows: list[CoverageRow]

    @property
    def covered(self) -> int:
        return sum(1 for r in self.rows if r.verified)

    @property
    def total(self) -> int:
        return len(self.rows)

    @property
    def share(self) -> float:
        return _share(self.covered, self.total)

    @property
    def implemented(self) -> int:
        return sum(1 for r in self.rows if r.pyredo_implements)

    @property
    def implemented_covered(self) -> int:
        return sum(1 for r in self.rows if r.pyredo_implements and r.verified)

    @property
    def implemented_share(self) -> float:
        return _share(self.implemented_covered, self.implemented)

    @property
    def missing(self) -> list[str]:
        return [r.type for r in self.rows if not r.verified]

    def summary(self) -> CoverageSummary:
        return CoverageSummary(self.covered, self.total, self.share, self.missing)

    def to_json(self) -> dict[str, Any]:
        return {
            "types": [r.to_json() for r in self.rows],
            "covered": self.covered,
            "total": self.total,
            "share": self.share,
            "implemented": self.implemented,
            "implemented_covered": self.implemented_covered,
            "implemented_share": self.implemented_share,
            "missing": self.missing,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Coverage:
        return cls([CoverageRow.from_json(r) for r in d.get("types", [])])


def table_of(pg_version: str | None) -> RmgrTable:
    """The rmgr table of the major a report's ``pg_version`` names ("postgres (PostgreSQL)
    16.14"); PostgreSQL 15's when the report does not say."""
    m = re.search(r"(\d+)(?:\.\d+|devel|beta|rc)", pg_version or "")
    return table_for(int(m.group(1))) if m else TABLE


def compute_coverage(counts: Mapping[str, int], table: RmgrTable = TABLE) -> Coverage:
    """Coverage of ``counts`` (record type -> times verified) over every
    page-modifying record type of ``table``."""
    return Coverage([CoverageRow(t, int(counts.get(t, 0) or 0), table.implemented(t))
                     for t in table.page_modifying_types()])


def load_counts(reports: list[Path], corpus: Path | None) -> Counter[str]:
    """Record-type counts summed over report files (fuzz, merged or check) and a
    corpus's running total (``corpus/coverage.json``)."""
    total: Counter[str] = Counter()
    for p in reports:
        total.update(json.loads(p.read_text()).get("record_types", {}))
    if corpus is not None and (corpus / "coverage.json").exists():
        total.update(read_corpus_counts(corpus / "coverage.json"))
    return total


def read_corpus_counts(path: Path) -> Counter[str]:
    """The running record-type counts of a corpus's ``coverage.json``."""
    return Counter(json.loads(path.read_text()).get("record_types", {}))


def read_corpus_cells(path: Path) -> Counter[str]:
    """The running coverage-grid cell counts of a corpus's ``coverage.json`` (none in a
    corpus written before the grid)."""
    return Counter(json.loads(path.read_text()).get("cells", {}))


def corpus_counts_json(counts: Mapping[str, int], cells: Mapping[str, int] | None = None) -> dict[str, Any]:
    """What ``corpus/coverage.json`` holds: record type -> times verified and, since the
    grid, cell ("Heap/INSERT|main|data") -> times verified, summed over the corpus's runs."""
    return {"record_types": dict(sorted(counts.items())), **({"cells": dict(sorted(cells.items()))} if cells else {})}


def load_cells(reports: list[Path], corpus: Path | None = None) -> Counter[str]:
    """Coverage-grid cell counts (``coverage_cells``, harness.reports.cells) summed over
    report files and a corpus's running total; reports written before the grid have none."""
    total: Counter[str] = Counter()
    for p in reports:
        total.update((json.loads(p.read_text()).get("coverage_cells") or {}).get("cells", {}))
    if corpus is not None and (corpus / "coverage.json").exists():
        total.update(read_corpus_cells(corpus / "coverage.json"))
    return total
