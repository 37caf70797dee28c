"""GiST redo routines, page helpers, desc and gist_mask on hand-built records (no PostgreSQL).

Records are encoded with pyredo.wal.builder and decoded again, so each one is
a real XLogRecord (the same bytes could be sent to a wal-redo server).
Paths that real workloads reach only by chance are pinned here: the left
child of a split restored from its image and then changed anyway
(gistRedoClearFollowRight), malformed tuple lists, and the pre-15.20
F_TUPLES_DELETED behaviour.
"""

from __future__ import annotations

import struct

import factories
import pytest
from factories import RNODE, spec, tag

from oracles.masks.bufmask import MaskError
from oracles.masks.gist import gist_mask
from pyredo import BLCKSZ
from pyredo.engine import RedoEngine
from pyredo.errors import RedoError
from pyredo.page import bufpage
from pyredo.page.gist import (
    F_DELETED,
    F_FOLLOW_RIGHT,
    F_HAS_GARBAGE,
    F_LEAF,
    F_TUPLES_DELETED,
    GIST_PAGE_ID,
    GistMarkFollowRight,
    GistMarkPageHasGarbage,
    GistPageGetDeleteXid,
    GistPageGetFlags,
    GistPageGetNSN,
    GistPageGetPageId,
    GistPageGetRightlink,
    GistPageSetNSN,
    InvalidBlockNumber,
    gistfillbuffer,
    gistinitpage,
    split_index_tuples,
)
from pyredo.rmgr import RM_GIST_ID
from pyredo.rmgr.gist import (
    GISTXLOG_DELETE_16,
    XLOG_GIST_ASSIGN_LSN,
    XLOG_GIST_DELETE,
    XLOG_GIST_PAGE_DELETE,
    XLOG_GIST_PAGE_REUSE,
    XLOG_GIST_PAGE_SPLIT,
    XLOG_GIST_PAGE_UPDATE,
    desc,
    gistRedoPageUpdateRecord,
)
from pyredo.rmgrlist import PG15, PG16, PG17, PG18, RmgrTable
from pyredo.wal.builder import BlockSpec
from pyredo.wal.record import DecodedXLogRecord
from pyredo.xlogutils import BlkAction, RedoContext

ROOT, LEAF, RIGHT, NEW, CHILD = 0, 1, 2, 3, 4
OLD_SERVER = RedoEngine(server_version_num=150019)
NEW_SERVER = RedoEngine()


def itup(blk: int, off: int, key: bytes) -> bytes:
    """An IndexTuple: t_tid (bi_hi, bi_lo, ip_posid), t_info = size, then the key."""
    size = 8 + len(key)
    return struct.pack("<HHHH", blk >> 16, blk & 0xFFFF, off, size) + key


def point(x: float, y: float) -> bytes:
    return struct.pack("<dd", x, y)


def gist_page(flags: int, tuples: list[bytes], lsn: int = 0x100) -> bytearray:
    page = bytearray(BLCKSZ)
    gistinitpage(page, flags)
    gistfillbuffer(page, tuples, 1)
    bufpage.PageSetLSN(page, lsn)
    return page


def leaf_tuples(n: int, start: int = 0) -> list[bytes]:
    return [itup(100, i + 1, point(start + i, i)) for i in range(n)]


class Wal(factories.Wal):
    """Each record is encoded and decoded again."""

    rmid, xid, start, step = RM_GIST_ID, 750, 0x2000000, 0x1000
    rec = factories.Wal.encoded


blk = spec


def apply(page: bytearray, blkno: int, rec: DecodedXLogRecord,
          engine: RedoEngine = NEW_SERVER) -> bytearray:
    engine.apply(tag(blkno), page, rec)
    return page


def update_rec(wal: Wal, blkno: int, todelete: list[int], tuples: list[bytes],
               child: BlockSpec | None = None) -> DecodedXLogRecord:
    data = struct.pack(f"<{len(todelete)}H", *todelete) + b"".join(tuples)
    blocks = [blk(0, blkno, data)] + ([child] if child is not None else [])
    return wal.rec(XLOG_GIST_PAGE_UPDATE, struct.pack("<HH", len(todelete), len(tuples)), blocks)


def split_main(origrlink: int, orignsn: int, origleaf: bool, npage: int, markfollowright: bool) -> bytes:
    return struct.pack("<I4xQBxHB3x", origrlink, orignsn, origleaf, npage, markfollowright)


