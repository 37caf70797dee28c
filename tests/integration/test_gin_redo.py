"""GIN redo (pyredo.rmgr.gin) on real WAL, witnessed by the primary.

Two workloads make PostgreSQL 15 emit every GIN record type:

* direct inserts (fastupdate off): 15 000 rows share the key 1 of an int[]
  column, so its posting list outgrows the entry tuple (CREATE_PTREE), then
  fills a posting-tree leaf that splits as a root and once more (SPLIT of
  data pages, INSERT of a PostingItem into the new internal page); ~800-byte
  distinct text keys (btree_gin) make the entry tree three levels deep
  (SPLIT of entry leaves and internal pages, INSERT into entry internal
  pages). DELETE + VACUUM then shrinks posting-tree leaves
  (VACUUM_DATA_LEAF_PAGE), unlinks the emptied middle leaf (DELETE_PAGE),
  rewrites entry leaves (VACUUM_PAGE) and stores statistics (UPDATE_META_PAGE);
* the fast-update pending list (fastupdate on) over int[], jsonb (jsonb_ops
  and jsonb_path_ops), tsvector, NULL and empty items: rows appended to the
  tail page or linked as a new sublist (UPDATE_META_PAGE, INSERT_LISTPAGE),
  one row whose entries fill several list pages, then gin_clean_pending_list
  and VACUUM flush the list (DELETE_LISTPAGE) into the entry tree and, 400
  TIDs at once, into a posting tree built before the capture (REPLACE and
  INSERT segment actions). A multi-column (int, text gin_trgm_ops) index
  takes direct inserts alongside.

Both run in one capture per mode: full_page_writes on, off (base pages from a
snapshot, so redo routines rebuild the pages), and on with wal_compression
pglz / lz4 / zstd. Every page is rebuilt by pyredo and, when the
oracles/pg_walredo server can be built, by PostgreSQL's C redo: the two must
agree byte for byte, and both must match the primary under gin_mask. With
full_page_writes off, pages that no image touched must also equal the
primary's byte for byte, stale bytes included. With wal_consistency_checking
= gin, pyredo's page after every record must match the image the record
carries. Synthetic records cover shapes PostgreSQL 15 seldom or never emits
(pre-9.4 uncompressed leaves, segment actions past the end, Invalid offsets).

Not emitted here: a SPLIT of a posting-tree *internal* page (it takes more
than ~800 leaves, millions of TIDs for one key); its redo is the entry
internal split's (images plus clearing the child's GIN_INCOMPLETE_SPLIT).
"""

from __future__ import annotations

import re
import struct
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import factories
import pytest
from factories import encoded
from redocases import COMPRESSED_MODES, MODES, compressed_images, divergences_of, redo_both

from harness.clusters.datadir import DataDirPages
from harness.clusters.local import LocalCluster
from harness.verify.capture import Capture, capture, verify
from harness.verify.check import CheckReport, Engine
from harness.verify.plan import build_plan
from oracles.compare import explain_diff
from oracles.masks.gin import gin_mask
from pyredo import BLCKSZ
from pyredo.engine import RedoEngine
from pyredo.page.bufpage import (
    InvalidOffsetNumber,
    PageAddItem,
    PageGetItem,
    PageGetMaxOffsetNumber,
    PageSetLSN,
    pd_lower,
    pd_upper,
)
from pyredo.page.gin import (
    GIN_COMPRESSED,
    GIN_DATA,
    GIN_DATA_OFF,
    GIN_DELETED,
    GIN_INCOMPLETE_SPLIT,
    GIN_LEAF,
    GIN_LIST,
    GIN_LIST_FULLROW,
    GIN_META,
    GinDataPageAddPostingItem,
    GinDataPageSetDataSize,
    GinInitPage,
    GinPageGetFlags,
    GinPageGetMaxoff,
    GinPageGetRightlink,
    GinPageSetMaxoff,
    GinPageSetRightlink,
    InvalidBlockNumber,
    ginCompressPostingList,
    pack_itemptr,
)
from pyredo.rmgr import RM_GIN_ID
from pyredo.rmgr.gin import (
    GIN_INSERT_ISDATA,
    GIN_INSERT_ISLEAF,
    GIN_SEGMENT_ADDITEMS,
    GIN_SEGMENT_DELETE,
    GIN_SEGMENT_INSERT,
    GIN_SEGMENT_REPLACE,
    GIN_SPLIT_ROOT,
    GINXLOG_INSERT_LISTPAGE,
    GINXLOG_SPLIT,
    GINXLOG_UPDATE_META,
    XLOG_GIN_CREATE_PTREE,
    XLOG_GIN_DELETE_LISTPAGE,
    XLOG_GIN_DELETE_PAGE,
    XLOG_GIN_INSERT,
    XLOG_GIN_INSERT_LISTPAGE,
    XLOG_GIN_SPLIT,
    XLOG_GIN_UPDATE_META_PAGE,
    XLOG_GIN_VACUUM_DATA_LEAF_PAGE,
    desc,
)
from pyredo.rmgrlist import PG15
from pyredo.wal.builder import BlockSpec
from pyredo.wal.image import restore_block_image
from pyredo.wal.lsn import format_lsn, parse_lsn
from pyredo.wal.record import (
    DecodedXLogRecord,
    RelFileNode,
)

