"""Heap / Heap2 redo of PostgreSQL 16, 17 and 18 without PostgreSQL: hand-built records
in each major's layout (heapam_xlog.h of that major), replayed by that major's table.

Where a later record only re-encodes what 15 logged (16's freeze plans, 17's one
xl_heap_prune for PRUNE, VACUUM and FREEZE_PAGE), the test replays both and expects
the same page: the 15 routines are pinned by test_heap_redo_unit.py and real WAL.
"""

from __future__ import annotations

import struct
from functools import partial

import factories
import pytest
from factories import block

from pyredo import BLCKSZ
from pyredo.engine import RedoEngine
from pyredo.errors import RedoError
from pyredo.page import bufpage
from pyredo.page.htup import HEAP_XMAX_INVALID, T_INFOMASK, T_XMAX
from pyredo.page.visibilitymap import (
    VISIBILITYMAP_ALL_FROZEN,
    VISIBILITYMAP_ALL_VISIBLE,
    visibilitymap_get_status,
)
from pyredo.rmgr import RM_HEAP2_ID, RM_HEAP_ID
from pyredo.rmgr import heap as h
from pyredo.rmgr import heap2 as h2
from pyredo.rmgrlist import PG15, PG16, PG17, PG18
from pyredo.wal.record import (
    MAIN_FORKNUM,
    VISIBILITYMAP_FORKNUM,
    BufferTag,
    DecodedXLogRecord,
    RelFileNode,
)

RNODE = RelFileNode(1663, 5, 16384)
XID = 1000
_blk = partial(block, rnode=RNODE)
HEAP = BufferTag(*RNODE, MAIN_FORKNUM, 0)
VM = BufferTag(*RNODE, VISIBILITYMAP_FORKNUM, 0)
CATALOG_REL = 0x04  # VISIBILITYMAP_XLOG_CATALOG_REL (visibilitymapdefs.h, 16+)
FROZEN_INFOMASK = 0x0B00  # HEAP_XMIN_FROZEN | HEAP_XMAX_INVALID


class _Wal(factories.Wal):
    xid, rnode, start = XID, RNODE, 0x1000100


record = _Wal().record


def _insert(offnum: int, payload: bytes, init: bool = False) -> DecodedXLogRecord:
    data = h.XL_HEAP_HEADER.pack(1, HEAP_XMAX_INVALID, 24) + b"\0" + payload
    return record(RM_HEAP_ID, h.XLOG_HEAP_INSERT | (h.XLOG_HEAP_INIT_PAGE if init else 0),
                  h.XL_HEAP_INSERT.pack(offnum, 0), _blk(0, 0, data, will_init=init))


def _heap_page(n: int = 4) -> bytes:
    return RedoEngine().reconstruct(HEAP, None, [_insert(i + 1, b"t%d" % i, i == 0) for i in range(n)])


def _all_visible_vm() -> bytes:
    vm = bytearray(BLCKSZ)
    bufpage.PageInit(vm, BLCKSZ, 0)
    bufpage.PageSetLSN(vm, 0x100)
    vm[24] = 0xFF  # heap blocks 0-3 all-visible and all-frozen
    return bytes(vm)


def _same_but_lsn(a: bytes, b: bytes) -> bool:
    return a[8:] == b[8:]


# -- 16 ----------------------------------------------------------------------------------
def test_16_freeze_page_applies_each_plan_to_its_offsets() -> None:
    """xl_heap_freeze_page (16): nplans + isCatalogRel; block 0: plans, then offsets."""
    page = _heap_page()
    plans = h2.XL_HEAP_FREEZE_PLAN.pack(0, 1, FROZEN_INFOMASK, 0, 2) + h2.XL_HEAP_FREEZE_PLAN.pack(77, 1, 0x0900, 0, 1)
    offsets = struct.pack("<3H", 1, 3, 4)
    rec16 = record(RM_HEAP2_ID, h2.XLOG_HEAP2_FREEZE_PAGE, h2.XL_HEAP_FREEZE_PAGE_16.pack(XID, 2, True),
                   _blk(0, 0, plans + offsets))
    out = RedoEngine(PG16).reconstruct(HEAP, page, [rec16])
    tuples = (h2.XL_HEAP_FREEZE_TUPLE.pack(0, 1, 1, FROZEN_INFOMASK, 0)
              + h2.XL_HEAP_FREEZE_TUPLE.pack(0, 3, 1, FROZEN_INFOMASK, 0)
              + h2.XL_HEAP_FREEZE_TUPLE.pack(77, 4, 1, 0x0900, 0))
    rec15 = record(RM_HEAP2_ID, h2.XLOG_HEAP2_FREEZE_PAGE, h2.XL_HEAP_FREEZE_PAGE.pack(XID, 3), _blk(0, 0, tuples))
    assert _same_but_lsn(out, RedoEngine(PG15).reconstruct(HEAP, page, [rec15]))
    lp4 = bufpage.PageGetItemId(out, 4)[0]
    assert struct.unpack_from("<I", out, lp4 + T_XMAX)[0] == 77
    assert struct.unpack_from("<H", out, bufpage.PageGetItemId(out, 2)[0] + T_INFOMASK)[0] == HEAP_XMAX_INVALID
    assert bufpage.PageGetLSN(out) == rec16.end_lsn


