"""heapam_xlog.h's Heap and Heap2 record layouts (xl_info values, flag bits, struct
formats: 15's, which 16-18 keep, and the later ones named by their major; the freeze-plan
and prune-item readers redo and desc share), and the
visibility-map clearing of heap redo in PostgreSQL 17 and 18 (heapam_xlog.c).

The 17 and 18 sources read here (17.11, 18.6; a minor-release fix, not in 16.15)
register the VM page a heap record clears as a block reference of its own
(HEAP_INSERT_BLKREF_VM, HEAP_DELETE_BLKREF_VM, HEAP_LOCK_BLKREF_VM,
HEAP_MULTI_INSERT_BLKREF_VM = 1; HEAP_UPDATE_BLKREF_VM_NEW = 2 and _VM_OLD = 3),
read with XLogReadBufferForRedo and stamped with the record's LSN only when a bit
was cleared. A record without that reference (WAL of an older minor, or a VM bit
that was already clear) takes the path of 15 and 16: visibilitymap_pin +
visibilitymap_clear of the VM page the record does not name, without an LSN.

Shared by pyredo.rmgr.heap, heap2 and heapdesc; imports none of them.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, NamedTuple

from pyredo.page.visibilitymap import (
    HEAPBLK_TO_MAPBLOCK,
    VISIBILITYMAP_VALID_BITS,
    visibilitymap_clear,
)

if TYPE_CHECKING:
    from pyredo.xlogutils import RecordCursor, RedoContext

# heapam_xlog.h: xl_info values (C header names); the 15 layouts, unchanged through 18
# except where a routine says so
XLOG_HEAP_INSERT = 0x00
XLOG_HEAP_DELETE = 0x10
XLOG_HEAP_UPDATE = 0x20
XLOG_HEAP_TRUNCATE = 0x30
XLOG_HEAP_HOT_UPDATE = 0x40
XLOG_HEAP_CONFIRM = 0x50
XLOG_HEAP_LOCK = 0x60
XLOG_HEAP_INPLACE = 0x70
XLOG_HEAP_OPMASK = 0x70
XLOG_HEAP_INIT_PAGE = 0x80

OPMASK = 0x70

# xl_heap_insert / xl_heap_multi_insert flags
XLH_INSERT_ALL_VISIBLE_CLEARED = 1 << 0
XLH_INSERT_LAST_IN_MULTI = 1 << 1
XLH_INSERT_IS_SPECULATIVE = 1 << 2
XLH_INSERT_CONTAINS_NEW_TUPLE = 1 << 3
XLH_INSERT_ON_TOAST_RELATION = 1 << 4
XLH_INSERT_ALL_FROZEN_SET = 1 << 5

# xl_heap_update flags
XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED = 1 << 0
XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED = 1 << 1
XLH_UPDATE_CONTAINS_OLD_TUPLE = 1 << 2
XLH_UPDATE_CONTAINS_OLD_KEY = 1 << 3
XLH_UPDATE_CONTAINS_NEW_TUPLE = 1 << 4
XLH_UPDATE_PREFIX_FROM_OLD = 1 << 5
XLH_UPDATE_SUFFIX_FROM_OLD = 1 << 6

# xl_heap_delete flags
XLH_DELETE_ALL_VISIBLE_CLEARED = 1 << 0
XLH_DELETE_CONTAINS_OLD_TUPLE = 1 << 1
XLH_DELETE_CONTAINS_OLD_KEY = 1 << 2
XLH_DELETE_IS_SUPER = 1 << 3
XLH_DELETE_IS_PARTITION_MOVE = 1 << 4

# infobits_set of delete / update / lock records
XLHL_XMAX_IS_MULTI = 0x01
XLHL_XMAX_LOCK_ONLY = 0x02
XLHL_XMAX_EXCL_LOCK = 0x04
XLHL_XMAX_KEYSHR_LOCK = 0x08
XLHL_KEYS_UPDATED = 0x10

# xl_heap_lock / xl_heap_lock_updated flags
XLH_LOCK_ALL_FROZEN_CLEARED = 0x01

# heapam_xlog.h structs (little-endian, C padding spelled out)
XL_HEAP_INSERT = struct.Struct("<HB")  # offnum, flags
XL_HEAP_DELETE = struct.Struct("<IHBB")  # xmax, offnum, infobits_set, flags
XL_HEAP_UPDATE = struct.Struct("<IHBBIH")  # old_xmax, old_offnum, old_infobits_set, flags, new_xmax, new_offnum
XL_HEAP_LOCK = struct.Struct("<IHBB")  # locking_xid, offnum, infobits_set, flags
XL_HEAP_CONFIRM = struct.Struct("<H")  # offnum
XL_HEAP_INPLACE = struct.Struct("<H")  # offnum
XL_HEAP_HEADER = struct.Struct("<HHB")  # t_infomask2, t_infomask, t_hoff
XL_HEAP_TRUNCATE = struct.Struct("<IIB")  # dbId, nrelids, flags (relids follow, 4-aligned)
SizeOfHeapHeader = XL_HEAP_HEADER.size

# -- Heap2 (the same header) ---------------------------------------------------------------
XLOG_HEAP2_REWRITE = 0x00
XLOG_HEAP2_PRUNE = 0x10  # 17+: XLOG_HEAP2_PRUNE_ON_ACCESS
XLOG_HEAP2_VACUUM = 0x20  # 17+: XLOG_HEAP2_PRUNE_VACUUM_SCAN
XLOG_HEAP2_FREEZE_PAGE = 0x30  # 17+: XLOG_HEAP2_PRUNE_VACUUM_CLEANUP
XLOG_HEAP2_VISIBLE = 0x40
XLOG_HEAP2_MULTI_INSERT = 0x50
XLOG_HEAP2_LOCK_UPDATED = 0x60
XLOG_HEAP2_NEW_CID = 0x70

XL_HEAP_PRUNE = struct.Struct("<IHH")  # latestRemovedXid, nredirected, ndead (16: + isCatalogRel)
XL_HEAP_VACUUM = struct.Struct("<H")  # nunused
XL_HEAP_FREEZE_PAGE = struct.Struct("<IH")  # cutoff_xid, ntuples
XL_HEAP_VISIBLE = struct.Struct("<IB")  # cutoff_xid, flags
XL_HEAP_MULTI_INSERT = struct.Struct("<BxH")  # flags, ntuples (offsets[] follow unless INIT)
XL_HEAP_LOCK_UPDATED = struct.Struct("<IHBB")  # xmax, offnum, infobits_set, flags
XL_HEAP_NEW_CID = struct.Struct("<IIIIIIIHHH")  # top_xid, cmin, cmax, combocid, rnode, tid
# 16: xl_heap_freeze_page becomes freeze plans
XL_HEAP_FREEZE_PAGE_16 = struct.Struct("<IH?")  # snapshotConflictHorizon, nplans, isCatalogRel
XL_HEAP_FREEZE_PLAN = struct.Struct("<IHHBxH")  # xmax, t_infomask2, t_infomask, frzflags, ntuples
# 17: one xl_heap_prune for what were PRUNE, VACUUM and FREEZE_PAGE
XL_HEAP_PRUNE_17 = struct.Struct("<BB")  # reason, flags (conflict horizon follows, unaligned)
XLHP_IS_CATALOG_REL = 1 << 1
XLHP_CLEANUP_LOCK = 1 << 2
XLHP_HAS_CONFLICT_HORIZON = 1 << 3
XLHP_HAS_FREEZE_PLANS = 1 << 4
XLHP_HAS_REDIRECTIONS = 1 << 5
XLHP_HAS_DEAD_ITEMS = 1 << 6
XLHP_HAS_NOW_UNUSED_ITEMS = 1 << 7

FreezePlan = tuple[tuple[int, int, int, int], int]  # (xmax, t_infomask2, t_infomask, frzflags), ntuples

# heapam_xlog.h (17.11+, 18.6+): block references of the VM pages a record clears
HEAP_VM_BLKREF = 1  # HEAP_{INSERT,DELETE,LOCK,MULTI_INSERT}_BLKREF_VM
HEAP_UPDATE_BLKREF_VM_NEW = 2
HEAP_UPDATE_BLKREF_VM_OLD = 3


def read_freeze_plans(data: RecordCursor, nplans: int) -> list[FreezePlan]:
    """``nplans`` xl_heap_freeze_plan (16) / xlhp_freeze_plan (17, 18): ((xmax,
    t_infomask2, t_infomask, frzflags), ntuples) each."""
    data.need(nplans * XL_HEAP_FREEZE_PLAN.size, f"{nplans} freeze plans")
    out = []
    for _ in range(nplans):
        xmax, infomask2, infomask, frzflags, ntuples = data.unpack(XL_HEAP_FREEZE_PLAN, "freeze plan")
        out.append(((xmax, infomask2, infomask, frzflags), ntuples))
    return out


def _prune_items(data: RecordCursor, flags: int, flag: int, per: int, what: str) -> list[int]:
    """An xlhp_prune_items sub-record (17, 18: uint16 ntargets, then ``per`` * ntargets
    offsets) when ``flag`` is set in xl_heap_prune.flags, else none."""
    if not flags & flag:
        return []
    return data.u16_array(per * data.u16(f"n{what}"), f"{what} offsets")


class PruneFreezeItems(NamedTuple):
    """What block 0 of a 17+ xl_heap_prune record holds before the frozen offsets."""

    plans: list[FreezePlan]
    redirected: list[int]  # (from, to) pairs, flat
    nowdead: list[int]
    nowunused: list[int]


def heap_xlog_deserialize_prune_and_freeze(data: RecordCursor, flags: int) -> PruneFreezeItems:
    """Mirrors heap_xlog_deserialize_prune_and_freeze (heapdesc.c 17, 18), shared by
    redo and desc as in C: the freeze plans (uint16 nplans, 2 bytes padding, plans),
    redirected pairs, dead and unused offsets, each when ``flags`` says so; ``data`` is
    left at the frozen tuples' offsets (frz_offsets)."""
    plans: list[FreezePlan] = []
    if flags & XLHP_HAS_FREEZE_PLANS:
        nplans = data.u16("nplans")
        data.skip(2, "xlhp_freeze_plans padding")
        plans = read_freeze_plans(data, nplans)
    return PruneFreezeItems(plans,
                            _prune_items(data, flags, XLHP_HAS_REDIRECTIONS, 2, "redirected"),
                            _prune_items(data, flags, XLHP_HAS_DEAD_ITEMS, 1, "dead"),
                            _prune_items(data, flags, XLHP_HAS_NOW_UNUSED_ITEMS, 1, "unused"))