pytestmark = pytest.mark.integration

GIN_TYPES = (
    "CREATE_PTREE",
    "INSERT",
    "SPLIT",
    "VACUUM_PAGE",
    "DELETE_PAGE",
    "UPDATE_META_PAGE",
    "INSERT_LISTPAGE",
    "DELETE_LISTPAGE",
    "VACUUM_DATA_LEAF_PAGE",
)

TABLES = "ginrd_direct, ginrd_text, ginrd_fast"

SETUP = (
    f"DROP TABLE IF EXISTS {TABLES}",
    "CREATE EXTENSION IF NOT EXISTS btree_gin",
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE TABLE ginrd_direct (id int, a int[]) WITH (autovacuum_enabled = off)",
    "CREATE INDEX ginrd_direct_idx ON ginrd_direct USING gin (a) WITH (fastupdate = off)",
    "CREATE TABLE ginrd_text (id int, s text) WITH (autovacuum_enabled = off)",
    "CREATE INDEX ginrd_text_idx ON ginrd_text USING gin (s) WITH (fastupdate = off)",
    "CREATE TABLE ginrd_fast (id int, a int[], j jsonb, doc tsvector, s text) "
    "WITH (autovacuum_enabled = off)",
    # key 0 gets a posting tree at CREATE INDEX; the pending-list flush adds to it
    "INSERT INTO ginrd_fast (id, a) SELECT g, ARRAY[0] FROM generate_series(1, 3000) g",
    "CREATE INDEX ginrd_fast_a ON ginrd_fast USING gin (a) "
    "WITH (fastupdate = on, gin_pending_list_limit = 64)",
    "CREATE INDEX ginrd_fast_j ON ginrd_fast USING gin (j)",
    "CREATE INDEX ginrd_fast_jp ON ginrd_fast USING gin (j jsonb_path_ops)",
    "CREATE INDEX ginrd_fast_doc ON ginrd_fast USING gin (doc)",
    "CREATE INDEX ginrd_fast_multi ON ginrd_fast USING gin (id, s gin_trgm_ops) "
    "WITH (fastupdate = off)",
)

DIRECT = (
    # key 1 on every row: CREATE_PTREE, then posting-tree leaf inserts and splits
    "INSERT INTO ginrd_direct SELECT g, CASE WHEN g % 8 = 0 THEN ARRAY[1, g % 40 + 2] "
    "ELSE ARRAY[1] END FROM generate_series(1, 15000) g",
    # ~800 bytes of incompressible, distinct keys: a three-level entry tree
    "INSERT INTO ginrd_text SELECT g, (SELECT string_agg(md5((g * 100 + i)::text), '') "
    "FROM generate_series(1, 25) i) FROM generate_series(1, 400) g",
    # the middle posting-tree leaf empties (DELETE_PAGE), the others shrink
    "DELETE FROM ginrd_direct WHERE id BETWEEN 3000 AND 12000 OR id % 5 = 0",
    "VACUUM ginrd_direct",
    "DELETE FROM ginrd_text WHERE id % 3 = 0",
    "VACUUM ginrd_text",
)

PENDING = (
    "INSERT INTO ginrd_fast SELECT g, ARRAY[0, g % 10, g], "
    "jsonb_build_object('k', g % 5, 'v', g, 'tags', jsonb_build_array('x', g % 3)), "
    "to_tsvector('simple', 'word' || (g % 20) || ' text ' || g), md5(g::text) "
    "FROM generate_series(1, 400) g",
    # GIN_CAT_NULL_ITEM / GIN_CAT_EMPTY_ITEM placeholders, NULL keys in the multi-column index
    "INSERT INTO ginrd_fast VALUES (0, NULL, NULL, NULL, NULL), (-1, '{}', '{}', '', '')",
    # one row whose entries fill several pending-list pages: a multi-page sublist
    "INSERT INTO ginrd_fast (id, a) SELECT 100000, ARRAY(SELECT generate_series(1000, 2200))",
    "SELECT gin_clean_pending_list('ginrd_fast_a')",
    "SELECT gin_clean_pending_list('ginrd_fast_j')",
    "INSERT INTO ginrd_fast SELECT g, ARRAY[g % 10], NULL, "
    "to_tsvector('simple', 'again ' || g), NULL FROM generate_series(1, 60) g",
    "DELETE FROM ginrd_fast WHERE id % 3 = 0 AND id > 0",
    "VACUUM ginrd_fast",
)

WORKLOAD = DIRECT + PENDING


@dataclass
class Run:
    mode: str
    cap: Capture
    report: CheckReport
    wal_types: Counter[str]  # Gin record types in the captured range


def _steps(steps: tuple[str, ...], compression: str | None) -> Any:
    def run(cluster: LocalCluster) -> None:
        with cluster.connect() as conn:
            if compression:
                conn.execute(f"SET wal_compression = {compression}")
            for sql in steps:
                conn.execute(sql)

    return run


def _gin_records(cap: Capture) -> Iterator[DecodedXLogRecord]:
    return (rec for rec in cap.records() if rec.rmid == RM_GIN_ID)


