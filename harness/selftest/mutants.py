"""Mutants: named, documented bugs in ONE pyredo redo routine.

A mutant is a resource-manager table with one routine replaced:
``mutant.table(PG15)`` is a new ``pyredo.rmgrlist.RmgrTable`` whose routine
for (rmgr, info) is the mutated one; ``PG15`` itself is untouched, so a
``RedoEngine`` over the mutated table and a clean ``RedoEngine()`` run side
by side in one process. Nothing in pyredo is patched: no module global, no
``REDO`` dict, no helper.

A mutant names the PostgreSQL majors whose table it mutates (``majors``,
default ``(15,)``): a routine 16+ shares with 15 (the same function in both
tables) lists them too, a routine new in a major (``heap_xlog_prune_freeze``,
17) gets mutants of its own. ``mutant.table(PG17)`` of a mutant that does not
list 17 is a MutantError; ``redodiff selftest --pg 17`` runs those that do.

How a mutant changes its routine (its ``mutation``, a function from the
original routine to the mutated one) is one of:

* ``after(fn)`` — the routine, then ``fn(ctx)`` changes what it left;
* ``around(before, after)`` — ``state = before(ctx)``, the routine, ``after(ctx, state)``;
* ``rewriting(rewrite)`` — the routine reads record data rewritten by ``rewrite(ctx)``;
* ``helper(name, make)`` — the routine runs with a broken helper: routines take
  the helpers a mutant may break as keyword-only parameters of the same name
  (``pyredo.rmgrlist.INJECTABLE_HELPERS``), so this is
  ``functools.partial(routine, name=make(original))``. The keyword is checked
  against the routine's signature when the mutant is built: a renamed helper
  makes the build (and the catalog's unit test) fail, it never silently stops
  the mutant from firing.

Each mutant says what it breaks (``description``), what kind of bug it is
(``category``), whether the change hides under PostgreSQL's consistency
masks (``masked``: then only the engine-vs-engine comparison, pyredo against
the wal-redo server, can see it), and for the ones modelled on a real
PostgreSQL redo bug, which one (``history``).

Built with a ``MutantStats`` (``mutant.table(PG15, stats)``), the mutated
routine also probes: it counts in THAT object how often it ran, how often it
redid a page, and how often the mutant *fired*: the mutated routine left a
page (bytes or LSN) different from what the original routine leaves on the
same input, checked by running the original on a copy of the page.
``fired == 0`` after a campaign means the workloads never reached the bug;
``fired > 0`` without a catch means the comparisons missed it.

The catalog is ``harness.selftest.catalog`` (one module per rmgr). Used by
``redodiff selftest`` (harness.selftest.runner) to score the harness, and by
``--mutant NAME`` on fuzz/replay/minimize/gate (``EngineSet.mutant``: worker
processes and fresh processes rebuild the mutated table from the name) so
an injected bug reproduces.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyredo.engine import RedoEngine
from pyredo.errors import RedoError
from pyredo.page import bufpage
from pyredo.rmgrlist import PG15, RmgrEntry, RmgrTable, table_for
from pyredo.xlogutils import BlkAction, RedoContext, RedoFn

Mutation = Callable[[RedoFn], RedoFn]  # the original routine -> the mutated routine
Rewrite = Callable[[RedoContext], tuple[bytes | None, dict[int, bytes]] | None]

CATEGORIES = {
    "flag": "wrong flag bits set or cleared",
    "offset": "off-by-one item offset",
    "lsn": "forgotten or wrong PageSetLSN",
    "free-space": "wrong free-space accounting (pd_lower / pd_upper / counters)",
    "compaction": "skipped compaction or deletion",
    "order": "wrong order of items",
    "data": "wrong tuple or record data",
    "image": "full-page image restored wrongly",
    "vm": "visibility map not maintained",
    "posting": "posting list mishandled",
    "link": "wrong page link (sibling, parent, chain)",
    "meta": "metapage not maintained",
}


class MutantError(Exception):
    """A mutant that cannot be built against a table (no such routine, no such helper keyword)."""


@dataclass
class MutantStats:
    """What one built mutant did: the mutated routine counts here (one object per
    mutated table, so engines never share counts)."""

    name: str | None = None
    calls: int = 0  # the routine ran
    redone: int = 0  # ... and some block of the record needed redo on the target page
    fired: int = 0  # ... and the mutant changed the outcome (page bytes or LSN, or an error)
    fired_on: list[str] = field(default_factory=list)  # the first pages (BufferTags) it fired on

    def fire(self, ctx: RedoContext) -> None:
        self.fired += 1
        if len(self.fired_on) < 10:
            self.fired_on.append(f"{ctx.tag} @ {ctx.record.lsn:X}")

    def to_json(self) -> dict[str, Any]:
        return {"calls": self.calls, "redone": self.redone, "fired": self.fired,
                "fired_on": list(self.fired_on)}


@dataclass(frozen=True)
class Mutant:
    """A named, documented bug in the redo routine for (rmgr, info): ``mutation``
    builds the mutated routine from the original; ``table(base)`` is ``base`` with
    that one routine replaced."""

    name: str
    rmgr_module: str  # the pyredo.rmgr module of the routine ("heap2"): RmgrEntry.module
    info: int  # key of the routine in that rmgr's redo column (info & opmask)
    description: str
    mutation: Mutation
    history: str = ""  # the real PostgreSQL bug it is modelled on, if any
    category: str = "data"
    masked: bool = False  # hidden by the consistency masks: only engine-vs-engine can see it
    majors: tuple[int, ...] = (15,)  # the PostgreSQL majors whose table it mutates
    # workload rules (generators.rules.RULE_NAMES) that produce its rare record type, and
    # the settings (name=value) it needs
    aim: tuple[str, ...] = ()

    @property
    def profile_aim(self) -> str:
        """What ``generators.rules.profile_named`` appends to the campaign's profile: ``@rule,rule``
        (its campaign draws those rules ten times as often)."""
        return f"@{','.join(self.aim)}" if self.aim else ""

    def applies_to(self, major: int) -> bool:
        return major in self.majors

    @property
    def helpers(self) -> tuple[str, ...]:
        """The helper keywords the mutation passes to the routine (``helper(...)`` mutants)."""
        return (self.mutation.name,) if isinstance(self.mutation, Helper) else ()

    def entry(self, base: RmgrTable = PG15) -> RmgrEntry:
        return base.by_module(self.rmgr_module)

    @property
    def rmid(self) -> int:
        return self.entry().id

    @property
    def record_type(self) -> str:
        """``Rmgr/TYPE`` of the routine it mutates in its first major's table (as coverage
        names record types)."""
        return self.type_name(table_for(self.majors[0]))

    def type_name(self, base: RmgrTable) -> str:
        """``Rmgr/TYPE`` of the routine it mutates, as ``base``'s major names it
        (Heap2 0x10 is PRUNE in 15, PRUNE_ON_ACCESS in 17)."""
        return self.entry(base).type_name(self.info)

    @property
    def rmgr(self) -> str:
        return self.entry().name

    def original(self, base: RmgrTable = PG15) -> RedoFn:
        """The routine this mutant replaces in ``base``; a MutantError when it does not
        apply to ``base``'s major."""
        if not self.applies_to(base.major):
            raise MutantError(f"mutant {self.name} mutates the PostgreSQL "
                              f"{', '.join(map(str, self.majors))} redo, not {base.major}'s")
        e = self.entry(base)
        routine = e.redo.get(self.info)
        if routine is None:
            raise MutantError(f"mutant {self.name}: {e.name} has no redo routine for info 0x{self.info:02X}")
        return routine

    def routine(self, base: RmgrTable = PG15, stats: MutantStats | None = None) -> RedoFn:
        """The mutated routine; with ``stats``, probing into it (see the module doc)."""
        original = self.original(base)
        try:
            mutated = self.mutation(original)
        except MutantError as e:
            raise MutantError(f"mutant {self.name}: {e}") from None
        return mutated if stats is None else _probing(original, mutated, stats)

    def table(self, base: RmgrTable = PG15, stats: MutantStats | None = None) -> RmgrTable:
        """``base`` with this mutant's routine replaced (a new table; ``base`` is untouched)."""
        return base.with_routine(self.entry(base).id, self.info, self.routine(base, stats))

    def engine(self, base: RmgrTable = PG15, stats: MutantStats | None = None, **kwargs: Any) -> RedoEngine:
        """A RedoEngine over the mutated table (``kwargs``: hint_bits_logged, server_version_num)."""
        return RedoEngine(self.table(base, stats), **kwargs)