def test_16_freeze_plan_naming_a_missing_tuple_is_an_error() -> None:
    page = _heap_page()
    rec = record(RM_HEAP2_ID, h2.XLOG_HEAP2_FREEZE_PAGE, h2.XL_HEAP_FREEZE_PAGE_16.pack(XID, 1, False),
                 _blk(0, 0, h2.XL_HEAP_FREEZE_PLAN.pack(0, 1, FROZEN_INFOMASK, 0, 1) + struct.pack("<H", 9)))
    with pytest.raises(RedoError, match="freeze plan for offset 9"):
        RedoEngine(PG16).reconstruct(HEAP, page, [rec])


@pytest.mark.parametrize("table", [PG16, PG17, PG18], ids=lambda t: str(t.major))
def test_visible_keeps_catalog_rel_off_the_vm_page(table) -> None:  # type: ignore[no-untyped-def]
    """16+: VISIBILITYMAP_XLOG_CATALOG_REL rides in the flags; only VALID_BITS reach the map
    (15's routine would set heap block 1's all-visible bit with it)."""
    rec = record(RM_HEAP2_ID, h2.XLOG_HEAP2_VISIBLE,
                 h2.XL_HEAP_VISIBLE.pack(XID, VISIBILITYMAP_ALL_VISIBLE | CATALOG_REL),
                 _blk(0, 0, fork=VISIBILITYMAP_FORKNUM), _blk(1, 0))
    out = RedoEngine(table).reconstruct(VM, None, [rec])
    assert visibilitymap_get_status(out, 0) == VISIBILITYMAP_ALL_VISIBLE
    assert visibilitymap_get_status(out, 1) == 0
    assert bufpage.PageGetLSN(out) == rec.end_lsn


def test_16_prune_reads_the_15_prefix_of_its_longer_record() -> None:
    page = _heap_page()
    data = struct.pack("<4H", 1, 2, 3, 4)  # redirect 1->2, 3 dead, 4 unused
    r16 = record(RM_HEAP2_ID, h2.XLOG_HEAP2_PRUNE, h2.XL_HEAP_PRUNE.pack(XID, 1, 1) + b"\x01", _blk(0, 0, data))
    r15 = record(RM_HEAP2_ID, h2.XLOG_HEAP2_PRUNE, h2.XL_HEAP_PRUNE.pack(XID, 1, 1), _blk(0, 0, data))
    assert _same_but_lsn(RedoEngine(PG16).reconstruct(HEAP, page, [r16]),
                         RedoEngine(PG15).reconstruct(HEAP, page, [r15]))


# -- 17 and 18: one xl_heap_prune ----------------------------------------------------------
def _prune17(info: int, flags: int, data: bytes) -> DecodedXLogRecord:
    main = h2.XL_HEAP_PRUNE_17.pack(2, flags | h2.XLHP_HAS_CONFLICT_HORIZON) + struct.pack("<I", XID)
    return record(RM_HEAP2_ID, info, main, _blk(0, 0, data))