@pytest.fixture(scope="module", params=list(MODES))
def gin_run(request: pytest.FixtureRequest, cluster_factory: Any,
            c_redo: Engine) -> Iterator[Run]:
    fpw, compression = MODES[request.param]
    cluster: LocalCluster = (cluster_factory(wal_segsize_mb=1) if fpw
                             else cluster_factory(wal_segsize_mb=1, full_page_writes=False))
    with cluster.connect() as conn:
        for sql in SETUP:
            conn.execute(sql)
    cap = capture(cluster, _steps(WORKLOAD, compression), snapshot=not fpw)
    try:
        engines: list[Engine] = [RedoEngine(), c_redo]
        # every record is redone (supersede=False): each record type's routine runs and is
        # checked, also where a later image or re-initialization of its page erases it
        report = verify(cap, engines, supersede=False)
        wal_types = Counter(PG15.record_type(rec) for rec in _gin_records(cap))
        yield Run(request.param, cap, report, wal_types)
    finally:
        cap.cleanup()
        with cluster.connect() as conn:
            conn.execute(f"DROP TABLE IF EXISTS {TABLES}")


def test_gin_run_clean(gin_run: Run) -> None:
    """No divergence, no unsupported Gin record, and every Gin record of the
    range verified (each of its pages rebuilt and witnessed)."""
    rep = gin_run.report
    assert gin_run.cap.errors == []
    assert divergences_of(rep, "Gin") == []
    assert not {t for t in rep.unsupported if t.startswith("Gin/")}, rep.unsupported
    verified = {t: n for t, n in rep.record_types.items() if t.startswith("Gin/")}
    assert verified == dict(gin_run.wal_types)


def test_c_redo_compared(gin_run: Run) -> None:
    """PostgreSQL's C redo (wal-redo server) took part and agreed with pyredo byte for byte."""
    assert "walredo" in gin_run.report.engines
    assert not [d for d in gin_run.report.divergences if d.kind == "engine_disagreement"]
    assert gin_run.report.pages_checked > 100


@pytest.mark.parametrize("rtype", GIN_TYPES)
def test_gin_record_type_verified(gin_run: Run, rtype: str) -> None:
    """Each GIN record type occurs in the WAL and is verified against the primary."""
    rep = gin_run.report
    assert divergences_of(rep, "Gin") == []
    assert not {t for t in rep.unsupported if t.startswith("Gin/")}, rep.unsupported
    assert rep.record_types[f"Gin/{rtype}"] > 0, dict(rep.record_types)


def _variant(rec: DecodedXLogRecord) -> list[str]:
    """The flavours of a Gin record that take different redo paths."""
    info = rec.info & 0xF0
    blk0 = rec.block(0)
    if info == XLOG_GIN_INSERT:
        flags = struct.unpack_from("<H", rec.main_data)[0]
        kind = ("data" if flags & GIN_INSERT_ISDATA else "entry") + (
            " leaf" if flags & GIN_INSERT_ISLEAF else " internal")
        out = [f"INSERT {kind}"]
        if blk0 is not None and not blk0.has_image:
            d = desc(rec)
            out += [f"INSERT {kind} {a}" for a in ("isdelete: T", "isdelete: F") if a in d]
            out += [f"INSERT segment {a}" for a in ("add", "insert", "replace", "delete")
                    if f"({a}" in d]
        return out
    if info == XLOG_GIN_SPLIT:
        flags = GINXLOG_SPLIT.unpack_from(rec.main_data)[6]
        return [f"SPLIT {'root ' if flags & GIN_SPLIT_ROOT else ''}"
                f"{'data' if flags & GIN_INSERT_ISDATA else 'entry'} "
                f"{'leaf' if flags & GIN_INSERT_ISLEAF else 'internal'}"]
    if info == XLOG_GIN_UPDATE_META_PAGE:
        _meta, prev_tail, _rl, ntuples = GINXLOG_UPDATE_META.unpack_from(rec.main_data)
        if ntuples > 0:
            return ["UPDATE_META_PAGE append to tail"]
        return ["UPDATE_META_PAGE link sublist" if prev_tail != 0xFFFFFFFF
                else "UPDATE_META_PAGE metapage only"]
    if info == XLOG_GIN_INSERT_LISTPAGE:
        rightlink = GINXLOG_INSERT_LISTPAGE.unpack_from(rec.main_data)[0]
        return ["INSERT_LISTPAGE tail" if rightlink == 0xFFFFFFFF else "INSERT_LISTPAGE inner"]
    if info == XLOG_GIN_VACUUM_DATA_LEAF_PAGE and blk0 is not None and not blk0.has_image:
        d = desc(rec)
        return [f"VACUUM_DATA_LEAF_PAGE segment {a}" for a in ("replace", "delete") if f"({a}" in d]
    return []


