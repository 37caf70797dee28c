"""nbtxlog.h's Btree record layouts: xl_info values and struct formats (15's; 16 adds
isCatalogRel to xl_btree_delete and xl_btree_reuse_page, ``*_16``, kept by 17 and 18).

Shared by pyredo.rmgr.btree (redo, nbtxlog.c) and nbtdesc (btree_desc, nbtdesc.c);
imports neither.
"""

from __future__ import annotations

import struct

# xl_info values (C header names)
XLOG_BTREE_INSERT_LEAF = 0x00
XLOG_BTREE_INSERT_UPPER = 0x10
XLOG_BTREE_INSERT_META = 0x20
XLOG_BTREE_SPLIT_L = 0x30
XLOG_BTREE_SPLIT_R = 0x40
XLOG_BTREE_INSERT_POST = 0x50
XLOG_BTREE_DEDUP = 0x60
XLOG_BTREE_DELETE = 0x70
XLOG_BTREE_UNLINK_PAGE = 0x80
XLOG_BTREE_UNLINK_PAGE_META = 0x90
XLOG_BTREE_NEWROOT = 0xA0
XLOG_BTREE_MARK_PAGE_HALFDEAD = 0xB0
XLOG_BTREE_VACUUM = 0xC0
XLOG_BTREE_REUSE_PAGE = 0xD0
XLOG_BTREE_META_CLEANUP = 0xE0

# record layouts (main data unless noted; little-endian, C padding spelled out)
XL_BTREE_INSERT = struct.Struct("<H")  # offnum
XL_BTREE_SPLIT = struct.Struct("<IHHH")  # level, firstrightoff, newitemoff, postingoff
XL_BTREE_DEDUP = struct.Struct("<H")  # nintervals
BT_DEDUP_INTERVAL = struct.Struct("<HH")  # BTDedupInterval: baseoff, nitems (block 0 data)
XL_BTREE_VACUUM = struct.Struct("<HH")  # ndeleted, nupdated
XL_BTREE_DELETE = struct.Struct("<IHH")  # latestRemovedXid, ndeleted, nupdated
XL_BTREE_DELETE_16 = struct.Struct("<IHH?")  # snapshotConflictHorizon, ndeleted, nupdated, isCatalogRel
XL_BTREE_UPDATE = struct.Struct("<H")  # xl_btree_update.ndeletedtids (block 0 data)
# poffset, (pad), leafblk, leftblk, rightblk, topparent
XL_BTREE_MARK_PAGE_HALFDEAD = struct.Struct("<H2xIIII")
# leftsib, rightsib, level, (pad), safexid, leafleftsib, leafrightsib, leaftopparent
XL_BTREE_UNLINK_PAGE = struct.Struct("<III4xQIII")
SizeOfBtreeUnlinkPage = 36  # offsetof(leaftopparent) + 4: the tail padding is not logged
XL_BTREE_NEWROOT = struct.Struct("<II")  # rootblk, level
XL_BTREE_REUSE_PAGE = struct.Struct("<IIIIQ")  # node (spc, db, rel), block, latestRemovedFullXid
# 16: locator, block, snapshotConflictHorizon (FullTransactionId), isCatalogRel
XL_BTREE_REUSE_PAGE_16 = struct.Struct("<IIIIQ?")
# xl_btree_metadata (block data): version, root, level, fastroot, fastlevel,
# last_cleanup_num_delpages, allequalimage (bool byte), (pad)
XL_BTREE_METADATA = struct.Struct("<6IB3x")
