"""Btree redo (pyredo.rmgr.btree) on real WAL.

One workload, on one table per purpose, makes PostgreSQL 15 emit every btree
record type:

* ``bt_grow`` — ascending, descending and random keys (SPLIT_R, SPLIT_L,
  NEWROOT, INSERT_UPPER), many duplicates (DEDUP);
* ``bt_mc`` — multi-column text keys whose pivots lose trailing columns
  (suffix truncation), an INCLUDE index, then DELETE + VACUUM;
* ``bt_post`` — a low heap fillfactor, so UPDATEs that change the key put
  the new row version on its old heap page: its TID lands inside the new
  key's posting lists (INSERT_POST), and pages full of posting lists split
  at one (SPLIT_L with postingoff);
* ``bt_vac`` — VACUUM that removes only some TIDs of posting lists
  (VACUUM with updated tuples);
* ``bt_kill`` — index scans mark deleted rows LP_DEAD, inserts into full
  pages then delete them (DELETE, simple deletion);
* ``bt_churn`` — non-HOT updates of another indexed column leave version
  churn in the unchanged index (DELETE, bottom-up deletion, with updated
  posting lists);
* ``bt_meta`` — all but the last leaf emptied and vacuumed (MARK_PAGE_HALFDEAD,
  UNLINK_PAGE, UNLINK_PAGE_META as the last leaf becomes the fast root,
  META_CLEANUP); after more XIDs a second VACUUM hands the deleted pages to
  the FSM, new splits recycle them (REUSE_PAGE) and the fast-root leaf splits
  (INSERT_META);
* ``bt_tall`` — a three-level tree of wide text keys loses most leaves and
  whole subtrees (UNLINK_PAGE of internal pages, which rebuilds the half-dead
  leaf: block 3).

It runs with full_page_writes on, with it off (base pages from a snapshot, so
redo routines rebuild the pages), and with full_page_writes on and
wal_compression set to pglz, then lz4, then zstd (one method between each two
CHECKPOINTs of the workload, so images of each kind follow).
pyredo is compared with the primary under btree_mask and, when the
``oracles/pg_walredo`` server can be built, with PostgreSQL's C redo byte for
byte. Independently of that server, a copy of the cluster taken at the start
of the range is crash-recovered over the range's WAL by PostgreSQL itself, and
every btree page pyredo rebuilds must equal the recovered page byte for byte,
with no mask: stale bytes in free space included.

REUSE_PAGE names no block, so no page plan holds it: its test checks that it
is in the WAL and that its routine leaves a page alone.

Shapes PostgreSQL 15 seldom or never emits in a small workload (a SPLIT_R at a
posting list, a VACUUM leaving one TID of a posting list, UNLINK_PAGE_META of
a leftmost internal page, a WILL_INIT block that also carries an image) are
built as synthetic records at the end of this file and replayed by pyredo and
PostgreSQL's C redo (the wal-redo server), which must agree byte for byte.
"""

from __future__ import annotations

import os
import pwd
import shutil
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import factories
import pytest
from factories import bt_page, bt_pivot, bt_posting, encoded, int4_tuple
from redocases import COMPRESS_BITS, divergences_of, redo_both

from harness.clusters.datadir import DataDirPages
from harness.clusters.local import LocalCluster
from harness.verify.capture import capture, verify
from harness.verify.check import CheckReport, Engine
from oracles.compare import explain_diff
from oracles.pgbin import server_user
from pyredo import BLCKSZ
from pyredo.engine import RedoEngine
from pyredo.page.bufpage import (
    PageGetItemId,
    PageGetMaxOffsetNumber,
)
from pyredo.page.nbtree import (
    BTP_DELETED,
    BTP_HAS_FULLXID,
    BTP_HAS_GARBAGE,
    BTP_INCOMPLETE_SPLIT,
    BTP_LEAF,
    BTP_ROOT,
    P_NONE,
    BTPageGetDeleteXid,
    BTPageGetMeta,
    BTPageGetOpaque,
    BTreeTupleGetTopParent,
)
from pyredo.rmgr import RM_BTREE_ID
from pyredo.rmgr import btree as btrm
from pyredo.rmgrlist import PG15
from pyredo.wal.builder import BlockSpec
from pyredo.wal.record import (
    BKPIMAGE_COMPRESSED_MASK,
    BufferTag,
    DecodedXLogRecord,
    RelFileNode,
)

