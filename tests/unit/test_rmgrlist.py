"""The rmgr table (pyredo.rmgrlist), the record cursor and the package's structure:
one table per PostgreSQL major, routines looked up in the engine's own table,
helpers passed in (not patched), no import cycle inside pyredo."""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import struct
import types
from pathlib import Path

import pytest
from factories import RNODE, block, record, tag

from pyredo import BLCKSZ
from pyredo.engine import RedoEngine
from pyredo.errors import RedoError, UnsupportedRecord
from pyredo.page import bufpage
from pyredo.rmgr import RM_GENERIC_ID, RM_HEAP_ID, RM_XLOG_ID
from pyredo.rmgr import generic as genericrm
from pyredo.rmgrlist import PG15, PG16, PG17, TABLES, RmgrTable, _row
from pyredo.wal.record import XLR_RMGR_INFO_MASK, DecodedXLogRecord
from pyredo.xlogutils import RecordCursor, RedoContext

ROOT = Path(__file__).resolve().parents[2]
LSN = 0x2000000


def _generic(delta: bytes) -> DecodedXLogRecord:
    return record(RM_GENERIC_ID, 0, b"", block(0, 3, delta, rnode=RNODE), lsn=LSN, size=0x40, xid=9)


def _base() -> bytes:
    page = bytearray(BLCKSZ)
    bufpage.PageInit(page, BLCKSZ, 8)
    bufpage.set_pd_lower(page, 100)
    bufpage.set_pd_upper(page, 8000)
    bufpage.PageSetLSN(page, 0x100)
    return bytes(page)


# -- the table -----------------------------------------------------------------------------
def test_one_row_per_rmgr_in_rmgrlist_order() -> None:
    assert PG15.major == 15
    assert list(PG15.rows) == list(range(22))
    assert [r.name for r in PG15][:3] == ["XLOG", "Transaction", "Storage"]
    heap = PG15.rows[RM_HEAP_ID]
    assert (heap.name, heap.module, heap.mask, heap.opmask) == ("Heap", "heap", "heap_mask", 0x70)
    assert PG15.by_name("SPGist") is not None and PG15.by_name("SPGist").mask == "spg_mask"  # type: ignore[union-attr]
    assert PG15.by_module("heap2").name == "Heap2"
    assert PG15.rmgr_name(130) == "custom130"
    assert PG15.implemented("Heap/INSERT") and not PG15.implemented("Heap/NOPE")
    assert "Btree/SPLIT_L" in PG15.page_modifying_types()


def test_routine_lookup_and_unsupported_names_rmgr_info_and_major() -> None:
    assert PG15.routine(RM_GENERIC_ID, 0) is genericrm.generic_redo
    with pytest.raises(UnsupportedRecord, match=r"XLOG info 0x10 in PostgreSQL 15") as ei:
        PG15.routine(RM_XLOG_ID, 0x10, 0x1234)
    assert (ei.value.rmgr, ei.value.info, ei.value.lsn, ei.value.major) == ("XLOG", 0x10, 0x1234, 15)
    with pytest.raises(UnsupportedRecord, match="custom130"):
        PG15.routine(130, 0)


def test_with_routine_makes_a_new_table_and_leaves_the_original() -> None:
    def noop(ctx: RedoContext) -> None:
        """A routine that changes nothing."""

    patched = PG15.with_routine(RM_GENERIC_ID, 0x00, noop)
    assert isinstance(patched, RmgrTable) and patched is not PG15
    assert patched.routine(RM_GENERIC_ID, 0) is noop
    assert PG15.routine(RM_GENERIC_ID, 0) is genericrm.generic_redo
    assert genericrm.REDO[0] is genericrm.generic_redo  # the module's dict is not the table
    assert patched.rows[RM_HEAP_ID] is PG15.rows[RM_HEAP_ID]
    with pytest.raises(KeyError, match=r"XLOG has no redo routine for info 0x10 in the PostgreSQL 15"):
        PG15.with_routine(RM_XLOG_ID, 0x10, noop)
    with pytest.raises(KeyError, match="no resource manager 99"):
        PG15.with_routine(99, 0, noop)


def test_a_clean_and_a_patched_engine_run_side_by_side() -> None:
    """Each engine looks routines up in ITS table: a mutant engine and a clean one,
    alternating in one process, each give their own answer."""
    delta = struct.pack("<HH", 8100, 4) + b"ABCD"
    broken = functools.partial(genericrm.generic_redo, applyPageRedo=lambda ctx, page, d, b: None)
    clean = RedoEngine()
    mutant = RedoEngine(PG15.with_routine(RM_GENERIC_ID, 0x00, broken))
    for _ in range(2):
        good = clean.reconstruct(tag(3), _base(), [_generic(delta)])
        bad = mutant.reconstruct(tag(3), _base(), [_generic(delta)])
        assert good[8100:8104] == b"ABCD" and bad[8100:8104] == bytes(4)
        assert bufpage.PageGetLSN(good) == bufpage.PageGetLSN(bad) == LSN + 0x40
    assert RedoEngine().table is PG15


