"""The mutant catalog: big enough, spread over every rmgr, documented, and every
mutant applies and undoes exactly (REDO tables and patched helpers identical
before and after, also after an error or Ctrl-C inside the block)."""

from __future__ import annotations

import contextlib
import importlib
from typing import Any

import pytest
from test_heap_redo_unit import heap_page, heap_tag, insert

from harness.selftest import mutants
from harness.selftest.mutants import CATALOG, CATEGORIES, STATS, applied, get, suspended
from harness.selftest.runner import mutant_seed
from pyredo import BLCKSZ
from pyredo.engine import RedoContext, RedoEngine
from pyredo.page import bufpage
from pyredo.rmgr import RMGRS
from pyredo.wal.record import DecodedXLogRecord

HISTORICAL = {  # the real PostgreSQL redo bugs the catalog must model (issue 9)
    "btree_unlink_page_meta_loses_leaf",  # UNLINK_PAGE_META btpo_flags, wal_consistency_checking 2016
    "brin_insert_sets_evacuate_flag",  # BRIN_EVACUATE_PAGE masking
    "heap_hot_update_not_hot",  # a HOT-update redo mismatch
    "heap2_visible_vm_page_lsn_kept",  # VM page LSN handling
    "gin_posting_list_compression_edge",  # GIN posting-list compression edge
}


def _redo_tables() -> dict[str, dict[int, Any]]:
    return {r.module_name: dict(r.redo_table) for r in RMGRS.values() if r.redo_table}


def _patched_attrs() -> dict[str, Any]:
    out = {}
    for m in CATALOG.values():
        for p in m.patches:
            mod, attr = p.rsplit(".", 1)
            out[p] = getattr(importlib.import_module(mod), attr)
    return out


def test_catalog_has_at_least_40_mutants() -> None:
    assert len(CATALOG) >= 40


def test_every_rmgr_with_a_redo_table_has_a_mutant() -> None:
    covered = {m.rmgr_module for m in CATALOG.values()}
    with_redo = {r.module_name for r in RMGRS.values() if r.redo_table}
    assert with_redo, "no rmgr has a REDO table?"
    assert with_redo <= covered, f"rmgrs without a mutant: {sorted(with_redo - covered)}"


def test_every_mutant_is_documented_and_targets_a_real_routine() -> None:
    for m in CATALOG.values():
        assert m.name == m.name.strip() and " " not in m.name
        assert len(m.description) > 30, m.name
        assert m.category in CATEGORIES, m.name
        mod = importlib.import_module(f"pyredo.rmgr.{m.rmgr_module}")
        assert m.info in mod.REDO, f"{m.name}: no routine for 0x{m.info:02X}"
        assert "UNKNOWN" not in m.record_type, m.name
        for p in m.patches:
            modname, attr = p.rsplit(".", 1)
            assert hasattr(importlib.import_module(modname), attr), f"{m.name} patches missing {p}"


def test_the_historical_bugs_are_modelled_and_say_what_they_model() -> None:
    for name in HISTORICAL:
        assert len(get(name).history) > 60, name
    assert sum(1 for m in CATALOG.values() if m.history) >= len(HISTORICAL)


def test_the_catalog_spans_the_bug_categories() -> None:
    cats = {m.category for m in CATALOG.values()}
    for needed in ("flag", "offset", "lsn", "free-space", "compaction", "order", "image", "vm", "posting"):
        assert needed in cats, needed
    assert any(m.masked for m in CATALOG.values()), "no mutant only the engine comparison can see"