BTREE_TYPES = tuple(btrm.identify(info) or "" for info in btrm.PAGE_MODIFYING)

# mode -> (full_page_writes, wal_compression before the 1st, 2nd and 3rd CHECKPOINT
# of the workload): the compressed mode writes images with each method in turn
MODES: dict[str, tuple[bool, tuple[str, ...]]] = {
    "fpw": (True, ()),
    "nofpw-snapshot": (False, ()),
    "fpw-compressed": (True, ("pglz", "lz4", "zstd")),
}

TABLES = ("bt_grow", "bt_mc", "bt_post", "bt_vac", "bt_kill", "bt_churn", "bt_meta", "bt_tall")
INDEXES = ("bt_grow_id", "bt_grow_v", "bt_mc_ab_incl", "bt_mc_ba", "bt_post_k", "bt_vac_k",
           "bt_kill_id", "bt_churn_a", "bt_churn_b", "bt_meta_id", "bt_tall_k")

SETUP = (
    f"DROP TABLE IF EXISTS {', '.join(TABLES)}",
    "SELECT setseed(0.25)",
    "CREATE TABLE bt_grow (id int, v text)",
    "CREATE INDEX bt_grow_id ON bt_grow (id)",
    "CREATE INDEX bt_grow_v ON bt_grow (v)",
    "INSERT INTO bt_grow SELECT g, md5(g::text) FROM generate_series(2001, 2600) g",
    "CREATE TABLE bt_mc (a int, b text, c text, d int)",
    "CREATE INDEX bt_mc_ab_incl ON bt_mc (a, b) INCLUDE (c, d)",
    "CREATE INDEX bt_mc_ba ON bt_mc (b, a)",
    "CREATE TABLE bt_post (k int, v int) WITH (fillfactor = 20)",
    "CREATE INDEX bt_post_k ON bt_post (k)",
    "CREATE TABLE bt_churn (id int, a int, b int, pad text)",
    "CREATE INDEX bt_churn_a ON bt_churn (a)",
    "CREATE INDEX bt_churn_b ON bt_churn (b)",
    # bt_grow and these start the range with pages on disk (base pages, or images
    # on first touch)
    "CREATE TABLE bt_vac (k int, pad int)",
    "CREATE INDEX bt_vac_k ON bt_vac (k)",
    "INSERT INTO bt_vac SELECT g % 40, g FROM generate_series(1, 5000) g",
    "CREATE TABLE bt_kill (id int, v int)",
    "CREATE INDEX bt_kill_id ON bt_kill (id)",
    "INSERT INTO bt_kill SELECT g, g FROM generate_series(1, 3000) g",
    "CREATE TABLE bt_meta (id int)",
    "CREATE INDEX bt_meta_id ON bt_meta (id)",
    "INSERT INTO bt_meta SELECT g FROM generate_series(1, 1500) g",
    "CREATE TABLE bt_tall (k text)",
    "CREATE INDEX bt_tall_k ON bt_tall (k)",
    "INSERT INTO bt_tall SELECT repeat(md5(g::text), 8) FROM generate_series(1, 2500) g",
)

