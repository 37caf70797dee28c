"""Mutants of Gist redo (pyredo.rmgr.gist), in catalog order."""

from __future__ import annotations

from harness.selftest.catalog.pageutil import init_without, u16
from harness.selftest.mutants import Mutant, after, helper, mutant, no_page_lsn_on_block0, rewriting
from pyredo.page.gist import F_LEAF
from pyredo.xlogutils import RedoContext

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
    majors=(15, 16, 17, 18), aim=("gist_page_delete",),
))

# What 16 changed in gistRedoDeleteRecord is where the offsets are: gistxlogDelete gained
# isCatalogRel, and the offsets moved from SizeOfGistxlogDelete (byte 6 in 15) to
# offsetof(gistxlogDelete, offsets) (byte 8). (A forgotten PageSetLSN, this rmgr's earlier
# 16+ mutant, can never reach a final page: gistprunepage runs only from gistplacetopage,
# which then puts its tuple on the same leaf, a PAGE_UPDATE, or splits it, a PAGE_SPLIT,
# and either stamps a newer LSN.)
def _offsets_at_15_position(ctx: RedoContext) -> tuple[bytes | None, dict[int, bytes]] | None:
    main = ctx.record.main_data
    ntodelete = u16(main, 4)  # gistxlogDelete.ntodelete
    if ntodelete == 0 or len(main) < 8 + 2 * ntodelete:
        return None
    return main[:8] + main[6 : 6 + 2 * ntodelete], {}


MUTANTS.append(mutant(
    "gist_delete_16_offsets_at_15_position", "gist", 0x10, "offset",
    "gistRedoDeleteRecord (16: gistxlogDelete gains isCatalogRel) reads the offsets where "
    "15's record had them (byte 6, SizeOfGistxlogDelete) instead of at offsetof(gistxlogDelete, "
    "offsets) (byte 8): the first is isCatalogRel and its padding, the rest shift by one",
    rewriting(_offsets_at_15_position),
    majors=(16, 17, 18),
))
