"""pg_xact redo (pyredo.slru.clog) on hand-built records, no PostgreSQL:
the bit layout, ParseCommitRecord / ParseAbortRecord with every optional part,
TransactionIdSetTreeStatus across pages, ZEROPAGE / TRUNCATE, and the errors.

The record builders below lay main data out as XactLogCommitRecord /
XactLogAbortRecord / WriteZeroPageXlogRec / WriteTruncateXlogRec write it,
encode whole XLogRecords (pyredo.wal.builder) and decode them back;
test_clog_check.py imports them."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence

import pytest

from pyredo import BLCKSZ
from pyredo.errors import RedoError, UnsupportedRecord
from pyredo.rmgr import RM_CLOG_ID, RM_XACT_ID
from pyredo.slru import clog as C
from pyredo.slru.clog import (
    CLOG_TRUNCATE,
    CLOG_XACTS_PER_PAGE,
    CLOG_ZEROPAGE,
    TRANSACTION_STATUS_ABORTED,
    TRANSACTION_STATUS_COMMITTED,
    TRANSACTION_STATUS_IN_PROGRESS,
    TRANSACTION_STATUS_SUB_COMMITTED,
    XACT_XINFO_HAS_DBINFO,
    XACT_XINFO_HAS_DROPPED_STATS,
    XACT_XINFO_HAS_GID,
    XACT_XINFO_HAS_INVALS,
    XACT_XINFO_HAS_ORIGIN,
    XACT_XINFO_HAS_RELFILENODES,
    XACT_XINFO_HAS_SUBXACTS,
    XACT_XINFO_HAS_TWOPHASE,
    XLOG_XACT_ABORT,
    XLOG_XACT_ABORT_PREPARED,
    XLOG_XACT_ASSIGNMENT,
    XLOG_XACT_COMMIT,
    XLOG_XACT_COMMIT_PREPARED,
    XLOG_XACT_HAS_INFO,
    XLOG_XACT_INVALIDATIONS,
    XLOG_XACT_PREPARE,
    ClogError,
    ClogPages,
    ClogStateError,
    NoBasePage,
    ParseAbortRecord,
    ParseCommitRecord,
    get_xid_status,
    replay_clog,
    set_xid_status,
)
from pyredo.wal.builder import encode_record
from pyredo.wal.decoder import decode_record
from pyredo.wal.record import DecodedXLogRecord

XACT_TIME = 0x0002_8C4F_1234_5678
_lsns = itertools.count(0x0100_0028, 0x100)


def xact_body(
    *,
    extra_xinfo: int = 0,
    dbinfo: tuple[int, int] | None = None,
    subxacts: Sequence[int] = (),
    rels: Sequence[tuple[int, int, int]] = (),
    stats: Sequence[tuple[int, int, int]] = (),
    msgs: Sequence[bytes] = (),
    twophase_xid: int | None = None,
    gid: str | None = None,
    origin: tuple[int, int] | None = None,
) -> tuple[int, bytes]:
    """(XLOG_XACT_HAS_INFO or 0, main data) of a commit/abort record."""
    xinfo = extra_xinfo
    if dbinfo is not None:
        xinfo |= XACT_XINFO_HAS_DBINFO
    if subxacts:
        xinfo |= XACT_XINFO_HAS_SUBXACTS
    if rels:
        xinfo |= XACT_XINFO_HAS_RELFILENODES
    if stats:
        xinfo |= XACT_XINFO_HAS_DROPPED_STATS
    if msgs:
        xinfo |= XACT_XINFO_HAS_INVALS
    if twophase_xid is not None:
        xinfo |= XACT_XINFO_HAS_TWOPHASE
        if gid is not None:
            xinfo |= XACT_XINFO_HAS_GID
    if origin is not None:
        xinfo |= XACT_XINFO_HAS_ORIGIN
    out = bytearray(struct.pack("<q", XACT_TIME))
    if xinfo:
        out += struct.pack("<I", xinfo)
    if dbinfo is not None:
        out += struct.pack("<II", *dbinfo)
    if subxacts:
        out += struct.pack(f"<i{len(subxacts)}I", len(subxacts), *subxacts)
    if rels:
        out += struct.pack("<i", len(rels)) + b"".join(struct.pack("<III", *r) for r in rels)
    if stats:
        out += struct.pack("<i", len(stats)) + b"".join(struct.pack("<iII", *s) for s in stats)
    if msgs:
        assert all(len(m) == 16 for m in msgs)
        out += struct.pack("<i", len(msgs)) + b"".join(msgs)
    if twophase_xid is not None:
        out += struct.pack("<I", twophase_xid)
        if gid is not None:
            out += gid.encode() + b"\0"
    if origin is not None:
        out += struct.pack("<Qq", *origin)
    return (XLOG_XACT_HAS_INFO if xinfo else 0), bytes(out)


def decoded(rmid: int, info: int, main_data: bytes, xid: int = 0, lsn: int | None = None) -> DecodedXLogRecord:
    raw = encode_record(rmid, info, xid=xid, main_data=main_data)
    at = next(_lsns) if lsn is None else lsn
    return decode_record(raw, at, at + ((len(raw) + 7) & ~7))


def commit(xid: int, subxacts: Sequence[int] = (), **kw: object) -> DecodedXLogRecord:
    bits, data = xact_body(subxacts=subxacts, **kw)  # type: ignore[arg-type]
    return decoded(RM_XACT_ID, XLOG_XACT_COMMIT | bits, data, xid)


def abort(xid: int, subxacts: Sequence[int] = (), **kw: object) -> DecodedXLogRecord:
    bits, data = xact_body(subxacts=subxacts, **kw)  # type: ignore[arg-type]
    return decoded(RM_XACT_ID, XLOG_XACT_ABORT | bits, data, xid)


def commit_prepared(xid: int, subxacts: Sequence[int] = (), **kw: object) -> DecodedXLogRecord:
    bits, data = xact_body(subxacts=subxacts, twophase_xid=xid, **kw)  # type: ignore[arg-type]
    return decoded(RM_XACT_ID, XLOG_XACT_COMMIT_PREPARED | bits, data, 0)


def abort_prepared(xid: int, subxacts: Sequence[int] = (), **kw: object) -> DecodedXLogRecord:
    bits, data = xact_body(subxacts=subxacts, twophase_xid=xid, **kw)  # type: ignore[arg-type]
    return decoded(RM_XACT_ID, XLOG_XACT_ABORT_PREPARED | bits, data, 0)


def prepare(xid: int) -> DecodedXLogRecord:
    # xl_xact_prepare: magic, total_len, xid, database, prepared_at (8-aligned), ...
    data = struct.pack("<IIII", 0x57F94534, 128, xid, 5) + bytes(112)
    return decoded(RM_XACT_ID, XLOG_XACT_PREPARE, data, xid)


def assignment(xtop: int, subxacts: Sequence[int]) -> DecodedXLogRecord:
    data = struct.pack(f"<Ii{len(subxacts)}I", xtop, len(subxacts), *subxacts)
    return decoded(RM_XACT_ID, XLOG_XACT_ASSIGNMENT, data, xtop)


def invalidations(xid: int, nmsgs: int = 2) -> DecodedXLogRecord:
    data = struct.pack("<i", nmsgs) + bytes(16 * nmsgs)
    return decoded(RM_XACT_ID, XLOG_XACT_INVALIDATIONS, data, xid)


def zeropage(pageno: int) -> DecodedXLogRecord:
    return decoded(RM_CLOG_ID, CLOG_ZEROPAGE, struct.pack("<i", pageno))


def truncate(pageno: int, oldest_xact: int, oldest_db: int = 5) -> DecodedXLogRecord:
    return decoded(RM_CLOG_ID, CLOG_TRUNCATE, struct.pack("<iII", pageno, oldest_xact, oldest_db))


# ---------------------------------------------------------------------------
# the tests
# ---------------------------------------------------------------------------
P = CLOG_XACTS_PER_PAGE
COMMITTED, ABORTED, SUBCOMMITTED = TRANSACTION_STATUS_COMMITTED, TRANSACTION_STATUS_ABORTED, TRANSACTION_STATUS_SUB_COMMITTED


def zero_pages(*pagenos: int) -> dict[int, bytes]:
    return {p: bytes(BLCKSZ) for p in pagenos}


# -- bit layout ------------------------------------------------------------------
def test_layout_constants() -> None:
    assert C.CLOG_BITS_PER_XACT == 2 and C.CLOG_XACTS_PER_BYTE == 4
    assert CLOG_XACTS_PER_PAGE == 32768 and C.CLOG_XACT_BITMASK == 3
    assert C.SLRU_PAGES_PER_SEGMENT == 32


@pytest.mark.parametrize(("xid", "page", "pgindex", "byte", "bindex"), [
    (0, 0, 0, 0, 0),
    (3, 0, 3, 0, 3),
    (4, 0, 4, 1, 0),
    (32767, 0, 32767, 8191, 3),
    (32768, 1, 0, 0, 0),
    (1_048_575, 31, 32767, 8191, 3),
    (1_048_576, 32, 0, 0, 0),
    (0xFFFFFFFF, 131071, 32767, 8191, 3),
])
def test_xid_to_position(xid: int, page: int, pgindex: int, byte: int, bindex: int) -> None:
    assert C.TransactionIdToPage(xid) == page
    assert C.TransactionIdToPgIndex(xid) == pgindex
    assert C.TransactionIdToByte(xid) == byte
    assert C.TransactionIdToBIndex(xid) == bindex


def test_status_bits_round_trip_and_leave_neighbours_alone() -> None:
    page = bytearray(BLCKSZ)
    for xid in range(4, 12):
        for status in (0, 1, 2, 3):
            before = bytes(page)
            set_xid_status(page, xid, status)
            assert get_xid_status(page, xid) == status
            for other in range(0, 16):
                if other != xid:
                    assert get_xid_status(page, other) == get_xid_status(before, other)
    # low bits first: xid 4k in bits 0-1, 4k+3 in bits 6-7
    page = bytearray(BLCKSZ)
    set_xid_status(page, 8, COMMITTED)
    set_xid_status(page, 11, ABORTED)
    assert page[2] == 0b10_00_00_01
    set_xid_status(page, P - 1, SUBCOMMITTED)
    assert page[BLCKSZ - 1] == 0b11_00_00_00


def test_every_pattern_of_a_byte_round_trips() -> None:
    for value in range(256):
        page = bytearray(BLCKSZ)
        statuses = [(value >> (2 * k)) & 3 for k in range(4)]
        for k, s in enumerate(statuses):
            set_xid_status(page, 40 + k, s)
        assert page[10] == value
        assert [get_xid_status(page, 40 + k) for k in range(4)] == statuses


def test_transaction_id_precedes_and_page_order() -> None:
    assert C.TransactionIdPrecedes(3, 4) and not C.TransactionIdPrecedes(4, 3)
    assert C.TransactionIdPrecedes(0xFFFFFFF0, 5)  # across wraparound
    assert C.TransactionIdPrecedes(1, 2)  # permanent xids: plain order
    assert C.CLOGPagePrecedes(0, 1) and not C.CLOGPagePrecedes(1, 1) and not C.CLOGPagePrecedes(2, 1)
    assert C.CLOGPagePrecedes(131071, 0)  # the last page precedes page 0 after wraparound
    assert C.SlruMayDeleteSegment(0, 32) and not C.SlruMayDeleteSegment(0, 31)
    assert not C.SlruMayDeleteSegment(32, 32)
    assert C.TransactionIdLatest(10, [12, 11]) == 12
    assert C.TransactionIdLatest(0xFFFFFFF0, [4]) == 4


# -- parsing ----------------------------------------------------------------------
MSGS = (bytes(range(16)), bytes(range(16, 32)))
FULL = {
    "dbinfo": (5, 1663),
    "subxacts": (1001, 1002, 1003),
    "rels": ((1663, 5, 16384), (1663, 5, 16390)),
    "stats": ((1, 5, 16384),),
    "msgs": MSGS,
    "twophase_xid": 999,
    "gid": "gid-odd",  # odd length: the origin after it is unaligned
    "origin": (0x0000_0001_0000_0ABC, 0x0002_1234),
}


def test_parse_minimal_commit() -> None:
    bits, data = xact_body()
    assert bits == 0 and len(data) == C.MinSizeOfXactCommit
    p = ParseCommitRecord(XLOG_XACT_COMMIT | bits, data)
    assert p.xact_time == XACT_TIME and p.xinfo == 0 and p.subxacts == ()
    assert p.twophase_xid == 0 and p.msgs == ()


def test_parse_commit_with_every_part() -> None:
    bits, data = xact_body(**FULL)  # type: ignore[arg-type]
    assert bits == XLOG_XACT_HAS_INFO
    p = ParseCommitRecord(XLOG_XACT_COMMIT_PREPARED | bits, data)
    assert p.xinfo == (XACT_XINFO_HAS_DBINFO | XACT_XINFO_HAS_SUBXACTS | XACT_XINFO_HAS_RELFILENODES
                       | XACT_XINFO_HAS_DROPPED_STATS | XACT_XINFO_HAS_INVALS | XACT_XINFO_HAS_TWOPHASE
                       | XACT_XINFO_HAS_GID | XACT_XINFO_HAS_ORIGIN)
    assert (p.db_id, p.ts_id) == (5, 1663)
    assert p.subxacts == (1001, 1002, 1003) and p.nsubxacts == 3
    assert p.xnodes == ((1663, 5, 16384), (1663, 5, 16390))
    assert p.stats == ((1, 5, 16384),)
    assert p.msgs == MSGS
    assert p.twophase_xid == 999 and p.twophase_gid == "gid-odd"
    assert (p.origin_lsn, p.origin_timestamp) == FULL["origin"]


@pytest.mark.parametrize("part", sorted(FULL))
def test_parse_commit_with_each_part_alone(part: str) -> None:
    kw: dict[str, object] = {part: FULL[part]}
    if part == "gid":
        kw["twophase_xid"] = 77
    bits, data = xact_body(**kw)  # type: ignore[arg-type]
    p = ParseCommitRecord(XLOG_XACT_COMMIT | bits, data)
    got = {"dbinfo": (p.db_id, p.ts_id), "subxacts": p.subxacts, "rels": p.xnodes, "stats": p.stats,
           "msgs": p.msgs, "twophase_xid": p.twophase_xid, "gid": p.twophase_gid,
           "origin": (p.origin_lsn, p.origin_timestamp)}
    assert got[part] == FULL[part]


def test_parse_abort_with_every_part_but_invals() -> None:
    kw = {k: v for k, v in FULL.items() if k != "msgs"}
    bits, data = xact_body(**kw)  # type: ignore[arg-type]
    p = ParseAbortRecord(XLOG_XACT_ABORT_PREPARED | bits, data)
    assert p.subxacts == (1001, 1002, 1003) and p.xnodes == FULL["rels"] and p.stats == FULL["stats"]
    assert p.twophase_xid == 999 and p.twophase_gid == "gid-odd"
    assert (p.origin_lsn, p.origin_timestamp) == FULL["origin"]


def test_abort_never_reads_invals() -> None:
    # ParseAbortRecord has no invals step: with the HAS_INVALS bit set but no
    # messages, the twophase xid follows the subxacts directly.
    bits, data = xact_body(extra_xinfo=XACT_XINFO_HAS_INVALS, subxacts=(5,), twophase_xid=42)
    p = ParseAbortRecord(XLOG_XACT_ABORT | bits, data)
    assert p.subxacts == (5,) and p.twophase_xid == 42 and p.msgs == ()


def test_xinfo_without_has_info_bit_is_not_read() -> None:
    bits, data = xact_body(subxacts=(5, 6))
    p = ParseCommitRecord(XLOG_XACT_COMMIT, data)  # HAS_INFO not set in xl_info
    assert p.xinfo == 0 and p.subxacts == ()
    assert bits == XLOG_XACT_HAS_INFO


def test_gid_is_cut_like_strlcpy_into_gidsize() -> None:
    bits, data = xact_body(twophase_xid=9, gid="g" * 250, origin=(1, 2))
    p = ParseCommitRecord(XLOG_XACT_COMMIT_PREPARED | bits, data)
    assert p.twophase_gid == "g" * (C.GIDSIZE - 1)
    assert (p.origin_lsn, p.origin_timestamp) == (1, 2)  # read after the whole string


@pytest.mark.parametrize("parse", [ParseCommitRecord, ParseAbortRecord])
def test_every_truncation_is_a_typed_error(parse) -> None:  # type: ignore[no-untyped-def]
    kw = dict(FULL) if parse is ParseCommitRecord else {k: v for k, v in FULL.items() if k != "msgs"}
    bits, data = xact_body(**kw)  # type: ignore[arg-type]
    rec = decoded(RM_XACT_ID, XLOG_XACT_COMMIT | bits, data, 700, lsn=0x0300_0040)
    parse(XLOG_XACT_COMMIT | bits, data, rec)
    for cut in range(len(data)):
        with pytest.raises(ClogError) as exc:
            parse(XLOG_XACT_COMMIT | bits, data[:cut], rec)
        assert exc.value.lsn == 0x0300_0040 and exc.value.rmgr == "Transaction"
        assert "0/3000040" in str(exc.value)


def test_bogus_counts_are_typed_errors() -> None:
    data = struct.pack("<qIi", XACT_TIME, XACT_XINFO_HAS_SUBXACTS, -1)
    with pytest.raises(ClogError, match="negative nsubxacts"):
        ParseCommitRecord(XLOG_XACT_COMMIT | XLOG_XACT_HAS_INFO, data)
    data = struct.pack("<qIi", XACT_TIME, XACT_XINFO_HAS_SUBXACTS, 0x7FFFFFFF) + bytes(8)
    with pytest.raises(ClogError, match="too short"):
        ParseCommitRecord(XLOG_XACT_COMMIT | XLOG_XACT_HAS_INFO, data)
    data = struct.pack("<qII", XACT_TIME, XACT_XINFO_HAS_TWOPHASE | XACT_XINFO_HAS_GID, 5) + b"no-nul"
    with pytest.raises(ClogError, match="NUL"):
        ParseCommitRecord(XLOG_XACT_COMMIT | XLOG_XACT_HAS_INFO, data)


# -- replay: the simple kinds --------------------------------------------------------
def test_commit_and_abort_set_final_bits() -> None:
    res = replay_clog([commit(100), abort(101), commit(102, [103, 104]), abort(105, [106])], zero_pages(0))
    assert [res.status(x) for x in range(100, 108)] == [
        COMMITTED, ABORTED, COMMITTED, COMMITTED, COMMITTED, ABORTED, ABORTED, TRANSACTION_STATUS_IN_PROGRESS]
    assert res.touched == {0}
    assert res.subxacts == 3
    assert res.counts == {"Transaction/COMMIT": 2, "Transaction/ABORT": 2}
    assert res.changes[103].top_xid == 102 and res.changes[103].record == "Transaction/COMMIT"
    assert "subxact of 102" in str(res.changes[103])


def test_subxact_rollback_abort_then_parent_commit() -> None:
    # BEGIN; SAVEPOINT a (xid 201); SAVEPOINT b (202); RELEASE b; ROLLBACK TO a;
    # SAVEPOINT c (203); RELEASE c; COMMIT: the abort names a with child b.
    res = replay_clog([abort(201, [202]), commit(200, [203])], zero_pages(0))
    assert [res.status(x) for x in (200, 201, 202, 203)] == [COMMITTED, ABORTED, ABORTED, COMMITTED]


def test_prepared_xids_come_from_twophase_not_xl_xid() -> None:
    recs = [prepare(300), prepare(310), commit_prepared(300, [301, 302]), abort_prepared(310, [311])]
    assert all(r.xid == 0 for r in recs[2:])
    res = replay_clog(recs, zero_pages(0))
    assert [res.status(x) for x in (300, 301, 302, 310, 311)] == [COMMITTED] * 3 + [ABORTED] * 2
    assert res.prepared_xids == [300, 310]
    assert res.changes[300].record == "Transaction/COMMIT_PREPARED"


def test_prepare_assignment_invalidations_change_no_bit() -> None:
    base = zero_pages(0)
    res = replay_clog([prepare(400), assignment(400, list(range(401, 465))), invalidations(400)], base)
    assert res.pages == base and res.touched == set() and res.changes == {}
    assert res.assigned_subxacts == 64
    assert res.counts == {"Transaction/PREPARE": 1, "Transaction/ASSIGNMENT": 1, "Transaction/INVALIDATION": 1}


def test_records_of_other_rmgrs_are_passed_over() -> None:
    heap = decoded(10, 0x00, b"\x01\x00\x00", 500)
    res = replay_clog([heap, commit(500)], zero_pages(0))
    assert res.status(500) == COMMITTED and sum(res.counts.values()) == 1


def test_base_pages_are_not_modified() -> None:
    base = {0: bytes(BLCKSZ)}
    replay_clog([commit(10)], base)
    assert base[0] == bytes(BLCKSZ)


def test_async_and_sync_commit_bytes_are_equal() -> None:
    # XACT_COMPLETION_* flags and AE locks change nothing on the page
    flags = C.XACT_COMPLETION_FORCE_SYNC_COMMIT | C.XACT_XINFO_HAS_AE_LOCKS | C.XACT_COMPLETION_APPLY_FEEDBACK
    a = replay_clog([commit(10, [11], extra_xinfo=flags)], zero_pages(0))
    b = replay_clog([commit(10, [11])], zero_pages(0))
    assert a.pages == b.pages


# -- TransactionIdSetTreeStatus across pages -------------------------------------------
def test_tree_across_pages_follows_clog_c_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example of TransactionIdSetTreeStatus's comment: t and t1 on p1,
    t2 and t3 on p2, t4 on p3."""
    t, t1, t2, t3, t4 = P - 2, P - 1, P + 5, P + 6, 2 * P + 1
    steps: list[tuple[int, int]] = []
    orig = ClogPages.TransactionIdSetStatusBit

    def spy(self: ClogPages, xid: int, status: int, page: bytearray) -> None:
        steps.append((xid, status))
        orig(self, xid, status, page)

    monkeypatch.setattr(ClogPages, "TransactionIdSetStatusBit", spy)
    res = replay_clog([commit(t, [t1, t2, t3, t4])], zero_pages(0, 1, 2))
    assert steps == [
        (t2, SUBCOMMITTED), (t3, SUBCOMMITTED), (t4, SUBCOMMITTED),  # other pages first
        (t1, SUBCOMMITTED), (t, COMMITTED), (t1, COMMITTED),  # the parent's page
        (t2, COMMITTED), (t3, COMMITTED), (t4, COMMITTED),  # then the others again
    ]
    # what is left on disk: the final status only, no 0b11 anywhere
    assert all(res.status(x) == COMMITTED for x in (t, t1, t2, t3, t4))
    assert all(res.pages[p].count(b"\xff") == 0 for p in (0, 1, 2))
    assert res.touched == {0, 1, 2}