WORKLOAD = (
    "SELECT setseed(0.5)",
    # -- growth: splits both ways, new roots, downlinks, deduplication -------------
    "INSERT INTO bt_grow SELECT g, md5(g::text) FROM generate_series(1, 2000) g",
    "INSERT INTO bt_grow SELECT g, md5(g::text) FROM generate_series(8000, 6000, -1) g",
    "INSERT INTO bt_grow SELECT (random() * 9000)::int, 'dup-' || (random() * 20)::int "
    "FROM generate_series(1, 2000)",
    # -- multi-column text keys (suffix truncation), INCLUDE columns -----------------
    "INSERT INTO bt_mc SELECT g % 97, 'key-' || lpad((g % 611)::text, 6, '0') || repeat('q', g % 40), "
    "md5(g::text), g FROM generate_series(1, 3000) g",
    "DELETE FROM bt_mc WHERE d % 5 = 0",
    # -- posting-list splits: moved rows' TIDs land inside posting lists -------------
    "INSERT INTO bt_post SELECT g % 4, g FROM generate_series(1, 8000) g",
    "UPDATE bt_post SET k = (k + 1) % 4 WHERE v % 3 = 0",
    # pages that exist now get full-page images on their next change (fpw on)
    "CHECKPOINT",
    # -- VACUUM of partly dead posting lists ----------------------------------------
    "DELETE FROM bt_vac WHERE pad % 3 = 0",
    "VACUUM bt_vac, bt_mc",
    "INSERT INTO bt_vac SELECT g % 40, g FROM generate_series(1, 1500) g",
    # again, on pages already changed since the CHECKPOINT (no images, fpw on)
    "DELETE FROM bt_vac WHERE pad % 7 = 0",
    "VACUUM bt_vac",
    # -- simple deletion of LP_DEAD items -----------------------------------------------
    "DELETE FROM bt_kill WHERE id % 4 <> 0",
    "SET enable_seqscan = off",
    "SET enable_bitmapscan = off",
    "SELECT count(*) FROM bt_kill WHERE id > 0",
    "RESET enable_seqscan",
    "RESET enable_bitmapscan",
    "INSERT INTO bt_kill SELECT g, g FROM generate_series(1, 3000) g",
    # -- bottom-up deletion: version churn in an unchanged index ------------------------
    "INSERT INTO bt_churn SELECT g, g, g, repeat('z', 100) FROM generate_series(1, 1000) g",
    "UPDATE bt_churn SET b = b + 1",
    "UPDATE bt_churn SET b = b + 1",
    "UPDATE bt_churn SET b = b + 1",
    "UPDATE bt_churn SET b = b + 1",
    "CHECKPOINT",
    # -- page deletion, fast root, cleanup info, recycling --------------------------------
    "DELETE FROM bt_meta WHERE id <= 1490",
    "VACUUM bt_meta",
    "SELECT txid_current()",
    "SELECT txid_current()",
    "SELECT txid_current()",
    "VACUUM bt_meta",
    "INSERT INTO bt_meta SELECT g FROM generate_series(5000, 6000) g",
    # -- deletion of internal pages in a three-level tree --------------------------------
    "DELETE FROM bt_tall WHERE k > '1'",
    "VACUUM bt_tall",
)

# Record shapes (see ``variants``) the workload must produce in every mode.
EXPECTED_VARIANTS = {
    "SPLIT postingoff",
    "VACUUM nupdated",
    "DELETE nupdated",
    "UNLINK_PAGE internal",
    "MARK_PAGE_HALFDEAD topparent",
    "NEWROOT level>0",
}


def variants(rec: DecodedXLogRecord) -> list[str]:
    """The record's redo-relevant shapes, in words."""
    t = btrm.identify(rec.info) or "?"
    d = rec.main_data
    out = [t]
    if t in ("SPLIT_L", "SPLIT_R") and int.from_bytes(d[8:10], "little"):
        out.append("SPLIT postingoff")
    elif t == "VACUUM" and int.from_bytes(d[2:4], "little"):
        out.append("VACUUM nupdated")
    elif t == "DELETE" and int.from_bytes(d[6:8], "little"):
        out.append("DELETE nupdated")
    elif t in ("UNLINK_PAGE", "UNLINK_PAGE_META") and 3 in rec.blocks:
        out.append("UNLINK_PAGE internal")
    elif t == "MARK_PAGE_HALFDEAD" and d[16:20] != b"\xff" * 4:  # a subtree above the leaf
        out.append("MARK_PAGE_HALFDEAD topparent")
    elif t == "NEWROOT" and int.from_bytes(d[4:8], "little"):
        out.append("NEWROOT level>0")
    return out


