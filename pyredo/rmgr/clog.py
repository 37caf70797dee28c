"""CLOG: record names only (clog_identify (clogdesc.c); pg_xact pages, see pyredo.slru).

These records change no relation page, so pyredo has no page redo for them;
a record of this rmgr that names a block raises UnsupportedRecord.
"""

from __future__ import annotations

from pyredo.wal.record import XLR_RMGR_INFO_MASK

_NAMES = {
    0x00: "ZEROPAGE",
    0x10: "TRUNCATE",
}


# no page redo in any major; the names (clogdesc.c's identify) are the same in 15, 16, 17, 18
MAJORS: tuple[int, ...] = (15, 16, 17, 18)


def identify(info: int) -> str | None:
    return _NAMES.get(info & XLR_RMGR_INFO_MASK)