def test_abort_across_pages_has_no_sub_commit_step(monkeypatch: pytest.MonkeyPatch) -> None:
    steps: list[tuple[int, int]] = []
    orig = ClogPages.TransactionIdSetStatusBit

    def spy(self: ClogPages, xid: int, status: int, page: bytearray) -> None:
        steps.append((xid, status))
        orig(self, xid, status, page)

    monkeypatch.setattr(ClogPages, "TransactionIdSetStatusBit", spy)
    replay_clog([abort(P - 1, [P, P + 1])], zero_pages(0, 1))
    assert steps == [(P - 1, ABORTED), (P, ABORTED), (P + 1, ABORTED)]


def test_subxids_back_on_the_parent_page_after_another_page() -> None:
    # set_status_by_pages takes the subxids after the first off-page one in runs
    res = replay_clog([commit(10, [11, P + 1, 12])], zero_pages(0, 1))
    assert [res.status(x) for x in (10, 11, P + 1, 12)] == [COMMITTED] * 4


def test_recovery_sub_commit_of_committed_xid_is_a_no_op() -> None:
    # replaying a commit whose subxact bits are already on disk (the base was
    # written after the record): SUB_COMMITTED must not overwrite COMMITTED
    p0, p1 = bytearray(BLCKSZ), bytearray(BLCKSZ)
    set_xid_status(p0, P - 1, COMMITTED)
    set_xid_status(p1, P + 3, COMMITTED)
    res = replay_clog([commit(P - 1, [P + 3])], {0: bytes(p0), 1: bytes(p1)})
    assert res.status(P + 3) == COMMITTED and res.status(P - 1) == COMMITTED