@pytest.mark.parametrize("table", [PG17, PG18], ids=lambda t: str(t.major))
def test_prune_vacuum_scan_prunes_then_freezes_as_15_prune_and_freeze_page(table) -> None:  # type: ignore[no-untyped-def]
    page = _heap_page()
    flags = (h2.XLHP_CLEANUP_LOCK | h2.XLHP_HAS_FREEZE_PLANS | h2.XLHP_HAS_REDIRECTIONS
             | h2.XLHP_HAS_DEAD_ITEMS | h2.XLHP_HAS_NOW_UNUSED_ITEMS)
    data = (struct.pack("<Hxx", 1) + h2.XL_HEAP_FREEZE_PLAN.pack(0, 1, FROZEN_INFOMASK, 0, 1)
            + struct.pack("<3H", 1, 1, 2) + struct.pack("<2H", 1, 3) + struct.pack("<2H", 1, 4)
            + struct.pack("<H", 2))  # redirect 1->2, 3 dead, 4 unused, freeze 2
    out = RedoEngine(table).reconstruct(HEAP, page, [_prune17(0x20, flags, data)])
    prune = record(RM_HEAP2_ID, h2.XLOG_HEAP2_PRUNE, h2.XL_HEAP_PRUNE.pack(XID, 1, 1),
                   _blk(0, 0, struct.pack("<4H", 1, 2, 3, 4)))
    freeze = record(RM_HEAP2_ID, h2.XLOG_HEAP2_FREEZE_PAGE, h2.XL_HEAP_FREEZE_PAGE.pack(XID, 1),
                    _blk(0, 0, h2.XL_HEAP_FREEZE_TUPLE.pack(0, 2, 1, FROZEN_INFOMASK, 0)))
    assert _same_but_lsn(out, RedoEngine(PG15).reconstruct(HEAP, page, [prune, freeze]))
    assert table.type_name(RM_HEAP2_ID, 0x20) == "Heap2/PRUNE_VACUUM_SCAN"


def test_prune_vacuum_cleanup_without_cleanup_lock_truncates_like_15_vacuum() -> None:
    page = _heap_page()
    dead = record(RM_HEAP2_ID, h2.XLOG_HEAP2_PRUNE, h2.XL_HEAP_PRUNE.pack(XID, 0, 2), _blk(0, 0, struct.pack("<2H", 3, 4)))
    page = RedoEngine(PG15).reconstruct(HEAP, page, [dead])
    cleanup = _prune17(0x30, h2.XLHP_HAS_NOW_UNUSED_ITEMS, struct.pack("<3H", 2, 3, 4))
    out = RedoEngine(PG17).reconstruct(HEAP, page, [cleanup])
    vacuum = record(RM_HEAP2_ID, h2.XLOG_HEAP2_VACUUM, h2.XL_HEAP_VACUUM.pack(2), _blk(0, 0, struct.pack("<2H", 3, 4)))
    assert _same_but_lsn(out, RedoEngine(PG15).reconstruct(HEAP, page, [vacuum]))
    assert bufpage.PageGetMaxOffsetNumber(out) == 2  # line pointer array truncated


def test_prune_on_access_with_only_freeze_plans_changes_no_line_pointer() -> None:
    page = _heap_page()
    data = struct.pack("<Hxx", 1) + h2.XL_HEAP_FREEZE_PLAN.pack(0, 1, FROZEN_INFOMASK, 0, 2) + struct.pack("<2H", 1, 4)
    out = RedoEngine(PG17).reconstruct(HEAP, page, [_prune17(0x10, h2.XLHP_HAS_FREEZE_PLANS, data)])
    assert [bufpage.PageGetItemId(out, i) for i in (1, 2, 3, 4)] == [bufpage.PageGetItemId(page, i) for i in (1, 2, 3, 4)]
    assert struct.unpack_from("<H", out, bufpage.PageGetItemId(out, 4)[0] + T_INFOMASK)[0] == FROZEN_INFOMASK


def test_prune_record_cut_short_is_a_redo_error() -> None:
    page = _heap_page()
    rec = _prune17(0x10, h2.XLHP_HAS_DEAD_ITEMS | h2.XLHP_CLEANUP_LOCK, struct.pack("<2H", 3, 1))
    with pytest.raises(RedoError, match="dead offsets"):
        RedoEngine(PG17).reconstruct(HEAP, page, [rec])


# -- 17 and 18: the VM page as a block reference --------------------------------------------
def _delete(*, vm_ref: bool) -> DecodedXLogRecord:
    blocks = [_blk(0, 0)] + ([_blk(1, 0, fork=VISIBILITYMAP_FORKNUM)] if vm_ref else [])
    return record(RM_HEAP_ID, h.XLOG_HEAP_DELETE,
                  h.XL_HEAP_DELETE.pack(4242, 2, 0, h.XLH_DELETE_ALL_VISIBLE_CLEARED), *blocks)


@pytest.mark.parametrize("table", [PG17, PG18], ids=lambda t: str(t.major))
def test_delete_clears_the_vm_page_it_names_and_stamps_it_only_when_bits_change(table) -> None:  # type: ignore[no-untyped-def]
    rec = _delete(vm_ref=True)
    out = RedoEngine(table).reconstruct(VM, _all_visible_vm(), [rec])
    assert visibilitymap_get_status(out, 0) == 0 and visibilitymap_get_status(out, 1) == 3
    assert bufpage.PageGetLSN(out) == rec.end_lsn
    again = _delete(vm_ref=True)  # bits already clear: no PageSetLSN
    assert bufpage.PageGetLSN(RedoEngine(table).reconstruct(VM, out, [again])) == rec.end_lsn
    assert table.by_name("Heap").tags_changed_implicitly(rec) == []


