"""Heap2 descriptions per major (heap2_desc, heapdesc.c): 15's words, 16's ``key: value``
pairs with the block data's offset arrays, 17's (and 18's) PRUNE_* records with their
sub-records. Checked against pg_waldump of 15-18 on real WAL (VACUUM, VACUUM FREEZE,
COPY, HOT updates, page pruning, a KEY SHARE lock on an updated row, catalog changes
under wal_level=logical: 922 Heap2 records a major, 0 differences); the expected
strings below are pg_waldump's, some copied from that WAL."""

from __future__ import annotations

import struct

import pytest
from factories import block, record

from pyredo.rmgr import RM_HEAP2_ID
from pyredo.rmgr import heapam_xlog as x
from pyredo.rmgr.heapdesc import heap2_desc, heap2_desc_16, heap2_desc_17
from pyredo.rmgrlist import PG15, PG16, PG17, PG18
from pyredo.wal.record import DecodedBkpBlock, DecodedXLogRecord


def _desc(table, info: int, main: bytes, *blocks: DecodedBkpBlock) -> str:  # type: ignore[no-untyped-def]
    return table.by_name("Heap2").describe(record(RM_HEAP2_ID, info, main, *blocks))


def _u16(*v: int) -> bytes:
    return struct.pack(f"<{len(v)}H", *v)


def test_each_major_has_its_heap2_desc() -> None:
    assert [t.by_name("Heap2").desc for t in (PG15, PG16, PG17, PG18)] == [
        heap2_desc, heap2_desc_16, heap2_desc_17, heap2_desc_17]


def test_16_prune_lists_redirects_dead_and_the_unused_the_block_data_leaves() -> None:
    main = x.XL_HEAP_PRUNE.pack(739, 2, 1) + b"\0"  # + isCatalogRel
    data = _u16(1, 96, 2, 97) + _u16(5) + _u16(8, 9, 11)
    assert _desc(PG16, x.XLOG_HEAP2_PRUNE, main, block(0, 3, data)) == (
        "snapshotConflictHorizon: 739, nredirected: 2, ndead: 1, nunused: 3, "
        "redirected: [1->96, 2->97], dead: [5], unused: [8, 9, 11]")
    # a full-page image carries no block data: the main data alone
    assert _desc(PG16, x.XLOG_HEAP2_PRUNE, main, block(0, 3, image=b"\0" * 16)) == (
        "snapshotConflictHorizon: 739, nredirected: 2, ndead: 1")
    assert _desc(PG15, x.XLOG_HEAP2_PRUNE, main, block(0, 3, data)) == (
        "latestRemovedXid 739 nredirected 2 ndead 1")


def test_16_freeze_page_describes_each_plan_with_its_offsets() -> None:
    main = x.XL_HEAP_FREEZE_PAGE_16.pack(744, 2, False)
    plans = x.XL_HEAP_FREEZE_PLAN.pack(0, 3, 2818, 0, 2) + x.XL_HEAP_FREEZE_PLAN.pack(9, 4, 256, 1, 1)
    assert _desc(PG16, x.XLOG_HEAP2_FREEZE_PAGE, main, block(0, 0, plans + _u16(1, 2, 7))) == (
        "snapshotConflictHorizon: 744, nplans: 2, plans: ["
        "{ xmax: 0, infomask: 2818, infomask2: 3, ntuples: 2, offsets: [1, 2] }, "
        "{ xmax: 9, infomask: 256, infomask2: 4, ntuples: 1, offsets: [7] }]")