# -- the Assert of TransactionIdSetStatusBit ---------------------------------------------
def test_committed_xid_aborted_is_a_state_error_unless_lenient() -> None:
    p0 = bytearray(BLCKSZ)
    set_xid_status(p0, 50, COMMITTED)
    rec = abort(50)
    with pytest.raises(ClogStateError, match="xid 50 is committed") as exc:
        replay_clog([rec], {0: bytes(p0)})
    assert exc.value.lsn == rec.lsn
    res = replay_clog([rec], {0: bytes(p0)}, strict=False)
    assert res.status(50) == ABORTED


def test_same_status_again_is_fine() -> None:
    p0 = bytearray(BLCKSZ)
    set_xid_status(p0, 50, ABORTED)
    assert replay_clog([abort(50)], {0: bytes(p0)}).status(50) == ABORTED


# -- pages that exist, and pages that do not -----------------------------------------------
def test_zeropage_creates_a_page_and_clears_one() -> None:
    garbage = bytes([0x55]) * BLCKSZ
    res = replay_clog([zeropage(1), commit(P + 2), zeropage(2)], {1: garbage})
    assert res.pages[1][0] == 0b01_00_00 and res.pages[1][1:] == bytes(BLCKSZ - 1)
    assert res.pages[2] == bytes(BLCKSZ)
    assert set(res.zeroed) == {1, 2} and res.touched == {1, 2}
    assert res.latest_page_number == 2


