"""Mutants per PostgreSQL major: a mutant names the majors whose table it mutates and
builds on exactly those; every routine a later major adds or changes has a mutant; and
the new ones, run on their major's table, change redo while a clean engine of that
table, side by side, does not."""

from __future__ import annotations

import struct
from collections.abc import Callable
from functools import partial

import factories
import pytest
from factories import block, bt_page, int4_tuple

from harness.selftest.catalog import CATALOG, get
from harness.selftest.mutants import MutantError, MutantStats, name_of
from harness.verify.engines import EngineSet
from pyredo import BLCKSZ
from pyredo.engine import RedoEngine
from pyredo.errors import RedoError
from pyredo.page import bufpage
from pyredo.page.gist import F_LEAF, gistfillbuffer, gistinitpage
from pyredo.page.htup import HEAP_XMAX_INVALID, T_INFOMASK
from pyredo.page.nbtree import BTPageGetOpaque
from pyredo.rmgr import RM_BTREE_ID, RM_GIST_ID, RM_HEAP2_ID, RM_HEAP_ID, gist
from pyredo.rmgr import btree as bt
from pyredo.rmgr import heap as h
from pyredo.rmgr import heap2 as h2
from pyredo.rmgrlist import PG15, PG16, PG17, PG18, TABLES, RmgrTable
from pyredo.wal.record import (
    MAIN_FORKNUM,
    VISIBILITYMAP_FORKNUM,
    BufferTag,
    DecodedXLogRecord,
    RelFileNode,
)

RNODE = RelFileNode(1663, 5, 16384)
XID = 1000
HEAP = BufferTag(*RNODE, MAIN_FORKNUM, 0)
VM = BufferTag(*RNODE, VISIBILITYMAP_FORKNUM, 0)
BTREE: BufferTag = factories.tag(1)
FROZEN_INFOMASK = 0x0B00  # HEAP_XMIN_FROZEN | HEAP_XMAX_INVALID
_blk = partial(block, rnode=RNODE)


class _Wal(factories.Wal):
    xid, rnode, start = XID, RNODE, 0x1000100


record = _Wal().record


def _changed_routines() -> list[tuple[int, str, int]]:
    """(major, rmgr module, info) of every routine a 16+ table does not share with 15."""
    return [(t.major, r.module, info) for t in TABLES.values() if t.major > 15 for r in t
            for info, fn in r.redo.items() if fn is not PG15.by_module(r.module).redo.get(info)]


# -- which majors ------------------------------------------------------------------------------
def test_a_mutant_builds_on_the_majors_it_names_and_on_no_other() -> None:
    for m in CATALOG.values():
        assert m.majors and set(m.majors) <= set(TABLES), m.name
        for major, table in TABLES.items():
            if not m.applies_to(major):
                with pytest.raises(MutantError, match=f"not {major}'s"):
                    m.table(table)
                continue
            mutated = m.table(table, MutantStats(m.name))
            assert mutated.major == major
            for r in table:
                for info, routine in r.redo.items():
                    same = mutated.routine(r.id, info) is routine
                    assert same is not ((r.module, info) == (m.rmgr_module, m.info)), (m.name, major, r.name, info)


def test_every_routine_new_or_changed_in_a_later_major_has_a_mutant() -> None:
    changed = _changed_routines()
    assert len(changed) >= 15
    for major, module, info in changed:
        routine = TABLES[major].by_module(module).redo[info]
        assert any(m.applies_to(major) and (m.rmgr_module, m.info) == (module, info) for m in CATALOG.values()), \
            f"no PostgreSQL {major} mutant of {name_of(routine)} ({module} 0x{info:02X})"


def test_the_default_is_15_only_and_each_major_has_most_of_the_catalog() -> None:
    assert get("heap2_freeze_keeps_infomask").majors == (15,)  # 15's routine only
    for major in (16, 17, 18):
        assert sum(m.applies_to(major) for m in CATALOG.values()) >= 0.8 * len(CATALOG)


def test_a_mutant_names_its_record_type_as_each_major_does() -> None:
    m = get("heap2_prune_on_access_skips_compaction")
    assert m.record_type == m.type_name(PG17) == "Heap2/PRUNE_ON_ACCESS"
    assert get("heap2_prune_skips_compaction").type_name(PG15) == "Heap2/PRUNE"


def test_the_engine_set_builds_the_mutant_on_its_majors_table() -> None:
    class _Pg:  # what EngineSet reads of a PgInstall
        major = 17

    es = EngineSet(mutant="heap2_prune_on_access_skips_compaction", pg=_Pg())  # type: ignore[arg-type]
    assert es.pyredo_table().major == 17 and es.pyredo_table() is not PG17
    with pytest.raises(ValueError, match="PostgreSQL 17, 18 redo; this run is PostgreSQL 15"):
        EngineSet(mutant="heap2_prune_on_access_skips_compaction")
    with pytest.raises(ValueError, match="this run is PostgreSQL 17"):
        EngineSet(mutant="heap2_freeze_keeps_infomask", pg=_Pg())  # type: ignore[arg-type]


