"""Coverage: every page-modifying record type of PostgreSQL 15, and how many
times it was verified (from fuzz/check reports and a corpus's running total)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from pyredo.rmgr import RMGR_BY_NAME, page_modifying_types


def implemented(type_name: str) -> bool:
    """Does pyredo have a redo routine for ``Rmgr/TYPE``?"""
    rmgr_name = type_name.partition("/")[0]
    r = RMGR_BY_NAME.get(rmgr_name)
    if r is None:
        return False
    for info in r.page_modifying:
        if r.type_name(info) == type_name:
            return (info & r.opmask) in r.redo_table
    return False


def load_counts(reports: list[Path], corpus: Path | None) -> Counter[str]:
    total: Counter[str] = Counter()
    for p in reports:
        total.update(json.loads(p.read_text()).get("record_types", {}))
    if corpus is not None and (corpus / "coverage.json").exists():
        total.update(json.loads((corpus / "coverage.json").read_text()).get("record_types", {}))
    return total


def coverage_table(counts: Counter[str]) -> dict[str, Any]:
    rows = []
    for t in page_modifying_types():
        rows.append({"type": t, "verified": counts.get(t, 0), "pyredo_implements": implemented(t)})
    covered = sum(1 for r in rows if r["verified"])
    impl = [r for r in rows if r["pyredo_implements"]]
    impl_cov = sum(1 for r in impl if r["verified"])
    return {
        "types": rows,
        "covered": covered,
        "total": len(rows),
        "share": round(covered / len(rows), 3) if rows else 0.0,
        "implemented": len(impl),
        "implemented_covered": impl_cov,
        "implemented_share": round(impl_cov / len(impl), 3) if impl else 0.0,
        "missing": [r["type"] for r in rows if not r["verified"]],
    }
