"""Mutants: named, documented bugs applied in-process to one pyredo routine.

A mutant wraps the routine in its rmgr's ``REDO`` table (the engine looks
routines up there at call time), so applying and undoing it is exact. Used by
``redodiff selftest`` to score the harness, and by ``--mutant NAME`` on
fuzz/replay/minimize so a fresh process can reproduce an injected bug.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pyredo.engine import RedoContext
from pyredo.page import bufpage

RedoFn = Callable[[RedoContext], None]
ENV = "REDODIFF_MUTANT"


@dataclass(frozen=True)
class Mutant:
    name: str
    rmgr_module: str  # pyredo.rmgr.<module>
    info: int  # key in that module's REDO table
    description: str
    wrap: Callable[[RedoFn], RedoFn]
    history: str = ""  # the real PostgreSQL bug it is modelled on, if any


def _after(fn: Callable[[RedoContext], None]) -> Callable[[RedoFn], RedoFn]:
    """A wrapper that runs the routine, then ``fn`` on its context."""

    def wrap(routine: RedoFn) -> RedoFn:
        def mutated(ctx: RedoContext) -> None:
            routine(ctx)
            fn(ctx)

        mutated.__name__ = routine.__name__
        return mutated

    return wrap


def _page_touched(ctx: RedoContext) -> bool:
    from pyredo.engine import BlkAction

    return BlkAction.BLK_NEEDS_REDO in ctx.actions.values()


def _keep_all_visible(ctx: RedoContext) -> None:
    if _page_touched(ctx):
        bufpage.PageSetAllVisible(ctx.page)


def _bump_upper(ctx: RedoContext) -> None:
    if _page_touched(ctx):
        bufpage.set_pd_upper(ctx.page, bufpage.pd_upper(ctx.page) - 8)


def _ctid_off_by_one(ctx: RedoContext) -> None:
    """The inserted tuple's t_ctid points one line pointer further."""
    if not _page_touched(ctx) or len(ctx.main_data) < 2:
        return
    offnum = int.from_bytes(ctx.main_data[0:2], "little")  # xl_heap_insert.offnum
    if not 0 < offnum <= bufpage.PageGetMaxOffsetNumber(ctx.page):
        return
    off, _flags, length = bufpage.PageGetItemId(ctx.page, offnum)
    if length >= 18:
        at = off + 16  # t_ctid.ip_posid
        ctx.page[at : at + 2] = (int.from_bytes(ctx.page[at : at + 2], "little") + 1).to_bytes(2, "little")


CATALOG: dict[str, Mutant] = {}


def register(m: Mutant) -> Mutant:
    CATALOG[m.name] = m
    return m


register(Mutant(
    "heap_insert_keeps_all_visible", "heap", 0x00,
    "heap_xlog_insert leaves PD_ALL_VISIBLE set on the heap page (forgets PageClearAllVisible)",
    _after(_keep_all_visible),
))
register(Mutant(
    "heap_insert_ctid_off_by_one", "heap", 0x00,
    "heap_xlog_insert sets the new tuple's t_ctid one line pointer too far (off-by-one item offset)",
    _after(_ctid_off_by_one),
))
register(Mutant(
    "heap_delete_free_space_off", "heap", 0x10,
    "heap_xlog_delete moves pd_upper 8 bytes down (wrong free-space accounting)",
    _after(_bump_upper),
))


def get(name: str) -> Mutant:
    try:
        return CATALOG[name]
    except KeyError:
        raise KeyError(f"unknown mutant {name!r}; known: {', '.join(sorted(CATALOG))}") from None


@contextmanager
def applied(name: str | None) -> Iterator[Mutant | None]:
    """Apply mutant ``name`` (None: nothing) for the duration of the block."""
    if not name:
        yield None
        return
    m = get(name)
    mod = importlib.import_module(f"pyredo.rmgr.{m.rmgr_module}")
    table = mod.REDO
    if m.info not in table:
        raise KeyError(f"mutant {name}: pyredo.rmgr.{m.rmgr_module} has no routine for info 0x{m.info:02X}")
    original = table[m.info]
    table[m.info] = m.wrap(original)
    try:
        yield m
    finally:
        table[m.info] = original


def apply_from_env() -> None:
    """Apply the mutant named by $REDODIFF_MUTANT for the life of the process (workers)."""
    name = os.environ.get(ENV)
    if name:
        cm = applied(name)
        cm.__enter__()