def mutant(name: str, rmgr_module: str, info: int, category: str, description: str, mutation: Mutation, *,
           history: str = "", masked: bool = False, majors: tuple[int, ...] = (15,),
           aim: tuple[str, ...] = ()) -> Mutant:
    """A catalog entry (the catalog modules' one way to make a Mutant); checks its category."""
    if category not in CATEGORIES:
        raise ValueError(f"mutant {name}: unknown category {category!r}")
    if not majors:
        raise ValueError(f"mutant {name}: no major")
    return Mutant(name, rmgr_module, info, description, mutation, history, category, masked, tuple(majors),
                  tuple(aim))


# -- what a routine did ----------------------------------------------------------------------
def redone(ctx: RedoContext, block_id: int | None = None) -> bool:
    """Did the routine redo block ``block_id`` (any block if None) on the target page?"""
    if block_id is None:
        return BlkAction.BLK_NEEDS_REDO in ctx.actions.values()
    return ctx.actions.get(block_id) is BlkAction.BLK_NEEDS_REDO


def changed_by_routine(ctx: RedoContext, block_id: int) -> bool:
    """The routine wrote block ``block_id`` on the target: redone, or restored and re-applied."""
    return ctx.is_target(block_id) and ctx.actions.get(block_id) in (
        BlkAction.BLK_NEEDS_REDO, BlkAction.BLK_RESTORED)


