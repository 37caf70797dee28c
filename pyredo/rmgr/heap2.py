"""Heap2 resource manager: redo of its page-modifying records.

Mirrors heap2_redo (heapam.c) and heap2_identify; heap2_desc (heapdesc.c) is in
heapdesc.py, the record layouts (heapam_xlog.h) in heapam_xlog.py.
One routine per record type, named after its C twin. REWRITE (a logical
decoding mapping file) and NEW_CID (logical decoding only) change no page and
name no block, so they are not in ``REDO``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pyredo import BLCKSZ
from pyredo.page.bufpage import (
    SHORTALIGN,
    ItemIdSetUnused,
    PageClearAllVisible,
    PageGetItemId,
    PageGetLSN,
    PageGetMaxOffsetNumber,
    PageInit,
    PageIsNew,
    PageSetAllVisible,
    PageTruncateLinePointerArray,
)
from pyredo.page.heapprune import heap_page_prune_execute
from pyredo.page.htup import (
    FrozenTransactionId,
    HeapTupleHeader,
    InvalidTransactionId,
    SizeofHeapTupleHeader,
    new_tuple_header,
)
from pyredo.page.visibilitymap import (
    HEAPBLK_TO_MAPBLOCK,
    VISIBILITYMAP_ALL_FROZEN,
    VISIBILITYMAP_VALID_BITS,
    visibilitymap_set,
)
from pyredo.rmgr.heap import (
    XLH_INSERT_ALL_FROZEN_SET,
    XLH_INSERT_ALL_VISIBLE_CLEARED,
    XLH_LOCK_ALL_FROZEN_CLEARED,
    add_tuple,
    check_new_offnum,
    clear_xmax_bits,
    fix_infomask_from_infobits,
    get_normal_tuple,
    read_init_or_normal,
    vm_tag,
)
from pyredo.rmgr.heapam_xlog import (
    HEAP_VM_BLKREF,
    XLOG_HEAP2_FREEZE_PAGE,
    XLOG_HEAP2_LOCK_UPDATED,
    XLOG_HEAP2_MULTI_INSERT,
    XLOG_HEAP2_NEW_CID,
    XLOG_HEAP2_PRUNE,
    XLOG_HEAP2_REWRITE,
    XLOG_HEAP2_VACUUM,
    XLOG_HEAP2_VISIBLE,
    XLOG_HEAP_INIT_PAGE,
    XLOG_HEAP_OPMASK,
    FreezePlan,
    heap_xlog_deserialize_prune_and_freeze,
    heap_xlog_vm_clear,
    read_freeze_plans,
)

# the layouts redo reads, re-exported where tests and factories look for them
from pyredo.rmgr.heapam_xlog import XL_HEAP_FREEZE_PAGE as XL_HEAP_FREEZE_PAGE
from pyredo.rmgr.heapam_xlog import XL_HEAP_FREEZE_PAGE_16 as XL_HEAP_FREEZE_PAGE_16
from pyredo.rmgr.heapam_xlog import XL_HEAP_FREEZE_PLAN as XL_HEAP_FREEZE_PLAN
from pyredo.rmgr.heapam_xlog import XL_HEAP_LOCK_UPDATED as XL_HEAP_LOCK_UPDATED
from pyredo.rmgr.heapam_xlog import XL_HEAP_MULTI_INSERT as XL_HEAP_MULTI_INSERT
from pyredo.rmgr.heapam_xlog import XL_HEAP_NEW_CID as XL_HEAP_NEW_CID
from pyredo.rmgr.heapam_xlog import XL_HEAP_PRUNE as XL_HEAP_PRUNE
from pyredo.rmgr.heapam_xlog import XL_HEAP_PRUNE_17 as XL_HEAP_PRUNE_17
from pyredo.rmgr.heapam_xlog import XL_HEAP_VACUUM as XL_HEAP_VACUUM
from pyredo.rmgr.heapam_xlog import XL_HEAP_VISIBLE as XL_HEAP_VISIBLE
from pyredo.rmgr.heapam_xlog import XLHP_CLEANUP_LOCK as XLHP_CLEANUP_LOCK
from pyredo.rmgr.heapam_xlog import XLHP_HAS_CONFLICT_HORIZON as XLHP_HAS_CONFLICT_HORIZON
from pyredo.rmgr.heapam_xlog import XLHP_HAS_DEAD_ITEMS as XLHP_HAS_DEAD_ITEMS
from pyredo.rmgr.heapam_xlog import XLHP_HAS_FREEZE_PLANS as XLHP_HAS_FREEZE_PLANS
from pyredo.rmgr.heapam_xlog import XLHP_HAS_NOW_UNUSED_ITEMS as XLHP_HAS_NOW_UNUSED_ITEMS
from pyredo.rmgr.heapam_xlog import XLHP_HAS_REDIRECTIONS as XLHP_HAS_REDIRECTIONS
from pyredo.rmgr.heapam_xlog import XLHP_IS_CATALOG_REL as XLHP_IS_CATALOG_REL
from pyredo.rmgr.heapdesc import heap2_desc, heap2_desc_16, heap2_desc_17
from pyredo.wal.record import XLR_RMGR_INFO_MASK, BufferTag, DecodedXLogRecord
from pyredo.xlogutils import RBM_ZERO_ON_ERROR, RecordCursor

if TYPE_CHECKING:
    from pyredo.xlogutils import RedoContext, RedoFn

# xl_info values and the main-data layouts are heapam_xlog.py's (heapam_xlog.h)
OPMASK = 0x70

# xl_heap_freeze_tuple.frzflags
XLH_FREEZE_XVAC = 0x02
XLH_INVALID_XVAC = 0x04

# block-data layouts only redo reads (little-endian, C padding spelled out)
XL_HEAP_FREEZE_TUPLE = struct.Struct("<IHHHBx")  # xmax, offset, t_infomask2, t_infomask, frzflags
XL_MULTI_INSERT_TUPLE = struct.Struct("<HHHB")  # datalen, t_infomask2, t_infomask, t_hoff

_NAMES = {
    XLOG_HEAP2_REWRITE: "REWRITE",
    XLOG_HEAP2_PRUNE: "PRUNE",
    XLOG_HEAP2_VACUUM: "VACUUM",
    XLOG_HEAP2_FREEZE_PAGE: "FREEZE_PAGE",
    XLOG_HEAP2_VISIBLE: "VISIBLE",
    XLOG_HEAP2_MULTI_INSERT: "MULTI_INSERT",
    XLOG_HEAP2_LOCK_UPDATED: "LOCK_UPDATED",
    XLOG_HEAP2_NEW_CID: "NEW_CID",
    XLOG_HEAP2_MULTI_INSERT | XLOG_HEAP_INIT_PAGE: "MULTI_INSERT+INIT",
}


def identify(info: int) -> str | None:
    return _NAMES.get(info & XLR_RMGR_INFO_MASK)


# 17 folds PRUNE, VACUUM and FREEZE_PAGE into one xl_heap_prune record (heapdesc.c)
NAMES_SINCE: dict[int, dict[int, str]] = {
    17: {0x10: "PRUNE_ON_ACCESS", 0x20: "PRUNE_VACUUM_SCAN", 0x30: "PRUNE_VACUUM_CLEANUP"},
}

# record types whose redo changes a relation page (coverage counts these)
PAGE_MODIFYING: tuple[int, ...] = (
    XLOG_HEAP2_PRUNE,
    XLOG_HEAP2_VACUUM,
    XLOG_HEAP2_FREEZE_PAGE,
    XLOG_HEAP2_VISIBLE,
    XLOG_HEAP2_MULTI_INSERT,
    XLOG_HEAP2_MULTI_INSERT | XLOG_HEAP_INIT_PAGE,
    XLOG_HEAP2_LOCK_UPDATED,
)


# -- redo routines ----------------------------------------------------------------------
def heap_xlog_prune(
    ctx: RedoContext, *,
    heap_page_prune_execute: Callable[[bytearray, Sequence[tuple[int, int]], Sequence[int],
                                       Sequence[int]], None] = heap_page_prune_execute,
) -> None:
    """Mirrors heap_xlog_prune (heapam.c): redirect / dead / unused line pointers
    from block 0's data, then heap_page_prune_execute compacts the page."""
    _xid, nredirected, ndead = ctx.main_struct(XL_HEAP_PRUNE, "xl_heap_prune")
    page = ctx.read_buffer_for_redo(0, get_cleanup_lock=True)
    if page is None:
        return
    data = ctx.block_data(0)
    if len(data) % 2:
        raise ctx.error(f"prune record has {len(data)} bytes of offsets (odd)", block_id=0)
    redirected = data.u16_array(2 * nredirected, "redirected offsets")
    nowdead = data.u16_array(ndead, "now dead offsets")
    nowunused = data.u16_array(data.remaining // 2, "now unused offsets")
    pairs = list(zip(redirected[0::2], redirected[1::2], strict=True))
    heap_page_prune_execute(page, pairs, nowdead, nowunused)


def heap_xlog_vacuum(
    ctx: RedoContext, *,
    PageTruncateLinePointerArray: Callable[[bytearray], None] = PageTruncateLinePointerArray,
) -> None:
    """Mirrors heap_xlog_vacuum (heapam.c): LP_DEAD items become LP_UNUSED, then
    PageTruncateLinePointerArray."""
    (nunused,) = ctx.main_struct(XL_HEAP_VACUUM, "xl_heap_vacuum")
    page = ctx.read_buffer_for_redo(0)
    if page is None:
        return
    nowunused = ctx.block_data(0).u16_array(nunused, "now unused offsets")
    maxoff = PageGetMaxOffsetNumber(page)
    for off in nowunused:
        if not 1 <= off <= maxoff:
            raise ctx.error(f"vacuum record names offset {off} on a page with {maxoff} items",
                            block_id=0)
        ItemIdSetUnused(page, off)
    PageTruncateLinePointerArray(page)


def heap_execute_freeze_tuple(htup: HeapTupleHeader, xmax: int, infomask2: int,
                              infomask: int, frzflags: int) -> None:
    """Mirrors heap_execute_freeze_tuple (heapam.c)."""
    htup.SetXmax(xmax)
    if frzflags & XLH_FREEZE_XVAC:
        htup.SetXvac(FrozenTransactionId)
    if frzflags & XLH_INVALID_XVAC:
        htup.SetXvac(InvalidTransactionId)
    htup.t_infomask = infomask
    htup.t_infomask2 = infomask2


def heap_xlog_freeze_page(
    ctx: RedoContext, *,
    heap_execute_freeze_tuple: Callable[[HeapTupleHeader, int, int, int, int], None]
    = heap_execute_freeze_tuple,
) -> None:
    """Mirrors heap_xlog_freeze_page (heapam.c): apply each tuple's freeze plan."""
    _cutoff, ntuples = ctx.main_struct(XL_HEAP_FREEZE_PAGE, "xl_heap_freeze_page")
    page = ctx.read_buffer_for_redo(0)
    if page is None:
        return
    data = ctx.block_data(0)
    data.need(ntuples * XL_HEAP_FREEZE_TUPLE.size, f"{ntuples} freeze plans")
    maxoff = PageGetMaxOffsetNumber(page)
    for _ in range(ntuples):
        xmax, offset, infomask2, infomask, frzflags = data.unpack(XL_HEAP_FREEZE_TUPLE,
                                                                  "xl_heap_freeze_tuple")
        freeze_tuple_at(ctx, page, maxoff, offset, (xmax, infomask2, infomask, frzflags),
                        heap_execute_freeze_tuple)


def freeze_tuple_at(ctx: RedoContext, page: bytearray, maxoff: int, offset: int,
                    plan: tuple[int, int, int, int],
                    heap_execute_freeze_tuple: Callable[[HeapTupleHeader, int, int, int, int], None]) -> None:
    """heap_execute_freeze_tuple(PageGetItem(page, PageGetItemId(page, offset)), plan):
    C takes the item unchecked; here a tuple must be there."""
    if not 1 <= offset <= maxoff:
        raise ctx.error(f"freeze plan for offset {offset} on a page with {maxoff} items", block_id=0)
    lp_off, _flags, lp_len = PageGetItemId(page, offset)
    if lp_len < SizeofHeapTupleHeader or lp_off + lp_len > BLCKSZ:
        raise ctx.error(f"freeze plan for offset {offset}, which holds no tuple", block_id=0)
    heap_execute_freeze_tuple(HeapTupleHeader(page, lp_off), *plan)


def heap_xlog_visible(
    ctx: RedoContext, *,
    PageSetAllVisible: Callable[[bytearray], None] = PageSetAllVisible,
    visibilitymap_set: Callable[[bytearray, int, int, int], bool] = visibilitymap_set,
) -> None:
    """Mirrors heap_xlog_visible (heapam.c 15): PD_ALL_VISIBLE on the heap page
    (block 1; its LSN is set only when XLogHintBitIsNeeded()), then the VM bits
    (block 0; visibilitymap_set stamps the VM page's LSN only if bits change)."""
    _cutoff, flags = ctx.main_struct(XL_HEAP_VISIBLE, "xl_heap_visible")
    _heap_xlog_visible(ctx, flags, PageSetAllVisible, visibilitymap_set)


def heap_xlog_visible_16(
    ctx: RedoContext, *,
    PageSetAllVisible: Callable[[bytearray], None] = PageSetAllVisible,
    visibilitymap_set: Callable[[bytearray, int, int, int], bool] = visibilitymap_set,
) -> None:
    """Mirrors heap_xlog_visible (heapam.c 16, 17; heapam_xlog.c 18): the flags may
    carry VISIBILITYMAP_XLOG_CATALOG_REL, which never reaches the VM page (vmbits =
    flags & VISIBILITYMAP_VALID_BITS); 16 drops 15's ``lsn > PageGetLSN(vmpage)``
    test, which BLK_NEEDS_REDO already implies."""
    _horizon, flags = ctx.main_struct(XL_HEAP_VISIBLE, "xl_heap_visible")
    _heap_xlog_visible(ctx, flags & VISIBILITYMAP_VALID_BITS, PageSetAllVisible, visibilitymap_set)


def _heap_xlog_visible(ctx: RedoContext, flags: int, PageSetAllVisible: Callable[[bytearray], None],
                       visibilitymap_set: Callable[[bytearray, int, int, int], bool]) -> None:
    heapblk = ctx.block_tag(1).blk

    page = ctx.read_buffer_for_redo(1)
    if page is not None:
        PageSetAllVisible(page)
        if not ctx.engine.hint_bits_logged:
            ctx.keep_page_lsn()

    vmpage = ctx.read_buffer_for_redo(0, RBM_ZERO_ON_ERROR)
    if vmpage is None:
        return
    # the routine itself stamps no LSN on the VM page: visibilitymap_set does, if bits change
    ctx.keep_page_lsn()
    if PageIsNew(vmpage):
        PageInit(vmpage, BLCKSZ, 0)
    if ctx.block_tag(0).blk != HEAPBLK_TO_MAPBLOCK(heapblk):
        # visibilitymap_pin would switch to another VM page than the one named
        raise ctx.error(f"VM block {ctx.block_tag(0).blk} does not cover heap block {heapblk}",
                        block_id=0)
    if ctx.lsn > PageGetLSN(vmpage):
        visibilitymap_set(vmpage, heapblk, flags, ctx.lsn)


def heap_xlog_multi_insert(ctx: RedoContext, *, vm_block_id: int | None = None) -> None:
    """Mirrors heap_xlog_multi_insert (heapam.c 15, 16; ``vm_block_id``: heapam_xlog.py)."""
    flags, ntuples = ctx.main_struct(XL_HEAP_MULTI_INSERT, "xl_heap_multi_insert")
    isinit = bool(ctx.info & XLOG_HEAP_INIT_PAGE)
    tag = ctx.block_tag(0)

    if flags & XLH_INSERT_ALL_VISIBLE_CLEARED:
        heap_xlog_vm_clear(ctx, tag.blk, vm_block_id, VISIBILITYMAP_VALID_BITS)

    page = read_init_or_normal(ctx, 0, isinit)
    if page is None:
        return
    if isinit:
        offsets: tuple[int, ...] = tuple(range(1, ntuples + 1))
    else:
        main = ctx.main_data().seek(XL_HEAP_MULTI_INSERT.size)
        offsets = tuple(main.u16_array(ntuples, "offsets"))
    tupdata = ctx.block_data(0)
    for offnum in offsets:
        check_new_offnum(ctx, page, offnum)
        tupdata.seek(SHORTALIGN(tupdata.pos))  # each xl_multi_insert_tuple is 2-aligned
        datalen, infomask2, infomask, hoff = tupdata.unpack(
            XL_MULTI_INSERT_TUPLE, f"xl_multi_insert_tuple for offset {offnum}")
        hdr = new_tuple_header(infomask2, infomask, hoff, ctx.record.xid, tag.blk, offnum)
        add_tuple(ctx, page, hdr + tupdata.take(datalen, f"tuple for offset {offnum}"), offnum)
    if tupdata.pos != len(tupdata):
        raise ctx.error(f"total tuple length mismatch: used {tupdata.pos} of {len(tupdata)} bytes",
                        block_id=0)
    if flags & XLH_INSERT_ALL_VISIBLE_CLEARED:
        PageClearAllVisible(page)
    # XLH_INSERT_ALL_FROZEN_SET implies that all tuples are visible
    if flags & XLH_INSERT_ALL_FROZEN_SET:
        PageSetAllVisible(page)


def heap_xlog_lock_updated(ctx: RedoContext, *, vm_block_id: int | None = None) -> None:
    """Mirrors heap_xlog_lock_updated (heapam.c 15, 16; ``vm_block_id``: heapam_xlog.py):
    lock a tuple version that an update made (SELECT ... FOR UPDATE walking a chain)."""
    xmax, offnum, infobits, flags = ctx.main_struct(XL_HEAP_LOCK_UPDATED, "xl_heap_lock_updated")
    tag = ctx.block_tag(0)

    if flags & XLH_LOCK_ALL_FROZEN_CLEARED:
        heap_xlog_vm_clear(ctx, tag.blk, vm_block_id, VISIBILITYMAP_ALL_FROZEN)

    page = ctx.read_buffer_for_redo(0)
    if page is None:
        return
    htup, _len = get_normal_tuple(ctx, page, offnum)
    clear_xmax_bits(htup)
    fix_infomask_from_infobits(infobits, htup)
    htup.SetXmax(xmax)


# -- the visibility-map trap -------------------------------------------------------------
def implicit_tags(rec: DecodedXLogRecord) -> list[BufferTag]:
    """The VM pages a heap2 record changes without naming them (MULTI_INSERT
    with ALL_VISIBLE_CLEARED, LOCK_UPDATED with ALL_FROZEN_CLEARED)."""
    blk0 = rec.block(0)
    if blk0 is None:
        return []
    op = rec.info & XLOG_HEAP_OPMASK
    data = rec.main_data
    if op == XLOG_HEAP2_MULTI_INSERT:
        clears = len(data) >= XL_HEAP_MULTI_INSERT.size and bool(
            XL_HEAP_MULTI_INSERT.unpack_from(data)[0] & XLH_INSERT_ALL_VISIBLE_CLEARED)
    elif op == XLOG_HEAP2_LOCK_UPDATED:
        clears = len(data) >= XL_HEAP_LOCK_UPDATED.size and bool(
            XL_HEAP_LOCK_UPDATED.unpack_from(data)[3] & XLH_LOCK_ALL_FROZEN_CLEARED)
    else:
        clears = False
    return [vm_tag(blk0.tag, blk0.blkno)] if clears else []


# -- pg_waldump's description (heapdesc.c, in heapdesc.py) -----------------------------
desc = heap2_desc  # rm_desc of 15; DESC_SINCE below for 16+


REDO: dict[int, RedoFn] = {
    XLOG_HEAP2_PRUNE: heap_xlog_prune,
    XLOG_HEAP2_VACUUM: heap_xlog_vacuum,
    XLOG_HEAP2_FREEZE_PAGE: heap_xlog_freeze_page,
    XLOG_HEAP2_VISIBLE: heap_xlog_visible,
    XLOG_HEAP2_MULTI_INSERT: heap_xlog_multi_insert,
    XLOG_HEAP2_LOCK_UPDATED: heap_xlog_lock_updated,
}


# -- PostgreSQL 16, 17 and 18 (see pyredo/VERSIONS.md) ------------------------------------
# 16: xl_heap_prune gains isCatalogRel after ndead (redo reads the 15 prefix: shared
# routine); xl_heap_freeze_page becomes freeze plans; VISIBLE flags gain CATALOG_REL.
def _execute_freeze_plans(ctx: RedoContext, page: bytearray, data: RecordCursor,
                          plans: list[FreezePlan],
                          heap_execute_freeze_tuple: Callable[[HeapTupleHeader, int, int, int, int], None]) -> None:
    """Each plan applied to its ntuples offsets, which follow in ``data`` in plan order."""
    maxoff = PageGetMaxOffsetNumber(page)
    for plan, ntuples in plans:
        for offset in data.u16_array(ntuples, "freeze plan offsets"):
            freeze_tuple_at(ctx, page, maxoff, offset, plan, heap_execute_freeze_tuple)


def heap_xlog_freeze_page_16(
    ctx: RedoContext, *,
    heap_execute_freeze_tuple: Callable[[HeapTupleHeader, int, int, int, int], None]
    = heap_execute_freeze_tuple,
) -> None:
    """Mirrors heap_xlog_freeze_page (heapam.c 16): block 0 holds nplans
    xl_heap_freeze_plan, then each plan's page offsets."""
    _horizon, nplans, _catalog = ctx.main_struct(XL_HEAP_FREEZE_PAGE_16, "xl_heap_freeze_page")
    page = ctx.read_buffer_for_redo(0)
    if page is None:
        return
    data = ctx.block_data(0)
    _execute_freeze_plans(ctx, page, data, read_freeze_plans(data, nplans), heap_execute_freeze_tuple)


# 17: XLOG_HEAP2_PRUNE_ON_ACCESS / PRUNE_VACUUM_SCAN / PRUNE_VACUUM_CLEANUP, one
# xl_heap_prune (heapam_xlog.py) for what were PRUNE, VACUUM and FREEZE_PAGE
def heap_xlog_prune_freeze(
    ctx: RedoContext, *,
    heap_page_prune_execute: Callable[..., None] = heap_page_prune_execute,
    heap_execute_freeze_tuple: Callable[[HeapTupleHeader, int, int, int, int], None]
    = heap_execute_freeze_tuple,
) -> None:
    """Mirrors heap_xlog_prune_freeze (heapam.c 17, heapam_xlog.c 18) with
    heap_xlog_deserialize_prune_and_freeze (heapdesc.c 17, 18): block 0 holds the
    freeze plans (uint16 nplans, 2 bytes padding, plans), redirected pairs, dead and
    unused offsets, then the frozen tuples' offsets; prune first (line pointers only,
    PageTruncateLinePointerArray, without XLHP_CLEANUP_LOCK), then freeze."""
    _reason, flags = ctx.main_struct(XL_HEAP_PRUNE_17, "xl_heap_prune")
    page = ctx.read_buffer_for_redo(0, get_cleanup_lock=bool(flags & XLHP_CLEANUP_LOCK))
    if page is None:
        return
    data = ctx.block_data(0)
    plans, redirected, nowdead, nowunused = heap_xlog_deserialize_prune_and_freeze(data, flags)
    if redirected or nowdead or nowunused:
        pairs = list(zip(redirected[0::2], redirected[1::2], strict=True))
        heap_page_prune_execute(page, pairs, nowdead, nowunused,
                                lp_truncate_only=not flags & XLHP_CLEANUP_LOCK)
    _execute_freeze_plans(ctx, page, data, plans, heap_execute_freeze_tuple)


def heap_xlog_multi_insert_17(ctx: RedoContext) -> None:
    """Mirrors heap_xlog_multi_insert (heapam.c 17, heapam_xlog.c 18): HEAP_MULTI_INSERT_BLKREF_VM."""
    heap_xlog_multi_insert(ctx, vm_block_id=HEAP_VM_BLKREF)


def heap_xlog_lock_updated_17(ctx: RedoContext) -> None:
    """Mirrors heap_xlog_lock_updated (heapam.c 17, heapam_xlog.c 18): HEAP_LOCK_BLKREF_VM."""
    heap_xlog_lock_updated(ctx, vm_block_id=HEAP_VM_BLKREF)


def implicit_tags_17(rec: DecodedXLogRecord) -> list[BufferTag]:
    """``implicit_tags`` of 17 and 18: none when the record names its VM page."""
    return [] if HEAP_VM_BLKREF in rec.blocks else implicit_tags(rec)


MAJORS: tuple[int, ...] = (15, 16, 17, 18)
REDO_SINCE: dict[int, dict[int, RedoFn | None]] = {
    16: {XLOG_HEAP2_FREEZE_PAGE: heap_xlog_freeze_page_16, XLOG_HEAP2_VISIBLE: heap_xlog_visible_16},
    17: {
        0x10: heap_xlog_prune_freeze,  # XLOG_HEAP2_PRUNE_ON_ACCESS
        0x20: heap_xlog_prune_freeze,  # XLOG_HEAP2_PRUNE_VACUUM_SCAN
        0x30: heap_xlog_prune_freeze,  # XLOG_HEAP2_PRUNE_VACUUM_CLEANUP
        XLOG_HEAP2_MULTI_INSERT: heap_xlog_multi_insert_17,
        XLOG_HEAP2_LOCK_UPDATED: heap_xlog_lock_updated_17,
    },
}
IMPLICIT_TAGS_SINCE = {17: implicit_tags_17}
DESC_SINCE = {16: heap2_desc_16, 17: heap2_desc_17}
