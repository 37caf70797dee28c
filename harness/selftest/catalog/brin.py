"""Mutants of BRIN redo (pyredo.rmgr.brin), in catalog order."""

from __future__ import annotations

from harness.selftest.catalog.pageutil import U16, u16
from harness.selftest.mutants import Mutant, after, helper, mutant, redone, rewriting
from pyredo.page import bufpage
from pyredo.page.brin import (
    BRIN_EVACUATE_PAGE,
    BRIN_IS_REGULAR_PAGE,
    BrinPageFlags,
    SetBrinPageFlags,
)
from pyredo.xlogutils import RedoContext

MUTANTS: list[Mutant] = []


def _set_evacuate(ctx: RedoContext) -> None:
    if redone(ctx, 0) and BRIN_IS_REGULAR_PAGE(ctx.page):
        SetBrinPageFlags(ctx.page, BrinPageFlags(ctx.page) | BRIN_EVACUATE_PAGE)


MUTANTS.append(mutant(
    "brin_insert_sets_evacuate_flag", "brin", 0x10, "flag",
    "brin_xlog_insert leaves BRIN_EVACUATE_PAGE set on the regular page it inserts into",
    after(_set_evacuate), masked=True,
    history="BRIN evacuate-page masking: BRIN_EVACUATE_PAGE is set by brin_start_evacuating_page "
            "without WAL, so primary and standby legitimately disagree on it; while "
            "wal_consistency_checking was developed (2016-17) brin_mask had to learn to mask it "
            "(\"BRIN_EVACUATE_PAGE is not WAL-logged, since it's of no use in recovery. Mask it.\"). "
            "A replay that sets it wrongly is invisible to that mask: only the engine comparison "
            "can catch it.",
    majors=(15, 16, 17, 18),
))


def _samepage_wrong_item(ctx: RedoContext) -> tuple[bytes | None, dict[int, bytes]] | None:
    if not ctx.is_target(0) or bufpage.PageIsNew(ctx.page):
        return None
    offnum = u16(ctx.record.main_data, 0)
    maxoff = bufpage.PageGetMaxOffsetNumber(ctx.page)
    other = offnum - 1 if offnum > 1 else offnum + 1
    if not 0 < other <= maxoff:
        return None
    lp = bufpage.PageGetItemId(ctx.page, other)
    if lp[1] != bufpage.LP_NORMAL:
        return None
    return U16.pack(other) + ctx.record.main_data[2:], {}


MUTANTS.append(mutant(
    "brin_samepage_update_wrong_item", "brin", 0x30, "offset",
    "brin_xlog_samepage_update overwrites the neighbouring index tuple instead of the logged one",
    rewriting(_samepage_wrong_item),
    majors=(15, 16, 17, 18),
))
MUTANTS.append(mutant(
    "brin_revmap_extend_meta_stale", "brin", 0x40, "meta",
    "brin_xlog_revmap_extend initializes the new revmap page but does not record it as the "
    "metapage's lastRevmapPage",
    helper("brin_metapage_set_last_revmap_page", lambda orig: lambda page, blk: None),
    majors=(15, 16, 17, 18),
))
MUTANTS.append(mutant(
    "brin_update_old_tuple_kept", "brin", 0x20, "compaction",
    "brin_xlog_update inserts the new summary tuple but does not delete the old one",
    helper("PageIndexTupleDeleteNoCompact", lambda orig: lambda page, off: None),
    majors=(15, 16, 17, 18),
))
MUTANTS.append(mutant(
    "brin_desummarize_revmap_kept", "brin", 0x50, "link",
    "brin_xlog_desummarize_page deletes the summary tuple but leaves the revmap pointing at it",
    helper("brinSetHeapBlockItemptr", lambda orig: lambda *args: None),
    majors=(15, 16, 17, 18),
))