def test_a_17_record_without_the_vm_reference_clears_it_as_15_does() -> None:
    rec = _delete(vm_ref=False)
    out = RedoEngine(PG17).reconstruct(VM, _all_visible_vm(), [rec])
    assert visibilitymap_get_status(out, 0) == 0 and bufpage.PageGetLSN(out) == 0x100  # no LSN, as in 15
    assert PG17.by_name("Heap").tags_changed_implicitly(rec) == [VM]
    # 15 ignores a block 1 it does not expect: visibilitymap_pin + clear, no LSN
    out15 = RedoEngine(PG15).reconstruct(VM, _all_visible_vm(), [_delete(vm_ref=True)])
    assert visibilitymap_get_status(out15, 0) == 0 and bufpage.PageGetLSN(out15) == 0x100


def test_update_vm_new_covers_both_blocks_on_one_vm_page() -> None:
    flags = h.XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED | h.XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED
    data = struct.pack("<HHB", 1, HEAP_XMAX_INVALID, 24) + b"\0new"
    rec = record(RM_HEAP_ID, h.XLOG_HEAP_UPDATE, h.XL_HEAP_UPDATE.pack(XID, 1, 0, flags, 0, 1),
                 _blk(0, 2, data), _blk(1, 0), _blk(2, 0, fork=VISIBILITYMAP_FORKNUM))
    out = RedoEngine(PG17).reconstruct(VM, _all_visible_vm(), [rec])
    assert [visibilitymap_get_status(out, b) for b in range(4)] == [0, 3, 0, 3]
    assert bufpage.PageGetLSN(out) == rec.end_lsn
    assert PG17.by_name("Heap").tags_changed_implicitly(rec) == []


@pytest.mark.parametrize(("rmid", "info", "main"), [
    (RM_HEAP_ID, h.XLOG_HEAP_LOCK, h.XL_HEAP_LOCK.pack(XID, 1, 0, h.XLH_LOCK_ALL_FROZEN_CLEARED)),
    (RM_HEAP2_ID, h2.XLOG_HEAP2_LOCK_UPDATED, h2.XL_HEAP_LOCK_UPDATED.pack(XID, 1, 0, h.XLH_LOCK_ALL_FROZEN_CLEARED)),
], ids=["lock", "lock_updated"])
def test_locks_clear_all_frozen_through_the_vm_reference(rmid: int, info: int, main: bytes) -> None:
    rec = record(rmid, info, main, _blk(0, 0), _blk(1, 0, fork=VISIBILITYMAP_FORKNUM))
    out = RedoEngine(PG18).reconstruct(VM, _all_visible_vm(), [rec])
    assert visibilitymap_get_status(out, 0) == VISIBILITYMAP_ALL_VISIBLE
    assert bufpage.PageGetLSN(out) == rec.end_lsn


def test_a_vm_reference_that_does_not_cover_the_heap_block_is_an_error() -> None:
    rec = record(RM_HEAP_ID, h.XLOG_HEAP_DELETE, h.XL_HEAP_DELETE.pack(1, 2, 0, h.XLH_DELETE_ALL_VISIBLE_CLEARED),
                 _blk(0, 0), _blk(1, 5, fork=VISIBILITYMAP_FORKNUM))
    with pytest.raises(RedoError, match="wrong buffer passed to visibilitymap_clear"):
        RedoEngine(PG17).reconstruct(BufferTag(*RNODE, VISIBILITYMAP_FORKNUM, 5), _all_visible_vm(), [rec])


def test_18_inplace_reads_offnum_ahead_of_the_invalidation_messages() -> None:
    page = _heap_page(2)
    main = struct.pack("<HxxIIBxxxi", 2, 5, 1663, 0, 0)  # offnum, dbId, tsId, relcacheInitFileInval, nmsgs
    rec = record(RM_HEAP_ID, h.XLOG_HEAP_INPLACE, main, _blk(0, 0, b"XY"))
    out = RedoEngine(PG18).reconstruct(HEAP, page, [rec])
    lp_off, _f, lp_len = bufpage.PageGetItemId(out, 2)
    assert out[lp_off + lp_len - 2 : lp_off + lp_len] == b"XY"
    assert VISIBILITYMAP_ALL_FROZEN == 2  # the constant the lock tests rely on
