"""The mutant catalog: big enough, spread over every rmgr, documented; every mutant
is a table with one routine replaced, built without touching any global state (PG15,
the rmgr modules' REDO tables and helpers are identical before and after); a
helper-replacing mutant names a keyword its routine really takes (a renamed helper
fails the build loudly); and a clean and a mutated engine run side by side."""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import pickle
from typing import Any

import pytest
from factories import block, record, tag

from harness.selftest.catalog import CATALOG, MODULES, get, summary
from harness.selftest.mutants import (
    CATEGORIES,
    Helper,
    Mutant,
    MutantError,
    MutantStats,
    after,
    helper,
)
from harness.selftest.runner import mutant_seed
from harness.verify.engines import EngineSet
from pyredo import BLCKSZ
from pyredo.engine import RedoEngine
from pyredo.page import bufpage
from pyredo.page.htup import HEAP_XMAX_INVALID
from pyredo.rmgr import RM_HEAP_ID
from pyredo.rmgr import heap as h
from pyredo.rmgrlist import PG15, table_for
from pyredo.wal.record import BufferTag, DecodedXLogRecord
from pyredo.xlogutils import RedoContext

HISTORICAL = {  # the real PostgreSQL redo bugs the catalog must model (issue 9)
    "btree_unlink_page_meta_loses_leaf",  # UNLINK_PAGE_META btpo_flags, wal_consistency_checking 2016
    "brin_insert_sets_evacuate_flag",  # BRIN_EVACUATE_PAGE masking
    "heap_hot_update_not_hot",  # a HOT-update redo mismatch
    "heap2_visible_vm_page_lsn_kept",  # VM page LSN handling
    "gin_posting_list_compression_edge",  # GIN posting-list compression edge
}


# the mutants of 15's redo (the tests below build on PG15; test_mutants_majors.py does every major)
PG15_MUTANTS = [m for m in CATALOG.values() if m.applies_to(15)]


# -- records: a heap page built by INSERTs --------------------------------------------------
def heap_tag() -> BufferTag:
    return tag(0)


def insert(offnum: int, payload: bytes, *, init: bool = False, lsn: int) -> DecodedXLogRecord:
    tup = h.XL_HEAP_HEADER.pack(1, HEAP_XMAX_INVALID, 24) + b"\0" + payload
    info = h.XLOG_HEAP_INSERT | (h.XLOG_HEAP_INIT_PAGE if init else 0)
    return record(RM_HEAP_ID, info, h.XL_HEAP_INSERT.pack(offnum, 0), block(0, 0, tup, will_init=init),
                  lsn=lsn)


def heap_page(n: int) -> tuple[bytes, list[DecodedXLogRecord]]:
    recs = [insert(i + 1, f"tuple {i}".encode(), init=(i == 0), lsn=0x100_0000 + 0x100 * i) for i in range(n)]
    return RedoEngine().reconstruct(heap_tag(), None, recs), recs


def one_more(n: int) -> DecodedXLogRecord:
    return insert(n + 1, b"one more tuple", lsn=0x200_0000)


# -- global state ---------------------------------------------------------------------------
def _globals() -> dict[str, Any]:
    """Everything a mutant must never change: PG15's redo columns, each rmgr module's
    REDO table, and every module attribute a routine's helper keyword defaults to."""
    out: dict[str, Any] = {f"PG15.{r.module}": dict(r.redo) for r in PG15}
    for r in PG15:
        mod = importlib.import_module(f"pyredo.rmgr.{r.module}")
        out[f"{r.module}.REDO"] = dict(getattr(mod, "REDO", {}))
    for inj in PG15.injectable:
        mod = importlib.import_module(f"pyredo.rmgr.{inj.module}")
        out[f"{inj.module}.{inj.helper}"] = getattr(mod, inj.helper, None)
    return out


# -- the catalog ----------------------------------------------------------------------------
def test_catalog_has_at_least_40_mutants() -> None:
    assert len(CATALOG) >= 40
    assert sum(len(m.MUTANTS) for m in MODULES) == len(CATALOG)


def test_every_rmgr_with_a_redo_table_has_a_mutant() -> None:
    covered = {m.rmgr_module for m in CATALOG.values()}
    with_redo = {r.module for r in PG15 if r.redo}
    assert with_redo, "no rmgr has a redo table?"
    assert with_redo <= covered, f"rmgrs without a mutant: {sorted(with_redo - covered)}"