def split_data(tuples: list[bytes]) -> bytes:
    return struct.pack("<i", len(tuples)) + b"".join(tuples)


# -- page helpers ---------------------------------------------------------------------------
def test_gistinitpage_layout() -> None:
    page = bytearray(b"\xaa" * BLCKSZ)
    gistinitpage(page, F_LEAF)
    assert bufpage.pd_special(page) == BLCKSZ - 16
    assert bufpage.pd_lower(page) == 24 and bufpage.pd_upper(page) == BLCKSZ - 16
    assert GistPageGetFlags(page) == F_LEAF
    assert GistPageGetRightlink(page) == InvalidBlockNumber
    assert GistPageGetNSN(page) == 0
    assert GistPageGetPageId(page) == GIST_PAGE_ID
    assert page[24 : BLCKSZ - 16] == bytes(BLCKSZ - 40)  # PageInit zeroes everything


def test_nsn_is_two_u32_halves() -> None:
    page = gist_page(0, [])
    GistPageSetNSN(page, 0x0000000A_00000B0C)
    assert page[BLCKSZ - 16 : BLCKSZ - 8] == struct.pack("<II", 0xA, 0xB0C)
    assert GistPageGetNSN(page) == 0xA_00000B0C


def test_split_index_tuples_rejects_bad_sizes() -> None:
    good = b"".join(leaf_tuples(3))
    assert [len(t) for t in split_index_tuples(good)] == [24, 24, 24]
    with pytest.raises(RedoError, match="bad size 0"):
        split_index_tuples(struct.pack("<HHHH", 0, 0, 1, 0) + bytes(16))  # C would loop forever
    with pytest.raises(RedoError, match="bad size"):
        split_index_tuples(good[:-1])
    with pytest.raises(RedoError, match="left over"):
        split_index_tuples(good, 2)


# -- PAGE_UPDATE ------------------------------------------------------------------------------
def test_page_update_appends_tuples() -> None:
    wal = Wal()
    page = gist_page(F_LEAF, leaf_tuples(3))
    new = leaf_tuples(2, start=50)
    rec = update_rec(wal, LEAF, [], new)
    apply(page, LEAF, rec)
    assert bufpage.PageGetMaxOffsetNumber(page) == 5
    assert bytes(bufpage.PageGetItem(page, 5)) == new[1]
    assert bufpage.PageGetLSN(page) == rec.end_lsn


def test_page_update_one_for_one_overwrites_in_place() -> None:
    """ntodelete == ntoinsert == 1: PageIndexTupleOverwrite keeps the item's slot."""
    wal = Wal()
    page = gist_page(0, [itup(10 + i, 0xFFFF, point(i, i) * 2) for i in range(4)])
    bigger = itup(11, 0xFFFF, point(-1, -1) * 2 + bytes(8))
    apply(page, ROOT, update_rec(wal, ROOT, [2], [bigger]))
    assert bufpage.PageGetMaxOffsetNumber(page) == 4
    assert bytes(bufpage.PageGetItem(page, 2)) == bigger
    assert bufpage.pd_upper(page) == BLCKSZ - 16 - 4 * 40 - 8


def test_page_update_delete_then_add_on_internal_page() -> None:
    """A child split: one downlink replaced by two, added after the last item."""
    wal = Wal()
    tuples = [itup(10 + i, 0xFFFF, point(i, i) * 2) for i in range(3)]
    page = gist_page(0, tuples)
    new = [itup(20, 0xFFFF, point(7, 7) * 2), itup(21, 0xFFFF, point(8, 8) * 2)]
    apply(page, ROOT, update_rec(wal, ROOT, [1], new))
    items = [bytes(bufpage.PageGetItem(page, i)) for i in range(1, 5)]
    assert items == [tuples[1], tuples[2], *new]
    assert GistPageGetFlags(page) == 0


@pytest.mark.parametrize(("engine", "marked"), [(NEW_SERVER, False), (OLD_SERVER, True)])
def test_page_update_leaf_delete_tuples_deleted_flag(engine: RedoEngine, marked: bool) -> None:
    """VACUUM's leaf deletions set F_TUPLES_DELETED in redo only before 15.20."""
    wal = Wal()
    page = gist_page(F_LEAF, leaf_tuples(6))
    apply(page, LEAF, update_rec(wal, LEAF, [1, 3, 5], []), engine)
    assert bufpage.PageGetMaxOffsetNumber(page) == 3
    assert bool(GistPageGetFlags(page) & F_TUPLES_DELETED) is marked


