"""Heap resource manager: redo of its page-modifying records.

Mirrors heap_redo (heapam.c), heap_identify and, through heapdesc.py, heap_desc
(heapdesc.c); the record layouts (heapam_xlog.h) are in heapam_xlog.py.
One routine per record type, named after its C twin. TRUNCATE changes no
page (its work is logged as Storage records) and names no block, so it is not
in ``REDO``.

Tuples that redo re-creates (insert, update) get the header C builds in a
zeroed stack buffer: infomask/infomask2/hoff from the record, xmin = the
record's xid, t_cid = FirstCommandId, t_ctid = the tuple's own slot. Only the
tuple's own bytes are copied to the page (PageAddItem), so the MAXALIGN
padding after it keeps whatever bytes the page had there, as in C.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from pyredo import BLCKSZ
from pyredo.page import bufpage
from pyredo.page.bufpage import (
    PAI_IS_HEAP,
    PAI_OVERWRITE,
    InvalidOffsetNumber,
    PageAddItemExtended,
    PageClearAllVisible,
    PageGetItemId,
    PageGetMaxOffsetNumber,
    PageInit,
)
from pyredo.page.htup import (
    HEAP_KEYS_UPDATED,
    HEAP_MOVED,
    HEAP_XMAX_BITS,
    HEAP_XMAX_EXCL_LOCK,
    HEAP_XMAX_IS_LOCKED_ONLY,
    HEAP_XMAX_IS_MULTI,
    HEAP_XMAX_KEYSHR_LOCK,
    HEAP_XMAX_LOCK_ONLY,
    T_HOFF,
    FirstCommandId,
    HeapTupleHeader,
    InvalidTransactionId,
    MaxHeapTupleSize,
    SizeofHeapTupleHeader,
    TransactionIdIsValid,
    TransactionIdPrecedes,
    new_tuple_header,
)
from pyredo.page.visibilitymap import (
    HEAPBLK_TO_MAPBLOCK,
    VISIBILITYMAP_ALL_FROZEN,
    VISIBILITYMAP_VALID_BITS,
)
from pyredo.rmgr.heapam_xlog import (
    HEAP_UPDATE_BLKREF_VM_NEW,
    HEAP_UPDATE_BLKREF_VM_OLD,
    HEAP_VM_BLKREF,
    XL_HEAP_CONFIRM,
    XL_HEAP_DELETE,
    XL_HEAP_HEADER,
    XL_HEAP_INPLACE,
    XL_HEAP_INSERT,
    XL_HEAP_LOCK,
    XL_HEAP_UPDATE,
    XLH_DELETE_ALL_VISIBLE_CLEARED,
    XLH_DELETE_IS_PARTITION_MOVE,
    XLH_DELETE_IS_SUPER,
    XLH_INSERT_ALL_VISIBLE_CLEARED,
    XLH_LOCK_ALL_FROZEN_CLEARED,
    XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED,
    XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED,
    XLH_UPDATE_PREFIX_FROM_OLD,
    XLH_UPDATE_SUFFIX_FROM_OLD,
    XLHL_KEYS_UPDATED,
    XLHL_XMAX_EXCL_LOCK,
    XLHL_XMAX_IS_MULTI,
    XLHL_XMAX_KEYSHR_LOCK,
    XLHL_XMAX_LOCK_ONLY,
    XLOG_HEAP_CONFIRM,
    XLOG_HEAP_DELETE,
    XLOG_HEAP_HOT_UPDATE,
    XLOG_HEAP_INIT_PAGE,
    XLOG_HEAP_INPLACE,
    XLOG_HEAP_INSERT,
    XLOG_HEAP_LOCK,
    XLOG_HEAP_OPMASK,
    XLOG_HEAP_TRUNCATE,
    XLOG_HEAP_UPDATE,
    SizeOfHeapHeader,
    heap_xlog_update_vm_clear,
    heap_xlog_vm_clear,
)

# heapam_xlog.h names this module does not use itself, read as heap.X by heap2 and the tests;
# OPMASK is the rmgr table's column (pyredo.rmgrlist reads it here)
from pyredo.rmgr.heapam_xlog import OPMASK as OPMASK
from pyredo.rmgr.heapam_xlog import XL_HEAP_TRUNCATE as XL_HEAP_TRUNCATE
from pyredo.rmgr.heapam_xlog import XLH_DELETE_CONTAINS_OLD_KEY as XLH_DELETE_CONTAINS_OLD_KEY
from pyredo.rmgr.heapam_xlog import XLH_DELETE_CONTAINS_OLD_TUPLE as XLH_DELETE_CONTAINS_OLD_TUPLE
from pyredo.rmgr.heapam_xlog import XLH_INSERT_ALL_FROZEN_SET as XLH_INSERT_ALL_FROZEN_SET
from pyredo.rmgr.heapam_xlog import XLH_INSERT_CONTAINS_NEW_TUPLE as XLH_INSERT_CONTAINS_NEW_TUPLE
from pyredo.rmgr.heapam_xlog import XLH_INSERT_IS_SPECULATIVE as XLH_INSERT_IS_SPECULATIVE
from pyredo.rmgr.heapam_xlog import XLH_INSERT_LAST_IN_MULTI as XLH_INSERT_LAST_IN_MULTI
from pyredo.rmgr.heapam_xlog import XLH_INSERT_ON_TOAST_RELATION as XLH_INSERT_ON_TOAST_RELATION
from pyredo.rmgr.heapam_xlog import XLH_UPDATE_CONTAINS_NEW_TUPLE as XLH_UPDATE_CONTAINS_NEW_TUPLE
from pyredo.rmgr.heapam_xlog import XLH_UPDATE_CONTAINS_OLD_KEY as XLH_UPDATE_CONTAINS_OLD_KEY
from pyredo.rmgr.heapam_xlog import XLH_UPDATE_CONTAINS_OLD_TUPLE as XLH_UPDATE_CONTAINS_OLD_TUPLE
from pyredo.rmgr.heapdesc import heap_desc, heap_desc_16, heap_desc_18
from pyredo.wal.record import (
    VISIBILITYMAP_FORKNUM,
    XLR_RMGR_INFO_MASK,
    BufferTag,
    DecodedXLogRecord,
)

if TYPE_CHECKING:
    from pyredo.xlogutils import RedoContext, RedoFn

_U16 = struct.Struct("<H")

_MAX_TUPLE = MaxHeapTupleSize(BLCKSZ)

_NAMES = {
    XLOG_HEAP_INSERT: "INSERT",
    XLOG_HEAP_DELETE: "DELETE",
    XLOG_HEAP_UPDATE: "UPDATE",
    XLOG_HEAP_TRUNCATE: "TRUNCATE",
    XLOG_HEAP_HOT_UPDATE: "HOT_UPDATE",
    XLOG_HEAP_CONFIRM: "HEAP_CONFIRM",
    XLOG_HEAP_LOCK: "LOCK",
    XLOG_HEAP_INPLACE: "INPLACE",
    XLOG_HEAP_INSERT | XLOG_HEAP_INIT_PAGE: "INSERT+INIT",
    XLOG_HEAP_UPDATE | XLOG_HEAP_INIT_PAGE: "UPDATE+INIT",
    XLOG_HEAP_HOT_UPDATE | XLOG_HEAP_INIT_PAGE: "HOT_UPDATE+INIT",
}


def identify(info: int) -> str | None:
    return _NAMES.get(info & XLR_RMGR_INFO_MASK)

# record types whose redo changes a relation page (coverage counts these).
# HOT_UPDATE+INIT is left out: log_heap_update sets INIT_PAGE only when the new
# tuple is alone on its page, and a HOT update keeps the old version on that
# same page, so PostgreSQL 15 never emits it (redo would handle it as HOT_UPDATE:
# heap_xlog_update ignores INIT_PAGE when both versions share a block).
PAGE_MODIFYING: tuple[int, ...] = (
    XLOG_HEAP_INSERT,
    XLOG_HEAP_INSERT | XLOG_HEAP_INIT_PAGE,
    XLOG_HEAP_DELETE,
    XLOG_HEAP_UPDATE,
    XLOG_HEAP_UPDATE | XLOG_HEAP_INIT_PAGE,
    XLOG_HEAP_HOT_UPDATE,
    XLOG_HEAP_CONFIRM,
    XLOG_HEAP_LOCK,
    XLOG_HEAP_INPLACE,
)


# -- helpers shared with heap2 ------------------------------------------------------
def get_normal_tuple(ctx: RedoContext, page: bytearray, offnum: int,
                     block_id: int = 0) -> tuple[HeapTupleHeader, int]:
    """The tuple at ``offnum`` and its lp_len; elog(PANIC, "invalid lp") unless
    the line pointer is LP_NORMAL (as every heap_xlog_* routine checks)."""
    if not 1 <= offnum <= PageGetMaxOffsetNumber(page):
        raise ctx.error(f"invalid lp: offset {offnum} beyond max offset "
                        f"{PageGetMaxOffsetNumber(page)}", block_id=block_id)
    lp = PageGetItemId(page, offnum)
    if not bufpage.ItemIdIsNormal(lp):
        raise ctx.error(f"invalid lp: line pointer {offnum} is not LP_NORMAL", block_id=block_id)
    lp_off, _flags, lp_len = lp
    if lp_len < SizeofHeapTupleHeader or lp_off + lp_len > BLCKSZ:
        raise ctx.error(f"invalid lp: line pointer {offnum} (off {lp_off}, len {lp_len}) "
                        "cannot hold a heap tuple", block_id=block_id)
    return HeapTupleHeader(page, lp_off), lp_len


def fix_infomask_from_infobits(infobits: int, htup: HeapTupleHeader) -> None:
    """Mirrors fix_infomask_from_infobits (heapam.c): the reverse of compute_infobits."""
    infomask = htup.t_infomask & ~(
        HEAP_XMAX_IS_MULTI | HEAP_XMAX_LOCK_ONLY | HEAP_XMAX_KEYSHR_LOCK | HEAP_XMAX_EXCL_LOCK)
    infomask2 = htup.t_infomask2 & ~HEAP_KEYS_UPDATED
    if infobits & XLHL_XMAX_IS_MULTI:
        infomask |= HEAP_XMAX_IS_MULTI
    if infobits & XLHL_XMAX_LOCK_ONLY:
        infomask |= HEAP_XMAX_LOCK_ONLY
    if infobits & XLHL_XMAX_EXCL_LOCK:
        infomask |= HEAP_XMAX_EXCL_LOCK
    # HEAP_XMAX_SHR_LOCK is not considered here, as in C
    if infobits & XLHL_XMAX_KEYSHR_LOCK:
        infomask |= HEAP_XMAX_KEYSHR_LOCK
    if infobits & XLHL_KEYS_UPDATED:
        infomask2 |= HEAP_KEYS_UPDATED
    htup.t_infomask = infomask
    htup.t_infomask2 = infomask2


def clear_xmax_bits(htup: HeapTupleHeader) -> None:
    """``t_infomask &= ~(HEAP_XMAX_BITS | HEAP_MOVED); t_infomask2 &= ~HEAP_KEYS_UPDATED``."""
    htup.t_infomask &= ~(HEAP_XMAX_BITS | HEAP_MOVED)
    htup.t_infomask2 &= ~HEAP_KEYS_UPDATED


def PageSetPrunable(page: bytearray, xid: int) -> None:
    """bufpage.h PageSetPrunable: keep the oldest xid that may make the page prunable."""
    prune = bufpage.PageGetPruneXid(page)
    if not TransactionIdIsValid(prune) or TransactionIdPrecedes(xid, prune):
        bufpage.PageSetPruneXid(page, xid)


def add_tuple(ctx: RedoContext, page: bytearray, tup: bytes | bytearray, offnum: int,
              block_id: int = 0) -> None:
    """PageAddItem(page, tup, offnum, overwrite=true, is_heap=true), PANIC on failure."""
    got = PageAddItemExtended(page, tup, offnum, PAI_OVERWRITE | PAI_IS_HEAP)  # the macro, expanded
    if got == InvalidOffsetNumber:
        raise ctx.error(f"failed to add tuple at offset {offnum}", block_id=block_id)


def check_new_offnum(ctx: RedoContext, page: bytearray, offnum: int, block_id: int = 0) -> None:
    if PageGetMaxOffsetNumber(page) + 1 < offnum:
        raise ctx.error(f"invalid max offset number: {offnum} on a page with "
                        f"{PageGetMaxOffsetNumber(page)} items", block_id=block_id)


def vm_tag(tag: BufferTag, heap_blk: int) -> BufferTag:
    """The visibility-map page that holds ``heap_blk``'s bits."""
    return BufferTag(tag.spc, tag.db, tag.rel, VISIBILITYMAP_FORKNUM, HEAPBLK_TO_MAPBLOCK(heap_blk))


