"""Decode one reassembled WAL record (xlogreader.c DecodeXLogRecord). Pure: bytes in, record out."""

from __future__ import annotations

import struct
from typing import Any

from pyredo import BLCKSZ
from pyredo.errors import InvalidRecord
from pyredo.wal.record import (
    BKPBLOCK_FORK_MASK,
    BKPBLOCK_HAS_DATA,
    BKPBLOCK_HAS_IMAGE,
    BKPBLOCK_SAME_REL,
    BKPIMAGE_APPLY,
    BKPIMAGE_COMPRESSED_MASK,
    BKPIMAGE_HAS_HOLE,
    XLR_BLOCK_ID_DATA_LONG,
    XLR_BLOCK_ID_DATA_SHORT,
    XLR_BLOCK_ID_ORIGIN,
    XLR_BLOCK_ID_TOPLEVEL_XID,
    XLR_MAX_BLOCK_ID,
    DecodedBkpBlock,
    DecodedXLogRecord,
    InvalidRepOriginId,
    InvalidTransactionId,
    RelFileNode,
    SizeOfXLogRecord,
)

# XLogRecord: xl_tot_len, xl_xid, xl_prev, xl_info, xl_rmid, 2 pad, xl_crc
XLOG_RECORD = struct.Struct("<IIQBB2xI")
_BLOCK_HDR = struct.Struct("<BH")  # fork_flags, data_length (after the id byte)
_IMAGE_HDR = struct.Struct("<HHB")  # length, hole_offset, bimg_info
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_RNODE = struct.Struct("<III")
_RNODE_BLKNO = struct.Struct("<IIII")  # RelFileNode, then the block number
# a block header without image nor BKPBLOCK_SAME_REL: fork_flags, data_length, RelFileNode, block
_PLAIN_BLOCK = struct.Struct("<BHIIII")
# block id 0, a plain block header, XLR_BLOCK_ID_DATA_SHORT and its length: the usual record
_ONE_BLOCK = struct.Struct("<BBHIIIIBB")
_ONE_BLOCK_END = SizeOfXLogRecord + _ONE_BLOCK.size  # where its payload begins
# the same with an image: the block header, the image header (with the hole length of a
# compressed image with a hole: XLogRecordBlockCompressHeader), RelFileNode, block, main data header
_IMAGE_BLOCK = struct.Struct("<BBHHHBIIIIBB")
_IMAGE_BLOCK_HOLE = struct.Struct("<BBHHHBHIIIIBB")
_IMAGE_HDR_END = SizeOfXLogRecord + 4 + _IMAGE_HDR.size  # where the hole length would be
_BIMG_INFO_AT = _IMAGE_HDR_END - 1
_IMAGE_BLOCK_END = SizeOfXLogRecord + _IMAGE_BLOCK.size

_unpack_header = XLOG_RECORD.unpack_from
_unpack_plain_block = _PLAIN_BLOCK.unpack_from
_unpack_one_block = _ONE_BLOCK.unpack_from
_new_object = object.__new__

_SHORT = "record with invalid length: block headers run past the record"

# Records name few relations: decoded records share one RelFileNode per
# relation instead of holding a copy each (they are kept for a whole plan).
_RNODES: dict[tuple[int, int, int], RelFileNode] = {}
_MAX_RNODES = 4096


def _rnode(spc: int, db: int, rel: int) -> RelFileNode:
    key = (spc, db, rel)
    rnode = _RNODES.get(key)
    if rnode is None:
        if len(_RNODES) >= _MAX_RNODES:
            _RNODES.clear()
        rnode = _RNODES[key] = RelFileNode(spc, db, rel)
    return rnode


class _Malformed(Exception):
    """Raised while parsing; decode_record turns it into a located InvalidRecord."""


