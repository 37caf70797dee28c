"""pg_waldump's description of Heap and Heap2 records (heap_desc and heap2_desc,
heapdesc.c), per major.

15 prints ``off 3 flags 0x08 LOCK_ONLY``; 16 rewrote the output as ``key: value``
pairs with bracketed flag lists and arrays (``off: 3, flags: 0x08``,
``infobits: [LOCK_ONLY]``; rmgrdesc_utils.c's array_desc), unchanged in 17;
18's INPLACE record carries invalidation messages, described as
standby_desc_invalidations (standbydesc.c) does. Heap2 alike: 16 prints
``key: value`` pairs and the offset arrays of the block data (freeze plans, redirects,
dead and unused items, multi-insert offsets); 17 describes its three PRUNE_* records
(one xl_heap_prune with sub-records), 18 as 17. ``heap.py`` and ``heap2.py`` hold the
table columns (``desc``, ``DESC_SINCE``); this module imports no rmgr module but the
record layouts of heapam_xlog.py.
"""

from __future__ import annotations

import struct

from pyredo.errors import PyredoError
from pyredo.rmgr.heapam_xlog import (
    XL_HEAP_CONFIRM,
    XL_HEAP_DELETE,
    XL_HEAP_FREEZE_PAGE,
    XL_HEAP_FREEZE_PAGE_16,
    XL_HEAP_INSERT,
    XL_HEAP_LOCK,
    XL_HEAP_LOCK_UPDATED,
    XL_HEAP_MULTI_INSERT,
    XL_HEAP_NEW_CID,
    XL_HEAP_PRUNE,
    XL_HEAP_PRUNE_17,
    XL_HEAP_TRUNCATE,
    XL_HEAP_UPDATE,
    XL_HEAP_VACUUM,
    XL_HEAP_VISIBLE,
    XLHL_KEYS_UPDATED,
    XLHL_XMAX_EXCL_LOCK,
    XLHL_XMAX_IS_MULTI,
    XLHL_XMAX_KEYSHR_LOCK,
    XLHL_XMAX_LOCK_ONLY,
    XLHP_HAS_CONFLICT_HORIZON,
    XLHP_IS_CATALOG_REL,
    XLOG_HEAP2_FREEZE_PAGE,
    XLOG_HEAP2_LOCK_UPDATED,
    XLOG_HEAP2_MULTI_INSERT,
    XLOG_HEAP2_NEW_CID,
    XLOG_HEAP2_PRUNE,
    XLOG_HEAP2_VACUUM,
    XLOG_HEAP2_VISIBLE,
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
    FreezePlan,
    heap_xlog_deserialize_prune_and_freeze,
    read_freeze_plans,
)
from pyredo.wal.record import DecodedXLogRecord
from pyredo.xlogutils import RecordCursor

_INFOBITS = ((XLHL_XMAX_IS_MULTI, "IS_MULTI"), (XLHL_XMAX_LOCK_ONLY, "LOCK_ONLY"),
             (XLHL_XMAX_EXCL_LOCK, "EXCL_LOCK"), (XLHL_XMAX_KEYSHR_LOCK, "KEYSHR_LOCK"),
             (XLHL_KEYS_UPDATED, "KEYS_UPDATED"))
XLH_TRUNCATE_CASCADE = 1 << 0
XLH_TRUNCATE_RESTART_SEQS = 1 << 1
SizeOfHeapTruncate = 12  # offsetof(xl_heap_truncate, relids)

# xl_heap_inplace (18): offnum, dbId, tsId, relcacheInitFileInval, nmsgs, then the messages
XL_HEAP_INPLACE_18 = struct.Struct("<HxxIIBxxxi")
SharedInvalidationMessage = struct.Struct("<bxxxII")  # id, then (dbId, catId/relId/...) as laid out
SizeOfSharedInvalidationMessage = 16
SHAREDINVALCATALOG_ID = -1
SHAREDINVALRELCACHE_ID = -2
SHAREDINVALSMGR_ID = -3
SHAREDINVALRELMAP_ID = -4
SHAREDINVALSNAPSHOT_ID = -5
SHAREDINVALRELSYNC_ID = -6


