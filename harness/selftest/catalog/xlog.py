"""Mutants of XLOG redo (pyredo.rmgr.xlog), in catalog order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.selftest.mutants import Mutant, after, helper, mutant
from pyredo import BLCKSZ
from pyredo.page import bufpage
from pyredo.xlogutils import BlkAction, RedoContext

MUTANTS: list[Mutant] = []


def _hole_moved(restore: Callable[..., bytes]) -> Callable[..., bytes]:
    def restore_block_image(blk: Any, lsn: int | None = None, **kw: Any) -> bytes:
        page = restore(blk, lsn, **kw)
        ho, hl = blk.hole_offset, blk.hole_length
        if hl == 0 or ho + hl + 8 > BLCKSZ:
            return page
        data = page[:ho] + page[ho + hl :]  # the image as logged: the page without its hole
        return data[: ho + 8] + bytes(hl) + data[ho + 8 :]

    return restore_block_image


MUTANTS.append(mutant(
    "xlog_fpi_hole_misplaced", "xlog", 0xB0, "image",
    "XLOG_FPI redo restores the image with its hole 8 bytes too far: the 8 bytes after the "
    "hole land before it (RestoreBlockImage computing the hole offset wrongly)",
    helper("restore_block_image", _hole_moved),
    majors=(15, 16, 17, 18),
))


def _restored_lsn_is_start(ctx: RedoContext) -> None:
    if BlkAction.BLK_RESTORED in ctx.actions.values() and not bufpage.PageIsNew(ctx.page):
        bufpage.PageSetLSN(ctx.page, ctx.record.lsn)


MUTANTS.append(mutant(
    "xlog_fpi_for_hint_start_lsn", "xlog", 0xA0, "lsn",
    "XLOG_FPI_FOR_HINT redo stamps the restored page with the record's start LSN "
    "(ReadRecPtr) instead of its end (EndRecPtr)",
    after(_restored_lsn_is_start), masked=True,
    majors=(15, 16, 17, 18),
))