@pytest.mark.parametrize(("info", "main", "data", "v16"), [
    (x.XLOG_HEAP2_VACUUM, x.XL_HEAP_VACUUM.pack(2), _u16(4, 6), "nunused: 2, unused: [4, 6]"),
    (x.XLOG_HEAP2_VISIBLE, x.XL_HEAP_VISIBLE.pack(738, 1), b"", "snapshotConflictHorizon: 738, flags: 0x01"),
    (x.XLOG_HEAP2_MULTI_INSERT, x.XL_HEAP_MULTI_INSERT.pack(8, 3) + _u16(97, 98, 99), b"tuples",
     "ntuples: 3, flags: 0x08, offsets: [97, 98, 99]"),
    (x.XLOG_HEAP2_MULTI_INSERT | x.XLOG_HEAP_INIT_PAGE, x.XL_HEAP_MULTI_INSERT.pack(8, 226), b"tuples",
     "ntuples: 226, flags: 0x08"),
    (x.XLOG_HEAP2_LOCK_UPDATED, x.XL_HEAP_LOCK_UPDATED.pack(766, 1, x.XLHL_XMAX_LOCK_ONLY | x.XLHL_XMAX_KEYSHR_LOCK, 0),
     b"", "xmax: 766, off: 1, infobits: [LOCK_ONLY, KEYSHR_LOCK], flags: 0x00"),
    (x.XLOG_HEAP2_NEW_CID, x.XL_HEAP_NEW_CID.pack(770, 0, 0xFFFFFFFF, 0xFFFFFFFF, 1663, 5, 1259, 1, 7, 2), b"",
     "rel: 1663/5/1259, tid: 65543/2, cmin: 0, cmax: 4294967295, combo: 4294967295"),
    (x.XLOG_HEAP2_REWRITE, b"\0" * 8, b"", ""),
])
def test_16_records_17_keeps(info: int, main: bytes, data: bytes, v16: str) -> None:
    blocks = [block(0, 1, data)] if data else []
    assert _desc(PG16, info, main, *blocks) == v16
    if info & x.XLOG_HEAP_OPMASK != x.XLOG_HEAP2_VACUUM:  # 17's 0x20 is PRUNE_VACUUM_SCAN
        assert _desc(PG17, info, main, *blocks) == _desc(PG18, info, main, *blocks) == v16


def test_17_prune_records_describe_their_sub_records_in_order() -> None:
    flags = (x.XLHP_HAS_CONFLICT_HORIZON | x.XLHP_HAS_FREEZE_PLANS | x.XLHP_HAS_REDIRECTIONS
             | x.XLHP_HAS_DEAD_ITEMS | x.XLHP_HAS_NOW_UNUSED_ITEMS | x.XLHP_IS_CATALOG_REL)
    main = x.XL_HEAP_PRUNE_17.pack(1, flags) + struct.pack("<I", 752)
    data = (_u16(1, 0) + x.XL_HEAP_FREEZE_PLAN.pack(0, 3, 2818, 0, 2)  # nplans, padding, plan
            + _u16(1, 1, 96) + _u16(2, 5, 10) + _u16(1, 12)  # redirected, dead, unused
            + _u16(3, 9))  # the frozen tuples' offsets come last
    want = ("snapshotConflictHorizon: 752, isCatalogRel: T, nplans: 1, nredirected: 1, ndead: 2, "
            "nunused: 1, plans: [{ xmax: 0, infomask: 2818, infomask2: 3, ntuples: 2, offsets: [3, 9] }], "
            "redirected: [1->96], dead: [5, 10], unused: [12]")
    for info in (0x10, 0x20, 0x30):  # PRUNE_ON_ACCESS, PRUNE_VACUUM_SCAN, PRUNE_VACUUM_CLEANUP
        assert _desc(PG17, info, main, block(0, 2, data)) == _desc(PG18, info, main, block(0, 2, data)) == want


def test_17_prune_without_a_horizon_starts_with_a_comma_as_pg_waldump_prints_it() -> None:
    main = x.XL_HEAP_PRUNE_17.pack(3, x.XLHP_HAS_NOW_UNUSED_ITEMS)
    assert _desc(PG17, 0x30, main, block(0, 2, _u16(2, 3, 5))) == (
        ", isCatalogRel: F, nplans: 0, nredirected: 0, ndead: 0, nunused: 2, unused: [3, 5]")
    assert _desc(PG17, 0x30, main) == ", isCatalogRel: F"


def test_a_record_too_short_to_describe_says_so() -> None:
    assert _desc(PG16, x.XLOG_HEAP2_VISIBLE, b"\1\2") == "<malformed: 2 bytes of main data>"
    main = x.XL_HEAP_PRUNE_17.pack(1, x.XLHP_HAS_DEAD_ITEMS)
    assert _desc(PG17, 0x10, main, block(0, 2, _u16(4, 1))) == "<malformed: 4 bytes of block 0 data>"
    plans = x.XL_HEAP_FREEZE_PAGE_16.pack(1, 3, False)
    assert _desc(PG16, x.XLOG_HEAP2_FREEZE_PAGE, plans, block(0, 0, b"\0" * 12)) == \
        "<malformed: 12 bytes of block 0 data>"


def test_15_text_is_unchanged() -> None:
    rec: DecodedXLogRecord = record(RM_HEAP2_ID, x.XLOG_HEAP2_LOCK_UPDATED,
                                    x.XL_HEAP_LOCK_UPDATED.pack(766, 1, x.XLHL_XMAX_LOCK_ONLY, 1))
    assert heap2_desc(rec) == "off 1: xmax 766: flags 0x01 LOCK_ONLY "