def read_init_or_normal(ctx: RedoContext, block_id: int, init: bool) -> bytearray | None:
    """XLogInitBufferForRedo + PageInit(page, BLCKSZ, 0) for INIT_PAGE records,
    else XLogReadBufferForRedo."""
    if init:
        page = ctx.init_buffer_for_redo(block_id)
        if page is not None:
            PageInit(page, BLCKSZ, 0)
        return page
    return ctx.read_buffer_for_redo(block_id)


# -- redo routines ----------------------------------------------------------------------
def heap_xlog_insert(ctx: RedoContext, *, vm_block_id: int | None = None) -> None:
    """Mirrors heap_xlog_insert (heapam.c 15, 16; ``vm_block_id``: see heapam_xlog.py)."""
    offnum, flags = ctx.main_struct(XL_HEAP_INSERT, "xl_heap_insert")
    tag = ctx.block_tag(0)

    # the visibility map may need fixing even if the heap page is up to date
    if flags & XLH_INSERT_ALL_VISIBLE_CLEARED:
        heap_xlog_vm_clear(ctx, tag.blk, vm_block_id, VISIBILITYMAP_VALID_BITS)

    page = read_init_or_normal(ctx, 0, bool(ctx.info & XLOG_HEAP_INIT_PAGE))
    if page is None:
        return
    check_new_offnum(ctx, page, offnum)
    data = ctx.block_data(0)
    if len(data) <= SizeOfHeapHeader or SizeofHeapTupleHeader + len(data) - SizeOfHeapHeader > _MAX_TUPLE:
        raise ctx.error(f"insert record has {len(data)} bytes of tuple data", block_id=0)
    infomask2, infomask, hoff = data.unpack(XL_HEAP_HEADER, "xl_heap_header")
    hdr = new_tuple_header(infomask2, infomask, hoff, ctx.record.xid, tag.blk, offnum)
    add_tuple(ctx, page, hdr + data.rest(), offnum)
    if flags & XLH_INSERT_ALL_VISIBLE_CLEARED:
        PageClearAllVisible(page)


