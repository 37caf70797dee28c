"""GiST redo (pyredo.rmgr.gist) on real WAL, witnessed by the primary.

One workload makes PostgreSQL 15 emit every page-changing GiST record type.
The indexes are created on empty tables before the captured range (a sorted
or buffered build logs whole pages as XLOG/FPI), then:

* unsorted inserts into point, box, int4range, circle and inet indexes:
  PAGE_UPDATE (appends, one-for-one downlink overwrites, one downlink
  replaced by two) and PAGE_SPLIT — root splits, 3-page splits, and, in a
  six-column box index deep enough for internal pages to split, splits that
  complete a child's split (block 0 gets its F_FOLLOW_RIGHT cleared);
* microvacuum: delete half of a table's rows, let an index scan mark their
  index tuples LP_DEAD (gistkillitems), then insert onto the same full
  leaves: gistprunepage logs DELETE;
* VACUUM after deleting a region: PAGE_UPDATE removing leaf tuples, then
  PAGE_DELETE for the emptied leaves; one more transaction and a second
  VACUUM make the deleted pages recyclable, so new splits reuse them and
  log PAGE_REUSE first (it names no block and changes no page);
* CREATE INDEX inside the range (a sorted build of points, an insertion
  build of boxes): the pages come as XLOG/FPI, then inserts change them.

It runs with full_page_writes on, with it off (base pages from a snapshot, so
redo routines — not images — rebuild every page), and with wal_compression
pglz / lz4 / zstd. ASSIGN_LSN (gistGetFakeLSN on a WAL-skipped relation)
needs wal_level = minimal and gets its own small cluster.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pytest
from redocases import COMPRESSED_MODES, MODES, compressed_images, divergences_of

from harness.clusters.datadir import DataDirPages
from harness.clusters.local import LocalCluster
from harness.verify.capture import Capture, capture, verify
from harness.verify.check import CheckReport
from harness.verify.plan import Plan, build_plan
from oracles.compare import explain_diff
from pyredo.engine import RedoEngine
from pyredo.page.bufpage import (
    LP_DEAD,
    LP_NORMAL,
    PageGetItemId,
    PageGetMaxOffsetNumber,
    PageSetItemId,
    pd_lower,
)
from pyredo.page.gist import (
    F_TUPLES_DELETED,
    GIST_ROOT_BLKNO,
    GistClearPageHasGarbage,
    GistPageGetDeleteXid,
    GistPageIsDeleted,
    GistPageIsLeaf,
)
from pyredo.rmgr import RM_GIST_ID
from pyredo.rmgr.gist import (
    GISTXLOG_PAGE_DELETE,
    GISTXLOG_PAGE_REUSE,
    GISTXLOG_PAGE_SPLIT,
    PG_VERSION_NUM_TUPLES_DELETED_DEPRECATED,
    XLOG_GIST_PAGE_DELETE,
    XLOG_GIST_PAGE_REUSE,
    XLOG_GIST_PAGE_SPLIT,
)
from pyredo.rmgrlist import PG15
from pyredo.wal.record import (
    BufferTag,
    DecodedXLogRecord,
)

GIST_TYPES = ("PAGE_UPDATE", "DELETE", "PAGE_SPLIT", "PAGE_DELETE")


TABLES = "gr_pts, gr_boxes, gr_rng, gr_misc, gr_wide, gr_prune, gr_vac, gr_built"
# a scattered but deterministic order: (g * prime) % range
POINTS = "point((g * 7919) % 1000, (g * 104729) % 1000)"

SETUP = (
    f"DROP TABLE IF EXISTS {TABLES}",
    "CREATE TABLE gr_pts (id int, p point) WITH (autovacuum_enabled = off)",
    "CREATE INDEX gr_pts_idx ON gr_pts USING gist (p)",
    "CREATE TABLE gr_boxes (id int, b box) WITH (autovacuum_enabled = off)",
    "CREATE INDEX gr_boxes_idx ON gr_boxes USING gist (b)",
    "CREATE TABLE gr_rng (id int, r int4range) WITH (autovacuum_enabled = off)",
    "CREATE INDEX gr_rng_idx ON gr_rng USING gist (r)",
    "CREATE TABLE gr_misc (id int, c circle, ip inet) WITH (autovacuum_enabled = off)",
    "CREATE INDEX gr_misc_c ON gr_misc USING gist (c)",
    "CREATE INDEX gr_misc_ip ON gr_misc USING gist (ip inet_ops)",
    # six boxes a tuple (~200 bytes, ~39 a page): internal pages split too
    "CREATE TABLE gr_wide (id int, a box, b box, c box, d box, e box, f box) "
    "WITH (autovacuum_enabled = off)",
    "CREATE INDEX gr_wide_idx ON gr_wide USING gist (a, b, c, d, e, f)",
    "CREATE TABLE gr_prune (id int, p point) WITH (autovacuum_enabled = off)",
    "CREATE INDEX gr_prune_idx ON gr_prune USING gist (p)",
    f"INSERT INTO gr_prune SELECT g, {POINTS} FROM generate_series(1, 3000) g",
    "CREATE TABLE gr_vac (id int, p point) WITH (autovacuum_enabled = off)",
    "CREATE INDEX gr_vac_idx ON gr_vac USING gist (p)",
    f"INSERT INTO gr_vac SELECT g, {POINTS} FROM generate_series(1, 3000) g",
    "CREATE TABLE gr_built (id int, p point, b box) WITH (autovacuum_enabled = off)",
    f"INSERT INTO gr_built SELECT g, {POINTS}, box({POINTS}, {POINTS}) FROM generate_series(1, 2000) g",
)

SPLITS = (
    f"INSERT INTO gr_pts SELECT g, {POINTS} FROM generate_series(1, 2000) g",
    "INSERT INTO gr_boxes SELECT g, box(point((g * 7919) % 1000, (g * 31) % 1000), "
    "point((g * 7919) % 1000 + 5, (g * 31) % 1000 + 5)) FROM generate_series(1, 1200) g",
    "INSERT INTO gr_rng SELECT g, int4range((g * 7919) % 10000, (g * 7919) % 10000 + g % 50 + 1) "
    "FROM generate_series(1, 1200) g",
    "INSERT INTO gr_misc SELECT g, circle(point((g * 7919) % 1000, (g * 13) % 1000), g % 20 + 1), "
    "('10.' || (g * 7) % 256 || '.' || (g * 13) % 256 || '.' || g % 256)::inet "
    "FROM generate_series(1, 1000) g",
    "INSERT INTO gr_wide SELECT g, b, b, b, b, b, b FROM (SELECT g, box(point((g * 7919) % 1000, "
    "(g * 31) % 1000), point((g * 7919) % 1000 + 3, (g * 31) % 1000 + 3)) b "
    "FROM generate_series(1, 3000) g) s",
)

PRUNE = (
    "DELETE FROM gr_prune WHERE id % 2 = 0",
    # a plain index scan (not bitmap) sets kill_prior_tuple: gistkillitems marks LP_DEAD
    "SET enable_seqscan = off",
    "SET enable_bitmapscan = off",
    "SELECT count(*) FROM (SELECT * FROM gr_prune WHERE p <@ box '((0,0),(1000,1000))') s",
    "RESET enable_seqscan",
    "RESET enable_bitmapscan",
    f"INSERT INTO gr_prune SELECT g, {POINTS} FROM generate_series(3001, 4500) g",
)

VACUUM = (
    "DELETE FROM gr_vac WHERE p <@ box '((0,0),(600,1000))'",
    "VACUUM gr_vac",
    # one more xid, so the deleted pages' deleteXid is older than every snapshot
    "INSERT INTO gr_vac VALUES (0, point(2000, 2000))",
    "VACUUM gr_vac",  # now recyclable: recorded in the FSM
    f"INSERT INTO gr_vac SELECT g, {POINTS} FROM generate_series(5001, 6500) g",
)

BUILD = (
    # builds inside the range: a sorted build (points) and an insertion build
    # (boxes) log their pages as XLOG/FPI; inserts then change those pages
    "CREATE INDEX gr_built_p ON gr_built USING gist (p)",
    "CREATE INDEX gr_built_b ON gr_built USING gist (b)",
    f"INSERT INTO gr_built SELECT g, {POINTS}, box({POINTS}, {POINTS}) FROM generate_series(3001, 3600) g",
)

WORKLOAD = SPLITS + PRUNE + VACUUM + BUILD


@dataclass
class Run:
    mode: str
    cap: Capture
    report: CheckReport
    engine: RedoEngine
    records: list[DecodedXLogRecord]  # the range's Gist records

    def wal_types(self) -> Counter[str]:
        return Counter(PG15.record_type(r) for r in self.records)

    @cached_property
    def plan(self) -> Plan:
        return build_plan(self.cap.records(), self.cap.start, self.cap.end, supersede=False)


def server_version_num(cluster: LocalCluster) -> int:
    return int(cluster.scalar("SHOW server_version_num"))


def run_steps(steps: tuple[str, ...], compression: str | None) -> Callable[[LocalCluster], None]:
    """The workload as a capture callable: one session, wal_compression set in it."""

    def run(cluster: LocalCluster) -> None:
        with cluster.connect() as conn:
            if compression:
                conn.execute(f"SET wal_compression = {compression}")
            for sql in steps:
                conn.execute(sql)

    return run


@pytest.fixture(scope="module", params=list(MODES))
def gist_run(request: pytest.FixtureRequest, cluster_factory: Any) -> Iterator[Run]:
    fpw, compression = MODES[request.param]
    cluster: LocalCluster = (cluster_factory(wal_segsize_mb=1) if fpw
                             else cluster_factory(wal_segsize_mb=1, full_page_writes=False))
    with cluster.connect() as conn:
        for sql in SETUP:
            conn.execute(sql)
    cap = capture(cluster, run_steps(WORKLOAD, compression), snapshot=not fpw)
    engine = RedoEngine(server_version_num=server_version_num(cluster))
    try:
        records = [r for r in cap.records() if r.rmid == RM_GIST_ID]
        # every record is redone (supersede=False): each record type's routine runs and is
        # checked, also where a later image or re-initialization of its page erases it
        yield Run(request.param, cap, verify(cap, [engine], supersede=False), engine, records)
    finally:
        cap.cleanup()
        with cluster.connect() as conn:
            conn.execute(f"DROP TABLE IF EXISTS {TABLES}")


def gist_unsupported(report: CheckReport) -> dict[str, int]:
    return {t: n for t, n in report.unsupported.items() if t.startswith("Gist/")}


@pytest.mark.parametrize("rtype", GIST_TYPES)
def test_gist_record_type_verified(gist_run: Run, rtype: str) -> None:
    """Each page-changing GiST record type occurs in the WAL, and every one of
    them was replayed onto a page that matched the primary."""
    rep = gist_run.report
    assert divergences_of(rep, "Gist") == []
    assert gist_unsupported(rep) == {}
    assert rep.record_types[f"Gist/{rtype}"] > 0, dict(rep.record_types)
    assert rep.record_types[f"Gist/{rtype}"] == gist_run.wal_types()[f"Gist/{rtype}"]


def _split(rec: DecodedXLogRecord) -> tuple[int, int, int, int, int]:
    origrlink, orignsn, origleaf, npage, markfollowright = GISTXLOG_PAGE_SPLIT.unpack_from(rec.main_data)
    return origrlink, orignsn, origleaf, npage, markfollowright


def test_gist_split_shapes(gist_run: Run) -> None:
    """The splits replayed include root splits (of a leaf and of an internal
    root), splits into three pages, follow-right splits, and internal splits
    that complete a child's split (block 0)."""
    splits = [r for r in gist_run.records if r.rmgr_info == XLOG_GIST_PAGE_SPLIT]
    root = [r for r in splits if r.blocks[1].blkno == GIST_ROOT_BLKNO]
    assert any(_split(r)[2] for r in root), "no root split of a leaf root"
    assert any(not _split(r)[2] and 0 in r.blocks for r in root), "no split of an internal root"
    assert any(_split(r)[3] >= 3 for r in splits), "no split into three pages"
    assert any(_split(r)[4] and r.blocks[1].blkno != GIST_ROOT_BLKNO for r in splits)
    assert any(0 in r.blocks and r.blocks[1].blkno != GIST_ROOT_BLKNO for r in splits)
    assert gist_run.report.record_types["Gist/PAGE_SPLIT"] == len(splits)


