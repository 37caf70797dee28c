"""Build synthetic WAL segments: records with block references, images and main
data, laid out across pages and segments with valid headers and CRCs.

For tests and fuzzing only (PostgreSQL writes real WAL); it lets a test put a
record exactly across a page or segment boundary, then break one thing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import crc32c

from pyredo.wal.assembler import (
    XLOG_BLCKSZ,
    XLOG_LONG_PAGE_HEADER,
    XLOG_PAGE_HEADER,
    XLOG_PAGE_MAGIC,
    XLP_FIRST_IS_CONTRECORD,
    XLP_LONG_HEADER,
    SizeOfXLogLongPHD,
    SizeOfXLogShortPHD,
    maxalign,
)
from pyredo.wal.decoder import XLOG_RECORD
from pyredo.wal.lsn import segment_file_name
from pyredo.wal.record import (
    BKPBLOCK_HAS_DATA,
    BKPBLOCK_HAS_IMAGE,
    BKPBLOCK_SAME_REL,
    BKPBLOCK_WILL_INIT,
    BKPIMAGE_APPLY,
    BKPIMAGE_HAS_HOLE,
    XLR_BLOCK_ID_DATA_LONG,
    XLR_BLOCK_ID_DATA_SHORT,
    RelFileNode,
    SizeOfXLogRecord,
)


@dataclass
class BlockSpec:
    """One block reference to encode."""

    block_id: int
    rnode: RelFileNode
    forknum: int
    blkno: int
    data: bytes = b""
    image: bytes | None = None  # an uncompressed 8192-byte page
    hole: tuple[int, int] | None = None  # (offset, length) removed from the image
    apply: bool = True
    will_init: bool = False


def encode_record(
    rmid: int, info: int, *, xid: int = 0, prev: int = 0,
    blocks: list[BlockSpec] | None = None, main_data: bytes = b"",
) -> bytes:
    """An XLogRecord with header, block headers, payloads and a valid CRC."""
    headers = bytearray()
    payload = bytearray()
    last_rnode = None
    for b in blocks or []:
        flags = b.forknum
        if b.data:
            flags |= BKPBLOCK_HAS_DATA
        if b.image is not None:
            flags |= BKPBLOCK_HAS_IMAGE
        if b.will_init:
            flags |= BKPBLOCK_WILL_INIT
        if b.rnode == last_rnode:
            flags |= BKPBLOCK_SAME_REL
        headers += struct.pack("<BBH", b.block_id, flags, len(b.data))
        if b.image is not None:
            img = b.image
            bimg_info = BKPIMAGE_APPLY if b.apply else 0
            hole_off = 0
            if b.hole is not None:
                hole_off, hole_len = b.hole
                img = img[:hole_off] + img[hole_off + hole_len:]
                bimg_info |= BKPIMAGE_HAS_HOLE
            headers += struct.pack("<HHB", len(img), hole_off, bimg_info)
            payload += img
        if not flags & BKPBLOCK_SAME_REL:
            headers += struct.pack("<III", *b.rnode)
        headers += struct.pack("<I", b.blkno)
        payload += b.data
        last_rnode = b.rnode
    if main_data:
        if len(main_data) < 256:
            headers += struct.pack("<BB", XLR_BLOCK_ID_DATA_SHORT, len(main_data))
        else:
            headers += struct.pack("<BI", XLR_BLOCK_ID_DATA_LONG, len(main_data))
        payload += main_data
    body = bytes(headers + payload)
    tot_len = SizeOfXLogRecord + len(body)
    head = XLOG_RECORD.pack(tot_len, xid, prev, info, rmid, 0)
    crc = crc32c.crc32c(head[:20], crc32c.crc32c(body))
    return XLOG_RECORD.pack(tot_len, xid, prev, info, rmid, crc) + body


@dataclass
class WalBuilder:
    """Lay records out in WAL pages and segments, as XLogInsert would."""

    seg_size: int = 1 << 20
    tli: int = 1
    sysid: int = 7_000_000_000_000_000_001
    start_segno: int = 1
    magic: int = XLOG_PAGE_MAGIC  # the WAL of another major: reader.MAJOR_PAGE_MAGIC[major]
    records: list[tuple[int, int, bytes]] = field(default_factory=list)  # lsn, end, bytes
    _buf: bytearray = field(default_factory=bytearray)
    _pos: int = 0  # next insert position (LSN)
    _prev: int = 0

    def __post_init__(self) -> None:
        self._pos = self.start_segno * self.seg_size
        self._ensure_page_header()

    @property
    def base(self) -> int:
        return self.start_segno * self.seg_size

    @property
    def insert_lsn(self) -> int:
        return self._pos

    def _ensure_page_header(self, rem_len: int = 0) -> None:
        """Write the header of the page at ``_pos`` (which must be a page start)."""
        assert self._pos % XLOG_BLCKSZ == 0
        long = self._pos % self.seg_size == 0
        info = (XLP_LONG_HEADER if long else 0) | (XLP_FIRST_IS_CONTRECORD if rem_len else 0)
        hdr = XLOG_PAGE_HEADER.pack(self.magic, info, self.tli, self._pos, rem_len) + bytes(4)
        if long:
            hdr += XLOG_LONG_PAGE_HEADER.pack(self.sysid, self.seg_size, XLOG_BLCKSZ)
        self._put(hdr)

    def _put(self, data: bytes) -> None:
        off = self._pos - self.base
        if len(self._buf) < off + len(data):
            self._buf.extend(bytes(off + len(data) - len(self._buf)))
        self._buf[off : off + len(data)] = data
        self._pos += len(data)

    def pad_to(self, page_offset: int) -> None:
        """Advance the insert position (with a filler record) so the next record
        starts at ``page_offset`` within a page; used to straddle boundaries."""
        while self._pos % XLOG_BLCKSZ != page_offset:
            room = (page_offset - self._pos % XLOG_BLCKSZ) % XLOG_BLCKSZ
            if room >= SizeOfXLogRecord + 8 + 2:
                # an XLOG NOOP record carrying filler main data
                size = room - SizeOfXLogRecord - 2
                size = max(0, min(size, 255))
                self.add(0, 0x20, main_data=b"\0" * size)
            else:
                self.add(0, 0x20, main_data=b"\0" * 200)

    def add(self, rmid: int, info: int, **kw: object) -> int:
        """Append one record; returns its LSN."""
        rec = encode_record(rmid, info, prev=self._prev, **kw)  # type: ignore[arg-type]
        return self.add_raw(rec)

    def add_raw(self, rec: bytes) -> int:
        lsn = self._pos
        remaining = memoryview(rec)
        while remaining:
            room = XLOG_BLCKSZ - self._pos % XLOG_BLCKSZ
            n = min(room, len(remaining))
            self._put(bytes(remaining[:n]))
            remaining = remaining[n:]
            if remaining:
                self._ensure_page_header(rem_len=len(remaining))
        end = maxalign(self._pos)
        self._put(bytes(end - self._pos))
        if self._pos % XLOG_BLCKSZ == 0:
            self._ensure_page_header()
        self.records.append((lsn, end, rec))
        self._prev = lsn
        return lsn

    def add_switch(self) -> int:
        """An XLOG_SWITCH record; what follows starts on the next segment."""
        lsn = self.add(0, 0x40)
        nxt = (lsn // self.seg_size + 1) * self.seg_size
        if self._pos != nxt:
            self._pos = nxt
            self._ensure_page_header()
        return lsn

    def segments(self) -> dict[str, bytes]:
        """File name -> full segment bytes (zero-filled to the segment size)."""
        data = bytes(self._buf)
        out = {}
        for i in range(0, max(len(data), 1), self.seg_size):
            chunk = data[i : i + self.seg_size]
            chunk += bytes(self.seg_size - len(chunk))
            out[segment_file_name(self.tli, self.start_segno + i // self.seg_size, self.seg_size)] = chunk
        return out

    def write(self, waldir: Path) -> list[Path]:
        waldir.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, data in self.segments().items():
            p = waldir / name
            p.write_bytes(data)
            paths.append(p)
        return paths


__all__ = ["BlockSpec", "SizeOfXLogLongPHD", "SizeOfXLogShortPHD", "WalBuilder", "encode_record"]
