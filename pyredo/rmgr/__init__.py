"""The resource-manager table (rmgrlist.h): ONE list that names every rmgr.

The decoder, the engine, coverage and the masks all read ``RMGRS``; nobody
keeps a second list. Each entry points at one module of this package, which
provides:

* ``identify(info) -> str | None`` — the record type name, as pg_waldump's
  ``rm_identify`` prints it (``INSERT+INIT``, ``SPLIT_L`` ...);
* ``REDO`` — ``{info & OPMASK: routine}``, one routine per record type, each
  mirroring (and naming in its docstring) a C redo function;
* ``OPMASK`` — which xl_info bits choose the routine (default 0xF0);
* ``PAGE_MODIFYING`` — the ``info & 0xF0`` values whose redo changes a
  relation page: the universe that coverage is measured against;
* optionally ``desc(record) -> str`` (pg_waldump's description) and
  ``implicit_tags(record) -> list[BufferTag]`` (pages a record changes without
  naming them as a block reference: the visibility-map trap).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from types import ModuleType
from typing import TYPE_CHECKING

from pyredo.errors import UnsupportedRecord

if TYPE_CHECKING:
    from pyredo.engine import RedoContext
    from pyredo.wal.record import BufferTag, DecodedXLogRecord

RedoFn = Callable[["RedoContext"], None]

# rmgrlist.h order: id, name (as pg_waldump prints it), module
_TABLE: tuple[tuple[int, str, str], ...] = (
    (0, "XLOG", "xlog"),
    (1, "Transaction", "xact"),
    (2, "Storage", "smgr"),
    (3, "CLOG", "clog"),
    (4, "Database", "dbase"),
    (5, "Tablespace", "tblspc"),
    (6, "MultiXact", "multixact"),
    (7, "RelMap", "relmap"),
    (8, "Standby", "standby"),
    (9, "Heap2", "heap2"),
    (10, "Heap", "heap"),
    (11, "Btree", "btree"),
    (12, "Hash", "hash"),
    (13, "Gin", "gin"),
    (14, "Gist", "gist"),
    (15, "Sequence", "seq"),
    (16, "SPGist", "spgist"),
    (17, "BRIN", "brin"),
    (18, "CommitTs", "committs"),
    (19, "ReplicationOrigin", "replorigin"),
    (20, "Generic", "generic"),
    (21, "LogicalMessage", "logicalmsg"),
)

RM_XLOG_ID = 0
RM_XACT_ID = 1
RM_SMGR_ID = 2
RM_CLOG_ID = 3
RM_HEAP2_ID = 9
RM_HEAP_ID = 10
RM_BTREE_ID = 11
RM_HASH_ID = 12
RM_GIN_ID = 13
RM_GIST_ID = 14
RM_SEQ_ID = 15
RM_SPGIST_ID = 16
RM_BRIN_ID = 17
RM_GENERIC_ID = 20


@dataclass(frozen=True)
class Rmgr:
    """One row of the table."""

    id: int
    name: str
    module_name: str

    @cached_property
    def module(self) -> ModuleType:
        return importlib.import_module(f"pyredo.rmgr.{self.module_name}")

    @property
    def opmask(self) -> int:
        return int(getattr(self.module, "OPMASK", 0xF0))

    @property
    def redo_table(self) -> Mapping[int, RedoFn]:
        table: Mapping[int, RedoFn] = getattr(self.module, "REDO", {})
        return table

    @property
    def page_modifying(self) -> tuple[int, ...]:
        return tuple(getattr(self.module, "PAGE_MODIFYING", ()))

    def identify(self, info: int) -> str | None:
        fn = getattr(self.module, "identify", None)
        return fn(info) if fn is not None else None

    def type_name(self, info: int) -> str:
        """``Rmgr/TYPE`` as pg_waldump --stats=record names a record type."""
        ident = self.identify(info & 0xF0)
        return f"{self.name}/{ident if ident is not None else f'UNKNOWN ({info & 0xF0:x})'}"

    def redo_routine(self, rec: DecodedXLogRecord) -> RedoFn:
        fn = self.redo_table.get(rec.info & self.opmask)
        if fn is None:
            raise UnsupportedRecord(self.name, rec.info, rec.lsn)
        return fn

    def desc(self, rec: DecodedXLogRecord) -> str | None:
        fn = getattr(self.module, "desc", None)
        return fn(rec) if fn is not None else None

    def implicit_tags(self, rec: DecodedXLogRecord) -> list[BufferTag]:
        fn = getattr(self.module, "implicit_tags", None)
        return fn(rec) if fn is not None else []

    @property
    def has_implicit_tags(self) -> bool:
        return hasattr(self.module, "implicit_tags")


RMGRS: dict[int, Rmgr] = {rid: Rmgr(rid, name, mod) for rid, name, mod in _TABLE}
RMGR_BY_NAME: dict[str, Rmgr] = {r.name: r for r in RMGRS.values()}


def rmgr_name(rmid: int) -> str:
    """The name pg_waldump prints (``custom%03u`` for custom rmgrs)."""
    r = RMGRS.get(rmid)
    return r.name if r is not None else f"custom{rmid:03d}"


def get_rmgr(rmid: int) -> Rmgr:
    r = RMGRS.get(rmid)
    if r is None:
        raise UnsupportedRecord(rmgr_name(rmid), 0)
    return r


def record_type(rec: DecodedXLogRecord) -> str:
    """``Rmgr/TYPE`` of a record, the key of coverage and report tables."""
    r = RMGRS.get(rec.rmid)
    if r is None:
        return f"{rmgr_name(rec.rmid)}/UNKNOWN ({rec.info & 0xF0:x})"
    return r.type_name(rec.info)


def page_modifying_types() -> list[str]:
    """Every page-modifying record type of PostgreSQL 15, as ``Rmgr/TYPE``."""
    out = []
    for r in RMGRS.values():
        for info in r.page_modifying:
            out.append(r.type_name(info))
    return out


def identify_table(names: Mapping[int, str]) -> Callable[[int], str | None]:
    """Build an ``identify`` from ``{info & 0xF0: name}``."""

    def identify(info: int) -> str | None:
        return names.get(info & 0xF0)

    return identify
