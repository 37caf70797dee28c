"""Hash index redo (pyredo.rmgr.hash) on real WAL.

One workload makes PostgreSQL 15 emit every hash record type:

* ``hashrd_grow`` — CREATE INDEX on a vacuumed empty table (INIT_META_PAGE,
  INIT_BITMAP_PAGE; 2 buckets, fillfactor 10 so a bucket splits every ~40
  tuples), thousands of INSERTs (SPLIT_ALLOCATE_PAGE with new masks and new
  splitpoints, SPLIT_PAGE, SPLIT_COMPLETE, then the split's cleanup of the old
  bucket: DELETE and SPLIT_CLEANUP), a CHECKPOINT in the middle (so, with
  full_page_writes on, splits start on restored images), a run of one
  duplicate key (ADD_OVFL_PAGE), DELETE + VACUUM (DELETE, MOVE_PAGE_CONTENTS,
  SQUEEZE_PAGE, UPDATE_META_PAGE), more duplicates, and a second index sized
  from the table's 3 000 rows (16 buckets).
* shape tables filled before the WAL range with one key, whose rows lie on
  the bucket page (ids 1-407) and overflow pages (408-814, 815-1221, ...);
  deleting chosen id ranges and vacuuming gives each variant: a DELETE that
  only cleanup-locks the bucket page (whose LSN redo must leave alone),
  MOVE_PAGE_CONTENTS into the bucket page and into an overflow page,
  SQUEEZE_PAGE into the bucket page, into the freed page's predecessor and
  into a page further up, SQUEEZE_PAGE of an emptied page (then recycled:
  ADD_OVFL_PAGE with bmpage_found). Index scans before the range kill deleted
  rows (LP_DEAD, LH_PAGE_HAS_DEAD_TUPLES, no WAL), so inserts in the range
  VACUUM_ONE_PAGE the bucket page and then an overflow page, and VACUUM logs a
  DELETE with clear_dead_marking — on pages whose snapshots carry the hints.

It runs with full_page_writes on, with it off (base pages from a snapshot, so
redo routines rebuild the pages), and with wal_compression pglz / lz4 / zstd.
pyredo is compared with the primary under hash_mask and, when the
``oracles/pg_walredo`` server can be built, with PostgreSQL's own C redo byte
for byte. With full_page_writes off, pages no image touched must also equal
the primary's pages byte for byte (stale bytes in free space included).

ADD_OVFL_PAGE's new-bitmap-page branch (block 3) needs 32 768 overflow pages
(256 MB) and SQUEEZE_PAGE never names a next page (block 4) in PostgreSQL 15
(the freed page is always the last in its chain): tests/unit covers both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from redocases import MODES, compressed_images, divergences_of

from harness.clusters.datadir import DataDirPages
from harness.clusters.local import LocalCluster
from harness.verify.capture import Capture, capture, verify
from harness.verify.check import CheckReport, Engine
from harness.verify.plan import build_plan
from oracles.compare import explain_diff
from pyredo.engine import RedoEngine
from pyredo.page.bufpage import (
    LP_DEAD,
    LP_NORMAL,
    PageGetItemId,
    PageGetMaxOffsetNumber,
    PageSetItemId,
)
from pyredo.page.hash import LH_PAGE_HAS_DEAD_TUPLES, HashPageGetOpaque
from pyredo.rmgr import RM_HASH_ID
from pyredo.rmgr import hash as hashrm
from pyredo.rmgrlist import PG15
from pyredo.wal.record import (
    BufferTag,
    DecodedXLogRecord,
)

HASH_TYPES = tuple(hashrm.identify(info) or "" for info in hashrm.PAGE_MODIFYING)


# shape table -> rows of the one key. Each gets an 8-bucket index (CREATE INDEX
# on a never-vacuumed empty table assumes 10 heap pages) and no split moves its
# rows: ids 1-407 lie on the bucket page, 408-814 on overflow page 1,
# 815-1221 on overflow 2, 1222-1500 on overflow 3.
SHAPES = {
    "hashrd_ovfl": 1100,
    "hashrd_move": 1100,
    "hashrd_one": 600,
    "hashrd_prev": 1100,
    "hashrd_far": 1500,
    "hashrd_empty": 1100,
    "hashrd_dead": 1100,
    "hashrd_clear": 1100,
}
TABLES = ("hashrd_grow", *SHAPES)

SETUP = (
    f"DROP TABLE IF EXISTS {', '.join(TABLES)}",
    *(sql for t, n in SHAPES.items() for sql in (
        f"CREATE TABLE {t} (id int, k int) WITH (autovacuum_enabled = off)",
        f"CREATE INDEX {t}_k ON {t} USING hash (k)",
        f"INSERT INTO {t} SELECT g, 7 FROM generate_series(1, {n}) g",
    )),
    # LP_DEAD before the range, so the base pages (and redo) see the hints: index
    # scans kill deleted rows and mark their pages LH_PAGE_HAS_DEAD_TUPLES
    "DELETE FROM hashrd_dead WHERE id <= 50 OR id BETWEEN 408 AND 450",
    "DELETE FROM hashrd_clear WHERE id BETWEEN 815 AND 830",
    "SET enable_seqscan = off",
    "SET enable_bitmapscan = off",
    "SELECT count(*) FROM hashrd_dead WHERE k = 7",
    "SELECT count(*) FROM hashrd_clear WHERE k = 7",
)

WORKLOAD = (
    # -- growth: splits, overflow pages, squeeze ------------------------------------
    "CREATE TABLE hashrd_grow (id int, k int) WITH (autovacuum_enabled = off)",
    "VACUUM hashrd_grow",  # reltuples 0: the index starts with 2 buckets
    "CREATE INDEX hashrd_grow_k ON hashrd_grow USING hash (k) WITH (fillfactor = 10)",
    "INSERT INTO hashrd_grow SELECT g, g FROM generate_series(1, 1200) g",
    "CHECKPOINT",
    "INSERT INTO hashrd_grow SELECT g, g FROM generate_series(1201, 2000) g",
    "INSERT INTO hashrd_grow SELECT g, 7 FROM generate_series(1, 1000) g",
    "DELETE FROM hashrd_grow WHERE k = 7 AND id % 3 <> 0",
    "VACUUM hashrd_grow",
    "INSERT INTO hashrd_grow SELECT g, 7 FROM generate_series(1, 400) g",
    # sized from the table: 16 buckets (_hash_init_metabuffer's rounding path)
    "CREATE INDEX hashrd_grow_id ON hashrd_grow USING hash (id)",
    # -- shapes ------------------------------------------------------------------------
    # only overflow 2 loses tuples: the DELETE merely cleanup-locks the bucket page
    "DELETE FROM hashrd_ovfl WHERE id > 900",
    "VACUUM hashrd_ovfl",
    # room for 50 on the bucket page, then for 93 on overflow 1: two MOVE_PAGE_CONTENTS
    "DELETE FROM hashrd_move WHERE id <= 50 OR id BETWEEN 408 AND 500",
    "VACUUM hashrd_move",
    # overflow 1's 193 survivors fit on the bucket page: SQUEEZE_PAGE into it
    "DELETE FROM hashrd_one WHERE id <= 300",
    "VACUUM hashrd_one",
    # overflow 2's 185 survivors all fit on overflow 1, its predecessor
    "DELETE FROM hashrd_prev WHERE id BETWEEN 408 AND 800 OR id >= 1000",
    "VACUUM hashrd_prev",
    # overflow 3's 78 survivors go to overflow 1, two pages before it
    "DELETE FROM hashrd_far WHERE id BETWEEN 408 AND 800 OR id >= 1300",
    "VACUUM hashrd_far",
    # overflow 2 emptied: freed with no tuples to move, then recycled
    "DELETE FROM hashrd_empty WHERE id >= 815",
    "VACUUM hashrd_empty",
    "INSERT INTO hashrd_empty SELECT g, 7 FROM generate_series(2001, 2010) g",
    # inserts find the bucket page, then overflow 1, full of dead items: VACUUM_ONE_PAGE
    "INSERT INTO hashrd_dead SELECT g, 7 FROM generate_series(2001, 2060) g",
    # overflow 2's killed rows are vacuumed: a DELETE that clears the dead mark
    "VACUUM hashrd_clear",
)

# Variants (see ``variant``) the workload must produce in every mode.
EXPECTED_VARIANTS = {
    "ADD_OVFL_PAGE bmpage_found=F",
    "ADD_OVFL_PAGE bmpage_found=T",
    "SPLIT_ALLOCATE_PAGE masks=F splitpoint=F",
    "SPLIT_ALLOCATE_PAGE masks=T splitpoint=T",
    "SPLIT_ALLOCATE_PAGE masks=F splitpoint=T",
    "MOVE_PAGE_CONTENTS prim=T",
    "MOVE_PAGE_CONTENTS prim=F",
    "SQUEEZE_PAGE prim=T prev=T",
    "SQUEEZE_PAGE prim=T prev=F",
    "SQUEEZE_PAGE prim=F prev=T",
    "SQUEEZE_PAGE prim=F prev=F",
    "SQUEEZE_PAGE ntups=0",
    "SQUEEZE_PAGE meta",
    "DELETE prim=T clear_dead=F",
    "DELETE prim=F clear_dead=F",
    "DELETE prim=F clear_dead=T",
}


def variant(rec: DecodedXLogRecord) -> list[str]:
    """The record's redo-relevant variants, in words."""
    t = hashrm.identify(rec.info) or "?"
    d = rec.main_data

    def tf(v: int) -> str:
        return "T" if v else "F"

    out = [t]
    if t == "ADD_OVFL_PAGE":
        out.append(f"{t} bmpage_found={tf(d[2])}")
    elif t == "SPLIT_ALLOCATE_PAGE":
        flags = d[8]
        out.append(f"{t} masks={tf(flags & 1)} splitpoint={tf(flags & 2)}")
        if rec.blocks[0].apply_image:
            out.append(f"{t} old bucket restored")
    elif t == "MOVE_PAGE_CONTENTS":
        out.append(f"{t} prim={tf(d[2])}")
    elif t == "SQUEEZE_PAGE":
        out.append(f"{t} prim={tf(d[10])} prev={tf(d[11])}")
        if int.from_bytes(d[8:10], "little") == 0:
            out.append(f"{t} ntups=0")
        if 6 in rec.blocks:
            out.append(f"{t} meta")
    elif t == "DELETE":
        out.append(f"{t} prim={tf(d[1])} clear_dead={tf(d[0])}")
    return out