def test_no_base_page_raises_naming_xid_page_and_lsn() -> None:
    rec = commit(3 * P + 7, [3 * P + 8])
    with pytest.raises(NoBasePage) as exc:
        replay_clog([rec], zero_pages(0))
    err = exc.value
    assert err.pageno == 3 and err.xids == (3 * P + 7, 3 * P + 8) and err.lsn == rec.lsn
    assert "clog page 3" in str(err) and str(3 * P + 7) in str(err)
    assert isinstance(err, RedoError)


def test_no_base_page_reported() -> None:
    res = replay_clog([commit(3 * P + 7), commit(10)], zero_pages(0), on_missing="report")
    assert [(m.pageno, m.xids, m.zeroed) for m in res.missing] == [(3, (3 * P + 7,), False)]
    assert 3 not in res.pages and res.status(10) == COMMITTED
    assert "no base page for clog page 3" in str(res.missing[0])


def test_no_base_page_zero_mode_mirrors_slru_physical_read_page() -> None:
    # a missing segment file reads as zeroes InRecovery ...
    res = replay_clog([commit(40 * P)], zero_pages(0), on_missing="zero")
    assert res.status(40 * P) == COMMITTED and res.missing[0].zeroed
    # ... a page past the end of an existing segment file is a read error
    with pytest.raises(NoBasePage):
        replay_clog([commit(1 * P)], zero_pages(0), on_missing="zero")


