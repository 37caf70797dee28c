"""Mutants of Gin redo (pyredo.rmgr.gin), in catalog order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.selftest.catalog.pageutil import swap_with_neighbour, u16
from harness.selftest.mutants import Mutant, after, helper, mutant, redone
from pyredo import BLCKSZ
from pyredo.page.gin import GIN_COMPRESSED, GinPageGetFlags, GinPageSetFlags
from pyredo.xlogutils import RedoContext

MUTANTS: list[Mutant] = []


def _gin_entry_off_by_one(ctx: RedoContext) -> None:
    if not redone(ctx, 0) or len(ctx.record.main_data) < 2:
        return
    if u16(ctx.record.main_data, 0) & 0x01:  # GIN_INSERT_ISDATA: not an entry page
        return
    data = ctx.record.block_data(0)
    if len(data) >= 2:
        swap_with_neighbour(ctx.page, u16(data, 0))  # ginxlogInsertEntry.offset


MUTANTS.append(mutant(
    "gin_entry_insert_off_by_one", "gin", 0x20, "offset",
    "ginRedoInsertEntry puts the entry tuple one item off (it trades places with its neighbour)",
    after(_gin_entry_off_by_one),
    majors=(15, 16, 17, 18),
))
MUTANTS.append(mutant(
    "gin_update_meta_list_maxoff_stale", "gin", 0x60, "free-space",
    "ginRedoUpdateMetapage appends the row's tuples to the pending-list tail page but does not "
    "count the heap tuple in its maxoff",
    helper("GinPageSetMaxoff", lambda orig: lambda page, maxoff: None),
    majors=(15, 16, 17, 18), aim=("index_am_workout", "full_page_writes=off"),
))

GinPostingListSegmentMinSize = 128  # gindatapage.c: Min 128, Target 256, Max 384


def _compress_capped(orig: Callable[..., tuple[bytes, int]]) -> Callable[..., tuple[bytes, int]]:
    def ginCompressPostingList(ipd: Any, maxsize: int = BLCKSZ) -> tuple[bytes, int]:
        return orig(ipd, min(maxsize, GinPostingListSegmentMinSize))

    return ginCompressPostingList


MUTANTS.append(mutant(
    "gin_posting_list_compression_edge", "gin", 0x20, "posting",
    "ginRedoRecompress re-encodes an ADDITEMS segment with the wrong size limit "
    "(GinPostingListSegmentMinSize, 128 bytes, instead of BLCKSZ): the items past the edge "
    "are silently lost from the posting-tree leaf",
    helper("ginCompressPostingList", _compress_capped),
    history="GIN posting-list compression edge: 9.4 introduced compressed posting-list segments "
            "and the segment actions ginRedoRecompress replays. ginCompressPostingList stops at its "
            "maxsize and only reports how many items it packed; redo must pass a limit the merged "
            "segment always fits (C passes BLCKSZ and merely Asserts npacked == nitems, which a "
            "production build does not check). Modelled on that boundary, not on one upstream "
            "commit. (With the Target size, 256, the mutant never fires on appends: the primary "
            "starts a new segment before the last one passes 256 bytes.)",
    majors=(15, 16, 17, 18),
))


def _ptree_not_compressed(ctx: RedoContext) -> None:
    if redone(ctx, 0):
        GinPageSetFlags(ctx.page, GinPageGetFlags(ctx.page) & ~GIN_COMPRESSED)


MUTANTS.append(mutant(
    "gin_create_ptree_not_compressed", "gin", 0x10, "flag",
    "ginRedoCreatePTree initializes the posting-tree leaf without GIN_COMPRESSED",
    after(_ptree_not_compressed),
    majors=(15, 16, 17, 18),
))
MUTANTS.append(mutant(
    "gin_delete_page_no_delete_xid", "gin", 0x50, "data",
    "ginRedoDeletePage marks the page GIN_DELETED but does not store the deleteXid",
    helper("GinPageSetDeleteXid", lambda orig: lambda page, xid: None),
    masked=True,
    history="PostgreSQL commit 52ac6cd2d0 (2018, Alexander Korotkov) \"Prevent GIN deleted pages "
            "from being reclaimed too early\" added deleteXid to ginxlogDeletePage so that replay "
            "stores it on the deleted page; gin_mask masks deleted pages' contents, so only the "
            "engine comparison can see a replay that forgets it.",
    majors=(15, 16, 17, 18), aim=("gin_posting_tree",),
))
MUTANTS.append(mutant(
    "gin_insert_listpage_no_fullrow", "gin", 0x70, "flag",
    "ginRedoInsertListPage builds the sublist's tail page without GIN_LIST_FULLROW",
    helper("GinPageSetFullRow", lambda orig: lambda page: None),
    majors=(15, 16, 17, 18),
))
