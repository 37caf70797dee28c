"""pg_waldump's description of Btree records (btree_desc, nbtdesc.c), per major.

15 prints ``level 0, firstrightoff 3 ...`` and ``ndeleted 2; nupdated 0``; 16 rewrote the
output as ``key: value`` pairs and prints the deleted and updated offsets of VACUUM and
DELETE (delvacuum_desc, from the block data); 17 adds ``isCatalogRel`` to DELETE and
REUSE_PAGE; 18 prints as 17. ``btree.py`` holds the table columns (``desc``,
``DESC_SINCE``); this module imports no rmgr module but the record layouts of nbtxlog.py
(and rmgrdesc_utils.c's array_desc from heapdesc.py).
"""

from __future__ import annotations

import struct

from pyredo.errors import PyredoError
from pyredo.rmgr.heapdesc import array_desc
from pyredo.rmgr.nbtxlog import (
    XL_BTREE_DEDUP,
    XL_BTREE_DELETE,
    XL_BTREE_DELETE_16,
    XL_BTREE_INSERT,
    XL_BTREE_MARK_PAGE_HALFDEAD,
    XL_BTREE_METADATA,
    XL_BTREE_NEWROOT,
    XL_BTREE_REUSE_PAGE,
    XL_BTREE_REUSE_PAGE_16,
    XL_BTREE_SPLIT,
    XL_BTREE_UNLINK_PAGE,
    XL_BTREE_VACUUM,
    XLOG_BTREE_DEDUP,
    XLOG_BTREE_DELETE,
    XLOG_BTREE_INSERT_LEAF,
    XLOG_BTREE_INSERT_META,
    XLOG_BTREE_INSERT_POST,
    XLOG_BTREE_INSERT_UPPER,
    XLOG_BTREE_MARK_PAGE_HALFDEAD,
    XLOG_BTREE_META_CLEANUP,
    XLOG_BTREE_NEWROOT,
    XLOG_BTREE_REUSE_PAGE,
    XLOG_BTREE_SPLIT_L,
    XLOG_BTREE_SPLIT_R,
    XLOG_BTREE_UNLINK_PAGE,
    XLOG_BTREE_UNLINK_PAGE_META,
    XLOG_BTREE_VACUUM,
    SizeOfBtreeUnlinkPage,
)
from pyredo.wal.record import XLR_RMGR_INFO_MASK, DecodedXLogRecord
from pyredo.xlogutils import RecordCursor


# -- 15 ----------------------------------------------------------------------------------------
def btree_desc(rec: DecodedXLogRecord) -> str:
    """Mirrors btree_desc (nbtdesc.c) of 15."""
    info = rec.info & XLR_RMGR_INFO_MASK
    data = rec.main_data

    def fields(fmt: struct.Struct, size: int | None = None) -> tuple[int, ...] | None:
        need = fmt.size if size is None else size
        if len(data) < need:
            return None
        return fmt.unpack_from(data + bytes(fmt.size - need))

    if info in (XLOG_BTREE_INSERT_LEAF, XLOG_BTREE_INSERT_UPPER, XLOG_BTREE_INSERT_META,
                XLOG_BTREE_INSERT_POST):
        f = fields(XL_BTREE_INSERT)
        return f"off {f[0]}" if f else "(truncated)"
    if info in (XLOG_BTREE_SPLIT_L, XLOG_BTREE_SPLIT_R):
        f = fields(XL_BTREE_SPLIT)
        return (f"level {f[0]}, firstrightoff {f[1]}, newitemoff {f[2]}, postingoff {f[3]}"
                if f else "(truncated)")
    if info == XLOG_BTREE_DEDUP:
        f = fields(XL_BTREE_DEDUP)
        return f"nintervals {f[0]}" if f else "(truncated)"
    if info == XLOG_BTREE_VACUUM:
        f = fields(XL_BTREE_VACUUM)
        return f"ndeleted {f[0]}; nupdated {f[1]}" if f else "(truncated)"
    if info == XLOG_BTREE_DELETE:
        f = fields(XL_BTREE_DELETE)
        return f"latestRemovedXid {f[0]}; ndeleted {f[1]}; nupdated {f[2]}" if f else "(truncated)"
    if info == XLOG_BTREE_MARK_PAGE_HALFDEAD:
        f = fields(XL_BTREE_MARK_PAGE_HALFDEAD)
        return f"topparent {f[4]}; leaf {f[1]}; left {f[2]}; right {f[3]}" if f else "(truncated)"
    if info in (XLOG_BTREE_UNLINK_PAGE, XLOG_BTREE_UNLINK_PAGE_META):
        f = fields(XL_BTREE_UNLINK_PAGE, SizeOfBtreeUnlinkPage)
        if not f:
            return "(truncated)"
        return (f"left {f[0]}; right {f[1]}; level {f[2]}; safexid {f[3] >> 32}:{f[3] & 0xFFFFFFFF}; "
                f"leafleft {f[4]}; leafright {f[5]}; leaftopparent {f[6]}")
    if info == XLOG_BTREE_NEWROOT:
        f = fields(XL_BTREE_NEWROOT)
        return f"lev {f[1]}" if f else "(truncated)"
    if info == XLOG_BTREE_REUSE_PAGE:
        f = fields(XL_BTREE_REUSE_PAGE)
        return (f"rel {f[0]}/{f[1]}/{f[2]}; latestRemovedXid {f[4] >> 32}:{f[4] & 0xFFFFFFFF}"
                if f else "(truncated)")
    if info == XLOG_BTREE_META_CLEANUP:
        md = rec.block_data(0)
        if len(md) < XL_BTREE_METADATA.size:
            return "(truncated)"
        return f"last_cleanup_num_delpages {XL_BTREE_METADATA.unpack_from(md)[5]}"
    return ""