def no_page_lsn_on_block0(ctx: RedoContext) -> None:
    """After the routine: it forgot PageSetLSN on block 0 (when it redid it)."""
    if redone(ctx, 0):
        ctx.keep_page_lsn()


# -- mutations ---------------------------------------------------------------------------------
def name_of(routine: RedoFn) -> str:
    """A routine's name, also through functools.partial."""
    fn: Any = routine
    while not hasattr(fn, "__name__") and hasattr(fn, "func"):
        fn = fn.func
    return str(getattr(fn, "__name__", repr(routine)))


def _named(routine: RedoFn, mutated: RedoFn) -> RedoFn:
    """``mutated`` under the routine's name (error messages name the C function)."""
    mutated.__name__ = mutated.__qualname__ = name_of(routine)
    mutated.__doc__ = routine.__doc__
    return mutated


def after(fn: Callable[[RedoContext], None]) -> Mutation:
    """The routine, then ``fn`` on its context."""

    def mutation(routine: RedoFn) -> RedoFn:
        def mutated(ctx: RedoContext) -> None:
            routine(ctx)
            fn(ctx)

        return _named(routine, mutated)

    return mutation


def around(before: Callable[[RedoContext], Any], after: Callable[[RedoContext, Any], None]) -> Mutation:
    """``state = before(ctx)``; the routine; ``after(ctx, state)``."""

    def mutation(routine: RedoFn) -> RedoFn:
        def mutated(ctx: RedoContext) -> None:
            state = before(ctx)
            routine(ctx)
            after(ctx, state)

        return _named(routine, mutated)

    return mutation