def test_page_update_clears_follow_right_on_child() -> None:
    wal = Wal()
    child = gist_page(F_LEAF | F_FOLLOW_RIGHT, leaf_tuples(2))
    rec = update_rec(wal, ROOT, [], [itup(NEW, 0xFFFF, point(1, 1) * 2)], child=blk(1, CHILD))
    apply(child, CHILD, rec)
    assert GistPageGetFlags(child) == F_LEAF
    assert GistPageGetNSN(child) == rec.end_lsn
    assert bufpage.PageGetLSN(child) == rec.end_lsn


def test_clear_follow_right_also_after_image_restore() -> None:
    """gistRedoClearFollowRight changes the child even when its image was restored:
    the image predates the change (BLK_RESTORED, then NSN + flag + LSN)."""
    wal = Wal()
    image = gist_page(F_LEAF | F_FOLLOW_RIGHT, leaf_tuples(2), lsn=0x777)
    rec = update_rec(wal, ROOT, [], [itup(NEW, 0xFFFF, point(1, 1) * 2)],
                     child=blk(1, CHILD, image=bytes(image)))
    page = bytearray(BLCKSZ)
    ctx = RedoContext(NEW_SERVER, rec, tag(CHILD), page)
    gistRedoPageUpdateRecord(ctx)
    assert ctx.actions[1] is BlkAction.BLK_RESTORED
    assert GistPageGetFlags(page) == F_LEAF
    assert GistPageGetNSN(page) == rec.end_lsn
    assert bufpage.PageGetLSN(page) == rec.end_lsn
    assert page[24 : BLCKSZ - 16] == image[24 : BLCKSZ - 16]


def test_page_update_skipped_when_page_is_newer() -> None:
    wal = Wal()
    page = gist_page(F_LEAF, leaf_tuples(2), lsn=0xFFFFFFFF)
    before = bytes(page)
    apply(page, LEAF, update_rec(wal, LEAF, [], leaf_tuples(1)))
    assert bytes(page) == before


@pytest.mark.parametrize("data", [
    b"\x01",  # half an offset
    struct.pack("<H", 1) + itup(1, 1, point(0, 0))[:10],  # cut-off tuple
])
def test_page_update_malformed_data(data: bytes) -> None:
    wal = Wal()
    page = gist_page(F_LEAF, leaf_tuples(3))
    rec = wal.rec(XLOG_GIST_PAGE_UPDATE, struct.pack("<HH", 1, 1), [blk(0, LEAF, data)])
    with pytest.raises(RedoError):
        apply(page, LEAF, rec)


def test_page_update_tuple_count_mismatch() -> None:
    wal = Wal()
    page = gist_page(F_LEAF, leaf_tuples(3))
    rec = wal.rec(XLOG_GIST_PAGE_UPDATE, struct.pack("<HH", 0, 2),
                  [blk(0, LEAF, b"".join(leaf_tuples(1)))])
    with pytest.raises(RedoError, match="says 2 tuples"):
        apply(page, LEAF, rec)


def test_page_update_short_main_data() -> None:
    wal = Wal()
    rec = wal.rec(XLOG_GIST_PAGE_UPDATE, b"\x00", [blk(0, LEAF, b"".join(leaf_tuples(1)))])
    with pytest.raises(RedoError, match="main data"):
        apply(gist_page(F_LEAF, []), LEAF, rec)


# -- DELETE ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("engine", "flags"), [(NEW_SERVER, F_LEAF), (OLD_SERVER, F_LEAF | F_TUPLES_DELETED)])
def test_delete_removes_dead_tuples(engine: RedoEngine, flags: int) -> None:
    wal = Wal()
    tuples = leaf_tuples(5)
    page = gist_page(F_LEAF, tuples)
    GistMarkPageHasGarbage(page)
    rec = wal.rec(XLOG_GIST_DELETE, struct.pack("<IH", 733, 2) + struct.pack("<2H", 2, 4),
                  [blk(0, LEAF)])
    apply(page, LEAF, rec, engine)
    assert [bytes(bufpage.PageGetItem(page, i)) for i in (1, 2, 3)] == [tuples[0], tuples[2], tuples[4]]
    assert GistPageGetFlags(page) == flags  # F_HAS_GARBAGE cleared