EXPECTED_VARIANTS = (
    "INSERT entry leaf isdelete: T",  # a posting list grows: the tuple is replaced
    "INSERT entry leaf isdelete: F",  # a new key
    "INSERT entry internal",  # downlink after an entry split
    "INSERT data leaf",
    "INSERT data internal",  # PostingItem after a posting-tree leaf split
    "INSERT segment add",  # GIN_SEGMENT_ADDITEMS
    "INSERT segment insert",
    "INSERT segment replace",
    "SPLIT entry leaf",
    "SPLIT root entry leaf",
    "SPLIT entry internal",
    "SPLIT root entry internal",
    "SPLIT data leaf",
    "SPLIT root data leaf",
    "UPDATE_META_PAGE append to tail",
    "UPDATE_META_PAGE link sublist",
    "UPDATE_META_PAGE metapage only",
    "INSERT_LISTPAGE tail",
    "INSERT_LISTPAGE inner",
    "VACUUM_DATA_LEAF_PAGE segment replace",
    "VACUUM_DATA_LEAF_PAGE segment delete",
)


@pytest.mark.parametrize("gin_run", ["nofpw-snapshot"], indirect=True)
def test_gin_redo_paths_covered(gin_run: Run) -> None:
    """Without full-page writes the records carry their data, so every redo
    path runs: each flavour of record occurs (and test_gin_run_clean shows
    every Gin record of the range was verified)."""
    seen: Counter[str] = Counter()
    for rec in _gin_records(gin_run.cap):
        seen.update(_variant(rec))
    missing = [v for v in EXPECTED_VARIANTS if not seen[v]]
    assert missing == [], dict(seen)


@pytest.mark.parametrize("gin_run", ["nofpw-snapshot"], indirect=True)
def test_gin_pages_byte_exact_without_fpw(gin_run: Run) -> None:
    """Without full-page writes the primary's GIN pages are a byte-exact
    witness for pages no image touched (forced images of SPLIT and VACUUM_PAGE
    zero the hole): stale bytes that memmove / ginRedoRecompress leave in
    free space must match too. Pending-list pages deleted by DELETE_LISTPAGE
    are re-initialized empty by redo while the primary keeps their tuples, so
    those are compared under gin_mask (as C's consistency check does)."""
    cap = gin_run.cap
    primary, base = DataDirPages(cap.cluster.pgdata), cap.base
    compared, bad = 0, []
    for bp in build_plan(cap.records(), cap.start, cap.end, supersede=False):
        if bp.owner != "Gin" or bp.unverifiable:
            continue
        if any(blk.tag == bp.tag and blk.has_image for rec in bp.records
               for blk in rec.blocks.values()):
            continue
        base_page = base(bp.tag) if bp.needs_base and base is not None else None
        want = primary(bp.tag)
        assert want is not None
        got = bytearray(RedoEngine().reconstruct(bp.tag, base_page, bp.records))
        want_b = bytearray(want)
        if GinPageGetFlags(want_b) == GIN_DELETED:
            gin_mask(got, bp.tag.blk)
            gin_mask(want_b, bp.tag.blk)
        else:  # the LSN and checksum only
            got[0:10] = want_b[0:10]
        compared += 1
        if got != want_b:
            diff = explain_diff(bytes(got), bytes(want_b), "Gin")[:5]
            bad.append(f"{bp.tag}: " + "; ".join(map(str, diff)))
    assert bad == []
    assert compared >= 25


@pytest.mark.parametrize("gin_run", COMPRESSED_MODES, indirect=True)
def test_gin_images_compressed(gin_run: Run) -> None:
    """wal_compression really compressed the GIN block images replayed."""
    compression = MODES[gin_run.mode][1]
    assert compression is not None
    assert compressed_images(_gin_records(gin_run.cap), compression) > 0


DESC = re.compile(r"lsn: (\S+), prev \S+, desc: (\S+) ?(.*?)(?:, blkref #.*)?$")


@pytest.mark.parametrize("gin_run", ["fpw", "nofpw-snapshot"], indirect=True)
def test_gin_desc_matches_pg_waldump(gin_run: Run, pg_waldump: str) -> None:
    """identify and desc print what gin_identify and gin_desc print."""
    cap = gin_run.cap
    res = subprocess.run([pg_waldump, "-p", str(cap.cluster.waldir), "-r", "Gin",
                          "-s", format_lsn(cap.start), "-e", format_lsn(cap.end)],
                         capture_output=True, text=True, check=True)
    theirs: dict[int, tuple[str, str]] = {}
    for line in res.stdout.splitlines():
        m = DESC.search(line)
        if m:
            theirs[parse_lsn(m.group(1))] = (m.group(2), m.group(3).strip())
    ours = {rec.lsn: (PG15.record_type(rec).split("/", 1)[1], desc(rec).strip())
            for rec in _gin_records(cap)}
    assert len(ours) > 1000
    assert ours == theirs


# a smaller workload: with wal_consistency_checking every record carries an image
CONSISTENCY = (
    "INSERT INTO ginrd_direct SELECT g, CASE WHEN g % 8 = 0 THEN ARRAY[1, g % 40 + 2] "
    "ELSE ARRAY[1] END FROM generate_series(1, 3000) g",
    "INSERT INTO ginrd_text SELECT g, (SELECT string_agg(md5((g * 100 + i)::text), '') "
    "FROM generate_series(1, 25) i) FROM generate_series(1, 150) g",
    "DELETE FROM ginrd_direct WHERE id % 5 = 0",
    "VACUUM ginrd_direct",
    "DELETE FROM ginrd_text WHERE id % 3 = 0",
    "VACUUM ginrd_text",
    *PENDING,
)


