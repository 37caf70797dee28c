"""Mutants: named, documented bugs applied in-process to one pyredo routine.

A mutant wraps the routine in its rmgr's ``REDO`` table (the engine looks
routines up there at call time), so applying and undoing it is exact: the
table entry is swapped on ``applied()`` and put back in a ``finally``, also on
Ctrl-C. Some mutants also patch a helper the routine calls (a name in the
rmgr module, or the engine's image restore) — only for the duration of one
call of that routine, restored in a ``finally``; ``Mutant.patches`` names
them. Nothing else in pyredo changes.

Each mutant says what it breaks (``description``), what kind of bug it is
(``category``), whether the change hides under PostgreSQL's consistency
masks (``masked``: then only the engine-vs-engine comparison, pyredo against
the wal-redo server, can see it), and for the ones modelled on a real
PostgreSQL redo bug, which one (``history``).

While a mutant is applied, ``STATS`` counts how often its routine ran, how
often it redid a page, and how often the mutant *fired*: the mutated routine
left a page (bytes or LSN) different from what the unmutated routine leaves
on the same input, checked by running the original on a copy of the page.
``fired == 0`` after a campaign means the workloads never reached the bug;
``fired > 0`` without a catch means the comparisons missed it.

Used by ``redodiff selftest`` (harness.selftest.runner) to score the harness, and by
``--mutant NAME`` on fuzz/replay/minimize/gate so a fresh process can
reproduce an injected bug.
"""

from __future__ import annotations

import importlib
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from pyredo import BLCKSZ
from pyredo.engine import BlkAction, RedoContext
from pyredo.page import bufpage

RedoFn = Callable[[RedoContext], None]
Wrap = Callable[[RedoFn], RedoFn]
ENV = "REDODIFF_MUTANT"

_U16 = struct.Struct("<H")

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


@dataclass(frozen=True)
class Mutant:
    name: str
    rmgr_module: str  # pyredo.rmgr.<module>
    info: int  # key in that module's REDO table
    description: str
    wrap: Wrap
    history: str = ""  # the real PostgreSQL bug it is modelled on, if any
    category: str = "data"
    masked: bool = False  # hidden by the consistency masks: only engine-vs-engine can see it
    patches: tuple[str, ...] = ()  # "module.attr" helpers patched during one call of the routine

    @property
    def record_type(self) -> str:
        """``Rmgr/TYPE`` of the routine it mutates (as coverage names record types)."""
        from pyredo.rmgr import RMGRS

        for r in RMGRS.values():
            if r.module_name == self.rmgr_module:
                return r.type_name(self.info)
        return f"{self.rmgr_module}/0x{self.info:02X}"

    @property
    def rmgr(self) -> str:
        return self.record_type.split("/", 1)[0]


@dataclass
class MutantStats:
    """What the applied mutant did (reset by ``applied``)."""

    name: str | None = None
    calls: int = 0  # the routine ran
    redone: int = 0  # ... and some block of the record needed redo on the target page
    fired: int = 0  # ... and the mutant changed the outcome (page bytes or LSN, or an error)
    fired_on: list[str] = field(default_factory=list)  # the first pages (BufferTags) it fired on

    def fire(self, ctx: RedoContext) -> None:
        self.fired += 1
        if len(self.fired_on) < 10:
            tag = f"{ctx.tag} @ {ctx.record.lsn:X}"
            self.fired_on.append(tag)

    def reset(self, name: str | None) -> None:
        self.name, self.calls, self.redone, self.fired = name, 0, 0, 0
        self.fired_on = []

    def to_json(self) -> dict[str, Any]:
        return {"calls": self.calls, "redone": self.redone, "fired": self.fired,
                "fired_on": list(self.fired_on)}


STATS = MutantStats()


# -- building blocks ---------------------------------------------------------------------
def _redone(ctx: RedoContext, block_id: int | None = None) -> bool:
    """Did the routine redo block ``block_id`` (any block if None) on the target page?"""
    if block_id is None:
        return BlkAction.BLK_NEEDS_REDO in ctx.actions.values()
    return ctx.actions.get(block_id) is BlkAction.BLK_NEEDS_REDO


def _changed_by_routine(ctx: RedoContext, block_id: int) -> bool:
    """The routine wrote block ``block_id`` on the target: redone, or restored and re-applied."""
    return ctx.is_target(block_id) and ctx.actions.get(block_id) in (
        BlkAction.BLK_NEEDS_REDO, BlkAction.BLK_RESTORED)


def _named(routine: RedoFn, mutated: RedoFn) -> RedoFn:
    mutated.__name__ = routine.__name__
    mutated.__qualname__ = routine.__qualname__
    mutated.__doc__ = routine.__doc__
    return mutated


def _after(fn: Callable[[RedoContext], None]) -> Wrap:
    """A wrapper that runs the routine, then ``fn`` on its context."""

    def wrap(routine: RedoFn) -> RedoFn:
        def mutated(ctx: RedoContext) -> None:
            routine(ctx)
            fn(ctx)

        return _named(routine, mutated)

    return wrap


def _around(before: Callable[[RedoContext], Any], after: Callable[[RedoContext, Any], None]) -> Wrap:
    """``state = before(ctx)``; the routine; ``after(ctx, state)``."""

    def wrap(routine: RedoFn) -> RedoFn:
        def mutated(ctx: RedoContext) -> None:
            state = before(ctx)
            routine(ctx)
            after(ctx, state)

        return _named(routine, mutated)

    return wrap


@contextmanager
def _swapped(module: ModuleType, attr: str, value: Any) -> Iterator[None]:
    old = getattr(module, attr)
    setattr(module, attr, value)
    try:
        yield
    finally:
        setattr(module, attr, old)


@dataclass(frozen=True)
class _Patching:
    """A Wrap: while the routine runs, ``module.attr`` is ``make(original)``; restored
    after every call, also when the routine raises. ``target`` names what it patches
    (a mutant's ``patches``)."""

    module_name: str
    attr: str
    make: Callable[[Any], Any]

    @property
    def target(self) -> str:
        return f"{self.module_name}.{self.attr}"

    def __call__(self, routine: RedoFn) -> RedoFn:
        module = importlib.import_module(self.module_name)

        def mutated(ctx: RedoContext) -> None:
            with _swapped(module, self.attr, self.make(getattr(module, self.attr))):
                routine(ctx)

        return _named(routine, mutated)


_patching = _Patching


