"""Heap resource manager: redo of its page-modifying records.

Mirrors heap_redo (heapam.c), heap_identify (heapdesc.c).
Record types without an entry in ``REDO`` raise UnsupportedRecord.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyredo.rmgr import RedoFn

# xl_info values (C header names)
XLOG_HEAP_INSERT = 0x00
XLOG_HEAP_DELETE = 0x10
XLOG_HEAP_UPDATE = 0x20
XLOG_HEAP_TRUNCATE = 0x30
XLOG_HEAP_HOT_UPDATE = 0x40
XLOG_HEAP_CONFIRM = 0x50
XLOG_HEAP_LOCK = 0x60
XLOG_HEAP_INPLACE = 0x70
XLOG_HEAP_OPMASK = 0x70
XLOG_HEAP_INIT_PAGE = 0x80

OPMASK = 0x70

_NAMES = {
    XLOG_HEAP_INSERT: "INSERT",
    XLOG_HEAP_DELETE: "DELETE",
    XLOG_HEAP_UPDATE: "UPDATE",
    XLOG_HEAP_TRUNCATE: "TRUNCATE",
    XLOG_HEAP_HOT_UPDATE: "HOT_UPDATE",
    XLOG_HEAP_CONFIRM: "HEAP_CONFIRM",
    XLOG_HEAP_LOCK: "LOCK",
    XLOG_HEAP_INPLACE: "INPLACE",
    XLOG_HEAP_INSERT | XLOG_HEAP_INIT_PAGE: "INSERT+INIT",
    XLOG_HEAP_UPDATE | XLOG_HEAP_INIT_PAGE: "UPDATE+INIT",
    XLOG_HEAP_HOT_UPDATE | XLOG_HEAP_INIT_PAGE: "HOT_UPDATE+INIT",
}


def identify(info: int) -> str | None:
    return _NAMES.get(info & 0xF0)

# record types whose redo changes a relation page (coverage counts these)
PAGE_MODIFYING: tuple[int, ...] = (
    XLOG_HEAP_INSERT,
    XLOG_HEAP_INSERT | XLOG_HEAP_INIT_PAGE,
    XLOG_HEAP_DELETE,
    XLOG_HEAP_UPDATE,
    XLOG_HEAP_UPDATE | XLOG_HEAP_INIT_PAGE,
    XLOG_HEAP_HOT_UPDATE,
    XLOG_HEAP_HOT_UPDATE | XLOG_HEAP_INIT_PAGE,
    XLOG_HEAP_CONFIRM,
    XLOG_HEAP_LOCK,
    XLOG_HEAP_INPLACE,
)


REDO: dict[int, RedoFn] = {}