def test_truncate_removes_whole_segments_before_the_cutoff() -> None:
    base = zero_pages(*range(0, 41))
    res = replay_clog([truncate(33, 33 * P + 5)], base)
    assert sorted(res.pages) == list(range(32, 41))
    assert res.truncations[0].removed_segments == (0,) and not res.truncations[0].refused_wraparound
    assert res.oldest_clog_xid == 33 * P + 5
    assert res.removed_pages == set(range(0, 32))
    # the cutoff inside segment 0: nothing goes
    res = replay_clog([truncate(31, 31 * P)], base)
    assert sorted(res.pages) == list(range(0, 41)) and res.truncations[0].removed_segments == ()


def test_truncate_refused_on_apparent_wraparound() -> None:
    res = replay_clog([truncate(40, 40 * P)], zero_pages(0, 1, 2))  # latest page 2
    assert res.truncations[0].refused_wraparound and sorted(res.pages) == [0, 1, 2]
    res = replay_clog([zeropage(41), truncate(40, 40 * P)], zero_pages(0, 1, 2))
    assert not res.truncations[0].refused_wraparound and sorted(res.pages) == [41]


def test_status_on_a_truncated_page_is_a_missing_page() -> None:
    with pytest.raises(NoBasePage):
        replay_clog([truncate(32, 32 * P), commit(5)], zero_pages(0, 32))


