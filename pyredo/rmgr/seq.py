"""Sequence resource manager: redo of its page-modifying records.

Mirrors seq_redo (sequence.c), seq_identify (seqdesc.c).
Record types without an entry in ``REDO`` raise UnsupportedRecord.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyredo.rmgr import RedoFn

# xl_info values (C header names)
XLOG_SEQ_LOG = 0x00

_NAMES = {
    XLOG_SEQ_LOG: "LOG",
}


def identify(info: int) -> str | None:
    return _NAMES.get(info & 0xF0)

# record types whose redo changes a relation page (coverage counts these)
PAGE_MODIFYING: tuple[int, ...] = (
    XLOG_SEQ_LOG,
)


REDO: dict[int, RedoFn] = {}
