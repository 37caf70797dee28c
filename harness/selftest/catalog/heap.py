"""Mutants of Heap redo (pyredo.rmgr.heap), in catalog order."""

from __future__ import annotations

from harness.selftest.catalog.pageutil import U16, tuple_off, u16
from harness.selftest.mutants import (
    Mutant,
    after,
    around,
    mutant,
    no_page_lsn_on_block0,
    redone,
    rewriting,
)
from pyredo.page import bufpage
from pyredo.page.htup import HEAP_XMAX_COMMITTED, HEAP_XMAX_INVALID, T_INFOMASK, HeapTupleHeader
from pyredo.wal.record import VISIBILITYMAP_FORKNUM
from pyredo.xlogutils import RedoContext

MUTANTS: list[Mutant] = []


def _keep_all_visible(ctx: RedoContext) -> None:
    if redone(ctx):
        bufpage.PageSetAllVisible(ctx.page)


def _bump_upper(ctx: RedoContext) -> None:
    if redone(ctx):
        bufpage.set_pd_upper(ctx.page, bufpage.pd_upper(ctx.page) - 8)


def _ctid_off_by_one(ctx: RedoContext) -> None:
    """The inserted tuple's t_ctid points one line pointer further."""
    if not redone(ctx, 0) or len(ctx.record.main_data) < 2:
        return
    offnum = u16(ctx.record.main_data, 0)  # xl_heap_insert.offnum
    off = tuple_off(ctx.page, offnum, 18)
    if off is not None:
        at = off + 16  # t_ctid.ip_posid
        ctx.page[at : at + 2] = U16.pack((u16(ctx.page, at) + 1) & 0xFFFF)


MUTANTS.append(mutant(
    "heap_insert_keeps_all_visible", "heap", 0x00, "flag",
    "heap_xlog_insert leaves PD_ALL_VISIBLE set on the heap page (forgets PageClearAllVisible); "
    "PD_ALL_VISIBLE is masked, so only the engine comparison sees it",
    after(_keep_all_visible), masked=True,
    majors=(15, 16, 17, 18),
))
MUTANTS.append(mutant(
    "heap_insert_ctid_off_by_one", "heap", 0x00, "offset",
    "heap_xlog_insert sets the new tuple's t_ctid one line pointer too far (off-by-one item offset)",
    after(_ctid_off_by_one),
    majors=(15, 16, 17, 18),
))
MUTANTS.append(mutant(
    "heap_delete_free_space_off", "heap", 0x10, "free-space",
    "heap_xlog_delete moves pd_upper 8 bytes down (wrong free-space accounting)",
    after(_bump_upper),
    majors=(15, 16, 17, 18),
))


MUTANTS.append(mutant(
    "heap_insert_no_page_lsn", "heap", 0x00, "lsn",
    "heap_xlog_insert forgets PageSetLSN on the heap page: the page keeps its old LSN "
    "(LSNs are masked against the primary: only the engine comparison can see it)",
    after(no_page_lsn_on_block0), masked=True,
    majors=(15, 16, 17, 18),
))


def _vm_snapshot(ctx: RedoContext) -> bytes | None:
    return bytes(ctx.page) if ctx.tag.fork == VISIBILITYMAP_FORKNUM else None


def _vm_restore(ctx: RedoContext, before: bytes | None) -> None:
    if before is not None and bytes(ctx.page) != before:
        ctx.page[:] = before


MUTANTS.append(mutant(
    "heap_delete_vm_bits_kept", "heap", 0x10, "vm",
    "heap_xlog_delete forgets visibilitymap_clear: the deleted tuple's heap block stays "
    "all-visible (and all-frozen) in the visibility map",
    around(_vm_snapshot, _vm_restore),
    majors=(15, 16, 17, 18),
))

_PREFIX, _SUFFIX = 1 << 5, 1 << 6  # XLH_UPDATE_PREFIX_FROM_OLD, XLH_UPDATE_SUFFIX_FROM_OLD