def test_gist_page_updates_completing_splits(gist_run: Run) -> None:
    """PAGE_UPDATEs that insert a downlink name the left child as block 1
    (its F_FOLLOW_RIGHT cleared, NSN set); one-for-one overwrites also occur."""
    updates = [r for r in gist_run.records if r.rmgr_info == 0]
    assert sum(1 for r in updates if 1 in r.blocks) > 10
    assert any(struct.unpack_from("<HH", r.main_data) == (1, 1) for r in updates)
    assert any(struct.unpack_from("<HH", r.main_data) == (1, 2) for r in updates)


def test_gist_page_reuse(gist_run: Run) -> None:
    """VACUUM's deleted pages were recycled: PAGE_REUSE names a page that a later
    PAGE_SPLIT re-initializes, and replaying it changes nothing."""
    reuse = [r for r in gist_run.records if r.rmgr_info == XLOG_GIST_PAGE_REUSE]
    assert reuse
    split_pages = {blk.tag for r in gist_run.records if r.rmgr_info == XLOG_GIST_PAGE_SPLIT
                   for blk in r.blocks.values() if blk.will_init}
    primary = DataDirPages(gist_run.cap.cluster.pgdata)
    for rec in reuse:
        assert not rec.blocks
        spc, db, rel, blkno, _xid = GISTXLOG_PAGE_REUSE.unpack_from(rec.main_data)
        tag = BufferTag(spc, db, rel, 0, blkno)
        assert tag in split_pages
        page = primary(tag)
        assert page is not None
        assert gist_run.engine.reconstruct(tag, page, [rec]) == page


