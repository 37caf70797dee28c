"""Btree page helpers, posting-list tuples, btree_mask, desc, and redo on
malformed records (typed errors, never a hang) — no PostgreSQL needed.

Redo on real WAL, against PostgreSQL's C redo, is tests/integration/test_btree_redo.py.
"""

from __future__ import annotations

import struct

import pytest
from factories import RNODE, bt_page, bt_pivot, bt_posting, encoded, int4_tuple, tag, tid

from oracles.masks.btree import btree_mask
from oracles.masks.bufmask import MaskError
from pyredo import BLCKSZ
from pyredo.engine import RedoEngine
from pyredo.errors import RedoError
from pyredo.page.bufpage import (
    LP_DEAD,
    LP_NORMAL,
    MAXALIGN,
    PageGetItemId,
    PageGetMaxOffsetNumber,
    PageSetItemId,
    pd_lower,
    set_pd_special,
)
from pyredo.page.nbtree import (
    BT_IS_POSTING,
    BTP_HAS_GARBAGE,
    BTP_LEAF,
    BTP_META,
    BTP_SPLIT_END,
    BTREE_MAGIC,
    INDEX_ALT_TID_MASK,
    BTMaxItemSize,
    BTPageGetMeta,
    BTPageGetOpaque,
    BtreeTupleError,
    BTreeTupleGetNPosting,
    BTreeTupleGetPosting,
    BTreeTupleGetPostingOffset,
    BTreeTupleIsPivot,
    BTreeTupleIsPosting,
    IndexTupleGetInfo,
    IndexTupleSize,
    _bt_form_posting,
    _bt_swap_posting,
    _bt_update_posting,
    dummy_hikey,
)
from pyredo.rmgr import RM_BTREE_ID
from pyredo.rmgr import btree as btrm
from pyredo.rmgrlist import PG15, PG16, PG17, PG18
from pyredo.wal.builder import BlockSpec
from pyredo.wal.record import DecodedXLogRecord

LSN0 = 0x0200_0000


def btpage(items: list[bytes], *, hikey: bytes | None = None, next_: int = 0) -> bytearray:
    return bt_page(items, hikey=hikey, next_=next_, lsn=LSN0 - 0x100)


def record(info: int, main: bytes, blocks: list[BlockSpec]) -> DecodedXLogRecord:
    return encoded(RM_BTREE_ID, info, main, blocks, lsn=LSN0)


def redo(blk: int, base: bytes | None, rec: DecodedXLogRecord) -> bytes:
    return RedoEngine().reconstruct(tag(blk), base, [rec])


# -- the rmgr table ----------------------------------------------------------------------
def test_every_btree_record_type_has_a_routine() -> None:
    rm = PG15.rows[RM_BTREE_ID]
    assert set(rm.redo) == set(btrm._NAMES)
    assert btrm.XLOG_BTREE_REUSE_PAGE not in btrm.PAGE_MODIFYING
    assert len(btrm.PAGE_MODIFYING) == 14
    for info, fn in rm.redo.items():
        assert fn.__doc__ and "Mirrors" in fn.__doc__ and "nbtxlog.c" in fn.__doc__, info


# -- tuples --------------------------------------------------------------------------------
def test_form_posting_and_plain() -> None:
    tids = tid(1, 1) + tid(1, 2) + tid(3, 7)
    p = _bt_form_posting(int4_tuple(9, 1, 1), tids, 3)
    assert IndexTupleSize(p) == len(p) == MAXALIGN(16 + 18)
    assert BTreeTupleIsPosting(p) and not BTreeTupleIsPivot(p)
    assert (BTreeTupleGetNPosting(p), BTreeTupleGetPostingOffset(p)) == (3, 16)
    assert BTreeTupleGetPosting(p) == tids
    assert p[16 + 18 :] == bytes(len(p) - 34)  # palloc0 padding
    plain = _bt_form_posting(p, tid(4, 4), 1)
    assert bytes(plain) == int4_tuple(9, 4, 4)
    assert not IndexTupleGetInfo(plain) & INDEX_ALT_TID_MASK


