"""The wal-redo oracle against real PostgreSQL: pages the stock server rebuilds
from real WAL equal the primary's pages (under PostgreSQL's consistency masks).

Each test runs a workload, reads its WAL range with pyredo's reader, groups
the records by block (``records_by_block``: block references, plus the heap
records that clear visibility-map bits), sends every block whose first record
restores an image or initializes the page, and compares the answer with the
primary's page after a CHECKPOINT.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
import pytest

from harness.bench.walredo import run_bench
from harness.clusters.local import LocalCluster
from oracles.masks import NoMask, guess_owner, mask_page
from oracles.masks.bufmask import MaskError
from oracles.pgbin import program
from oracles.walredo import WalRedoProcess
from oracles.walredo_routing import first_record_problem, records_by_block, vm_pages_cleared
from pyredo.rmgr import RM_SMGR_ID, RM_XLOG_ID
from pyredo.rmgrlist import PG15
from pyredo.wal.reader import WalReader
from pyredo.wal.record import (
    FSM_FORKNUM,
    INIT_FORKNUM,
    VISIBILITYMAP_FORKNUM,
    BufferTag,
    DecodedXLogRecord,
    RelFileNode,
)

XLOG_SMGR_TRUNCATE = 0x20


@pytest.fixture(scope="module")
def walredo() -> Iterator[WalRedoProcess]:
    with WalRedoProcess() as wr:
        yield wr


@dataclass
class Outcome:
    """What replaying one WAL range through the server gave."""

    records: int = 0
    requests: int = 0
    equal: int = 0
    needs_base: int = 0
    gone: int = 0
    unverifiable: Counter[str] = field(default_factory=Counter)
    mismatches: list[str] = field(default_factory=list)
    sent_types: Counter[str] = field(default_factory=Counter)
    all_types: Counter[str] = field(default_factory=Counter)
    equal_by_owner: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        return (f"{self.records} records, {self.requests} requests, {self.equal} equal, "
                f"{len(self.mismatches)} mismatches, {self.needs_base} need a base page, "
                f"{self.gone} gone, unverifiable {dict(self.unverifiable)}; "
                f"equal by owner {dict(self.equal_by_owner)}")


def _truncated(records: list[DecodedXLogRecord]) -> set[RelFileNode]:
    out = set()
    for r in records:
        if r.rmid == RM_SMGR_ID and r.info & 0xF0 == XLOG_SMGR_TRUNCATE and len(r.main_data) >= 16:
            spc, db, rel = (int.from_bytes(r.main_data[i : i + 4], "little") for i in (4, 8, 12))
            out.add(RelFileNode(spc, db, rel))
    return out


def _owner(records: list[DecodedXLogRecord], primary: bytes) -> str | None:
    for r in reversed(records):
        if r.rmid != RM_XLOG_ID:
            return PG15.rmgr_name(r.rmid)
    return guess_owner(primary)


def _first_diff(a: bytes, b: bytes) -> str:
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    return f"{len(diff)} bytes differ, first at {diff[0]}" if diff else "equal"


def replay_and_compare(pg: LocalCluster, wr: WalRedoProcess, start: int, end: int) -> Outcome:
    """Rebuild every self-contained block of [start, end) and compare it with the primary."""
    pg.checkpoint()  # flush the WAL up to ``end`` and the primary's pages
    records = list(WalReader(pg.waldir, start, end))
    out = Outcome(records=len(records), all_types=Counter(PG15.record_type(r) for r in records))
    truncated = _truncated(records)
    for tag, recs in records_by_block(records).items():
        if tag.fork == INIT_FORKNUM:
            out.unverifiable["init fork (unsupported target)"] += 1
            continue
        if first_record_problem(tag, None, recs) is not None:
            out.needs_base += 1
            continue
        page = wr.reconstruct(tag, None, recs)  # any WalRedoError fails the test
        out.requests += 1
        out.sent_types.update(PG15.record_type(r) for r in recs)
        primary = pg.read_block(tag)
        if primary is None:
            out.gone += 1
            continue
        owner = _owner(recs, primary)
        why = None
        if tag.fork == FSM_FORKNUM:
            why = "free-space map (not WAL-logged)"
        elif tag.fork != 0 and tag.rnode in truncated:
            why = "VM page of a relation truncated in the range"
        elif owner == "Sequence":
            why = "sequence (nextval changes the page without WAL)"
        elif owner == "SPGist" and tag.blk == 0:
            why = "SP-GiST metapage (lastUsedPages cache is not WAL-logged)"
        if why is not None:
            out.unverifiable[why] += 1
            continue
        try:
            a = mask_page(page, owner or "?", tag.blk, tag.fork)
            b = mask_page(primary, owner or "?", tag.blk, tag.fork)
        except (NoMask, MaskError) as e:
            out.unverifiable[f"no mask: {e}"] += 1
            continue
        if a == b:
            out.equal += 1
            out.equal_by_owner["VM" if tag.fork == VISIBILITYMAP_FORKNUM else owner or "?"] += 1
        else:
            types = ", ".join(PG15.record_type(r) for r in recs[-4:])
            out.mismatches.append(f"{tag} ({owner}, {len(recs)} records, last: {types}): "
                                  f"{_first_diff(a, b)}")
    return out


# -- must-show 1: pgbench, heap and btree workloads -----------------------------------------
def test_pgbench_pages_equal_primary(pg: LocalCluster, walredo: WalRedoProcess) -> None:
    pg.execute("DROP DATABASE IF EXISTS walredo_pgbench")
    pg.execute("CREATE DATABASE walredo_pgbench")
    start = pg.checkpoint()
    base = [program("pgbench"), "-h", str(pg.sockdir), "-p", str(pg.port), "-U", "postgres"]
    subprocess.run([*base, "-i", "-s", "2", "-q", "walredo_pgbench"], check=True,
                   capture_output=True, timeout=300)
    subprocess.run([*base, "-n", "-c", "4", "-j", "2", "-t", "750", "walredo_pgbench"], check=True,
                   capture_output=True, timeout=300)
    end = pg.current_lsn()
    out = replay_and_compare(pg, walredo, start, end)
    print(out.summary())
    assert not out.mismatches, "\n".join(out.mismatches[:20])
    assert out.equal >= 3000, out.summary()  # pgbench_accounts alone has 3 280 pages at scale 2
    assert out.equal_by_owner["VM"] >= 1
    for t in ("Heap2/MULTI_INSERT+INIT", "Heap/UPDATE", "Heap/INSERT", "Btree/INSERT_LEAF", "XLOG/FPI"):
        assert out.sent_types[t] > 0, (t, out.sent_types)


def test_heap_pages_equal_primary(pg: LocalCluster, walredo: WalRedoProcess) -> None:
    pg.execute("DROP TABLE IF EXISTS wr_heap")
    pg.execute("CREATE TABLE wr_heap (id int PRIMARY KEY, n int, pad text) WITH (fillfactor = 80)")
    start = pg.checkpoint()
    with pg.connect() as conn, conn.cursor() as cur:
        with cur.copy("COPY wr_heap FROM STDIN") as cp:
            for i in range(1, 4001):
                cp.write_row((i, i % 17, "p" * (i % 40)))
        cur.execute("UPDATE wr_heap SET n = n + 1 WHERE id % 3 = 0")  # HOT (n is not indexed)
        cur.execute("UPDATE wr_heap SET id = id + 100000 WHERE id % 29 = 0")  # non-HOT
        cur.execute("DELETE FROM wr_heap WHERE id % 7 = 0")
        cur.execute("VACUUM wr_heap")
        cur.execute("UPDATE wr_heap SET pad = 'hot' WHERE id % 11 = 0")
        cur.execute("VACUUM (FREEZE) wr_heap")
        cur.execute("INSERT INTO wr_heap SELECT g, 0, 'late' FROM generate_series(5001, 5400) g")
    end = pg.current_lsn()
    out = replay_and_compare(pg, walredo, start, end)
    print(out.summary())
    assert not out.mismatches, "\n".join(out.mismatches[:20])
    assert out.equal >= 40, out.summary()
    for t in ("Heap2/MULTI_INSERT+INIT", "Heap/HOT_UPDATE", "Heap/UPDATE", "Heap/DELETE",
              "Heap2/PRUNE", "Heap2/VACUUM", "Heap2/FREEZE_PAGE", "Heap2/VISIBLE"):
        assert out.sent_types[t] > 0, (t, out.sent_types)


def test_btree_pages_equal_primary(pg: LocalCluster, walredo: WalRedoProcess) -> None:
    pg.execute("DROP TABLE IF EXISTS wr_btree")
    pg.execute("CREATE TABLE wr_btree (k text, d int)")
    pg.execute("CREATE INDEX wr_btree_k ON wr_btree (k)")
    pg.execute("CREATE INDEX wr_btree_d ON wr_btree (d)")  # deduplicated
    start = pg.checkpoint()
    # wide keys split leaves fast; few distinct d values deduplicate
    pg.execute("INSERT INTO wr_btree SELECT lpad(g::text, 200, '0'), g % 4 "
               "FROM generate_series(1, 3000) g")
    pg.execute("DELETE FROM wr_btree WHERE k BETWEEN lpad('500', 200, '0') AND lpad('2500', 200, '0')")
    pg.execute("VACUUM wr_btree")  # empties whole leaves: page deletion
    pg.execute("INSERT INTO wr_btree SELECT lpad(g::text, 200, '1'), 1 FROM generate_series(1, 600) g")
    end = pg.current_lsn()
    out = replay_and_compare(pg, walredo, start, end)
    print(out.summary())
    assert not out.mismatches, "\n".join(out.mismatches[:20])
    assert out.equal_by_owner["Btree"] >= 30, out.summary()
    for t in ("Btree/INSERT_LEAF", "Btree/SPLIT_R", "Btree/INSERT_UPPER", "Btree/NEWROOT",
              "Btree/DEDUP", "Btree/VACUUM", "Btree/MARK_PAGE_HALFDEAD", "Btree/UNLINK_PAGE"):
        assert out.sent_types[t] > 0, (t, out.sent_types)


# -- must-show 2: visibility-map pages ---------------------------------------------------
def test_visibility_map_pages(pg: LocalCluster, walredo: WalRedoProcess) -> None:
    """A VM page rebuilt from VISIBLE records and the heap records routed to it
    equals the primary's; without the routed records it does not (the trap)."""
    pg.execute("DROP TABLE IF EXISTS wr_vm")
    pg.execute("CREATE TABLE wr_vm (a int PRIMARY KEY, b int) WITH (autovacuum_enabled = off)")
    pg.execute("INSERT INTO wr_vm SELECT g, g FROM generate_series(1, 20000) g")
    start = pg.checkpoint()
    pg.execute("VACUUM (FREEZE) wr_vm")  # sets ALL_VISIBLE|ALL_FROZEN: Heap2/VISIBLE
    pg.execute("UPDATE wr_vm SET b = -b WHERE a % 1000 = 0")  # UPDATE: OLD/NEW_ALL_VISIBLE_CLEARED
    pg.execute("DELETE FROM wr_vm WHERE a % 1500 = 7")  # DELETE: ALL_VISIBLE_CLEARED
    pg.execute("SELECT * FROM wr_vm WHERE a = 4321 FOR UPDATE")  # LOCK: ALL_FROZEN_CLEARED
    pg.execute("VACUUM wr_vm")  # sets bits again
    pg.execute("INSERT INTO wr_vm VALUES (100007, 1)")  # INSERT into an all-visible page
    with pg.connect() as conn, conn.cursor() as cur, cur.copy("COPY wr_vm FROM STDIN") as cp:
        for i in range(200001, 200040):  # MULTI_INSERT into an all-visible page
            cp.write_row((i, i))
    end = pg.current_lsn()
    pg.checkpoint()
    spc, db, rel = pg.relfilenode("wr_vm")
    vm_tag = BufferTag(spc, db, rel, VISIBILITYMAP_FORKNUM, 0)
    records = list(WalReader(pg.waldir, start, end))
    recs = records_by_block(records)[vm_tag]
    routed = [r for r in recs if vm_tag in vm_pages_cleared(r)]
    named = [r for r in recs if any(b.tag == vm_tag for b in r.blocks.values())]
    assert first_record_problem(vm_tag, None, recs) is None  # first VISIBLE carries the VM image
    routed_types = Counter(PG15.record_type(r) for r in routed)
    print("VM page records:", Counter(PG15.record_type(r) for r in recs))
    for t in ("Heap/UPDATE", "Heap/DELETE", "Heap/LOCK", "Heap/INSERT", "Heap2/MULTI_INSERT"):
        assert routed_types[t] > 0, (t, routed_types)

    primary = pg.read_block(vm_tag)
    assert primary is not None
    page = walredo.reconstruct(vm_tag, None, recs)
    assert mask_page(page, "Heap2", 0, VISIBILITYMAP_FORKNUM) == mask_page(primary, "Heap2", 0, VISIBILITYMAP_FORKNUM)
    assert page == primary  # no checksums: not even the LSN may differ

    # The trap: the VISIBLE records alone leave bits set that the primary cleared.
    trapped = walredo.reconstruct(vm_tag, None, named)
    assert trapped != primary

    # The heap pages the routed records name are untouched by the VM request: rebuilding
    # them still matches the primary (the server skipped them, it did not corrupt them).
    out = replay_and_compare(pg, walredo, start, end)
    assert not out.mismatches, "\n".join(out.mismatches[:20])
    assert out.equal_by_owner["VM"] >= 1