# -- malformed records -------------------------------------------------------------------
def test_unknown_ops_are_unsupported_records() -> None:
    with pytest.raises(UnsupportedRecord, match="Transaction info 0x70"):
        replay_clog([decoded(RM_XACT_ID, 0x70, bytes(8), 5)], zero_pages(0))
    with pytest.raises(UnsupportedRecord, match="CLOG info 0x20"):
        replay_clog([decoded(RM_CLOG_ID, 0x20, bytes(4))], zero_pages(0))


def test_short_clog_records_are_typed_errors() -> None:
    with pytest.raises(ClogError, match="ZEROPAGE record: main data too short"):
        replay_clog([decoded(RM_CLOG_ID, CLOG_ZEROPAGE, b"\x01\x00")])
    with pytest.raises(ClogError, match="TRUNCATE record: main data too short"):
        replay_clog([decoded(RM_CLOG_ID, CLOG_TRUNCATE, bytes(8))])
    with pytest.raises(ClogError, match="not a clog page"):
        replay_clog([decoded(RM_CLOG_ID, CLOG_ZEROPAGE, struct.pack("<i", -1))])
    with pytest.raises(ClogError, match="prepare record"):
        replay_clog([decoded(RM_XACT_ID, XLOG_XACT_PREPARE, bytes(6), 5)])
    with pytest.raises(ClogError, match="assignment record"):
        replay_clog([decoded(RM_XACT_ID, XLOG_XACT_ASSIGNMENT, struct.pack("<Ii", 5, 3) + bytes(4), 5)])