def heap_xlog_delete(ctx: RedoContext, *, vm_block_id: int | None = None) -> None:
    """Mirrors heap_xlog_delete (heapam.c 15, 16; ``vm_block_id``: see heapam_xlog.py)."""
    xmax, offnum, infobits, flags = ctx.main_struct(XL_HEAP_DELETE, "xl_heap_delete")
    tag = ctx.block_tag(0)

    if flags & XLH_DELETE_ALL_VISIBLE_CLEARED:
        heap_xlog_vm_clear(ctx, tag.blk, vm_block_id, VISIBILITYMAP_VALID_BITS)

    page = ctx.read_buffer_for_redo(0)
    if page is None:
        return
    htup, _len = get_normal_tuple(ctx, page, offnum)
    clear_xmax_bits(htup)
    htup.ClearHotUpdated()
    fix_infomask_from_infobits(infobits, htup)
    if not flags & XLH_DELETE_IS_SUPER:
        htup.SetXmax(xmax)
    else:
        htup.SetXmin(InvalidTransactionId)
    htup.SetCmax(FirstCommandId, False)

    PageSetPrunable(page, ctx.record.xid)
    if flags & XLH_DELETE_ALL_VISIBLE_CLEARED:
        PageClearAllVisible(page)

    if flags & XLH_DELETE_IS_PARTITION_MOVE:
        htup.SetMovedPartitions()
    else:
        htup.set_ctid(tag.blk, offnum)


