"""The vote on a page (harness.verify.verdict, Checker.check_block) and known PostgreSQL
issues (oracles/known_issues.toml): every engine runs, the verdict names the odd one out."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest
from factories import block, encoded, record, tag

from harness.reports.schema import CampaignDivergence, CheckResult, DivergenceKind
from harness.selftest.mutants import MutantError
from harness.verify.check import Checker, CheckReport
from harness.verify.plan import BlockPlan, build_plan
from harness.verify.verdict import AGREE_BLOCK_ABSENT, VERIFIED, Witnessed, judge
from oracles.known_issues import KnownIssues, KnownIssuesError
from oracles.masks import MaskError
from pyredo import BLCKSZ
from pyredo.engine import RedoEngine
from pyredo.page.bufpage import PageInit
from pyredo.rmgr import RM_XLOG_ID
from pyredo.rmgrlist import PG15
from pyredo.wal.builder import BlockSpec
from pyredo.wal.record import (
    INIT_FORKNUM,
    MAIN_FORKNUM,
    VISIBILITYMAP_FORKNUM,
    BufferTag,
    DecodedXLogRecord,
)
from pyredo.xlogutils import RedoContext

XLOG_FPI = 0xB0
VM = tag(0, fork=VISIBILITYMAP_FORKNUM)


class Named:
    """An engine under another name (a second engine that redoes as pyredo does)."""

    def __init__(self, name: str, engine: RedoEngine | None = None) -> None:
        self.name = name
        self.engine = engine or RedoEngine()

    def reconstruct(self, t: BufferTag, base: bytes | None, records: Iterable[DecodedXLogRecord]) -> bytes:
        return self.engine.reconstruct(t, base, records)


def _vm_page(bits: bytes) -> bytes:
    page = bytearray(BLCKSZ)
    PageInit(page, BLCKSZ, 0)  # a VM page: pd_lower 24, pd_upper 8192, its bits in between
    page[24 : 24 + len(bits)] = bits
    return bytes(page)


def _standard_fpi(t: BufferTag, page: bytes) -> DecodedXLogRecord:
    """XLOG/FPI of ``page`` logged as a standard page (log_newpage_buffer(buf, true)):
    the image leaves out pd_lower..pd_upper."""
    lower, upper = int.from_bytes(page[12:14], "little"), int.from_bytes(page[14:16], "little")
    return encoded(RM_XLOG_ID, XLOG_FPI, b"", [BlockSpec(0, t.rnode, t.fork, t.blk, image=page,
                                                         hole=(lower, upper - lower))])


def _check(engines: list[object], primary: bytes | None, records: list[DecodedXLogRecord],
           t: BufferTag = VM) -> CheckReport:
    report = CheckReport()
    checker = Checker(engines, lambda _t: primary, end_lsn=records[-1].end_lsn + 0x1000)  # type: ignore[arg-type]
    checker.check_block(BlockPlan(t, records), report)
    return report


def test_all_engines_agree_and_the_primary_differs_in_the_image_hole_is_the_known_vm_issue() -> None:
    primary = _vm_page(b"\x03\x0f\xff\x07")
    rec = _standard_fpi(VM, primary)
    report = _check([RedoEngine(), Named("walredo")], primary, [rec])
    (d,) = report.divergences
    assert d.kind is DivergenceKind.PRIMARY_DIFFERS and d.engines == ["pyredo", "walredo"]
    assert d.known == "create-database-wal-log-vm-hole"
    assert d.verdict is not None and d.verdict.startswith("pyredo and walredo agree; the primary differs: "
                                                          "the WAL does not carry what the primary has")
    assert "known PostgreSQL issue create-database-wal-log-vm-hole" in d.verdict
    assert report.verdicts == {"primary_differs (known: create-database-wal-log-vm-hole)": 1}
    entry = d.entry().to_json()
    assert entry["kind"] == "primary_differs" and entry["known"] == d.known and entry["verdict"] == d.verdict
    assert CheckResult(divergences=[d.entry()]).unknown_divergences == []


def test_the_same_difference_outside_the_hole_is_a_finding() -> None:
    primary = _vm_page(b"\x03")
    rec = _standard_fpi(VM, primary)
    moved = bytearray(primary)
    moved[22] ^= 1  # pd_prune_xid: in the image, not in the hole
    report = _check([RedoEngine(), Named("walredo")], bytes(moved), [rec])
    (d,) = report.divergences
    assert d.kind is DivergenceKind.PRIMARY_DIFFERS and d.known is None
    # and a VM page whose image had no hole (page_std = false) never matches
    full = record(RM_XLOG_ID, XLOG_FPI, b"", block(0, 0, fork=VISIBILITYMAP_FORKNUM, image=_vm_page(b"")))
    report = _check([RedoEngine(), Named("walredo")], primary, [full])
    (d,) = report.divergences
    assert d.kind is DivergenceKind.PRIMARY_DIFFERS and d.known is None


def test_one_engine_alone_cannot_blame_the_wal() -> None:
    primary = _vm_page(b"\x01")
    other = bytearray(primary)
    other[22] ^= 1
    report = _check([RedoEngine()], bytes(other), [_standard_fpi(VM, primary)])
    (d,) = report.divergences
    assert d.kind is DivergenceKind.ENGINE_VS_PRIMARY and d.engines == ["pyredo"] and d.known is None
    assert d.verdict is not None and "only engine that answered" in d.verdict
    # unless the difference carries a known issue's exact signature: then it is that issue
    primary = _vm_page(b"\x03\x0f")
    (d,) = _check([RedoEngine()], primary, [_standard_fpi(VM, primary)]).divergences
    assert d.kind is DivergenceKind.ENGINE_VS_PRIMARY and d.known == "create-database-wal-log-vm-hole"


def _failing(message: str = "injected") -> RedoEngine:
    """pyredo with XLOG/FPI replaced by a routine that raises (a mutant)."""

    def boom(ctx: RedoContext) -> None:
        raise MutantError(message)

    return RedoEngine(PG15.with_routine(RM_XLOG_ID, XLOG_FPI, boom))


def test_an_engine_that_fails_does_not_stop_the_others() -> None:
    primary = _vm_page(b"")
    rec = _standard_fpi(VM, primary)
    report = _check([_failing(), Named("walredo")], primary, [rec])
    (d,) = report.divergences
    assert d.kind is DivergenceKind.ENGINE_ERROR and d.engines == ["pyredo"]
    assert d.verdict is not None and d.verdict.startswith("pyredo failed (RedoError: ")
    assert d.verdict.endswith("where walredo answered; walredo matches the primary"), d.verdict
    assert set(d.pages) == {"walredo", "primary"}
    # the primary differing from the engine that answered is said too
    other = bytearray(primary)
    other[22] ^= 1
    report = _check([_failing(), Named("walredo")], bytes(other), [rec])
    (d,) = report.divergences
    assert d.verdict is not None and d.verdict.endswith("walredo differs from the primary"), d.verdict
    # every engine failing
    report = _check([_failing(), Named("walredo", _failing())], primary, [rec])
    (d,) = report.divergences
    assert d.kind is DivergenceKind.ENGINE_ERROR and d.engines == ["pyredo", "walredo"]
    assert d.verdict is not None and d.verdict.startswith("every engine failed: pyredo (RedoError")


def test_engines_that_disagree_are_judged_by_the_primary() -> None:
    primary = _vm_page(b"")
    rec = _standard_fpi(VM, primary)
    flipped = bytearray(primary)
    flipped[22] ^= 1  # an engine that gets pd_prune_xid wrong

    class Wrong(Named):
        def reconstruct(self, t: BufferTag, base: bytes | None, records: Iterable[DecodedXLogRecord]) -> bytes:
            page = bytearray(super().reconstruct(t, base, records))
            page[22] ^= 1
            return bytes(page)

    report = _check([Wrong("pyredo"), Named("walredo")], primary, [rec])
    (d,) = report.divergences
    assert d.kind is DivergenceKind.ENGINE_DISAGREEMENT and d.engines == ["pyredo", "walredo"]
    assert d.verdict is not None and "walredo sides with the primary: pyredo is wrong" in d.verdict
    assert d.first_diverging_lsn == rec.lsn
    report = _check([Wrong("pyredo"), Named("walredo")], bytes(flipped), [rec])
    (d,) = report.divergences
    assert d.verdict is not None and "pyredo sides with the primary: walredo is wrong" in d.verdict


def test_verdict_counts_and_a_dropped_relation_compared_engine_against_engine() -> None:
    page = _vm_page(b"")
    rec = _standard_fpi(VM, page)
    report = _check([RedoEngine(), Named("walredo")], page, [rec])
    assert report.divergences == [] and report.verdicts == {VERIFIED: 1} and report.pages_checked == 1
    report = _check([RedoEngine(), Named("walredo")], None, [rec])
    assert report.divergences == [] and report.verdicts == {AGREE_BLOCK_ABSENT: 1} and report.pages_checked == 1
    assert report.pages_skipped == {"witness: block absent on the primary": 1}
    report = _check([RedoEngine()], None, [rec])  # one engine and no witness: nothing compared
    assert report.verdicts == {} and report.pages_checked == 0


def test_judge_without_witness_names_the_reason() -> None:
    v = judge({"pyredo": b"a", "walredo": b"b"}, {}, Witnessed("no primary"))
    assert v.kind is DivergenceKind.ENGINE_DISAGREEMENT and v.line.endswith("no witness (no primary)")
    v = judge({"pyredo": b"a"}, {}, Witnessed("no primary"), abstained=["walredo"])
    assert v.kind is None and not v.compared


def test_init_fork_pages_are_redone_and_become_the_main_fork_at_recovery_end() -> None:
    page = bytearray(BLCKSZ)
    PageInit(page, BLCKSZ, 16)
    page[-4:] = b"\x08\x00\x80\xff"  # hasho_flag LH_META_PAGE, hasho_page_id: a hash metapage
    init = tag(0, fork=INIT_FORKNUM)
    rec = _standard_fpi(init, bytes(page))
    assert RedoEngine().reconstruct(init, None, [rec])[24:] == bytes(page)[24:]
    plan = build_plan([rec])
    assert plan.unlogged == {init.rnode}
    primary = {init: bytes(page), init._replace(fork=MAIN_FORKNUM): bytes(page)}
    report = Checker([RedoEngine(), Named("walredo")], primary.get, end_lsn=rec.end_lsn).check_plan(plan)
    assert report.divergences == [] and report.verdicts == {VERIFIED: 1}
    eor = report.end_of_recovery
    assert eor is not None and eor["unlogged_relations"] == 1 and eor["init_pages"] == 1
    assert eor["main_fork_witnessed"] == 1 and "ResetUnloggedRelations" in eor["summary"]
    # a main fork holding rows written since (no WAL) is said, and is no finding
    written = bytearray(page)
    written[-8:-4] = (5).to_bytes(4, "little")  # hasho_bucket: what the primary wrote since
    primary[init._replace(fork=MAIN_FORKNUM)] = bytes(written)
    report = Checker([RedoEngine(), Named("walredo")], primary.get, end_lsn=rec.end_lsn).check_plan(plan)
    assert report.divergences == [] and report.end_of_recovery is not None
    assert report.end_of_recovery["main_fork_differs"] == 1
    assert "rows written without WAL" in report.end_of_recovery["summary"]


def test_known_issues_file_is_checked(tmp_path: Path) -> None:
    issues = KnownIssues.load(150018)
    issue = issues.get("create-database-wal-log-vm-hole")
    assert issue is not None and issue.affects(150018) and issue.affects(150020) and issue.affects(180006)
    assert not issue.affects(140010)  # no STRATEGY WAL_LOG before 15
    assert "pgsql-hackers" in issue.reference or "postgresql.org/message-id" in issue.reference
    bad = tmp_path / "bad.toml"
    bad.write_text('[[issue]]\nid = "x"\ntitle = "t"\nkind = "primary_differs"\nreference = "r"\nbytes = "all"\n')
    with pytest.raises(KnownIssuesError, match="bytes must be"):
        KnownIssues.load(path=bad)
    bad.write_text('[[issue]]\nid = "x"\ntitle = "t"\nkind = "primary_differs"\nreference = "r"\nfrok = "vm"\n')
    with pytest.raises(KnownIssuesError, match="unknown keys"):
        KnownIssues.load(path=bad)
    # a release the issue does not affect gets no match
    primary = _vm_page(b"\x03")
    report = CheckReport()
    Checker([RedoEngine(), Named("walredo")], lambda _t: primary, known_issues=KnownIssues.load(140010),
            end_lsn=0x2000000).check_block(BlockPlan(VM, [_standard_fpi(VM, primary)]), report)
    (d,) = report.divergences
    assert d.kind is DivergenceKind.PRIMARY_DIFFERS and d.known is None


def test_reports_carry_verdict_known_and_counts_and_read_back() -> None:
    primary = _vm_page(b"\x03")
    report = _check([RedoEngine(), Named("walredo")], primary, [_standard_fpi(VM, primary)])
    result = report.result()
    out = result.to_json()
    (d,) = out["divergences"]
    assert list(d)[:10] == ["kind", "tag", "tag_fields", "engines", "record_type", "first_diverging_lsn",
                            "records", "owner", "diff", "error"]  # today's keys, in today's order
    assert d["verdict"] == report.divergences[0].verdict and d["known"] == "create-database-wal-log-vm-hole"
    assert out["verdicts"] == {"primary_differs (known: create-database-wal-log-vm-hole)": 1}
    again = CheckResult.from_json(out)
    assert again.to_json() == out and again.unknown_divergences == []
    # a campaign keeps them too
    cd = CampaignDivergence.found(result.divergences[0], seed=3, iteration=1, bundle=None)
    assert cd.known == d["known"] and cd.to_json()["verdict"] == d["verdict"] and cd.seed == 3


def test_bundle_and_html_show_the_verdict_first(tmp_path: Path) -> None:
    from harness.campaign.bundle import write_bundle
    from harness.reports.html import render

    primary = _vm_page(b"\x03")
    (d,) = _check([RedoEngine(), Named("walredo")], primary, [_standard_fpi(VM, primary)]).divergences
    path = write_bundle(tmp_path, d, workload=None, seed=None, settings_label=None, pg_version=None,
                        wal_range=None)
    assert path.name.startswith("wal-XLOG_FPI-")
    diff = (path / "diff.txt").read_text().splitlines()
    assert diff[0] == f"verdict: {d.verdict}" and "create-database-wal-log-vm-hole" in diff[1]
    page = render(path)
    assert "known: create-database-wal-log-vm-hole" in page
    verdict_at = page.index("<p class=verdict><b>verdict:</b> pyredo and walredo agree; the primary differs")
    assert verdict_at < page.index("kind: <b>primary_differs</b>") < page.index("<h3>differences</h3>")


def test_pages_equal_to_the_primary_byte_for_byte_need_no_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    """Equal pages stay equal under any mask: the witness agrees without masking; a page
    that differs is masked (here: the mask fails, so there is no witness)."""
    rec = _standard_fpi(VM, _vm_page(b"\x03"))
    page = RedoEngine().reconstruct(VM, None, [rec])

    def no_mask(*_a: object, **_k: object) -> bytes:
        raise MaskError("masked")

    monkeypatch.setattr("harness.verify.check.mask_page", no_mask)
    report = _check([RedoEngine(), Named("walredo")], page, [rec])
    assert report.divergences == [] and report.verdicts == {VERIFIED: 1}
    other = bytearray(page)
    other[22] ^= 1
    report = _check([RedoEngine(), Named("walredo")], bytes(other), [rec])
    assert report.pages_skipped == {"witness: masked": 1}
