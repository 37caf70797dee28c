"""The pure half of the WAL reader: page headers, records reassembled across pages
and segments, CRC-32C checks (xlogreader.c XLogReaderValidatePageHeader,
XLogDecodeNextRecord and friends).

``RecordAssembler`` is fed WAL pages in order and hands back whole, CRC-checked raw
records; it never opens a file (sans-I/O: pyredo.wal.reader does the reading).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

import crc32c

from pyredo.errors import (
    CrcMismatch,
    InvalidPageHeader,
    InvalidRecord,
    TruncatedWal,
    format_lsn,
)
from pyredo.rmgr import RM_LOGICALMSG_ID, RM_XLOG_ID
from pyredo.rmgr.xlog import XLOG_SWITCH
from pyredo.wal.decoder import XLOG_RECORD
from pyredo.wal.lsn import segment_file_name
from pyredo.wal.record import XLR_RMGR_INFO_MASK, SizeOfXLogRecord

# xlog_internal.h ------------------------------------------------------------
XLOG_PAGE_MAGIC = 0xD110  # PostgreSQL 15
# the WAL version of each major (xlog_internal.h): a reader takes the first page's, then insists on it
XLOG_PAGE_MAGICS: dict[int, int] = {0xD110: 15, 0xD113: 16, 0xD116: 17, 0xD118: 18}
MAJOR_PAGE_MAGIC = {major: magic for magic, major in XLOG_PAGE_MAGICS.items()}
XLOG_BLCKSZ = 8192
XLP_FIRST_IS_CONTRECORD = 0x0001
XLP_LONG_HEADER = 0x0002
XLP_BKP_REMOVABLE = 0x0004
XLP_FIRST_IS_OVERWRITE_CONTRECORD = 0x0008
XLP_ALL_FLAGS = 0x000F
SizeOfXLogShortPHD = 24
SizeOfXLogLongPHD = 40
# MaxAllocSize: PostgreSQL cannot allocate a bigger record buffer either
MAX_RECORD_LEN = 0x3FFFFFFF

RM_MAX_BUILTIN_ID = RM_LOGICALMSG_ID
RM_MIN_CUSTOM_ID = 128

# xlp_magic, xlp_info, xlp_tli, xlp_pageaddr, xlp_rem_len
XLOG_PAGE_HEADER = struct.Struct("<HHIQI")
# xlp_sysid, xlp_seg_size, xlp_xlog_blcksz (after the short header)
XLOG_LONG_PAGE_HEADER = struct.Struct("<QII")
_U32 = struct.Struct("<I")
_unpack_record_header = XLOG_RECORD.unpack_from
_crc32c = crc32c.crc32c
# RawRecord(...) without its generated __new__ (a named tuple's fields are its items)
_new_tuple = tuple.__new__

VALID_SEG_SIZES = frozenset(1 << n for n in range(20, 31))  # 1 MB .. 1 GB


def maxalign(n: int) -> int:
    return (n + 7) & ~7


def rmgr_id_is_valid(rmid: int) -> bool:
    """RmgrIdIsValid: a built-in or a custom resource manager id."""
    return rmid <= RM_MAX_BUILTIN_ID or rmid >= RM_MIN_CUSTOM_ID


@dataclass(slots=True)
class PageHeader:
    """XLogPageHeaderData (+ the long header fields on a segment's first page)."""

    magic: int
    info: int
    tli: int
    pageaddr: int
    rem_len: int
    sysid: int = 0
    seg_size: int = 0
    xlog_blcksz: int = 0

    @property
    def size(self) -> int:
        """XLogPageHeaderSize."""
        return SizeOfXLogLongPHD if self.info & XLP_LONG_HEADER else SizeOfXLogShortPHD


def parse_page_header(page: bytes | memoryview) -> PageHeader:
    magic, info, tli, pageaddr, rem_len = XLOG_PAGE_HEADER.unpack_from(page, 0)
    hdr = PageHeader(magic, info, tli, pageaddr, rem_len)
    if info & XLP_LONG_HEADER:
        hdr.sysid, hdr.seg_size, hdr.xlog_blcksz = XLOG_LONG_PAGE_HEADER.unpack_from(page, 24)
    return hdr


class RawRecord(NamedTuple):
    """A whole record as in WAL: where it starts, where the next one starts, its bytes
    (its file and offset, for errors only: ``RecordAssembler._where(lsn)``)."""

    lsn: int
    end_lsn: int
    data: bytes


class RecordAssembler:
    """Pure WAL page consumer: pages in, whole CRC-checked records out.

    ``next_page`` is the address of the page it wants next. Start it at any
    LSN: like XLogFindNextRecord it skips continuation data and records that
    begin before ``start``.
    """

    def __init__(
        self,
        seg_size: int,
        start: int,
        *,
        tli: int = 0,
        sysid: int = 0,
        magic: int | None = None,
    ) -> None:
        self.seg_size = seg_size
        self.magic = magic  # XLOG_PAGE_MAGIC of the WAL's major (None: the first page's)
        self.start = start
        self.next_page = start - start % XLOG_BLCKSZ
        self.next_rec = start  # where the next record begins (once synced)
        self.synced = False  # found a record boundary yet?
        self.prev_lsn: int | None = None
        self.latest_page = -1
        self.latest_tli = tli
        self.sysid = sysid
        self._tli_for_names = tli
        # the record being reassembled across pages
        self._parts: list[bytes] = []
        self._got = 0
        self._total = 0
        self._rec_lsn = 0
        self._rec_hdr = (0, 0, 0)  # xl_info, xl_rmid, xl_crc, once the header is checked
        self._have_header = False
        self.at_end: str | None = None

    # -- helpers ------------------------------------------------------------
    def seg_name(self, lsn: int) -> str:
        return segment_file_name(self._tli_for_names or 1, lsn // self.seg_size, self.seg_size)

    def _where(self, lsn: int) -> tuple[str, int]:
        return self.seg_name(lsn), lsn % self.seg_size

    def _record_error(self, msg: str, rec_lsn: int) -> InvalidRecord:
        seg, off = self._where(rec_lsn)
        return InvalidRecord(msg, lsn=rec_lsn, segment=seg, offset=off)

    def _page_error(self, msg: str, page_lsn: int) -> InvalidPageHeader:
        seg, off = self._where(page_lsn)
        return InvalidPageHeader(msg, lsn=page_lsn, segment=seg, offset=off)

    @property
    def major(self) -> int | None:
        """The PostgreSQL major whose WAL this is (by its page magic), once a page was read."""
        return XLOG_PAGE_MAGICS.get(self.magic) if self.magic is not None else None

    @property
    def in_record(self) -> bool:
        return self._total > 0

    def validate_page_header(self, page_lsn: int, page: bytes | memoryview) -> PageHeader:
        """XLogReaderValidatePageHeader."""
        hdr = parse_page_header(page)
        seg_off = page_lsn % self.seg_size
        if hdr.magic != self.magic:
            if self.magic is not None:
                raise self._page_error(f"invalid magic number {hdr.magic:04X} (this WAL is PostgreSQL "
                                       f"{self.major}'s: {self.magic:04X})", page_lsn)
            if hdr.magic not in XLOG_PAGE_MAGICS:
                raise self._page_error(f"invalid magic number {hdr.magic:04X} (not the WAL of "
                                       f"PostgreSQL 15, 16, 17 or 18)", page_lsn)
            self.magic = hdr.magic
        if hdr.info & ~XLP_ALL_FLAGS:
            raise self._page_error(f"invalid info bits {hdr.info:04X}", page_lsn)
        if hdr.info & XLP_LONG_HEADER:
            if self.sysid and hdr.sysid != self.sysid:
                raise self._page_error(
                    f"WAL file is from different database system: system identifier "
                    f"{hdr.sysid}, expected {self.sysid}",
                    page_lsn,
                )
            if hdr.seg_size != self.seg_size:
                raise self._page_error(
                    f"incorrect segment size {hdr.seg_size} in page header "
                    f"(reading with {self.seg_size})",
                    page_lsn,
                )
            if hdr.xlog_blcksz != XLOG_BLCKSZ:
                raise self._page_error(
                    f"incorrect XLOG_BLCKSZ {hdr.xlog_blcksz} in page header", page_lsn
                )
            self.sysid = self.sysid or hdr.sysid
        elif seg_off == 0:
            raise self._page_error(
                f"invalid info bits {hdr.info:04X}: first page of a segment lacks a long header",
                page_lsn,
            )
        if hdr.pageaddr != page_lsn:
            raise self._page_error(f"unexpected pageaddr {format_lsn(hdr.pageaddr)}", page_lsn)
        if page_lsn > self.latest_page:
            if hdr.tli < self.latest_tli:
                raise self._page_error(
                    f"out-of-sequence timeline ID {hdr.tli} (after {self.latest_tli})", page_lsn
                )
            self.latest_page = page_lsn
            self.latest_tli = hdr.tli
        return hdr

    def _check_header(self, rec_lsn: int, buf: bytes | memoryview, at: int) -> None:
        """ValidXLogRecordHeader of the header at ``buf[at:]`` (prev-link checked
        exactly once we are in sequence); keeps xl_info, xl_rmid and xl_crc."""
        tot_len, _xid, prev, info, rmid, crc = XLOG_RECORD.unpack_from(buf, at)
        if tot_len < SizeOfXLogRecord:
            raise self._record_error(
                f"invalid record length: wanted {SizeOfXLogRecord}, got {tot_len}", rec_lsn)
        if not rmgr_id_is_valid(rmid):
            raise self._record_error(f"invalid resource manager ID {rmid}", rec_lsn)
        if self.prev_lsn is None:
            if not prev < rec_lsn:
                raise self._record_error(f"record with incorrect prev-link {format_lsn(prev)}", rec_lsn)
        elif prev != self.prev_lsn:
            raise self._record_error(
                f"record with incorrect prev-link {format_lsn(prev)} "
                f"(previous record at {format_lsn(self.prev_lsn)})", rec_lsn)
        self._rec_hdr = (info, rmid, crc)

    def _finish(self, rec: bytes | memoryview, end_pos: int) -> RawRecord:
        """Verify the CRC of the whole record ``rec`` (its header checked already),
        compute EndRecPtr, advance to the next record."""
        lsn = self._rec_lsn
        info, rmid, crc = self._rec_hdr
        # CRC covers the payload first, then the header up to xl_crc (read in place)
        view = memoryview(rec)
        calc = _crc32c(view[:20], _crc32c(view[SizeOfXLogRecord:]))
        if calc != crc:
            raise self._crc_error(lsn, crc, calc)
        end = (end_pos + 7) & ~7  # MAXALIGN
        if rmid == RM_XLOG_ID and info & XLR_RMGR_INFO_MASK == XLOG_SWITCH:
            end = self._past_switch(end)
        self.prev_lsn = lsn
        self.next_rec = end
        self._parts.clear()
        self._got = self._total = 0
        self._have_header = False
        return _new_tuple(RawRecord, (lsn, end, bytes(rec)))

    def _past_switch(self, end: int) -> int:
        """Where the record after an XLOG_SWITCH record ending at ``end`` begins: the
        switch record is taken to extend to the end of its segment."""
        end += self.seg_size - 1
        return end - end % self.seg_size

    def _crc_error(self, lsn: int, stored: int, computed: int) -> CrcMismatch:
        seg, off = self._where(lsn)
        return CrcMismatch(
            f"incorrect resource manager data checksum in record: "
            f"stored {stored:08X}, computed {computed:08X}",
            lsn=lsn, segment=seg, offset=off,
        )

    def _record_on_page(self, page_lsn: int, page: bytes | memoryview, pos: int,
                        out: list[RawRecord]) -> bool:
        """The record beginning at ``page[pos:]`` (``next_rec``): appended to ``out``
        when whole on this page; False when the page holds no more records (the
        end of WAL, or this one continues on the next page)."""
        rec_lsn = self.next_rec
        tot_len = _U32.unpack_from(page, pos)[0]
        if tot_len == 0:
            self.at_end = f"zero record length at {format_lsn(rec_lsn)}"
            return False
        if tot_len > MAX_RECORD_LEN:
            raise self._record_error(f"record length {tot_len} too long", rec_lsn)
        avail = XLOG_BLCKSZ - pos
        self._rec_lsn = rec_lsn
        if avail >= SizeOfXLogRecord:
            self._check_header(rec_lsn, page, pos)
            self._have_header = True
        elif tot_len < SizeOfXLogRecord:
            raise self._record_error(
                f"invalid record length: wanted {SizeOfXLogRecord}, got {tot_len}", rec_lsn)
        if tot_len > avail:  # continues on the next page
            self._parts = [bytes(page[pos:])]
            self._got = avail
            self._total = tot_len
            self.next_page = page_lsn + XLOG_BLCKSZ
            return False
        rec = self._finish(page[pos : pos + tot_len], rec_lsn + tot_len)
        if rec.lsn >= self.start:
            out.append(rec)
        return True

    # -- the page loop ------------------------------------------------------
    def feed_page(self, page_lsn: int, page: bytes | memoryview) -> list[RawRecord]:
        """Consume the page at ``page_lsn`` (must equal ``next_page``).

        Returns the records completed on it. At a clean end of WAL (a zero
        record length where a record should begin) it sets ``at_end``.
        Anything malformed raises a WalError.
        """
        assert page_lsn == self.next_page, "pages must be fed in order"
        if len(page) != XLOG_BLCKSZ:
            seg, off = self._where(page_lsn)
            raise TruncatedWal(
                f"partial WAL page ({len(page)} of {XLOG_BLCKSZ} bytes)",
                lsn=page_lsn, segment=seg, offset=off,
            )
        hdr = self.validate_page_header(page_lsn, page)
        pos = hdr.size
        out: list[RawRecord] = []

        if self.in_record:
            if hdr.info & XLP_FIRST_IS_OVERWRITE_CONTRECORD:
                # the record we were assembling was never finished; a new one
                # (XLOG_OVERWRITE_CONTRECORD) starts here instead
                self._parts, self._got, self._total = [], 0, 0
                self.next_rec = page_lsn + pos
            else:
                if not hdr.info & XLP_FIRST_IS_CONTRECORD:
                    raise InvalidRecord(
                        "there is no contrecord flag", lsn=self._rec_lsn,
                        segment=self.seg_name(page_lsn), offset=page_lsn % self.seg_size,
                    )
                want = self._total - self._got
                if hdr.rem_len == 0 or hdr.rem_len != want:
                    raise InvalidRecord(
                        f"invalid contrecord length {hdr.rem_len} (expected {want})",
                        lsn=self._rec_lsn, segment=self.seg_name(page_lsn),
                        offset=page_lsn % self.seg_size,
                    )
                n = min(want, XLOG_BLCKSZ - pos)
                self._parts.append(bytes(page[pos : pos + n]))
                self._got += n
                if not self._have_header and self._got >= SizeOfXLogRecord:
                    self._check_header(self._rec_lsn, b"".join(self._parts), 0)
                    self._have_header = True
                pos += n
                if self._got == self._total:
                    rec = self._finish(b"".join(self._parts), page_lsn + pos)
                    if rec.lsn >= self.start:
                        out.append(rec)
                else:
                    self.next_page = page_lsn + XLOG_BLCKSZ
                    return out
        elif not self.synced:
            # looking for the first record boundary at or after ``start``
            if hdr.info & XLP_FIRST_IS_CONTRECORD:
                skip = maxalign(hdr.rem_len)
                if pos + skip >= XLOG_BLCKSZ:
                    self.next_page = page_lsn + XLOG_BLCKSZ
                    return out
                pos += skip
            self.synced = True
            self.next_rec = page_lsn + pos

        # records that begin on this page
        page_end, hdr_size = page_lsn + XLOG_BLCKSZ, hdr.size
        start, prev_lsn, next_rec = self.start, self.prev_lsn, self.next_rec
        view = memoryview(page)  # records are copied out of it once, checksummed in place
        while next_rec < page_end:
            pos = next_rec - page_lsn
            if pos < hdr_size:  # the previous record ended exactly at the page end
                pos = hdr_size
                next_rec = page_lsn + pos
            if pos <= XLOG_BLCKSZ - SizeOfXLogRecord:
                tot_len, _xid, prev, info, rmid, crc = _unpack_record_header(view, pos)
                end = pos + tot_len
                if (SizeOfXLogRecord <= tot_len and end <= XLOG_BLCKSZ and prev == prev_lsn
                        and (rmid <= RM_MAX_BUILTIN_ID or rmid >= RM_MIN_CUSTOM_ID)):
                    # the usual case: a whole record on this page, its header valid and
                    # in sequence (ValidXLogRecordHeader's checks, all passed); the CRC
                    # covers the payload, then the header up to xl_crc
                    calc = _crc32c(view[pos : pos + 20], _crc32c(view[pos + SizeOfXLogRecord : end]))
                    if calc != crc:
                        raise self._crc_error(next_rec, crc, calc)
                    lsn = prev_lsn = next_rec
                    next_rec = (page_lsn + end + 7) & ~7  # MAXALIGN
                    if rmid == RM_XLOG_ID and info & XLR_RMGR_INFO_MASK == XLOG_SWITCH:
                        next_rec = self._past_switch(next_rec)
                    if lsn >= start:
                        out.append(_new_tuple(RawRecord, (lsn, next_rec, view[pos:end].tobytes())))
                    continue
            # anything else (the first record, a record running onto the next page,
            # the end of WAL, a malformed header) the general way
            self.prev_lsn, self.next_rec = prev_lsn, next_rec
            if not self._record_on_page(page_lsn, page, pos, out):
                return out
            prev_lsn, next_rec = self.prev_lsn, self.next_rec
        self.prev_lsn, self.next_rec = prev_lsn, next_rec

        self.next_page = max(page_lsn + XLOG_BLCKSZ, self.next_rec - self.next_rec % XLOG_BLCKSZ)
        return out