# -- PostgreSQL's own redo by crash recovery ------------------------------------------------
def _chown_tree(path: Path) -> None:
    user = server_user()
    if user is None:
        return
    pw = pwd.getpwnam(user)
    for root, _dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for f in files:
            os.chown(os.path.join(root, f), pw.pw_uid, pw.pw_gid)


class RecoveredCopy:
    """A copy of the primary's data directory taken right after the range's
    opening CHECKPOINT (so its pages equal the base snapshot), crash-recovered
    by PostgreSQL over the primary's WAL: its pages are what PostgreSQL's C
    redo makes of the base pages and the range's records."""

    def __init__(self, primary: LocalCluster) -> None:
        self.primary = primary
        self.copy = LocalCluster(primary.settings)
        self.first_segment = ""

    def take_base(self) -> None:
        # WAL from the segment of the checkpoint's redo pointer is copied at the end
        self.first_segment = str(self.primary.scalar(
            "SELECT pg_walfile_name(redo_lsn) FROM pg_control_checkpoint()"))

        def ignore(directory: str, names: list[str]) -> set[str]:
            skip = {"postmaster.pid", "postmaster.opts"}
            if Path(directory) == self.primary.waldir:
                skip |= {n for n in names if (Path(directory) / n).is_file()}
            return skip & set(names)

        shutil.copytree(self.primary.pgdata, self.copy.pgdata, symlinks=True, ignore=ignore)

    def recover(self) -> DataDirPages:
        """Copy the WAL over, start (crash recovery replays it all), stop (flush)."""
        waldir = self.copy.pgdata / "pg_wal"
        for f in self.primary.waldir.iterdir():
            if f.is_file() and len(f.name) == 24 and f.name >= self.first_segment:
                shutil.copy2(f, waldir / f.name)
        _chown_tree(self.copy.root)
        self.copy.pgdata.chmod(0o700)
        self.copy.start()
        self.copy.stop()
        return DataDirPages(self.copy.pgdata)

    def destroy(self) -> None:
        self.copy.destroy()


# -- one run per mode ----------------------------------------------------------------------
@dataclass
class Run:
    mode: str
    report: CheckReport
    engines: list[str]
    btree_records: list[DecodedXLogRecord]
    index_rels: dict[str, int]
    selects: list[Any] = field(default_factory=list)
    raw_compared: Counter[str] = field(default_factory=Counter)  # index -> pages
    raw_blocks: set[tuple[int, int]] = field(default_factory=set)  # (lsn, block_id) compared raw
    raw_diffs: list[str] = field(default_factory=list)
    images: Counter[int] = field(default_factory=Counter)  # bimg_info compression bits

    def variants(self) -> Counter[str]:
        return Counter(v for r in self.btree_records for v in variants(r))


def run_steps(steps: tuple[str, ...], compression: tuple[str, ...], selects: list[Any],
              before: Callable[[], None]) -> Callable[[LocalCluster], None]:
    """The workload as a capture callable (one session, so SETs stick); each
    CHECKPOINT step moves on to the next wal_compression method."""

    def run(cluster: LocalCluster) -> None:
        before()
        methods = iter(compression)
        with cluster.connect() as conn:
            for sql in steps:
                if sql == "CHECKPOINT" or sql is steps[0]:
                    method = next(methods, None)
                    if method is not None:
                        conn.execute(f"SET wal_compression = {method}")
                cur = conn.execute(sql)
                if sql.startswith("SELECT count"):
                    selects.append(cur.fetchone())

    return run


class KeepPages:
    """pyredo, keeping each page it rebuilt (with its records) for the raw
    comparison with the recovered copy, so no page is rebuilt twice."""

    name = "pyredo"

    def __init__(self) -> None:
        self.engine = RedoEngine()
        self.pages: dict[BufferTag, tuple[list[DecodedXLogRecord], bytes]] = {}

    def reconstruct(self, tag: BufferTag, base_page: bytes | None,
                    records: Iterable[DecodedXLogRecord]) -> bytes:
        records = list(records)
        page = self.engine.reconstruct(tag, base_page, records)
        kept = self.pages.get(tag)
        if kept is None or len(kept[0]) <= len(records):  # bisection asks for prefixes
            self.pages[tag] = (records, page)
        return page


