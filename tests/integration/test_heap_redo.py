"""Heap, Heap2, XLOG full-page images, sequences and the visibility map, on real WAL.

One workload (pgbench, HOT-heavy updates, bulk deletes + VACUUM + VACUUM
FREEZE, COPY, COPY FREEZE, TOAST, wide rows, sequences, row locks and
multixacts, LOCK_UPDATED, INSERT ... ON CONFLICT with a forced super-delete,
partition moves, VACUUM FULL, ANALYZE) runs once per cluster configuration:

* full_page_writes on, wal_compression=pglz;
* full_page_writes off, wal_compression=lz4, base pages from a snapshot, so
  redo routines — not page images — rebuild the pages;
* wal_log_hints on (FPI_FOR_HINT, VISIBLE stamping the heap page's LSN) and
  wal_level=logical, full_page_writes off + a snapshot, wal_compression=zstd.

Every page pyredo rebuilds must equal the primary's under PostgreSQL's masks,
and — stronger, no masks at all — equal what PostgreSQL's own redo leaves on
it: a copy of the data directory taken at the start of the range is
crash-recovered over the same WAL, and its pages are compared byte for byte.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import psycopg
import pytest

from harness.clusters.datadir import DataDirPages
from harness.clusters.local import LocalCluster, free_port
from harness.verify.capture import Capture, capture
from harness.verify.check import ENGINE_DISAGREEMENT, ENGINE_VS_PRIMARY, Checker, CheckReport
from harness.verify.plan import Plan, build_plan
from oracles.compare import explain_diff
from oracles.pgbin import as_server_user, program, server_user
from pyredo.engine import RedoEngine
from pyredo.page.bufpage import ItemIdOffset, PageGetItemId, PageGetLSN, PageGetMaxOffsetNumber
from pyredo.page.htup import T_INFOMASK
from pyredo.rmgr import heap as heapmod
from pyredo.rmgr import heap2 as heap2mod
from pyredo.rmgr import seq as seqmod
from pyredo.rmgrlist import PG15
from pyredo.wal.lsn import format_lsn, parse_lsn
from pyredo.wal.record import (
    FSM_FORKNUM,
    MAIN_FORKNUM,
    VISIBILITYMAP_FORKNUM,
    BufferTag,
    DecodedXLogRecord,
)

pytestmark = pytest.mark.integration

MY_RMGRS = ("Heap/", "Heap2/", "XLOG/FPI", "Sequence/")
# pages these rmgrs own (None: pages only full-page images touched)
MY_OWNERS = (None, "Heap", "Heap2", "Sequence")
_MY_RMIDS = {0, 9, 10, 15}  # XLOG, Heap2, Heap, Sequence

# every record type pyredo implements for these rmgrs, as seen on real WAL.
# Heap/HOT_UPDATE+INIT cannot be emitted by PostgreSQL 15: INIT_PAGE means the
# new tuple is the only one on its page, and a HOT update keeps the old version
# on that same page.
TYPES_EVERYWHERE = (
    "Heap/INSERT", "Heap/INSERT+INIT", "Heap/DELETE", "Heap/UPDATE", "Heap/UPDATE+INIT",
    "Heap/HOT_UPDATE", "Heap/HEAP_CONFIRM", "Heap/LOCK", "Heap/INPLACE",
    "Heap2/PRUNE", "Heap2/VACUUM", "Heap2/FREEZE_PAGE", "Heap2/VISIBLE",
    "Heap2/MULTI_INSERT", "Heap2/MULTI_INSERT+INIT", "Heap2/LOCK_UPDATED",
    "XLOG/FPI", "Sequence/LOG",
)
TYPES_WITH_HINTS = ("XLOG/FPI_FOR_HINT",)


@dataclass(frozen=True)
class Config:
    gucs: dict[str, Any]
    snapshot: bool  # base pages from a snapshot (no-FPI runs)
    hints: bool  # wal_log_hints: XLogHintBitIsNeeded() on the primary

    @property
    def logical(self) -> bool:
        return self.gucs.get("wal_level") == "logical"


CONFIGS = {
    "fpw_on_pglz": Config({"full_page_writes": True, "wal_compression": "pglz"}, False, False),
    "fpw_off_lz4": Config({"full_page_writes": False, "wal_compression": "lz4"}, True, False),
    # wal_log_hints: FPI_FOR_HINT images (forced even with full_page_writes off,
    # zstd-compressed here) and VISIBLE stamping the heap page's LSN.
    # wal_level=logical: records also carry the tuple data logical decoding
    # needs (CONTAINS_NEW_TUPLE, ON_TOAST_RELATION ...), and user tables lose
    # prefix/suffix compression of updates.
    "hints_logical_fpw_off_zstd": Config({"full_page_writes": False, "wal_log_hints": True,
                                          "wal_level": "logical", "wal_compression": "zstd"},
                                         True, True),
}


# -- the workload ------------------------------------------------------------------
def _pgbench(pg: LocalCluster, *args: str) -> None:
    argv = [program("pgbench"), "-h", str(pg.sockdir), "-p", str(pg.port), "-U", "postgres",
            *args, "postgres"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, f"pgbench {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}"


def _exec(conn: psycopg.Connection[Any], *sqls: str) -> None:
    for sql in sqls:
        conn.execute(sql)


def _copy_rows(conn: psycopg.Connection[Any], sql: str, rows: Iterator[tuple[Any, ...]]) -> None:
    with conn.cursor() as cur, cur.copy(sql) as cp:
        for row in rows:
            cp.write_row(row)


def pgbench_phase(pg: LocalCluster) -> None:
    """pgbench -i -s 2 (COPY FREEZE: MULTI_INSERT+INIT, VISIBLE), then 3000
    transactions of the default script with 4 clients (HOT and non-HOT updates,
    prefix/suffix-compressed updates, LOCK before moving a tuple to a new page, PRUNE)."""
    _pgbench(pg, "-i", "-s", "2", "-q")
    _pgbench(pg, "-c", "4", "-j", "2", "-t", "750")


def hot_phase(conn: psycopg.Connection[Any]) -> None:
    """HOT-heavy: updates of a non-indexed column on half-empty pages, scans prune."""
    _exec(conn,
          "CREATE TABLE hot (id int PRIMARY KEY, c int, note text) WITH (fillfactor = 50)",
          "INSERT INTO hot SELECT g, 0, 'note ' || g FROM generate_series(1, 3000) g")
    for r in range(16):
        _exec(conn, f"UPDATE hot SET c = c + 1 WHERE id % 8 = {r % 8}",
              "SELECT count(*) FROM hot WHERE c >= 0")


def vacuum_phase(conn: psycopg.Connection[Any]) -> None:
    """Bulk deletes, VACUUM, VACUUM FREEZE, then changes that clear VM bits."""
    _exec(conn,
          "CREATE TABLE bulk (id int PRIMARY KEY, k int, v text)",
          "INSERT INTO bulk SELECT g, g % 97, repeat('v', g % 40) FROM generate_series(1, 10000) g",
          "DELETE FROM bulk WHERE id % 3 = 0",
          "VACUUM bulk",  # PRUNE, VACUUM (after index vacuuming), VISIBLE
          "UPDATE bulk SET k = -k WHERE id % 500 = 1",  # clears all-visible
          "VACUUM (FREEZE) bulk",  # FREEZE_PAGE, VISIBLE with ALL_FROZEN
          "SELECT * FROM bulk WHERE id BETWEEN 100 AND 110 FOR KEY SHARE",  # LOCK: ALL_FROZEN_CLEARED
          "UPDATE bulk SET k = k + 1 WHERE id % 100 = 1",  # old/new ALL_VISIBLE_CLEARED
          "DELETE FROM bulk WHERE id % 100 = 2",  # DELETE ALL_VISIBLE_CLEARED
          "INSERT INTO bulk SELECT g, 0, 'again' FROM generate_series(20001, 20200) g",
          "VACUUM bulk")


def copy_phase(conn: psycopg.Connection[Any]) -> None:
    """COPY: MULTI_INSERT(+INIT); into an all-visible page (ALL_VISIBLE_CLEARED);
    COPY FREEZE into a table created in the same transaction (ALL_FROZEN_SET)."""
    # VACUUM marks pages all-visible only once the inserter's commit is flushed
    # (SetHintBits), and these clusters run with synchronous_commit = off
    conn.execute("SET synchronous_commit = on")
    conn.execute("CREATE TABLE cp (id int, v text)")
    _copy_rows(conn, "COPY cp (id, v) FROM STDIN", ((i, f"row {i}") for i in range(3000)))
    conn.execute("VACUUM cp")
    _copy_rows(conn, "COPY cp (id, v) FROM STDIN", ((i, f"more {i}") for i in range(3000, 3040)))
    with conn.transaction():
        conn.execute("CREATE TABLE cpf (id int, v text)")
        _copy_rows(conn, "COPY cpf (id, v) FROM STDIN (FREEZE)",
                   ((i, f"frozen {i}") for i in range(3000)))


def toast_phase(conn: psycopg.Connection[Any]) -> None:
    """Out-of-line values (inserts on the TOAST relation), wide rows (one per page)."""
    _exec(conn,
          "CREATE TABLE toasty (id int PRIMARY KEY, big text)",
          "ALTER TABLE toasty ALTER big SET STORAGE EXTERNAL",
          "INSERT INTO toasty SELECT g, repeat(md5(g::text), 200) FROM generate_series(1, 60) g",
          "UPDATE toasty SET big = big || 'x' WHERE id % 5 = 0",
          "DELETE FROM toasty WHERE id % 7 = 0",
          "CREATE TABLE wide (id int, w text)",
          "ALTER TABLE wide ALTER w SET STORAGE PLAIN",
          "INSERT INTO wide SELECT g, repeat(chr(65 + g % 26), 5000) FROM generate_series(1, 30) g",
          "UPDATE wide SET w = w || 'more' WHERE id % 3 = 0")  # UPDATE+INIT: no room beside it


def sequence_phase(conn: psycopg.Connection[Any]) -> None:
    """nextval, setval, ALTER SEQUENCE, serial columns.

    nextval changes the primary's page without WAL between logged fetches, so
    each sequence ends with a setval, which logs the page exactly as it is.
    """
    _exec(conn,
          "CREATE SEQUENCE sq",
          "SELECT nextval('sq') FROM generate_series(1, 100)",
          "SELECT setval('sq', 1000)",
          "ALTER SEQUENCE sq INCREMENT BY 5 MAXVALUE 100000",
          "SELECT nextval('sq') FROM generate_series(1, 50)",
          "ALTER SEQUENCE sq RESTART WITH 7",
          "SELECT nextval('sq') FROM generate_series(1, 40)",
          "CREATE TABLE ser (id serial PRIMARY KEY, t text)",
          "INSERT INTO ser (t) SELECT 'x' FROM generate_series(1, 100)",
          "SELECT setval('sq', 4242, false)",
          "SELECT setval('ser_id_seq', 100, true)")


def lock_phase(pg: LocalCluster) -> None:
    """Row locks of every strength, multixacts, and LOCK_UPDATED."""
    with pg.connect() as a, pg.connect() as b:
        _exec(a, "CREATE TABLE lk (id int PRIMARY KEY, v int)",
              "INSERT INTO lk SELECT g, 0 FROM generate_series(1, 400) g")
        for c in (a, b):
            c.execute("SET statement_timeout = '20s'")
        _exec(a, "SELECT * FROM lk WHERE id <= 20 FOR UPDATE",
              "SELECT * FROM lk WHERE id BETWEEN 21 AND 30 FOR NO KEY UPDATE")
        # two sharers: the second makes a multixact
        _exec(a, "BEGIN", "SELECT * FROM lk WHERE id BETWEEN 31 AND 40 FOR SHARE")
        _exec(b, "BEGIN", "SELECT * FROM lk WHERE id BETWEEN 31 AND 40 FOR KEY SHARE")
        _exec(a, "COMMIT")
        _exec(b, "COMMIT")
        # KEY SHARE beside an in-progress non-key update follows the update chain
        _exec(a, "BEGIN", "UPDATE lk SET v = v + 1 WHERE id BETWEEN 41 AND 60")
        _exec(b, "SELECT * FROM lk WHERE id BETWEEN 41 AND 60 FOR KEY SHARE")
        _exec(a, "COMMIT")
        # a non-key update of key-share-locked rows: the new xmax is a multixact
        _exec(a, "BEGIN", "SELECT * FROM lk WHERE id BETWEEN 61 AND 80 FOR KEY SHARE")
        _exec(b, "UPDATE lk SET v = v + 10 WHERE id BETWEEN 61 AND 80")
        _exec(a, "COMMIT")
        _exec(a, "SELECT * FROM lk WHERE id BETWEEN 61 AND 80 FOR UPDATE")


_BLURT_AND_LOCK = """
CREATE FUNCTION blurt_and_lock(text) RETURNS text IMMUTABLE LANGUAGE plpgsql AS $$
BEGIN
  -- as in PostgreSQL's insert-conflict-specconflict isolation test: wait on
  -- advisory lock 3 the first time (the pre-check), on lock 2 afterwards
  IF pg_try_advisory_xact_lock(current_setting('spec.session')::int, 1) THEN
    PERFORM pg_advisory_xact_lock(current_setting('spec.session')::int, 2);
  ELSE
    PERFORM pg_advisory_xact_lock(current_setting('spec.session')::int, 3);
  END IF;
  RETURN $1;