# -- 15 ----------------------------------------------------------------------------------------
def out_infobits(infobits: int) -> str:
    """out_infobits (heapdesc.c, 15): each set bit's name and a space."""
    return "".join(f"{name} " for bit, name in _INFOBITS if infobits & bit)


def heap_desc(rec: DecodedXLogRecord) -> str:
    """Mirrors heap_desc (heapdesc.c) of 15."""
    data = rec.main_data
    op = rec.info & XLOG_HEAP_OPMASK
    try:
        if op == XLOG_HEAP_INSERT:
            offnum, flags = XL_HEAP_INSERT.unpack_from(data)
            return f"off {offnum} flags 0x{flags:02X}"
        if op == XLOG_HEAP_DELETE:
            _xmax, offnum, infobits, flags = XL_HEAP_DELETE.unpack_from(data)
            return f"off {offnum} flags 0x{flags:02X} " + out_infobits(infobits)
        if op in (XLOG_HEAP_UPDATE, XLOG_HEAP_HOT_UPDATE):
            old_xmax, old_off, infobits, flags, new_xmax, new_off = XL_HEAP_UPDATE.unpack_from(data)
            return (f"off {old_off} xmax {old_xmax} flags 0x{flags:02X} " + out_infobits(infobits)
                    + f"; new off {new_off} xmax {new_xmax}")
        if op == XLOG_HEAP_TRUNCATE:
            _db, nrelids, flags = XL_HEAP_TRUNCATE.unpack_from(data)
            relids = struct.unpack_from(f"<{nrelids}I", data, SizeOfHeapTruncate)
            out = ("cascade " if flags & XLH_TRUNCATE_CASCADE else "") + (
                "restart_seqs " if flags & XLH_TRUNCATE_RESTART_SEQS else "")
            return out + f"nrelids {nrelids} relids" + "".join(f" {r}" for r in relids)
        if op in (XLOG_HEAP_CONFIRM, XLOG_HEAP_INPLACE):
            return f"off {XL_HEAP_CONFIRM.unpack_from(data)[0]}"
        if op == XLOG_HEAP_LOCK:
            xid, offnum, infobits, flags = XL_HEAP_LOCK.unpack_from(data)
            return f"off {offnum}: xid {xid}: flags 0x{flags:02X} " + out_infobits(infobits)
    except struct.error:
        return f"<malformed: {len(data)} bytes of main data>"
    return ""


# -- 16 and 17 ---------------------------------------------------------------------------------
def infobits_desc(infobits: int, keyname: str) -> str:
    """infobits_desc (heapdesc.c, 16+): ``keyname: [A, B]``."""
    return f"{keyname}: [" + ", ".join(name for bit, name in _INFOBITS if infobits & bit) + "]"


def truncate_flags_desc(flags: int) -> str:
    """truncate_flags_desc (heapdesc.c, 16+)."""
    names = [n for bit, n in ((XLH_TRUNCATE_CASCADE, "CASCADE"), (XLH_TRUNCATE_RESTART_SEQS, "RESTART_SEQS"))
             if flags & bit]
    return "flags: [" + ", ".join(names) + "]"


def array_desc(elems: tuple[int, ...] | list[int]) -> str:
    """array_desc (rmgrdesc_utils.c, 16+) of unsigned elements: `` [a, b]`` (`` []`` when empty)."""
    return " [" + ", ".join(str(e) for e in elems) + "]"


def heap_desc_16(rec: DecodedXLogRecord) -> str:
    """Mirrors heap_desc (heapdesc.c) of 16 and 17."""
    return _heap_desc_16(rec, inplace_18=False)


def heap_desc_18(rec: DecodedXLogRecord) -> str:
    """Mirrors heap_desc (heapdesc.c) of 18: 16's, and INPLACE describes its
    invalidation messages (standby_desc_invalidations)."""
    return _heap_desc_16(rec, inplace_18=True)