# -- side by side, per table ---------------------------------------------------------------------
def _insert(offnum: int, payload: bytes, init: bool = False) -> DecodedXLogRecord:
    data = h.XL_HEAP_HEADER.pack(1, HEAP_XMAX_INVALID, 24) + b"\0" + payload
    return record(RM_HEAP_ID, h.XLOG_HEAP_INSERT | (h.XLOG_HEAP_INIT_PAGE if init else 0),
                  h.XL_HEAP_INSERT.pack(offnum, 0), _blk(0, 0, data, will_init=init))


def _heap_page() -> bytes:
    return RedoEngine().reconstruct(HEAP, None, [_insert(i + 1, b"tuple %d" % i, i == 0) for i in range(4)])


def _prune17(info: int, flags: int, data: bytes) -> DecodedXLogRecord:
    main = h2.XL_HEAP_PRUNE_17.pack(2, flags | h2.XLHP_HAS_CONFLICT_HORIZON) + struct.pack("<I", XID)
    return record(RM_HEAP2_ID, info, main, _blk(0, 0, data))


def _freeze_16() -> tuple[BufferTag, bytes, DecodedXLogRecord]:
    plans = h2.XL_HEAP_FREEZE_PLAN.pack(0, 1, FROZEN_INFOMASK, 0, 2) + struct.pack("<2H", 1, 3)
    return HEAP, _heap_page(), record(RM_HEAP2_ID, h2.XLOG_HEAP2_FREEZE_PAGE,
                                      h2.XL_HEAP_FREEZE_PAGE_16.pack(XID, 1, False), _blk(0, 0, plans))


def _prune_on_access() -> tuple[BufferTag, bytes, DecodedXLogRecord]:
    flags = h2.XLHP_CLEANUP_LOCK | h2.XLHP_HAS_DEAD_ITEMS | h2.XLHP_HAS_NOW_UNUSED_ITEMS
    data = struct.pack("<2H", 1, 2) + struct.pack("<3H", 2, 3, 4)  # 2 dead, 3 and 4 unused
    return HEAP, _heap_page(), _prune17(0x10, flags, data)


def _prune_vacuum_scan() -> tuple[BufferTag, bytes, DecodedXLogRecord]:
    data = struct.pack("<Hxx", 1) + h2.XL_HEAP_FREEZE_PLAN.pack(0, 1, FROZEN_INFOMASK, 0, 2) + struct.pack("<2H", 1, 4)
    return HEAP, _heap_page(), _prune17(0x20, h2.XLHP_CLEANUP_LOCK | h2.XLHP_HAS_FREEZE_PLANS, data)


def _prune_vacuum_cleanup() -> tuple[BufferTag, bytes, DecodedXLogRecord]:
    dead = _prune17(0x10, h2.XLHP_CLEANUP_LOCK | h2.XLHP_HAS_DEAD_ITEMS, struct.pack("<3H", 2, 3, 4))
    page = RedoEngine(PG17).reconstruct(HEAP, _heap_page(), [dead])
    return HEAP, page, _prune17(0x30, h2.XLHP_HAS_NOW_UNUSED_ITEMS, struct.pack("<3H", 2, 3, 4))


def _delete_with_vm_reference() -> tuple[BufferTag, bytes, DecodedXLogRecord]:
    vm = bytearray(BLCKSZ)
    bufpage.PageInit(vm, BLCKSZ, 0)
    bufpage.PageSetLSN(vm, 0x100)
    vm[24] = 0xFF  # heap blocks 0-3 all-visible and all-frozen
    rec = record(RM_HEAP_ID, h.XLOG_HEAP_DELETE, h.XL_HEAP_DELETE.pack(4242, 2, 0, h.XLH_DELETE_ALL_VISIBLE_CLEARED),
                 _blk(0, 0), _blk(1, 0, fork=VISIBILITYMAP_FORKNUM))
    return VM, bytes(vm), rec


def _btree_vacuum() -> tuple[BufferTag, bytes, DecodedXLogRecord]:
    page = bt_page([int4_tuple(k, 1, k) for k in range(1, 5)])
    BTPageGetOpaque(page).btpo_cycleid = 7
    rec = factories.record(RM_BTREE_ID, bt.XLOG_BTREE_VACUUM, struct.pack("<HH", 1, 0),
                           block(0, 1, struct.pack("<H", 2)), lsn=0x2000000)
    return BTREE, bytes(page), rec


def _btree_vacuum_two() -> tuple[BufferTag, bytes, DecodedXLogRecord]:
    tag, page, _rec = _btree_vacuum()
    return tag, page, factories.record(RM_BTREE_ID, bt.XLOG_BTREE_VACUUM, struct.pack("<HH", 2, 0),
                                       block(0, 1, struct.pack("<2H", 2, 3)), lsn=0x2000000)


