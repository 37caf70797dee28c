"""Mutants of Heap2 redo (pyredo.rmgr.heap2), in catalog order."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from harness.selftest.catalog.pageutil import tuple_off, u16
from harness.selftest.mutants import Mutant, after, around, helper, mutant, redone
from pyredo.page import bufpage
from pyredo.page.htup import T_XMAX, HeapTupleHeader
from pyredo.xlogutils import RedoContext

MUTANTS: list[Mutant] = []


def _prune_without_compaction(execute: Callable[..., None]) -> Callable[..., None]:
    def heap_page_prune_execute(page: bytearray, redirected: Any, nowdead: Any, nowunused: Any, *,
                                lp_truncate_only: bool = False) -> None:
        for fromoff, tooff in redirected:
            bufpage.ItemIdSetRedirect(page, fromoff, tooff)
        for off in nowdead:
            bufpage.ItemIdSetDead(page, off)
        for off in nowunused:
            bufpage.ItemIdSetUnused(page, off)

    return heap_page_prune_execute


MUTANTS.append(mutant(
    "heap2_prune_skips_compaction", "heap2", 0x10, "compaction",
    "heap_xlog_prune rewrites the line pointers but skips PageRepairFragmentation: the "
    "pruned tuples' space is not reclaimed and pd_upper stays",
    helper("heap_page_prune_execute", _prune_without_compaction),
    majors=(15, 16),
))
MUTANTS.append(mutant(
    "heap2_vacuum_keeps_lp_array", "heap2", 0x20, "free-space",
    "heap_xlog_vacuum skips PageTruncateLinePointerArray: trailing LP_UNUSED line pointers "
    "stay and pd_lower is not lowered",
    helper("PageTruncateLinePointerArray", lambda orig: lambda page: None),
    majors=(15, 16),
))


def _freeze_keeps_infomask(orig: Callable[..., None]) -> Callable[..., None]:
    def heap_execute_freeze_tuple(htup: Any, xmax: int, infomask2: int, infomask: int, frzflags: int) -> None:
        keep = htup.t_infomask
        orig(htup, xmax, infomask2, infomask, frzflags)
        htup.t_infomask = keep

    return heap_execute_freeze_tuple


MUTANTS.append(mutant(
    "heap2_freeze_keeps_infomask", "heap2", 0x30, "flag",
    "heap_xlog_freeze_page applies xmax and t_infomask2 of each freeze plan but keeps the "
    "old t_infomask: xmin is never marked frozen",
    helper("heap_execute_freeze_tuple", _freeze_keeps_infomask),
))
MUTANTS.append(mutant(
    "heap2_visible_no_pd_all_visible", "heap2", 0x40, "vm",
    "heap_xlog_visible sets the visibility-map bits but not PD_ALL_VISIBLE on the heap "
    "page (masked against the primary: only the engine comparison sees it)",
    helper("PageSetAllVisible", lambda orig: lambda page: None),
    masked=True,
    history="Modelled on PostgreSQL commit 95aa823e (2014, Heikki Linnakangas) \"Set the "
            "all-visible flag on heap page before writing WAL record, not after\": a VM bit could "
            "end up set without PD_ALL_VISIBLE on the heap page; found by comparing master and "
            "standby page images after every record.",
    majors=(15, 16, 17, 18),
))


def _vm_set_without_lsn(orig: Callable[..., bool]) -> Callable[..., bool]:
    def visibilitymap_set(page: bytearray, heap_blk: int, flags: int, lsn: int) -> bool:
        keep = bufpage.PageGetLSN(page)
        changed = orig(page, heap_blk, flags, lsn)
        bufpage.PageSetLSN(page, keep)
        return changed

    return visibilitymap_set


MUTANTS.append(mutant(
    "heap2_visible_vm_page_lsn_kept", "heap2", 0x40, "lsn",
    "heap_xlog_visible sets the bits on the visibility-map page without advancing its LSN "
    "(visibilitymap_set forgets PageSetLSN)",
    helper("visibilitymap_set", _vm_set_without_lsn),
    masked=True,
    history="VM page LSN handling: since 9.2 made the visibility map crash-safe, replay of "
            "XLOG_HEAP2_VISIBLE must stamp the record's LSN on the map page when it sets bits "
            "(visibilitymap_set), and may bump the heap page's LSN only when "
            "XLogHintBitIsNeeded() — the interlock the comments in heap_xlog_visible describe. "
            "Modelled on that rule rather than on one upstream commit.",
    majors=(15, 16, 17, 18),
))


def _drop_last_multi_insert(ctx: RedoContext) -> None:
    if not redone(ctx, 0) or len(ctx.record.main_data) < 4:
        return
    ntuples = u16(ctx.record.main_data, 2)
    if ntuples == 0:
        return
    if ctx.info & 0x80:  # XLOG_HEAP_INIT_PAGE: offsets 1..ntuples
        last = ntuples
    else:
        last = u16(ctx.record.main_data, 4 + 2 * (ntuples - 1))
    if 0 < last <= bufpage.PageGetMaxOffsetNumber(ctx.page):
        bufpage.ItemIdSetUnused(ctx.page, last)


MUTANTS.append(mutant(
    "heap2_multi_insert_drops_last", "heap2", 0x50, "offset",
    "heap_xlog_multi_insert loses the batch's last tuple (its line pointer stays LP_UNUSED): "
    "an off-by-one loop bound",
    after(_drop_last_multi_insert),
    majors=(15, 16, 17, 18),
))


def _xmax_before(ctx: RedoContext) -> tuple[int, int] | None:
    if len(ctx.record.main_data) < 6 or not ctx.is_target(0):
        return None
    offnum = u16(ctx.record.main_data, 4)  # xl_heap_lock_updated.offnum
    off = tuple_off(ctx.page, offnum)
    return None if off is None else (offnum, int(struct.unpack_from("<I", ctx.page, off + T_XMAX)[0]))


def _restore_xmax(ctx: RedoContext, before: tuple[int, int] | None) -> None:
    if before is None or not redone(ctx, 0):
        return
    off = tuple_off(ctx.page, before[0])
    if off is not None:
        HeapTupleHeader(ctx.page, off).SetXmax(before[1])


MUTANTS.append(mutant(
    "heap2_lock_updated_keeps_xmax", "heap2", 0x60, "data",
    "heap_xlog_lock_updated sets the lock's infomask bits but keeps the tuple's old xmax",
    around(_xmax_before, _restore_xmax),
    majors=(15, 16, 17, 18), aim=("heap_lock_updated", "lock_chain", "multixact_locks"),
))


# -- routines new or changed in 16, 17, 18 (pyredo/VERSIONS.md) ---------------------------------
MUTANTS.append(mutant(
    "heap2_freeze_plans_keep_infomask", "heap2", 0x30, "flag",
    "heap_xlog_freeze_page (16: freeze plans) applies each plan's xmax and t_infomask2 but "
    "keeps the tuple's old t_infomask: xmin is never marked frozen",
    helper("heap_execute_freeze_tuple", _freeze_keeps_infomask),
    majors=(16,),
))
MUTANTS.append(mutant(
    "heap2_prune_on_access_skips_compaction", "heap2", 0x10, "compaction",
    "heap_xlog_prune_freeze (17: PRUNE_ON_ACCESS) rewrites the line pointers but skips "
    "PageRepairFragmentation: the pruned tuples' space is not reclaimed",
    helper("heap_page_prune_execute", _prune_without_compaction),
    majors=(17, 18),
))
MUTANTS.append(mutant(
    "heap2_prune_vacuum_scan_keeps_infomask", "heap2", 0x20, "flag",
    "heap_xlog_prune_freeze (17: PRUNE_VACUUM_SCAN) applies the freeze plans' xmax and "
    "t_infomask2 but keeps each frozen tuple's old t_infomask",
    helper("heap_execute_freeze_tuple", _freeze_keeps_infomask),
    majors=(17, 18),
))


def _prune_keeps_last_unused(orig: Callable[..., None]) -> Callable[..., None]:
    def heap_page_prune_execute(page: bytearray, redirected: Any, nowdead: Any, nowunused: Any, *,
                                lp_truncate_only: bool = False) -> None:
        orig(page, redirected, nowdead, list(nowunused)[:-1], lp_truncate_only=lp_truncate_only)

    return heap_page_prune_execute


MUTANTS.append(mutant(
    "heap2_prune_vacuum_cleanup_keeps_last_dead", "heap2", 0x30, "compaction",
    "heap_xlog_prune_freeze (17: PRUNE_VACUUM_CLEANUP) marks all but the last of the logged "
    "LP_DEAD items unused (off-by-one loop bound): one dead line pointer stays",
    helper("heap_page_prune_execute", _prune_keeps_last_unused),
    majors=(17, 18),
))