@dataclass
class Run:
    mode: str
    cap: Capture
    report: CheckReport
    engines: list[str]
    hash_records: list[DecodedXLogRecord] = field(default_factory=list)
    selects: list[Any] = field(default_factory=list)

    def variants(self) -> Counter[str]:
        return Counter(v for r in self.hash_records for v in variant(r))


def run_steps(conn: Any, steps: tuple[str, ...]) -> list[Any]:
    """Run ``steps`` in one session (so SETs stick); the rows the SELECTs return."""
    rows = []
    for sql in steps:
        cur = conn.execute(sql)
        if sql.startswith("SELECT"):
            rows.append(cur.fetchone())
    return rows


def workload(compression: str | None) -> Callable[[LocalCluster], None]:
    """WORKLOAD as a capture callable, with wal_compression set for the session."""

    def run(cluster: LocalCluster) -> None:
        with cluster.connect() as conn:
            if compression:
                conn.execute(f"SET wal_compression = {compression}")
            run_steps(conn, WORKLOAD)

    return run


@pytest.fixture(scope="module", params=list(MODES))
def hash_run(request: pytest.FixtureRequest, cluster_factory: Any,
             c_redo: Engine | None) -> Iterator[Run]:
    fpw, compression = MODES[request.param]
    cluster: LocalCluster = (cluster_factory(wal_segsize_mb=1) if fpw
                             else cluster_factory(wal_segsize_mb=1, full_page_writes=False))
    with cluster.connect() as conn:
        selects = run_steps(conn, SETUP)
    cap = capture(cluster, workload(compression), snapshot=not fpw)
    engines: list[Engine] = [RedoEngine()] + ([c_redo] if c_redo is not None else [])
    try:
        # every record is redone (supersede=False): each record type's routine runs and is
        # checked, also where a later image or re-initialization of its page erases it
        report = verify(cap, engines, supersede=False)
        hash_records = [r for r in cap.records() if r.rmid == RM_HASH_ID]
        yield Run(request.param, cap, report, [e.name for e in engines], hash_records, selects)
    finally:
        cap.cleanup()
        with cluster.connect() as conn:
            conn.execute(f"DROP TABLE IF EXISTS {', '.join(TABLES)}")


