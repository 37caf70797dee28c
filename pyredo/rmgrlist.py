"""The resource-manager table (rmgrlist.h): ONE row per rmgr, every column in it.

The decoder's callers, the engine, coverage, reports and the consistency masks
all read a table built here; nobody keeps a second list. A table is one
PostgreSQL major's redo: ``PG15`` is PostgreSQL 15's, ``PG16``, ``PG17`` and
``PG18`` are built from the same modules with each one's ``*_SINCE`` columns
(see the comment above ``_RMGRLIST``; pyredo/VERSIONS.md says what changed). A ``RedoEngine`` is
given its table (``RedoEngine(PG15)``) and looks routines up in it, never in a
module global, so a table changed with ``with_routine`` (a mutant, a patched
routine) and the clean one run side by side in one process.

This module imports the rmgr modules (``pyredo.rmgr.*``); they never import it.

Helpers a routine takes as keyword-only parameters (``INJECTABLE_HELPERS``):
some routines call a helper that a mutation self-test wants to break. Such a
routine takes the helper as a keyword-only parameter of the SAME name,
defaulting to the module's function (``def heap_xlog_prune(ctx, *,
heap_page_prune_execute=heap_page_prune_execute)``), so a mutant is
``functools.partial(routine, heap_page_prune_execute=broken)`` installed with
``PG15.with_routine(rmid, info, mutant)`` — nothing is monkey-patched. The
table's ``injectable`` column lists them as (rmgr module, info, helper), per
table (``INJECTABLE_SINCE`` for routines new in a later major); a unit test checks
every one of every table against the routine's signature.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType, ModuleType
from typing import Any, NamedTuple

from pyredo.errors import UnsupportedRecord
from pyredo.rmgr import (
    RM_BRIN_ID,
    RM_BTREE_ID,
    RM_CLOG_ID,
    RM_COMMIT_TS_ID,
    RM_DBASE_ID,
    RM_GENERIC_ID,
    RM_GIN_ID,
    RM_GIST_ID,
    RM_HASH_ID,
    RM_HEAP2_ID,
    RM_HEAP_ID,
    RM_LOGICALMSG_ID,
    RM_MULTIXACT_ID,
    RM_RELMAP_ID,
    RM_REPLORIGIN_ID,
    RM_SEQ_ID,
    RM_SMGR_ID,
    RM_SPGIST_ID,
    RM_STANDBY_ID,
    RM_TBLSPC_ID,
    RM_XACT_ID,
    RM_XLOG_ID,
)
from pyredo.wal.record import XLR_RMGR_INFO_MASK, BufferTag, DecodedXLogRecord
from pyredo.xlogutils import RedoFn

__all__ = [
    "INJECTABLE_HELPERS",
    "PG15",
    "PG16",
    "PG17",
    "PG18",
    "TABLES",
    "InjectableHelper",
    "RmgrEntry",
    "RmgrTable",
    "table_for",
]

DescFn = Callable[[DecodedXLogRecord], str]
ImplicitTagsFn = Callable[[DecodedXLogRecord], list[BufferTag]]


@dataclass(frozen=True)
class RmgrEntry:
    """One PG_RMGR(...) line of rmgrlist.h."""

    id: int
    name: str  # as pg_waldump prints it
    module: str  # the pyredo.rmgr module that mirrors its C file ("heap2", "btree" ...)
    redo: Mapping[int, RedoFn]  # {info & opmask: routine}
    identify: Callable[[int], str | None]
    mask: str | None  # C name of the consistency mask ("heap_mask" ...), resolved by oracles/masks
    desc: DescFn | None = None  # pg_waldump's rm_desc, where pyredo has one
    implicit_tags: ImplicitTagsFn | None = None  # pages changed without a block reference
    opmask: int = XLR_RMGR_INFO_MASK  # which xl_info bits choose the routine
    page_modifying: tuple[int, ...] = ()  # info values whose redo changes a relation page

    def type_name(self, info: int) -> str:
        """``Rmgr/TYPE`` as pg_waldump --stats=record names a record type."""
        ident = self.identify(info & XLR_RMGR_INFO_MASK)
        return f"{self.name}/{ident if ident is not None else f'UNKNOWN ({info & XLR_RMGR_INFO_MASK:x})'}"

    def describe(self, rec: DecodedXLogRecord) -> str | None:
        """The record's description, None where pyredo has none for this rmgr."""
        return self.desc(rec) if self.desc is not None else None

    def tags_changed_implicitly(self, rec: DecodedXLogRecord) -> list[BufferTag]:
        """Pages ``rec`` changes without naming them (the visibility-map trap)."""
        return self.implicit_tags(rec) if self.implicit_tags is not None else []