def test_update_posting() -> None:
    p = bt_posting(5, [(1, 1), (1, 2), (2, 1), (2, 2)])
    assert bytes(_bt_update_posting(p, [0, 3])) == bt_posting(5, [(1, 2), (2, 1)])
    assert bytes(_bt_update_posting(p, [0, 1, 3])) == int4_tuple(5, 2, 1)
    with pytest.raises(BtreeTupleError, match="ascending"):
        _bt_update_posting(p, [3, 0])
    with pytest.raises(BtreeTupleError, match="deleting 4 of 4"):
        _bt_update_posting(p, [0, 1, 2, 3])
    with pytest.raises(BtreeTupleError, match="not a posting list"):
        _bt_update_posting(int4_tuple(5, 1, 1), [0])


def test_swap_posting() -> None:
    p = bt_posting(5, [(1, 1), (1, 5), (2, 1)])
    newitem = bytearray(int4_tuple(5, 1, 3))
    n = _bt_swap_posting(newitem, p, 1)
    assert bytes(n) == bt_posting(5, [(1, 1), (1, 3), (1, 5)])
    assert bytes(newitem) == int4_tuple(5, 2, 1)  # the old maximum TID
    for off in (0, 3):
        with pytest.raises(BtreeTupleError, match="cannot be split at offset"):
            _bt_swap_posting(bytearray(int4_tuple(5, 1, 3)), p, off)
    # a posting list claiming more TIDs than its tuple holds
    bad = bytearray(p)
    struct.pack_into("<H", bad, 4, 9 | BT_IS_POSTING)
    with pytest.raises(BtreeTupleError, match="does not fit"):
        _bt_swap_posting(bytearray(int4_tuple(5, 1, 3)), bad, 1)


def test_dummy_hikey_and_max_item_size() -> None:
    hk = dummy_hikey(0xFFFFFFFF)
    assert hk == b"\xff\xff\xff\xff\x00\x00" + struct.pack("<H", 8 | INDEX_ALT_TID_MASK)
    assert BTMaxItemSize == 2704


# -- redo: a few exact results -----------------------------------------------------------------
def test_meta_cleanup_rebuilds_the_metapage() -> None:
    meta = struct.pack("<6IB3x", 4, 3, 1, 3, 1, 17, 1)
    rec = record(btrm.XLOG_BTREE_META_CLEANUP, b"", [BlockSpec(0, RNODE, 0, 0, data=meta, will_init=True)])
    page = redo(0, None, rec)
    md = BTPageGetMeta(page)
    assert (md.btm_magic, md.btm_version, md.btm_root, md.btm_fastroot) == (BTREE_MAGIC, 4, 3, 3)
    assert (md.btm_last_cleanup_num_delpages, md.btm_last_cleanup_num_heap_tuples) == (17, -1.0)
    assert md.btm_allequalimage == 1
    assert pd_lower(page) == 72 and BTPageGetOpaque(bytearray(page)).btpo_flags == BTP_META
    assert btrm.desc(rec) == "last_cleanup_num_delpages 17"


def test_insert_leaf_and_post() -> None:
    base = btpage([int4_tuple(1, 1, 1), bt_posting(5, [(1, 2), (3, 2)])])
    rec = record(btrm.XLOG_BTREE_INSERT_LEAF, struct.pack("<H", 2),
                 [BlockSpec(0, RNODE, 0, 1, data=int4_tuple(0, 9, 9))])
    assert PageGetMaxOffsetNumber(redo(1, bytes(base), rec)) == 3
    rec = record(btrm.XLOG_BTREE_INSERT_POST, struct.pack("<H", 3),
                 [BlockSpec(0, RNODE, 0, 1, data=struct.pack("<H", 1) + int4_tuple(5, 2, 2))])
    page = bytearray(redo(1, bytes(base), rec))
    lp2, lp3 = PageGetItemId(page, 2), PageGetItemId(page, 3)
    assert page[lp2[0] : lp2[0] + lp2[2]] == bt_posting(5, [(1, 2), (2, 2)])
    assert page[lp3[0] : lp3[0] + lp3[2]] == int4_tuple(5, 3, 2)
    assert btrm.desc(rec) == "off 3"


