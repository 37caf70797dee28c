"""Read WAL from a directory of segment files (xlogreader.c's page reading, as
pg_waldump does it): segments found and opened in order, read a chunk at a time
(memory stays flat however many segments there are), fed to the pure
``RecordAssembler`` (pyredo.wal.assembler), each record decoded on the way out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pyredo.errors import (
    InvalidPageHeader,
    InvalidRecord,
    MissingSegment,
    TruncatedWal,
    WalError,
    format_lsn,
)
from pyredo.wal.assembler import (
    MAJOR_PAGE_MAGIC,
    VALID_SEG_SIZES,
    XLOG_BLCKSZ,
    XLOG_PAGE_MAGICS,
    XLP_LONG_HEADER,
    RawRecord,
    RecordAssembler,
    SizeOfXLogLongPHD,
    parse_page_header,
)
from pyredo.wal.decoder import decode_record
from pyredo.wal.lsn import parse_segment_file_name, segment_file_name
from pyredo.wal.record import DecodedXLogRecord


@dataclass(slots=True)
class WalDirectory:
    """A directory of WAL segment files of one timeline and segment size."""

    path: Path
    seg_size: int
    tli: int

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, start: int | None = None,
             tli: int | None = None, seg_size: int | None = None) -> WalDirectory:
        """Find the segment size (from a long page header) and timeline.

        The timeline defaults to the highest one holding the start segment (or,
        without a start, the highest one in the directory).
        """
        p = Path(path)
        if not p.is_dir():
            raise WalError(f"WAL directory {p} does not exist or is not a directory")
        names = sorted(n for n in os.listdir(p) if _looks_like_segment(n))
        if not names:
            raise MissingSegment(f"no WAL segment files in {p}")
        if seg_size is None:
            seg_size = _detect_seg_size(p, names, start)
        if tli is None:
            candidates = names
            if start is not None:
                segno = start // seg_size
                candidates = [n for n in names if parse_segment_file_name(n, seg_size)[1] == segno]
                if not candidates:
                    raise MissingSegment(
                        f"no WAL segment in {p} holds {format_lsn(start)}", lsn=start,
                        segment=segment_file_name(1, segno, seg_size),
                    )
            tli = max(parse_segment_file_name(n, seg_size)[0] for n in candidates)
        return cls(p, seg_size, tli)

    def segments(self) -> list[tuple[int, str]]:
        """(segno, name) of this timeline's segment files, in order."""
        out = []
        for n in os.listdir(self.path):
            if _looks_like_segment(n):
                t, segno = parse_segment_file_name(n, self.seg_size)
                if t == self.tli:
                    out.append((segno, n))
        return sorted(out)

    def first_lsn(self) -> int:
        segs = self.segments()
        if not segs:
            raise MissingSegment(f"no WAL segment of timeline {self.tli} in {self.path}")
        return segs[0][0] * self.seg_size

    def segment_path(self, segno: int) -> Path:
        return self.path / segment_file_name(self.tli, segno, self.seg_size)


def _looks_like_segment(name: str) -> bool:
    return len(name) == 24 and all(c in "0123456789ABCDEF" for c in name)


def _detect_seg_size(path: Path, names: list[str], start: int | None = None) -> int:
    for n in names:
        fp = path / n
        with open(fp, "rb") as f:
            head = f.read(SizeOfXLogLongPHD)
        if len(head) < SizeOfXLogLongPHD:
            continue
        hdr = parse_page_header(head)
        if hdr.magic in XLOG_PAGE_MAGICS and hdr.info & XLP_LONG_HEADER and hdr.seg_size in VALID_SEG_SIZES:
            return hdr.seg_size
    # fall back to the file size, as pg_waldump does for a full file
    size = (path / names[0]).stat().st_size
    if size in VALID_SEG_SIZES:
        return size
    raise InvalidPageHeader(
        f"cannot tell the WAL segment size: no valid long page header in {path}",
        lsn=start, segment=names[0], offset=0,
    )


_CHUNK_PAGES = 128  # read 1 MB at a time