class InjectableHelper(NamedTuple):
    """A helper a routine takes as a keyword-only parameter (see the module doc)."""

    module: str  # pyredo.rmgr module ("heap2")
    info: int  # key of the routine in that rmgr's redo column
    helper: str  # the keyword (and the module function it defaults to)


@dataclass(frozen=True)
class RmgrTable:
    """Every resource manager of one PostgreSQL major, by id."""

    major: int  # the PostgreSQL major whose redo this table mirrors
    rows: Mapping[int, RmgrEntry]
    injectable: tuple[InjectableHelper, ...] = field(default=())
    # record_type's answers by (rmid, info): asked for every record of a check
    _type_names: dict[tuple[int, int], str] = field(default_factory=dict, init=False, repr=False, compare=False)

    # -- lookups ----------------------------------------------------------------------
    def __iter__(self) -> Iterator[RmgrEntry]:
        return iter(self.rows.values())

    def get(self, rmid: int) -> RmgrEntry | None:
        return self.rows.get(rmid)

    def entry(self, rmid: int) -> RmgrEntry:
        """The row of ``rmid``; UnsupportedRecord for an id this table lacks."""
        r = self.rows.get(rmid)
        if r is None:
            raise UnsupportedRecord(self.rmgr_name(rmid), 0, major=self.major)
        return r

    def by_name(self, name: str) -> RmgrEntry | None:
        """The row pg_waldump names ``name`` ("Heap2")."""
        return next((r for r in self.rows.values() if r.name == name), None)

    def by_module(self, module: str) -> RmgrEntry:
        """The row whose pyredo.rmgr module is ``module`` ("heap2"); KeyError if none."""
        r = next((r for r in self.rows.values() if r.module == module), None)
        if r is None:
            raise KeyError(f"no resource manager module {module!r} in the PostgreSQL {self.major} table")
        return r

    def rmgr_name(self, rmid: int) -> str:
        """The name pg_waldump prints (``custom%03u`` for custom rmgrs)."""
        r = self.rows.get(rmid)
        return r.name if r is not None else f"custom{rmid:03d}"

    def routine(self, rmid: int, info: int, lsn: int | None = None) -> RedoFn:
        """The redo routine for a record of ``rmid`` with ``info``; UnsupportedRecord
        (naming rmgr, info and this table's major) when there is none."""
        r = self.rows.get(rmid)
        fn = r.redo.get(info & r.opmask) if r is not None else None
        if fn is None:
            raise UnsupportedRecord(self.rmgr_name(rmid), info, lsn, major=self.major)
        return fn

    def record_type(self, rec: DecodedXLogRecord) -> str:
        """``Rmgr/TYPE`` of a record, the key of coverage and report tables."""
        return self.type_name_of(rec.rmid, rec.info)

    def type_name_of(self, rmid: int, info: int) -> str:
        """``type_name``, remembered by (rmid, info)."""
        key = (rmid, info)
        name = self._type_names.get(key)
        if name is None:
            name = self._type_names[key] = self.type_name(rmid, info)
        return name

    def type_name(self, rmid: int, info: int) -> str:
        r = self.rows.get(rmid)
        if r is None:
            return f"{self.rmgr_name(rmid)}/UNKNOWN ({info & XLR_RMGR_INFO_MASK:x})"
        return r.type_name(info)

    def page_modifying_types(self) -> list[str]:
        """Every page-modifying record type of this major, as ``Rmgr/TYPE``."""
        return [r.type_name(info) for r in self.rows.values() for info in r.page_modifying]

    def implemented(self, type_name: str) -> bool:
        """Does this table have a redo routine for the page-modifying ``Rmgr/TYPE``?"""
        r = self.by_name(type_name.partition("/")[0])
        if r is None:
            return False
        return any(r.type_name(info) == type_name and (info & r.opmask) in r.redo
                   for info in r.page_modifying)

    # -- a changed copy ---------------------------------------------------------------
    def with_routine(self, rmid: int, info: int, routine: RedoFn) -> RmgrTable:
        """A NEW table whose routine for (``rmid``, ``info``) is ``routine``; this
        one is untouched. ``info`` is a key of the rmgr's redo column (``info &
        opmask``); KeyError when the table has no routine there to replace."""
        r = self.rows.get(rmid)
        if r is None:
            raise KeyError(f"no resource manager {rmid} in the PostgreSQL {self.major} table")
        if info not in r.redo:
            have = ", ".join(f"0x{k:02X}" for k in sorted(r.redo)) or "none"
            raise KeyError(f"{r.name} has no redo routine for info 0x{info:02X} in the "
                           f"PostgreSQL {self.major} table (it has: {have})")
        redo = MappingProxyType({**r.redo, info: routine})
        rows = MappingProxyType({**self.rows, rmid: replace(r, redo=redo)})
        return replace(self, rows=rows)