def _clear_locked(ctx: RedoContext, vmpage: bytearray, heap_blk: int, flags: int,
                  block_id: int) -> bool:
    """visibilitymap_clear_locked: elog(ERROR) unless the VM page covers ``heap_blk``."""
    if ctx.block_tag(block_id).blk != HEAPBLK_TO_MAPBLOCK(heap_blk):
        raise ctx.error(f"wrong buffer passed to visibilitymap_clear: VM block "
                        f"{ctx.block_tag(block_id).blk} does not cover heap block {heap_blk}",
                        block_id=block_id)
    return visibilitymap_clear(vmpage, heap_blk, flags)


def heap_xlog_vm_clear(ctx: RedoContext, heap_blk: int, vm_block_id: int | None, flags: int) -> None:
    """Mirrors heap_xlog_vm_clear (heapam.c 17, heapam_xlog.c 18) when ``vm_block_id``
    is given; ``None`` (15 and 16, whose records never name the VM page) and a record
    without that reference take the visibilitymap_pin + visibilitymap_clear path."""
    if vm_block_id is None or vm_block_id not in ctx.record.blocks:
        tag = ctx.block_tag(0)
        ctx.visibilitymap_clear(tag.rnode, heap_blk, flags)
        return
    vmpage = ctx.read_buffer_for_redo(vm_block_id)
    if vmpage is not None and not _clear_locked(ctx, vmpage, heap_blk, flags, vm_block_id):
        ctx.keep_page_lsn()  # PageSetLSN only when a bit was cleared