@pytest.mark.parametrize("rtype", HASH_TYPES)
def test_hash_record_type_verified(hash_run: Run, rtype: str) -> None:
    """Each hash record type occurs in the WAL and the pages it touches match."""
    rep = hash_run.report
    assert divergences_of(rep, "Hash") == []
    assert not {t for t in rep.unsupported if t.startswith("Hash/")}, rep.unsupported
    assert rep.record_types[f"Hash/{rtype}"] > 0, dict(rep.record_types)


def test_every_hash_record_verified(hash_run: Run) -> None:
    """No hash record escaped: each one was checked on at least one of its pages.
    From a snapshot, every hash page of the range can be rebuilt."""
    rep = hash_run.report
    in_wal = Counter(PG15.record_type(r) for r in hash_run.hash_records)
    checked = Counter({t: n for t, n in rep.record_types.items() if t.startswith("Hash/")})
    assert checked == in_wal
    base = hash_run.cap.base
    if base is not None:
        plan = build_plan(hash_run.cap.records(), hash_run.cap.start, hash_run.cap.end, supersede=False)
        lost = [str(bp.tag) for bp in plan if bp.owner == "Hash"
                and (bp.unverifiable or (bp.needs_base and base(bp.tag) is None))]
        assert lost == []


def test_hash_variants_emitted(hash_run: Run) -> None:
    """The workload produced the record shapes it was written for."""
    seen = hash_run.variants()
    assert EXPECTED_VARIANTS - set(seen) == set(), seen
    # the bucket page, then overflow 1, were vacuumed on insert
    assert seen["VACUUM_ONE_PAGE"] == 2, seen
    # the index scans before the range saw the rows left
    assert hash_run.selects == [(1100 - 93,), (1100 - 16,)]
    if MODES[hash_run.mode][0]:
        assert seen["SPLIT_ALLOCATE_PAGE old bucket restored"] > 0, seen