def _heap_desc_16(rec: DecodedXLogRecord, *, inplace_18: bool) -> str:
    data = rec.main_data
    op = rec.info & XLOG_HEAP_OPMASK
    try:
        if op == XLOG_HEAP_INSERT:
            offnum, flags = XL_HEAP_INSERT.unpack_from(data)
            return f"off: {offnum}, flags: 0x{flags:02X}"
        if op in (XLOG_HEAP_DELETE, XLOG_HEAP_LOCK):  # xl_heap_delete and xl_heap_lock: same layout
            xmax, offnum, infobits, flags = XL_HEAP_DELETE.unpack_from(data)
            return f"xmax: {xmax}, off: {offnum}, {infobits_desc(infobits, 'infobits')}, flags: 0x{flags:02X}"
        if op in (XLOG_HEAP_UPDATE, XLOG_HEAP_HOT_UPDATE):
            old_xmax, old_off, infobits, flags, new_xmax, new_off = XL_HEAP_UPDATE.unpack_from(data)
            return (f"old_xmax: {old_xmax}, old_off: {old_off}, {infobits_desc(infobits, 'old_infobits')}, "
                    f"flags: 0x{flags:02X}, new_xmax: {new_xmax}, new_off: {new_off}")
        if op == XLOG_HEAP_TRUNCATE:
            _db, nrelids, flags = XL_HEAP_TRUNCATE.unpack_from(data)
            relids = struct.unpack_from(f"<{nrelids}I", data, SizeOfHeapTruncate)
            return f"{truncate_flags_desc(flags)}, nrelids: {nrelids}, relids:{array_desc(relids)}"
        if op == XLOG_HEAP_CONFIRM or (op == XLOG_HEAP_INPLACE and not inplace_18):
            return f"off: {XL_HEAP_CONFIRM.unpack_from(data)[0]}"
        if op == XLOG_HEAP_INPLACE:
            offnum, db_id, ts_id, relcache_inval, nmsgs = XL_HEAP_INPLACE_18.unpack_from(data)
            return f"off: {offnum}" + standby_desc_invalidations(
                data, XL_HEAP_INPLACE_18.size, nmsgs, db_id, ts_id, bool(relcache_inval))
    except struct.error:
        return f"<malformed: {len(data)} bytes of main data>"
    return ""


def standby_desc_invalidations(data: bytes, pos: int, nmsgs: int, db_id: int, ts_id: int,
                               relcache_init_file_inval: bool) -> str:
    """Mirrors standby_desc_invalidations (standbydesc.c, 18): the ``nmsgs``
    SharedInvalidationMessages at ``data[pos:]``; nothing when there are none."""
    if nmsgs <= 0:
        return ""
    out = f"; relcache init file inval dbid {db_id} tsid {ts_id}" if relcache_init_file_inval else ""
    out += "; inval msgs:"
    for i in range(nmsgs):
        off = pos + i * SizeOfSharedInvalidationMessage
        msg_id, db, rel = SharedInvalidationMessage.unpack_from(data, off)
        if msg_id >= 0:
            out += f" catcache {msg_id}"
        elif msg_id == SHAREDINVALSMGR_ID:
            out += " smgr"
        elif msg_id == SHAREDINVALRELMAP_ID:
            out += f" relmap db {db}"
        else:
            kind = {SHAREDINVALCATALOG_ID: "catalog", SHAREDINVALRELCACHE_ID: "relcache",
                    SHAREDINVALSNAPSHOT_ID: "snapshot", SHAREDINVALRELSYNC_ID: "relsync"}.get(msg_id)
            out += f" {kind} {rel}" if kind is not None else f" unrecognized id {msg_id}"
    return out