def test_delete_offsets_cut_off() -> None:
    wal = Wal()
    rec = wal.rec(XLOG_GIST_DELETE, struct.pack("<IH", 733, 3) + struct.pack("<H", 2), [blk(0, LEAF)])
    with pytest.raises(RedoError, match="offsets"):
        apply(gist_page(F_LEAF, leaf_tuples(5)), LEAF, rec)


@pytest.mark.parametrize("table", [PG16, PG17, PG18])
def test_delete_16_layout(table: RmgrTable) -> None:
    """16's gistxlogDelete: isCatalogRel after ntodelete, the offsets from byte 8; 16-18
    redo still sets F_TUPLES_DELETED (their gistxlog.c)."""
    tuples = leaf_tuples(5)
    page = gist_page(F_LEAF, tuples)
    GistMarkPageHasGarbage(page)
    main = GISTXLOG_DELETE_16.pack(733, 2, True) + struct.pack("<2H", 2, 4)
    assert GISTXLOG_DELETE_16.size == 8
    apply(page, LEAF, Wal().rec(XLOG_GIST_DELETE, main, [blk(0, LEAF)]), RedoEngine(table))
    assert [bytes(bufpage.PageGetItem(page, i)) for i in (1, 2, 3)] == [tuples[0], tuples[2], tuples[4]]
    assert GistPageGetFlags(page) == F_LEAF | F_TUPLES_DELETED
    with pytest.raises(RedoError, match="offsets"):  # the offsets cut off
        apply(gist_page(F_LEAF, tuples), LEAF, Wal().rec(XLOG_GIST_DELETE, main[:10], [blk(0, LEAF)]),
              RedoEngine(table))


# -- PAGE_SPLIT --------------------------------------------------------------------------------------
def test_root_split() -> None:
    """Block 1 is the root: rebuilt as an internal page with no rightlink; the
    halves are leaves chained by rightlinks, none with F_FOLLOW_RIGHT."""
    wal = Wal()
    left, right = leaf_tuples(3), leaf_tuples(2, start=10)
    root = [itup(LEAF, 0xFFFF, point(0, 0) * 2), itup(RIGHT, 0xFFFF, point(9, 9) * 2)]
    rec = wal.rec(XLOG_GIST_PAGE_SPLIT, split_main(InvalidBlockNumber, 0x1234, True, 3, True), [
        blk(1, ROOT, split_data(root), will_init=True),
        blk(2, LEAF, split_data(left), will_init=True),
        blk(3, RIGHT, split_data(right), will_init=True),
    ])
    pages = {b: apply(bytearray(b"\xee" * BLCKSZ), b, rec) for b in (ROOT, LEAF, RIGHT)}
    assert GistPageGetFlags(pages[ROOT]) == 0
    assert GistPageGetRightlink(pages[ROOT]) == InvalidBlockNumber
    assert GistPageGetFlags(pages[LEAF]) == F_LEAF  # no follow-right in a root split
    assert GistPageGetRightlink(pages[LEAF]) == RIGHT
    assert GistPageGetRightlink(pages[RIGHT]) == InvalidBlockNumber
    for b, tuples in ((ROOT, root), (LEAF, left), (RIGHT, right)):
        page = pages[b]
        assert GistPageGetNSN(page) == 0x1234
        assert bufpage.PageGetLSN(page) == rec.end_lsn
        assert [bytes(bufpage.PageGetItem(page, i + 1)) for i in range(len(tuples))] == tuples
        lower, upper = bufpage.pd_lower(page), bufpage.pd_upper(page)
        assert page[lower:upper] == bytes(upper - lower)  # PageInit zeroed the 0xee