def test_wal_compression_used(hash_run: Run) -> None:
    """The compressed modes really wrote compressed hash page images."""
    compression = MODES[hash_run.mode][1]
    if compression is None:
        pytest.skip("no wal_compression in this mode")
    assert compressed_images(hash_run.hash_records, compression) > 0


def test_c_redo_compared(hash_run: Run) -> None:
    """PostgreSQL's C redo took part and agreed with pyredo byte for byte."""
    if "walredo" not in hash_run.engines:
        pytest.skip("the oracles/pg_walredo server could not be built here")
    assert not [d for d in hash_run.report.divergences
                if d.kind == "engine_disagreement" and d.owner == "Hash"]


def _clear_dead_hints(page: bytearray) -> None:
    """LP_DEAD and LH_PAGE_HAS_DEAD_TUPLES: set by scans on the primary without WAL."""
    if page[-2:] != b"\x80\xff":  # not a hash page
        return
    for off in range(1, PageGetMaxOffsetNumber(page) + 1):
        lp_off, flags, lp_len = PageGetItemId(page, off)
        if flags == LP_DEAD:
            PageSetItemId(page, off, lp_off, LP_NORMAL, lp_len)
    op = HashPageGetOpaque(page)
    op.hasho_flag = op.hasho_flag & ~LH_PAGE_HAS_DEAD_TUPLES