def compare_with_recovery(kept: KeepPages, recovered: DataDirPages, rels: dict[int, str],
                          run: Run) -> None:
    """Every btree page pyredo rebuilt equals the crash-recovered page, byte for byte."""
    for tag, (records, got) in kept.pages.items():
        if not any(r.rmid == RM_BTREE_ID for r in records):
            continue
        want = recovered(tag)
        if want is None:
            run.raw_diffs.append(f"{tag} missing after recovery")
            continue
        run.raw_compared[rels.get(tag.rel, "?")] += 1
        if got != want:
            diff = [str(x) for x in explain_diff(got, want, "Btree")[:6]]
            run.raw_diffs.append(f"{tag} {PG15.record_type(records[-1])}: {diff}")
            continue
        for rec in records:
            for blk in rec.blocks.values():
                if blk.tag == tag:
                    run.raw_blocks.add((rec.lsn, blk.block_id))


def horizon_held_back(cluster: LocalCluster) -> bool:
    """Does anything hold back the xmin horizon? Killing LP_DEAD items, bottom-up
    deletion and recycling deleted pages (REUSE_PAGE) need dead rows and deleted
    pages to become old enough for everyone."""
    return bool(cluster.scalar(
        "SELECT (SELECT count(*) FROM pg_prepared_xacts)"
        " + (SELECT count(*) FROM pg_replication_slots"
        "    WHERE xmin IS NOT NULL OR catalog_xmin IS NOT NULL)"
        " + (SELECT count(*) FROM pg_stat_activity"
        "    WHERE backend_xmin IS NOT NULL AND pid <> pg_backend_pid())"))


@pytest.fixture(scope="module", params=list(MODES))
def btree_run(request: pytest.FixtureRequest, cluster_factory: Any,
              c_redo: Engine) -> Iterator[Run]:
    fpw, compression = MODES[request.param]
    gucs = {} if fpw else {"full_page_writes": False}
    cluster: LocalCluster = cluster_factory(wal_segsize_mb=1, **gucs)
    if horizon_held_back(cluster):  # by what another test left on the shared cluster
        cluster = cluster_factory(wal_segsize_mb=1, fresh=True, **gucs)
    with cluster.connect() as conn:
        for sql in SETUP:
            conn.execute(sql)
    index_rels = {name: cluster.relfilenode(name)[2] for name in INDEXES}
    recovered = RecoveredCopy(cluster)
    selects: list[Any] = []
    cap = capture(cluster, run_steps(WORKLOAD, compression, selects, recovered.take_base),
                  snapshot=not fpw)
    kept = KeepPages()
    engines: list[Engine] = [kept, c_redo]
    try:
        # every record is redone (supersede=False): each record type's routine runs and is
        # checked, also where a later image or re-initialization of its page erases it
        report = verify(cap, engines, supersede=False)
        btree_records = [r for r in cap.records() if r.rmid == RM_BTREE_ID]
        run = Run(request.param, report, [e.name for e in engines], btree_records, index_rels, selects)
        run.images = Counter(b.bimg_info & BKPIMAGE_COMPRESSED_MASK
                             for r in btree_records for b in r.blocks.values() if b.has_image)
        compare_with_recovery(kept, recovered.recover(), {v: k for k, v in index_rels.items()}, run)
        yield run
    finally:
        cap.cleanup()
        recovered.destroy()
        with cluster.connect() as conn:
            conn.execute(f"DROP TABLE IF EXISTS {', '.join(TABLES)}")


# -- the tests -------------------------------------------------------------------------------
@pytest.mark.parametrize("rtype", BTREE_TYPES)
def test_btree_record_type_verified(btree_run: Run, rtype: str) -> None:
    """Each page-modifying btree record type occurs in the WAL and the pages it touches match."""
    rep = btree_run.report
    assert divergences_of(rep, "Btree") == []
    assert not {t for t in rep.unsupported if t.startswith("Btree/")}, rep.unsupported
    assert rep.record_types[f"Btree/{rtype}"] > 0, dict(rep.record_types)


