"""pg_xact redo (pyredo.slru) on real WAL, witnessed by the primary's pg_xact.

Each range: CHECKPOINT, copy pg_xact (the base), run the workload, note the
end LSN, CHECKPOINT (CheckPointCLOG writes every dirty clog page), then
``check_clog`` rebuilds every clog page the range touched and compares it with
the primary's. The clusters are quiet (no autovacuum, one session), so every
touched page must also be byte-identical.

* ``test_clog_workload`` — commits, aborts, ROLLBACK TO SAVEPOINT / RELEASE,
  nested savepoints, subxacts that abort one by one (each an ABORT record of
  its own), a commit and an abort with 130 subxacts (PGPROC overflow:
  ASSIGNMENT records) whose trees straddle a clog page boundary (the
  sub-committed path of TransactionIdSetTreeStatus), PREPARE TRANSACTION with
  COMMIT PREPARED and ROLLBACK PREPARED (with subxacts and DDL), replication
  origins on a commit and an ABORT_PREPARED, DROP TABLE / rolled-back CREATE
  (relfilenodes, dropped stats). Xids are burnt by a DO loop that commits (or
  every tenth time rolls back) each iteration, to cross two page boundaries:
  two ZEROPAGEs in the range. The parse of every Transaction record is
  checked against pg_waldump's description.
* ``test_wrong_engine_is_named`` — the same range, replayed by an engine with
  one status flipped: the report names that xid.
* ``test_clog_truncate_logical`` — a private wal_level=logical cluster whose
  nextXid is moved to 0x100000 (pg_resetwal -x: burning a million xids is no
  lean workload), VACUUM FREEZE of every database so vac_truncate_clog emits a
  CLOG TRUNCATE that removes segment 0000; prepared transactions there carry
  their GID in COMMIT/ABORT PREPARED, and DDL inside transactions emits
  INVALIDATION records.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from harness.clusters.local import LocalCluster
from harness.verify.clogcheck import ClogReport, check_clog, take_pg_xact_snapshot
from oracles.pgbin import as_server_user, program
from pyredo.rmgr import RM_XACT_ID
from pyredo.slru.clog import (
    CLOG_XACTS_PER_PAGE,
    TRANSACTION_STATUS_ABORTED,
    TRANSACTION_STATUS_COMMITTED,
    XACT_XINFO_HAS_DROPPED_STATS,
    XACT_XINFO_HAS_GID,
    XACT_XINFO_HAS_INVALS,
    XACT_XINFO_HAS_ORIGIN,
    XACT_XINFO_HAS_RELFILENODES,
    XLOG_XACT_ABORT,
    XLOG_XACT_ABORT_PREPARED,
    XLOG_XACT_ASSIGNMENT,
    XLOG_XACT_COMMIT,
    XLOG_XACT_COMMIT_PREPARED,
    XLOG_XACT_OPMASK,
    ClogResult,
    ParseAbortRecord,
    ParseCommitRecord,
    TransactionIdToPage,
    XactParsed,
    replay_clog,
    set_xid_status,
)
from pyredo.slru.files import read_slru_pages
from pyredo.wal.lsn import format_lsn, parse_lsn
from pyredo.wal.reader import WalReader
from pyredo.wal.record import DecodedXLogRecord

P = CLOG_XACTS_PER_PAGE
BIG = 130  # subxacts of the big commit / abort: > 2 * PGPROC_MAX_CACHED_SUBXIDS
ORIGIN_LSN = "0/ABCDEF"


@dataclass
class ClogRange:
    cluster: LocalCluster
    start: int
    end: int
    base: Path
    records: list[DecodedXLogRecord]
    report: ClogReport
    info: dict[str, Any]


def run_range(cluster: LocalCluster, workload: Callable[[psycopg.Connection[Any]], dict[str, Any]],
              tmp: Path) -> ClogRange:
    start = cluster.checkpoint()
    base = take_pg_xact_snapshot(cluster.pgdata, tmp / "pg_xact-base")
    with cluster.connect() as conn:
        info = workload(conn)
    end = cluster.current_lsn()
    cluster.checkpoint()
    records = list(WalReader(cluster.waldir, start, end))
    report = check_clog(records, base, cluster.pgdata)
    return ClogRange(cluster, start, end, base, records, report, info)


def next_xid(conn: psycopg.Connection[Any]) -> int:
    """The xid the next assignment gets (this call uses one)."""
    row = conn.execute("SELECT (txid_current() % 4294967296)::bigint").fetchone()
    assert row is not None
    return int(row[0]) + 1


def burn_to(conn: psycopg.Connection[Any], target: int) -> None:
    """Use xids until the next one to be assigned is ``target``: one top-level
    transaction per iteration, every tenth rolled back (an ABORT record)."""
    n = target - next_xid(conn)
    assert n >= 0, f"already past xid {target}"
    if n:
        conn.execute(f"""DO $$ BEGIN FOR i IN 1..{n} LOOP
            PERFORM txid_current();
            IF i % 10 = 0 THEN ROLLBACK; ELSE COMMIT; END IF;
        END LOOP; END $$""")


def big_tree_sql(table: str, n: int) -> str:
    """A DO block: the top-level xid first, then n released subxacts, each
    with its own xid (exception blocks that do not raise)."""
    return f"""DO $$ BEGIN
        INSERT INTO {table} VALUES (0);
        FOR i IN 1..{n} LOOP
            BEGIN INSERT INTO {table} VALUES (i); EXCEPTION WHEN others THEN NULL; END;
        END LOOP; END $$"""


def main_workload(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    x = conn.execute
    info: dict[str, Any] = {}
    x("CREATE TABLE clog_t (a int)")
    x("INSERT INTO clog_t VALUES (1)")
    x("BEGIN"); x("INSERT INTO clog_t VALUES (2)"); x("ROLLBACK")  # noqa: E702
    # ROLLBACK TO SAVEPOINT (the subxact's own ABORT record) and RELEASE
    for sql in ("BEGIN", "INSERT INTO clog_t VALUES (3)", "SAVEPOINT s1", "INSERT INTO clog_t VALUES (4)",
                "ROLLBACK TO s1", "SAVEPOINT s2", "INSERT INTO clog_t VALUES (5)", "RELEASE s2", "COMMIT"):
        x(sql)
    # nested: the rolled-back subxact carries its released child
    for sql in ("BEGIN", "INSERT INTO clog_t VALUES (6)", "SAVEPOINT a", "INSERT INTO clog_t VALUES (7)",
                "SAVEPOINT b", "INSERT INTO clog_t VALUES (8)", "RELEASE b", "ROLLBACK TO a", "COMMIT"):
        x(sql)
    # top-level abort with a released subxact
    for sql in ("BEGIN", "INSERT INTO clog_t VALUES (9)", "SAVEPOINT c", "INSERT INTO clog_t VALUES (10)",
                "RELEASE c", "ROLLBACK"):
        x(sql)
    # subxacts that each abort on their own (70 ABORT records of subxacts)
    x("""DO $$ BEGIN INSERT INTO clog_t VALUES (11);
         FOR i IN 1..70 LOOP
           BEGIN INSERT INTO clog_t VALUES (i); RAISE EXCEPTION 'no'; EXCEPTION WHEN others THEN NULL; END;
         END LOOP; END $$""")
    # relfilenodes and dropped stats: in a commit (DROP) and an abort (CREATE)
    x("CREATE TABLE clog_drop (a int)"); x("DROP TABLE clog_drop")  # noqa: E702
    x("BEGIN"); x("CREATE TABLE clog_never (a int)"); x("ROLLBACK")  # noqa: E702
    # two-phase: subxacts and DDL inside; commit one, roll back the other
    for gid, end in (("clog_p1", "COMMIT PREPARED"), ("clog_p2", "ROLLBACK PREPARED")):
        for sql in ("BEGIN", "INSERT INTO clog_t VALUES (12)", "SAVEPOINT p", f"CREATE TABLE {gid}_t (a int)",
                    "RELEASE p", f"PREPARE TRANSACTION '{gid}'"):
            x(sql)
        x(f"{end} '{gid}'")
    # replication origin: on a commit (with origin lsn) and on an ABORT_PREPARED
    x("SELECT pg_replication_origin_create('clog_origin')")
    x("BEGIN"); x("INSERT INTO clog_t VALUES (13)"); x("PREPARE TRANSACTION 'clog_p3'")  # noqa: E702
    x("SELECT pg_replication_origin_session_setup('clog_origin')")
    x("BEGIN")
    x(f"SELECT pg_replication_origin_xact_setup('{ORIGIN_LSN}', now())")
    x("INSERT INTO clog_t VALUES (14)")
    x("COMMIT")
    x("ROLLBACK PREPARED 'clog_p3'")
    x("SELECT pg_replication_origin_session_reset()")
    x("SELECT pg_replication_origin_drop('clog_origin')")

    # a commit of BIG subxacts straddling the next page boundary
    # (the trees are found in the WAL afterwards: a stray xid elsewhere
    # shifts them by one or two, and they still straddle the boundary)
    nx = next_xid(conn)
    boundary = (nx // P + 1) * P
    if boundary - BIG // 2 < nx + 10:  # too close: take the page boundary after
        boundary += P
    burn_to(conn, boundary - BIG // 2)
    x(big_tree_sql("clog_t", BIG))
    # an abort of BIG subxacts straddling the one after
    burn_to(conn, boundary + P - BIG // 2)
    x("BEGIN"); x(big_tree_sql("clog_t", BIG)); x("ROLLBACK")  # noqa: E702
    info["boundaries"] = (boundary, boundary + P)
    x("DROP TABLE clog_t, clog_p1_t")
    return info


@pytest.fixture(scope="module")
def main_range(cluster_factory: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClogRange]:
    cluster: LocalCluster = cluster_factory(wal_segsize_mb=1)
    tmp = tmp_path_factory.mktemp("clog")
    try:
        yield run_range(cluster, main_workload, tmp)
    finally:
        # never leave a prepared transaction (it would hold locks) or an origin behind
        for (gid,) in cluster.execute("SELECT gid FROM pg_prepared_xacts WHERE gid LIKE 'clog_%'"):
            cluster.execute(f"ROLLBACK PREPARED '{gid}'")
        cluster.execute("SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin "
                        "WHERE roname = 'clog_origin'")
        cluster.execute("DROP TABLE IF EXISTS clog_t, clog_p1_t, clog_drop")
        shutil.rmtree(tmp, ignore_errors=True)


def parsed(rec: DecodedXLogRecord) -> XactParsed | None:
    op = rec.info & XLOG_XACT_OPMASK
    if op in (XLOG_XACT_COMMIT, XLOG_XACT_COMMIT_PREPARED):
        return ParseCommitRecord(rec.info, rec.main_data, rec)
    if op in (XLOG_XACT_ABORT, XLOG_XACT_ABORT_PREPARED):
        return ParseAbortRecord(rec.info, rec.main_data, rec)
    return None


def completions(rng: ClogRange) -> list[tuple[DecodedXLogRecord, XactParsed]]:
    out = []
    for rec in rng.records:
        if rec.rmid == RM_XACT_ID:
            p = parsed(rec)
            if p is not None:
                out.append((rec, p))
    return out


def big_trees(rng: ClogRange, op: int) -> list[tuple[DecodedXLogRecord, XactParsed]]:
    """The commit (or abort) records of the BIG-subxact trees."""
    return [(rec, p) for rec, p in completions(rng) if rec.info & XLOG_XACT_OPMASK == op and p.nsubxacts == BIG]


def test_clog_workload(main_range: ClogRange) -> None:
    rng, report = main_range, main_range.report
    print(report.summary())
    assert report.ok, report.summary()
    assert report.divergences == [] and report.missing == []
    # a quiet cluster: nothing outside the range wrote these pages, so they are byte-exact
    assert report.pages_identical == report.pages_checked, report.summary()
    assert report.undetermined == 0
    b1, b2 = rng.info["boundaries"]
    assert {TransactionIdToPage(b1), TransactionIdToPage(b2)} <= set(report.zeropages)
    assert {TransactionIdToPage(b1) - 1, TransactionIdToPage(b1), TransactionIdToPage(b2)} <= set(
        report.pages_checked)

    c = report.counts
    assert c["CLOG/ZEROPAGE"] >= 2
    assert c["Transaction/COMMIT"] > 20_000 and c["Transaction/ABORT"] > 2_000  # the burn loops
    assert c["Transaction/PREPARE"] == 3
    assert c["Transaction/COMMIT_PREPARED"] == 1 and c["Transaction/ABORT_PREPARED"] == 2
    assert c["Transaction/ASSIGNMENT"] >= 4  # two trees of 130 subxacts
    assert report.assigned_subxacts >= 4 * 64
    assert report.subxacts >= 2 * BIG + 3
    assert report.xids_by_status["committed"] > 20_000 and report.xids_by_status["aborted"] > 2_000

    # the record kinds the brief asks for, found in the parsed records
    done = completions(rng)
    (commit_rec, commit_p), = big_trees(rng, XLOG_XACT_COMMIT)
    (abort_rec, abort_p), = big_trees(rng, XLOG_XACT_ABORT)
    for rec, p in ((commit_rec, commit_p), (abort_rec, abort_p)):
        pages = {TransactionIdToPage(x) for x in (rec.xid, *p.subxacts)}
        assert len(pages) == 2, "the tree straddles a page boundary"
    result = replay_clog(rng.records, read_slru_pages(rng.base))
    assert all(result.status(x) == TRANSACTION_STATUS_COMMITTED for x in (commit_rec.xid, *commit_p.subxacts))
    assert all(result.status(x) == TRANSACTION_STATUS_ABORTED for x in (abort_rec.xid, *abort_p.subxacts))

    # subxact rollbacks: ABORT records whose xl_xid is a subxact (no top-level commit/abort of it)
    # subxact rollbacks: ABORT records whose xl_xid is a subxact, as ASSIGNMENT
    # records name them (the DO block's 70 failing exception blocks: 64 assigned)
    assigned: set[int] = set()
    for rec in rng.records:
        if rec.rmid == RM_XACT_ID and rec.info & XLOG_XACT_OPMASK == XLOG_XACT_ASSIGNMENT:
            _xtop, n = struct.unpack_from("<Ii", rec.main_data)
            assigned.update(struct.unpack_from(f"<{n}I", rec.main_data, 8))
    sub_aborts = [rec for rec, p in done if rec.info & XLOG_XACT_OPMASK == XLOG_XACT_ABORT and rec.xid in assigned]
    assert len(sub_aborts) >= 64
    assert all(result.status(rec.xid) == TRANSACTION_STATUS_ABORTED for rec in sub_aborts)
    # the savepoint rolled back with its released child: an ABORT of a subxact carrying one subxact
    assert any(p.nsubxacts == 1 and rec.info & XLOG_XACT_OPMASK == XLOG_XACT_ABORT for rec, p in done)
    xinfos = [p.xinfo for _, p in done]
    for flag in (XACT_XINFO_HAS_RELFILENODES, XACT_XINFO_HAS_DROPPED_STATS, XACT_XINFO_HAS_INVALS,
                 XACT_XINFO_HAS_ORIGIN):
        assert any(x & flag for x in xinfos), hex(flag)
    origin = [(rec, p) for rec, p in done if p.xinfo & XACT_XINFO_HAS_ORIGIN]
    assert {rec.info & XLOG_XACT_OPMASK for rec, _ in origin} == {XLOG_XACT_COMMIT, XLOG_XACT_ABORT_PREPARED}
    assert any(p.origin_lsn == parse_lsn(ORIGIN_LSN) for _, p in origin)
    prepared = [p for rec, p in done if rec.info & XLOG_XACT_OPMASK in (XLOG_XACT_COMMIT_PREPARED,
                                                                        XLOG_XACT_ABORT_PREPARED)]
    assert all(p.twophase_xid for p in prepared) and any(p.nsubxacts == 1 for p in prepared)


# pg_waldump's xact_desc_commit / xact_desc_abort
WALDUMP = re.compile(r"^rmgr: Transaction .*? lsn: (\S+), prev \S+, desc: (\w+) (.*)$")


def waldump_xact(pg_waldump: str, rng: ClogRange) -> dict[int, tuple[str, str]]:
    res = subprocess.run(
        [pg_waldump, "-p", str(rng.cluster.waldir), "-r", "Transaction",
         "-s", format_lsn(rng.start), "-e", format_lsn(rng.end)],
        capture_output=True, text=True, check=True,
    )
    out = {}
    for line in res.stdout.splitlines():
        m = WALDUMP.match(line)
        if m:
            out[parse_lsn(m.group(1))] = (m.group(2), m.group(3))
    return out


def test_parse_agrees_with_pg_waldump(main_range: ClogRange, pg_waldump: str) -> None:
    """ParseCommitRecord / ParseAbortRecord on every real commit and abort
    record of the range say what pg_waldump's description says: twophase
    xid, subxacts, relations, dropped stats, origin."""
    theirs = waldump_xact(pg_waldump, main_range)
    done = completions(main_range)
    assert len(theirs) >= len(done) > 20_000
    kinds: Counter[str] = Counter()
    for rec, p in done:
        ident, desc = theirs[rec.lsn]
        kinds[ident] += 1
        where = f"{ident} at {format_lsn(rec.lsn)}: {desc[:300]}"
        m = re.match(r"(\d+): ", desc)
        assert (int(m.group(1)) if m else 0) == p.twophase_xid, where
        m = re.search(r"; subxacts:((?: \d+)+)", desc)
        assert (tuple(int(v) for v in m.group(1).split()) if m else ()) == p.subxacts, where
        m = re.search(r"; rels:((?: [^;\s]+)+)", desc)
        assert (len(m.group(1).split()) if m else 0) == len(p.xnodes), where
        m = re.search(r"; dropped stats:((?: \d+/\d+/\d+)+)", desc)
        assert (tuple(tuple(int(v) for v in s.split("/")) for s in m.group(1).split()) if m else ()) == p.stats, where
        m = re.search(r"; origin: node \d+, lsn (\S+), at", desc)
        assert (parse_lsn(m.group(1)) if m else None) == (p.origin_lsn if p.xinfo & XACT_XINFO_HAS_ORIGIN else None), where
        if p.msgs:
            assert "; inval msgs:" in desc, where
    assert set(kinds) == {"COMMIT", "ABORT", "COMMIT_PREPARED", "ABORT_PREPARED"}


def test_wrong_engine_is_named(main_range: ClogRange) -> None:
    (commit_rec, commit_p), = big_trees(main_range, XLOG_XACT_COMMIT)
    victim = commit_p.subxacts[-1]  # a subxact on the far side of the page boundary

    def wrong(records: Any, base: Any, **kw: Any) -> ClogResult:
        res = replay_clog(records, base, **kw)
        page = bytearray(res.pages[TransactionIdToPage(victim)])
        set_xid_status(page, victim, TRANSACTION_STATUS_ABORTED)
        res.pages[TransactionIdToPage(victim)] = bytes(page)
        return res

    report = check_clog(main_range.records, main_range.base, main_range.cluster.pgdata, engine=wrong)
    assert not report.ok
    assert [(d.xid, d.expected, d.got) for d in report.divergences] == [
        (victim, TRANSACTION_STATUS_ABORTED, TRANSACTION_STATUS_COMMITTED)]
    assert f"xid {victim} " in report.summary()
    assert report.divergences[0].set_by is not None
    assert report.divergences[0].set_by.top_xid == commit_rec.xid


# -- TRUNCATE, GID, INVALIDATIONS ------------------------------------------------------------
RESET_XID = 0x100000  # the first xid of segment 0001 (page 32)


def truncate_workload(cluster: LocalCluster) -> Callable[[psycopg.Connection[Any]], dict[str, Any]]:
    def workload(conn: psycopg.Connection[Any]) -> dict[str, Any]:
        x = conn.execute
        x("CREATE TABLE clog_l (a int)")  # xid 0x100000: ZEROPAGE of page 32
        x("BEGIN"); x("INSERT INTO clog_l VALUES (1)"); x("CREATE TABLE clog_l2 (a int)")  # noqa: E702
        x("INSERT INTO clog_l2 VALUES (1)"); x("COMMIT")  # noqa: E702  (INVALIDATION records)
        for gid, end in (("clog_g1", "COMMIT PREPARED"), ("clog_g2", "ROLLBACK PREPARED")):
            for sql in ("BEGIN", "INSERT INTO clog_l VALUES (2)", "SAVEPOINT s", "INSERT INTO clog_l VALUES (3)",
                        "RELEASE s", f"PREPARE TRANSACTION '{gid}'"):
                x(sql)
            x(f"{end} '{gid}'")
        x("ALTER DATABASE template0 WITH ALLOW_CONNECTIONS true")
        for db in ("template0", "template1", "postgres"):
            with cluster.connect(db) as c2:
                c2.execute("VACUUM (FREEZE)")
        x("ALTER DATABASE template0 WITH ALLOW_CONNECTIONS false")
        x("BEGIN"); x("INSERT INTO clog_l VALUES (4)"); x("ROLLBACK")  # noqa: E702
        x("INSERT INTO clog_l VALUES (5)")
        return {}

    return workload


def test_clog_truncate_logical(cluster_factory: Any, tmp_path: Path) -> None:
    cluster: LocalCluster = cluster_factory(wal_segsize_mb=1, fresh=True, wal_level="logical")
    try:
        cluster.stop()
        subprocess.run(as_server_user([program("pg_resetwal"), "-x", str(RESET_XID), "-D", str(cluster.pgdata)]),
                       check=True, capture_output=True, text=True)
        cluster.start()
        assert sorted(p.name for p in (cluster.pgdata / "pg_xact").iterdir()) == ["0000"]
        rng = run_range(cluster, truncate_workload(cluster), tmp_path)
    finally:
        cluster.destroy()
    report = rng.report
    print(report.summary())
    assert report.ok, report.summary()
    assert report.pages_identical == report.pages_checked == [32]
    assert report.zeropages == [32]
    assert len(report.truncations) == 1
    t = report.truncations[0]
    assert t.cutoff_page == 32 and t.removed_segments == (0,) and not t.refused_wraparound
    assert report.removed_pages_checked == 32
    c = report.counts
    assert c["CLOG/TRUNCATE"] == 1 and c["CLOG/ZEROPAGE"] == 1
    assert c["Transaction/INVALIDATION"] >= 1
    assert c["Transaction/COMMIT_PREPARED"] == 1 and c["Transaction/ABORT_PREPARED"] == 1
    gids = sorted(p.twophase_gid for rec, p in completions(rng) if p.xinfo & XACT_XINFO_HAS_GID)
    assert gids == ["clog_g1", "clog_g2"]
    result = replay_clog(rng.records, read_slru_pages(rng.base))
    assert result.changes and min(result.changes) == RESET_XID
    assert sorted(result.pages) == [32] and result.oldest_clog_xid is not None
