"""The typed report schema reads and writes exactly the JSON the reports have.

The fixtures under tests/data/reports/ were written by ``redodiff fuzz/merge/
check/demo/coverage --report`` before the schema existed (fuzz seed 1 and the
shards of seed 2; seed 7 under the heap_insert_ctid_off_by_one mutant, whose
report holds real divergences), so a round trip through the schema must give
them back byte for byte, keys in the same order.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from harness.reports.coverage import compute_coverage, load_counts
from harness.reports.schema import (
    CampaignDivergence,
    CheckResult,
    DivergenceEntry,
    DivergenceKind,
    EngineErrorKind,
    FuzzReport,
    InfrastructureError,
    IterationSummary,
    MergedReport,
    load_run_report,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "reports"


def _text(name: str) -> str:
    return (DATA / name).read_text()


def _dump(d: object) -> str:
    return json.dumps(d, indent=2) + "\n"


@pytest.mark.parametrize("name", ["fuzz.json", "mut.json", "s1.json", "s2.json"])
def test_fuzz_reports_round_trip_byte_for_byte(name: str) -> None:
    rep = FuzzReport.from_json(json.loads(_text(name)))
    assert _dump(rep.to_json()) == _text(name)
    assert isinstance(load_run_report(json.loads(_text(name))), FuzzReport)


@pytest.mark.parametrize("name", ["merged.json", "merged2.json"])
def test_merged_reports_round_trip_byte_for_byte(name: str) -> None:
    rep = MergedReport.from_json(json.loads(_text(name)))
    assert _dump(rep.to_json()) == _text(name)
    assert isinstance(load_run_report(json.loads(_text(name))), MergedReport)


@pytest.mark.parametrize("name", ["check.json", "demo.json"])
def test_check_reports_round_trip_byte_for_byte(name: str) -> None:
    assert _dump(CheckResult.from_json(json.loads(_text(name))).to_json()) == _text(name)


def test_a_real_divergence_is_typed() -> None:
    rep = FuzzReport.from_json(json.loads(_text("mut.json")))
    assert rep.divergences, "the fixture holds the mutant's divergences"
    d = rep.divergences[0]
    assert isinstance(d, CampaignDivergence) and d.kind is DivergenceKind.ENGINE_VS_PRIMARY
    assert d.tag_fields is not None and len(d.tag_fields) == 5 and d.records and d.bundle
    assert d.iteration == 0 and d.seed == rep.results[0].seed


def test_merge_is_what_redodiff_merge_wrote() -> None:
    """merged.json = merge of s1, s2, mut; merged2.json = merge of merged.json and fuzz.json."""
    merged = json.loads(_text("merged.json"))
    parts = [FuzzReport.from_json(json.loads(_text(n))) for n in ("s1.json", "s2.json", "mut.json")]
    assert _dump(FuzzReport.merged(parts, merged["merged_from"]).to_json()) == _text("merged.json")
    again = json.loads(_text("merged2.json"))
    parts2 = [load_run_report(merged), load_run_report(json.loads(_text("fuzz.json")))]
    assert _dump(FuzzReport.merged(parts2, again["merged_from"]).to_json()) == _text("merged2.json")


def test_junit_of_a_report_read_back_is_what_fuzz_wrote() -> None:
    assert FuzzReport.from_json(json.loads(_text("mut.json"))).junit_xml() == _text("mut.xml")


def test_coverage_is_what_redodiff_coverage_wrote(tmp_path: Path) -> None:
    """cov.json = ``redodiff coverage s1.json s2.json --corpus C`` (C: fuzz.json's corpus)."""
    (tmp_path / "coverage.json").write_text(_text("corpus_coverage.json"))
    counts = load_counts([DATA / "s1.json", DATA / "s2.json"], tmp_path)
    assert _dump(compute_coverage(counts).to_json()) == _text("cov.json")


def test_a_corpus_keeps_the_grid_s_cells_and_coverage_reads_them(tmp_path: Path) -> None:
    from harness.reports.coverage import corpus_counts_json, load_cells, read_corpus_cells

    cells = {"Heap/INSERT|main|data": 3, "Btree/INSERT_LEAF|main|image-applied": 1}
    (tmp_path / "coverage.json").write_text(json.dumps(corpus_counts_json({"Heap/INSERT": 3}, cells)))
    assert read_corpus_cells(tmp_path / "coverage.json") == Counter(cells)
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"coverage_cells": {"cells": {"Heap/INSERT|main|data": 2}}}))
    assert load_cells([report], tmp_path) == Counter({**cells, "Heap/INSERT|main|data": 5})
    # a corpus written before the grid: record types only, no cells
    (tmp_path / "coverage.json").write_text(json.dumps(corpus_counts_json({"Heap/INSERT": 3})))
    assert read_corpus_cells(tmp_path / "coverage.json") == Counter() and load_cells([], tmp_path) == Counter()


