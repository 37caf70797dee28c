"""XLOG resource manager: redo of its page-modifying records.

Mirrors xlog_redo (xlog.c), xlog_identify (xlogdesc.c).
Record types without an entry in ``REDO`` raise UnsupportedRecord.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyredo.wal.image import restore_block_image
from pyredo.wal.record import XLR_RMGR_INFO_MASK

if TYPE_CHECKING:
    from pyredo.xlogutils import RedoContext, RedoFn, RestoreBlockImage

# xl_info values (C header names)
XLOG_CHECKPOINT_SHUTDOWN = 0x00
XLOG_CHECKPOINT_ONLINE = 0x10
XLOG_NOOP = 0x20
XLOG_NEXTOID = 0x30
XLOG_SWITCH = 0x40
XLOG_BACKUP_END = 0x50
XLOG_PARAMETER_CHANGE = 0x60
XLOG_RESTORE_POINT = 0x70
XLOG_FPW_CHANGE = 0x80
XLOG_END_OF_RECOVERY = 0x90
XLOG_FPI_FOR_HINT = 0xA0
XLOG_FPI = 0xB0
XLOG_OVERWRITE_CONTRECORD = 0xD0
XLOG_CHECKPOINT_REDO = 0xE0  # 17+ (pg_control.h): informational, xlog_redo does nothing

_NAMES = {
    XLOG_CHECKPOINT_SHUTDOWN: "CHECKPOINT_SHUTDOWN",
    XLOG_CHECKPOINT_ONLINE: "CHECKPOINT_ONLINE",
    XLOG_NOOP: "NOOP",
    XLOG_NEXTOID: "NEXTOID",
    XLOG_SWITCH: "SWITCH",
    XLOG_BACKUP_END: "BACKUP_END",
    XLOG_PARAMETER_CHANGE: "PARAMETER_CHANGE",
    XLOG_RESTORE_POINT: "RESTORE_POINT",
    XLOG_FPW_CHANGE: "FPW_CHANGE",
    XLOG_END_OF_RECOVERY: "END_OF_RECOVERY",
    XLOG_FPI_FOR_HINT: "FPI_FOR_HINT",
    XLOG_FPI: "FPI",
    XLOG_OVERWRITE_CONTRECORD: "OVERWRITE_CONTRECORD",
}


def identify(info: int) -> str | None:
    return _NAMES.get(info & XLR_RMGR_INFO_MASK)


# xlog_redo's FPI / FPI_FOR_HINT branch (and XLogReadBufferForRedoExtended under it) is
# the same in 15, 16, 17 and 18; 17 adds CHECKPOINT_REDO (xlogdesc.c), which changes no page
MAJORS: tuple[int, ...] = (15, 16, 17, 18)
NAMES_SINCE: dict[int, dict[int, str]] = {17: {XLOG_CHECKPOINT_REDO: "CHECKPOINT_REDO"}}

# record types whose redo changes a relation page (coverage counts these)
PAGE_MODIFYING: tuple[int, ...] = (
    XLOG_FPI_FOR_HINT,
    XLOG_FPI,
)


def xlog_redo_fpi(ctx: RedoContext, *,
                  restore_block_image: RestoreBlockImage = restore_block_image) -> None:
    """Mirrors the XLOG_FPI / XLOG_FPI_FOR_HINT branch of xlog_redo (xlog.c), 15-18.

    Every block reference carries a full-page image to restore. FPI_FOR_HINT
    blocks without an image are skipped; an FPI block without one is an error,
    and so is an image not marked BKPIMAGE_APPLY (a consistency-check copy):
    XLogReadBufferForRedo would then not answer BLK_RESTORED.
    ``restore_block_image`` (wal/image.py's) decompresses and un-holes an image.
    """
    info = ctx.info & XLR_RMGR_INFO_MASK
    rec = ctx.record
    for block_id in range(rec.max_block_id + 1):
        blk = rec.block(block_id)
        if blk is None or not blk.has_image:
            if info == XLOG_FPI:
                raise ctx.error("XLOG_FPI record did not contain a full-page image",
                                block_id=block_id)
            continue
        if not blk.apply_image:
            raise ctx.error("unexpected XLogReadBufferForRedo result when restoring backup block",
                            block_id=block_id)
        ctx.restore_image_if_target(block_id, restore_block_image=restore_block_image)


REDO: dict[int, RedoFn] = {
    XLOG_FPI_FOR_HINT: xlog_redo_fpi,
    XLOG_FPI: xlog_redo_fpi,
}