def test_errors_are_located_once_also_through_a_partial() -> None:
    def boom(ctx: RedoContext, *, helper: object = None) -> None:
        raise IndexError("past the end")

    engine = RedoEngine(PG15.with_routine(RM_GENERIC_ID, 0, functools.partial(boom, helper=1)))
    with pytest.raises(RedoError, match="redo routine boom failed: IndexError") as ei:
        engine.reconstruct(tag(3), _base(), [_generic(b"")])
    assert (ei.value.rmgr, ei.value.info, ei.value.lsn) == ("Generic", 0, LSN)

    def page_helper_error(ctx: RedoContext) -> None:
        page = ctx.read_buffer_for_redo(0)
        assert page is not None
        bufpage.PageIndexTupleDelete(page, 7)  # a page helper: raises without the record

    engine = RedoEngine(PG15.with_routine(RM_GENERIC_ID, 0, page_helper_error))
    with pytest.raises(bufpage.PageCorrupted) as pe:
        engine.reconstruct(tag(3), _base(), [_generic(b"")])
    assert (pe.value.rmgr, pe.value.lsn, pe.value.block_id) == ("Generic", LSN, 0)
    assert "block 0" in str(pe.value) and "rmgr Generic" in str(pe.value)


# -- helpers passed in ---------------------------------------------------------------------
@pytest.mark.parametrize(("table", "inj"), [(t, i) for t in TABLES.values() for i in t.injectable],
                         ids=lambda x: str(x.major) if isinstance(x, RmgrTable) else f"{x.module}-0x{x.info:02X}-{x.helper}")
def test_routine_takes_its_helper_as_a_keyword(table: RmgrTable, inj: object) -> None:
    """Every (module, info, helper) the mutation self-test injects, in every major's
    table: the routine there takes the helper as a keyword-only parameter of the same
    name that defaults to the module's function (a renamed helper fails here)."""
    module, info, helper = inj  # type: ignore[misc]
    routine = table.by_module(module).redo[info]
    param = inspect.signature(routine).parameters.get(helper)
    assert param is not None, f"{routine.__name__} takes no {helper}="
    assert param.kind is inspect.Parameter.KEYWORD_ONLY
    mod = importlib.import_module(f"pyredo.rmgr.{module}")
    default = getattr(mod, helper, None) or getattr(importlib.import_module("pyredo.wal.image"), helper)
    assert param.default is default
    assert routine.__doc__ and "Mirrors" in routine.__doc__


def test_every_redo_routine_names_its_c_twin() -> None:
    for table in TABLES.values():
        for r in table:
            for info, fn in r.redo.items():
                doc = getattr(fn, "__doc__", None) or ""
                assert "Mirrors" in doc or "in gist_redo" in doc, (table.major, r.name, info)


# -- one table per major, built from each module's *_SINCE columns ---------------------------
def _mod(**attrs: object) -> types.ModuleType:
    """A stand-in rmgr module: 15's columns plus ``attrs``."""
    mod = types.ModuleType("fake")
    mod.REDO = {0x00: _r15, 0x10: _r15b}  # type: ignore[attr-defined]
    mod.identify = {0x00: "A", 0x10: "B", 0x20: "C"}.get  # type: ignore[attr-defined]
    mod.PAGE_MODIFYING = (0x00, 0x10)  # type: ignore[attr-defined]
    mod.desc = lambda rec: "15"  # type: ignore[attr-defined]
    for k, v in attrs.items():
        setattr(mod, k, v)
    return mod


def _r15(ctx: RedoContext) -> None:
    """Mirrors a 15 routine."""


def _r15b(ctx: RedoContext) -> None:
    """Mirrors another 15 routine."""


def _r17(ctx: RedoContext) -> None:
    """Mirrors a 17 routine."""


def test_since_columns_apply_in_major_order() -> None:
    mod = _mod(MAJORS=(15, 16, 17, 18), REDO_SINCE={17: {0x10: None, 0x20: _r17}, 16: {0x00: _r17}},
               NAMES_SINCE={17: {0x20: "C17"}}, PAGE_MODIFYING_SINCE={17: (0x00, 0x20)},
               MASK_SINCE={18: "x_mask_18"}, DESC_SINCE={18: None})
    rows = {m: _row(1, "X", "x", "x_mask", m, mod) for m in (15, 16, 17, 18)}
    assert dict(rows[15].redo) == {0x00: _r15, 0x10: _r15b}
    assert dict(rows[16].redo) == {0x00: _r17, 0x10: _r15b}
    assert dict(rows[17].redo) == dict(rows[18].redo) == {0x00: _r17, 0x20: _r17}
    assert [rows[m].identify(0x20) for m in (15, 16, 17)] == ["C", "C", "C17"]
    assert rows[17].identify(0x10) == "B"  # names not renamed stay
    assert rows[16].page_modifying == (0x00, 0x10) and rows[18].page_modifying == (0x00, 0x20)
    assert [rows[m].mask for m in (15, 17, 18)] == ["x_mask", "x_mask", "x_mask_18"]
    assert rows[17].desc is not None and rows[17].desc is mod.desc and rows[18].desc is None


