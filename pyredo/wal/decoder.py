"""Decode one reassembled WAL record (xlogreader.c DecodeXLogRecord). Pure: bytes in, record out."""

from __future__ import annotations

import struct

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
    """

    def bad(msg: str) -> InvalidRecord:
        return InvalidRecord(msg, lsn=lsn, segment=segment, offset=offset)

    if len(raw) < SizeOfXLogRecord:
        raise bad(f"record shorter than its header ({len(raw)} bytes)")
    tot_len, xid, prev, info, rmid, crc = XLOG_RECORD.unpack_from(raw, 0)
    if tot_len != len(raw):
        raise bad(f"xl_tot_len {tot_len} does not match the {len(raw)} bytes read")

    rec = DecodedXLogRecord(
        lsn=lsn, end_lsn=end_lsn, tot_len=tot_len, xid=xid, prev=prev,
        info=info, rmid=rmid, crc=crc, raw=raw,
    )
    blocks: list[tuple[DecodedBkpBlock, int]] = []  # with each block's data length
    pos = SizeOfXLogRecord
    remaining = tot_len - SizeOfXLogRecord
    datatotal = 0
    main_data_len = 0
    last_rnode: RelFileNode | None = None
    max_block_id = -1

    def take(n: int) -> int:
        nonlocal pos, remaining
        if remaining < n:
            raise bad("record with invalid length: block headers run past the record")
        start = pos
        pos += n
        remaining -= n
        return start

    while remaining > datatotal:
        block_id = raw[take(1)]
        if block_id == XLR_BLOCK_ID_DATA_SHORT:
            main_data_len = raw[take(1)]
            datatotal += main_data_len
            break  # by convention the main data header is last
        if block_id == XLR_BLOCK_ID_DATA_LONG:
            main_data_len = _U32.unpack_from(raw, take(4))[0]
            datatotal += main_data_len
            break
        if block_id == XLR_BLOCK_ID_ORIGIN:
            rec.origin = _U16.unpack_from(raw, take(2))[0]
            continue
        if block_id == XLR_BLOCK_ID_TOPLEVEL_XID:
            rec.toplevel_xid = _U32.unpack_from(raw, take(4))[0]
            continue
        if block_id > XLR_MAX_BLOCK_ID:
            raise bad(f"invalid block_id {block_id}")
        if block_id <= max_block_id:
            raise bad(f"out-of-order block_id {block_id}")
        max_block_id = block_id

        fork_flags, data_len = _BLOCK_HDR.unpack_from(raw, take(3))
        has_image = bool(fork_flags & BKPBLOCK_HAS_IMAGE)
        has_data = bool(fork_flags & BKPBLOCK_HAS_DATA)
        if has_data and data_len == 0:
            raise bad("BKPBLOCK_HAS_DATA set, but no data included")
        if not has_data and data_len != 0:
            raise bad(f"BKPBLOCK_HAS_DATA not set, but data length is {data_len}")
        datatotal += data_len

        bimg_len = hole_offset = hole_length = bimg_info = 0
        if has_image:
            bimg_len, hole_offset, bimg_info = _IMAGE_HDR.unpack_from(raw, take(5))
            compressed = bool(bimg_info & BKPIMAGE_COMPRESSED_MASK)
            if compressed:
                if bimg_info & BKPIMAGE_HAS_HOLE:
                    hole_length = _U16.unpack_from(raw, take(2))[0]
            else:
                hole_length = BLCKSZ - bimg_len
            datatotal += bimg_len
            has_hole = bool(bimg_info & BKPIMAGE_HAS_HOLE)
            if has_hole and (hole_offset == 0 or hole_length == 0 or bimg_len == BLCKSZ):
                raise bad(
                    f"BKPIMAGE_HAS_HOLE set, but hole offset {hole_offset} length "
                    f"{hole_length} block image length {bimg_len} (block {block_id})"
                )
            if not has_hole and (hole_offset != 0 or hole_length != 0):
                raise bad(
                    f"BKPIMAGE_HAS_HOLE not set, but hole offset {hole_offset} "
                    f"length {hole_length} (block {block_id})"
                )
            if compressed and bimg_len == BLCKSZ:
                raise bad(f"BKPIMAGE_COMPRESSED set, but block image length {bimg_len}")
            if not has_hole and not compressed and bimg_len != BLCKSZ:
                raise bad(
                    "neither BKPIMAGE_HAS_HOLE nor BKPIMAGE_COMPRESSED set, but block "
                    f"image length is {bimg_len} (block {block_id})"
                )
            # a hole must lie inside the page, or restoring it would misplace bytes
            # (an uncompressed image longer than a page makes hole_length negative)
            if hole_length < 0 or hole_offset + hole_length > BLCKSZ:
                raise bad(f"block image hole {hole_offset}+{hole_length} exceeds the page")

        if not fork_flags & BKPBLOCK_SAME_REL:
            last_rnode = RelFileNode(*_RNODE.unpack_from(raw, take(12)))
        elif last_rnode is None:
            raise bad("BKPBLOCK_SAME_REL set but no previous rel")
        blkno = _U32.unpack_from(raw, take(4))[0]

        blocks.append((
            DecodedBkpBlock(
                block_id=block_id,
                rnode=last_rnode,
                forknum=fork_flags & BKPBLOCK_FORK_MASK,
                blkno=blkno,
                flags=fork_flags,
                has_image=has_image,
                apply_image=bool(has_image and bimg_info & BKPIMAGE_APPLY),
                hole_offset=hole_offset,
                hole_length=hole_length,
                bimg_len=bimg_len,
                bimg_info=bimg_info,
                has_data=has_data,
            ),
            data_len,
        ))

    if remaining != datatotal:
        raise bad(
            f"record with invalid length: {remaining} payload bytes, headers announce {datatotal}"
        )

    # Payloads follow the headers in block order: image, then data; main data last.
    for blk, data_len in blocks:
        if blk.has_image:
            blk.bkp_image = raw[pos : pos + blk.bimg_len]
            pos += blk.bimg_len
        if data_len:
            blk.data = raw[pos : pos + data_len]
            pos += data_len
        rec.blocks[blk.block_id] = blk
    if main_data_len:
        rec.main_data = raw[pos : pos + main_data_len]
    return rec