# -- must-show 3: every resource manager through the server --------------------------------
ALL_AM_SQL = [
    "CREATE EXTENSION IF NOT EXISTS bloom",
    # heap
    "CREATE TABLE h (a int PRIMARY KEY, b int, c text) WITH (fillfactor = 70)",
    "INSERT INTO h SELECT g, g, 'x' FROM generate_series(1, 3000) g",
    "CHECKPOINT",
    "SELECT count(*) FROM h",  # sets hint bits: XLOG/FPI_FOR_HINT (wal_log_hints)
    "UPDATE h SET b = b + 1 WHERE a % 10 = 0",
    "UPDATE h SET a = a + 100000 WHERE a % 97 = 0",
    "DELETE FROM h WHERE a % 13 = 0",
    "VACUUM h",
    "VACUUM (FREEZE) h",
    "UPDATE h SET c = 'y' WHERE a % 301 = 0",
    "INSERT INTO h VALUES (13, 1, 'z') ON CONFLICT (a) DO UPDATE SET c = 'w'",
    "INSERT INTO h VALUES (1000001, 1, 'z') ON CONFLICT (a) DO NOTHING",
    # btree
    "CREATE TABLE bt (k int, v text)",
    "CREATE INDEX bt_k ON bt (k)",
    "INSERT INTO bt SELECT g % 20, 'v' FROM generate_series(1, 6000) g",
    "INSERT INTO bt SELECT g, 'v' FROM generate_series(1, 6000) g",
    "DELETE FROM bt WHERE k BETWEEN 100 AND 5000",
    "VACUUM bt",
    # hash
    "CREATE TABLE hs (k int)",
    "CREATE INDEX hs_k ON hs USING hash (k)",
    "INSERT INTO hs SELECT g FROM generate_series(1, 6000) g",
    "INSERT INTO hs SELECT 7 FROM generate_series(1, 1500) g",
    "DELETE FROM hs WHERE k % 3 = 0 OR k = 7",
    "VACUUM hs",
    "INSERT INTO hs SELECT g FROM generate_series(6001, 7000) g",
    # gin (fast update with a small pending list, and direct)
    "CREATE TABLE gn (a int[])",
    "CREATE INDEX gn_a ON gn USING gin (a) WITH (fastupdate = on, gin_pending_list_limit = 64)",
    "CREATE INDEX gn_b ON gn USING gin (a) WITH (fastupdate = off)",
    "INSERT INTO gn SELECT array[g % 100, g % 37, g] FROM generate_series(1, 3000) g",
    "INSERT INTO gn SELECT array[g % 100, 5] FROM generate_series(1, 3000) g",
    "DELETE FROM gn WHERE a[1] < 50",
    "VACUUM gn",
    # gist
    "CREATE TABLE gs (p point)",
    "CREATE INDEX gs_p ON gs USING gist (p)",
    "INSERT INTO gs SELECT point(g % 100, g / 100) FROM generate_series(1, 6000) g",
    "DELETE FROM gs WHERE p[0] < 60",
    "VACUUM gs",
    "INSERT INTO gs SELECT point(g % 100, g / 100) FROM generate_series(1, 1000) g",
    # sp-gist
    "CREATE TABLE sp (p point, t text)",
    "CREATE INDEX sp_p ON sp USING spgist (p)",
    "CREATE INDEX sp_t ON sp USING spgist (t)",
    "INSERT INTO sp SELECT point(g % 100, g / 100), 'txt' || (g % 500) FROM generate_series(1, 6000) g",
    "DELETE FROM sp WHERE p[0] < 60",
    "VACUUM sp",
    "INSERT INTO sp SELECT point(g % 100, g / 100), 'q' || g FROM generate_series(1, 1000) g",
    # brin
    "CREATE TABLE br (a int, b text)",
    "INSERT INTO br SELECT g, repeat('x', 400) FROM generate_series(1, 3000) g",
    "CREATE INDEX br_a ON br USING brin (a) WITH (pages_per_range = 1)",
    "INSERT INTO br SELECT g, repeat('x', 400) FROM generate_series(3001, 6000) g",
    "UPDATE br SET a = -a WHERE a % 500 = 0",
    "SELECT brin_desummarize_range('br_a', 0)",
    "SELECT brin_summarize_new_values('br_a')",
    # sequence
    "CREATE SEQUENCE sq",
    "SELECT nextval('sq') FROM generate_series(1, 100)",
    # generic WAL (contrib bloom)
    "CREATE TABLE bl (a int, b int)",
    "CREATE INDEX bl_idx ON bl USING bloom (a, b)",
    "INSERT INTO bl SELECT g, g % 10 FROM generate_series(1, 3000) g",
    "DELETE FROM bl WHERE a % 3 = 0",
    "VACUUM bl",
]

