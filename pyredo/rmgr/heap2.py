"""Heap2 resource manager: redo of its page-modifying records.

Mirrors heap2_redo (heapam.c), heap2_identify (heapdesc.c).
Record types without an entry in ``REDO`` raise UnsupportedRecord.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyredo.rmgr import RedoFn

# xl_info values (C header names)
XLOG_HEAP2_REWRITE = 0x00
XLOG_HEAP2_PRUNE = 0x10
XLOG_HEAP2_VACUUM = 0x20
XLOG_HEAP2_FREEZE_PAGE = 0x30
XLOG_HEAP2_VISIBLE = 0x40
XLOG_HEAP2_MULTI_INSERT = 0x50
XLOG_HEAP2_LOCK_UPDATED = 0x60
XLOG_HEAP2_NEW_CID = 0x70
XLOG_HEAP_OPMASK = 0x70
XLOG_HEAP_INIT_PAGE = 0x80

OPMASK = 0x70

_NAMES = {
    XLOG_HEAP2_REWRITE: "REWRITE",
    XLOG_HEAP2_PRUNE: "PRUNE",
    XLOG_HEAP2_VACUUM: "VACUUM",
    XLOG_HEAP2_FREEZE_PAGE: "FREEZE_PAGE",
    XLOG_HEAP2_VISIBLE: "VISIBLE",
    XLOG_HEAP2_MULTI_INSERT: "MULTI_INSERT",
    XLOG_HEAP2_LOCK_UPDATED: "LOCK_UPDATED",
    XLOG_HEAP2_NEW_CID: "NEW_CID",
    XLOG_HEAP2_MULTI_INSERT | XLOG_HEAP_INIT_PAGE: "MULTI_INSERT+INIT",
}


def identify(info: int) -> str | None:
    return _NAMES.get(info & 0xF0)

# record types whose redo changes a relation page (coverage counts these)
PAGE_MODIFYING: tuple[int, ...] = (
    XLOG_HEAP2_PRUNE,
    XLOG_HEAP2_VACUUM,
    XLOG_HEAP2_FREEZE_PAGE,
    XLOG_HEAP2_VISIBLE,
    XLOG_HEAP2_MULTI_INSERT,
    XLOG_HEAP2_MULTI_INSERT | XLOG_HEAP_INIT_PAGE,
    XLOG_HEAP2_LOCK_UPDATED,
)


REDO: dict[int, RedoFn] = {}