def _lsn_never_written(rec: DecodedXLogRecord, tag: BufferTag) -> bool:
    """A SQUEEZE_PAGE that moves no tuples and is not the freed page's predecessor
    leaves its write page (block 1) unchanged but for PageSetLSN, and
    _hash_freeovflpage does not MarkBufferDirty it then: the primary's disk
    copy keeps its old LSN, while redo (C and pyredo) sets the new one."""
    if rec.rmid != RM_HASH_ID or rec.info & 0xF0 != hashrm.XLOG_HASH_SQUEEZE_PAGE:
        return False
    _prev, _next, ntups, _prim, is_prev = hashrm.XL_HASH_SQUEEZE_PAGE.unpack_from(rec.main_data)
    blk = rec.blocks.get(1)
    return ntups == 0 and not is_prev and blk is not None and blk.tag == tag


def test_nofpw_pages_equal_primary_raw(hash_run: Run) -> None:
    """Without full-page writes, a hash page no image touched is rebuilt from its
    snapshot by redo alone and must equal the primary's page byte for byte:
    stale bytes in free space, line pointers past pd_lower, padding.

    The LSN of a write page that SQUEEZE_PAGE did not dirty is the one
    exception (``_lsn_never_written``): that page is compared as it was before.
    LP_DEAD hints set in the range would be another (no WAL), but the workload's
    scans run before it, so the snapshot has them."""
    if hash_run.mode != "nofpw-snapshot":
        pytest.skip("only without full-page writes")
    cap = hash_run.cap
    primary, base = DataDirPages(cap.cluster.pgdata), cap.base
    assert base is not None
    compared, quirks, bad = 0, 0, []
    for bp in build_plan(cap.records(), cap.start, cap.end, supersede=False):
        if bp.owner != "Hash" or bp.unverifiable or not bp.needs_base:
            continue
        if any(b.has_image for r in bp.records for b in r.blocks.values() if b.tag == bp.tag):
            continue  # an image zeroes the hole; the primary keeps its stale bytes
        base_page, want = base(bp.tag), primary(bp.tag)
        assert base_page is not None and want is not None, bp.tag
        records = bp.records
        if _lsn_never_written(records[-1], bp.tag):
            records = records[:-1]
            quirks += 1
        got = bytearray(RedoEngine().reconstruct(bp.tag, base_page, records))
        want_b = bytearray(want)
        _clear_dead_hints(got)
        _clear_dead_hints(want_b)
        compared += 1
        if got != want_b:
            bad.append(f"{bp.tag}: {[str(x) for x in explain_diff(bytes(got), bytes(want_b), 'Hash')[:5]]}")
    assert bad == [], "\n".join(bad)
    assert compared >= 15  # the shape tables' bucket, overflow, bitmap and metapages
    assert quirks >= 1  # hashrd_empty's bucket page


def test_nofpw_dead_marks_cleared_by_redo(hash_run: Run) -> None:
    """The pages VACUUM_ONE_PAGE and the clear_dead_marking DELETE rebuild start
    from snapshots that carry LH_PAGE_HAS_DEAD_TUPLES and LP_DEAD items (the
    scans ran before the range), so redo itself must drop them."""
    if hash_run.mode != "nofpw-snapshot":
        pytest.skip("only without full-page writes")
    cap = hash_run.cap
    base = cap.base
    assert base is not None
    targets = []
    for r in hash_run.hash_records:
        t = hashrm.identify(r.info)
        if t == "VACUUM_ONE_PAGE":
            targets.append(r.blocks[0].tag)
        elif t == "DELETE" and r.main_data[0]:
            targets.append(r.blocks[1].tag)
    assert len(targets) == 3
    plan = build_plan(cap.records(), cap.start, cap.end, supersede=False)
    for tag in targets:
        before = bytearray(base(tag) or b"")
        assert HashPageGetOpaque(before).hasho_flag & LH_PAGE_HAS_DEAD_TUPLES, tag
        assert any(PageGetItemId(before, o)[1] == LP_DEAD
                   for o in range(1, PageGetMaxOffsetNumber(before) + 1)), tag
        after = bytearray(RedoEngine().reconstruct(tag, bytes(before), plan.blocks[tag].records))
        assert not HashPageGetOpaque(after).hasho_flag & LH_PAGE_HAS_DEAD_TUPLES, tag
        assert not any(PageGetItemId(after, o)[1] == LP_DEAD
                       for o in range(1, PageGetMaxOffsetNumber(after) + 1)), tag
