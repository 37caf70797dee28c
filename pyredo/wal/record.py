"""Decoded WAL records: the Python face of xlogreader.h's DecodedXLogRecord.

A record is plain data. Block references keep PostgreSQL's field names
(``rnode``, ``forknum``, ``blkno``, ``bimg_info``, ``hole_offset`` ...); the
page image stays as stored in WAL (maybe compressed, without its hole) until
``pyredo.wal.image.restore_block_image`` is asked for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

# xlogrecord.h -------------------------------------------------------------
SizeOfXLogRecord = 24
XLR_INFO_MASK = 0x0F
XLR_RMGR_INFO_MASK = 0xF0
XLR_SPECIAL_REL_UPDATE = 0x01
XLR_CHECK_CONSISTENCY = 0x02

XLR_MAX_BLOCK_ID = 32
XLR_BLOCK_ID_DATA_SHORT = 255
XLR_BLOCK_ID_DATA_LONG = 254
XLR_BLOCK_ID_ORIGIN = 253
XLR_BLOCK_ID_TOPLEVEL_XID = 252

BKPBLOCK_FORK_MASK = 0x0F
BKPBLOCK_FLAG_MASK = 0xF0
BKPBLOCK_HAS_IMAGE = 0x10
BKPBLOCK_HAS_DATA = 0x20
BKPBLOCK_WILL_INIT = 0x40
BKPBLOCK_SAME_REL = 0x80

BKPIMAGE_HAS_HOLE = 0x01
BKPIMAGE_APPLY = 0x02
BKPIMAGE_COMPRESS_PGLZ = 0x04
BKPIMAGE_COMPRESS_LZ4 = 0x08
BKPIMAGE_COMPRESS_ZSTD = 0x10
BKPIMAGE_COMPRESSED_MASK = BKPIMAGE_COMPRESS_PGLZ | BKPIMAGE_COMPRESS_LZ4 | BKPIMAGE_COMPRESS_ZSTD

InvalidTransactionId = 0
InvalidRepOriginId = 0

# relpath.h: ForkNumber
MAIN_FORKNUM = 0
FSM_FORKNUM = 1
VISIBILITYMAP_FORKNUM = 2
INIT_FORKNUM = 3
FORK_NAMES = ("main", "fsm", "vm", "init")


class RelFileNode(NamedTuple):
    """relfilenode.h: tablespace, database and relation file number."""

    spc: int
    db: int
    rel: int


class BufferTag(NamedTuple):
    """buf_internals.h BufferTag: which block of which fork of which relation."""

    spc: int
    db: int
    rel: int
    fork: int
    blk: int

    @property
    def rnode(self) -> RelFileNode:
        return RelFileNode(self.spc, self.db, self.rel)

    def __str__(self) -> str:
        fork = FORK_NAMES[self.fork] if 0 <= self.fork < len(FORK_NAMES) else str(self.fork)
        return f"{self.spc}/{self.db}/{self.rel}.{fork} blk {self.blk}"


# BufferTag(...) without its generated __new__ (a named tuple's fields are its items)
_new_tuple = tuple.__new__


@dataclass(slots=True)
class DecodedBkpBlock:
    """One block reference of a record (xlogreader.h DecodedBkpBlock)."""

    block_id: int
    rnode: RelFileNode
    forknum: int
    blkno: int
    flags: int  # fork_flags byte of the XLogRecordBlockHeader
    has_image: bool = False
    apply_image: bool = False
    bkp_image: bytes = b""  # as stored in WAL: without hole, maybe compressed
    hole_offset: int = 0
    hole_length: int = 0
    bimg_len: int = 0
    bimg_info: int = 0
    has_data: bool = False
    data: bytes = b""
    _tag: BufferTag | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def tag(self) -> BufferTag:
        """The block this reference names. Made once, on first use: a decoded
        block's fields are not changed afterwards (``dataclasses.replace``
        makes a new block, with its own)."""
        tag = self._tag
        if tag is None:
            r = self.rnode
            tag = self._tag = _new_tuple(BufferTag, (r.spc, r.db, r.rel, self.forknum, self.blkno))
        return tag

    @property
    def will_init(self) -> bool:
        return bool(self.flags & BKPBLOCK_WILL_INIT)

    @property
    def data_len(self) -> int:
        return len(self.data)


@dataclass(slots=True)
class DecodedXLogRecord:
    """A whole decoded WAL record (xlogreader.h DecodedXLogRecord).

    (The decoder makes the usual record, and its block, field by field: a new
    field must be set there too, pyredo.wal.decoder.decode_record.)

    ``lsn`` is where the record starts (ReadRecPtr), ``end_lsn`` where the next
    one starts (EndRecPtr: the LSN redo stamps on pages). ``raw`` is the record
    exactly as in WAL, reassembled across pages, as the wal-redo protocol sends it.
    """

    lsn: int
    end_lsn: int
    tot_len: int
    xid: int
    prev: int
    info: int
    rmid: int
    crc: int
    raw: bytes
    origin: int = InvalidRepOriginId
    toplevel_xid: int = InvalidTransactionId
    main_data: bytes = b""
    blocks: dict[int, DecodedBkpBlock] = field(default_factory=dict)

    @property
    def rmgr_info(self) -> int:
        """``xl_info & ~XLR_INFO_MASK``: the bits a resource manager owns."""
        return self.info & XLR_RMGR_INFO_MASK

    @property
    def max_block_id(self) -> int:
        return max(self.blocks) if self.blocks else -1

    def block(self, block_id: int) -> DecodedBkpBlock | None:
        """XLogRecGetBlock; None when the record has no such block reference."""
        return self.blocks.get(block_id)

    def has_block_ref(self, block_id: int) -> bool:
        """XLogRecHasBlockRef."""
        return block_id in self.blocks

    def resets(self, tag: BufferTag) -> bool:
        """Does the record restore a full-page image of ``tag`` or re-initialize it
        (BKPIMAGE_APPLY, BKPBLOCK_WILL_INIT: redo then reads nothing of the page before it)?"""
        for blk in self.blocks.values():
            if blk.tag == tag:
                return blk.apply_image or blk.will_init
        return False

    def block_data(self, block_id: int) -> bytes:
        """XLogRecGetBlockData: the rmgr data registered with a block (b'' if none)."""
        blk = self.blocks.get(block_id)
        return blk.data if blk is not None else b""