def test_each_catalog_module_holds_one_rmgrs_mutants() -> None:
    for mod in MODULES:
        assert {m.rmgr_module for m in mod.MUTANTS} == {mod.__name__.rsplit(".", 1)[1]}, mod.__name__


def test_every_mutant_is_documented_and_targets_a_real_routine() -> None:
    for m in CATALOG.values():
        assert m.name == m.name.strip() and " " not in m.name
        assert len(m.description) > 30, m.name
        assert m.category in CATEGORIES, m.name
        for major in m.majors:
            assert m.info in table_for(major).by_module(m.rmgr_module).redo, f"{m.name}: no routine for 0x{m.info:02X}"
        assert "UNKNOWN" not in m.record_type, m.name


def test_the_historical_bugs_are_modelled_and_say_what_they_model() -> None:
    for name in HISTORICAL:
        assert len(get(name).history) > 60, name
    assert sum(1 for m in CATALOG.values() if m.history) >= len(HISTORICAL)


def test_the_catalog_spans_the_bug_categories() -> None:
    cats = {m.category for m in CATALOG.values()}
    for needed in ("flag", "offset", "lsn", "free-space", "compaction", "order", "image", "vm", "posting"):
        assert needed in cats, needed
    assert any(m.masked for m in CATALOG.values()), "no mutant only the engine comparison can see"


# -- a mutant is a table with one routine replaced ------------------------------------------------
def test_every_mutant_builds_a_new_table_with_one_routine_replaced() -> None:
    before = _globals()
    for m in PG15_MUTANTS:
        table = m.table(PG15, MutantStats(m.name))
        assert table is not PG15
        rmid = m.entry().id
        for r in PG15:
            for info, routine in r.redo.items():
                got = table.routine(r.id, info)
                if (r.id, info) == (rmid, m.info):
                    assert got is not routine, m.name
                else:
                    assert got is routine, f"{m.name} changed {r.name} 0x{info:02X} too"
        assert _globals() == before, f"{m.name} changed global state"


def test_helper_mutants_pass_a_keyword_their_routine_takes() -> None:
    """The helper is a keyword-only parameter of the routine (listed in the table's
    injectable helpers), and the broken helper takes the same arguments as the original."""
    injectable = {(i.module, i.info, i.helper) for i in PG15.injectable}
    helper_mutants = [m for m in PG15_MUTANTS if m.helpers]
    assert len(helper_mutants) >= 20
    for m in helper_mutants:
        assert isinstance(m.mutation, Helper)
        name = m.mutation.name
        assert (m.rmgr_module, m.info, name) in injectable, f"{m.name}: {name} is not an injectable helper"
        routine = m.routine(PG15)
        assert isinstance(routine, functools.partial) and set(routine.keywords) == {name}, m.name
        original = m.mutation.original(m.original())
        params = inspect.signature(original).parameters.values()
        args = [object() for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                and p.default is p.empty]
        kwargs = {p.name: object() for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty}
        inspect.signature(routine.keywords[name]).bind(*args, **kwargs)  # TypeError if it cannot


def test_a_renamed_helper_fails_the_build_loudly() -> None:
    m = get("heap2_prune_skips_compaction")
    renamed = Mutant("renamed", m.rmgr_module, m.info, m.description,
                     helper("heap_page_prune_execute_renamed", lambda orig: orig))
    with pytest.raises(MutantError, match="heap_page_prune_execute_renamed"):
        renamed.table(PG15)
    assert m.table(PG15) is not None


def test_a_mutant_of_a_routine_the_table_lacks_fails_the_build() -> None:
    missing = Mutant("missing", "heap", 0x0F, "a routine no table has: info 0x0F of Heap", after(lambda ctx: None))
    with pytest.raises(MutantError, match="no redo routine"):
        missing.table(PG15)