# -- Heap2 ------------------------------------------------------------------------------------
def heap2_desc(rec: DecodedXLogRecord) -> str:
    """Mirrors heap2_desc (heapdesc.c) of 15."""
    data = rec.main_data
    op = rec.info & XLOG_HEAP_OPMASK
    try:
        if op == XLOG_HEAP2_PRUNE:
            xid, nredirected, ndead = XL_HEAP_PRUNE.unpack_from(data)
            return f"latestRemovedXid {xid} nredirected {nredirected} ndead {ndead}"
        if op == XLOG_HEAP2_VACUUM:
            return f"nunused {XL_HEAP_VACUUM.unpack_from(data)[0]}"
        if op == XLOG_HEAP2_FREEZE_PAGE:
            cutoff, ntuples = XL_HEAP_FREEZE_PAGE.unpack_from(data)
            return f"cutoff xid {cutoff} ntuples {ntuples}"
        if op == XLOG_HEAP2_VISIBLE:
            cutoff, flags = XL_HEAP_VISIBLE.unpack_from(data)
            return f"cutoff xid {cutoff} flags 0x{flags:02X}"
        if op == XLOG_HEAP2_MULTI_INSERT:
            flags, ntuples = XL_HEAP_MULTI_INSERT.unpack_from(data)
            return f"{ntuples} tuples flags 0x{flags:02X}"
        if op == XLOG_HEAP2_LOCK_UPDATED:
            xmax, offnum, infobits, flags = XL_HEAP_LOCK_UPDATED.unpack_from(data)
            return f"off {offnum}: xmax {xmax}: flags 0x{flags:02X} " + out_infobits(infobits)
        if op == XLOG_HEAP2_NEW_CID:
            _top, cmin, cmax, combo, spc, db, rel, bi_hi, bi_lo, posid = XL_HEAP_NEW_CID.unpack_from(data)
            return (f"rel {spc}/{db}/{rel}; tid {(bi_hi << 16) | bi_lo}/{posid}"
                    f"; cmin: {cmin}, cmax: {cmax}, combo: {combo}")
    except struct.error:
        return f"<malformed: {len(data)} bytes of main data>"
    return ""


def redirect_array_desc(pairs: list[int]) -> str:
    """array_desc with redirect_elem_desc (rmgrdesc_utils.c, 16+): `` [from->to, ...]``."""
    return " [" + ", ".join(f"{a}->{b}" for a, b in zip(pairs[0::2], pairs[1::2], strict=True)) + "]"


def plans_desc(plans: list[FreezePlan], offsets: RecordCursor) -> str:
    """array_desc with plan_elem_desc (heapdesc.c, 16+): each plan with its offsets,
    which follow in ``offsets`` in plan order."""
    return " [" + ", ".join(
        f"{{ xmax: {xmax}, infomask: {infomask}, infomask2: {infomask2}, ntuples: {ntuples}, "
        f"offsets:{array_desc(offsets.u16_array(ntuples, 'freeze plan offsets'))} }}"
        for (xmax, infomask2, infomask, _frzflags), ntuples in plans) + "]"


def _has_block_data(rec: DecodedXLogRecord, block_id: int) -> bool:
    """XLogRecHasBlockData."""
    blk = rec.block(block_id)
    return blk is not None and blk.has_data


def heap2_desc_16(rec: DecodedXLogRecord) -> str:
    """Mirrors heap2_desc (heapdesc.c) of 16."""
    return _heap2_desc(rec, prune_17=False)


def heap2_desc_17(rec: DecodedXLogRecord) -> str:
    """Mirrors heap2_desc (heapdesc.c) of 17 and 18: PRUNE_ON_ACCESS, PRUNE_VACUUM_SCAN
    and PRUNE_VACUUM_CLEANUP (info 0x10-0x30) are one xl_heap_prune, its block data
    read as heap_xlog_deserialize_prune_and_freeze reads it."""
    return _heap2_desc(rec, prune_17=True)


