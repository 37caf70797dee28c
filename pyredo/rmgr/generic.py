"""Generic resource manager: redo of its page-modifying records.

Mirrors generic_redo (generic_xlog.c), generic_identify (genericdesc.c).
Record types without an entry in ``REDO`` raise UnsupportedRecord.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyredo.rmgr import RedoFn

# xl_info values (C header names)


def identify(info: int) -> str | None:
    return "Generic"


PAGE_MODIFYING: tuple[int, ...] = (0x00,)


REDO: dict[int, RedoFn] = {}
