"""Where a record's bytes lie: its header fields and payload regions
(``record_layout``), the file pieces and WAL pages it spans, and its CRC."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import crc32c

from harness.robustness.hostile.corpus import RecordInfo
from pyredo.wal.assembler import XLOG_BLCKSZ, SizeOfXLogLongPHD, SizeOfXLogShortPHD
from pyredo.wal.record import (
    BKPBLOCK_HAS_DATA,
    BKPBLOCK_HAS_IMAGE,
    BKPBLOCK_SAME_REL,
    BKPIMAGE_COMPRESSED_MASK,
    BKPIMAGE_HAS_HOLE,
    XLR_BLOCK_ID_DATA_LONG,
    XLR_BLOCK_ID_DATA_SHORT,
    XLR_BLOCK_ID_ORIGIN,
    XLR_BLOCK_ID_TOPLEVEL_XID,
    SizeOfXLogRecord,
)


# -- record layout: where each header field and payload lies ------------------------
@dataclass(frozen=True)
class Field:
    kind: str  # block_id, fork_flags, data_len, bimg_len, hole_offset, bimg_info, hole_length,
    #            rnode, blkno, main_len, origin, toplevel_xid
    pos: int
    size: int
    block_id: int | None = None


@dataclass(frozen=True)
class Region:
    kind: str  # image, data, main
    pos: int
    size: int
    block_id: int | None = None
    bimg_info: int = 0


def record_layout(raw: bytes) -> tuple[list[Field], list[Region]]:
    """Header fields and payload regions of a well-formed record (DecodeXLogRecord's walk)."""
    fields: list[Field] = []
    blocks: list[tuple[int, int, int, int]] = []  # block_id, bimg_len, bimg_info, data_len
    pos = SizeOfXLogRecord
    remaining = len(raw) - SizeOfXLogRecord
    datatotal = 0
    main_len = 0
    while remaining > datatotal:
        start = pos
        bid = raw[pos]
        fields.append(Field("block_id", pos, 1, bid))
        if bid == XLR_BLOCK_ID_DATA_SHORT:
            fields.append(Field("main_len", pos + 1, 1))
            main_len = raw[pos + 1]
            pos += 2
            break
        if bid == XLR_BLOCK_ID_DATA_LONG:
            fields.append(Field("main_len", pos + 1, 4))
            main_len = struct.unpack_from("<I", raw, pos + 1)[0]
            pos += 5
            break
        if bid == XLR_BLOCK_ID_ORIGIN:
            fields.append(Field("origin", pos + 1, 2))
            pos += 3
            remaining -= 3
            continue
        if bid == XLR_BLOCK_ID_TOPLEVEL_XID:
            fields.append(Field("toplevel_xid", pos + 1, 4))
            pos += 5
            remaining -= 5
            continue
        flags, data_len = struct.unpack_from("<BH", raw, pos + 1)
        fields += [Field("fork_flags", pos + 1, 1, bid), Field("data_len", pos + 2, 2, bid)]
        pos += 4
        datatotal += data_len
        bimg_len = bimg_info = 0
        if flags & BKPBLOCK_HAS_IMAGE:
            bimg_len, _hole, bimg_info = struct.unpack_from("<HHB", raw, pos)
            fields += [Field("bimg_len", pos, 2, bid), Field("hole_offset", pos + 2, 2, bid),
                       Field("bimg_info", pos + 4, 1, bid)]
            pos += 5
            if bimg_info & BKPIMAGE_COMPRESSED_MASK and bimg_info & BKPIMAGE_HAS_HOLE:
                fields.append(Field("hole_length", pos, 2, bid))
                pos += 2
            datatotal += bimg_len
        if not flags & BKPBLOCK_SAME_REL:
            fields.append(Field("rnode", pos, 12, bid))
            pos += 12
        fields.append(Field("blkno", pos, 4, bid))
        pos += 4
        remaining -= pos - start
        blocks.append((bid, bimg_len, bimg_info, data_len if flags & BKPBLOCK_HAS_DATA else 0))
    regions: list[Region] = []
    for bid, bimg_len, bimg_info, data_len in blocks:
        if bimg_len:
            regions.append(Region("image", pos, bimg_len, bid, bimg_info))
            pos += bimg_len
        if data_len:
            regions.append(Region("data", pos, data_len, bid))
            pos += data_len
    if main_len:
        regions.append(Region("main", pos, main_len))
    return fields, regions


def fix_crc(raw: bytes | bytearray) -> bytes:
    """The record with xl_crc recomputed (so a mutation gets past the CRC check)."""
    raw = bytearray(raw)
    raw[20:24] = bytes(4)
    crc = crc32c.crc32c(bytes(raw[:20]), crc32c.crc32c(bytes(raw[SizeOfXLogRecord:])))
    struct.pack_into("<I", raw, 20, crc)
    return bytes(raw)


def record_chunks(lsn: int, n: int, seg_size: int) -> list[tuple[int, int]]:
    """The (WAL position, length) pieces of ``n`` record bytes starting at ``lsn``,
    skipping the page headers they straddle."""
    out = []
    pos = lsn
    while n > 0:
        page = pos - pos % XLOG_BLCKSZ
        if pos == page:
            pos += SizeOfXLogLongPHD if page % seg_size == 0 else SizeOfXLogShortPHD
        k = min(page + XLOG_BLCKSZ - pos, n)
        out.append((pos, k))
        pos += k
        n -= k
    return out


def record_pages(rec: RecordInfo) -> list[int]:
    """Start LSNs of the WAL pages a record's bytes lie on."""
    first = rec.lsn - rec.lsn % XLOG_BLCKSZ
    last = rec.lsn + rec.tot_len - 1
    # page headers push the record further; over-estimate by one page, harmless
    last += (last - first) // XLOG_BLCKSZ * SizeOfXLogLongPHD + SizeOfXLogLongPHD
    return list(range(first, last - last % XLOG_BLCKSZ + 1, XLOG_BLCKSZ))