def test_gist_deleted_pages(gist_run: Run) -> None:
    """Each leaf PAGE_DELETE removed is rebuilt, up to that record, as an
    empty deleted leaf carrying the record's deleteXid."""
    plan = gist_run.plan
    base = gist_run.cap.base
    deletes = [r for r in gist_run.records if r.rmgr_info == XLOG_GIST_PAGE_DELETE]
    assert len(deletes) >= 3
    for rec in deletes:
        bp = plan.blocks[rec.blocks[0].tag]
        upto = bp.records[: bp.records.index(rec) + 1]
        base_page = base(bp.tag) if bp.needs_base and base is not None else None
        page = gist_run.engine.reconstruct(bp.tag, base_page, upto)
        delete_xid, _downlink = GISTXLOG_PAGE_DELETE.unpack_from(rec.main_data)
        assert GistPageIsDeleted(page) and GistPageIsLeaf(page)
        assert GistPageGetDeleteXid(page) == delete_xid
        assert pd_lower(page) == 32  # the header, then the deleteXid


def test_gist_pages_from_build_images(gist_run: Run) -> None:
    """Index builds inside the range log their pages as XLOG/FPI; GiST records
    then change pages that redo first restored from those images."""
    rebuilt = [bp for bp in gist_run.plan if bp.owner == "Gist" and PG15.record_type(bp.records[0]) == "XLOG/FPI"
               and len(bp.records) > 1]
    assert len(rebuilt) >= 2
    assert divergences_of(gist_run.report, "Gist") == []


