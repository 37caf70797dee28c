"""Mutants of Btree redo (pyredo.rmgr.btree), in catalog order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from harness.selftest.catalog.pageutil import U16, swap_item_ids, swap_with_neighbour, u16
from harness.selftest.mutants import Mutant, after, around, helper, mutant, redone, rewriting
from pyredo.page import bufpage
from pyredo.page.nbtree import BTP_LEAF, BTP_ROOT, P_FIRSTDATAKEY, BTPageGetOpaque
from pyredo.xlogutils import RedoContext

MUTANTS: list[Mutant] = []


def _btree_insert_off_by_one(ctx: RedoContext) -> None:
    if redone(ctx, 0) and len(ctx.record.main_data) >= 2:
        swap_with_neighbour(ctx.page, u16(ctx.record.main_data, 0))


MUTANTS.append(mutant(
    "btree_insert_leaf_off_by_one", "btree", 0x00, "offset",
    "btree_xlog_insert puts the new leaf tuple one item off (it trades places with its neighbour)",
    after(_btree_insert_off_by_one),
    majors=(15, 16, 17, 18),
))
MUTANTS.append(mutant(
    "btree_insert_upper_keeps_incomplete_split", "btree", 0x10, "flag",
    "btree_xlog_insert (INSERT_UPPER) forgets _bt_clear_incomplete_split: the split child "
    "keeps BTP_INCOMPLETE_SPLIT",
    helper("_bt_clear_incomplete_split", lambda orig: lambda ctx, block_id: None),
    majors=(15, 16, 17, 18),
))
MUTANTS.append(mutant(
    "btree_insert_meta_skips_metapage", "btree", 0x20, "meta",
    "btree_xlog_insert (INSERT_META) forgets _bt_restore_meta: the metapage keeps the old "
    "root / fast root",
    helper("_bt_restore_meta", lambda orig: lambda ctx, block_id: None),
    majors=(15, 16, 17, 18), aim=("btree_fastroot",),
))


def _flag_cleared(block_id: int, flag: int) -> Callable[[RedoContext], None]:
    """After the routine: ``flag`` is missing from btpo_flags of ``block_id`` (when redone)."""
    def clear(ctx: RedoContext) -> None:
        if redone(ctx, block_id):
            op = BTPageGetOpaque(ctx.page)
            op.btpo_flags = op.btpo_flags & ~flag

    return clear


MUTANTS.append(mutant(
    "btree_split_l_loses_leaf_flag", "btree", 0x30, "flag",
    "btree_xlog_split (SPLIT_L) rebuilds the left half without BTP_LEAF in btpo_flags",
    after(_flag_cleared(0, BTP_LEAF)),
    majors=(15, 16, 17, 18),
))


def _right_items_swapped(ctx: RedoContext) -> None:
    if not redone(ctx, 1):
        return
    page = ctx.page
    maxoff = bufpage.PageGetMaxOffsetNumber(page)
    if maxoff - 1 >= P_FIRSTDATAKEY(BTPageGetOpaque(page)):
        swap_item_ids(page, maxoff - 1, maxoff)


MUTANTS.append(mutant(
    "btree_split_r_items_out_of_order", "btree", 0x40, "order",
    "btree_xlog_split (SPLIT_R) restores the new right page with its last two items in the "
    "wrong order",
    after(_right_items_swapped),
    majors=(15, 16, 17, 18),
))


def _short_last_interval(ctx: RedoContext) -> tuple[bytes | None, dict[int, bytes]] | None:
    nintervals = u16(ctx.record.main_data, 0)
    data = bytearray(ctx.record.block_data(0))
    if nintervals == 0 or len(data) < 4 * nintervals:
        return None
    at = 4 * (nintervals - 1) + 2  # BTDedupInterval.nitems of the last interval
    nitems = u16(data, at)
    if nitems < 2:
        return None
    data[at : at + 2] = U16.pack(nitems - 1)
    return None, {0: bytes(data)}


MUTANTS.append(mutant(
    "btree_dedup_last_interval_short", "btree", 0x60, "posting",
    "btree_xlog_dedup merges one item too few into the last posting list (off-by-one interval length)",
    rewriting(_short_last_interval),
    majors=(15, 16, 17, 18),
))


def _multi_delete_keeps_last(orig: Callable[..., None]) -> Callable[..., None]:
    def PageIndexMultiDelete(page: bytearray, itemnos: Sequence[int]) -> None:
        orig(page, list(itemnos)[:-1])

    return PageIndexMultiDelete


MUTANTS.append(mutant(
    "btree_vacuum_keeps_last_deleted", "btree", 0xC0, "compaction",
    "btree_xlog_vacuum deletes all but the last of the logged items (off-by-one loop bound)",
    helper("PageIndexMultiDelete", _multi_delete_keeps_last),
    majors=(15, 16, 17, 18),
))


def _multi_delete_shifted(orig: Callable[..., None]) -> Callable[..., None]:
    def PageIndexMultiDelete(page: bytearray, itemnos: Sequence[int]) -> None:
        maxoff = bufpage.PageGetMaxOffsetNumber(page)
        shifted = sorted({o + 1 if o + 1 <= maxoff else o for o in itemnos})
        orig(page, shifted)

    return PageIndexMultiDelete


MUTANTS.append(mutant(
    "btree_delete_off_by_one", "btree", 0x70, "offset",
    "btree_xlog_delete deletes the item after each logged offset (off-by-one item offsets)",
    helper("PageIndexMultiDelete", _multi_delete_shifted),
    majors=(15, 16, 17, 18),
))


MUTANTS.append(mutant(
    "btree_unlink_page_meta_loses_leaf", "btree", 0x90, "flag",
    "btree_xlog_unlink_page (UNLINK_PAGE_META) marks the deleted leaf BTP_DELETED only, "
    "without BTP_LEAF",
    after(_flag_cleared(0, BTP_LEAF)),
    history="The first inconsistency wal_consistency_checking reported while it was being "
            "written (Kuntal Ghosh, pgsql-hackers \"WAL consistency check facility\", "
            "2016-09-07): \"For Btree/UNLINK_PAGE_META, btpo_flags are different. In backup "
            "page, BTP_DELETED and BTP_LEAF both the flags are set\" — replay rebuilt the "
            "deleted page without BTP_LEAF; btree_xlog_unlink_page now re-adds it for leaves.",
    majors=(15, 16, 17, 18), aim=("btree_fastroot",),
))


MUTANTS.append(mutant(
    "btree_newroot_no_root_flag", "btree", 0xA0, "flag",
    "btree_xlog_newroot builds the new root without BTP_ROOT in btpo_flags",
    after(_flag_cleared(0, BTP_ROOT)),
    majors=(15, 16, 17, 18),
))


def _swap_posting_keeps_newitem(orig: Callable[..., bytearray]) -> Callable[..., bytearray]:
    def _bt_swap_posting(newitem: bytearray, oposting: Any, postingoff: int) -> bytearray:
        return orig(bytearray(newitem), oposting, postingoff)  # newitem's TID is never swapped

    return _bt_swap_posting


MUTANTS.append(mutant(
    "btree_insert_post_split_mishandled", "btree", 0x50, "posting",
    "btree_xlog_insert (INSERT_POST) mishandles the posting-list split: the new item keeps "
    "its own heap TID instead of taking the posting list's old maximum TID (_bt_swap_posting "
    "only half done)",
    helper("_bt_swap_posting", _swap_posting_keeps_newitem),
    majors=(15, 16, 17, 18),
))


def _cycleid_before(ctx: RedoContext) -> int | None:
    return BTPageGetOpaque(ctx.page).btpo_cycleid if ctx.is_target(0) else None


def _cycleid_restore(ctx: RedoContext, before: int | None) -> None:
    if before is not None and redone(ctx, 0):
        BTPageGetOpaque(ctx.page).btpo_cycleid = before


MUTANTS.append(mutant(
    "btree_vacuum_18_keeps_cycleid", "btree", 0xC0, "flag",
    "btree_xlog_vacuum (18) deletes the logged items but, as 17 did, leaves btpo_cycleid "
    "set (18's _bt_delitems_vacuum clears it on the primary)",
    around(_cycleid_before, _cycleid_restore),
    majors=(18,),
))