END;$$"""


def _wait_for_advisory_waiters(ctl: psycopg.Connection[Any], n: int) -> None:
    for _ in range(1000):
        row = ctl.execute("SELECT count(*) FROM pg_locks "
                          "WHERE locktype = 'advisory' AND NOT granted").fetchone()
        if row is not None and row[0] >= n:
            return
        time.sleep(0.01)
    raise AssertionError(f"expected {n} sessions waiting on advisory locks")


def upsert_phase(pg: LocalCluster) -> None:
    """INSERT ... ON CONFLICT: speculative inserts + HEAP_CONFIRM, and a forced
    speculative conflict whose loser super-deletes its tuple (XLH_DELETE_IS_SUPER)."""
    with pg.connect() as conn:
        _exec(conn, "CREATE TABLE up (k int PRIMARY KEY, v int)",
              "INSERT INTO up SELECT g, 0 FROM generate_series(1, 300) g ON CONFLICT DO NOTHING",
              "INSERT INTO up SELECT g, 1 FROM generate_series(200, 400) g "
              "ON CONFLICT (k) DO UPDATE SET v = up.v + excluded.v",
              _BLURT_AND_LOCK,
              "CREATE TABLE ups (key text, data text)",
              "CREATE UNIQUE INDEX ups_key ON ups ((blurt_and_lock(key)))")
    errors: list[BaseException] = []

    def upsert(sess: int) -> None:
        try:
            with pg.connect() as c:
                _exec(c, f"SET spec.session = {sess}", "SET statement_timeout = '30s'",
                      f"INSERT INTO ups (key, data) VALUES ('k1', 's{sess}') "
                      f"ON CONFLICT (blurt_and_lock(key)) DO UPDATE SET data = ups.data || ' s{sess}'")
        except BaseException as e:
            errors.append(e)

    with pg.connect() as ctl:
        ctl.execute("SELECT pg_advisory_lock(s, l) FROM generate_series(1, 2) s, generate_series(1, 3) l")
        s1 = threading.Thread(target=upsert, args=(1,))
        s2 = threading.Thread(target=upsert, args=(2,))
        s1.start()
        s2.start()
        try:
            _wait_for_advisory_waiters(ctl, 2)  # both in the pre-check
            ctl.execute("SELECT pg_advisory_unlock(1, 1), pg_advisory_unlock(2, 1)")
            ctl.execute("SELECT pg_advisory_unlock(1, 3), pg_advisory_unlock(2, 3)")
            _wait_for_advisory_waiters(ctl, 2)  # both inserted speculatively
            ctl.execute("SELECT pg_advisory_unlock(2, 2)")  # s2 wins and confirms
            s2.join(30)
            ctl.execute("SELECT pg_advisory_unlock(1, 2)")  # s1 super-deletes, then updates
            s1.join(30)
        finally:
            ctl.execute("SELECT pg_advisory_unlock_all()")
            s1.join(30)
            s2.join(30)
        rows = ctl.execute("SELECT data FROM ups").fetchall()
    assert not errors, errors
    assert rows == [("s2 s1",)], rows


def misc_phase(conn: psycopg.Connection[Any]) -> None:
    """Partition moves, VACUUM FULL (XLOG/FPI of the new heap), ANALYZE (INPLACE)."""
    _exec(conn,
          "CREATE TABLE pt (id int, k int) PARTITION BY RANGE (k)",
          "CREATE TABLE pt1 PARTITION OF pt FOR VALUES FROM (0) TO (100)",
          "CREATE TABLE pt2 PARTITION OF pt FOR VALUES FROM (100) TO (200)",
          "INSERT INTO pt SELECT g, g % 100 FROM generate_series(1, 500) g",
          "UPDATE pt SET k = k + 100 WHERE k < 30",  # DELETE with XLH_DELETE_IS_PARTITION_MOVE
          "VACUUM FULL hot",
          "ANALYZE bulk",
          "ANALYZE lk")


def hint_phase(conn: psycopg.Connection[Any]) -> None:
    """Reading tuples whose hint bits are not set yet: FPI_FOR_HINT with wal_log_hints."""
    _exec(conn, "SELECT count(*) FROM prehint", "SELECT count(*) FROM prehint WHERE id % 2 = 0")


def setup_before_range(pg: LocalCluster) -> None:
    """Tables that exist (with data) when the range starts: their base pages come
    from the snapshot in no-FPI runs."""
    with pg.connect() as conn:
        _exec(conn,
              "CREATE TABLE prehint (id int, t text)",
              "INSERT INTO prehint SELECT g, 'h' || g FROM generate_series(1, 3000) g",
              "CREATE TABLE pre (id int PRIMARY KEY, v int)",
              "INSERT INTO pre SELECT g, g FROM generate_series(1, 3000) g",
              "VACUUM pre")


def workload(pg: LocalCluster) -> None:
    with pg.connect() as conn:
        hint_phase(conn)
        _exec(conn, "UPDATE pre SET v = v + 1 WHERE id % 50 = 0",  # clears VM bits of existing pages
              "DELETE FROM pre WHERE id % 97 = 0")
    pgbench_phase(pg)
    with pg.connect() as conn:
        hot_phase(conn)
        vacuum_phase(conn)
        copy_phase(conn)
        toast_phase(conn)
        sequence_phase(conn)
    lock_phase(pg)
    upsert_phase(pg)
    with pg.connect() as conn:
        misc_phase(conn)


# -- running it ------------------------------------------------------------------------
def _chown_tree(root: Path) -> None:
    user = server_user()
    if user is None:
        return
    pw = pwd.getpwnam(user)
    for dirpath, _dirs, files in os.walk(root):
        os.chown(dirpath, pw.pw_uid, pw.pw_gid)
        for f in files:
            os.chown(os.path.join(dirpath, f), pw.pw_uid, pw.pw_gid)


class RememberingEngine(RedoEngine):
    """pyredo, keeping every page it rebuilt (by block and number of records), so
    the byte-for-byte test reuses the pages verification already built."""

    def __init__(self, *, hint_bits_logged: bool) -> None:
        super().__init__(hint_bits_logged=hint_bits_logged)
        self.pages: dict[tuple[BufferTag, int], bytes] = {}

    def reconstruct(self, tag: BufferTag, base_page: bytes | None,
                    records: Iterable[DecodedXLogRecord]) -> bytes:
        records = list(records)
        page = super().reconstruct(tag, base_page, records)
        self.pages[(tag, len(records))] = page
        return page


@dataclass
class Run:
    name: str
    config: Config
    cluster: LocalCluster
    cap: Capture
    start_copy: Path  # the data directory at the start of the range (pg_wal left out)
    records: list[DecodedXLogRecord]
    engine: RememberingEngine
    report: CheckReport
    seconds: float

    @cached_property
    def plan(self) -> Plan:
        return build_plan(self.records, self.cap.start, self.cap.end)


@pytest.fixture(scope="module", params=list(CONFIGS))
def run(request: pytest.FixtureRequest, cluster_factory: Callable[..., LocalCluster],
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    name = request.param
    config = CONFIGS[name]
    pg = cluster_factory(wal_segsize_mb=1, fresh=True, **config.gucs)
    setup_before_range(pg)
    start_copy = tmp_path_factory.mktemp(f"heap-{name}") / "start"

    def steps(cluster: LocalCluster) -> None:
        # capture() has just checkpointed: this copy is the state the WAL range starts from
        shutil.copytree(cluster.pgdata, start_copy,
                        ignore=shutil.ignore_patterns("pg_wal", "postmaster.pid"))
        workload(cluster)

    t0 = time.monotonic()
    cap = capture(pg, steps, snapshot=config.snapshot)
    records = list(cap.records())
    engine = RememberingEngine(hint_bits_logged=config.hints)
    checker = Checker([engine], DataDirPages(pg.pgdata), cap.base, end_lsn=cap.end)
    report = checker.check_records(records, start=cap.start, end=cap.end)
    yield Run(name, config, pg, cap, start_copy, records, engine, report, time.monotonic() - t0)
    cap.cleanup()
    pg.destroy()


def _mine(counter: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counter.items() if k.startswith(MY_RMGRS)}


# -- the witness: the primary's pages under PostgreSQL's masks ----------------------------
def test_no_divergences_and_nothing_unsupported(run: Run) -> None:
    rep = run.report
    assert not run.cap.errors
    mine = [d for d in rep.divergences if d.owner in MY_OWNERS]
    details = [(d.kind, str(d.tag), d.record_type, d.error, d.diff[:8]) for d in mine]
    assert mine == [], details
    assert _mine(rep.unsupported) == {}
    assert rep.pages_checked > 3000
    assert run.seconds < 90, f"workload + verify took {run.seconds:.0f}s"


def _expected_types(run: Run) -> tuple[str, ...]:
    return TYPES_EVERYWHERE + (TYPES_WITH_HINTS if run.config.hints else ())


@pytest.mark.parametrize("rtype", TYPES_EVERYWHERE + TYPES_WITH_HINTS)
def test_record_type_verified(run: Run, rtype: str) -> None:
    """Each implemented record type was rebuilt on at least one page that then
    matched the primary."""
    if rtype not in _expected_types(run):
        pytest.skip(f"{rtype} needs wal_log_hints or data checksums")
    assert run.report.record_types[rtype] > 0, _mine(run.report.record_types)


def _flag_records(records: list[DecodedXLogRecord]) -> dict[str, list[int]]:
    """LSNs of records carrying the flag variants worth proving, by name."""
    out: dict[str, list[int]] = {}

    def note(name: str, rec: DecodedXLogRecord) -> None:
        out.setdefault(name, []).append(rec.lsn)

    for rec in records:
        t, data = PG15.record_type(rec), rec.main_data
        if t.startswith("Heap/INSERT"):
            _off, flags = heapmod.XL_HEAP_INSERT.unpack_from(data)
            for bit, name in ((heapmod.XLH_INSERT_ALL_VISIBLE_CLEARED, "insert ALL_VISIBLE_CLEARED"),
                              (heapmod.XLH_INSERT_IS_SPECULATIVE, "insert IS_SPECULATIVE"),
                              (heapmod.XLH_INSERT_CONTAINS_NEW_TUPLE, "insert CONTAINS_NEW_TUPLE"),
                              (heapmod.XLH_INSERT_ON_TOAST_RELATION, "insert ON_TOAST_RELATION")):
                if flags & bit:
                    note(name, rec)
        elif t == "Heap/DELETE":
            flags = heapmod.XL_HEAP_DELETE.unpack_from(data)[3]
            for bit, name in ((heapmod.XLH_DELETE_ALL_VISIBLE_CLEARED, "delete ALL_VISIBLE_CLEARED"),
                              (heapmod.XLH_DELETE_IS_SUPER, "delete IS_SUPER"),
                              (heapmod.XLH_DELETE_CONTAINS_OLD_KEY, "delete CONTAINS_OLD_KEY"),
                              (heapmod.XLH_DELETE_IS_PARTITION_MOVE, "delete IS_PARTITION_MOVE")):
                if flags & bit:
                    note(name, rec)
        elif t.startswith(("Heap/UPDATE", "Heap/HOT_UPDATE")):
            _x, _o, infobits, flags, _nx, _no = heapmod.XL_HEAP_UPDATE.unpack_from(data)
            for bit, name in ((heapmod.XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED, "update OLD_ALL_VISIBLE_CLEARED"),
                              (heapmod.XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED, "update NEW_ALL_VISIBLE_CLEARED"),
                              (heapmod.XLH_UPDATE_CONTAINS_NEW_TUPLE, "update CONTAINS_NEW_TUPLE"),
                              (heapmod.XLH_UPDATE_PREFIX_FROM_OLD, "update PREFIX_FROM_OLD"),
                              (heapmod.XLH_UPDATE_SUFFIX_FROM_OLD, "update SUFFIX_FROM_OLD")):
                if flags & bit:
                    note(name, rec)
            if infobits & heapmod.XLHL_XMAX_IS_MULTI:
                note("update old xmax IS_MULTI", rec)
        elif t == "Heap/LOCK":
            _xid, _off, infobits, flags = heapmod.XL_HEAP_LOCK.unpack_from(data)
            if flags & heapmod.XLH_LOCK_ALL_FROZEN_CLEARED:
                note("lock ALL_FROZEN_CLEARED", rec)
            if infobits & heapmod.XLHL_XMAX_IS_MULTI:
                note("lock IS_MULTI", rec)
            if infobits & heapmod.XLHL_XMAX_KEYSHR_LOCK:
                note("lock KEYSHR_LOCK", rec)
        elif t.startswith("Heap2/MULTI_INSERT"):
            flags = heap2mod.XL_HEAP_MULTI_INSERT.unpack_from(data)[0]
            if flags & heapmod.XLH_INSERT_ALL_VISIBLE_CLEARED:
                note("multi-insert ALL_VISIBLE_CLEARED", rec)
            if flags & heapmod.XLH_INSERT_ALL_FROZEN_SET:
                note("multi-insert ALL_FROZEN_SET", rec)
        elif t == "Heap2/VISIBLE":
            flags = heap2mod.XL_HEAP_VISIBLE.unpack_from(data)[1]
            if flags & 0x02:
                note("visible ALL_FROZEN", rec)
    return out


FLAG_VARIANTS = (
    "insert ALL_VISIBLE_CLEARED", "insert IS_SPECULATIVE",
    "delete ALL_VISIBLE_CLEARED", "delete IS_SUPER", "delete IS_PARTITION_MOVE",
    "update OLD_ALL_VISIBLE_CLEARED", "update NEW_ALL_VISIBLE_CLEARED",
    "update old xmax IS_MULTI",
    "lock ALL_FROZEN_CLEARED", "lock IS_MULTI", "lock KEYSHR_LOCK",
    "multi-insert ALL_VISIBLE_CLEARED", "multi-insert ALL_FROZEN_SET", "visible ALL_FROZEN",
)
# only with wal_level=logical (tuple data for logical decoding)
FLAG_VARIANTS_LOGICAL = ("insert CONTAINS_NEW_TUPLE", "insert ON_TOAST_RELATION",
                         "delete CONTAINS_OLD_KEY", "update CONTAINS_NEW_TUPLE")
# only without it: logically logged tables get no prefix/suffix compression
FLAG_VARIANTS_NOT_LOGICAL = ("update PREFIX_FROM_OLD", "update SUFFIX_FROM_OLD")


@pytest.fixture(scope="module")
def flag_records(run: Run) -> dict[str, list[int]]:
    return _flag_records(run.records)


@pytest.mark.parametrize("variant", FLAG_VARIANTS + FLAG_VARIANTS_LOGICAL + FLAG_VARIANTS_NOT_LOGICAL)
def test_flag_variant_verified(run: Run, flag_records: dict[str, list[int]], variant: str) -> None:
    """The flag variants occur in the WAL, and at least one such record was
    replayed on a page that then matched the primary."""
    if variant in (FLAG_VARIANTS_NOT_LOGICAL if run.config.logical else FLAG_VARIANTS_LOGICAL):
        pytest.skip(f"{variant} is not emitted with wal_level={run.config.gucs.get('wal_level', 'replica')}")
    lsns = flag_records.get(variant, [])
    assert lsns, f"the workload emitted no {variant} record"
    verified = run.report._verified  # LSNs of records replayed on witnessed pages
    assert any(lsn in verified for lsn in lsns), f"no {variant} record was verified"


def test_visibility_map_pages_rebuilt(run: Run) -> None:
    """VM pages: VISIBLE records set bits, heap records clear them without naming
    the VM page; rebuilt VM pages equal the primary's."""
    vm = [bp for bp in run.plan if bp.tag.fork == VISIBILITYMAP_FORKNUM and not bp.unverifiable]
    implicit = [bp for bp in vm
                if any(all(b.tag != bp.tag for b in r.blocks.values()) for r in bp.records)]
    assert implicit, "no VM page was changed by an implicit visibilitymap_clear"
    checker = Checker([RedoEngine(hint_bits_logged=run.config.hints)],
                      DataDirPages(run.cluster.pgdata), run.cap.base, end_lsn=run.cap.end)
    report = CheckReport()
    for bp in vm:
        checker.check_block(bp, report)
    assert report.divergences == [], [(str(d.tag), d.diff[:6]) for d in report.divergences]
    assert report.pages_checked >= 3
    if run.config.snapshot:
        # with a base page, the pages whose bits were cleared implicitly are rebuilt too
        report = CheckReport()
        for bp in implicit:
            checker.check_block(bp, report)
        assert report.divergences == []
        assert report.pages_checked >= 1


