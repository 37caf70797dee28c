"""Mutants of SPGist redo (pyredo.rmgr.spgist), in catalog order."""

from __future__ import annotations

from collections.abc import Callable

from harness.selftest.catalog.pageutil import init_without
from harness.selftest.mutants import Mutant, after, helper, mutant, no_page_lsn_on_block0
from pyredo.page import bufpage
from pyredo.page.spgist import SPGIST_LEAF
from pyredo.xlogutils import RedoContext

MUTANTS: list[Mutant] = []


MUTANTS.append(mutant(
    "spgist_add_leaf_chain_not_linked", "spgist", 0x10, "link",
    "spgRedoAddLeaf adds the leaf tuple but does not link it into its chain (the head's "
    "nextOffset is not updated)",
    helper("SGLT_SET_NEXTOFFSET", lambda orig: lambda page, off, n: None),
    majors=(15, 16, 17, 18),
))


def _counts_without_redirects(orig: Callable[..., None]) -> Callable[..., None]:
    def SpGistPageAdjustCounts(page: bytearray, *, nRedirection: int = 0, nPlaceholder: int = 0) -> None:
        orig(page, nRedirection=0, nPlaceholder=nPlaceholder)

    return SpGistPageAdjustCounts


MUTANTS.append(mutant(
    "spgist_move_leafs_redirect_uncounted", "spgist", 0x20, "free-space",
    "spgRedoMoveLeafs leaves the redirect tuple out of the source page's nRedirection",
    helper("SpGistPageAdjustCounts", _counts_without_redirects),
    majors=(15, 16, 17, 18),
))


def _delete_no_compact(orig: Callable[..., None]) -> Callable[..., None]:
    def _delete_item(ctx: RedoContext, page: bytearray, offnum: int, block_id: int) -> None:
        with ctx.page_errors(block_id):
            bufpage.PageIndexTupleDeleteNoCompact(page, offnum)

    return _delete_item


MUTANTS.append(mutant(
    "spgist_add_node_delete_no_compact", "spgist", 0x30, "compaction",
    "spgRedoAddNode removes the old inner tuple with PageIndexTupleDeleteNoCompact instead of "
    "PageIndexTupleDelete: its line pointer stays behind, shifting the tuples after it",
    helper("_delete_item", _delete_no_compact),
    majors=(15, 16, 17, 18),
))


MUTANTS.append(mutant(
    "spgist_picksplit_leaf_flag_lost", "spgist", 0x50, "flag",
    "spgRedoPickSplit initializes new leaf pages without SPGIST_LEAF",
    helper("SpGistInitPage", init_without(SPGIST_LEAF)),
    majors=(15, 16, 17, 18),
))

MUTANTS.append(mutant(
    "spgist_vacuum_redirect_16_no_page_lsn", "spgist", 0x80, "lsn",
    "spgRedoVacuumRedirect (16: offsets after isCatalogRel) turns the redirects into "
    "placeholders but forgets PageSetLSN on the page",
    after(no_page_lsn_on_block0), masked=True,
    majors=(16, 17, 18),
))