def test_split_marks_follow_right_and_clears_left_child() -> None:
    """A non-root split: every page but the last gets F_FOLLOW_RIGHT, the last
    inherits the original rightlink; block 0, the child whose split this
    completes, loses F_FOLLOW_RIGHT and gets the record's LSN as NSN."""
    wal = Wal()
    a, b, c = ([itup(10 + i + k, 0xFFFF, point(i, k) * 2) for i in range(2)] for k in range(3))
    rec = wal.rec(XLOG_GIST_PAGE_SPLIT, split_main(77, 0x55, False, 3, True), [
        blk(0, CHILD),
        blk(1, LEAF, split_data(a), will_init=True),
        blk(2, NEW, split_data(b), will_init=True),
        blk(3, RIGHT, split_data(c), will_init=True),
    ])
    got = {n: apply(bytearray(BLCKSZ), n, rec) for n in (LEAF, NEW, RIGHT)}
    assert [GistPageGetFlags(got[n]) for n in (LEAF, NEW, RIGHT)] == [F_FOLLOW_RIGHT, F_FOLLOW_RIGHT, 0]
    assert [GistPageGetRightlink(got[n]) for n in (LEAF, NEW, RIGHT)] == [NEW, RIGHT, 77]
    child = gist_page(F_LEAF | F_FOLLOW_RIGHT, leaf_tuples(2))
    apply(child, CHILD, rec)
    assert GistPageGetFlags(child) == F_LEAF and GistPageGetNSN(child) == rec.end_lsn


def test_split_without_markfollowright() -> None:
    wal = Wal()
    rec = wal.rec(XLOG_GIST_PAGE_SPLIT, split_main(InvalidBlockNumber, 0, True, 2, False), [
        blk(1, LEAF, split_data(leaf_tuples(1)), will_init=True),
        blk(2, NEW, split_data(leaf_tuples(1)), will_init=True),
    ])
    page = apply(bytearray(BLCKSZ), LEAF, rec)
    assert GistPageGetFlags(page) == F_LEAF


def test_split_block_must_be_will_init() -> None:
    wal = Wal()
    rec = wal.rec(XLOG_GIST_PAGE_SPLIT, split_main(0, 0, True, 1, False),
                  [blk(1, LEAF, split_data(leaf_tuples(1)))])
    with pytest.raises(RedoError, match="WILL_INIT"):
        apply(bytearray(BLCKSZ), LEAF, rec)


@pytest.mark.parametrize("data", [
    b"\x01\x00",  # no whole count
    struct.pack("<i", -1),
    struct.pack("<i", 2) + itup(1, 1, point(0, 0)),  # one tuple short
    struct.pack("<i", 1) + itup(1, 1, point(0, 0)) + b"\x00",  # trailing byte
    struct.pack("<i", 1) + struct.pack("<HHHH", 0, 0, 1, 0),  # zero-size tuple
])
def test_split_malformed_page_data(data: bytes) -> None:
    wal = Wal()
    rec = wal.rec(XLOG_GIST_PAGE_SPLIT, split_main(0, 0, True, 1, False),
                  [blk(1, LEAF, data, will_init=True)])
    with pytest.raises(RedoError):
        apply(bytearray(BLCKSZ), LEAF, rec)


def test_split_missing_next_block() -> None:
    wal = Wal()
    rec = wal.rec(XLOG_GIST_PAGE_SPLIT, split_main(0, 0, True, 2, False),
                  [blk(1, LEAF, split_data(leaf_tuples(1)), will_init=True)])
    with pytest.raises(RedoError, match="block with ID 2"):
        apply(bytearray(BLCKSZ), LEAF, rec)


# -- PAGE_DELETE -----------------------------------------------------------------------------------
def test_page_delete() -> None:
    wal = Wal()
    xid = (2 << 32) | 901
    rec = wal.rec(XLOG_GIST_PAGE_DELETE, struct.pack("<QH", xid, 2), [blk(0, LEAF), blk(1, ROOT)])
    leaf = gist_page(F_LEAF, [])
    apply(leaf, LEAF, rec)
    assert GistPageGetFlags(leaf) == F_LEAF | F_DELETED
    assert bufpage.pd_lower(leaf) == 32 and bufpage.pd_upper(leaf) == BLCKSZ - 16
    assert GistPageGetDeleteXid(leaf) == xid
    parent_tuples = [itup(b, 0xFFFF, point(b, b) * 2) for b in (5, LEAF, 6)]
    parent = gist_page(0, parent_tuples)
    apply(parent, ROOT, rec)
    assert [bytes(bufpage.PageGetItem(parent, i)) for i in (1, 2)] == [parent_tuples[0], parent_tuples[2]]
    assert desc(rec) == "deleteXid 2:901; downlink 2"


def test_page_delete_bad_downlink() -> None:
    wal = Wal()
    rec = wal.rec(XLOG_GIST_PAGE_DELETE, struct.pack("<QH", 900, 9), [blk(0, LEAF), blk(1, ROOT)])
    with pytest.raises(RedoError, match="invalid index offnum"):
        apply(gist_page(0, [itup(1, 0xFFFF, point(1, 1) * 2)]), ROOT, rec)


