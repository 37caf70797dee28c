"""Gist resource manager: redo of its page-modifying records.

Mirrors gist_redo (gistxlog.c), gist_identify (gistdesc.c).
Record types without an entry in ``REDO`` raise UnsupportedRecord.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyredo.rmgr import RedoFn

# xl_info values (C header names)
XLOG_GIST_PAGE_UPDATE = 0x00
XLOG_GIST_DELETE = 0x10
XLOG_GIST_PAGE_REUSE = 0x20
XLOG_GIST_PAGE_SPLIT = 0x30
XLOG_GIST_PAGE_DELETE = 0x60
XLOG_GIST_ASSIGN_LSN = 0x70

_NAMES = {
    XLOG_GIST_PAGE_UPDATE: "PAGE_UPDATE",
    XLOG_GIST_DELETE: "DELETE",
    XLOG_GIST_PAGE_REUSE: "PAGE_REUSE",
    XLOG_GIST_PAGE_SPLIT: "PAGE_SPLIT",
    XLOG_GIST_PAGE_DELETE: "PAGE_DELETE",
    XLOG_GIST_ASSIGN_LSN: "ASSIGN_LSN",
}


def identify(info: int) -> str | None:
    return _NAMES.get(info & 0xF0)

# record types whose redo changes a relation page (coverage counts these)
PAGE_MODIFYING: tuple[int, ...] = (
    XLOG_GIST_PAGE_UPDATE,
    XLOG_GIST_DELETE,
    XLOG_GIST_PAGE_SPLIT,
    XLOG_GIST_PAGE_DELETE,
)


REDO: dict[int, RedoFn] = {}