def _fix_unlogged(page: bytearray) -> None:
    """Undo what the primary changes without WAL: LP_DEAD from gistkillitems
    and F_HAS_GARBAGE."""
    GistClearPageHasGarbage(page)
    for off in range(1, PageGetMaxOffsetNumber(page) + 1):
        lp_off, flags, length = PageGetItemId(page, off)
        if flags == LP_DEAD:
            PageSetItemId(page, off, lp_off, LP_NORMAL, length)


@pytest.mark.parametrize("gist_run", ["nofpw-snapshot"], indirect=True)
def test_gist_pages_byte_exact_without_fpw(gist_run: Run) -> None:
    """Without full-page writes the primary's GiST pages are a byte-exact witness
    (NSN, LSN, flags, stale bytes in free space) but for LP_DEAD and
    F_HAS_GARBAGE. The microvacuum table is left out: its LP_DEAD line
    pointers sink into free space when tuples are deleted, where only
    gist_mask's mask_unused_space hides them."""
    cap = gist_run.cap
    prune_rel = int(cap.cluster.scalar("SELECT pg_relation_filenode('gr_prune_idx')"))
    primary, base = DataDirPages(cap.cluster.pgdata), cap.base
    assert base is not None
    compared, bad = 0, []
    for bp in gist_run.plan:
        if bp.owner != "Gist" or bp.tag.rel == prune_rel:
            continue
        want = primary(bp.tag)
        assert want is not None
        got = bytearray(gist_run.engine.reconstruct(bp.tag, base(bp.tag) if bp.needs_base else None,
                                                    bp.records))
        want_b = bytearray(want)
        _fix_unlogged(got)
        _fix_unlogged(want_b)
        compared += 1
        if got != want_b:
            bad.append(f"{bp.tag}: {[str(d) for d in explain_diff(bytes(got), bytes(want_b), 'Gist')[:5]]}")
    assert bad == []
    assert compared >= 100


