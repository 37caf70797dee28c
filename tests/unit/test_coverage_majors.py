"""Coverage is measured against the universe of the major a report was run on."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from harness.cli import main
from harness.reports.coverage import table_of
from harness.reports.schema import FuzzReport, RunTotals


def test_the_report_s_version_names_its_table() -> None:
    assert table_of("postgres (PostgreSQL) 17.10").major == 17
    assert table_of("postgres (PostgreSQL) 19devel").major == 19  # a build of master: the newest table
    assert table_of(None).major == 15 and table_of("").major == 15


def test_a_fuzz_report_of_17_counts_17_s_record_types() -> None:
    rep = FuzzReport(pg_version="postgres (PostgreSQL) 17.10")
    rep.record_types["Heap2/PRUNE_ON_ACCESS"] = 3
    cov = rep.coverage()
    assert "Heap2/PRUNE_ON_ACCESS" not in cov.missing and "Heap2/PRUNE" not in cov.missing
    assert FuzzReport().coverage().total != 0 and "Heap2/PRUNE" in FuzzReport().coverage().missing


def test_a_merge_keeps_one_version_and_drops_mixed_ones() -> None:
    a, b = FuzzReport(pg_version="postgres (PostgreSQL) 16.14"), FuzzReport(pg_version="postgres (PostgreSQL) 16.14")
    merged = RunTotals.merged([a, b])
    assert merged.pg_version == "postgres (PostgreSQL) 16.14"
    assert json.loads(json.dumps(merged.to_json()))["pg_version"] == merged.pg_version
    assert RunTotals.merged([a, FuzzReport()]).pg_version is None


def test_coverage_pg_chooses_the_universe(tmp_path: Path) -> None:
    rep = FuzzReport(pg_version="postgres (PostgreSQL) 17.10")
    rep.record_types["Heap2/PRUNE_ON_ACCESS"] = 2
    path = tmp_path / "report.json"
    path.write_text(json.dumps(rep.to_json()))
    res = CliRunner().invoke(main, ["coverage", str(path)])
    assert res.exit_code == 0, res.output
    assert "PostgreSQL 17" in res.output
    res15 = CliRunner().invoke(main, ["coverage", "--pg", "15", str(path), "--report", str(tmp_path / "c.json")])
    assert res15.exit_code == 0, res15.output
    types = {r["type"] for r in json.loads((tmp_path / "c.json").read_text())["types"]}
    assert "Heap2/PRUNE" in types and "Heap2/PRUNE_ON_ACCESS" not in types


def test_reports_of_different_majors_need_pg(tmp_path: Path) -> None:
    for v in ("16.14", "17.10"):
        (tmp_path / f"{v}.json").write_text(json.dumps(FuzzReport(pg_version=f"postgres (PostgreSQL) {v}").to_json()))
    res = CliRunner().invoke(main, ["coverage", *(str(p) for p in sorted(tmp_path.glob("*.json")))])
    assert res.exit_code == 2 and "--pg" in res.output