def _since(mod: ModuleType, attr: str, major: int) -> list[Any]:
    """The values of the module's ``<attr>`` (``{first major: value}``) for the majors
    up to ``major``, oldest first."""
    return [v for m, v in sorted(getattr(mod, attr, {}).items()) if m <= major]


def _row(rmid: int, name: str, module: str, mask: str | None, major: int = 15,
         mod: ModuleType | None = None) -> RmgrEntry:
    """PostgreSQL ``major``'s row, built from ``mod`` (default: the module
    pyredo.rmgr.<module> that mirrors the rmgr's C file): its 15 ``REDO``,
    ``identify``, ``OPMASK``, ``PAGE_MODIFYING``, ``desc``, ``implicit_tags``, then its
    ``*_SINCE`` changes up to ``major`` (see the comment above ``_RMGRLIST``), copied:
    the table never reads the module again."""
    if mod is None:
        mod = importlib.import_module(f"pyredo.rmgr.{module}")
    redo: dict[int, RedoFn] = dict(getattr(mod, "REDO", {}))
    names: dict[int, str] = {}
    page_modifying = tuple(getattr(mod, "PAGE_MODIFYING", ()))
    desc: DescFn | None = getattr(mod, "desc", None)
    if major > 15 and not hasattr(mod, "DESC_SINCE"):
        desc = None
    implicit: ImplicitTagsFn | None = getattr(mod, "implicit_tags", None)
    for changes in _since(mod, "REDO_SINCE", major):
        for info, fn in changes.items():
            if fn is None:
                redo.pop(info, None)
            else:
                redo[info] = fn
    for renamed in _since(mod, "NAMES_SINCE", major):
        names.update(renamed)
    for pm in _since(mod, "PAGE_MODIFYING_SINCE", major):
        page_modifying = tuple(pm)
    desc = ([desc, *_since(mod, "DESC_SINCE", major)])[-1]
    mask = ([mask, *_since(mod, "MASK_SINCE", major)])[-1]
    implicit = ([implicit, *_since(mod, "IMPLICIT_TAGS_SINCE", major)])[-1]
    if major not in getattr(mod, "MAJORS", (15,)):
        # redo not read off this major's C: only the full-page-image records, laid out
        # alike in every major, are restored; every other record raises, naming the major
        redo = {i: fn for i, fn in getattr(mod, "REDO", {}).items()
                if module == "xlog" and i in mod.PAGE_MODIFYING}
        desc = None
    identify = mod.identify if not names else _renamed(mod.identify, names)
    return RmgrEntry(
        id=rmid,
        name=name,
        module=module,
        redo=MappingProxyType(redo),
        identify=identify,
        mask=mask,
        desc=desc,
        implicit_tags=implicit,
        opmask=int(getattr(mod, "OPMASK", XLR_RMGR_INFO_MASK)),
        page_modifying=page_modifying,
    )


