"""Transaction: record names only (xact_identify (xactdesc.c); xact_redo touches pg_xact, not relation pages (see pyredo.slru)).

These records change no relation page, so pyredo has no page redo for them;
a record of this rmgr that names a block raises UnsupportedRecord.
"""

from __future__ import annotations

OPMASK = 0x70

_NAMES = {
    0x00: "COMMIT",
    0x10: "PREPARE",
    0x20: "ABORT",
    0x30: "COMMIT_PREPARED",
    0x40: "ABORT_PREPARED",
    0x50: "ASSIGNMENT",
    0x60: "INVALIDATION",
}


# no page redo in any major; the names (xactdesc.c's identify) are the same in 15, 16, 17, 18
MAJORS: tuple[int, ...] = (15, 16, 17, 18)


def identify(info: int) -> str | None:
    return _NAMES.get(info & 0x70)