def test_every_btree_record_verified(btree_run: Run) -> None:
    """No btree record escaped: each one that names a block was checked on at
    least one of its pages, and no btree page lacked a base page."""
    rep = btree_run.report
    in_wal = Counter(PG15.record_type(r) for r in btree_run.btree_records if r.blocks)
    checked = Counter({t: n for t, n in rep.record_types.items() if t.startswith("Btree/")})
    assert checked == in_wal
    assert divergences_of(rep, "Btree") == []


def test_btree_variants_emitted(btree_run: Run) -> None:
    """The workload produced the record shapes it was written for."""
    seen = btree_run.variants()
    assert EXPECTED_VARIANTS - set(seen) == set(), seen
    # the index scan saw the 750 rows of bt_kill left (and marked the rest LP_DEAD)
    assert btree_run.selects == [(750,)]


def test_reuse_page_changes_no_page(btree_run: Run) -> None:
    """REUSE_PAGE (deleted pages recycled) is in the WAL; it names no block, and
    its routine leaves any page alone."""
    reuse = [r for r in btree_run.btree_records if btrm.identify(r.info) == "REUSE_PAGE"]
    assert reuse, btree_run.variants()
    assert "Btree/REUSE_PAGE" not in btree_run.report.unsupported
    tag = BufferTag(1663, 5, btree_run.index_rels["bt_meta_id"], 0, 1)
    page = bytearray(range(256)) * (BLCKSZ // 256)
    before = bytes(page)
    for rec in reuse:
        assert not rec.blocks
        assert "latestRemovedXid" in btrm.desc(rec)
        RedoEngine().apply(tag, page, rec)
    assert bytes(page) == before


def test_equal_to_postgres_recovery(btree_run: Run) -> None:
    """Every btree page pyredo rebuilt equals, byte for byte, the page PostgreSQL's
    crash recovery made of the same base and WAL; each index took part."""
    assert btree_run.raw_diffs == []
    assert set(btree_run.raw_compared) >= set(INDEXES), btree_run.raw_compared
    if btree_run.mode == "nofpw-snapshot":
        # with no images, each record type was replayed by its routine on some page
        by_type = Counter(btrm.identify(r.info) for r in btree_run.btree_records
                          for bid in r.blocks if (r.lsn, bid) in btree_run.raw_blocks)
        assert set(BTREE_TYPES) - set(by_type) == set(), by_type


def test_posting_split_left_pages_byte_exact(btree_run: Run) -> None:
    """The left halves of splits at a posting list (rebuilt with _bt_swap_posting)
    and pages of VACUUM/DELETE with updated posting lists matched raw."""
    shapes = {"SPLIT postingoff": 0, "VACUUM nupdated": 0, "DELETE nupdated": 0}
    for r in btree_run.btree_records:
        if (r.lsn, 0) in btree_run.raw_blocks and not r.blocks[0].apply_image:
            for v in variants(r)[1:]:
                if v in shapes:
                    shapes[v] += 1
    assert all(n > 0 for n in shapes.values()), shapes


def test_wal_compression_used(btree_run: Run) -> None:
    """The compressed mode really wrote btree page images with each method."""
    compression = MODES[btree_run.mode][1]
    if not compression:
        assert set(btree_run.images) <= {0}, btree_run.images
        pytest.skip("no wal_compression in this mode")
    for method in compression:
        assert btree_run.images[COMPRESS_BITS[method]] > 0, (method, btree_run.images)


def test_c_redo_compared(btree_run: Run) -> None:
    """PostgreSQL's C redo (wal-redo server) took part and agreed with pyredo byte for byte."""
    assert "walredo" in btree_run.engines
    assert not [d for d in btree_run.report.divergences if d.kind == "engine_disagreement"]


# -- synthetic records: shapes PostgreSQL 15 seldom emits, against its C redo ---------------
# Each record is built with pyredo.wal.builder, applied by pyredo and (when the
# oracles/pg_walredo server can be built) by PostgreSQL's C redo: the pages must
# be equal byte for byte; pyredo's page is also checked against what the record means.
RNODE = RelFileNode(1663, 5, 424242)
LSN0 = 0x0100_0000  # where each synthetic record starts; base pages are older


def _btpage(items: list[bytes], **kw: Any) -> bytes:
    return bytes(bt_page(items, lsn=LSN0 - 0x100, **kw))


def _record(info: int, main: bytes, blocks: list[BlockSpec]) -> DecodedXLogRecord:
    return encoded(RM_BTREE_ID, info, main, blocks, lsn=LSN0)


def _redo_both(c_redo: Engine, blkno: int, base: bytes | None, rec: DecodedXLogRecord) -> bytearray:
    return redo_both(c_redo, factories.tag(blkno, RNODE), base, rec, "Btree")


def _items(page: bytes | bytearray) -> list[bytes]:
    out = []
    for off in range(1, PageGetMaxOffsetNumber(page) + 1):
        lp_off, _flags, lp_len = PageGetItemId(page, off)
        out.append(bytes(page[lp_off : lp_off + lp_len]))
    return out


def test_synthetic_split_r_with_posting_split(c_redo: Engine) -> None:
    """SPLIT_R whose lastleft is the posting list being split: the left page gets
    the rebuilt posting list, the new item (firstright) goes right only."""
    posting = bt_posting(5, [(1, 2), (2, 2), (3, 2), (4, 2)])
    orig = _btpage([int4_tuple(1, 1, 1), posting, int4_tuple(9, 1, 3)])
    orignewitem = int4_tuple(5, 2, 5)
    finalnewitem = int4_tuple(5, 4, 2)
    rec = _record(btrm.XLOG_BTREE_SPLIT_R, struct.pack("<IHHH", 0, 3, 3, 2), [
        BlockSpec(0, RNODE, 0, 10, data=orignewitem + bt_pivot(5)),
        BlockSpec(1, RNODE, 0, 11, data=int4_tuple(9, 1, 3) + finalnewitem, will_init=True),
    ])
    left = _redo_both(c_redo, 10, orig, rec)
    assert _items(left) == [bt_pivot(5), int4_tuple(1, 1, 1),
                            bt_posting(5, [(1, 2), (2, 2), (2, 5), (3, 2)])]
    op = BTPageGetOpaque(left)
    assert (op.btpo_next, op.btpo_flags) == (11, BTP_LEAF | BTP_INCOMPLETE_SPLIT)
    right = _redo_both(c_redo, 11, None, rec)
    assert _items(right) == [finalnewitem, int4_tuple(9, 1, 3)]
    assert BTPageGetOpaque(right).btpo_prev == 10


def test_synthetic_vacuum_posting_to_plain_and_deletes(c_redo: Engine) -> None:
    """VACUUM updates (one posting list keeps a single TID and becomes a plain
    tuple, another keeps two), then deletes more than two items (compaction)."""
    items = [int4_tuple(k, 1, k) for k in range(1, 8)]
    items[1] = bt_posting(2, [(1, 10), (2, 10), (3, 10)])
    items[4] = bt_posting(5, [(1, 11), (2, 11), (3, 11), (4, 11)])
    orig = _btpage(items, hikey=bt_pivot(100), next_=12, flags=BTP_LEAF | BTP_HAS_GARBAGE)
    updates = struct.pack("<HHH", 2, 0, 2) + struct.pack("<HHH", 2, 1, 3)
    data = struct.pack("<3H", 2, 5, 7) + struct.pack("<2H", 3, 6) + updates
    rec = _record(btrm.XLOG_BTREE_VACUUM, struct.pack("<HH", 3, 2), [BlockSpec(0, RNODE, 0, 10, data=data)])
    page = _redo_both(c_redo, 10, orig, rec)
    assert _items(page) == [bt_pivot(100), int4_tuple(2, 2, 10), int4_tuple(3, 1, 3),
                            bt_posting(5, [(1, 11), (3, 11)]), int4_tuple(7, 1, 7)]
    assert not BTPageGetOpaque(page).btpo_flags & BTP_HAS_GARBAGE


def test_synthetic_dedup_with_posting_and_garbage(c_redo: Engine) -> None:
    """DEDUP of a non-rightmost page: an existing posting list absorbs plain
    duplicates, a lone tuple stays as it is, BTP_HAS_GARBAGE is cleared."""
    items = [bt_posting(3, [(1, 1), (1, 2)]), int4_tuple(3, 2, 1), int4_tuple(3, 2, 2),
             int4_tuple(4, 1, 5), int4_tuple(6, 1, 6), int4_tuple(6, 1, 7)]
    orig = _btpage(items, hikey=bt_pivot(50), next_=13, flags=BTP_LEAF | BTP_HAS_GARBAGE)
    intervals = struct.pack("<HHHH", 2, 3, 6, 2)  # (baseoff, nitems) of each posting list
    rec = _record(btrm.XLOG_BTREE_DEDUP, struct.pack("<H", 2), [BlockSpec(0, RNODE, 0, 10, data=intervals)])
    page = _redo_both(c_redo, 10, orig, rec)
    assert _items(page) == [bt_pivot(50), bt_posting(3, [(1, 1), (1, 2), (2, 1), (2, 2)]),
                            int4_tuple(4, 1, 5), bt_posting(6, [(1, 6), (1, 7)])]
    assert BTPageGetOpaque(page).btpo_flags == BTP_LEAF


def test_synthetic_unlink_leftmost_internal_with_meta(c_redo: Engine) -> None:
    """UNLINK_PAGE_META of a leftmost internal page: no left sibling to fix, the
    half-dead leaf (block 3) links to the next child down, the metapage is rebuilt."""
    main = struct.pack("<III4xQIII", P_NONE, 21, 2, (7 << 32) | 1234, P_NONE, 31, 22)
    meta = struct.pack("<6IB3x", 4, 40, 3, 21, 2, 0, 1)
    rec = _record(btrm.XLOG_BTREE_UNLINK_PAGE_META, main, [
        BlockSpec(0, RNODE, 0, 20, will_init=True),
        BlockSpec(2, RNODE, 0, 21),
        BlockSpec(3, RNODE, 0, 30, will_init=True),
        BlockSpec(4, RNODE, 0, 0, data=meta, will_init=True),
    ])
    target = _redo_both(c_redo, 20, None, rec)
    op = BTPageGetOpaque(target)
    assert op.btpo_flags == BTP_DELETED | BTP_HAS_FULLXID and op.btpo_level == 2
    assert BTPageGetDeleteXid(target) == (7 << 32) | 1234
    right = _redo_both(c_redo, 21, _btpage([bt_pivot(1, 99)], prev=20, level=2, flags=0), rec)
    assert BTPageGetOpaque(right).btpo_prev == P_NONE
    leaf = _redo_both(c_redo, 30, None, rec)
    assert BTreeTupleGetTopParent(_items(leaf)[0]) == 22
    metapage = _redo_both(c_redo, 0, None, rec)
    assert BTPageGetMeta(metapage).btm_fastroot == 21


def test_synthetic_newroot_over_an_applied_image(c_redo: Engine) -> None:
    """A WILL_INIT block that also carries an image to apply: C restores it,
    then rebuilds the page over it all the same."""
    image = _btpage([int4_tuple(1, 1, 1)])
    children = bt_pivot(7, 12) + bt_pivot(0, 11)  # highest offset first: the -inf downlink is item 1
    meta = struct.pack("<6IB3x", 4, 10, 1, 10, 1, 0, 1)
    rec = _record(btrm.XLOG_BTREE_NEWROOT, struct.pack("<II", 10, 1), [
        BlockSpec(0, RNODE, 0, 10, data=children, image=image, will_init=True),
        BlockSpec(1, RNODE, 0, 11),
        BlockSpec(2, RNODE, 0, 0, data=meta, will_init=True),
    ])
    root = _redo_both(c_redo, 10, None, rec)
    assert _items(root) == [bt_pivot(0, 11), bt_pivot(7, 12)]
    assert BTPageGetOpaque(root).btpo_flags == BTP_ROOT
    child = _redo_both(c_redo, 11, _btpage([], next_=12, flags=BTP_LEAF | BTP_INCOMPLETE_SPLIT), rec)
    assert BTPageGetOpaque(child).btpo_flags == BTP_LEAF