def test_delete_with_two_items_uses_retail_delete() -> None:
    base = btpage([int4_tuple(k, 1, k) for k in range(1, 5)])
    rec = record(btrm.XLOG_BTREE_DELETE, struct.pack("<IHH", 700, 2, 0),
                 [BlockSpec(0, RNODE, 0, 1, data=struct.pack("<2H", 1, 3))])
    page = redo(1, bytes(base), rec)
    assert PageGetMaxOffsetNumber(page) == 2
    assert btrm.desc(rec) == "latestRemovedXid 700; ndeleted 2; nupdated 0"


def test_reuse_page_is_a_no_op() -> None:
    rec = record(btrm.XLOG_BTREE_REUSE_PAGE, struct.pack("<IIIIQ", 1663, 5, 16500, 9, (1 << 32) | 5), [])
    page = bytearray(btpage([int4_tuple(1, 1, 1)]))
    before = bytes(page)
    RedoEngine().apply(tag(9), page, rec)
    assert bytes(page) == before
    assert btrm.desc(rec) == "rel 1663/5/16500; latestRemovedXid 1:5"
    assert PG15.record_type(rec) == "Btree/REUSE_PAGE"


def test_delete_16_layout_appends_is_catalog_rel() -> None:
    """16's xl_btree_delete appends isCatalogRel: ndeleted and nupdated keep their offsets."""
    base = btpage([int4_tuple(k, 1, k) for k in range(1, 5)])
    rec = record(btrm.XLOG_BTREE_DELETE, struct.pack("<IHH?", 700, 2, 0, True),
                 [BlockSpec(0, RNODE, 0, 1, data=struct.pack("<2H", 1, 3))])
    for table in (PG16, PG17, PG18):
        page = RedoEngine(table).reconstruct(tag(1), bytes(base), [rec])
        assert PageGetMaxOffsetNumber(page) == 2


def test_vacuum_18_clears_the_cycle_id() -> None:
    """18's btree_xlog_vacuum also sets btpo_cycleid to 0; 15-17 keep it."""
    base = btpage([int4_tuple(k, 1, k) for k in range(1, 5)])
    BTPageGetOpaque(base).btpo_cycleid = 7
    rec = record(btrm.XLOG_BTREE_VACUUM, struct.pack("<HH", 1, 0),
                 [BlockSpec(0, RNODE, 0, 1, data=struct.pack("<H", 2))])
    cycleid = {t.major: BTPageGetOpaque(bytearray(RedoEngine(t).reconstruct(tag(1), bytes(base), [rec]))).btpo_cycleid
               for t in (PG15, PG16, PG17, PG18)}
    assert cycleid == {15: 7, 16: 7, 17: 7, 18: 0}
    assert PG18.routine(RM_BTREE_ID, btrm.XLOG_BTREE_VACUUM) is btrm.btree_xlog_vacuum_18


# -- malformed records: typed errors ---------------------------------------------------------
def _split(main: bytes, left: bytes, right: bytes) -> DecodedXLogRecord:
    return record(btrm.XLOG_BTREE_SPLIT_L, main, [
        BlockSpec(0, RNODE, 0, 1, data=left),
        BlockSpec(1, RNODE, 0, 2, data=right, will_init=True),
    ])


LEAF = bytes(btpage([int4_tuple(k, 1, k) for k in range(1, 4)]))

