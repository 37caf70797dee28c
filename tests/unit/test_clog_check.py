"""SLRU segment files (pyredo.slru.files) and the pg_xact witness check
(harness.verify.clogcheck.check_clog) on synthetic data directories, no PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from test_clog_unit import abort, commit, commit_prepared, truncate, zeropage

from harness.verify.clogcheck import check_clog, take_pg_xact_snapshot
from pyredo import BLCKSZ
from pyredo.slru.clog import (
    CLOG_XACTS_PER_PAGE,
    TRANSACTION_STATUS_ABORTED,
    TRANSACTION_STATUS_COMMITTED,
    ClogResult,
    replay_clog,
    set_xid_status,
)
from pyredo.slru.files import (
    SlruFileError,
    SlruFileName,
    load_base_pages,
    read_slru_pages,
    write_slru_pages,
)
from pyredo.wal.record import DecodedXLogRecord

P = CLOG_XACTS_PER_PAGE


def page_with(**statuses: int) -> bytes:
    page = bytearray(BLCKSZ)
    for xid, status in statuses.items():
        set_xid_status(page, int(xid.lstrip("x")), status)
    return bytes(page)


# -- files ----------------------------------------------------------------------------
def test_file_names() -> None:
    assert SlruFileName(0) == "0000" and SlruFileName(0x1F) == "001F" and SlruFileName(0xFFF) == "0FFF"


def test_write_read_round_trip_with_holes(tmp_path: Path) -> None:
    pages = {0: bytes([1]) * BLCKSZ, 2: bytes([2]) * BLCKSZ, 33: bytes([3]) * BLCKSZ}
    files = write_slru_pages(pages, tmp_path)
    assert [f.name for f in files] == ["0000", "0001"]
    assert (tmp_path / "0000").stat().st_size == 3 * BLCKSZ  # page 1 is a hole
    assert (tmp_path / "0001").stat().st_size == 2 * BLCKSZ
    back = read_slru_pages(tmp_path)
    assert back == {**pages, 1: bytes(BLCKSZ), 32: bytes(BLCKSZ)}


def test_read_ignores_other_names_and_finds_pg_xact(tmp_path: Path) -> None:
    xact = tmp_path / "pg_xact"
    write_slru_pages({0: bytes(BLCKSZ)}, xact)
    (xact / "README").write_text("x")
    (xact / "0000.tmp").write_bytes(b"x")
    assert set(read_slru_pages(tmp_path)) == {0}  # a data directory
    assert set(read_slru_pages(xact)) == {0}
    assert load_base_pages(None) == {}
    assert load_base_pages({3: b"x"}) == {3: b"x"}


def test_partial_page_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "0000").write_bytes(bytes(BLCKSZ + 10))
    with pytest.raises(SlruFileError, match="whole number"):
        read_slru_pages(tmp_path)
    with pytest.raises(SlruFileError, match="not an SLRU directory"):
        read_slru_pages(tmp_path / "nope")


def test_snapshot(tmp_path: Path) -> None:
    write_slru_pages({0: bytes([7]) * BLCKSZ}, tmp_path / "data" / "pg_xact")
    snap = take_pg_xact_snapshot(tmp_path / "data", tmp_path / "snap")
    assert read_slru_pages(snap) == {0: bytes([7]) * BLCKSZ}


# -- check_clog -----------------------------------------------------------------------
RECORDS = [commit(10, [11, 12]), abort(13), commit_prepared(14, [15]), zeropage(1), commit(P + 1), abort(P + 2)]


def primary_dir(tmp_path: Path, pages: Mapping[int, bytes]) -> Path:
    write_slru_pages(pages, tmp_path / "primary" / "pg_xact")
    return tmp_path / "primary"


def test_check_agrees_with_a_faithful_primary(tmp_path: Path) -> None:
    base = {0: bytes(BLCKSZ)}
    primary = primary_dir(tmp_path, replay_clog(RECORDS, base).pages)
    report = check_clog(RECORDS, base, primary)
    assert report.ok, report.summary()
    assert report.pages_checked == [0, 1] and report.pages_identical == [0, 1]
    assert report.xids_set == 8 and report.xids_by_status == {"committed": 6, "aborted": 2}
    assert report.subxacts == 3 and report.zeropages == [1]
    assert report.counts["Transaction/COMMIT_PREPARED"] == 1
    assert "2 pages checked (2 byte-identical), 8 xids set" in report.summary()


def test_a_wrong_status_on_the_primary_names_the_xid(tmp_path: Path) -> None:
    base = {0: bytes(BLCKSZ)}
    pages = dict(replay_clog(RECORDS, base).pages)
    p0 = bytearray(pages[0])
    set_xid_status(p0, 12, TRANSACTION_STATUS_ABORTED)
    pages[0] = bytes(p0)
    report = check_clog(RECORDS, base, primary_dir(tmp_path, pages))
    assert not report.ok and len(report.divergences) == 1
    d = report.divergences[0]
    assert (d.page, d.xid, d.expected, d.got) == (0, 12, TRANSACTION_STATUS_COMMITTED, TRANSACTION_STATUS_ABORTED)
    assert d.set_by is not None and d.set_by.top_xid == 10
    assert "xid 12 (clog page 0): pyredo committed, primary aborted" in str(d)
    assert "xid 12" in report.summary()


def flipping_engine(xid: int, status: int) -> Any:
    """A deliberately wrong engine: replay_clog, then one status flipped."""

    def engine(records: Iterable[DecodedXLogRecord], base: Mapping[int, bytes], **kw: Any) -> ClogResult:
        res = replay_clog(records, base, **kw)
        page = bytearray(res.pages[xid // P])
        set_xid_status(page, xid, status)
        return dataclasses.replace(res, pages={**res.pages, xid // P: bytes(page)})

    return engine


def test_a_wrong_engine_is_reported_with_the_xid(tmp_path: Path) -> None:
    base = {0: bytes(BLCKSZ)}
    primary = primary_dir(tmp_path, replay_clog(RECORDS, base).pages)
    report = check_clog(RECORDS, base, primary, engine=flipping_engine(P + 1, TRANSACTION_STATUS_ABORTED))
    assert [(d.xid, d.expected, d.got) for d in report.divergences] == [
        (P + 1, TRANSACTION_STATUS_ABORTED, TRANSACTION_STATUS_COMMITTED)]
    # an engine that sets a bit no record asks for is caught too
    report = check_clog(RECORDS, base, primary, engine=flipping_engine(500, TRANSACTION_STATUS_COMMITTED))
    assert [d.xid for d in report.divergences] == [500]
    assert "though no record of the range sets it" in report.divergences[0].reason


def test_an_engine_that_forgets_an_xid_is_reported(tmp_path: Path) -> None:
    # what the range determines comes from the records, not from the engine:
    # an xid the engine leaves in progress is a divergence, not "undetermined"
    base = {0: bytes(BLCKSZ)}
    primary = primary_dir(tmp_path, replay_clog(RECORDS, base).pages)
    report = check_clog(RECORDS, base, primary, engine=flipping_engine(15, 0))
    assert [(d.xid, d.expected, d.got) for d in report.divergences] == [(15, 0, TRANSACTION_STATUS_COMMITTED)]
    assert report.divergences[0].set_by is not None
    assert report.divergences[0].set_by.record == "Transaction/COMMIT_PREPARED"
    assert report.undetermined == 0

    # an engine that never writes page 1 at all
    def no_page_1(records: Iterable[DecodedXLogRecord], base: Mapping[int, bytes], **kw: Any) -> ClogResult:
        res = replay_clog([r for r in records if r.rmid != 3 and r.xid < P], base, **kw)
        return res

    report = check_clog(RECORDS, base, primary, engine=no_page_1)
    assert [(d.page, d.xid) for d in report.divergences] == [(1, None)]
    assert "pyredo has no such page" in str(report.divergences[0])


def test_bits_the_range_does_not_determine_are_not_divergences(tmp_path: Path) -> None:
    base = {0: bytes(BLCKSZ)}
    pages = dict(replay_clog(RECORDS, base).pages)
    # xid 20 committed on the primary, by a record outside the range (or a
    # page still dirty when the snapshot was taken); xid P + 9 likewise
    pages[0] = page_with(x10=1, x11=1, x12=1, x13=2, x14=1, x15=1, x20=1)
    p1 = bytearray(pages[1])
    set_xid_status(p1, P + 9, TRANSACTION_STATUS_COMMITTED)
    pages[1] = bytes(p1)
    report = check_clog(RECORDS, base, primary_dir(tmp_path, pages))
    assert report.ok, report.summary()
    assert report.undetermined == 2 and [x for x, _, _ in report.undetermined_examples] == [20, P + 9]


def test_missing_page_on_primary_and_missing_base_page(tmp_path: Path) -> None:
    base = {0: bytes(BLCKSZ)}
    pages = dict(replay_clog(RECORDS, base).pages)
    del pages[1]
    report = check_clog(RECORDS, base, primary_dir(tmp_path, pages))
    assert [(d.page, d.xid) for d in report.divergences] == [(1, None)]
    # no base page: reported, and the check fails
    report = check_clog([commit(2 * P + 5)], base, primary_dir(tmp_path, pages))
    assert not report.ok and report.missing[0].pageno == 2 and report.missing[0].xids == (2 * P + 5,)


def test_truncated_pages_must_be_gone_on_the_primary(tmp_path: Path) -> None:
    base = {p: bytes(BLCKSZ) for p in (0, 1, 32)}
    records = [truncate(32, 32 * P + 3), commit(32 * P + 3)]
    result = replay_clog(records, base)
    assert sorted(result.pages) == [32]
    ok = check_clog(records, base, primary_dir(tmp_path, result.pages))
    assert ok.ok and ok.removed_pages_checked == 32, ok.summary()
    stale = check_clog(records, base, primary_dir(tmp_path / "stale", {**result.pages, 0: bytes(BLCKSZ)}))
    assert [(d.page, d.xid) for d in stale.divergences] == [(0, None)]
    assert "TRUNCATE" in str(stale.divergences[0])


def test_an_engine_that_does_not_truncate_is_reported(tmp_path: Path) -> None:
    base = {p: bytes(BLCKSZ) for p in (0, 1, 32)}
    records = [truncate(32, 32 * P + 3), commit(32 * P + 3)]
    primary = primary_dir(tmp_path, replay_clog(records, base).pages)

    def never_truncates(records: Iterable[DecodedXLogRecord], base: Mapping[int, bytes], **kw: Any) -> ClogResult:
        return replay_clog([r for r in records if not (r.rmid == 3 and r.info == 0x10)], base, **kw)

    # the check reads the TRUNCATE from the records, not from the engine's result
    report = check_clog(records, base, primary, engine=never_truncates)
    assert [(d.page, d.xid) for d in report.divergences] == [(0, None), (1, None)], report.summary()


def test_pages_gone_without_a_truncate_in_the_range_are_not_divergences(tmp_path: Path) -> None:
    base = {p: bytes(BLCKSZ) for p in (0, 32)}
    records = [commit(32 * P + 3)]
    pages = dict(replay_clog(records, base).pages)
    del pages[0]  # a TRUNCATE after the range's end
    report = check_clog(records, base, primary_dir(tmp_path, pages))
    assert report.ok and report.pages_gone_after_range == [0], report.summary()


def test_base_from_a_snapshot_directory(tmp_path: Path) -> None:
    write_slru_pages({0: page_with(x5=1)}, tmp_path / "snap")
    result = replay_clog(RECORDS, read_slru_pages(tmp_path / "snap"))
    report = check_clog(RECORDS, tmp_path / "snap", primary_dir(tmp_path, result.pages))
    assert report.ok and report.pages_identical == [0, 1]