def test_gin_matches_consistency_images(cluster_factory: Any) -> None:
    """wal_consistency_checking = gin makes every Gin record carry an image of
    each page it changed, as the primary left it. Starting from snapshot base
    pages (full_page_writes off), pyredo's page after each record must equal
    that image under gin_mask: PostgreSQL's own checkConsistency, per record."""
    cluster: LocalCluster = cluster_factory(wal_segsize_mb=1, full_page_writes=False)
    with cluster.connect() as conn:
        for sql in SETUP:
            conn.execute(sql)

    def run(c: LocalCluster) -> None:
        with c.connect() as conn:
            conn.execute("SET wal_consistency_checking = 'gin'")
            conn.execute("SET wal_compression = lz4")  # keeps the range small
            for sql in CONSISTENCY:
                conn.execute(sql)

    cap = capture(cluster, run, snapshot=True)
    try:
        checked, types, bad = _check_consistency_images(cap)
    finally:
        cap.cleanup()
        with cluster.connect() as conn:
            conn.execute(f"DROP TABLE IF EXISTS {TABLES}")
    assert bad == []
    assert checked > 1000
    # VACUUM_PAGE carries only its (applied) image; DELETE_PAGE needs the big workload
    assert set(types) == {f"Gin/{t}" for t in GIN_TYPES} - {"Gin/VACUUM_PAGE",
                                                            "Gin/DELETE_PAGE"}, types


def _check_consistency_images(cap: Capture) -> tuple[int, Counter[str], list[str]]:
    checked, types, bad = 0, Counter[str](), []
    engine = RedoEngine()
    for bp in build_plan(cap.records(), cap.start, cap.end, supersede=False):
        if bp.owner != "Gin" or bp.unverifiable:
            continue
        page = bytearray(BLCKSZ)
        if bp.needs_base:
            base = cap.base(bp.tag) if cap.base is not None else None
            assert base is not None, bp.tag
            page[:] = base
        for rec in bp.records:
            engine.apply(bp.tag, page, rec)
            blk = next(b for b in rec.blocks.values() if b.tag == bp.tag)
            if rec.rmid != RM_GIN_ID or not blk.has_image or blk.apply_image:
                continue
            want = bytearray(restore_block_image(blk, rec.lsn))
            got = bytearray(page)
            gin_mask(want, bp.tag.blk)
            gin_mask(got, bp.tag.blk)
            checked += 1
            types[PG15.record_type(rec)] += 1
            if got != want:
                diff = explain_diff(bytes(got), bytes(want), "Gin")[:5]
                bad.append(f"{bp.tag} after {format_lsn(rec.lsn)} {PG15.record_type(rec)}: "
                           + "; ".join(map(str, diff)))
    return checked, types, bad


# -- synthetic records: shapes PostgreSQL 15 seldom emits, against its C redo ---------------
# Each record is built with pyredo.wal.builder and applied by pyredo and (when the
# oracles/pg_walredo server can be built) by PostgreSQL's C redo: the pages must be
# equal byte for byte; pyredo's page is also checked against what the record means.
RNODE = RelFileNode(1663, 5, 434343)
LSN0 = 0x0100_0000  # where each synthetic record starts; base pages are older
META = struct.pack("<IIIIqIII4xqi4x", 7, 9, 100, 3, 40, 11, 5, 4, 1234, 2)


def _synthetic(info: int, main: bytes, blocks: list[BlockSpec]) -> DecodedXLogRecord:
    return encoded(RM_GIN_ID, info, main, blocks, lsn=LSN0)


def _redo_both(c_redo: Engine, blkno: int, base: bytes | None, rec: DecodedXLogRecord) -> bytearray:
    return redo_both(c_redo, factories.tag(blkno, RNODE), base, rec, "Gin")


def _gin_page(flags: int, *, rightlink: int = InvalidBlockNumber) -> bytearray:
    """An empty GIN page whose free space holds a stale 0xAB pattern."""
    page = bytearray(BLCKSZ)
    GinInitPage(page, flags)
    GinPageSetRightlink(page, rightlink)
    page[24 : pd_upper(page)] = b"\xab" * (pd_upper(page) - 24)
    PageSetLSN(page, LSN0 - 0x100)
    return page


def _leaf(segments: list[bytes]) -> bytes:
    page = _gin_page(GIN_DATA | GIN_LEAF | GIN_COMPRESSED)
    page[24:32] = bytes(8)  # right bound
    data = b"".join(segments)
    page[GIN_DATA_OFF : GIN_DATA_OFF + len(data)] = data
    GinDataPageSetDataSize(page, len(data))
    return bytes(page)


def _seg(items: list[tuple[int, int]]) -> bytes:
    return ginCompressPostingList(items)[0]


def _leaf_after(old: bytes, segments: list[bytes]) -> bytes:
    """``old`` with ``segments`` written from the posting-list start, the rest untouched."""
    want = bytearray(old)
    data = b"".join(segments)
    want[GIN_DATA_OFF : GIN_DATA_OFF + len(data)] = data
    GinDataPageSetDataSize(want, len(data))
    return bytes(want)


def _itup(blk: int, off: int, payload: bytes) -> bytes:
    """An IndexTupleData (t_tid, t_info = size) followed by ``payload``."""
    return struct.pack("<HHHH", blk >> 16, blk & 0xFFFF, off, 8 + len(payload)) + payload