def rewriting(rewrite: Rewrite) -> Mutation:
    """The routine reads record data rewritten by ``rewrite(ctx)`` -> (main data,
    {block_id: block data}) (None: the record as it is). It runs on a context
    over the rewritten record and the same page; what it did (block actions, a
    kept LSN) is carried back to the engine's context."""

    def mutation(routine: RedoFn) -> RedoFn:
        def mutated(ctx: RedoContext) -> None:
            try:
                new = rewrite(ctx)
            except (struct.error, IndexError):
                new = None  # a record too short to rewrite: the routine reports it
            if new is None:
                routine(ctx)
                return
            inner = RedoContext(ctx.engine, _rewritten(ctx, *new), ctx.tag, ctx.page)
            try:
                routine(inner)
            except RedoError as e:
                inner.locate(e)
                raise
            finally:
                ctx.actions.update(inner.actions)
                if inner.lsn_kept:
                    ctx.keep_page_lsn()

        return _named(routine, mutated)

    return mutation


def _rewritten(ctx: RedoContext, main: bytes | None, blocks: dict[int, bytes]) -> Any:
    rec = ctx.record
    new_blocks = {i: dataclasses.replace(b, data=blocks[i], has_data=True) if i in blocks else b
                  for i, b in rec.blocks.items()}
    return dataclasses.replace(rec, main_data=rec.main_data if main is None else main, blocks=new_blocks)


@dataclass(frozen=True)
class Helper:
    """A mutation that runs the routine with helper ``name`` replaced by
    ``make(original helper)``: ``functools.partial(routine, name=...)``. The
    routine must take ``name`` as a keyword-only parameter with a default (the
    original helper); anything else is a MutantError."""

    name: str
    make: Callable[[Any], Any]

    def original(self, routine: RedoFn) -> Any:
        try:
            param = inspect.signature(routine).parameters.get(self.name)
        except (TypeError, ValueError) as e:
            raise MutantError(f"cannot read the signature of {routine!r}: {e}") from None
        if param is None or param.kind is not inspect.Parameter.KEYWORD_ONLY or param.default is param.empty:
            raise MutantError(f"redo routine {name_of(routine)} takes no keyword-only helper {self.name!r} "
                              f"(renamed? see pyredo.rmgrlist.INJECTABLE_HELPERS)")
        return param.default

    def __call__(self, routine: RedoFn) -> RedoFn:
        broken = self.make(self.original(routine))
        return functools.partial(routine, **{self.name: broken})


def helper(name: str, make: Callable[[Any], Any]) -> Mutation:
    """The routine with its keyword-only helper ``name`` replaced by ``make(original)``."""
    return Helper(name, make)


# -- the probe ---------------------------------------------------------------------------------
def _effective(page: bytes | bytearray, ctx: RedoContext) -> bytes:
    """The page as the engine leaves it after the routine (the LSN stamp included)."""
    out = bytearray(page)
    if not ctx.lsn_kept and BlkAction.BLK_NEEDS_REDO in ctx.actions.values():
        bufpage.PageSetLSN(out, ctx.lsn)
    return bytes(out)


def _probing(original: RedoFn, mutated: RedoFn, stats: MutantStats) -> RedoFn:
    """Run the mutated routine; count in ``stats`` whether it did anything the original
    would not have (the original runs first, on a copy of the page)."""

    def probe(ctx: RedoContext) -> None:
        stats.calls += 1
        shadow = RedoContext(ctx.engine, ctx.record, ctx.tag, bytearray(ctx.page))
        try:
            original(shadow)
            want: bytes | None = _effective(shadow.page, shadow)
        except Exception:
            want = None  # the unmutated routine fails on this input too
        try:
            mutated(ctx)
        except Exception:
            if want is not None:
                stats.fire(ctx)
            raise
        if redone(ctx):
            stats.redone += 1
        if want is not None and _effective(ctx.page, ctx) != want:
            stats.fire(ctx)

    return _named(original, probe)