def decode_record(
    raw: bytes,
    lsn: int,
    end_lsn: int,
    *,
    segment: str | None = None,
    offset: int | None = None,
) -> DecodedXLogRecord:
    """Split a whole record into header, block references and main data.

    Mirrors DecodeXLogRecord, with the same cross-checks; a malformed record
    raises InvalidRecord naming the LSN (and the file/offset when given).
    ``pos`` advances through the block headers as C's ``ptr`` does; every read
    is checked against the record's length first (C's COPY_HEADER_FIELD).
    """
    tot_len = len(raw)
    if tot_len < SizeOfXLogRecord:
        raise InvalidRecord(f"record shorter than its header ({tot_len} bytes)",
                            lsn=lsn, segment=segment, offset=offset)
    xl_tot_len, xid, prev, info, rmid, crc = _unpack_header(raw, 0)
    if xl_tot_len != tot_len:
        raise InvalidRecord(f"xl_tot_len {xl_tot_len} does not match the {tot_len} bytes read",
                            lsn=lsn, segment=segment, offset=offset)
    if tot_len >= _ONE_BLOCK_END:
        # The usual record: block 0 without image nor BKPBLOCK_SAME_REL, then short main
        # data, read at once; when so, the general way below gives just this
        block_id, fork_flags, data_len, spc, db, rel, blkno, main_id, main_data_len = _unpack_one_block(raw, SizeOfXLogRecord)
        if (block_id == 0 and main_id == XLR_BLOCK_ID_DATA_SHORT
                and not fork_flags & (BKPBLOCK_HAS_IMAGE | BKPBLOCK_SAME_REL)
                and (data_len != 0) == (fork_flags & BKPBLOCK_HAS_DATA != 0)
                and _ONE_BLOCK_END + data_len + main_data_len == tot_len):
            # the block made field by field, inline (_new_block without its call: 0.1 us on
            # most records; test_usual_record_decodes_to_every_field fails if a field is left out)
            blk = _new_object(DecodedBkpBlock)
            blk.block_id = 0
            blk.rnode = _RNODES.get((spc, db, rel)) or _rnode(spc, db, rel)
            blk.forknum = fork_flags & BKPBLOCK_FORK_MASK
            blk.blkno = blkno
            blk.flags = fork_flags
            blk.has_image = blk.apply_image = False
            blk.bkp_image = b""
            blk.hole_offset = blk.hole_length = blk.bimg_len = blk.bimg_info = 0
            pos = _ONE_BLOCK_END + data_len
            if data_len:
                blk.has_data = True
                blk.data = raw[_ONE_BLOCK_END:pos]
            else:
                blk.has_data = False
                blk.data = b""
            blk._tag = None
            return _new_record(lsn, end_lsn, tot_len, xid, prev, info, rmid, crc, raw, InvalidRepOriginId,
                               InvalidTransactionId, raw[pos:] if main_data_len else b"", {0: blk})
        if block_id == 0 and fork_flags & (BKPBLOCK_HAS_IMAGE | BKPBLOCK_SAME_REL) == BKPBLOCK_HAS_IMAGE:
            # the next most usual: the same with a full-page image (a page's first change
            # after a checkpoint)
            imaged = _one_image_record(raw, lsn, end_lsn, tot_len, xid, prev, info, rmid, crc)
            if imaged is not None:
                return imaged
    pos = SizeOfXLogRecord
    datatotal = main_data_len = 0
    origin = InvalidRepOriginId
    toplevel_xid = InvalidTransactionId
    last_rnode: RelFileNode | None = None
    max_block_id = -1
    # each block's header fields, in block order (payloads follow all headers)
    heads: list[tuple[int, RelFileNode, int, int, int, int, int, int, int]] = []
    try:
        while tot_len - pos > datatotal:
            block_id = raw[pos]
            pos += 1
            if block_id > XLR_MAX_BLOCK_ID:
                if block_id == XLR_BLOCK_ID_DATA_SHORT:
                    if pos + 1 > tot_len:
                        raise _Malformed(_SHORT)
                    main_data_len = raw[pos]
                    pos += 1
                    datatotal += main_data_len
                    break  # by convention the main data header is last
                if block_id == XLR_BLOCK_ID_DATA_LONG:
                    (main_data_len,), pos = _copy_header_field(raw, pos, tot_len, _U32)
                    datatotal += main_data_len
                    break
                if block_id == XLR_BLOCK_ID_ORIGIN:
                    (origin,), pos = _copy_header_field(raw, pos, tot_len, _U16)
                    continue
                if block_id == XLR_BLOCK_ID_TOPLEVEL_XID:
                    (toplevel_xid,), pos = _copy_header_field(raw, pos, tot_len, _U32)
                    continue
                raise _Malformed(f"invalid block_id {block_id}")
            if block_id <= max_block_id:
                raise _Malformed(f"out-of-order block_id {block_id}")
            max_block_id = block_id

            bimg_len = hole_offset = hole_length = bimg_info = 0
            plain = pos + 19 <= tot_len and not raw[pos] & (BKPBLOCK_HAS_IMAGE | BKPBLOCK_SAME_REL)
            if plain:  # the usual block header: no image, its own RelFileNode (one read)
                fork_flags, data_len, spc, db, rel, blkno = _unpack_plain_block(raw, pos)
                pos += 19
                last_rnode = _RNODES.get((spc, db, rel)) or _rnode(spc, db, rel)
            else:
                (fork_flags, data_len), pos = _copy_header_field(raw, pos, tot_len, _BLOCK_HDR)
            if fork_flags & BKPBLOCK_HAS_DATA:
                if data_len == 0:
                    raise _Malformed("BKPBLOCK_HAS_DATA set, but no data included")
            elif data_len != 0:
                raise _Malformed(f"BKPBLOCK_HAS_DATA not set, but data length is {data_len}")
            datatotal += data_len
            if not plain:
                if fork_flags & BKPBLOCK_HAS_IMAGE:
                    (bimg_len, hole_offset, bimg_info), pos = _copy_header_field(raw, pos, tot_len, _IMAGE_HDR)
                    hole_length = _check_image_header(raw, pos, tot_len, block_id, bimg_len,
                                                      hole_offset, bimg_info)
                    if bimg_info & BKPIMAGE_COMPRESSED_MASK and bimg_info & BKPIMAGE_HAS_HOLE:
                        pos += 2
                    datatotal += bimg_len
                if fork_flags & BKPBLOCK_SAME_REL:
                    if last_rnode is None:
                        raise _Malformed("BKPBLOCK_SAME_REL set but no previous rel")
                    (blkno,), pos = _copy_header_field(raw, pos, tot_len, _U32)
                else:
                    # C reads the RelFileNode, then the block number: one read here (either
                    # missing runs the headers past the record)
                    (spc, db, rel, blkno), pos = _copy_header_field(raw, pos, tot_len, _RNODE_BLKNO)
                    last_rnode = _RNODES.get((spc, db, rel)) or _rnode(spc, db, rel)
            assert last_rnode is not None  # read above, or BKPBLOCK_SAME_REL found one
            heads.append((block_id, last_rnode, fork_flags, blkno, data_len,
                          bimg_len, hole_offset, hole_length, bimg_info))

        if tot_len - pos != datatotal:
            raise _Malformed(
                f"record with invalid length: {tot_len - pos} payload bytes, headers announce {datatotal}"
            )
    except _Malformed as e:
        raise InvalidRecord(e.args[0], lsn=lsn, segment=segment, offset=offset) from None

    # Payloads follow the headers in block order: image, then data; main data last.
    blocks: dict[int, DecodedBkpBlock] = {}
    for block_id, rnode, fork_flags, blkno, data_len, bimg_len, hole_offset, hole_length, bimg_info in heads:
        image = b""
        if fork_flags & BKPBLOCK_HAS_IMAGE:
            image = raw[pos : pos + bimg_len]
            pos += bimg_len
        blocks[block_id] = _new_block(block_id, rnode, fork_flags, blkno,
                                      raw[pos : pos + data_len] if data_len else b"",
                                      image, hole_offset, hole_length, bimg_len, bimg_info)
        pos += data_len
    return _new_record(lsn, end_lsn, tot_len, xid, prev, info, rmid, crc, raw, origin, toplevel_xid,
                       raw[pos : pos + main_data_len] if main_data_len else b"", blocks)