def test_every_mutant_applies_and_undoes_exactly() -> None:
    tables, attrs = _redo_tables(), _patched_attrs()
    for m in CATALOG.values():
        mod = importlib.import_module(f"pyredo.rmgr.{m.rmgr_module}")
        original = mod.REDO[m.info]
        with applied(m.name) as got:
            assert got is m
            assert mod.REDO[m.info] is not original
            assert mod.REDO[m.info].__name__ == original.__name__
            with suspended():
                assert mod.REDO[m.info] is original
            assert mod.REDO[m.info] is not original
        assert _redo_tables() == tables, f"{m.name} left a REDO table changed"
        assert _patched_attrs() == attrs, f"{m.name} left a helper patched"


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_a_mutant_is_undone_on_errors_and_ctrl_c(exc: BaseException) -> None:
    tables = _redo_tables()
    with pytest.raises(type(exc)), applied("btree_newroot_no_root_flag"):
        raise exc
    assert _redo_tables() == tables


def test_patched_helpers_are_restored_even_when_the_routine_fails() -> None:
    """Every mutated routine, called on a record it cannot redo (no data, no blocks):
    whatever it raises, the helpers it patched for the call are back."""
    tables, attrs = _redo_tables(), _patched_attrs()
    for m in CATALOG.values():
        rmid = next(r.id for r in RMGRS.values() if r.module_name == m.rmgr_module)
        rec = DecodedXLogRecord(lsn=0x2000000, end_lsn=0x2000080, tot_len=0, xid=5, prev=0, info=m.info,
                                rmid=rmid, crc=0, raw=b"", main_data=b"", blocks={})
        with applied(m.name):
            routine = importlib.import_module(f"pyredo.rmgr.{m.rmgr_module}").REDO[m.info]
            ctx = RedoContext(RedoEngine(), rec, heap_tag(), bytearray(BLCKSZ))
            with contextlib.suppress(Exception):
                routine(ctx)
            assert _patched_attrs() == attrs, f"{m.name} left a helper patched after a failing call"
        assert _redo_tables() == tables


def test_a_mutant_changes_redo_and_the_probe_counts_it() -> None:
    base, _recs = heap_page(3)
    last = insert(4, b"one more tuple")
    clean = RedoEngine().reconstruct(heap_tag(), base, [last])
    for name, differs_at in (("heap_insert_no_page_lsn", "lsn"), ("heap_insert_ctid_off_by_one", "tuple"),
                             ("heap_insert_keeps_all_visible", "flags")):
        with applied(name):
            bad = RedoEngine().reconstruct(heap_tag(), base, [last])
            assert STATS.name == name and STATS.calls == 1 and STATS.redone == 1 and STATS.fired == 1
            with suspended():
                assert RedoEngine().reconstruct(heap_tag(), base, [last]) == clean
        assert bad != clean, name
        if differs_at == "lsn":
            assert bufpage.PageGetLSN(bad) == bufpage.PageGetLSN(base) != bufpage.PageGetLSN(clean)
            assert bad[8:] == clean[8:]
        if differs_at == "flags":
            assert bufpage.PageIsAllVisible(bad) and not bufpage.PageIsAllVisible(clean)
    assert RedoEngine().reconstruct(heap_tag(), base, [last]) == clean


def test_a_mutant_that_does_not_apply_to_a_record_does_not_fire() -> None:
    _page, recs = heap_page(2)
    with applied("heap_delete_free_space_off"):  # a DELETE mutant; only INSERTs are replayed here
        RedoEngine().reconstruct(heap_tag(), None, recs)
        assert STATS.calls == 0 and STATS.fired == 0


def test_unknown_mutants_are_named() -> None:
    with pytest.raises(KeyError, match="unknown mutant 'nope'"), applied("nope"):
        pass


def test_mutant_seeds_are_deterministic_and_distinct() -> None:
    seeds = {mutant_seed(n) for n in CATALOG}
    assert len(seeds) == len(CATALOG)
    assert mutant_seed("heap_insert_no_page_lsn") == mutant_seed("heap_insert_no_page_lsn")
    assert mutant_seed("heap_insert_no_page_lsn", 1) != mutant_seed("heap_insert_no_page_lsn", 0)


def test_summary_counts_the_catalog() -> None:
    s = mutants.summary()
    assert sum(s.by_rmgr.values()) == len(CATALOG) == sum(s.by_category.values())