def test_a_major_not_in_majors_keeps_no_routine_and_no_desc() -> None:
    """Absent MAJORS means (15,); absent DESC_SINCE means 15's desc only for 15."""
    mod = _mod()
    row16 = _row(1, "X", "x", None, 16, mod)
    assert dict(row16.redo) == {} and row16.desc is None
    assert _row(1, "X", "x", None, 16, _mod(MAJORS=(15, 16))).desc is None
    row = _row(1, "X", "x", None, 17, _mod(MAJORS=(15, 16), REDO_SINCE={17: {0x20: _r17}}))
    assert dict(row.redo) == {}
    with pytest.raises(UnsupportedRecord, match=r"X info 0x00 in PostgreSQL 17"):
        RmgrTable(17, {1: row}).routine(1, 0x00)


def test_each_table_lists_the_helpers_of_its_own_routines() -> None:
    """A helper of a 15 routine stays listed in a later table only while that table
    runs the same routine; every listed one is checked against its signature above."""
    for table in TABLES.values():
        for inj in table.injectable:
            assert inj.info in table.by_module(inj.module).redo
    heap2 = {t.major: {(i.info, i.helper) for i in t.injectable if i.module == "heap2"}
             for t in (PG15, PG16, PG17)}
    assert heap2[16] == heap2[15]  # 16's FREEZE_PAGE and VISIBLE re-list theirs
    assert (0x20, "PageTruncateLinePointerArray") not in heap2[17]  # 17 has no VACUUM record
    assert {(0x20, "heap_page_prune_execute"), (0x30, "heap_execute_freeze_tuple")} <= heap2[17]


# -- the record cursor ----------------------------------------------------------------------
def test_record_cursor_reads_and_refuses_short_data() -> None:
    cur = RecordCursor(struct.pack("<HIB", 7, 9, 1) + b"xyz")
    assert cur.u16("a") == 7 and cur.u32("b") == 9 and cur.u8("c") == 1
    assert cur.remaining == 3 and not cur.at_end
    assert cur.take(2, "d") == b"xy" and cur.rest() == b"z" and cur.at_end
    with pytest.raises(RedoError, match=r"main data too short: e needs 2 bytes at offset 10 of 10"):
        cur.u16("e")
    cur = RecordCursor(struct.pack("<i", -1), "block 2 data")
    with pytest.raises(RedoError, match="block 2 data: negative n"):
        cur.count("n", 4)
    padded = RecordCursor(b"\x01\x00")
    assert padded.unpack(struct.Struct("<HH"), "tail not logged", size=2) == (1, 0)


def test_context_cursors_name_the_record_and_block() -> None:
    rec = _generic(b"\x01")
    ctx = RedoContext(RedoEngine(), rec, tag(3), bytearray(_base()))
    with pytest.raises(RedoError) as ei:
        ctx.block_data(0).u32("four bytes")
    assert (ei.value.rmgr, ei.value.lsn, ei.value.block_id) == ("Generic", LSN, 0)
    assert ctx.record.block_data(0) == b"\x01" and ctx.main_data().at_end


def test_named_info_masks() -> None:
    assert XLR_RMGR_INFO_MASK == 0xF0
    assert PG15.type_name(RM_XLOG_ID, 0xB3) == "XLOG/FPI"


# -- structure ---------------------------------------------------------------------------
def _pyredo_import_graph() -> dict[str, set[str]]:
    mods = {}
    for path in sorted((ROOT / "pyredo").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [f"{node.module}.{a.name}" for a in node.names]
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    graph[name].add(t)
    return graph


def test_no_import_cycle_in_pyredo() -> None:
    """Every import counts (module level, in functions, under TYPE_CHECKING)."""
    graph = _pyredo_import_graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = [*stack[stack.index(n):], n]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_rmgr_modules_never_import_the_table_or_the_engine() -> None:
    graph = _pyredo_import_graph()
    for m, deps in graph.items():
        if m.startswith("pyredo.rmgr.") or m in ("pyredo.xlogutils", "pyredo.rmgr"):
            assert not deps & {"pyredo.rmgrlist", "pyredo.engine"}, m
