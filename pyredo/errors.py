"""Typed errors of the redo engine and the WAL reader.

Every error carries where it happened (LSN, WAL file and offset, rmgr/info,
block) so a report can name it; ``str()`` prints all that is known.
"""

from __future__ import annotations


def format_lsn(lsn: int) -> str:
    """An LSN the way PostgreSQL prints it: ``%X/%X``."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


class PyredoError(Exception):
    """Base of every error raised by pyredo."""


class WalError(PyredoError):
    """Bad or unreadable WAL. ``lsn``, ``segment`` (file name) and ``offset``
    (byte offset in that file) name the spot where known."""

    def __init__(
        self,
        message: str,
        *,
        lsn: int | None = None,
        segment: str | None = None,
        offset: int | None = None,
    ) -> None:
        self.message = message
        self.lsn = lsn
        self.segment = segment
        self.offset = offset
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = []
        if self.lsn is not None:
            where.append(f"at {format_lsn(self.lsn)}")
        if self.segment is not None:
            loc = f"in {self.segment}"
            if self.offset is not None:
                loc += f" offset {self.offset}"
            where.append(loc)
        return f"{self.message} ({', '.join(where)})" if where else self.message


class InvalidPageHeader(WalError):
    """A WAL page header is wrong: magic, info bits, pageaddr, timeline, long header."""


class InvalidRecord(WalError):
    """A record header or record body is malformed (length, rmgr, block headers)."""


class CrcMismatch(InvalidRecord):
    """The record's CRC-32C does not match its contents."""


class TruncatedWal(WalError):
    """The WAL ends (file truncated or missing) in the middle of a record or page."""


class MissingSegment(TruncatedWal):
    """A WAL segment needed to continue reading is not there."""


class ImageError(WalError):
    """A full-page image cannot be restored (bad compression payload, bad hole)."""


class RedoError(PyredoError):
    """A redo routine failed on a record: names rmgr, info, LSN and block."""

    def __init__(
        self,
        message: str,
        *,
        rmgr: str | None = None,
        info: int | None = None,
        lsn: int | None = None,
        block_id: int | None = None,
    ) -> None:
        self.message = message
        self.rmgr = rmgr
        self.info = info
        self.lsn = lsn
        self.block_id = block_id
        super().__init__(self.__str__())

    def locate(self, *, rmgr: str | None = None, info: int | None = None, lsn: int | None = None,
               block_id: int | None = None) -> None:
        """Fill in where it happened (fields already known are kept)."""
        if self.rmgr is None:
            self.rmgr = rmgr
        if self.info is None:
            self.info = info
        if self.lsn is None:
            self.lsn = lsn
        if self.block_id is None:
            self.block_id = block_id
        self.args = (self.__str__(),)

    def __str__(self) -> str:
        parts = []
        if self.rmgr is not None:
            parts.append(f"rmgr {self.rmgr}")
        if self.info is not None:
            parts.append(f"info 0x{self.info:02X}")
        if self.lsn is not None:
            parts.append(f"lsn {format_lsn(self.lsn)}")
        if self.block_id is not None:
            parts.append(f"block {self.block_id}")
        return f"{self.message} ({', '.join(parts)})" if parts else self.message


class UnsupportedRecord(RedoError):
    """pyredo does not implement redo for this (rmgr, info): never skipped silently."""

    def __init__(self, rmgr: str, info: int, lsn: int | None = None, *,
                 major: int | None = None) -> None:
        version = f" in PostgreSQL {major}'s redo" if major is not None else ""
        super().__init__(f"unsupported record {rmgr} info 0x{info:02X}{version}", rmgr=rmgr,
                         info=info, lsn=lsn)
        self.major = major