def _heap_xlog_update(ctx: RedoContext, hot_update: bool, vm_refs: bool = False) -> None:
    """Mirrors heap_xlog_update (heapam.c) for UPDATE and HOT_UPDATE; ``vm_refs``:
    17 and 18 clear the VM pages first, through their own block references."""
    (old_xmax, old_offnum, old_infobits, flags, new_xmax,
     new_offnum) = ctx.main_struct(XL_HEAP_UPDATE, "xl_heap_update")
    newtag = ctx.block_tag(0)
    newblk = newtag.blk
    oldblock = ctx.record.block(1)
    oldblk = oldblock.blkno if oldblock is not None else newblk
    rnode = newtag.rnode

    if vm_refs:
        heap_xlog_update_vm_clear(ctx, oldblk, newblk, bool(flags & XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED),
                                  bool(flags & XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED))
    elif flags & XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED:
        ctx.visibilitymap_clear(rnode, oldblk, VISIBILITYMAP_VALID_BITS)

    # the old tuple version
    old_block_id = 0 if oldblk == newblk else 1
    oldpage = ctx.read_buffer_for_redo(old_block_id)
    oldtup: bytes | None = None  # the old tuple's bytes, for prefix/suffix reuse
    if oldpage is not None:
        htup, lp_len = get_normal_tuple(ctx, oldpage, old_offnum, old_block_id)
        clear_xmax_bits(htup)
        if hot_update:
            htup.SetHotUpdated()
        else:
            htup.ClearHotUpdated()
        fix_infomask_from_infobits(old_infobits, htup)
        htup.SetXmax(old_xmax)
        htup.SetCmax(FirstCommandId, False)
        htup.set_ctid(newblk, new_offnum)  # forward chain link
        PageSetPrunable(oldpage, ctx.record.xid)
        if flags & XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED:
            PageClearAllVisible(oldpage)
        oldtup = bytes(oldpage[htup.off : htup.off + lp_len])

    # the page the new tuple goes to, if different from the old one
    if oldblk == newblk:
        newpage = oldpage
    else:
        newpage = read_init_or_normal(ctx, 0, bool(ctx.info & XLOG_HEAP_INIT_PAGE))

    if flags & XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED and not vm_refs:
        ctx.visibilitymap_clear(rnode, newblk, VISIBILITYMAP_VALID_BITS)

    if newpage is None:
        return
    check_new_offnum(ctx, newpage, new_offnum)
    infomask2, infomask, hoff, body = _rebuild_new_tuple(ctx, flags, oldtup)
    hdr = new_tuple_header(infomask2, infomask, hoff, ctx.record.xid, newblk, new_offnum, new_xmax)
    add_tuple(ctx, newpage, hdr + body, new_offnum)
    if flags & XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED:
        PageClearAllVisible(newpage)