S0 = _seg([(1, 1), (1, 2), (1, 3)])
S1 = _seg([(2, 1), (2, 4), (3, 9)])
S2 = _seg([(10, 1), (11, 2), (40, 3), (41, 3)])
NEW = _seg([(50, 1), (60, 1)])


def _act(segno: int, action: int, data: bytes = b"") -> bytes:
    return bytes([segno, action]) + data


def _add(items: list[tuple[int, int]]) -> bytes:
    return struct.pack("<H", len(items)) + b"".join(pack_itemptr(i) for i in items)


RECOMPRESS_CASES = {
    "every action": ([S0, S1, S2], [
        _act(0, GIN_SEGMENT_DELETE), _act(1, GIN_SEGMENT_ADDITEMS, _add([(2, 3), (3, 10)])),
        _act(2, GIN_SEGMENT_REPLACE, _seg([(40, 3)])), _act(3, GIN_SEGMENT_INSERT, NEW)],
        [_seg([(2, 1), (2, 3), (2, 4), (3, 9), (3, 10)]), _seg([(40, 3)]), NEW]),
    "tail moves down": ([S0, S1, S2], [_act(1, GIN_SEGMENT_REPLACE, _seg([(2, 1)]))],
                        [S0, _seg([(2, 1)]), S2]),
    "tail moves up": ([S0, S1, S2], [_act(0, GIN_SEGMENT_REPLACE, _seg([(1, 1), (1, 900)]))],
                      [_seg([(1, 1), (1, 900)]), S1, S2]),
    "append, no tail copy": ([S0, S1], [_act(2, GIN_SEGMENT_INSERT, NEW)] * 2, [S0, S1, NEW, NEW]),
    "insert between": ([S0, S2], [_act(1, GIN_SEGMENT_INSERT, S1)], [S0, S1, S2]),
    "delete the last": ([S0, S1], [_act(1, GIN_SEGMENT_DELETE)], [S0]),
    "delete past the end": ([S0], [_act(1, GIN_SEGMENT_DELETE)], [S0]),
    "replace past the end": ([S0], [_act(1, GIN_SEGMENT_REPLACE, NEW)], [S0, NEW]),
    "additems merges duplicates": ([S1], [_act(0, GIN_SEGMENT_ADDITEMS,
                                                _add([(1, 5), (2, 4), (9, 9)]))],
                                   [_seg([(1, 5), (2, 1), (2, 4), (3, 9), (9, 9)])]),
    "no actions empties the page": ([S0, S1], [], []),
}


@pytest.mark.parametrize("case", list(RECOMPRESS_CASES))
def test_synthetic_recompress(c_redo: Engine, case: str) -> None:
    """ginRedoRecompress, via VACUUM_DATA_LEAF_PAGE and via INSERT into a data leaf."""
    old_segments, actions, new_segments = RECOMPRESS_CASES[case]
    base = _leaf(old_segments)
    payload = struct.pack("<H", len(actions)) + b"".join(actions)
    for info, main in ((XLOG_GIN_VACUUM_DATA_LEAF_PAGE, b""),
                       (XLOG_GIN_INSERT, struct.pack("<H", GIN_INSERT_ISDATA | GIN_INSERT_ISLEAF))):
        rec = _synthetic(info, main, [BlockSpec(0, RNODE, 0, 10, data=payload)])
        page = _redo_both(c_redo, 10, base, rec)
        page[0:8] = base[0:8]
        assert bytes(page) == _leaf_after(base, new_segments)


@pytest.mark.parametrize("nitems", [0, 3])
def test_synthetic_recompress_pre_94_leaf(c_redo: Engine, nitems: int) -> None:
    """An uncompressed (pre-9.4) leaf is packed into one segment first."""
    items = [(1, 1), (1, 2), (5, 7)][:nitems]
    page = _gin_page(GIN_DATA | GIN_LEAF)
    page[GIN_DATA_OFF : GIN_DATA_OFF + 6 * nitems] = b"".join(pack_itemptr(i) for i in items)
    GinPageSetMaxoff(page, nitems)
    payload = struct.pack("<H", 1) + _act(1 if nitems else 0, GIN_SEGMENT_INSERT, NEW)
    rec = _synthetic(XLOG_GIN_VACUUM_DATA_LEAF_PAGE, b"", [BlockSpec(0, RNODE, 0, 10, data=payload)])
    got = _redo_both(c_redo, 10, bytes(page), rec)
    data = (_seg(items) if items else b"") + NEW
    assert got[GIN_DATA_OFF : GIN_DATA_OFF + len(data)] == data
    assert pd_lower(got) == GIN_DATA_OFF + len(data)
    assert (GinPageGetFlags(got), GinPageGetMaxoff(got)) == (GIN_DATA | GIN_LEAF | GIN_COMPRESSED, 0)


def _pitem(child: int, key: tuple[int, int]) -> bytes:
    return struct.pack("<HH", child >> 16, child & 0xFFFF) + pack_itemptr(key)


def _data_internal(children: list[int]) -> bytes:
    page = _gin_page(GIN_DATA)
    for i, child in enumerate(children):
        GinDataPageAddPostingItem(page, _pitem(child, (i * 10, 1)), InvalidOffsetNumber)
    return bytes(page)