def test_commit_of_invalid_xid_is_an_error() -> None:
    with pytest.raises(ClogError, match="invalid xid"):
        replay_clog([commit(0)], zero_pages(0))
    # COMMIT_PREPARED without its xl_xact_twophase
    bits, data = xact_body()
    with pytest.raises(ClogError, match="invalid xid"):
        replay_clog([decoded(RM_XACT_ID, XLOG_XACT_COMMIT_PREPARED | bits, data, 0)], zero_pages(0))


def test_xact_record_with_block_references_is_an_error() -> None:
    rec = commit(10)
    rec.blocks = {0: object()}  # type: ignore[dict-item]
    with pytest.raises(ClogError, match="block references"):
        replay_clog([rec], zero_pages(0))


def test_bad_base_pages_are_rejected() -> None:
    with pytest.raises(ClogError, match="8192"):
        replay_clog([], {0: b"\0" * 100})
    with pytest.raises(ValueError, match="on_missing"):
        replay_clog([], {}, on_missing="skip")  # type: ignore[arg-type]


# -- PostgreSQL 17 and 18 layouts -------------------------------------------------------------
def test_18_stats_items_are_16_bytes() -> None:
    """18's xl_xact_stats_item splits objid into objid_lo, objid_hi: what follows the
    items (invals, twophase) is read at the right place only with major=18."""
    head = struct.pack("<qI", XACT_TIME, C.XACT_XINFO_HAS_DROPPED_STATS | C.XACT_XINFO_HAS_INVALS
                       | C.XACT_XINFO_HAS_TWOPHASE)
    data = (head + struct.pack("<i", 1) + struct.pack("<iIII", 1, 5, 16384, 2)
            + struct.pack("<i", 1) + MSGS[0] + struct.pack("<I", 999))
    p = ParseCommitRecord(XLOG_XACT_COMMIT_PREPARED | XLOG_XACT_HAS_INFO, data, major=18)
    assert p.stats == ((1, 5, 16384 | 2 << 32),) and p.msgs == (MSGS[0],) and p.twophase_xid == 999
    with pytest.raises(RedoError):  # read as 15-17's 12-byte items, the counts go astray
        ParseCommitRecord(XLOG_XACT_COMMIT_PREPARED | XLOG_XACT_HAS_INFO, data, major=17)


def test_17_clog_pagenos_are_int64() -> None:
    """17's CLOG_ZEROPAGE and xl_clog_truncate carry an int64 pageno."""
    zp = decoded(RM_CLOG_ID, CLOG_ZEROPAGE, struct.pack("<q", 2))
    assert set(replay_clog([zp], {}, major=17).zeroed) == {2}
    tr = decoded(RM_CLOG_ID, CLOG_TRUNCATE, struct.pack("<qII", 33, 33 * P + 5, 5))
    res = replay_clog([tr], zero_pages(*range(0, 41)), major=17)
    assert res.oldest_clog_xid == 33 * P + 5 and sorted(res.pages) == list(range(32, 41))