def _renamed(identify: Callable[[int], str | None], names: Mapping[int, str]) -> Callable[[int], str | None]:
    """``identify`` with the names of ``names`` (by ``info & XLR_RMGR_INFO_MASK``) put first."""
    def ident(info: int) -> str | None:
        name = names.get(info & XLR_RMGR_INFO_MASK)
        return name if name is not None else identify(info)
    return ident


# One row per rmgr, from its pyredo.rmgr module. The module holds PostgreSQL 15's
# redo (``REDO``, ``identify``, ``PAGE_MODIFYING``, ``OPMASK``, ``desc``,
# ``implicit_tags``) and may add, for later majors:
#   MAJORS                majors whose redo it mirrors byte for byte (absent: (15,)); for
#                         any other major the row keeps only XLOG's full-page-image
#                         routines and no desc: its records raise UnsupportedRecord
#   REDO_SINCE[m]         {info: routine | None} replacing (None: deleting) keys from m on
#   NAMES_SINCE[m]        {info & XLR_RMGR_INFO_MASK: name} identify names from m on
#   PAGE_MODIFYING_SINCE[m], DESC_SINCE[m], MASK_SINCE[m], IMPLICIT_TAGS_SINCE[m]
#                         the whole column from m on (absent DESC_SINCE: desc only for 15)
# Major N's row is the 15 one with every ``*_SINCE[m]`` for m <= N applied, oldest first.
_RMGRLIST: tuple[tuple[int, str, str, str | None], ...] = (  # PG_RMGR(id, name, module, mask)
    (RM_XLOG_ID, "XLOG", "xlog", None),
    (RM_XACT_ID, "Transaction", "xact", None),
    (RM_SMGR_ID, "Storage", "smgr", None),
    (RM_CLOG_ID, "CLOG", "clog", None),
    (RM_DBASE_ID, "Database", "dbase", None),
    (RM_TBLSPC_ID, "Tablespace", "tblspc", None),
    (RM_MULTIXACT_ID, "MultiXact", "multixact", None),
    (RM_RELMAP_ID, "RelMap", "relmap", None),
    (RM_STANDBY_ID, "Standby", "standby", None),
    (RM_HEAP2_ID, "Heap2", "heap2", "heap_mask"),
    (RM_HEAP_ID, "Heap", "heap", "heap_mask"),
    (RM_BTREE_ID, "Btree", "btree", "btree_mask"),
    (RM_HASH_ID, "Hash", "hash", "hash_mask"),
    (RM_GIN_ID, "Gin", "gin", "gin_mask"),
    (RM_GIST_ID, "Gist", "gist", "gist_mask"),
    (RM_SEQ_ID, "Sequence", "seq", "seq_mask"),
    (RM_SPGIST_ID, "SPGist", "spgist", "spg_mask"),
    (RM_BRIN_ID, "BRIN", "brin", "brin_mask"),
    (RM_COMMIT_TS_ID, "CommitTs", "committs", None),
    (RM_REPLORIGIN_ID, "ReplicationOrigin", "replorigin", None),
    (RM_GENERIC_ID, "Generic", "generic", "generic_mask"),
    (RM_LOGICALMSG_ID, "LogicalMessage", "logicalmsg", None),
)

_PG15_ROWS = tuple(_row(*r) for r in _RMGRLIST)