def _heap2_desc(rec: DecodedXLogRecord, *, prune_17: bool) -> str:
    data = rec.main_data
    op = rec.info & XLOG_HEAP_OPMASK
    block = RecordCursor(rec.block_data(0), "block 0 data")
    try:
        if prune_17 and op in (XLOG_HEAP2_PRUNE, XLOG_HEAP2_VACUUM, XLOG_HEAP2_FREEZE_PAGE):
            return _prune_desc_17(rec, block)
        if op == XLOG_HEAP2_PRUNE:
            horizon, nredirected, ndead = XL_HEAP_PRUNE.unpack_from(data)
            out = f"snapshotConflictHorizon: {horizon}, nredirected: {nredirected}, ndead: {ndead}"
            if _has_block_data(rec, 0):
                redirected = block.u16_array(2 * nredirected, "redirected offsets")
                nowdead = block.u16_array(ndead, "dead offsets")
                nowunused = block.u16_array(block.remaining // 2, "unused offsets")
                out += (f", nunused: {len(nowunused)}, redirected:{redirect_array_desc(redirected)}"
                        f", dead:{array_desc(nowdead)}, unused:{array_desc(nowunused)}")
            return out
        if op == XLOG_HEAP2_VACUUM:
            (nunused,) = XL_HEAP_VACUUM.unpack_from(data)
            out = f"nunused: {nunused}"
            if _has_block_data(rec, 0):
                out += f", unused:{array_desc(block.u16_array(nunused, 'unused offsets'))}"
            return out
        if op == XLOG_HEAP2_FREEZE_PAGE:
            horizon, nplans, _catalog = XL_HEAP_FREEZE_PAGE_16.unpack_from(data)
            out = f"snapshotConflictHorizon: {horizon}, nplans: {nplans}"
            if _has_block_data(rec, 0):
                out += f", plans:{plans_desc(read_freeze_plans(block, nplans), block)}"
            return out
        if op == XLOG_HEAP2_VISIBLE:
            horizon, flags = XL_HEAP_VISIBLE.unpack_from(data)
            return f"snapshotConflictHorizon: {horizon}, flags: 0x{flags:02X}"
        if op == XLOG_HEAP2_MULTI_INSERT:
            flags, ntuples = XL_HEAP_MULTI_INSERT.unpack_from(data)
            out = f"ntuples: {ntuples}, flags: 0x{flags:02X}"
            if _has_block_data(rec, 0) and not rec.info & XLOG_HEAP_INIT_PAGE:
                offsets = RecordCursor(data).seek(XL_HEAP_MULTI_INSERT.size)
                out += f", offsets:{array_desc(offsets.u16_array(ntuples, 'offsets'))}"
            return out
        if op == XLOG_HEAP2_LOCK_UPDATED:
            xmax, offnum, infobits, flags = XL_HEAP_LOCK_UPDATED.unpack_from(data)
            return f"xmax: {xmax}, off: {offnum}, {infobits_desc(infobits, 'infobits')}, flags: 0x{flags:02X}"
        if op == XLOG_HEAP2_NEW_CID:
            _top, cmin, cmax, combo, spc, db, rel, bi_hi, bi_lo, posid = XL_HEAP_NEW_CID.unpack_from(data)
            return (f"rel: {spc}/{db}/{rel}, tid: {(bi_hi << 16) | bi_lo}/{posid}"
                    f", cmin: {cmin}, cmax: {cmax}, combo: {combo}")
    except struct.error:
        return f"<malformed: {len(data)} bytes of main data>"
    except PyredoError:
        return f"<malformed: {len(block)} bytes of block 0 data>"
    return ""


def _prune_desc_17(rec: DecodedXLogRecord, block: RecordCursor) -> str:
    """The PRUNE_* case of heap2_desc (heapdesc.c 17, 18). Without a conflict horizon
    the text starts with ", isCatalogRel" (pg_waldump's own)."""
    data = rec.main_data
    _reason, flags = XL_HEAP_PRUNE_17.unpack_from(data)
    out = ""
    if flags & XLHP_HAS_CONFLICT_HORIZON:
        out = f"snapshotConflictHorizon: {struct.unpack_from('<I', data, XL_HEAP_PRUNE_17.size)[0]}"
    out += f", isCatalogRel: {'T' if flags & XLHP_IS_CATALOG_REL else 'F'}"
    if not _has_block_data(rec, 0):
        return out
    plans, redirected, nowdead, nowunused = heap_xlog_deserialize_prune_and_freeze(block, flags)
    out += (f", nplans: {len(plans)}, nredirected: {len(redirected) // 2}, ndead: {len(nowdead)}"
            f", nunused: {len(nowunused)}")
    if plans:
        out += f", plans:{plans_desc(plans, block)}"
    if redirected:
        out += f", redirected:{redirect_array_desc(redirected)}"
    if nowdead:
        out += f", dead:{array_desc(nowdead)}"
    if nowunused:
        out += f", unused:{array_desc(nowunused)}"
    return out
