"""The wal-redo protocol as a pure codec: bytes in, messages out, and back.

Nothing here touches a pipe or a process (h11-style, see STYLE.md); the
process layer is ``oracles.walredo``. The protocol is the one Neon's
pageserver speaks to ``postgres --wal-redo`` over the child's stdin/stdout:

=====  ===============================================  ============
msg    payload                                          reply
=====  ===============================================  ============
``B``  BufferTag                                        --
``P``  BufferTag + 8192-byte page                       --
``A``  u64 BE end LSN, then the raw XLogRecord          --
``G``  BufferTag                                        8192 bytes
``H``  8192 zero bytes (ping, newer servers)            8192 bytes
=====  ===============================================  ============

Each message is 1 type byte, an int32 big-endian length that counts itself
but not the type byte, then the payload. The raw XLogRecord stays exactly as
in WAL (little-endian, reassembled across WAL pages).

Two BufferTag layouts exist:

* ``"neon"`` (current Neon): forknum u8, then spcOid, dbOid, relNumber,
  blkno as u32 BE -- 17 bytes, so a ``B`` message's length field is
  4 + 17 = 21 (Neon writes it as ``4 + 1 + 4 * 4``);
* ``"old"`` (early Neon, the seed client): spc, db, rel, forknum, blkno as
  5 x u32 BE -- 20 bytes, length field 24.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pyredo.wal.record import BufferTag

__all__ = [
    "BLCKSZ",
    "MSG_APPLY",
    "MSG_BEGIN",
    "MSG_GET_PAGE",
    "MSG_PING",
    "MSG_PUSH_PAGE",
    "PING_PAYLOAD",
    "TAG_LAYOUTS",
    "Message",
    "MessageReader",
    "ProtocolError",
    "RecordLike",
    "Request",
    "TagLayout",
    "apply_msg",
    "begin_msg",
    "build_request",
    "decode_tag",
    "encode_tag",
    "get_page_msg",
    "parse_request",
    "ping_msg",
    "push_page_msg",
    "tag_size",
]

BLCKSZ = 8192

MSG_BEGIN = b"B"
MSG_PUSH_PAGE = b"P"
MSG_APPLY = b"A"
MSG_GET_PAGE = b"G"
MSG_PING = b"H"
_KNOWN_TYPES = frozenset(b"BPAGH")

PING_PAYLOAD = bytes(BLCKSZ)

TagLayout = Literal["neon", "old"]
TAG_LAYOUTS: tuple[TagLayout, ...] = ("neon", "old")

_NEON_TAG = struct.Struct(">BIIII")  # forknum u8, spc, db, rel, blkno
_OLD_TAG = struct.Struct(">IIIII")  # spc, db, rel, forknum, blkno
_HEADER = struct.Struct(">cI")  # type byte, length (counts itself)
_APPLY_HEADER = struct.Struct(">cIQ")  # 'A', length, end LSN: what precedes the record
_LSN = struct.Struct(">Q")
_U32_MAX = 0xFFFFFFFF
# A record is at most ~1 GB (XLogRecordMaxSize); anything longer is garbage.
MAX_MESSAGE_LEN = 0x40000000 + 64


class ProtocolError(ValueError):
    """Bytes that are not a well-formed wal-redo message (or a message that
    cannot be encoded). ``offset`` is where in the input it went wrong."""

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        self.message = message
        self.offset = offset
        super().__init__(message if offset is None else f"{message} (at byte {offset})")


class RecordLike(Protocol):
    """What a request needs of a record: ``DecodedXLogRecord`` fits."""

    @property
    def end_lsn(self) -> int: ...

    @property
    def raw(self) -> bytes: ...


# -- BufferTag -------------------------------------------------------------------
def tag_size(layout: TagLayout) -> int:
    """Bytes a BufferTag takes on the wire in ``layout``."""
    if layout == "neon":
        return _NEON_TAG.size
    if layout == "old":
        return _OLD_TAG.size
    raise ProtocolError(f"unknown BufferTag layout {layout!r} (expected one of {TAG_LAYOUTS})")


def encode_tag(tag: BufferTag, layout: TagLayout = "neon") -> bytes:
    """A BufferTag in the chosen wire layout."""
    spc, db, rel, fork, blk = tag
    for name, v in (("spc", spc), ("db", db), ("rel", rel), ("blk", blk), ("fork", fork)):
        if not 0 <= v <= _U32_MAX:
            raise ProtocolError(f"BufferTag field {name}={v} does not fit in 32 bits")
    if layout == "neon":
        if fork > 0xFF:
            raise ProtocolError(f"fork number {fork} does not fit in one byte")
        return _NEON_TAG.pack(fork, spc, db, rel, blk)
    if layout == "old":
        return _OLD_TAG.pack(spc, db, rel, fork, blk)
    raise ProtocolError(f"unknown BufferTag layout {layout!r} (expected one of {TAG_LAYOUTS})")


def decode_tag(data: bytes | memoryview, layout: TagLayout = "neon") -> BufferTag:
    """Inverse of ``encode_tag``; ``data`` must be exactly one tag."""
    if len(data) != tag_size(layout):
        raise ProtocolError(f"a {layout} BufferTag is {tag_size(layout)} bytes, got {len(data)}")
    if layout == "neon":
        fork, spc, db, rel, blk = _NEON_TAG.unpack(data)
    else:
        spc, db, rel, fork, blk = _OLD_TAG.unpack(data)
    return BufferTag(spc, db, rel, fork, blk)


# -- messages --------------------------------------------------------------------
def _frame(msg_type: bytes, *parts: bytes) -> bytes:
    length = 4 + sum(len(p) for p in parts)
    if length > MAX_MESSAGE_LEN:
        raise ProtocolError(f"'{msg_type.decode()}' message of {length} bytes is too long")
    return b"".join((_HEADER.pack(msg_type, length), *parts))


def begin_msg(tag: BufferTag, layout: TagLayout = "neon") -> bytes:
    """``B``: begin redo for one block."""
    return _frame(MSG_BEGIN, encode_tag(tag, layout))


def push_page_msg(tag: BufferTag, page: bytes, layout: TagLayout = "neon") -> bytes:
    """``P``: the base page of the block."""
    if len(page) != BLCKSZ:
        raise ProtocolError(f"a page is {BLCKSZ} bytes, got {len(page)}")
    return _frame(MSG_PUSH_PAGE, encode_tag(tag, layout), bytes(page))


def apply_msg(end_lsn: int, raw_record: bytes) -> bytes:
    """``A``: one WAL record, with the LSN where the next record starts (EndRecPtr)."""
    if not 0 <= end_lsn <= 0xFFFFFFFFFFFFFFFF:
        raise ProtocolError(f"end LSN {end_lsn} does not fit in 64 bits")
    return _frame(MSG_APPLY, _LSN.pack(end_lsn), bytes(raw_record))


def get_page_msg(tag: BufferTag, layout: TagLayout = "neon") -> bytes:
    """``G``: send the page back (the reply is 8192 bytes)."""
    return _frame(MSG_GET_PAGE, encode_tag(tag, layout))


def ping_msg() -> bytes:
    """``H``: a ping; the reply is 8192 bytes."""
    return _frame(MSG_PING, PING_PAYLOAD)


def build_request(
    tag: BufferTag,
    base_page: bytes | None,
    records: Iterable[RecordLike],
    layout: TagLayout = "neon",
) -> bytes:
    """One request as a single blob: ``B``, ``P`` when there is a base page,
    one ``A`` per record (in the order given), ``G``."""
    parts = [begin_msg(tag, layout)]
    if base_page is not None:
        parts.append(push_page_msg(tag, base_page, layout))
    # the 'A' messages, as apply_msg makes them, in one pass (the hot path of a check)
    pack = _APPLY_HEADER.pack
    room = MAX_MESSAGE_LEN - 12
    for r in records:
        raw, end_lsn = r.raw, r.end_lsn
        if len(raw) > room or not 0 <= end_lsn <= 0xFFFFFFFFFFFFFFFF:
            parts.append(apply_msg(end_lsn, raw))  # raises the ProtocolError
        parts.append(pack(MSG_APPLY, 12 + len(raw), end_lsn))
        parts.append(raw)
    parts.append(get_page_msg(tag, layout))
    return b"".join(parts)


# -- decoding (for tests, fakes and reading back a saved request) -----------------
@dataclass(frozen=True, slots=True)
class Message:
    """One decoded message. ``tag`` for B/P/G, ``page`` for P and H,
    ``end_lsn`` and ``record`` for A."""

    type: str
    payload: bytes
    tag: BufferTag | None = None
    page: bytes | None = None
    end_lsn: int | None = None
    record: bytes | None = None


class MessageReader:
    """Incremental decoder: ``feed`` bytes, then ``next_message`` until it
    returns None ("need more data"). Malformed input raises ProtocolError."""

    def __init__(self, layout: TagLayout = "neon") -> None:
        tag_size(layout)  # validate
        self.layout: TagLayout = layout
        self._buf = bytearray()
        self._consumed = 0  # bytes of input fully decoded so far

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def pending(self) -> int:
        """Bytes buffered that do not yet make a whole message."""
        return len(self._buf)

    def next_message(self) -> Message | None:
        buf = self._buf
        if len(buf) < _HEADER.size:
            return None
        type_byte = buf[0]
        (length,) = struct.unpack_from(">I", buf, 1)
        if type_byte not in _KNOWN_TYPES:
            raise ProtocolError(f"unknown message type 0x{type_byte:02X}", offset=self._consumed)
        if length < 4 or length > MAX_MESSAGE_LEN:
            raise ProtocolError(f"invalid message length {length}", offset=self._consumed + 1)
        if len(buf) < 1 + length:
            return None
        payload = bytes(buf[_HEADER.size : 1 + length])
        del buf[: 1 + length]
        start = self._consumed
        self._consumed += 1 + length
        return self._decode(chr(type_byte), payload, start)

    def __iter__(self) -> Iterator[Message]:
        while (m := self.next_message()) is not None:
            yield m

    def _decode(self, t: str, payload: bytes, offset: int) -> Message:
        ts = tag_size(self.layout)
        try:
            if t in "BG":
                return Message(t, payload, tag=decode_tag(payload, self.layout))
            if t == "P":
                if len(payload) != ts + BLCKSZ:
                    raise ProtocolError(f"'P' payload is {len(payload)} bytes, not {ts + BLCKSZ}")
                return Message(t, payload, tag=decode_tag(payload[:ts], self.layout),
                               page=payload[ts:])
            if t == "A":
                if len(payload) < _LSN.size:
                    raise ProtocolError("'A' payload too short for an LSN")
                (lsn,) = _LSN.unpack_from(payload)
                return Message(t, payload, end_lsn=lsn, record=payload[_LSN.size :])
            if len(payload) != BLCKSZ:  # H
                raise ProtocolError(f"'H' payload is {len(payload)} bytes, not {BLCKSZ}")
            return Message(t, payload, page=payload)
        except ProtocolError as e:
            raise ProtocolError(e.message, offset=offset) from None


@dataclass(slots=True)
class Request:
    """A request read back from bytes (e.g. the one saved in a bundle)."""

    tag: BufferTag
    base_page: bytes | None
    records: list[tuple[int, bytes]] = field(default_factory=list)  # (end_lsn, raw)


def parse_request(data: bytes, layout: TagLayout = "neon") -> Request:
    """Decode one whole request blob made by ``build_request``."""
    reader = MessageReader(layout)
    reader.feed(data)
    msgs = list(reader)
    if reader.pending:
        raise ProtocolError(f"{reader.pending} trailing bytes after the last whole message")
    if not msgs or msgs[0].type != "B":
        raise ProtocolError("a request starts with 'B'")
    if msgs[-1].type != "G":
        raise ProtocolError("a request ends with 'G'")
    tag = msgs[0].tag
    assert tag is not None
    base: bytes | None = None
    records: list[tuple[int, bytes]] = []
    for i, m in enumerate(msgs[1:-1], start=1):
        if m.type == "P" and i == 1:
            base = m.page
        elif m.type == "A":
            assert m.end_lsn is not None and m.record is not None
            records.append((m.end_lsn, m.record))
        else:
            raise ProtocolError(f"unexpected '{m.type}' message at position {i} of a request")
        if m.tag is not None and m.tag != tag:
            raise ProtocolError(f"'{m.type}' names {m.tag}, the request is for {tag}")
    if msgs[-1].tag != tag:
        raise ProtocolError(f"'G' names {msgs[-1].tag}, the request is for {tag}")
    return Request(tag, base, records)
