"""The resource-manager table (rmgrlist.h): ONE row per rmgr, every column in it.

The decoder's callers, the engine, coverage, reports and the consistency masks
all read a table built here; nobody keeps a second list. A table is one
PostgreSQL major's redo: ``PG15`` is PostgreSQL 15's. A ``RedoEngine`` is
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
table's ``injectable`` column lists them as (rmgr module, info, helper);
a unit test checks every one against the routine's signature.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType, ModuleType
from typing import NamedTuple

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
        return self.type_name(rec.rmid, rec.info)

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


def _row(rmid: int, name: str, module: str, mask: str | None) -> RmgrEntry:
    """A row built from the module that mirrors the rmgr's C file (its ``REDO``,
    ``identify``, ``OPMASK``, ``PAGE_MODIFYING``, ``desc``, ``implicit_tags``),
    copied: the table never reads the module again."""
    mod: ModuleType = importlib.import_module(f"pyredo.rmgr.{module}")
    return RmgrEntry(
        id=rmid,
        name=name,
        module=module,
        redo=MappingProxyType(dict(getattr(mod, "REDO", {}))),
        identify=mod.identify,
        mask=mask,
        desc=getattr(mod, "desc", None),
        implicit_tags=getattr(mod, "implicit_tags", None),
        opmask=int(getattr(mod, "OPMASK", XLR_RMGR_INFO_MASK)),
        page_modifying=tuple(getattr(mod, "PAGE_MODIFYING", ())),
    )


# rmgrlist.h order: PG_RMGR(id, name, module, mask)
_PG15_ROWS = (
    _row(RM_XLOG_ID, "XLOG", "xlog", None),
    _row(RM_XACT_ID, "Transaction", "xact", None),
    _row(RM_SMGR_ID, "Storage", "smgr", None),
    _row(RM_CLOG_ID, "CLOG", "clog", None),
    _row(RM_DBASE_ID, "Database", "dbase", None),
    _row(RM_TBLSPC_ID, "Tablespace", "tblspc", None),
    _row(RM_MULTIXACT_ID, "MultiXact", "multixact", None),
    _row(RM_RELMAP_ID, "RelMap", "relmap", None),
    _row(RM_STANDBY_ID, "Standby", "standby", None),
    _row(RM_HEAP2_ID, "Heap2", "heap2", "heap_mask"),
    _row(RM_HEAP_ID, "Heap", "heap", "heap_mask"),
    _row(RM_BTREE_ID, "Btree", "btree", "btree_mask"),
    _row(RM_HASH_ID, "Hash", "hash", "hash_mask"),
    _row(RM_GIN_ID, "Gin", "gin", "gin_mask"),
    _row(RM_GIST_ID, "Gist", "gist", "gist_mask"),
    _row(RM_SEQ_ID, "Sequence", "seq", "seq_mask"),
    _row(RM_SPGIST_ID, "SPGist", "spgist", "spg_mask"),
    _row(RM_BRIN_ID, "BRIN", "brin", "brin_mask"),
    _row(RM_COMMIT_TS_ID, "CommitTs", "committs", None),
    _row(RM_REPLORIGIN_ID, "ReplicationOrigin", "replorigin", None),
    _row(RM_GENERIC_ID, "Generic", "generic", "generic_mask"),
    _row(RM_LOGICALMSG_ID, "LogicalMessage", "logicalmsg", None),
)

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

PG15 = RmgrTable(
    major=15,
    rows=MappingProxyType({r.id: r for r in _PG15_ROWS}),
    injectable=INJECTABLE_HELPERS,
)


# -- PostgreSQL 16, 17 and 18 ------------------------------------------------------------------
# The same 22 resource managers with the same ids in every major (rmgrlist.h), and the same
# XLogRecord and block-header layout (xlogrecord.h); what differs is read off each major's
# rmgrdesc/*.c and *_xlog.h:
#   17: Heap2 0x10/0x20/0x30 are PRUNE_ON_ACCESS, PRUNE_VACUUM_SCAN, PRUNE_VACUUM_CLEANUP
#       (one xl_heap_prune for PRUNE, VACUUM and FREEZE_PAGE); XLOG gains CHECKPOINT_REDO (0xE0).
# Redo is issue 20's: many main-data layouts changed in 16 (isCatalogRel in the delete and
# prune records of heap, btree, hash, gist, spgist, ...), so these tables keep only the
# routines whose records are laid out as in 15 and known to redo alike — the full-page-image
# records — and every other record raises UnsupportedRecord naming the major, never a page
# built from a misread record. pg_waldump's descriptions (``desc``) parse main data laid out
# as in 15, so they are left out too: the decoder prints record names, never a misread
# field. The VM pages heap records clear without naming them (``implicit_tags``) read
# xl_heap_insert/delete/update/multi_insert/lock(_updated) flags, unchanged in 16-18.

_HEAP2_17_NAMES = {0x10: "PRUNE_ON_ACCESS", 0x20: "PRUNE_VACUUM_SCAN", 0x30: "PRUNE_VACUUM_CLEANUP"}
XLOG_CHECKPOINT_REDO = 0xE0  # 17+


def _renamed(identify: Callable[[int], str | None], names: Mapping[int, str]) -> Callable[[int], str | None]:
    """``identify`` with the names of ``names`` (by ``info & XLR_RMGR_INFO_MASK``) put first."""
    def ident(info: int) -> str | None:
        name = names.get(info & XLR_RMGR_INFO_MASK)
        return name if name is not None else identify(info)
    return ident


def _later_major(major: int) -> RmgrTable:
    """PostgreSQL ``major``'s table (16, 17 or 18): see the comment above."""
    rows: dict[int, RmgrEntry] = {}
    for r in _PG15_ROWS:
        keep = {i: fn for i, fn in r.redo.items() if r.module == "xlog" and i in r.page_modifying}
        row = replace(r, redo=MappingProxyType(keep), desc=None)
        if major >= 17 and r.module == "heap2":
            row = replace(row, identify=_renamed(r.identify, _HEAP2_17_NAMES))
        if major >= 17 and r.module == "xlog":
            row = replace(row, identify=_renamed(r.identify, {XLOG_CHECKPOINT_REDO: "CHECKPOINT_REDO"}))
        rows[r.id] = row
    return RmgrTable(major=major, rows=MappingProxyType(rows))


PG16 = _later_major(16)
PG17 = _later_major(17)
PG18 = _later_major(18)
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