@pytest.mark.parametrize("gist_run", ["nofpw-snapshot"], indirect=True)
def test_gist_tuples_deleted_flag_follows_server_version(gist_run: Run) -> None:
    """Redo of DELETE and of VACUUM's leaf deletions set F_TUPLES_DELETED up to
    PostgreSQL 15.19 and not from 15.20. Replayed as the other minor release
    would, exactly the pages those records touch differ from this primary,
    and only in that flag."""
    ours = server_version_num(gist_run.cap.cluster)
    other = (RedoEngine(server_version_num=PG_VERSION_NUM_TUPLES_DELETED_DEPRECATED - 1)
             if ours >= PG_VERSION_NUM_TUPLES_DELETED_DEPRECATED else RedoEngine())
    rep = verify(gist_run.cap, [other], supersede=False)
    diverged = [d for d in rep.divergences if d.owner == "Gist"]
    assert diverged
    for d in diverged:
        assert d.kind == "engine_vs_primary"
        assert all("special.flags" in line for line in d.diff), d.diff
        got, want = d.pages[other.name], d.pages["primary"]
        flags_at = len(got) - 4
        assert got[flags_at] ^ want[flags_at] == F_TUPLES_DELETED


@pytest.mark.parametrize("gist_run", COMPRESSED_MODES, indirect=True)
def test_gist_images_compressed(gist_run: Run) -> None:
    """wal_compression really compressed the GiST block images replayed."""
    compression = MODES[gist_run.mode][1]
    assert compression is not None
    assert compressed_images(gist_run.records, compression) > 0


def test_gist_assign_lsn(cluster_factory: Any) -> None:
    """ASSIGN_LSN: with wal_level = minimal, a GiST index created in the same
    transaction as its table skips WAL, and gistGetFakeLSN logs ASSIGN_LSN
    to get distinct LSNs. It names no block; replaying it changes no page."""
    cluster: LocalCluster = cluster_factory(wal_segsize_mb=1, wal_level="minimal", max_wal_senders=0)

    def steps(c: LocalCluster) -> None:
        with c.connect(autocommit=False) as conn:
            conn.execute("DROP TABLE IF EXISTS gr_min")
            conn.execute("CREATE TABLE gr_min (p point)")
            conn.execute("CREATE INDEX gr_min_idx ON gr_min USING gist (p)")
            conn.execute("INSERT INTO gr_min SELECT point(g % 97, g % 89) FROM generate_series(1, 1000) g")
            conn.commit()

    with capture(cluster, steps) as cap:
        records = list(cap.records())
        assign = [r for r in records if PG15.record_type(r) == "Gist/ASSIGN_LSN"]
        assert assign and all(not r.blocks for r in assign)
        report = verify(cap, [RedoEngine(server_version_num=server_version_num(cluster))])
        assert divergences_of(report, "Gist") == []
        assert gist_unsupported(report) == {}
        rel = int(cluster.scalar("SELECT pg_relation_filenode('gr_min_idx')"))
        spc_db = next(blk.rnode for r in records for blk in r.blocks.values() if blk.rnode.rel == rel)
        tag = BufferTag(*spc_db, 0, 0)
        page = DataDirPages(cluster.pgdata)(tag)
        assert page is not None
        assert RedoEngine().reconstruct(tag, page, assign) == page