def test_every_report_computes_coverage_the_same_way() -> None:
    rep = FuzzReport.from_json(json.loads(_text("fuzz.json")))
    full = compute_coverage(rep.record_types)
    assert rep.coverage() == full.summary()
    assert rep.coverage().to_json() == json.loads(_text("fuzz.json"))["coverage"]
    assert CheckResult(record_types=Counter(rep.record_types)).coverage() == full.summary()


def test_an_iteration_folds_into_the_report() -> None:
    page = DivergenceEntry(DivergenceKind.ENGINE_DISAGREEMENT, "1663/5/16384.main blk 0", ["pyredo", "walredo"],
                           "Heap/INSERT", 0x1000028, [1663, 5, 16384, 0, 0], [0x1000028], "Heap", ["lp 1"], None)
    it = IterationSummary(3, 99, "fpw", 1.25, records=10, pages_checked=4, divergences=[page, DivergenceEntry.clog("xid 7")],
                          record_types=Counter({"Heap/INSERT": 2}), bundles=["/b/1"], rules={"insert": 1})
    it.add_infrastructure_error("could not save seed 99: disk full")
    rep = FuzzReport(seed=0, shard="1/1", engines=["pyredo", "walredo"], profile="ci")
    rep.add(it)
    rep.infrastructure_errors.append(InfrastructureError("worker: boom"))
    out = rep.to_json()
    assert out["divergences"][0]["bundle"] == "/b/1" and out["divergences"][0]["first_diverging_lsn"] == "0/1000028"
    # a commit-log divergence has no page: today's keys, and no bundle
    assert list(out["divergences"][1]) == ["kind", "tag", "record_type", "diff", "engines", "first_diverging_lsn",
                                           "seed", "iteration", "bundle"]
    assert out["divergences"][1]["bundle"] is None and out["divergences"][1]["kind"] == "clog_vs_primary"
    assert out["infrastructure_errors"] == [
        {"iteration": 3, "seed": 99, "error": "could not save seed 99: disk full"},
        {"iteration": None, "seed": None, "error": "worker: boom"}]
    assert out["iteration_results"][0]["bundles"] == ["/b/1"] and out["rules_used"] == {"insert": 1}
    assert _dump(FuzzReport.from_json(out).to_json()) == _dump(out)
    assert IterationSummary.from_json(it.to_json()) == it


class _Exc(Exception):
    def __init__(self, kind: str | None, returncode: int | None = None) -> None:
        super().__init__(kind)
        self.kind, self.returncode = kind, returncode


@pytest.mark.parametrize(("exc", "want"), [
    (_Exc("timeout"), EngineErrorKind.INFRASTRUCTURE),
    (_Exc("spawn"), EngineErrorKind.INFRASTRUCTURE),
    (_Exc("crash", -9), EngineErrorKind.INFRASTRUCTURE),  # killed by a signal
    (_Exc("crash", 1), EngineErrorKind.FINDING),  # exited with an error redoing a record
    (_Exc("refused"), EngineErrorKind.REFUSAL),
    (ValueError("bad tuple"), EngineErrorKind.FINDING),
])
def test_engine_error_kinds(exc: BaseException, want: EngineErrorKind) -> None:
    assert EngineErrorKind.of(exc) is want


def test_divergence_kinds_keep_their_strings() -> None:
    assert [k.value for k in DivergenceKind] == ["engine_disagreement", "engine_vs_primary", "engine_error",
                                                 "clog_vs_primary", "primary_differs"]
    assert DivergenceKind.ENGINE_VS_PRIMARY.bundle_prefix == "primary"
    assert DivergenceKind.PRIMARY_DIFFERS.bundle_prefix == "wal"
    with pytest.raises(ValueError):
        DivergenceKind("engine_vs_engine")


def test_a_campaign_counts_its_pages_by_verdict_and_a_merge_adds_them() -> None:
    from harness.reports.schema import FuzzReport, IterationSummary, RunTotals

    rep = FuzzReport()
    for i, verdicts in enumerate(({"verified": 5, "verified (allowed: neon-visible-sets-lsn)": 2}, {"verified": 1})):
        it = IterationSummary(i, i, "fpw")
        it.verdicts.update(verdicts)
        rep.add(IterationSummary.from_json(it.to_json()))  # through the worker's JSON hand-over
    assert rep.verdicts == {"verified": 6, "verified (allowed: neon-visible-sets-lsn)": 2}
    back = FuzzReport.from_json(rep.to_json())
    assert back.verdicts == rep.verdicts
    assert RunTotals.merged([back, back]).verdicts["verified"] == 12
    assert "verdicts" not in FuzzReport().to_json()  # reports of runs that judged nothing are unchanged