def _one_image_record(raw: bytes, lsn: int, end_lsn: int, tot_len: int, xid: int, prev: int,
                      info: int, rmid: int, crc: int) -> DecodedXLogRecord | None:
    """The record of block 0 with a full-page image, its own RelFileNode, then short
    main data (read with two structs); None when it is not that, or not valid (the
    general way then decodes it or says what is wrong)."""
    if tot_len < _IMAGE_BLOCK_END:
        return None
    bimg_info = raw[_BIMG_INFO_AT]
    extra = bimg_info & BKPIMAGE_COMPRESSED_MASK and bimg_info & BKPIMAGE_HAS_HOLE
    st = _IMAGE_BLOCK_HOLE if extra else _IMAGE_BLOCK
    pos = SizeOfXLogRecord + st.size
    if pos > tot_len:
        return None
    fields = st.unpack_from(raw, SizeOfXLogRecord)
    fork_flags, data_len, bimg_len, hole_offset = fields[1], fields[2], fields[3], fields[4]
    spc, db, rel, blkno, main_id, main_data_len = fields[-6:]
    if (main_id != XLR_BLOCK_ID_DATA_SHORT or (data_len != 0) != (fork_flags & BKPBLOCK_HAS_DATA != 0)
            or pos + bimg_len + data_len + main_data_len != tot_len):
        return None
    try:
        hole_length = _check_image_header(raw, _IMAGE_HDR_END, tot_len, 0, bimg_len, hole_offset, bimg_info)
    except _Malformed:
        return None
    image_end = pos + bimg_len
    data_end = image_end + data_len
    blk = _new_block(0, _RNODES.get((spc, db, rel)) or _rnode(spc, db, rel), fork_flags, blkno,
                     raw[image_end:data_end] if data_len else b"", raw[pos:image_end],
                     hole_offset, hole_length, bimg_len, bimg_info)
    return _new_record(lsn, end_lsn, tot_len, xid, prev, info, rmid, crc, raw, InvalidRepOriginId,
                       InvalidTransactionId, raw[data_end:] if main_data_len else b"", {0: blk})


