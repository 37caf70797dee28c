"""Gin resource manager: redo of its page-modifying records.

Mirrors gin_redo (ginxlog.c), gin_identify (gindesc.c).
Record types without an entry in ``REDO`` raise UnsupportedRecord.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyredo.rmgr import RedoFn

# xl_info values (C header names)
XLOG_GIN_CREATE_PTREE = 0x10
XLOG_GIN_INSERT = 0x20
XLOG_GIN_SPLIT = 0x30
XLOG_GIN_VACUUM_PAGE = 0x40
XLOG_GIN_DELETE_PAGE = 0x50
XLOG_GIN_UPDATE_META_PAGE = 0x60
XLOG_GIN_INSERT_LISTPAGE = 0x70
XLOG_GIN_DELETE_LISTPAGE = 0x80
XLOG_GIN_VACUUM_DATA_LEAF_PAGE = 0x90

_NAMES = {
    XLOG_GIN_CREATE_PTREE: "CREATE_PTREE",
    XLOG_GIN_INSERT: "INSERT",
    XLOG_GIN_SPLIT: "SPLIT",
    XLOG_GIN_VACUUM_PAGE: "VACUUM_PAGE",
    XLOG_GIN_DELETE_PAGE: "DELETE_PAGE",
    XLOG_GIN_UPDATE_META_PAGE: "UPDATE_META_PAGE",
    XLOG_GIN_INSERT_LISTPAGE: "INSERT_LISTPAGE",
    XLOG_GIN_DELETE_LISTPAGE: "DELETE_LISTPAGE",
    XLOG_GIN_VACUUM_DATA_LEAF_PAGE: "VACUUM_DATA_LEAF_PAGE",
}


def identify(info: int) -> str | None:
    return _NAMES.get(info & 0xF0)

# record types whose redo changes a relation page (coverage counts these)
PAGE_MODIFYING: tuple[int, ...] = (
    XLOG_GIN_CREATE_PTREE,
    XLOG_GIN_INSERT,
    XLOG_GIN_SPLIT,
    XLOG_GIN_VACUUM_PAGE,
    XLOG_GIN_DELETE_PAGE,
    XLOG_GIN_UPDATE_META_PAGE,
    XLOG_GIN_INSERT_LISTPAGE,
    XLOG_GIN_DELETE_LISTPAGE,
    XLOG_GIN_VACUUM_DATA_LEAF_PAGE,
)


REDO: dict[int, RedoFn] = {}
