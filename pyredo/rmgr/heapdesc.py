"""pg_waldump's description of Heap records (heap_desc, heapdesc.c), per major.

15 prints ``off 3 flags 0x08 LOCK_ONLY``; 16 rewrote the output as ``key: value``
pairs with bracketed flag lists and arrays (``off: 3, flags: 0x08``,
``infobits: [LOCK_ONLY]``; rmgrdesc_utils.c's array_desc), unchanged in 17;
18's INPLACE record carries invalidation messages, described as
standby_desc_invalidations (standbydesc.c) does. ``heap.py`` holds the table
columns (``desc``, ``DESC_SINCE``); this module imports no rmgr module but the
record layouts of heapam_xlog.py.
"""

from __future__ import annotations

import struct

from pyredo.rmgr.heapam_xlog import (
    XL_HEAP_CONFIRM,
    XL_HEAP_DELETE,
    XL_HEAP_INSERT,
    XL_HEAP_LOCK,
    XL_HEAP_TRUNCATE,
    XL_HEAP_UPDATE,
    XLHL_KEYS_UPDATED,
    XLHL_XMAX_EXCL_LOCK,
    XLHL_XMAX_IS_MULTI,
    XLHL_XMAX_KEYSHR_LOCK,
    XLHL_XMAX_LOCK_ONLY,
    XLOG_HEAP_CONFIRM,
    XLOG_HEAP_DELETE,
    XLOG_HEAP_HOT_UPDATE,
    XLOG_HEAP_INPLACE,
    XLOG_HEAP_INSERT,
    XLOG_HEAP_LOCK,
    XLOG_HEAP_OPMASK,
    XLOG_HEAP_TRUNCATE,
    XLOG_HEAP_UPDATE,
)
from pyredo.wal.record import DecodedXLogRecord

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