class WalReader:
    """Iterate decoded records of a WAL directory from ``start`` up to ``end``.

    ``end=None`` reads to the end of valid WAL (a zero record length, the last
    segment file, or a recycled page at a record boundary); ``end_reason``
    then says which. With an ``end``, running out of WAL first is an error.
    """

    def __init__(
        self,
        waldir: str | os.PathLike[str] | WalDirectory,
        start: int | None = None,
        end: int | None = None,
        *,
        tli: int | None = None,
        major: int | None = None,
    ) -> None:
        self.dir = waldir if isinstance(waldir, WalDirectory) else WalDirectory.open(waldir, start=start, tli=tli)
        self.start = self.dir.first_lsn() if start is None else start
        self.end = end
        self.end_reason: str | None = None
        self.bytes_read = 0
        self._asm = RecordAssembler(self.dir.seg_size, self.start, tli=self.dir.tli,
                                    magic=MAJOR_PAGE_MAGIC[major] if major is not None else None)

    @property
    def major(self) -> int | None:
        """The PostgreSQL major of the WAL (its page magic), known once the first page is read."""
        return self._asm.major

    def __iter__(self) -> Iterator[DecodedXLogRecord]:
        for batch in self._batches():
            for lsn, end_lsn, data in batch:  # RawRecord
                try:
                    rec = decode_record(data, lsn, end_lsn)
                except InvalidRecord as e:  # say in which file, now that it is needed
                    e.segment, e.offset = self._asm._where(lsn)
                    e.args = (str(e),)
                    raise
                yield rec

    def raw_records(self) -> Iterator[RawRecord]:
        """Whole records, CRC-checked, not yet decoded."""
        for batch in self._batches():
            yield from batch

    def _batches(self) -> Iterator[list[RawRecord]]:
        """The records completed on each page (a list per page), in order, up to ``end``."""
        asm = self._asm
        end = self.end
        pages = _PageSource(self)
        try:
            while True:
                page_lsn = asm.next_page
                if end is not None and page_lsn >= end and not asm.in_record:
                    self.end_reason = "end LSN reached"
                    return
                page = pages.get(page_lsn)
                if page is None:  # a clean end: no more segment files at a record boundary
                    return
                try:
                    records = asm.feed_page(page_lsn, page)
                except InvalidPageHeader as e:
                    # a recycled page right after the last record is the normal end of WAL
                    if end is None and not asm.in_record and asm.synced and "pageaddr" in e.message:
                        self.end_reason = f"recycled page at {format_lsn(page_lsn)}"
                        return
                    raise
                if end is not None and records and records[-1].lsn >= end:
                    yield [rec for rec in records if rec.lsn < end]  # LSN order: a prefix
                    self.end_reason = "end LSN reached"
                    return
                yield records
                if asm.at_end is not None:
                    if end is not None and asm.next_rec < end:
                        seg, off = asm._where(asm.next_rec)
                        raise TruncatedWal(
                            f"WAL ends ({asm.at_end}) before the end LSN {format_lsn(end)}",
                            lsn=asm.next_rec, segment=seg, offset=off,
                        )
                    self.end_reason = asm.at_end
                    return
        finally:
            pages.close()


class _PageSource:
    """Reads WAL pages from segment files a chunk at a time (one file open at once)."""

    def __init__(self, reader: WalReader) -> None:
        self.reader = reader
        self.seg_size = reader.dir.seg_size
        self.segno = -1
        self.file: BinaryIO | None = None
        self.buf = memoryview(b"")
        self.buf_start = 0

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    def _open(self, segno: int, page_lsn: int) -> bool:
        self.close()
        asm = self.reader._asm
        path = self.reader.dir.segment_path(segno)
        try:
            self.file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        except FileNotFoundError:
            if asm.in_record or self.reader.end is not None:
                raise MissingSegment(
                    f"WAL segment {path.name} is missing",
                    lsn=asm._rec_lsn if asm.in_record else page_lsn, segment=path.name, offset=0,
                ) from None
            self.reader.end_reason = f"no segment file {path.name}"
            return False
        self.segno = segno
        return True

    def get(self, page_lsn: int) -> memoryview | None:
        """The page at ``page_lsn``; None at a clean end of the WAL files."""
        rel = page_lsn - self.buf_start
        if rel >= 0 and rel + XLOG_BLCKSZ <= len(self.buf):
            return self.buf[rel : rel + XLOG_BLCKSZ]
        segno = page_lsn // self.seg_size
        if (segno != self.segno or self.file is None) and not self._open(segno, page_lsn):
            return None
        assert self.file is not None
        off = page_lsn % self.seg_size
        self.file.seek(off)
        self.buf = memoryview(self.file.read(min(_CHUNK_PAGES * XLOG_BLCKSZ, self.seg_size - off)))
        self.buf_start = page_lsn
        self.reader.bytes_read += len(self.buf)
        if len(self.buf) >= XLOG_BLCKSZ:
            return self.buf[:XLOG_BLCKSZ]
        asm = self.reader._asm
        name = self.reader.dir.segment_path(segno).name
        if not asm.in_record and self.reader.end is None and len(self.buf) == 0:
            self.reader.end_reason = f"end of segment file {name}"
            return None
        raise TruncatedWal(
            f"WAL segment {name} ends at offset {off + len(self.buf)}, inside the page at {format_lsn(page_lsn)}",
            lsn=asm._rec_lsn if asm.in_record else page_lsn, segment=name, offset=off + len(self.buf),
        )


def read_records(
    waldir: str | os.PathLike[str], start: int | None = None, end: int | None = None
) -> Iterator[DecodedXLogRecord]:
    """Convenience: decoded records of ``waldir`` in [start, end)."""
    return iter(WalReader(waldir, start, end))
