"""Line-pointer surgery of heap pruning (access/heap/pruneheap.c).

``heap_page_prune_execute`` is shared by the pruning code on the primary and
by the redo of XLOG_HEAP2_PRUNE: it rewrites the named line pointers and then
compacts the page with PageRepairFragmentation, which leaves the bytes of the
removed tuples below the new pd_upper, as C does.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyredo.page.bufpage import (
    ItemIdSetDead,
    ItemIdSetRedirect,
    ItemIdSetUnused,
    PageCorrupted,
    PageGetMaxOffsetNumber,
    PageRepairFragmentation,
    PageTruncateLinePointerArray,
)


def _check_offsets(page: bytearray, offsets: Sequence[int], what: str) -> None:
    # C writes through PageGetItemId unchecked; a bad offset would scribble on
    # the page, so it is an error here
    maxoff = PageGetMaxOffsetNumber(page)
    for off in offsets:
        if not 1 <= off <= maxoff:
            raise PageCorrupted(f"{what} offset {off} is outside the line pointer array (1..{maxoff})")


def heap_page_prune_execute(
    page: bytearray,
    redirected: Sequence[tuple[int, int]],
    nowdead: Sequence[int],
    nowunused: Sequence[int],
    *,
    lp_truncate_only: bool = False,
) -> None:
    """Mirrors heap_page_prune_execute (pruneheap.c): set redirects (from, to),
    mark items dead, mark items unused, then PageRepairFragmentation. 17 and 18 add
    ``lp_truncate_only`` (a record replayed without a cleanup lock: VACUUM's second
    pass): PageTruncateLinePointerArray instead, no tuple data moves."""
    _check_offsets(page, [f for f, _t in redirected], "redirect")
    _check_offsets(page, nowdead, "dead")
    _check_offsets(page, nowunused, "unused")
    for fromoff, tooff in redirected:
        ItemIdSetRedirect(page, fromoff, tooff)
    for off in nowdead:
        ItemIdSetDead(page, off)
    for off in nowunused:
        ItemIdSetUnused(page, off)
    if lp_truncate_only:
        PageTruncateLinePointerArray(page)
    else:
        PageRepairFragmentation(page)