def heap_xlog_update_vm_clear(ctx: RedoContext, oldblk: int, newblk: int, old_cleared: bool,
                              new_cleared: bool) -> None:
    """The VM part of heap_xlog_update (heapam.c 17, heapam_xlog.c 18): through
    HEAP_UPDATE_BLKREF_VM_NEW (which also covers the old block when its bits are on
    the same VM page) and HEAP_UPDATE_BLKREF_VM_OLD, or, with neither reference,
    visibilitymap_clear of the old then the new block's VM page."""
    if not (old_cleared or new_cleared):
        return
    blocks = ctx.record.blocks
    has_new, has_old = HEAP_UPDATE_BLKREF_VM_NEW in blocks, HEAP_UPDATE_BLKREF_VM_OLD in blocks
    if not (has_new or has_old):
        rnode = ctx.block_tag(0).rnode
        if old_cleared:
            ctx.visibilitymap_clear(rnode, oldblk, VISIBILITYMAP_VALID_BITS)
        if new_cleared:
            ctx.visibilitymap_clear(rnode, newblk, VISIBILITYMAP_VALID_BITS)
        return
    for block_id, present in ((HEAP_UPDATE_BLKREF_VM_NEW, has_new), (HEAP_UPDATE_BLKREF_VM_OLD, has_old)):
        vmpage = ctx.read_buffer_for_redo(block_id) if present else None
        if vmpage is None:
            continue
        cleared = False
        if block_id == HEAP_UPDATE_BLKREF_VM_NEW:
            # visibilitymap_pin_ok(oldblk, vmbuffer_new): both blocks' bits on this page
            if old_cleared and ctx.block_tag(block_id).blk == HEAPBLK_TO_MAPBLOCK(oldblk):
                cleared = _clear_locked(ctx, vmpage, oldblk, VISIBILITYMAP_VALID_BITS, block_id)
            cleared |= _clear_locked(ctx, vmpage, newblk, VISIBILITYMAP_VALID_BITS, block_id)
        else:
            cleared = _clear_locked(ctx, vmpage, oldblk, VISIBILITYMAP_VALID_BITS, block_id)
        if not cleared:
            ctx.keep_page_lsn()
