"""Mutants of Sequence redo (pyredo.rmgr.seq), in catalog order."""

from __future__ import annotations

from harness.selftest.mutants import Mutant, after, mutant, redone
from pyredo import BLCKSZ
from pyredo.page import bufpage
from pyredo.xlogutils import RedoContext

MUTANTS: list[Mutant] = []


def _seq_start_lsn(ctx: RedoContext) -> None:
    if redone(ctx, 0):
        bufpage.PageSetLSN(ctx.page, ctx.record.lsn)
        ctx.keep_page_lsn()


MUTANTS.append(mutant(
    "seq_redo_start_lsn", "seq", 0x00, "lsn",
    "seq_redo stamps the rebuilt page with the record's start LSN instead of its end",
    after(_seq_start_lsn), masked=True,
    majors=(15, 16, 17, 18),
))


def _seq_magic_swapped(ctx: RedoContext) -> None:
    if redone(ctx, 0):
        sp = bufpage.pd_special(ctx.page)
        if sp + 4 <= BLCKSZ:
            ctx.page[sp : sp + 4] = bytes(reversed(ctx.page[sp : sp + 4]))


MUTANTS.append(mutant(
    "seq_redo_magic_byte_swapped", "seq", 0x00, "data",
    "seq_redo writes the sequence_magic special space byte-swapped (an endianness bug)",
    after(_seq_magic_swapped),
    majors=(15, 16, 17, 18),
))