# -- records that change no page --------------------------------------------------------------
@pytest.mark.parametrize(("info", "main"), [
    (XLOG_GIST_PAGE_REUSE, struct.pack("<IIIIQ", *RNODE, LEAF, 900)),
    (XLOG_GIST_ASSIGN_LSN, struct.pack("<i", 0)),
])
def test_no_page_records(info: int, main: bytes) -> None:
    wal = Wal()
    rec = wal.rec(info, main)
    page = gist_page(F_LEAF | F_DELETED, [])
    before = bytes(page)
    apply(page, LEAF, rec)
    assert bytes(page) == before  # no block named: no LSN stamped either


def test_identify_and_desc() -> None:
    wal = Wal()
    assert PG15.record_type(wal.rec(XLOG_GIST_ASSIGN_LSN, bytes(4))) == "Gist/ASSIGN_LSN"
    reuse = wal.rec(XLOG_GIST_PAGE_REUSE, struct.pack("<IIIIQ", *RNODE, 7, (1 << 32) | 900))
    assert desc(reuse) == "rel 1663/5/16500; blk 7; latestRemovedXid 1:900"
    assert desc(wal.rec(XLOG_GIST_DELETE, struct.pack("<IHH", 733, 1, 2), [blk(0, LEAF)])) == \
        "delete: latestRemovedXid 733, nitems: 1"
    split = wal.rec(XLOG_GIST_PAGE_SPLIT, split_main(0, 0, True, 2, True),
                    [blk(1, LEAF, split_data([]), will_init=True)])
    assert desc(split) == "page_split: splits to 2 pages"


# -- gist_mask -------------------------------------------------------------------------------------
def test_gist_mask() -> None:
    page = gist_page(F_LEAF, leaf_tuples(3), lsn=0x1234)
    GistPageSetNSN(page, 0x99)
    GistMarkPageHasGarbage(page)
    bufpage.ItemIdMarkDead(page, 2)
    page[bufpage.pd_lower(page) + 5] = 0x42  # stale byte in free space
    gist_mask(page, LEAF)
    assert bufpage.PageGetLSN(page) == 0
    assert GistPageGetNSN(page) == 0
    assert GistPageGetFlags(page) == F_LEAF | F_FOLLOW_RIGHT  # F_HAS_GARBAGE cleared
    assert [bufpage.PageGetItemId(page, i)[1] for i in (1, 2, 3)] == [bufpage.LP_UNUSED] * 3
    lower, upper = bufpage.pd_lower(page), bufpage.pd_upper(page)
    assert page[lower:upper] == bytes(upper - lower)


def test_gist_mask_keeps_internal_line_pointers() -> None:
    page = gist_page(0, [itup(1, 0xFFFF, point(1, 1) * 2)])
    GistMarkFollowRight(page)
    gist_mask(page, ROOT)
    assert bufpage.PageGetItemId(page, 1)[1] == bufpage.LP_NORMAL


def test_gist_mask_without_special_space() -> None:
    page = bytearray(BLCKSZ)
    bufpage.PageInit(page, BLCKSZ, 0)
    with pytest.raises(MaskError):
        gist_mask(page, 0)


def test_has_garbage_flag_constant() -> None:
    assert (F_LEAF, F_DELETED, F_TUPLES_DELETED, F_FOLLOW_RIGHT, F_HAS_GARBAGE) == (1, 2, 4, 8, 16)


def test_delete_and_reuse_desc_per_major() -> None:
    rec = Wal().rec(XLOG_GIST_DELETE, GISTXLOG_DELETE_16.pack(733, 2, True) + struct.pack("<2H", 2, 4),
                    [blk(0, LEAF)])
    assert PG16.rows[RM_GIST_ID].describe(rec) == "delete: snapshotConflictHorizon 733, nitems: 2"
    assert PG17.rows[RM_GIST_ID].describe(rec) == "delete: snapshotConflictHorizon 733, nitems: 2, isCatalogRel T"
    reuse = Wal().rec(XLOG_GIST_PAGE_REUSE, struct.pack("<IIIIQ?", 1663, 5, 16500, 9, (1 << 32) | 5, False), [])
    assert PG18.rows[RM_GIST_ID].describe(reuse) == \
        "rel 1663/5/16500; blk 9; snapshotConflictHorizon 1:5, isCatalogRel F"