def test_desc_matches_pg_waldump(run: Run, pg_waldump: str) -> None:
    """desc() prints what pg_waldump's heapdesc.c / seqdesc.c print."""
    res = subprocess.run([pg_waldump, "-p", str(run.cluster.waldir), "-s", format_lsn(run.cap.start),
                          "-e", format_lsn(run.cap.end)], capture_output=True, text=True, check=False)
    theirs: dict[int, str] = {}
    for line in res.stdout.splitlines():
        rmgr = line[len("rmgr: "):].split(" ", 1)[0]
        if rmgr in ("Heap", "Heap2", "Sequence"):
            lsn = parse_lsn(line.split(" lsn: ", 1)[1].split(",", 1)[0])
            theirs[lsn] = line.split(" desc: ", 1)[1].split(", blkref #", 1)[0]
    mods = {10: heapmod, 9: heap2mod, 15: seqmod}
    ours = {r.lsn: f"{mods[r.rmid].identify(r.info)} {mods[r.rmid].desc(r)}"
            for r in run.records if r.rmid in mods}
    assert len(theirs) > 10000
    assert {k: ours.get(k) for k in theirs if ours.get(k) != theirs[k]} == {}


# -- no masks: PostgreSQL's own redo ---------------------------------------------------
@pytest.fixture
def server_tmp() -> Iterator[Path]:
    """A scratch directory the server user can reach (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="redodiff-heap-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _recover_copy(run: Run, dest: Path) -> DataDirPages:
    """Crash-recover a copy of the start-of-range data directory over the captured
    WAL with PostgreSQL's own redo, shut it down cleanly, and read its pages."""
    data = dest / "data"
    shutil.copytree(run.start_copy, data)
    shutil.copytree(run.cluster.waldir, data / "pg_wal")
    _chown_tree(dest)
    data.chmod(0o700)
    log = dest / "server.log"
    start = [program("pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "120",
             "-o", f"-p {free_port()} -k {dest} -c listen_addresses=''", "start"]
    res = subprocess.run(as_server_user(start), capture_output=True, text=True, check=False)
    if res.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        pytest.fail(f"recovery of the start-of-range copy failed: {res.stdout}{res.stderr}\n{tail}")
    stop = [program("pg_ctl"), "-D", str(data), "-w", "-m", "fast", "stop"]
    subprocess.run(as_server_user(stop), capture_output=True, text=True, check=True)
    return DataDirPages(data)


def test_pages_equal_postgres_redo_byte_for_byte(run: Run, server_tmp: Path) -> None:
    """No masks: every page pyredo rebuilds equals, byte for byte (stale bytes,
    pd_lsn, hint bits and all), the page PostgreSQL's redo rebuilt from the same
    base over the same WAL."""
    recovered = _recover_copy(run, server_tmp)
    base = DataDirPages(run.start_copy)
    compared = 0
    bad: list[str] = []
    for bp in run.plan:
        if not bp.records or bp.unverifiable or bp.tag.fork == FSM_FORKNUM:
            continue
        if any(r.rmid not in _MY_RMIDS for r in bp.records):
            continue  # other engineers' pages (btree, ...)
        mine = run.engine.pages.get((bp.tag, len(bp.records)))
        if mine is None:  # verification had no base page (fpw on): take the start copy's
            base_page = base(bp.tag) if bp.needs_base else None
            if bp.needs_base and base_page is None:
                continue
            mine = run.engine.reconstruct(bp.tag, base_page, bp.records)
        theirs = recovered(bp.tag)
        if theirs is None or PageGetLSN(theirs) > run.cap.end:
            continue  # dropped later, or changed after the range
        compared += 1
        if mine != theirs:
            diff = "; ".join(str(d) for d in explain_diff(mine, theirs, bp.owner)[:8])
            bad.append(f"{bp.tag} ({bp.record_types()[-3:]}): {diff}")
    assert bad == [], f"{len(bad)} of {compared} pages differ:\n" + "\n".join(bad[:10])
    assert compared > 3000


# -- a readable failure -------------------------------------------------------------------
class CorruptingEngine(RedoEngine):
    """pyredo with a planted bug: after one chosen record it flips a bit of
    lp[7].lp_off and of item 3's t_infomask on the target page."""

    name = "corrupting"

    def __init__(self, lsn: int) -> None:
        super().__init__()
        self.lsn = lsn

    def apply(self, tag: Any, page: bytearray, rec: DecodedXLogRecord) -> None:
        super().apply(tag, page, rec)
        if rec.lsn == self.lsn and tag.fork == MAIN_FORKNUM:
            page[ItemIdOffset(7)] ^= 0x10  # lp_off += or -= 16
            page[PageGetItemId(page, 3)[0] + T_INFOMASK] ^= 0x04  # HEAP_HASEXTERNAL


def test_divergence_names_field_offset_and_record_type(pg: LocalCluster) -> None:
    """A planted one-bit error is reported as the fields a PostgreSQL hacker
    would look at, with their page offsets, and the record that caused it."""
    pg.execute("DROP TABLE IF EXISTS readable")
    pg.execute("CREATE TABLE readable (id int, t text)")
    cap = capture(pg, [f"INSERT INTO readable VALUES ({i}, 'row {i}')" for i in range(1, 11)])
    try:
        rel = pg.relfilenode("readable")
        plan = build_plan(cap.records())
        bp = next(bp for bp in plan if (bp.tag.spc, bp.tag.db, bp.tag.rel) == rel
                  and bp.tag.fork == MAIN_FORKNUM)
        engine = RedoEngine()
        # the record after which the page first holds 8 tuples
        k = next(i for i in range(1, len(bp.records) + 1)
                 if PageGetMaxOffsetNumber(engine.reconstruct(bp.tag, None, bp.records[:i])) == 8)
        target = bp.records[k - 1]
        corrupting = CorruptingEngine(target.lsn)

        checker = Checker([engine, corrupting], DataDirPages(pg.pgdata), end_lsn=cap.end)
        report = CheckReport()
        checker.check_block(bp, report)
        (d,) = report.divergences
        assert d.kind == ENGINE_DISAGREEMENT
        assert d.record_type == "Heap/INSERT"
        assert d.first_diverging_lsn == target.lsn
        text = "\n".join(d.diff)
        assert "offset 0x0030 (48): lp[7].lp_off:" in text, text
        assert "item 3 t_infomask:" in text, text
        lp3 = PageGetItemId(engine.reconstruct(bp.tag, None, bp.records), 3)[0]
        assert f"({lp3 + T_INFOMASK}): item 3 t_infomask" in text, text

        # alone against the primary (masked), the same fields are named
        report = CheckReport()
        Checker([corrupting], DataDirPages(pg.pgdata), end_lsn=cap.end).check_block(bp, report)
        (d,) = report.divergences
        assert d.kind == ENGINE_VS_PRIMARY
        assert d.record_type.startswith("Heap/INSERT")
        text = "\n".join(d.diff)
        assert "lp[7].lp_off" in text and "item 3 t_infomask" in text, text
    finally:
        cap.cleanup()