def test_every_mutated_routine_on_a_record_it_cannot_redo_leaves_globals_alone() -> None:
    """Every mutated routine, called on a record it cannot redo (no data, no blocks):
    whatever it raises, no global state changed."""
    before = _globals()
    for m in CATALOG.values():
        rec = record(m.entry().id, m.info, lsn=0x2000000, xid=5)
        base = table_for(m.majors[0])
        routine = m.routine(base, MutantStats(m.name))
        with contextlib.suppress(Exception):
            routine(RedoContext(RedoEngine(base), rec, heap_tag(), bytearray(BLCKSZ)))
        assert _globals() == before, m.name


# -- engines side by side -----------------------------------------------------------------------
def test_a_clean_and_a_mutated_engine_run_side_by_side() -> None:
    """Same record, two engines in one process, interleaved: the mutated one leaves
    a different page, the clean one still leaves the right one."""
    base, _recs = heap_page(3)
    rec = one_more(3)
    right = RedoEngine().reconstruct(heap_tag(), base, [rec])
    clean = RedoEngine()
    stats = MutantStats("heap_insert_ctid_off_by_one")
    mutated = get("heap_insert_ctid_off_by_one").engine(PG15, stats)
    for _ in range(2):
        bad = mutated.reconstruct(heap_tag(), base, [rec])
        good = clean.reconstruct(heap_tag(), base, [rec])
        assert bad != good
        assert good == right
    assert stats.calls == 2 and stats.fired == 2
    assert clean.table is PG15 and mutated.table is not PG15


def test_a_mutant_changes_redo_and_the_probe_counts_it() -> None:
    base, _recs = heap_page(3)
    last = one_more(3)
    clean = RedoEngine().reconstruct(heap_tag(), base, [last])
    for name, differs_at in (("heap_insert_no_page_lsn", "lsn"), ("heap_insert_ctid_off_by_one", "tuple"),
                             ("heap_insert_keeps_all_visible", "flags")):
        stats = MutantStats(name)
        bad = get(name).engine(PG15, stats).reconstruct(heap_tag(), base, [last])
        assert stats.calls == 1 and stats.redone == 1 and stats.fired == 1, (name, stats)
        assert stats.fired_on and str(heap_tag()) in stats.fired_on[0]
        assert bad != clean, name
        if differs_at == "lsn":
            assert bufpage.PageGetLSN(bad) == bufpage.PageGetLSN(base) != bufpage.PageGetLSN(clean)
            assert bad[8:] == clean[8:]
        if differs_at == "flags":
            assert bufpage.PageIsAllVisible(bad) and not bufpage.PageIsAllVisible(clean)
    assert RedoEngine().reconstruct(heap_tag(), base, [last]) == clean


def test_a_mutant_that_does_not_apply_to_a_record_does_not_fire() -> None:
    _page, recs = heap_page(2)
    stats = MutantStats("heap_delete_free_space_off")  # a DELETE mutant; only INSERTs are replayed here
    get("heap_delete_free_space_off").engine(PG15, stats).reconstruct(heap_tag(), None, recs)
    assert stats.calls == 0 and stats.fired == 0


def test_two_builds_of_one_mutant_count_apart() -> None:
    base, _recs = heap_page(2)
    rec = one_more(2)
    m = get("heap_insert_ctid_off_by_one")
    a, b = MutantStats(m.name), MutantStats(m.name)
    m.engine(PG15, a).reconstruct(heap_tag(), base, [rec])
    assert (a.calls, b.calls) == (1, 0)


# -- the engine set carries the mutant by name ---------------------------------------------
def test_engine_set_builds_the_mutated_table_and_workers_rebuild_it() -> None:
    es = EngineSet(mutant="heap_insert_ctid_off_by_one")
    assert es.pyredo_table() is es.pyredo_table() is not PG15
    stats = es.mutant_stats
    assert stats is not None and stats.name == "heap_insert_ctid_off_by_one"
    worker = pickle.loads(pickle.dumps(es))  # as multiprocessing sends it to a worker
    assert worker.mutant == es.mutant and worker.pyredo_table() is not es.pyredo_table()
    assert worker.mutant_stats is not stats
    assert EngineSet().pyredo_table() is PG15 and EngineSet().mutant_stats is None


def test_unknown_mutants_are_named() -> None:
    with pytest.raises(KeyError, match="unknown mutant 'nope'"):
        get("nope")
    with pytest.raises(ValueError, match="unknown mutant 'nope'"):
        EngineSet(mutant="nope")