# The decoded objects, made field by field: what the dataclasses' __init__ do, without the
# call's argument handling (a record or two per WAL record, millions per range). A field
# added to a dataclass must be set here too (test_decoded_objects_set_every_field).
def _new_block(block_id: int, rnode: RelFileNode, fork_flags: int, blkno: int, data: bytes,
               image: bytes, hole_offset: int, hole_length: int, bimg_len: int,
               bimg_info: int) -> DecodedBkpBlock:
    blk = _new_object(DecodedBkpBlock)
    blk.block_id = block_id
    blk.rnode = rnode
    blk.forknum = fork_flags & BKPBLOCK_FORK_MASK
    blk.blkno = blkno
    blk.flags = fork_flags
    blk.has_image = has_image = fork_flags & BKPBLOCK_HAS_IMAGE != 0
    blk.apply_image = has_image and bimg_info & BKPIMAGE_APPLY != 0
    blk.bkp_image = image
    blk.hole_offset = hole_offset
    blk.hole_length = hole_length
    blk.bimg_len = bimg_len
    blk.bimg_info = bimg_info
    blk.has_data = bool(data)
    blk.data = data
    blk._tag = None
    return blk


def _new_record(lsn: int, end_lsn: int, tot_len: int, xid: int, prev: int, info: int, rmid: int,
                crc: int, raw: bytes, origin: int, toplevel_xid: int, main_data: bytes,
                blocks: dict[int, DecodedBkpBlock]) -> DecodedXLogRecord:
    rec = _new_object(DecodedXLogRecord)
    rec.lsn = lsn
    rec.end_lsn = end_lsn
    rec.tot_len = tot_len
    rec.xid = xid
    rec.prev = prev
    rec.info = info
    rec.rmid = rmid
    rec.crc = crc
    rec.raw = raw
    rec.origin = origin
    rec.toplevel_xid = toplevel_xid
    rec.main_data = main_data
    rec.blocks = blocks
    return rec


def _copy_header_field(raw: bytes, pos: int, tot_len: int, st: struct.Struct) -> tuple[tuple[Any, ...], int]:
    """COPY_HEADER_FIELD (DecodeXLogRecord): the struct at ``pos`` and the position after
    it, or the record is too short for its headers."""
    end = pos + st.size
    if end > tot_len:
        raise _Malformed(_SHORT)
    return st.unpack_from(raw, pos), end


def _check_image_header(raw: bytes, pos: int, tot_len: int, block_id: int, bimg_len: int,
                        hole_offset: int, bimg_info: int) -> int:
    """The cross-checks DecodeXLogRecord makes on a block image header; returns
    the hole length (read at ``pos`` when the image is compressed with a hole)."""
    compressed = bimg_info & BKPIMAGE_COMPRESSED_MASK != 0
    has_hole = bimg_info & BKPIMAGE_HAS_HOLE != 0
    if compressed:
        hole_length = 0
        if has_hole:
            (hole_length,), _ = _copy_header_field(raw, pos, tot_len, _U16)
    else:
        hole_length = BLCKSZ - bimg_len
    if has_hole and (hole_offset == 0 or hole_length == 0 or bimg_len == BLCKSZ):
        raise _Malformed(
            f"BKPIMAGE_HAS_HOLE set, but hole offset {hole_offset} length "
            f"{hole_length} block image length {bimg_len} (block {block_id})"
        )
    if not has_hole and (hole_offset != 0 or hole_length != 0):
        raise _Malformed(
            f"BKPIMAGE_HAS_HOLE not set, but hole offset {hole_offset} "
            f"length {hole_length} (block {block_id})"
        )
    if compressed and bimg_len == BLCKSZ:
        raise _Malformed(f"BKPIMAGE_COMPRESSED set, but block image length {bimg_len}")
    if not has_hole and not compressed and bimg_len != BLCKSZ:
        raise _Malformed(
            "neither BKPIMAGE_HAS_HOLE nor BKPIMAGE_COMPRESSED set, but block "
            f"image length is {bimg_len} (block {block_id})"
        )
    # a hole must lie inside the page, or restoring it would misplace bytes
    # (an uncompressed image longer than a page makes hole_length negative)
    if hole_length < 0 or hole_offset + hole_length > BLCKSZ:
        raise _Malformed(f"block image hole {hole_offset}+{hole_length} exceeds the page")
    return hole_length