REQUIRED_TYPES = [
    "Heap/INSERT", "Heap/INSERT+INIT", "Heap/UPDATE", "Heap/HOT_UPDATE", "Heap/DELETE",
    "Heap/LOCK", "Heap/INPLACE", "Heap/HEAP_CONFIRM",
    "Heap2/PRUNE", "Heap2/VACUUM", "Heap2/FREEZE_PAGE", "Heap2/VISIBLE", "Heap2/LOCK_UPDATED",
    "Btree/INSERT_LEAF", "Btree/INSERT_UPPER", "Btree/SPLIT_R", "Btree/NEWROOT", "Btree/DEDUP",
    "Btree/VACUUM", "Btree/MARK_PAGE_HALFDEAD", "Btree/UNLINK_PAGE",
    "Hash/INIT_META_PAGE", "Hash/INIT_BITMAP_PAGE", "Hash/INSERT", "Hash/ADD_OVFL_PAGE",
    "Hash/SPLIT_ALLOCATE_PAGE", "Hash/SPLIT_PAGE", "Hash/SPLIT_COMPLETE", "Hash/SQUEEZE_PAGE",
    "Hash/DELETE", "Hash/SPLIT_CLEANUP",
    "Gin/CREATE_PTREE", "Gin/INSERT", "Gin/SPLIT", "Gin/UPDATE_META_PAGE", "Gin/INSERT_LISTPAGE",
    "Gin/DELETE_LISTPAGE", "Gin/VACUUM_PAGE",
    "Gist/PAGE_UPDATE", "Gist/PAGE_SPLIT", "Gist/PAGE_DELETE",
    "SPGist/ADD_LEAF", "SPGist/MOVE_LEAFS", "SPGist/PICKSPLIT", "SPGist/VACUUM_LEAF",
    "BRIN/CREATE_INDEX", "BRIN/INSERT", "BRIN/SAMEPAGE_UPDATE", "BRIN/REVMAP_EXTEND",
    "BRIN/DESUMMARIZE",
    "Sequence/LOG", "Generic/Generic", "XLOG/FPI", "XLOG/FPI_FOR_HINT",
]


