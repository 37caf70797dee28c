"""Mutants of Hash redo (pyredo.rmgr.hash), in catalog order."""

from __future__ import annotations

import struct
from collections.abc import Callable

from harness.selftest.catalog.pageutil import u16
from harness.selftest.mutants import (
    Mutant,
    after,
    around,
    changed_by_routine,
    helper,
    mutant,
    redone,
    rewriting,
)
from pyredo.page import bufpage
from pyredo.page.bufpage import MAXALIGN
from pyredo.page.hash import LH_BUCKET_BEING_POPULATED, HashPageGetMeta, HashPageGetOpaque
from pyredo.rmgr.hash import XLOG_HASH_INSERT
from pyredo.wal.record import XLR_RMGR_INFO_MASK
from pyredo.xlogutils import RedoContext

MUTANTS: list[Mutant] = []


def _meta_ntuples_unchanged(block_id: int) -> Callable[[RedoContext], None]:
    def fn(ctx: RedoContext) -> None:
        if redone(ctx, block_id):
            if ctx.info & XLR_RMGR_INFO_MASK == XLOG_HASH_INSERT:  # undo the +1
                HashPageGetMeta(ctx.page).hashm_ntuples -= 1
            elif len(ctx.record.main_data) >= 8:  # VACUUM_ONE_PAGE: undo the -ntuples
                HashPageGetMeta(ctx.page).hashm_ntuples += struct.unpack_from("<i", ctx.record.main_data, 4)[0]

    return fn


MUTANTS.append(mutant(
    "hash_insert_meta_ntuples_stale", "hash", 0x20, "meta",
    "hash_xlog_insert forgets to count the new tuple in the metapage's hashm_ntuples",
    after(_meta_ntuples_unchanged(1)),
    majors=(15, 16, 17, 18),
))


def _old_bucket_prev_before(ctx: RedoContext) -> int | None:
    if not ctx.is_target(0) or bufpage.PageIsNew(ctx.page):
        return None
    try:
        return int(HashPageGetOpaque(ctx.page).hasho_prevblkno)
    except Exception:
        return None


def _old_bucket_prev_restore(ctx: RedoContext, before: int | None) -> None:
    if before is not None and redone(ctx, 0):
        HashPageGetOpaque(ctx.page).hasho_prevblkno = before


MUTANTS.append(mutant(
    "hash_split_allocate_stale_maxbucket", "hash", 0x40, "link",
    "hash_xlog_split_allocate_page sets the old bucket's flags but not its hasho_prevblkno "
    "(the maxbucket a primary bucket page records at a split)",
    around(_old_bucket_prev_before, _old_bucket_prev_restore),
    majors=(15, 16, 17, 18),
))


def _new_bucket_still_populated(ctx: RedoContext) -> None:
    if changed_by_routine(ctx, 1):
        op = HashPageGetOpaque(ctx.page)
        op.hasho_flag = op.hasho_flag | LH_BUCKET_BEING_POPULATED


MUTANTS.append(mutant(
    "hash_split_complete_keeps_populated", "hash", 0x60, "flag",
    "hash_xlog_split_complete leaves LH_BUCKET_BEING_POPULATED on the new bucket",
    after(_new_bucket_still_populated),
    majors=(15, 16, 17, 18),
))


def _spare_before(ctx: RedoContext) -> tuple[int, int] | None:
    if not ctx.is_target(4) or bufpage.PageIsNew(ctx.page):
        return None
    try:
        metap = HashPageGetMeta(ctx.page)
        return int(metap.hashm_ovflpoint), int(metap.get_spare(metap.hashm_ovflpoint))
    except Exception:
        return None


def _spare_restore(ctx: RedoContext, before: tuple[int, int] | None) -> None:
    if before is not None and redone(ctx, 4):
        HashPageGetMeta(ctx.page).set_spare(before[0], before[1])


MUTANTS.append(mutant(
    "hash_add_ovfl_page_spares_stale", "hash", 0x30, "meta",
    "hash_xlog_add_ovfl_page allocates the overflow page from a new bit but does not count "
    "it in the metapage's hashm_spares[ovflpoint]",
    around(_spare_before, _spare_restore),
    majors=(15, 16, 17, 18), aim=("hash_image_forms", "full_page_writes=off"),
))


def _moved_tuples_reversed(ctx: RedoContext) -> tuple[bytes | None, dict[int, bytes]] | None:
    ntups = u16(ctx.record.main_data, 8)  # xl_hash_squeeze_page.ntups
    data = ctx.record.block_data(1)
    if ntups < 2 or len(data) < 2 * ntups:
        return None
    tuples, pos = [], 2 * ntups
    while pos + 8 <= len(data):
        size = MAXALIGN(u16(data, pos + 6) & 0x1FFF)
        if size == 0:
            return None
        tuples.append(data[pos : pos + size])
        pos += size
    if len(tuples) != ntups or pos != len(data):
        return None
    return None, {1: data[: 2 * ntups] + b"".join(reversed(tuples))}


MUTANTS.append(mutant(
    "hash_squeeze_moved_tuples_reversed", "hash", 0x80, "order",
    "hash_xlog_squeeze_page pairs the tuples it moves onto the write page with the logged "
    "offsets in reverse order: the moved tuples land in the wrong slots",
    rewriting(_moved_tuples_reversed),
    majors=(15, 16, 17, 18),
))
MUTANTS.append(mutant(
    "hash_squeeze_bitmap_bit_kept", "hash", 0x80, "free-space",
    "hash_xlog_squeeze_page frees the overflow page but does not clear its bit in the "
    "bitmap page (CLRBIT skipped): the page stays allocated",
    helper("CLRBIT", lambda orig: lambda page, bit: None),
    majors=(15, 16),
))
MUTANTS.append(mutant(
    "hash_vacuum_one_page_ntuples_stale", "hash", 0xC0, "meta",
    "hash_xlog_vacuum_one_page removes the dead tuples but does not subtract them from the "
    "metapage's hashm_ntuples",
    after(_meta_ntuples_unchanged(1)),
))


def _meta_ntuples_unchanged_16(ctx: RedoContext) -> None:
    if redone(ctx, 1) and len(ctx.record.main_data) >= 6:  # xl_hash_vacuum_one_page (16).ntuples
        HashPageGetMeta(ctx.page).hashm_ntuples += u16(ctx.record.main_data, 4)


MUTANTS.append(mutant(
    "hash_vacuum_one_page_16_ntuples_stale", "hash", 0xC0, "meta",
    "hash_xlog_vacuum_one_page (16: uint16 ntuples, isCatalogRel) removes the dead tuples but "
    "does not subtract them from the metapage's hashm_ntuples",
    after(_meta_ntuples_unchanged_16),
    majors=(16, 17, 18),
))
