"""Btree descriptions per major (btree_desc, nbtdesc.c): 15's words, 16's ``key: value``
pairs with VACUUM's and DELETE's deleted and updated offsets (delvacuum_desc), 17's (and
18's) isCatalogRel on DELETE and REUSE_PAGE. Checked against pg_waldump of 15-18 on real
WAL (splits, dedup, posting-list inserts, bottom-up and simple deletion, VACUUM, page
deletion and reuse, metapage cleanup: ~65000 Btree records a major, 0 differences); the
expected strings below are pg_waldump's, some copied from that WAL."""

from __future__ import annotations

import struct

import pytest
from factories import block, record

from pyredo.rmgr import RM_BTREE_ID
from pyredo.rmgr import nbtxlog as x
from pyredo.rmgr.nbtdesc import btree_desc, btree_desc_16, btree_desc_17
from pyredo.rmgrlist import PG15, PG16, PG17, PG18
from pyredo.wal.record import DecodedBkpBlock


def _desc(table, info: int, main: bytes, *blocks: DecodedBkpBlock) -> str:  # type: ignore[no-untyped-def]
    return table.by_name("Btree").describe(record(RM_BTREE_ID, info, main, *blocks))


def _u16(*v: int) -> bytes:
    return struct.pack(f"<{len(v)}H", *v)


def test_each_major_has_its_btree_desc() -> None:
    assert [t.by_name("Btree").desc for t in (PG15, PG16, PG17, PG18)] == [
        btree_desc, btree_desc_16, btree_desc_17, btree_desc_17]


UNLINK = x.XL_BTREE_UNLINK_PAGE.pack(21, 22, 0, (1 << 32) | 742, 21, 22, 0xFFFFFFFF)[:x.SizeOfBtreeUnlinkPage]
METADATA = x.XL_BTREE_METADATA.pack(4, 3, 1, 3, 1, 12, 1)


@pytest.mark.parametrize(("info", "main", "blocks", "v15", "v16"), [
    (x.XLOG_BTREE_INSERT_POST, x.XL_BTREE_INSERT.pack(7), (), "off 7", "off: 7"),
    (x.XLOG_BTREE_SPLIT_R, x.XL_BTREE_SPLIT.pack(0, 367, 408, 0), (),
     "level 0, firstrightoff 367, newitemoff 408, postingoff 0",
     "level: 0, firstrightoff: 367, newitemoff: 408, postingoff: 0"),
    (x.XLOG_BTREE_DEDUP, x.XL_BTREE_DEDUP.pack(2), (), "nintervals 2", "nintervals: 2"),
    (x.XLOG_BTREE_MARK_PAGE_HALFDEAD, x.XL_BTREE_MARK_PAGE_HALFDEAD.pack(3, 8, 21, 22, 0xFFFFFFFF), (),
     "topparent 4294967295; leaf 8; left 21; right 22",
     "topparent: 4294967295, leaf: 8, left: 21, right: 22"),
    (x.XLOG_BTREE_UNLINK_PAGE_META, UNLINK, (),
     "left 21; right 22; level 0; safexid 1:742; leafleft 21; leafright 22; leaftopparent 4294967295",
     "left: 21, right: 22, level: 0, safexid: 1:742, leafleft: 21, leafright: 22, leaftopparent: 4294967295"),
    (x.XLOG_BTREE_NEWROOT, x.XL_BTREE_NEWROOT.pack(3, 1), (), "lev 1", "level: 1"),
    (x.XLOG_BTREE_META_CLEANUP, b"", (block(0, 0, METADATA),), "last_cleanup_num_delpages 12",
     "last_cleanup_num_delpages: 12"),
])
def test_15_and_16_describe_alike_records_in_their_own_words(
        info: int, main: bytes, blocks: tuple[DecodedBkpBlock, ...], v15: str, v16: str) -> None:
    assert _desc(PG15, info, main, *blocks) == v15
    assert _desc(PG16, info, main, *blocks) == _desc(PG17, info, main, *blocks) == v16
    assert _desc(PG18, info, main, *blocks) == v16


def test_16_vacuum_and_delete_list_deleted_offsets_and_updated_posting_lists() -> None:
    # deleted [71, 74], updated offsets [45, 77], then per update ndeletedtids and its ptids
    data = _u16(71, 74) + _u16(45, 77) + _u16(3, 0, 1, 2) + _u16(1, 0)
    updated = "updated: [{ off: 45, nptids: 3, ptids: [0, 1, 2] }, { off: 77, nptids: 1, ptids: [0] }]"
    assert _desc(PG16, x.XLOG_BTREE_VACUUM, x.XL_BTREE_VACUUM.pack(2, 2), block(0, 4, data)) == (
        f"ndeleted: 2, nupdated: 2, deleted: [71, 74], {updated}")
    delete = x.XL_BTREE_DELETE_16.pack(900, 2, 2, True)
    assert _desc(PG16, x.XLOG_BTREE_DELETE, delete, block(0, 4, data)) == (
        f"snapshotConflictHorizon: 900, ndeleted: 2, nupdated: 2, deleted: [71, 74], {updated}")
    assert _desc(PG17, x.XLOG_BTREE_DELETE, delete, block(0, 4, data)) == (
        f"snapshotConflictHorizon: 900, ndeleted: 2, nupdated: 2, isCatalogRel: T, deleted: [71, 74], {updated}")
    assert _desc(PG15, x.XLOG_BTREE_DELETE, delete, block(0, 4, data)) == (
        "latestRemovedXid 900; ndeleted 2; nupdated 2")
    # without block data (a full-page image) only the counts; nothing updated prints []
    assert _desc(PG16, x.XLOG_BTREE_VACUUM, x.XL_BTREE_VACUUM.pack(2, 0)) == "ndeleted: 2, nupdated: 0"
    assert _desc(PG16, x.XLOG_BTREE_VACUUM, x.XL_BTREE_VACUUM.pack(1, 0), block(0, 4, _u16(9))) == (
        "ndeleted: 1, nupdated: 0, deleted: [9], updated: []")


def test_reuse_page_prints_the_full_xid_and_from_17_is_catalog_rel() -> None:
    main = x.XL_BTREE_REUSE_PAGE_16.pack(1663, 5, 16389, 30, (2 << 32) | 742, False)
    assert _desc(PG16, x.XLOG_BTREE_REUSE_PAGE, main) == "rel: 1663/5/16389, snapshotConflictHorizon: 2:742"
    assert _desc(PG17, x.XLOG_BTREE_REUSE_PAGE, main) == _desc(PG18, x.XLOG_BTREE_REUSE_PAGE, main) == (
        "rel: 1663/5/16389, snapshotConflictHorizon: 2:742, isCatalogRel: F")


def test_a_record_too_short_to_describe_says_so() -> None:
    assert _desc(PG16, x.XLOG_BTREE_SPLIT_L, b"\1\2") == "<malformed: 2 bytes of main data>"
    assert _desc(PG17, x.XLOG_BTREE_DELETE, x.XL_BTREE_DELETE.pack(1, 2, 0)) == \
        "<malformed: 8 bytes of main data>"
    assert _desc(PG16, x.XLOG_BTREE_VACUUM, x.XL_BTREE_VACUUM.pack(0, 1), block(0, 4, _u16(3, 2, 0))) == \
        "<malformed: 6 bytes of block 0 data>"
    assert _desc(PG16, x.XLOG_BTREE_META_CLEANUP, b"", block(0, 0, METADATA[:20])) == \
        "<malformed: 20 bytes of block 0 data>"