def _lock_updated(pg: LocalCluster) -> None:
    """Heap2/LOCK_UPDATED: lock a tuple whose newer version an open transaction made."""
    pg.execute("CREATE TABLE lu (a int PRIMARY KEY, b int)")
    pg.execute("INSERT INTO lu SELECT g, g FROM generate_series(1, 10) g")
    with pg.connect(autocommit=False) as c1, pg.connect(autocommit=False) as c2:
        c1.execute("UPDATE lu SET b = 100 WHERE a = 1")  # not a key update
        c2.execute("SELECT * FROM lu WHERE a = 1 FOR KEY SHARE")  # follows the update chain
        c1.commit()
        c2.commit()


def test_every_resource_manager(cluster_factory, walredo: WalRedoProcess) -> None:  # type: ignore[no-untyped-def]
    pg: LocalCluster = cluster_factory(wal_log_hints=True)
    dbname = "walredo_all_am"
    pg.execute(f"DROP DATABASE IF EXISTS {dbname}")
    pg.execute(f"CREATE DATABASE {dbname}")
    start = pg.checkpoint()
    with psycopg.connect(pg.conninfo(dbname), autocommit=True) as conn:
        for sql in ALL_AM_SQL:
            conn.execute(sql)
    db_pg = _DbView(pg, dbname)
    _lock_updated(db_pg)  # type: ignore[arg-type]
    end = pg.current_lsn()
    out = replay_and_compare(pg, walredo, start, end)
    print(out.summary())
    print("record types (in WAL / sent to the server):")
    for t in sorted(out.all_types):
        print(f"  {t:32s} {out.all_types[t]:7d} {out.sent_types.get(t, 0):7d}")
    missing = [t for t in REQUIRED_TYPES if out.sent_types[t] == 0]
    assert not missing, f"record types never sent: {missing}"
    assert not out.mismatches, "\n".join(out.mismatches[:20])
    for owner in ("Heap", "Heap2", "Btree", "Hash", "Gin", "Gist", "SPGist", "BRIN", "Generic", "VM"):
        assert out.equal_by_owner[owner] > 0, (owner, out.summary())


class _DbView:
    """The parts of LocalCluster _lock_updated uses, on another database."""

    def __init__(self, pg: LocalCluster, dbname: str) -> None:
        self.pg = pg
        self.dbname = dbname

    def execute(self, sql: str) -> None:
        self.pg.execute(sql, dbname=self.dbname)

    def connect(self, *, autocommit: bool) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.pg.conninfo(self.dbname), autocommit=autocommit)


# -- must-show 5: the benchmark runs ------------------------------------------------------
def test_bench_smoke(pg: LocalCluster, walredo: WalRedoProcess) -> None:
    res = run_bench(cluster=pg, walredo=walredo, short_pages=20, medium_pages=2,
                    min_seconds=0.1, other_min_seconds=0.1, pings=50)
    assert res["short"]["walredo"]["records_per_request"] == 2.0
    assert res["medium"]["walredo"]["records_per_request"] >= 200
    assert res["short"]["walredo"]["requests_per_s"] > 0
    assert res["ping"]["median_us"] > 0