def _gist_delete_16(is_catalog_rel: bool = True) -> tuple[BufferTag, bytes, DecodedXLogRecord]:
    """A GiST leaf of 5 tuples; 16's DELETE of items 2 and 4 (offsets from byte 8)."""
    page = bytearray(BLCKSZ)
    gistinitpage(page, F_LEAF)
    gistfillbuffer(page, [struct.pack("<HHHH", 0, 100, i + 1, 24) + struct.pack("<dd", i, i) for i in range(5)], 1)
    bufpage.PageSetLSN(page, 0x100)
    main = gist.GISTXLOG_DELETE_16.pack(733, 2, is_catalog_rel) + struct.pack("<2H", 2, 4)
    return factories.tag(1), bytes(page), factories.record(RM_GIST_ID, gist.XLOG_GIST_DELETE, main, block(0, 1), lsn=0x2000000)


CASES: list[tuple[str, RmgrTable, Callable[[], tuple[BufferTag, bytes, DecodedXLogRecord]]]] = [
    ("heap2_freeze_plans_keep_infomask", PG16, _freeze_16),
    ("heap2_prune_on_access_skips_compaction", PG17, _prune_on_access),
    ("heap2_prune_on_access_skips_compaction", PG18, _prune_on_access),
    ("heap2_prune_vacuum_scan_keeps_infomask", PG17, _prune_vacuum_scan),
    ("heap2_prune_vacuum_cleanup_keeps_last_dead", PG17, _prune_vacuum_cleanup),
    ("heap_delete_vm_blkref_no_page_lsn", PG18, _delete_with_vm_reference),
    ("heap_delete_free_space_off", PG17, lambda: (HEAP, _heap_page(), record(
        RM_HEAP_ID, h.XLOG_HEAP_DELETE, h.XL_HEAP_DELETE.pack(4242, 2, 0, 0), _blk(0, 0)))),
    ("btree_vacuum_18_keeps_cycleid", PG18, _btree_vacuum),
    ("btree_vacuum_keeps_last_deleted", PG18, _btree_vacuum_two),
    ("gist_delete_16_offsets_at_15_position", PG16, _gist_delete_16),  # items 1 and 2 go instead
    ("gist_delete_16_offsets_at_15_position", PG17, _gist_delete_16),
]


@pytest.mark.parametrize(("name", "table", "case"), CASES, ids=[f"{n}-{t.major}" for n, t, _ in CASES])
def test_a_clean_and_a_mutated_engine_of_one_major_run_side_by_side(
        name: str, table: RmgrTable, case: Callable[[], tuple[BufferTag, bytes, DecodedXLogRecord]]) -> None:
    tag, base, rec = case()
    right = RedoEngine(table).reconstruct(tag, base, [rec])
    stats = MutantStats(name)
    mutated, clean = get(name).engine(table, stats), RedoEngine(table)
    for _ in range(2):
        assert mutated.reconstruct(tag, base, [rec]) != right
        assert clean.reconstruct(tag, base, [rec]) == right
    assert stats.calls == 2 and stats.fired == 2, stats
    assert clean.table is table and mutated.table.major == table.major


def test_a_17_mutant_keeps_its_helper_to_its_routine() -> None:
    """The prune mutants' broken helper reaches heap_xlog_prune_freeze with 17's
    ``lp_truncate_only``: PRUNE_VACUUM_CLEANUP still truncates the line pointer array."""
    tag, base, rec = _prune_vacuum_cleanup()
    out = get("heap2_prune_vacuum_cleanup_keeps_last_dead").engine(PG17).reconstruct(tag, base, [rec])
    assert bufpage.PageGetMaxOffsetNumber(out) == 4  # offset 4 stays LP_DEAD, so nothing to truncate
    infomask = struct.unpack_from("<H", out, bufpage.PageGetItemId(out, 1)[0] + T_INFOMASK)[0]
    assert infomask == HEAP_XMAX_INVALID


def test_gist_delete_offsets_read_at_15s_position_fail_on_a_user_relation() -> None:
    """isCatalogRel false: the first offset read is 0, which PageIndexMultiDelete rejects
    (as C does: "invalid index offnum", or "incorrect index offsets supplied" for more than
    two); the clean 16 routine deletes items 2 and 4."""
    tag, base, rec = _gist_delete_16(is_catalog_rel=False)
    assert bufpage.PageGetMaxOffsetNumber(RedoEngine(PG16).reconstruct(tag, base, [rec])) == 3
    stats = MutantStats("gist_delete_16_offsets_at_15_position")
    with pytest.raises(RedoError, match="invalid index offnum: 0"):
        get("gist_delete_16_offsets_at_15_position").engine(PG17, stats).reconstruct(tag, base, [rec])
    assert stats.fired == 1
