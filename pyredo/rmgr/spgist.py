"""SPGist resource manager: redo of its page-modifying records.

Mirrors spg_redo (spgxlog.c), spg_identify (spgdesc.c).
Record types without an entry in ``REDO`` raise UnsupportedRecord.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyredo.rmgr import RedoFn

# xl_info values (C header names)
XLOG_SPGIST_ADD_LEAF = 0x10
XLOG_SPGIST_MOVE_LEAFS = 0x20
XLOG_SPGIST_ADD_NODE = 0x30
XLOG_SPGIST_SPLIT_TUPLE = 0x40
XLOG_SPGIST_PICKSPLIT = 0x50
XLOG_SPGIST_VACUUM_LEAF = 0x60
XLOG_SPGIST_VACUUM_ROOT = 0x70
XLOG_SPGIST_VACUUM_REDIRECT = 0x80

_NAMES = {
    XLOG_SPGIST_ADD_LEAF: "ADD_LEAF",
    XLOG_SPGIST_MOVE_LEAFS: "MOVE_LEAFS",
    XLOG_SPGIST_ADD_NODE: "ADD_NODE",
    XLOG_SPGIST_SPLIT_TUPLE: "SPLIT_TUPLE",
    XLOG_SPGIST_PICKSPLIT: "PICKSPLIT",
    XLOG_SPGIST_VACUUM_LEAF: "VACUUM_LEAF",
    XLOG_SPGIST_VACUUM_ROOT: "VACUUM_ROOT",
    XLOG_SPGIST_VACUUM_REDIRECT: "VACUUM_REDIRECT",
}


def identify(info: int) -> str | None:
    return _NAMES.get(info & 0xF0)

# record types whose redo changes a relation page (coverage counts these)
PAGE_MODIFYING: tuple[int, ...] = (
    XLOG_SPGIST_ADD_LEAF,
    XLOG_SPGIST_MOVE_LEAFS,
    XLOG_SPGIST_ADD_NODE,
    XLOG_SPGIST_SPLIT_TUPLE,
    XLOG_SPGIST_PICKSPLIT,
    XLOG_SPGIST_VACUUM_LEAF,
    XLOG_SPGIST_VACUUM_ROOT,
    XLOG_SPGIST_VACUUM_REDIRECT,
)


REDO: dict[int, RedoFn] = {}