def _rebuild_new_tuple(ctx: RedoContext, flags: int,
                       oldtup: bytes | None) -> tuple[int, int, int, bytes]:
    """(t_infomask2, t_infomask, t_hoff, bytes after the header) of the new tuple:
    bitmap [+ padding] [+ oid] from WAL, the old tuple's prefix, the rest of the
    data from WAL, the old tuple's suffix."""
    data = ctx.block_data(0)
    prefixlen = suffixlen = 0
    if flags & XLH_UPDATE_PREFIX_FROM_OLD:
        prefixlen = data.u16("prefixlen")
    if flags & XLH_UPDATE_SUFFIX_FROM_OLD:
        suffixlen = data.u16("suffixlen")
    infomask2, infomask, hoff = data.unpack(XL_HEAP_HEADER, "xl_heap_header")
    rest = data.rest()
    tuplen = len(rest)
    if SizeofHeapTupleHeader + tuplen + prefixlen + suffixlen > _MAX_TUPLE:
        raise ctx.error(f"update record rebuilds a tuple of {tuplen + prefixlen + suffixlen} "
                        "data bytes, more than fits a page", block_id=0)
    if (prefixlen or suffixlen) and oldtup is None:
        # C reads the old tuple through a NULL pointer here; prefix/suffix are only
        # logged when both versions share a page, which then has been read
        raise ctx.error("update record reuses a prefix/suffix of an old tuple that was not read",
                        block_id=0)
    parts: list[bytes] = []
    if oldtup is not None and prefixlen > 0:
        bitmaplen = hoff - SizeofHeapTupleHeader
        old_hoff = oldtup[T_HOFF]
        if bitmaplen < 0 or bitmaplen > tuplen or old_hoff + prefixlen > len(oldtup):
            raise ctx.error(f"bad prefix: t_hoff {hoff}, prefix {prefixlen}, data {tuplen}, "
                            f"old tuple {len(oldtup)} bytes", block_id=0)
        parts += [rest[:bitmaplen], oldtup[old_hoff : old_hoff + prefixlen], rest[bitmaplen:]]
    else:
        parts.append(rest)
    if oldtup is not None and suffixlen > 0:
        if suffixlen > len(oldtup):
            raise ctx.error(f"bad suffix: {suffixlen} bytes of a {len(oldtup)}-byte old tuple",
                            block_id=0)
        parts.append(oldtup[len(oldtup) - suffixlen :])
    return infomask2, infomask, hoff, b"".join(parts)


def heap_xlog_update(ctx: RedoContext) -> None:
    """Mirrors heap_xlog_update(record, false) (heapam.c)."""
    _heap_xlog_update(ctx, hot_update=False)