class _RecordView:
    """The routine's context with some record data replaced: the same page,
    actions and engine (everything else is the real context's)."""

    __slots__ = ("_blocks", "_ctx", "_main")

    def __init__(self, ctx: RedoContext, main: bytes | None = None,
                 blocks: dict[int, bytes] | None = None) -> None:
        self._ctx = ctx
        self._main = main
        self._blocks = blocks or {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    @property
    def main_data(self) -> bytes:
        return self._main if self._main is not None else self._ctx.main_data

    def block_data(self, block_id: int) -> bytes:
        if block_id in self._blocks:
            return self._blocks[block_id]
        return self._ctx.block_data(block_id)


def _rewriting(rewrite: Callable[[RedoContext], tuple[bytes | None, dict[int, bytes]] | None]) -> Wrap:
    """The routine reads record data rewritten by ``rewrite(ctx)`` -> (main, {block: data})
    (None: the record as it is)."""

    def wrap(routine: RedoFn) -> RedoFn:
        def mutated(ctx: RedoContext) -> None:
            try:
                new = rewrite(ctx)
            except (struct.error, IndexError):
                new = None  # a record too short to rewrite: the routine reports it
            if new is None:
                routine(ctx)
            else:
                routine(_RecordView(ctx, new[0], new[1]))  # type: ignore[arg-type]

        return _named(routine, mutated)

    return wrap


def _u16(data: bytes | bytearray, off: int) -> int:
    return int(_U16.unpack_from(data, off)[0])


def _swap_item_ids(page: bytearray, a: int, b: int) -> None:
    pa, pb = bufpage.ItemIdOffset(a), bufpage.ItemIdOffset(b)
    ida = bytes(page[pa : pa + 4])
    page[pa : pa + 4] = page[pb : pb + 4]
    page[pb : pb + 4] = ida


def _swap_with_neighbour(page: bytearray, offnum: int, lowest: int = 1) -> None:
    """Item ``offnum`` and its next (or, at the end, previous) item trade line pointers:
    as if the item had gone in one slot off."""
    maxoff = bufpage.PageGetMaxOffsetNumber(page)
    if lowest <= offnum < maxoff:
        _swap_item_ids(page, offnum, offnum + 1)
    elif offnum == maxoff and offnum - 1 >= lowest:
        _swap_item_ids(page, offnum - 1, offnum)


def _tuple_off(page: bytearray, offnum: int, need: int = 24) -> int | None:
    """Byte offset of a normal item at ``offnum`` holding ``need`` bytes, else None."""
    if not 0 < offnum <= bufpage.PageGetMaxOffsetNumber(page):
        return None
    off, flags, length = bufpage.PageGetItemId(page, offnum)
    if flags != bufpage.LP_NORMAL or length < need or off + length > BLCKSZ:
        return None
    return int(off)


# -- the catalog -------------------------------------------------------------------------
CATALOG: dict[str, Mutant] = {}


def register(m: Mutant) -> Mutant:
    if m.name in CATALOG:
        raise ValueError(f"mutant {m.name} registered twice")
    if m.category not in CATEGORIES:
        raise ValueError(f"mutant {m.name}: unknown category {m.category!r}")
    CATALOG[m.name] = m
    return m


def _mutant(name: str, rmgr_module: str, info: int, category: str, description: str, wrap: Wrap, *,
            history: str = "", masked: bool = False, patches: Sequence[str] = ()) -> None:
    if isinstance(wrap, _Patching):
        patches = (*patches, wrap.target)
    register(Mutant(name, rmgr_module, info, description, wrap, history, category, masked, tuple(patches)))


# ---- XLOG ------------------------------------------------------------------------------
def _hole_moved(restore: Callable[..., bytes]) -> Callable[..., bytes]:
    def restore_block_image(blk: Any, lsn: int | None = None, **kw: Any) -> bytes:
        page = restore(blk, lsn, **kw)
        ho, hl = blk.hole_offset, blk.hole_length
        if hl == 0 or ho + hl + 8 > BLCKSZ:
            return page
        data = page[:ho] + page[ho + hl :]  # the image as logged: the page without its hole
        return data[: ho + 8] + bytes(hl) + data[ho + 8 :]

    return restore_block_image


_mutant(
    "xlog_fpi_hole_misplaced", "xlog", 0xB0, "image",
    "XLOG_FPI redo restores the image with its hole 8 bytes too far: the 8 bytes after the "
    "hole land before it (RestoreBlockImage computing the hole offset wrongly)",
    _patching("pyredo.engine", "restore_block_image", _hole_moved),
)


def _restored_lsn_is_start(ctx: RedoContext) -> None:
    if BlkAction.BLK_RESTORED in ctx.actions.values() and not bufpage.PageIsNew(ctx.page):
        bufpage.PageSetLSN(ctx.page, ctx.record.lsn)


_mutant(
    "xlog_fpi_for_hint_start_lsn", "xlog", 0xA0, "lsn",
    "XLOG_FPI_FOR_HINT redo stamps the restored page with the record's start LSN "
    "(ReadRecPtr) instead of its end (EndRecPtr)",
    _after(_restored_lsn_is_start), masked=True,
)


# ---- Heap ------------------------------------------------------------------------------
def _keep_all_visible(ctx: RedoContext) -> None:
    if _redone(ctx):
        bufpage.PageSetAllVisible(ctx.page)


def _bump_upper(ctx: RedoContext) -> None:
    if _redone(ctx):
        bufpage.set_pd_upper(ctx.page, bufpage.pd_upper(ctx.page) - 8)


def _ctid_off_by_one(ctx: RedoContext) -> None:
    """The inserted tuple's t_ctid points one line pointer further."""
    if not _redone(ctx, 0) or len(ctx.main_data) < 2:
        return
    offnum = _u16(ctx.main_data, 0)  # xl_heap_insert.offnum
    off = _tuple_off(ctx.page, offnum, 18)
    if off is not None:
        at = off + 16  # t_ctid.ip_posid
        ctx.page[at : at + 2] = _U16.pack((_u16(ctx.page, at) + 1) & 0xFFFF)


_mutant(
    "heap_insert_keeps_all_visible", "heap", 0x00, "flag",
    "heap_xlog_insert leaves PD_ALL_VISIBLE set on the heap page (forgets PageClearAllVisible); "
    "PD_ALL_VISIBLE is masked, so only the engine comparison sees it",
    _after(_keep_all_visible), masked=True,
)
_mutant(
    "heap_insert_ctid_off_by_one", "heap", 0x00, "offset",
    "heap_xlog_insert sets the new tuple's t_ctid one line pointer too far (off-by-one item offset)",
    _after(_ctid_off_by_one),
)
_mutant(
    "heap_delete_free_space_off", "heap", 0x10, "free-space",
    "heap_xlog_delete moves pd_upper 8 bytes down (wrong free-space accounting)",
    _after(_bump_upper),
)


def _no_lsn_block0(ctx: RedoContext) -> None:
    if _redone(ctx, 0):
        ctx.keep_page_lsn()


_mutant(
    "heap_insert_no_page_lsn", "heap", 0x00, "lsn",
    "heap_xlog_insert forgets PageSetLSN on the heap page: the page keeps its old LSN "
    "(LSNs are masked against the primary: only the engine comparison can see it)",
    _after(_no_lsn_block0), masked=True,
)


def _vm_snapshot(ctx: RedoContext) -> bytes | None:
    from pyredo.wal.record import VISIBILITYMAP_FORKNUM

    return bytes(ctx.page) if ctx.tag.fork == VISIBILITYMAP_FORKNUM else None


def _vm_restore(ctx: RedoContext, before: bytes | None) -> None:
    if before is not None and bytes(ctx.page) != before:
        ctx.page[:] = before


_mutant(
    "heap_delete_vm_bits_kept", "heap", 0x10, "vm",
    "heap_xlog_delete forgets visibilitymap_clear: the deleted tuple's heap block stays "
    "all-visible (and all-frozen) in the visibility map",
    _around(_vm_snapshot, _vm_restore),
)

_PREFIX, _SUFFIX = 1 << 5, 1 << 6  # XLH_UPDATE_PREFIX_FROM_OLD, XLH_UPDATE_SUFFIX_FROM_OLD


def _swap_prefix_suffix(ctx: RedoContext) -> tuple[bytes | None, dict[int, bytes]] | None:
    main = ctx.main_data
    flags = main[7]  # xl_heap_update.flags
    has_p, has_s = bool(flags & _PREFIX), bool(flags & _SUFFIX)
    if not (has_p or has_s):
        return None
    if has_p and has_s:  # both lengths logged: swap their values
        data = bytearray(ctx.block_data(0))
        data[0:2], data[2:4] = data[2:4], data[0:2]
        return None, {0: bytes(data)}
    # one of them logged: read it as the other one
    newflags = (flags & ~(_PREFIX | _SUFFIX)) | (_SUFFIX if has_p else _PREFIX)
    return main[:7] + bytes([newflags]) + main[8:], {}


_mutant(
    "heap_hot_update_prefix_suffix_swapped", "heap", 0x40, "data",
    "heap_xlog_update (HOT) swaps the prefix and suffix lengths it reuses from the old "
    "tuple version, rebuilding the new tuple's data wrongly",
    _rewriting(_swap_prefix_suffix),
)


def _clear_hot_updated(ctx: RedoContext) -> None:
    from pyredo.page.htup import HeapTupleHeader

    if not _redone(ctx, 0) or len(ctx.main_data) < 8:
        return
    off = _tuple_off(ctx.page, _u16(ctx.main_data, 4))  # xl_heap_update.old_offnum
    if off is not None:
        HeapTupleHeader(ctx.page, off).ClearHotUpdated()


_mutant(
    "heap_hot_update_not_hot", "heap", 0x40, "flag",
    "HOT-update redo mismatch: heap_xlog_update(hot_update=true) leaves the old version "
    "without HEAP_HOT_UPDATED (as a plain UPDATE would), breaking the replayed HOT chain",
    _after(_clear_hot_updated),
    history="A HOT-update replay mismatch of the kind wal_consistency_checking exists to find: "
            "heap_mask masks t_infomask hint bits but never t_infomask2, so a replayed HOT chain "
            "whose root lacks HEAP_HOT_UPDATED differs from the primary. Modelled on the HOT "
            "branch of heap_xlog_update, not on one upstream commit.",
)


def _xmax_hints_before(ctx: RedoContext) -> tuple[int, int] | None:
    from pyredo.page.htup import HEAP_XMAX_COMMITTED, HEAP_XMAX_INVALID, T_INFOMASK

    if len(ctx.main_data) < 6 or not ctx.is_target(0):
        return None
    offnum = _u16(ctx.main_data, 4)  # xl_heap_lock.offnum
    off = _tuple_off(ctx.page, offnum)
    if off is None:
        return None
    return offnum, _u16(ctx.page, off + T_INFOMASK) & (HEAP_XMAX_INVALID | HEAP_XMAX_COMMITTED)


def _restore_xmax_hints(ctx: RedoContext, before: tuple[int, int] | None) -> None:
    from pyredo.page.htup import HeapTupleHeader

    if before is None or not before[1] or not _redone(ctx, 0):
        return
    off = _tuple_off(ctx.page, before[0])
    if off is not None:
        htup = HeapTupleHeader(ctx.page, off)
        htup.t_infomask = htup.t_infomask | before[1]


_mutant(
    "heap_lock_keeps_xmax_invalid", "heap", 0x60, "flag",
    "heap_xlog_lock does not reset the tuple's xmax hint bits (HEAP_XMAX_INVALID, "
    "HEAP_XMAX_COMMITTED): the locked tuple still claims to have no valid xmax",
    _around(_xmax_hints_before, _restore_xmax_hints), masked=True,
    history="PostgreSQL commit a4d357bf (2016, Andres Freund) \"Make HEAP_LOCK/HEAP2_LOCK_UPDATED "
            "replay reset HEAP_XMAX_INVALID\": since 9.3 (0ac5ad5) the lock replay routines "
            "forgot to reset HEAP_XMAX_INVALID, so after crash recovery or promotion row locks "
            "of prepared transactions could be ignored.",
)


def _confirm_before(ctx: RedoContext) -> tuple[int, int, bytes] | None:
    """(offnum, neighbour, the speculative tuple's t_ctid before redo)."""
    if len(ctx.main_data) < 2 or not ctx.is_target(0):
        return None
    offnum = _u16(ctx.main_data, 0)  # xl_heap_confirm.offnum
    off = _tuple_off(ctx.page, offnum)
    if off is None:
        return None
    for other in (offnum - 1, offnum + 1):
        if _tuple_off(ctx.page, other) is not None:
            return offnum, other, bytes(ctx.page[off + 12 : off + 18])
    return None


def _confirm_wrong_tuple(ctx: RedoContext, before: tuple[int, int, bytes] | None) -> None:
    if before is None or not _redone(ctx, 0):
        return
    offnum, other, old_ctid = before
    off, other_off = _tuple_off(ctx.page, offnum), _tuple_off(ctx.page, other)
    if off is None or other_off is None:
        return
    new_ctid = bytes(ctx.page[off + 12 : off + 18])
    ctx.page[off + 12 : off + 18] = old_ctid  # the speculative tuple keeps its token
    ctx.page[other_off + 12 : other_off + 18] = new_ctid  # ... the neighbour gets its TID


_mutant(
    "heap_confirm_wrong_tuple", "heap", 0x50, "offset",
    "heap_xlog_confirm writes the confirmed TID into the neighbouring tuple's t_ctid; the "
    "speculative tuple keeps whatever t_ctid it had (off-by-one line pointer)",
    _around(_confirm_before, _confirm_wrong_tuple),
)


def _inplace_shifted(ctx: RedoContext) -> None:
    from pyredo.page.htup import HeapTupleHeader

    if not _redone(ctx, 0) or len(ctx.main_data) < 2:
        return
    off = _tuple_off(ctx.page, _u16(ctx.main_data, 0))  # xl_heap_inplace.offnum
    newtup = ctx.block_data(0)
    if off is None or len(newtup) < 2:
        return
    at = off + HeapTupleHeader(ctx.page, off).t_hoff
    ctx.page[at + 1 : at + len(newtup)] = newtup[: len(newtup) - 1]


_mutant(
    "heap_inplace_off_by_one", "heap", 0x70, "offset",
    "heap_xlog_inplace copies the new tuple data one byte past t_hoff (and drops its last byte)",
    _after(_inplace_shifted),
)


def _old_ctid_self(ctx: RedoContext) -> None:
    if len(ctx.main_data) < 8:
        return
    old_block_id = 1 if ctx.record.block(1) is not None else 0
    if not _redone(ctx, old_block_id):
        return
    old_offnum = _u16(ctx.main_data, 4)
    off = _tuple_off(ctx.page, old_offnum)
    if off is not None:
        from pyredo.page.htup import HeapTupleHeader

        HeapTupleHeader(ctx.page, off).set_ctid(ctx.tag.blk, old_offnum)


_mutant(
    "heap_update_old_ctid_self", "heap", 0x20, "link",
    "heap_xlog_update leaves the old version's t_ctid pointing at itself instead of at the "
    "new version (a broken update chain)",
    _after(_old_ctid_self),
)


# ---- Heap2 -----------------------------------------------------------------------------
def _prune_without_compaction(execute: Callable[..., None]) -> Callable[..., None]:
    def heap_page_prune_execute(page: bytearray, redirected: Any, nowdead: Any, nowunused: Any) -> None:
        for fromoff, tooff in redirected:
            bufpage.ItemIdSetRedirect(page, fromoff, tooff)
        for off in nowdead:
            bufpage.ItemIdSetDead(page, off)
        for off in nowunused:
            bufpage.ItemIdSetUnused(page, off)

    return heap_page_prune_execute


_mutant(
    "heap2_prune_skips_compaction", "heap2", 0x10, "compaction",
    "heap_xlog_prune rewrites the line pointers but skips PageRepairFragmentation: the "
    "pruned tuples' space is not reclaimed and pd_upper stays",
    _patching("pyredo.rmgr.heap2", "heap_page_prune_execute", _prune_without_compaction),
)
_mutant(
    "heap2_vacuum_keeps_lp_array", "heap2", 0x20, "free-space",
    "heap_xlog_vacuum skips PageTruncateLinePointerArray: trailing LP_UNUSED line pointers "
    "stay and pd_lower is not lowered",
    _patching("pyredo.rmgr.heap2", "PageTruncateLinePointerArray", lambda orig: lambda page: None),
)


def _freeze_keeps_infomask(orig: Callable[..., None]) -> Callable[..., None]:
    def heap_execute_freeze_tuple(htup: Any, xmax: int, infomask2: int, infomask: int, frzflags: int) -> None:
        keep = htup.t_infomask
        orig(htup, xmax, infomask2, infomask, frzflags)
        htup.t_infomask = keep

    return heap_execute_freeze_tuple


_mutant(
    "heap2_freeze_keeps_infomask", "heap2", 0x30, "flag",
    "heap_xlog_freeze_page applies xmax and t_infomask2 of each freeze plan but keeps the "
    "old t_infomask: xmin is never marked frozen",
    _patching("pyredo.rmgr.heap2", "heap_execute_freeze_tuple", _freeze_keeps_infomask),
)
_mutant(
    "heap2_visible_no_pd_all_visible", "heap2", 0x40, "vm",
    "heap_xlog_visible sets the visibility-map bits but not PD_ALL_VISIBLE on the heap "
    "page (masked against the primary: only the engine comparison sees it)",
    _patching("pyredo.rmgr.heap2", "PageSetAllVisible", lambda orig: lambda page: None),
    masked=True,
    history="Modelled on PostgreSQL commit 95aa823e (2014, Heikki Linnakangas) \"Set the "
            "all-visible flag on heap page before writing WAL record, not after\": a VM bit could "
            "end up set without PD_ALL_VISIBLE on the heap page; found by comparing master and "
            "standby page images after every record.",
)


def _vm_set_without_lsn(orig: Callable[..., bool]) -> Callable[..., bool]:
    def visibilitymap_set(page: bytearray, heap_blk: int, flags: int, lsn: int) -> bool:
        keep = bufpage.PageGetLSN(page)
        changed = orig(page, heap_blk, flags, lsn)
        bufpage.PageSetLSN(page, keep)
        return changed

    return visibilitymap_set


_mutant(
    "heap2_visible_vm_page_lsn_kept", "heap2", 0x40, "lsn",
    "heap_xlog_visible sets the bits on the visibility-map page without advancing its LSN "
    "(visibilitymap_set forgets PageSetLSN)",
    _patching("pyredo.rmgr.heap2", "visibilitymap_set", _vm_set_without_lsn),
    masked=True,
    history="VM page LSN handling: since 9.2 made the visibility map crash-safe, replay of "
            "XLOG_HEAP2_VISIBLE must stamp the record's LSN on the map page when it sets bits "
            "(visibilitymap_set), and may bump the heap page's LSN only when "
            "XLogHintBitIsNeeded() — the interlock the comments in heap_xlog_visible describe. "
            "Modelled on that rule rather than on one upstream commit.",
)


def _drop_last_multi_insert(ctx: RedoContext) -> None:
    if not _redone(ctx, 0) or len(ctx.main_data) < 4:
        return
    ntuples = _u16(ctx.main_data, 2)
    if ntuples == 0:
        return
    if ctx.info & 0x80:  # XLOG_HEAP_INIT_PAGE: offsets 1..ntuples
        last = ntuples
    else:
        last = _u16(ctx.main_data, 4 + 2 * (ntuples - 1))
    if 0 < last <= bufpage.PageGetMaxOffsetNumber(ctx.page):
        bufpage.ItemIdSetUnused(ctx.page, last)


_mutant(
    "heap2_multi_insert_drops_last", "heap2", 0x50, "offset",
    "heap_xlog_multi_insert loses the batch's last tuple (its line pointer stays LP_UNUSED): "
    "an off-by-one loop bound",
    _after(_drop_last_multi_insert),
)


def _xmax_before(ctx: RedoContext) -> tuple[int, int] | None:
    from pyredo.page.htup import T_XMAX

    if len(ctx.main_data) < 6 or not ctx.is_target(0):
        return None
    offnum = _u16(ctx.main_data, 4)  # xl_heap_lock_updated.offnum
    off = _tuple_off(ctx.page, offnum)
    return None if off is None else (offnum, int(struct.unpack_from("<I", ctx.page, off + T_XMAX)[0]))


def _restore_xmax(ctx: RedoContext, before: tuple[int, int] | None) -> None:
    from pyredo.page.htup import HeapTupleHeader

    if before is None or not _redone(ctx, 0):
        return
    off = _tuple_off(ctx.page, before[0])
    if off is not None:
        HeapTupleHeader(ctx.page, off).SetXmax(before[1])


_mutant(
    "heap2_lock_updated_keeps_xmax", "heap2", 0x60, "data",
    "heap_xlog_lock_updated sets the lock's infomask bits but keeps the tuple's old xmax",
    _around(_xmax_before, _restore_xmax),
)


# ---- Btree -----------------------------------------------------------------------------
def _btree_insert_off_by_one(ctx: RedoContext) -> None:
    if _redone(ctx, 0) and len(ctx.main_data) >= 2:
        _swap_with_neighbour(ctx.page, _u16(ctx.main_data, 0))


_mutant(
    "btree_insert_leaf_off_by_one", "btree", 0x00, "offset",
    "btree_xlog_insert puts the new leaf tuple one item off (it trades places with its neighbour)",
    _after(_btree_insert_off_by_one),
)
_mutant(
    "btree_insert_upper_keeps_incomplete_split", "btree", 0x10, "flag",
    "btree_xlog_insert (INSERT_UPPER) forgets _bt_clear_incomplete_split: the split child "
    "keeps BTP_INCOMPLETE_SPLIT",
    _patching("pyredo.rmgr.btree", "_bt_clear_incomplete_split", lambda orig: lambda ctx, block_id: None),
)
_mutant(
    "btree_insert_meta_skips_metapage", "btree", 0x20, "meta",
    "btree_xlog_insert (INSERT_META) forgets _bt_restore_meta: the metapage keeps the old "
    "root / fast root",
    _patching("pyredo.rmgr.btree", "_bt_restore_meta", lambda orig: lambda ctx, block_id: None),
)


def _left_loses_leaf(ctx: RedoContext) -> None:
    from pyredo.page.nbtree import BTP_LEAF, BTPageGetOpaque

    if _redone(ctx, 0):
        op = BTPageGetOpaque(ctx.page)
        op.btpo_flags = op.btpo_flags & ~BTP_LEAF


_mutant(
    "btree_split_l_loses_leaf_flag", "btree", 0x30, "flag",
    "btree_xlog_split (SPLIT_L) rebuilds the left half without BTP_LEAF in btpo_flags",
    _after(_left_loses_leaf),
)


def _right_items_swapped(ctx: RedoContext) -> None:
    from pyredo.page.nbtree import P_FIRSTDATAKEY, BTPageGetOpaque

    if not _redone(ctx, 1):
        return
    page = ctx.page
    maxoff = bufpage.PageGetMaxOffsetNumber(page)
    if maxoff - 1 >= P_FIRSTDATAKEY(BTPageGetOpaque(page)):
        _swap_item_ids(page, maxoff - 1, maxoff)


_mutant(
    "btree_split_r_items_out_of_order", "btree", 0x40, "order",
    "btree_xlog_split (SPLIT_R) restores the new right page with its last two items in the "
    "wrong order",
    _after(_right_items_swapped),
)


def _short_last_interval(ctx: RedoContext) -> tuple[bytes | None, dict[int, bytes]] | None:
    nintervals = _u16(ctx.main_data, 0)
    data = bytearray(ctx.block_data(0))
    if nintervals == 0 or len(data) < 4 * nintervals:
        return None
    at = 4 * (nintervals - 1) + 2  # BTDedupInterval.nitems of the last interval
    nitems = _u16(data, at)
    if nitems < 2:
        return None
    data[at : at + 2] = _U16.pack(nitems - 1)
    return None, {0: bytes(data)}


_mutant(
    "btree_dedup_last_interval_short", "btree", 0x60, "posting",
    "btree_xlog_dedup merges one item too few into the last posting list (off-by-one interval length)",
    _rewriting(_short_last_interval),
)


def _multi_delete_keeps_last(orig: Callable[..., None]) -> Callable[..., None]:
    def PageIndexMultiDelete(page: bytearray, itemnos: Sequence[int]) -> None:
        orig(page, list(itemnos)[:-1])

    return PageIndexMultiDelete


_mutant(
    "btree_vacuum_keeps_last_deleted", "btree", 0xC0, "compaction",
    "btree_xlog_vacuum deletes all but the last of the logged items (off-by-one loop bound)",
    _patching("pyredo.rmgr.btree", "PageIndexMultiDelete", _multi_delete_keeps_last),
)


def _multi_delete_shifted(orig: Callable[..., None]) -> Callable[..., None]:
    def PageIndexMultiDelete(page: bytearray, itemnos: Sequence[int]) -> None:
        maxoff = bufpage.PageGetMaxOffsetNumber(page)
        shifted = sorted({o + 1 if o + 1 <= maxoff else o for o in itemnos})
        orig(page, shifted)

    return PageIndexMultiDelete


_mutant(
    "btree_delete_off_by_one", "btree", 0x70, "offset",
    "btree_xlog_delete deletes the item after each logged offset (off-by-one item offsets)",
    _patching("pyredo.rmgr.btree", "PageIndexMultiDelete", _multi_delete_shifted),
)


def _target_loses_leaf(ctx: RedoContext) -> None:
    from pyredo.page.nbtree import BTP_LEAF, BTPageGetOpaque

    if _redone(ctx, 0):
        op = BTPageGetOpaque(ctx.page)
        op.btpo_flags = op.btpo_flags & ~BTP_LEAF


_mutant(
    "btree_unlink_page_meta_loses_leaf", "btree", 0x90, "flag",
    "btree_xlog_unlink_page (UNLINK_PAGE_META) marks the deleted leaf BTP_DELETED only, "
    "without BTP_LEAF",
    _after(_target_loses_leaf),
    history="The first inconsistency wal_consistency_checking reported while it was being "
            "written (Kuntal Ghosh, pgsql-hackers \"WAL consistency check facility\", "
            "2016-09-07): \"For Btree/UNLINK_PAGE_META, btpo_flags are different. In backup "
            "page, BTP_DELETED and BTP_LEAF both the flags are set\" — replay rebuilt the "
            "deleted page without BTP_LEAF; btree_xlog_unlink_page now re-adds it for leaves.",
)


def _newroot_not_root(ctx: RedoContext) -> None:
    from pyredo.page.nbtree import BTP_ROOT, BTPageGetOpaque

    if _redone(ctx, 0):
        op = BTPageGetOpaque(ctx.page)
        op.btpo_flags = op.btpo_flags & ~BTP_ROOT


_mutant(
    "btree_newroot_no_root_flag", "btree", 0xA0, "flag",
    "btree_xlog_newroot builds the new root without BTP_ROOT in btpo_flags",
    _after(_newroot_not_root),
)


def _swap_posting_keeps_newitem(orig: Callable[..., bytearray]) -> Callable[..., bytearray]:
    def _bt_swap_posting(newitem: bytearray, oposting: Any, postingoff: int) -> bytearray:
        return orig(bytearray(newitem), oposting, postingoff)  # newitem's TID is never swapped

    return _bt_swap_posting


_mutant(
    "btree_insert_post_split_mishandled", "btree", 0x50, "posting",
    "btree_xlog_insert (INSERT_POST) mishandles the posting-list split: the new item keeps "
    "its own heap TID instead of taking the posting list's old maximum TID (_bt_swap_posting "
    "only half done)",
    _patching("pyredo.rmgr.btree", "_bt_swap_posting", _swap_posting_keeps_newitem),
)


# ---- Hash ------------------------------------------------------------------------------
def _meta_ntuples_unchanged(block_id: int) -> Callable[[RedoContext], None]:
    def fn(ctx: RedoContext) -> None:
        from pyredo.page.hash import HashPageGetMeta

        if _redone(ctx, block_id):
            if ctx.info & 0xF0 == 0x20:  # INSERT: undo the +1
                HashPageGetMeta(ctx.page).hashm_ntuples -= 1
            elif len(ctx.main_data) >= 8:  # VACUUM_ONE_PAGE: undo the -ntuples
                HashPageGetMeta(ctx.page).hashm_ntuples += struct.unpack_from("<i", ctx.main_data, 4)[0]

    return fn


_mutant(
    "hash_insert_meta_ntuples_stale", "hash", 0x20, "meta",
    "hash_xlog_insert forgets to count the new tuple in the metapage's hashm_ntuples",
    _after(_meta_ntuples_unchanged(1)),
)


def _old_bucket_prev_before(ctx: RedoContext) -> int | None:
    from pyredo.page.hash import HashPageGetOpaque

    if not ctx.is_target(0) or bufpage.PageIsNew(ctx.page):
        return None
    try:
        return int(HashPageGetOpaque(ctx.page).hasho_prevblkno)
    except Exception:
        return None


def _old_bucket_prev_restore(ctx: RedoContext, before: int | None) -> None:
    from pyredo.page.hash import HashPageGetOpaque

    if before is not None and _redone(ctx, 0):
        HashPageGetOpaque(ctx.page).hasho_prevblkno = before


_mutant(
    "hash_split_allocate_stale_maxbucket", "hash", 0x40, "link",
    "hash_xlog_split_allocate_page sets the old bucket's flags but not its hasho_prevblkno "
    "(the maxbucket a primary bucket page records at a split)",
    _around(_old_bucket_prev_before, _old_bucket_prev_restore),
)


def _new_bucket_still_populated(ctx: RedoContext) -> None:
    from pyredo.page.hash import LH_BUCKET_BEING_POPULATED, HashPageGetOpaque

    if _changed_by_routine(ctx, 1):
        op = HashPageGetOpaque(ctx.page)
        op.hasho_flag = op.hasho_flag | LH_BUCKET_BEING_POPULATED


_mutant(
    "hash_split_complete_keeps_populated", "hash", 0x60, "flag",
    "hash_xlog_split_complete leaves LH_BUCKET_BEING_POPULATED on the new bucket",
    _after(_new_bucket_still_populated),
)


def _spare_before(ctx: RedoContext) -> tuple[int, int] | None:
    from pyredo.page.hash import HashPageGetMeta

    if not ctx.is_target(4) or bufpage.PageIsNew(ctx.page):
        return None
    try:
        metap = HashPageGetMeta(ctx.page)
        return int(metap.hashm_ovflpoint), int(metap.get_spare(metap.hashm_ovflpoint))
    except Exception:
        return None


def _spare_restore(ctx: RedoContext, before: tuple[int, int] | None) -> None:
    from pyredo.page.hash import HashPageGetMeta

    if before is not None and _redone(ctx, 4):
        HashPageGetMeta(ctx.page).set_spare(before[0], before[1])


_mutant(
    "hash_add_ovfl_page_spares_stale", "hash", 0x30, "meta",
    "hash_xlog_add_ovfl_page allocates the overflow page from a new bit but does not count "
    "it in the metapage's hashm_spares[ovflpoint]",
    _around(_spare_before, _spare_restore),
)


def _moved_tuples_reversed(ctx: RedoContext) -> tuple[bytes | None, dict[int, bytes]] | None:
    from pyredo.page.bufpage import MAXALIGN

    ntups = _u16(ctx.main_data, 8)  # xl_hash_squeeze_page.ntups
    data = ctx.block_data(1)
    if ntups < 2 or len(data) < 2 * ntups:
        return None
    tuples, pos = [], 2 * ntups
    while pos + 8 <= len(data):
        size = MAXALIGN(_u16(data, pos + 6) & 0x1FFF)
        if size == 0:
            return None
        tuples.append(data[pos : pos + size])
        pos += size
    if len(tuples) != ntups or pos != len(data):
        return None
    return None, {1: data[: 2 * ntups] + b"".join(reversed(tuples))}


_mutant(
    "hash_squeeze_moved_tuples_reversed", "hash", 0x80, "order",
    "hash_xlog_squeeze_page pairs the tuples it moves onto the write page with the logged "
    "offsets in reverse order: the moved tuples land in the wrong slots",
    _rewriting(_moved_tuples_reversed),
)
_mutant(
    "hash_squeeze_bitmap_bit_kept", "hash", 0x80, "free-space",
    "hash_xlog_squeeze_page frees the overflow page but does not clear its bit in the "
    "bitmap page (CLRBIT skipped): the page stays allocated",
    _patching("pyredo.rmgr.hash", "CLRBIT", lambda orig: lambda page, bit: None),
)
_mutant(
    "hash_vacuum_one_page_ntuples_stale", "hash", 0xC0, "meta",
    "hash_xlog_vacuum_one_page removes the dead tuples but does not subtract them from the "
    "metapage's hashm_ntuples",
    _after(_meta_ntuples_unchanged(1)),
)


# ---- Gin -------------------------------------------------------------------------------
def _gin_entry_off_by_one(ctx: RedoContext) -> None:
    if not _redone(ctx, 0) or len(ctx.main_data) < 2:
        return
    if _u16(ctx.main_data, 0) & 0x01:  # GIN_INSERT_ISDATA: not an entry page
        return
    data = ctx.block_data(0)
    if len(data) >= 2:
        _swap_with_neighbour(ctx.page, _u16(data, 0))  # ginxlogInsertEntry.offset


_mutant(
    "gin_entry_insert_off_by_one", "gin", 0x20, "offset",
    "ginRedoInsertEntry puts the entry tuple one item off (it trades places with its neighbour)",
    _after(_gin_entry_off_by_one),
)
_mutant(
    "gin_update_meta_list_maxoff_stale", "gin", 0x60, "free-space",
    "ginRedoUpdateMetapage appends the row's tuples to the pending-list tail page but does not "
    "count the heap tuple in its maxoff",
    _patching("pyredo.rmgr.gin", "GinPageSetMaxoff", lambda orig: lambda page, maxoff: None),
)

GinPostingListSegmentMinSize = 128  # gindatapage.c: Min 128, Target 256, Max 384


def _compress_capped(orig: Callable[..., tuple[bytes, int]]) -> Callable[..., tuple[bytes, int]]:
    def ginCompressPostingList(ipd: Any, maxsize: int = BLCKSZ) -> tuple[bytes, int]:
        return orig(ipd, min(maxsize, GinPostingListSegmentMinSize))

    return ginCompressPostingList


_mutant(
    "gin_posting_list_compression_edge", "gin", 0x20, "posting",
    "ginRedoRecompress re-encodes an ADDITEMS segment with the wrong size limit "
    "(GinPostingListSegmentMinSize, 128 bytes, instead of BLCKSZ): the items past the edge "
    "are silently lost from the posting-tree leaf",
    _patching("pyredo.rmgr.gin", "ginCompressPostingList", _compress_capped),
    history="GIN posting-list compression edge: 9.4 introduced compressed posting-list segments "
            "and the segment actions ginRedoRecompress replays. ginCompressPostingList stops at its "
            "maxsize and only reports how many items it packed; redo must pass a limit the merged "
            "segment always fits (C passes BLCKSZ and merely Asserts npacked == nitems, which a "
            "production build does not check). Modelled on that boundary, not on one upstream "
            "commit. (With the Target size, 256, the mutant never fires on appends: the primary "
            "starts a new segment before the last one passes 256 bytes.)",
)


def _ptree_not_compressed(ctx: RedoContext) -> None:
    from pyredo.page.gin import GIN_COMPRESSED, GinPageGetFlags, GinPageSetFlags

    if _redone(ctx, 0):
        GinPageSetFlags(ctx.page, GinPageGetFlags(ctx.page) & ~GIN_COMPRESSED)


_mutant(
    "gin_create_ptree_not_compressed", "gin", 0x10, "flag",
    "ginRedoCreatePTree initializes the posting-tree leaf without GIN_COMPRESSED",
    _after(_ptree_not_compressed),
)
_mutant(
    "gin_delete_page_no_delete_xid", "gin", 0x50, "data",
    "ginRedoDeletePage marks the page GIN_DELETED but does not store the deleteXid",
    _patching("pyredo.rmgr.gin", "GinPageSetDeleteXid", lambda orig: lambda page, xid: None),
    masked=True,
    history="PostgreSQL commit 52ac6cd2d0 (2018, Alexander Korotkov) \"Prevent GIN deleted pages "
            "from being reclaimed too early\" added deleteXid to ginxlogDeletePage so that replay "
            "stores it on the deleted page; gin_mask masks deleted pages' contents, so only the "
            "engine comparison can see a replay that forgets it.",
)
_mutant(
    "gin_insert_listpage_no_fullrow", "gin", 0x70, "flag",
    "ginRedoInsertListPage builds the sublist's tail page without GIN_LIST_FULLROW",
    _patching("pyredo.rmgr.gin", "GinPageSetFullRow", lambda orig: lambda page: None),
)


# ---- Gist ------------------------------------------------------------------------------
_mutant(
    "gist_follow_right_not_cleared", "gist", 0x00, "flag",
    "gistRedoPageUpdateRecord sets the split child's NSN but leaves F_FOLLOW_RIGHT set "
    "(masked against the primary: only the engine comparison sees it)",
    _patching("pyredo.rmgr.gist", "GistClearFollowRight", lambda orig: lambda page: None),
    masked=True,
)
_mutant(
    "gist_page_update_no_page_lsn", "gist", 0x00, "lsn",
    "gistRedoPageUpdateRecord forgets PageSetLSN on the updated page",
    _after(_no_lsn_block0), masked=True,
)


def _init_without_leaf(orig: Callable[..., None]) -> Callable[..., None]:
    from pyredo.page.gist import F_LEAF

    def GISTInitBuffer(page: bytearray, f: int) -> None:
        orig(page, f & ~F_LEAF)

    return GISTInitBuffer


_mutant(
    "gist_split_pages_lose_leaf_flag", "gist", 0x30, "flag",
    "gistRedoPageSplitRecord re-initializes the split pages without F_LEAF",
    _patching("pyredo.rmgr.gist", "GISTInitBuffer", _init_without_leaf),
)
_mutant(
    "gist_page_delete_keeps_downlink", "gist", 0x60, "link",
    "gistRedoPageDelete marks the leaf deleted but leaves its downlink in the parent",
    _patching("pyredo.rmgr.gist", "PageIndexTupleDelete", lambda orig: lambda page, offnum: None),
)


# ---- SPGist ----------------------------------------------------------------------------
_mutant(
    "spgist_add_leaf_chain_not_linked", "spgist", 0x10, "link",
    "spgRedoAddLeaf adds the leaf tuple but does not link it into its chain (the head's "
    "nextOffset is not updated)",
    _patching("pyredo.rmgr.spgist", "SGLT_SET_NEXTOFFSET", lambda orig: lambda page, off, n: None),
)


def _counts_without_redirects(orig: Callable[..., None]) -> Callable[..., None]:
    def SpGistPageAdjustCounts(page: bytearray, *, nRedirection: int = 0, nPlaceholder: int = 0) -> None:
        orig(page, nRedirection=0, nPlaceholder=nPlaceholder)

    return SpGistPageAdjustCounts


_mutant(
    "spgist_move_leafs_redirect_uncounted", "spgist", 0x20, "free-space",
    "spgRedoMoveLeafs leaves the redirect tuple out of the source page's nRedirection",
    _patching("pyredo.rmgr.spgist", "SpGistPageAdjustCounts", _counts_without_redirects),
)


def _delete_no_compact(orig: Callable[..., None]) -> Callable[..., None]:
    def _delete_item(ctx: RedoContext, page: bytearray, offnum: int, block_id: int) -> None:
        with ctx.page_errors(block_id):
            bufpage.PageIndexTupleDeleteNoCompact(page, offnum)

    return _delete_item


_mutant(
    "spgist_add_node_delete_no_compact", "spgist", 0x30, "compaction",
    "spgRedoAddNode removes the old inner tuple with PageIndexTupleDeleteNoCompact instead of "
    "PageIndexTupleDelete: its line pointer stays behind, shifting the tuples after it",
    _patching("pyredo.rmgr.spgist", "_delete_item", _delete_no_compact),
)


def _init_without_spg_leaf(orig: Callable[..., None]) -> Callable[..., None]:
    from pyredo.page.spgist import SPGIST_LEAF

    def SpGistInitPage(page: bytearray, f: int) -> None:
        orig(page, f & ~SPGIST_LEAF)

    return SpGistInitPage


_mutant(
    "spgist_picksplit_leaf_flag_lost", "spgist", 0x50, "flag",
    "spgRedoPickSplit initializes new leaf pages without SPGIST_LEAF",
    _patching("pyredo.rmgr.spgist", "SpGistInitPage", _init_without_spg_leaf),
)


# ---- BRIN ------------------------------------------------------------------------------
def _set_evacuate(ctx: RedoContext) -> None:
    from pyredo.page.brin import (
        BRIN_EVACUATE_PAGE,
        BRIN_IS_REGULAR_PAGE,
        BrinPageFlags,
        SetBrinPageFlags,
    )

    if _redone(ctx, 0) and BRIN_IS_REGULAR_PAGE(ctx.page):
        SetBrinPageFlags(ctx.page, BrinPageFlags(ctx.page) | BRIN_EVACUATE_PAGE)


_mutant(
    "brin_insert_sets_evacuate_flag", "brin", 0x10, "flag",
    "brin_xlog_insert leaves BRIN_EVACUATE_PAGE set on the regular page it inserts into",
    _after(_set_evacuate), masked=True,
    history="BRIN evacuate-page masking: BRIN_EVACUATE_PAGE is set by brin_start_evacuating_page "
            "without WAL, so primary and standby legitimately disagree on it; while "
            "wal_consistency_checking was developed (2016-17) brin_mask had to learn to mask it "
            "(\"BRIN_EVACUATE_PAGE is not WAL-logged, since it's of no use in recovery. Mask it.\"). "
            "A replay that sets it wrongly is invisible to that mask: only the engine comparison "
            "can catch it.",
)


def _samepage_wrong_item(ctx: RedoContext) -> tuple[bytes | None, dict[int, bytes]] | None:
    if not ctx.is_target(0) or bufpage.PageIsNew(ctx.page):
        return None
    offnum = _u16(ctx.main_data, 0)
    maxoff = bufpage.PageGetMaxOffsetNumber(ctx.page)
    other = offnum - 1 if offnum > 1 else offnum + 1
    if not 0 < other <= maxoff:
        return None
    lp = bufpage.PageGetItemId(ctx.page, other)
    if lp[1] != bufpage.LP_NORMAL:
        return None
    return _U16.pack(other) + ctx.main_data[2:], {}


_mutant(
    "brin_samepage_update_wrong_item", "brin", 0x30, "offset",
    "brin_xlog_samepage_update overwrites the neighbouring index tuple instead of the logged one",
    _rewriting(_samepage_wrong_item),
)
_mutant(
    "brin_revmap_extend_meta_stale", "brin", 0x40, "meta",
    "brin_xlog_revmap_extend initializes the new revmap page but does not record it as the "
    "metapage's lastRevmapPage",
    _patching("pyredo.rmgr.brin", "brin_metapage_set_last_revmap_page", lambda orig: lambda page, blk: None),
)
_mutant(
    "brin_update_old_tuple_kept", "brin", 0x20, "compaction",
    "brin_xlog_update inserts the new summary tuple but does not delete the old one",
    _patching("pyredo.rmgr.brin", "PageIndexTupleDeleteNoCompact", lambda orig: lambda page, off: None),
)
_mutant(
    "brin_desummarize_revmap_kept", "brin", 0x50, "link",
    "brin_xlog_desummarize_page deletes the summary tuple but leaves the revmap pointing at it",
    _patching("pyredo.rmgr.brin", "brinSetHeapBlockItemptr", lambda orig: lambda *args: None),
)


# ---- Sequence --------------------------------------------------------------------------
def _seq_start_lsn(ctx: RedoContext) -> None:
    if _redone(ctx, 0):
        bufpage.PageSetLSN(ctx.page, ctx.record.lsn)
        ctx.keep_page_lsn()


_mutant(
    "seq_redo_start_lsn", "seq", 0x00, "lsn",
    "seq_redo stamps the rebuilt page with the record's start LSN instead of its end",
    _after(_seq_start_lsn), masked=True,
)


def _seq_magic_swapped(ctx: RedoContext) -> None:
    if _redone(ctx, 0):
        sp = bufpage.pd_special(ctx.page)
        if sp + 4 <= BLCKSZ:
            ctx.page[sp : sp + 4] = bytes(reversed(ctx.page[sp : sp + 4]))


_mutant(
    "seq_redo_magic_byte_swapped", "seq", 0x00, "data",
    "seq_redo writes the sequence_magic special space byte-swapped (an endianness bug)",
    _after(_seq_magic_swapped),
)


# ---- Generic ---------------------------------------------------------------------------
def _fragments_shifted(orig: Callable[..., None]) -> Callable[..., None]:
    def applyPageRedo(ctx: Any, page: bytearray, delta: bytes, block_id: int) -> None:
        out = bytearray()
        ptr = 0
        while ptr + 4 <= len(delta):
            offset, length = struct.unpack_from("<HH", delta, ptr)
            shifted = offset + 1 if offset + 1 + length <= BLCKSZ else offset
            out += struct.pack("<HH", shifted, length) + delta[ptr + 4 : ptr + 4 + length]
            ptr += 4 + length
        orig(ctx, page, bytes(out) + delta[ptr:], block_id)

    return applyPageRedo


_mutant(
    "generic_fragment_off_by_one", "generic", 0x00, "offset",
    "generic_redo (applyPageRedo) copies each delta fragment one byte past its logged offset",
    _patching("pyredo.rmgr.generic", "applyPageRedo", _fragments_shifted),
)


# -- applying ----------------------------------------------------------------------------
def get(name: str) -> Mutant:
    try:
        return CATALOG[name]
    except KeyError:
        raise KeyError(f"unknown mutant {name!r}; known: {', '.join(sorted(CATALOG))}") from None


def _effective(page: bytes | bytearray, ctx: RedoContext) -> bytes:
    """The page as the engine leaves it after the routine (the LSN stamp included)."""
    out = bytearray(page)
    if not ctx._lsn_kept and BlkAction.BLK_NEEDS_REDO in ctx.actions.values():
        bufpage.PageSetLSN(out, ctx.lsn)
    return bytes(out)


def _probing(original: RedoFn, mutated: RedoFn) -> RedoFn:
    """Run the mutated routine; count in STATS whether it did anything the original
    would not have (the original runs first, on a copy of the page)."""

    def probe(ctx: RedoContext) -> None:
        STATS.calls += 1
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
                STATS.fire(ctx)
            raise
        if _redone(ctx):
            STATS.redone += 1
        if want is not None and _effective(ctx.page, ctx) != want:
            STATS.fire(ctx)

    return _named(original, probe)


_ACTIVE: list[tuple[dict[int, RedoFn], int, RedoFn, RedoFn]] = []  # (table, info, original, installed)


@contextmanager
def applied(name: str | None) -> Iterator[Mutant | None]:
    """Apply mutant ``name`` (None: nothing) for the duration of the block; the REDO
    table entry is restored on the way out, whatever happens (exceptions, Ctrl-C)."""
    if not name:
        yield None
        return
    m = get(name)
    mod = importlib.import_module(f"pyredo.rmgr.{m.rmgr_module}")
    table = mod.REDO
    if m.info not in table:
        raise KeyError(f"mutant {name}: pyredo.rmgr.{m.rmgr_module} has no routine for info 0x{m.info:02X}")
    original = table[m.info]
    STATS.reset(name)
    installed = _probing(original, m.wrap(original))
    table[m.info] = installed
    _ACTIVE.append((table, m.info, original, installed))
    try:
        yield m
    finally:
        table[m.info] = original
        _ACTIVE.pop()


@contextmanager
def suspended() -> Iterator[None]:
    """Inside ``applied(...)``: the unmutated routine for the duration of the block
    (to check that a divergence is the mutant's doing, not the harness's)."""
    saved = list(_ACTIVE)
    for table, info, original, _installed in saved:
        table[info] = original
    try:
        yield
    finally:
        for table, info, _original, installed in saved:
            table[info] = installed


def apply_from_env() -> None:
    """Apply the mutant named by $REDODIFF_MUTANT for the life of the process (workers)."""
    name = os.environ.get(ENV)
    if name:
        cm = applied(name)
        cm.__enter__()


@dataclass
class CatalogSummary:
    """Counts by rmgr and category (for ``selftest --list`` and tests)."""

    by_rmgr: dict[str, int] = field(default_factory=dict)
    by_category: dict[str, int] = field(default_factory=dict)


def summary() -> CatalogSummary:
    s = CatalogSummary()
    for m in CATALOG.values():
        s.by_rmgr[m.rmgr] = s.by_rmgr.get(m.rmgr, 0) + 1
        s.by_category[m.category] = s.by_category.get(m.category, 0) + 1
    return s