# -- 16, 17 and 18 -----------------------------------------------------------------------------
def btree_desc_16(rec: DecodedXLogRecord) -> str:
    """Mirrors btree_desc (nbtdesc.c) of 16."""
    return _btree_desc(rec, catalog_rel=False)


def btree_desc_17(rec: DecodedXLogRecord) -> str:
    """Mirrors btree_desc (nbtdesc.c) of 17 and 18: 16's, with DELETE's and
    REUSE_PAGE's isCatalogRel."""
    return _btree_desc(rec, catalog_rel=True)


def delvacuum_desc(block_data: bytes, ndeleted: int, nupdated: int) -> str:
    """Mirrors delvacuum_desc (nbtdesc.c, 16+): the deleted offsets, then each updated
    posting-list tuple's offset and the posting-list TIDs (ptids) it loses."""
    data = RecordCursor(block_data, "block 0 data")
    deleted = data.u16_array(ndeleted, "deleted offsets")
    updatedoffsets = data.u16_array(nupdated, "updated offsets")
    updates = []
    for off in updatedoffsets:
        ptids = data.u16_array(data.u16("xl_btree_update"), "ptids")
        updates.append(f"{{ off: {off}, nptids: {len(ptids)}, ptids: [{', '.join(map(str, ptids))}] }}")
    return f", deleted:{array_desc(deleted)}, updated: [{', '.join(updates)}]"


def _catalog(flag: bool) -> str:
    return f", isCatalogRel: {'T' if flag else 'F'}"


def _btree_desc(rec: DecodedXLogRecord, *, catalog_rel: bool) -> str:
    info = rec.info & XLR_RMGR_INFO_MASK
    data = rec.main_data
    blk0 = rec.block(0)
    has_data = blk0 is not None and blk0.has_data  # XLogRecHasBlockData(record, 0)
    try:
        if info in (XLOG_BTREE_INSERT_LEAF, XLOG_BTREE_INSERT_UPPER, XLOG_BTREE_INSERT_META,
                    XLOG_BTREE_INSERT_POST):
            return f"off: {XL_BTREE_INSERT.unpack_from(data)[0]}"
        if info in (XLOG_BTREE_SPLIT_L, XLOG_BTREE_SPLIT_R):
            level, firstright, newitemoff, postingoff = XL_BTREE_SPLIT.unpack_from(data)
            return (f"level: {level}, firstrightoff: {firstright}, newitemoff: {newitemoff}, "
                    f"postingoff: {postingoff}")
        if info == XLOG_BTREE_DEDUP:
            return f"nintervals: {XL_BTREE_DEDUP.unpack_from(data)[0]}"
        if info == XLOG_BTREE_VACUUM:
            ndeleted, nupdated = XL_BTREE_VACUUM.unpack_from(data)
            out = f"ndeleted: {ndeleted}, nupdated: {nupdated}"
            return out + (delvacuum_desc(rec.block_data(0), ndeleted, nupdated) if has_data else "")
        if info == XLOG_BTREE_DELETE:
            horizon, ndeleted, nupdated, catalog = XL_BTREE_DELETE_16.unpack_from(data)
            out = f"snapshotConflictHorizon: {horizon}, ndeleted: {ndeleted}, nupdated: {nupdated}"
            out += _catalog(catalog) if catalog_rel else ""
            return out + (delvacuum_desc(rec.block_data(0), ndeleted, nupdated) if has_data else "")
        if info == XLOG_BTREE_MARK_PAGE_HALFDEAD:
            _poffset, leaf, left, right, topparent = XL_BTREE_MARK_PAGE_HALFDEAD.unpack_from(data)
            return f"topparent: {topparent}, leaf: {leaf}, left: {left}, right: {right}"
        if info in (XLOG_BTREE_UNLINK_PAGE, XLOG_BTREE_UNLINK_PAGE_META):
            if len(data) < SizeOfBtreeUnlinkPage:
                raise struct.error("short xl_btree_unlink_page")
            f = XL_BTREE_UNLINK_PAGE.unpack(data[:SizeOfBtreeUnlinkPage].ljust(XL_BTREE_UNLINK_PAGE.size, b"\0"))
            return (f"left: {f[0]}, right: {f[1]}, level: {f[2]}, safexid: {f[3] >> 32}:{f[3] & 0xFFFFFFFF}, "
                    f"leafleft: {f[4]}, leafright: {f[5]}, leaftopparent: {f[6]}")
        if info == XLOG_BTREE_NEWROOT:
            return f"level: {XL_BTREE_NEWROOT.unpack_from(data)[1]}"
        if info == XLOG_BTREE_REUSE_PAGE:
            spc, db, rel, _block, horizon, catalog = XL_BTREE_REUSE_PAGE_16.unpack_from(data)
            out = f"rel: {spc}/{db}/{rel}, snapshotConflictHorizon: {horizon >> 32}:{horizon & 0xFFFFFFFF}"
            return out + (_catalog(catalog) if catalog_rel else "")
        if info == XLOG_BTREE_META_CLEANUP:
            md = RecordCursor(rec.block_data(0), "block 0 data")
            return f"last_cleanup_num_delpages: {md.unpack(XL_BTREE_METADATA, 'xl_btree_metadata')[5]}"
    except struct.error:
        return f"<malformed: {len(data)} bytes of main data>"
    except PyredoError:
        return f"<malformed: {len(rec.block_data(0))} bytes of block 0 data>"
    return ""