def test_mutant_seeds_are_deterministic_and_distinct() -> None:
    seeds = {mutant_seed(n) for n in CATALOG}
    assert len(seeds) == len(CATALOG)
    assert mutant_seed("heap_insert_no_page_lsn") == mutant_seed("heap_insert_no_page_lsn")
    assert mutant_seed("heap_insert_no_page_lsn", 1) != mutant_seed("heap_insert_no_page_lsn", 0)


def test_summary_counts_the_catalog() -> None:
    s = summary()
    assert sum(s.by_rmgr.values()) == len(CATALOG) == sum(s.by_category.values())


def test_a_known_postgresql_issue_is_neither_a_catch_nor_a_false_alarm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20: on 17, a campaign of a mutant that never fired was 'caught' by the known
    create-database VM hole (a primary_differs page, no bundle). Known issues are skipped:
    the first unknown divergence is the catch."""
    from harness.campaign.fuzz import FuzzConfig, FuzzReport
    from harness.reports.schema import CampaignDivergence, DivergenceKind
    from harness.selftest import runner

    def div(kind: DivergenceKind, known: str | None) -> CampaignDivergence:
        return CampaignDivergence(kind, "1663/5/2836.vm blk 0", ["pyredo", "walredo"], "XLOG/FPI", known=known)

    found = [div(DivergenceKind.PRIMARY_DIFFERS, "create-database-wal-log-vm-hole"),
             div(DivergenceKind.ENGINE_DISAGREEMENT, None)]

    def campaign(fcfg: FuzzConfig, progress: Any) -> FuzzReport:
        rep = FuzzReport()
        for d in found:
            rep.iterations += 1
            rep.divergences.append(d)
            progress(rep)
        return rep

    monkeypatch.setattr(runner, "run_campaign", campaign)
    asked: list[CampaignDivergence] = []

    def attributed(d: CampaignDivergence) -> bool | None:
        asked.append(d)
        return None  # no bundle to replay: a catch

    run = runner.campaign_to_first_catch(FuzzConfig(iterations=2), attributed)
    assert run.first is not None and run.first[2] is found[1] and run.false_alarms == 0
    assert asked == [found[1]]  # the known one is never replayed or counted
    found.pop()
    run = runner.campaign_to_first_catch(FuzzConfig(iterations=1), lambda d: False)
    assert run.first is None and run.false_alarms == 0


def test_aimed_mutants_name_rules_that_exist() -> None:
    """A mutant of a record type few workloads write aims its campaign at the rules that
    write it (``Mutant.aim`` -> the profile ``ci@rule,...``): every name must be a rule, or
    the campaign's first workload fails; the deep index records' mutants are aimed."""
    from generators.rules import RULE_NAMES, profile_named

    aimed = {m.name: m for m in CATALOG.values() if m.aim}
    assert {"btree_insert_meta_skips_metapage", "btree_unlink_page_meta_loses_leaf", "gin_delete_page_no_delete_xid",
            "gist_page_delete_keeps_downlink"} <= set(aimed)
    for m in aimed.values():
        rules = tuple(a for a in m.aim if "=" not in a)  # the rest: settings fixed (name=value)
        assert rules and set(rules) <= set(RULE_NAMES), m.name
        assert profile_named("ci" + m.profile_aim).aim == rules
    assert next(m for m in CATALOG.values() if not m.aim).profile_aim == ""


def test_an_aimed_mutant_campaign_runs_the_aimed_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """run_mutant hands the campaign the profile aimed at the mutant's rules; an unaimed
    mutant's campaign keeps the plain profile (its workloads are the unaimed ones)."""
    from harness.selftest import runner

    seen: list[str] = []

    def fake_campaign(fcfg: Any, attributed: Any, on_iteration: Any = None) -> runner.CampaignRun:
        seen.append(fcfg.profile)
        return runner.CampaignRun()

    monkeypatch.setattr(runner, "campaign_to_first_catch", fake_campaign)
    cfg = runner.SelftestConfig(budget=1.0, engines=EngineSet(names=("pyredo",)), control=False)
    for name in ("gist_page_delete_keeps_downlink", "btree_newroot_no_root_flag"):
        runner.run_mutant(get(name), cfg, tmp_path)
    assert seen == ["ci@gist_page_delete", "ci"]