@pytest.mark.parametrize("offset", [0, 1, 2, 4])
def test_synthetic_insert_data_internal(c_redo: Engine, offset: int) -> None:
    """A PostingItem after a posting-tree split: the split child's item points at
    the new right page and the new item goes in at ``offset`` (Invalid appends;
    C then updates "item 0", the four bytes before the data area)."""
    base = _data_internal([100, 101, 102])
    main = struct.pack("<H", GIN_INSERT_ISDATA) + struct.pack("<HHHH", 0, 101, 0, 777)
    newitem = _pitem(101, (15, 3))
    rec = _synthetic(XLOG_GIN_INSERT, main, [
        BlockSpec(0, RNODE, 0, 10, data=struct.pack("<H", offset) + newitem),
        BlockSpec(1, RNODE, 0, 101),
    ])
    got = _redo_both(c_redo, 10, base, rec)
    assert GinPageGetMaxoff(got) == 4
    assert pd_lower(got) == GIN_DATA_OFF + 4 * 10
    # the child page named as block 1 loses GIN_INCOMPLETE_SPLIT
    child = _gin_page(GIN_DATA | GIN_LEAF | GIN_COMPRESSED | GIN_INCOMPLETE_SPLIT)
    got_child = _redo_both(c_redo, 101, bytes(child), rec)
    assert GinPageGetFlags(got_child) == GIN_DATA | GIN_LEAF | GIN_COMPRESSED


def _entry_page(flags: int, tuples: list[bytes]) -> bytes:
    page = _gin_page(flags)
    for t in tuples:
        assert PageAddItem(page, t, InvalidOffsetNumber) != InvalidOffsetNumber
    return bytes(page)


def test_synthetic_insert_entry_internal_downlink(c_redo: Engine) -> None:
    """An entry downlink after a split: the old downlink at the offset now points
    at the new right page, and the new tuple (left page) goes in before it."""
    tuples = [_itup(20 + i, 0, f"key{i}".encode()) for i in range(3)]
    base = _entry_page(0, tuples)
    main = struct.pack("<H", 0) + struct.pack("<HHHH", 0, 21, 0, 555)
    new = _itup(21, 0, b"key1-left-half")
    rec = _synthetic(XLOG_GIN_INSERT, main, [
        BlockSpec(0, RNODE, 0, 10, data=struct.pack("<HBx", 2, 0) + new),
        BlockSpec(1, RNODE, 0, 21),
    ])
    got = _redo_both(c_redo, 10, base, rec)
    items = [bytes(PageGetItem(got, i)) for i in range(1, PageGetMaxOffsetNumber(got) + 1)]
    assert items == [tuples[0], new, _itup(555, 0, b"key1"), tuples[2]]


def test_synthetic_insert_entry_leaf_replace(c_redo: Engine) -> None:
    """isDelete: the tuple at the offset is deleted and the longer one added there."""
    tuples = [_itup(0, 1, bytes([i]) * (5 + 3 * i)) for i in range(4)]
    base = _entry_page(GIN_LEAF, tuples)
    new = _itup(0, 2, b"\x01" * 30)
    rec = _synthetic(XLOG_GIN_INSERT, struct.pack("<H", GIN_INSERT_ISLEAF),
                     [BlockSpec(0, RNODE, 0, 10, data=struct.pack("<HBx", 2, 1) + new)])
    got = _redo_both(c_redo, 10, base, rec)
    items = [bytes(PageGetItem(got, i)) for i in range(1, PageGetMaxOffsetNumber(got) + 1)]
    assert items == [tuples[0], new, tuples[2], tuples[3]]


LIST_TUPLES = [_itup(3, i, bytes([i]) * (i + 2)) for i in range(1, 4)]


@pytest.mark.parametrize("tail_empty", [True, False])
def test_synthetic_update_meta_append_to_tail(c_redo: Engine, tail_empty: bool) -> None:
    """UPDATE_META_PAGE with tuples: the metapage is rebuilt from the record
    (padding bytes included) and the tuples go after the tail page's last one."""
    main = struct.pack("<III4x", *RNODE) + META + struct.pack("<IIi4x", InvalidBlockNumber,
                                                              InvalidBlockNumber, 3)
    rec = _synthetic(XLOG_GIN_UPDATE_META_PAGE, main, [
        BlockSpec(0, RNODE, 0, 0, will_init=True),
        BlockSpec(1, RNODE, 0, 9, data=b"".join(LIST_TUPLES)),
    ])
    meta = _redo_both(c_redo, 0, None, rec)
    assert meta[24:80] == META
    assert (pd_lower(meta), GinPageGetFlags(meta)) == (80, GIN_META)
    old = [] if tail_empty else [_itup(2, 1, b"old")]
    tail = bytearray(_entry_page(GIN_LIST | GIN_LIST_FULLROW, old))
    GinPageSetMaxoff(tail, len(old))
    got = _redo_both(c_redo, 9, bytes(tail), rec)
    items = [bytes(PageGetItem(got, i)) for i in range(1, PageGetMaxOffsetNumber(got) + 1)]
    assert items == old + LIST_TUPLES
    assert GinPageGetMaxoff(got) == len(old) + 1


