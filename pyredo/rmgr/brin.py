"""BRIN resource manager: redo of its page-modifying records.

Mirrors brin_redo (brin_xlog.c), brin_identify (brindesc.c).
Record types without an entry in ``REDO`` raise UnsupportedRecord.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyredo.rmgr import RedoFn

# xl_info values (C header names)
XLOG_BRIN_CREATE_INDEX = 0x00
XLOG_BRIN_INSERT = 0x10
XLOG_BRIN_UPDATE = 0x20
XLOG_BRIN_SAMEPAGE_UPDATE = 0x30
XLOG_BRIN_REVMAP_EXTEND = 0x40
XLOG_BRIN_DESUMMARIZE = 0x50
XLOG_BRIN_OPMASK = 0x70
XLOG_BRIN_INIT_PAGE = 0x80

OPMASK = 0x70

_NAMES = {
    XLOG_BRIN_CREATE_INDEX: "CREATE_INDEX",
    XLOG_BRIN_INSERT: "INSERT",
    XLOG_BRIN_UPDATE: "UPDATE",
    XLOG_BRIN_SAMEPAGE_UPDATE: "SAMEPAGE_UPDATE",
    XLOG_BRIN_REVMAP_EXTEND: "REVMAP_EXTEND",
    XLOG_BRIN_DESUMMARIZE: "DESUMMARIZE",
    XLOG_BRIN_INSERT | XLOG_BRIN_INIT_PAGE: "INSERT+INIT",
    XLOG_BRIN_UPDATE | XLOG_BRIN_INIT_PAGE: "UPDATE+INIT",
}


def identify(info: int) -> str | None:
    return _NAMES.get(info & 0xF0)

# record types whose redo changes a relation page (coverage counts these)
PAGE_MODIFYING: tuple[int, ...] = (
    XLOG_BRIN_CREATE_INDEX,
    XLOG_BRIN_INSERT,
    XLOG_BRIN_INSERT | XLOG_BRIN_INIT_PAGE,
    XLOG_BRIN_UPDATE,
    XLOG_BRIN_UPDATE | XLOG_BRIN_INIT_PAGE,
    XLOG_BRIN_SAMEPAGE_UPDATE,
    XLOG_BRIN_REVMAP_EXTEND,
    XLOG_BRIN_DESUMMARIZE,
)


REDO: dict[int, RedoFn] = {}