def _swap_prefix_suffix(ctx: RedoContext) -> tuple[bytes | None, dict[int, bytes]] | None:
    main = ctx.record.main_data
    flags = main[7]  # xl_heap_update.flags
    has_p, has_s = bool(flags & _PREFIX), bool(flags & _SUFFIX)
    if not (has_p or has_s):
        return None
    if has_p and has_s:  # both lengths logged: swap their values
        data = bytearray(ctx.record.block_data(0))
        data[0:2], data[2:4] = data[2:4], data[0:2]
        return None, {0: bytes(data)}
    # one of them logged: read it as the other one
    newflags = (flags & ~(_PREFIX | _SUFFIX)) | (_SUFFIX if has_p else _PREFIX)
    return main[:7] + bytes([newflags]) + main[8:], {}


MUTANTS.append(mutant(
    "heap_hot_update_prefix_suffix_swapped", "heap", 0x40, "data",
    "heap_xlog_update (HOT) swaps the prefix and suffix lengths it reuses from the old "
    "tuple version, rebuilding the new tuple's data wrongly",
    rewriting(_swap_prefix_suffix),
    majors=(15, 16, 17, 18),
))


def _clear_hot_updated(ctx: RedoContext) -> None:
    if not redone(ctx, 0) or len(ctx.record.main_data) < 8:
        return
    off = tuple_off(ctx.page, u16(ctx.record.main_data, 4))  # xl_heap_update.old_offnum
    if off is not None:
        HeapTupleHeader(ctx.page, off).ClearHotUpdated()


MUTANTS.append(mutant(
    "heap_hot_update_not_hot", "heap", 0x40, "flag",
    "HOT-update redo mismatch: heap_xlog_update(hot_update=true) leaves the old version "
    "without HEAP_HOT_UPDATED (as a plain UPDATE would), breaking the replayed HOT chain",
    after(_clear_hot_updated),
    history="A HOT-update replay mismatch of the kind wal_consistency_checking exists to find: "
            "heap_mask masks t_infomask hint bits but never t_infomask2, so a replayed HOT chain "
            "whose root lacks HEAP_HOT_UPDATED differs from the primary. Modelled on the HOT "
            "branch of heap_xlog_update, not on one upstream commit.",
    majors=(15, 16, 17, 18),
))


def _xmax_hints_before(ctx: RedoContext) -> tuple[int, int] | None:
    if len(ctx.record.main_data) < 6 or not ctx.is_target(0):
        return None
    offnum = u16(ctx.record.main_data, 4)  # xl_heap_lock.offnum
    off = tuple_off(ctx.page, offnum)
    if off is None:
        return None
    return offnum, u16(ctx.page, off + T_INFOMASK) & (HEAP_XMAX_INVALID | HEAP_XMAX_COMMITTED)


def _restore_xmax_hints(ctx: RedoContext, before: tuple[int, int] | None) -> None:
    if before is None or not before[1] or not redone(ctx, 0):
        return
    off = tuple_off(ctx.page, before[0])
    if off is not None:
        htup = HeapTupleHeader(ctx.page, off)
        htup.t_infomask = htup.t_infomask | before[1]


MUTANTS.append(mutant(
    "heap_lock_keeps_xmax_invalid", "heap", 0x60, "flag",
    "heap_xlog_lock does not reset the tuple's xmax hint bits (HEAP_XMAX_INVALID, "
    "HEAP_XMAX_COMMITTED): the locked tuple still claims to have no valid xmax",
    around(_xmax_hints_before, _restore_xmax_hints), masked=True,
    history="PostgreSQL commit a4d357bf (2016, Andres Freund) \"Make HEAP_LOCK/HEAP2_LOCK_UPDATED "
            "replay reset HEAP_XMAX_INVALID\": since 9.3 (0ac5ad5) the lock replay routines "
            "forgot to reset HEAP_XMAX_INVALID, so after crash recovery or promotion row locks "
            "of prepared transactions could be ignored.",
    majors=(15, 16, 17, 18),
))