def test_synthetic_update_meta_link_sublist(c_redo: Engine) -> None:
    main = struct.pack("<III4x", *RNODE) + META + struct.pack("<IIi4x", 9, 12, 0)
    rec = _synthetic(XLOG_GIN_UPDATE_META_PAGE, main, [
        BlockSpec(0, RNODE, 0, 0, will_init=True), BlockSpec(1, RNODE, 0, 9)])
    got = _redo_both(c_redo, 9, _entry_page(GIN_LIST | GIN_LIST_FULLROW, LIST_TUPLES), rec)
    assert GinPageGetRightlink(got) == 12


@pytest.mark.parametrize("rightlink", [InvalidBlockNumber, 13])
def test_synthetic_insert_listpage(c_redo: Engine, rightlink: int) -> None:
    rec = _synthetic(XLOG_GIN_INSERT_LISTPAGE, struct.pack("<Ii", rightlink, 3),
                     [BlockSpec(0, RNODE, 0, 12, data=b"".join(LIST_TUPLES), will_init=True)])
    got = _redo_both(c_redo, 12, None, rec)
    tail = rightlink == InvalidBlockNumber
    assert GinPageGetFlags(got) == GIN_LIST | (GIN_LIST_FULLROW if tail else 0)
    assert (GinPageGetRightlink(got), GinPageGetMaxoff(got)) == (rightlink, int(tail))
    items = [bytes(PageGetItem(got, i)) for i in range(1, PageGetMaxOffsetNumber(got) + 1)]
    assert items == LIST_TUPLES


def test_synthetic_delete_listpages(c_redo: Engine) -> None:
    rec = _synthetic(XLOG_GIN_DELETE_LISTPAGE, META + struct.pack("<i4x", 2), [
        BlockSpec(0, RNODE, 0, 0, will_init=True),
        BlockSpec(1, RNODE, 0, 5, will_init=True),
        BlockSpec(2, RNODE, 0, 6, will_init=True),
    ])
    assert _redo_both(c_redo, 0, None, rec)[24:80] == META
    for blkno in (5, 6):
        got = _redo_both(c_redo, blkno, None, rec)
        assert GinPageGetFlags(got) == GIN_DELETED
        assert pd_lower(got) == 24 and got[24:BLCKSZ - 8] == bytes(BLCKSZ - 32)


def test_synthetic_delete_page(c_redo: Engine) -> None:
    """DELETE_PAGE: left sibling relinked, page marked deleted (contents kept),
    the parent's PostingItem removed (the last one stays behind as stale bytes)."""
    rec = _synthetic(XLOG_GIN_DELETE_PAGE, struct.pack("<HxxII", 2, 103, 4242), [
        BlockSpec(0, RNODE, 0, 102), BlockSpec(1, RNODE, 0, 20), BlockSpec(2, RNODE, 0, 101)])
    left = _redo_both(c_redo, 101, _leaf([S0]), rec)
    assert GinPageGetRightlink(left) == 103
    dead = _redo_both(c_redo, 102, _leaf([S1]), rec)
    assert GinPageGetFlags(dead) == GIN_DATA | GIN_LEAF | GIN_COMPRESSED | GIN_DELETED
    assert dead[20:24] == struct.pack("<I", 4242)
    parent_base = _data_internal([101, 102, 103])
    parent = _redo_both(c_redo, 20, parent_base, rec)
    assert GinPageGetMaxoff(parent) == 2
    assert parent[GIN_DATA_OFF + 10 : GIN_DATA_OFF + 30] == parent_base[GIN_DATA_OFF + 20 : GIN_DATA_OFF + 30] * 2


def test_synthetic_create_ptree(c_redo: Engine) -> None:
    seg = S0 + S1
    rec = _synthetic(XLOG_GIN_CREATE_PTREE, struct.pack("<I", len(seg)) + seg,
                     [BlockSpec(0, RNODE, 0, 30, will_init=True)])
    got = _redo_both(c_redo, 30, None, rec)
    assert got[GIN_DATA_OFF : pd_lower(got)] == seg
    assert GinPageGetFlags(got) == GIN_DATA | GIN_LEAF | GIN_COMPRESSED


@pytest.mark.parametrize("offset", [2049, 3000])
def test_synthetic_insert_entry_offset_past_max(c_redo: Engine, offset: int) -> None:
    """An offset past MaxOffsetNumber is not OffsetNumberIsValid: PageAddItem
    then appends the tuple instead of failing (found by this test: pyredo's
    PageAddItemExtended had treated every non-zero offset as valid)."""
    tuples = [_itup(0, 1, bytes([i]) * 5) for i in range(3)]
    new = _itup(0, 2, b"\x01" * 10)
    rec = _synthetic(XLOG_GIN_INSERT, struct.pack("<H", GIN_INSERT_ISLEAF),
                     [BlockSpec(0, RNODE, 0, 10, data=struct.pack("<HBx", offset, 0) + new)])
    got = _redo_both(c_redo, 10, _entry_page(GIN_LEAF, tuples), rec)
    items = [bytes(PageGetItem(got, i)) for i in range(1, PageGetMaxOffsetNumber(got) + 1)]
    assert items == [*tuples, new]