# (rmgr module, info key of the routine, keyword-only helper): see the module doc
INJECTABLE_HELPERS: tuple[InjectableHelper, ...] = tuple(InjectableHelper(*t) for t in (
    ("xlog", 0xB0, "restore_block_image"),
    ("heap2", 0x10, "heap_page_prune_execute"),
    ("heap2", 0x20, "PageTruncateLinePointerArray"),
    ("heap2", 0x30, "heap_execute_freeze_tuple"),
    ("heap2", 0x40, "PageSetAllVisible"),
    ("heap2", 0x40, "visibilitymap_set"),
    ("btree", 0x10, "_bt_clear_incomplete_split"),
    ("btree", 0x20, "_bt_restore_meta"),
    ("btree", 0xC0, "PageIndexMultiDelete"),
    ("btree", 0x70, "PageIndexMultiDelete"),
    ("btree", 0x50, "_bt_swap_posting"),
    ("hash", 0x80, "CLRBIT"),
    ("gin", 0x60, "GinPageSetMaxoff"),
    ("gin", 0x20, "ginCompressPostingList"),
    ("gin", 0x50, "GinPageSetDeleteXid"),
    ("gin", 0x70, "GinPageSetFullRow"),
    ("gist", 0x00, "GistClearFollowRight"),
    ("gist", 0x30, "GISTInitBuffer"),
    ("gist", 0x60, "PageIndexTupleDelete"),
    ("spgist", 0x10, "SGLT_SET_NEXTOFFSET"),
    ("spgist", 0x20, "SpGistPageAdjustCounts"),
    ("spgist", 0x30, "_delete_item"),
    ("spgist", 0x50, "SpGistInitPage"),
    ("brin", 0x40, "brin_metapage_set_last_revmap_page"),
    ("brin", 0x20, "PageIndexTupleDeleteNoCompact"),
    ("brin", 0x50, "brinSetHeapBlockItemptr"),
    ("generic", 0x00, "applyPageRedo"),
))

# Helpers of routines that are new in a later major, {first major: entries}. Major N's
# table lists an entry of INJECTABLE_HELPERS while its routine there is still 15's, and
# an entry of INJECTABLE_SINCE[m <= N] while that routine is in its table.
INJECTABLE_SINCE: dict[int, tuple[InjectableHelper, ...]] = {m: tuple(InjectableHelper(*t) for t in ts) for m, ts in {
    16: (("heap2", 0x30, "heap_execute_freeze_tuple"),
         ("heap2", 0x40, "PageSetAllVisible"), ("heap2", 0x40, "visibilitymap_set"),
         ("gist", 0x00, "GistClearFollowRight")),
    17: (*(("heap2", info, helper) for info in (0x10, 0x20, 0x30)
           for helper in ("heap_page_prune_execute", "heap_execute_freeze_tuple")),
         ("hash", 0x80, "CLRBIT")),
    18: (("btree", 0xC0, "PageIndexMultiDelete"),),
}.items()}


def _table(major: int) -> RmgrTable:
    """PostgreSQL ``major``'s table: every row of ``_RMGRLIST`` for that major."""
    rows = {r[0]: _row(*r, major=major) for r in _RMGRLIST}

    def fn(module: str, info: int, table_rows: Mapping[int, RmgrEntry]) -> RedoFn | None:
        return next((r.redo.get(info) for r in table_rows.values() if r.module == module), None)

    pg15 = {r.id: r for r in _PG15_ROWS}
    inj = [h for h in INJECTABLE_HELPERS
           if fn(h.module, h.info, rows) is fn(h.module, h.info, pg15) is not None]
    inj += [h for m, hs in sorted(INJECTABLE_SINCE.items()) if m <= major for h in hs
            if fn(h.module, h.info, rows) is not None]
    return RmgrTable(major=major, rows=MappingProxyType(rows), injectable=tuple(dict.fromkeys(inj)))


PG15 = _table(15)
PG16 = _table(16)
PG17 = _table(17)
PG18 = _table(18)
TABLES: Mapping[int, RmgrTable] = MappingProxyType({15: PG15, 16: PG16, 17: PG17, 18: PG18})


def table_for(major: int) -> RmgrTable:
    """The table of PostgreSQL ``major``; a newer major (a build of master) gets the newest
    table — its names, and redo that refuses what it does not know."""
    if major in TABLES:
        return TABLES[major]
    if major > max(TABLES):
        return replace(TABLES[max(TABLES)], major=major)
    raise KeyError(f"PostgreSQL {major} is not supported (pyredo has tables for "
                   f"{', '.join(map(str, TABLES))})")