def heap_xlog_hot_update(ctx: RedoContext) -> None:
    """Mirrors heap_xlog_update(record, true) (heapam.c)."""
    _heap_xlog_update(ctx, hot_update=True)


def heap_xlog_confirm(ctx: RedoContext) -> None:
    """Mirrors heap_xlog_confirm (heapam.c): the speculative tuple's t_ctid
    (its token) becomes its own TID."""
    (offnum,) = ctx.main_struct(XL_HEAP_CONFIRM, "xl_heap_confirm")
    page = ctx.read_buffer_for_redo(0)
    if page is None:
        return
    htup, _len = get_normal_tuple(ctx, page, offnum)
    htup.set_ctid(ctx.block_tag(0).blk, offnum)


def heap_xlog_lock(ctx: RedoContext, *, vm_block_id: int | None = None) -> None:
    """Mirrors heap_xlog_lock (heapam.c 15, 16; ``vm_block_id``: see heapam_xlog.py)."""
    locking_xid, offnum, infobits, flags = ctx.main_struct(XL_HEAP_LOCK, "xl_heap_lock")
    tag = ctx.block_tag(0)

    if flags & XLH_LOCK_ALL_FROZEN_CLEARED:
        heap_xlog_vm_clear(ctx, tag.blk, vm_block_id, VISIBILITYMAP_ALL_FROZEN)

    page = ctx.read_buffer_for_redo(0)
    if page is None:
        return
    htup, _len = get_normal_tuple(ctx, page, offnum)
    clear_xmax_bits(htup)
    fix_infomask_from_infobits(infobits, htup)
    # clear the update flags only if the new infomask says there is no update
    if HEAP_XMAX_IS_LOCKED_ONLY(htup.t_infomask):
        htup.ClearHotUpdated()
        htup.set_ctid(tag.blk, offnum)
    htup.SetXmax(locking_xid)
    htup.SetCmax(FirstCommandId, False)


def heap_xlog_inplace(ctx: RedoContext) -> None:
    """Mirrors heap_xlog_inplace (heapam.c 15-17, heapam_xlog.c 18): overwrite the
    tuple's data, same length. 18 appends dbId, tsId, relcacheInitFileInval, nmsgs and
    the invalidation messages to xl_heap_inplace, after offnum: the page reads only offnum."""
    (offnum,) = ctx.main_struct(XL_HEAP_INPLACE, "xl_heap_inplace")
    page = ctx.read_buffer_for_redo(0)
    if page is None:
        return
    newtup = ctx.block_data(0).rest()
    htup, lp_len = get_normal_tuple(ctx, page, offnum)
    oldlen = lp_len - htup.t_hoff
    if oldlen != len(newtup):
        raise ctx.error(f"wrong tuple length: {len(newtup)} bytes for a {oldlen}-byte tuple",
                        block_id=0)
    at = htup.off + htup.t_hoff
    page[at : at + oldlen] = newtup


# -- the visibility-map trap -------------------------------------------------------------
# op -> (main-data size, flag that clears VM bits): the flags are each struct's last byte
# (read as a byte: this runs for every heap record of a plan)
_VM_CLEARING: dict[int, tuple[int, int]] = {
    XLOG_HEAP_INSERT: (XL_HEAP_INSERT.size, XLH_INSERT_ALL_VISIBLE_CLEARED),
    XLOG_HEAP_DELETE: (XL_HEAP_DELETE.size, XLH_DELETE_ALL_VISIBLE_CLEARED),
    XLOG_HEAP_LOCK: (XL_HEAP_LOCK.size, XLH_LOCK_ALL_FROZEN_CLEARED),
}
assert all(st.format[-1] == "B" for st in (XL_HEAP_INSERT, XL_HEAP_DELETE, XL_HEAP_LOCK))