MALFORMED: dict[str, tuple[int, bytes | None, DecodedXLogRecord]] = {
    "short main data": (1, LEAF, record(btrm.XLOG_BTREE_SPLIT_R, b"\x00" * 4, [
        BlockSpec(0, RNODE, 0, 1), BlockSpec(1, RNODE, 0, 2, will_init=True)])),
    "zero-length tuple in page data": (2, None, _split(
        struct.pack("<IHHH", 0, 2, 2, 0), int4_tuple(0, 0, 0) + bt_pivot(1), bytes(8))),
    "tuple past page data": (2, None, _split(
        struct.pack("<IHHH", 0, 2, 2, 0), int4_tuple(0, 0, 0) + bt_pivot(1), int4_tuple(1, 1, 1)[:12])),
    "firstrightoff past the items": (1, LEAF, _split(
        struct.pack("<IHHH", 0, 9, 2, 0), int4_tuple(0, 0, 0) + bt_pivot(1), b"")),
    "missing left high key": (1, LEAF, _split(struct.pack("<IHHH", 0, 2, 2, 0), int4_tuple(0, 0, 0), b"")),
    "posting split of a plain tuple": (1, LEAF, record(btrm.XLOG_BTREE_INSERT_POST, struct.pack("<H", 2), [
        BlockSpec(0, RNODE, 0, 1, data=struct.pack("<H", 1) + int4_tuple(1, 1, 9))])),
    "posting split before item 1": (1, LEAF, record(btrm.XLOG_BTREE_INSERT_POST, struct.pack("<H", 1), [
        BlockSpec(0, RNODE, 0, 1, data=struct.pack("<H", 1) + int4_tuple(1, 1, 9))])),
    "dedup intervals truncated": (1, LEAF, record(btrm.XLOG_BTREE_DEDUP, struct.pack("<H", 3), [
        BlockSpec(0, RNODE, 0, 1, data=struct.pack("<HH", 1, 2))])),
    "vacuum offsets truncated": (1, LEAF, record(btrm.XLOG_BTREE_VACUUM, struct.pack("<HH", 5, 0), [
        BlockSpec(0, RNODE, 0, 1, data=struct.pack("<2H", 1, 2))])),
    "xl_btree_update truncated": (1, LEAF, record(btrm.XLOG_BTREE_VACUUM, struct.pack("<HH", 0, 1), [
        BlockSpec(0, RNODE, 0, 1, data=struct.pack("<HHH", 2, 4, 0))])),
    "deleted offset out of range": (1, LEAF, record(btrm.XLOG_BTREE_VACUUM, struct.pack("<HH", 3, 0), [
        BlockSpec(0, RNODE, 0, 1, data=struct.pack("<3H", 1, 2, 40))])),
    "metadata of the wrong size": (0, None, record(btrm.XLOG_BTREE_META_CLEANUP, b"", [
        BlockSpec(0, RNODE, 0, 0, data=b"\x04\x00", will_init=True)])),
    "halfdead parent offset past the items": (1, LEAF, record(
        btrm.XLOG_BTREE_MARK_PAGE_HALFDEAD, struct.pack("<H2xIIII", 3, 5, 0, 6, 1), [
            BlockSpec(0, RNODE, 0, 5, will_init=True), BlockSpec(1, RNODE, 0, 1)])),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_record_raises_redo_error(case: str) -> None:
    blk, base, rec = MALFORMED[case]
    with pytest.raises(RedoError) as ei:
        redo(blk, base, rec)
    assert ei.value.lsn == LSN0 and ei.value.rmgr == "Btree", str(ei.value)


# -- btree_mask ----------------------------------------------------------------------------------
def test_btree_mask_leaf_and_internal() -> None:
    page = btpage([int4_tuple(1, 1, 1), int4_tuple(2, 1, 2)])
    op = BTPageGetOpaque(page)
    op.btpo_flags = BTP_LEAF | BTP_HAS_GARBAGE | BTP_SPLIT_END
    op.btpo_cycleid = 77
    off, _f, length = PageGetItemId(page, 2)
    PageSetItemId(page, 2, off, LP_DEAD, length)
    page[200:300] = b"\xaa" * 100  # free space
    btree_mask(page, 1)
    assert page[0:8] == bytes(8) and page[200:300] == bytes(100)
    assert [PageGetItemId(page, i)[1] for i in (1, 2)] == [0, 0]
    assert (op.btpo_flags, op.btpo_cycleid) == (BTP_LEAF, 0)

    internal = btpage([bt_pivot(1, 3)])
    BTPageGetOpaque(internal).btpo_flags = 0
    btree_mask(internal, 2)
    assert PageGetItemId(internal, 1)[1] == LP_NORMAL

    bad = btpage([])
    set_pd_special(bad, BLCKSZ - 8)
    with pytest.raises(MaskError):
        btree_mask(bad, 3)
