"""Mutants of Gist redo (pyredo.rmgr.gist), in catalog order."""

from __future__ import annotations

from harness.selftest.catalog.pageutil import init_without
from harness.selftest.mutants import Mutant, after, helper, mutant, no_page_lsn_on_block0
from pyredo.page.gist import F_LEAF

MUTANTS: list[Mutant] = []


MUTANTS.append(mutant(
    "gist_follow_right_not_cleared", "gist", 0x00, "flag",
    "gistRedoPageUpdateRecord sets the split child's NSN but leaves F_FOLLOW_RIGHT set "
    "(masked against the primary: only the engine comparison sees it)",
    helper("GistClearFollowRight", lambda orig: lambda page: None),
    masked=True,
))
MUTANTS.append(mutant(
    "gist_page_update_no_page_lsn", "gist", 0x00, "lsn",
    "gistRedoPageUpdateRecord forgets PageSetLSN on the updated page",
    after(no_page_lsn_on_block0), masked=True,
    majors=(15, 16, 17, 18),
))


MUTANTS.append(mutant(
    "gist_split_pages_lose_leaf_flag", "gist", 0x30, "flag",
    "gistRedoPageSplitRecord re-initializes the split pages without F_LEAF",
    helper("GISTInitBuffer", init_without(F_LEAF)),
    majors=(15, 16, 17, 18),
))
MUTANTS.append(mutant(
    "gist_page_delete_keeps_downlink", "gist", 0x60, "link",
    "gistRedoPageDelete marks the leaf deleted but leaves its downlink in the parent",
    helper("PageIndexTupleDelete", lambda orig: lambda page, offnum: None),
    majors=(15, 16, 17, 18),
))

MUTANTS.append(mutant(
    "gist_delete_16_no_page_lsn", "gist", 0x10, "lsn",
    "gistRedoDeleteRecord (16: offsets after isCatalogRel) deletes the tuples but forgets "
    "PageSetLSN on the leaf page",
    after(no_page_lsn_on_block0), masked=True,
    majors=(16, 17, 18),
))