def implicit_tags(rec: DecodedXLogRecord) -> list[BufferTag]:
    """The VM pages a heap record changes without naming them: one per
    visibilitymap_clear its redo routine calls. Malformed records give [] (their
    routine reports them)."""
    blk0 = rec.blocks.get(0)
    if blk0 is None:
        return []
    op = rec.info & XLOG_HEAP_OPMASK
    data = rec.main_data
    clearing = _VM_CLEARING.get(op)
    if clearing is not None:
        size, bit = clearing
        if len(data) >= size and data[size - 1] & bit:
            tag = blk0.tag
            return [vm_tag(tag, tag.blk)]
        return []
    if op not in (XLOG_HEAP_UPDATE, XLOG_HEAP_HOT_UPDATE) or len(data) < XL_HEAP_UPDATE.size:
        return []
    tag = blk0.tag
    flags = XL_HEAP_UPDATE.unpack_from(data)[3]
    blk1 = rec.block(1)
    out: list[BufferTag] = []
    if flags & XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED:
        out.append(vm_tag(tag, blk1.blkno if blk1 is not None else tag.blk))
    if flags & XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED and vm_tag(tag, tag.blk) not in out:
        out.append(vm_tag(tag, tag.blk))
    return out


# -- pg_waldump's description (heapdesc.c) --------------------------------------------
desc = heap_desc  # rm_desc (heapdesc.c); DESC_SINCE below for 16+

REDO: dict[int, RedoFn] = {
    XLOG_HEAP_INSERT: heap_xlog_insert,
    XLOG_HEAP_DELETE: heap_xlog_delete,
    XLOG_HEAP_UPDATE: heap_xlog_update,
    XLOG_HEAP_HOT_UPDATE: heap_xlog_hot_update,
    XLOG_HEAP_CONFIRM: heap_xlog_confirm,
    XLOG_HEAP_LOCK: heap_xlog_lock,
    XLOG_HEAP_INPLACE: heap_xlog_inplace,
}


# -- PostgreSQL 16, 17 and 18 (see pyredo/VERSIONS.md) ------------------------------------
# 16 changes no Heap record's page part. 17 (17.11+ sources) and 18 name the VM page a
# record clears as a block reference of its own (heapam_xlog.py).
def heap_xlog_insert_17(ctx: RedoContext) -> None:
    """Mirrors heap_xlog_insert (heapam.c 17, heapam_xlog.c 18): HEAP_INSERT_BLKREF_VM."""
    heap_xlog_insert(ctx, vm_block_id=HEAP_VM_BLKREF)


def heap_xlog_delete_17(ctx: RedoContext) -> None:
    """Mirrors heap_xlog_delete (heapam.c 17, heapam_xlog.c 18): HEAP_DELETE_BLKREF_VM."""
    heap_xlog_delete(ctx, vm_block_id=HEAP_VM_BLKREF)


def heap_xlog_update_17(ctx: RedoContext) -> None:
    """Mirrors heap_xlog_update(record, false) (heapam.c 17, heapam_xlog.c 18)."""
    _heap_xlog_update(ctx, hot_update=False, vm_refs=True)


def heap_xlog_hot_update_17(ctx: RedoContext) -> None:
    """Mirrors heap_xlog_update(record, true) (heapam.c 17, heapam_xlog.c 18)."""
    _heap_xlog_update(ctx, hot_update=True, vm_refs=True)


def heap_xlog_lock_17(ctx: RedoContext) -> None:
    """Mirrors heap_xlog_lock (heapam.c 17, heapam_xlog.c 18): HEAP_LOCK_BLKREF_VM."""
    heap_xlog_lock(ctx, vm_block_id=HEAP_VM_BLKREF)


def implicit_tags_17(rec: DecodedXLogRecord) -> list[BufferTag]:
    """``implicit_tags`` of 17 and 18: none when the record names its VM page(s)."""
    vm_refs = ((HEAP_UPDATE_BLKREF_VM_NEW, HEAP_UPDATE_BLKREF_VM_OLD)
               if rec.info & XLOG_HEAP_OPMASK in (XLOG_HEAP_UPDATE, XLOG_HEAP_HOT_UPDATE)
               else (HEAP_VM_BLKREF,))
    return [] if any(b in rec.blocks for b in vm_refs) else implicit_tags(rec)


MAJORS: tuple[int, ...] = (15, 16, 17, 18)
REDO_SINCE: dict[int, dict[int, RedoFn | None]] = {
    17: {
        XLOG_HEAP_INSERT: heap_xlog_insert_17,
        XLOG_HEAP_DELETE: heap_xlog_delete_17,
        XLOG_HEAP_UPDATE: heap_xlog_update_17,
        XLOG_HEAP_HOT_UPDATE: heap_xlog_hot_update_17,
        XLOG_HEAP_LOCK: heap_xlog_lock_17,
    },
}
IMPLICIT_TAGS_SINCE = {17: implicit_tags_17}
DESC_SINCE = {16: heap_desc_16, 18: heap_desc_18}