def _confirm_before(ctx: RedoContext) -> tuple[int, int, bytes] | None:
    """(offnum, neighbour, the speculative tuple's t_ctid before redo)."""
    if len(ctx.record.main_data) < 2 or not ctx.is_target(0):
        return None
    offnum = u16(ctx.record.main_data, 0)  # xl_heap_confirm.offnum
    off = tuple_off(ctx.page, offnum)
    if off is None:
        return None
    for other in (offnum - 1, offnum + 1):
        if tuple_off(ctx.page, other) is not None:
            return offnum, other, bytes(ctx.page[off + 12 : off + 18])
    return None


def _confirm_wrong_tuple(ctx: RedoContext, before: tuple[int, int, bytes] | None) -> None:
    if before is None or not redone(ctx, 0):
        return
    offnum, other, old_ctid = before
    off, other_off = tuple_off(ctx.page, offnum), tuple_off(ctx.page, other)
    if off is None or other_off is None:
        return
    new_ctid = bytes(ctx.page[off + 12 : off + 18])
    ctx.page[off + 12 : off + 18] = old_ctid  # the speculative tuple keeps its token
    ctx.page[other_off + 12 : other_off + 18] = new_ctid  # ... the neighbour gets its TID


MUTANTS.append(mutant(
    "heap_confirm_wrong_tuple", "heap", 0x50, "offset",
    "heap_xlog_confirm writes the confirmed TID into the neighbouring tuple's t_ctid; the "
    "speculative tuple keeps whatever t_ctid it had (off-by-one line pointer)",
    around(_confirm_before, _confirm_wrong_tuple),
    majors=(15, 16, 17, 18), aim=("upsert_workout", "upsert"),
))


def _inplace_shifted(ctx: RedoContext) -> None:
    if not redone(ctx, 0) or len(ctx.record.main_data) < 2:
        return
    off = tuple_off(ctx.page, u16(ctx.record.main_data, 0))  # xl_heap_inplace.offnum
    newtup = ctx.record.block_data(0)
    if off is None or len(newtup) < 2:
        return
    at = off + HeapTupleHeader(ctx.page, off).t_hoff
    ctx.page[at + 1 : at + len(newtup)] = newtup[: len(newtup) - 1]


MUTANTS.append(mutant(
    "heap_inplace_off_by_one", "heap", 0x70, "offset",
    "heap_xlog_inplace copies the new tuple data one byte past t_hoff (and drops its last byte)",
    after(_inplace_shifted),
    majors=(15, 16, 17, 18),
))


def _old_ctid_self(ctx: RedoContext) -> None:
    if len(ctx.record.main_data) < 8:
        return
    old_block_id = 1 if ctx.record.block(1) is not None else 0
    if not redone(ctx, old_block_id):
        return
    old_offnum = u16(ctx.record.main_data, 4)
    off = tuple_off(ctx.page, old_offnum)
    if off is not None:
        HeapTupleHeader(ctx.page, off).set_ctid(ctx.tag.blk, old_offnum)


MUTANTS.append(mutant(
    "heap_update_old_ctid_self", "heap", 0x20, "link",
    "heap_xlog_update leaves the old version's t_ctid pointing at itself instead of at the "
    "new version (a broken update chain)",
    after(_old_ctid_self),
    majors=(15, 16, 17, 18),
))


def _vm_blkref_lsn_kept(ctx: RedoContext) -> None:
    if ctx.tag.fork == VISIBILITYMAP_FORKNUM and redone(ctx, 1):  # HEAP_DELETE_BLKREF_VM
        ctx.keep_page_lsn()


MUTANTS.append(mutant(
    "heap_delete_vm_blkref_no_page_lsn", "heap", 0x10, "lsn",
    "heap_xlog_delete (17.11+, 18: the VM page is block reference 1) clears the bits on the "
    "visibility-map page but forgets its PageSetLSN",
    after(_vm_blkref_lsn_kept), masked=True,
    majors=(17, 18),
))
