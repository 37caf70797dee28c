"""What every redo routine shares (xlogutils.c): reading a block for redo, and
the record's data.

``RedoContext`` owns the step every redo routine shares
(XLogReadBufferForRedoExtended): restore a block image when the record says to
apply it, zero the page for WILL_INIT, skip the record when the page LSN is
already at or past it. The engine (``pyredo.engine``) stamps the record's end
LSN on the page after a routine changed it. A routine (``pyredo.rmgr.*``) only
changes the page.

Like a wal-redo server, the engine rebuilds a single target block: a routine
asks the context for each block it would touch, and only the target's page
comes back; every other block is skipped.

``RecordCursor`` is the one reader of record data (main data, block data, and
the SLRU records of ``pyredo.slru``): every read is bounds-checked, and a short
record raises a typed error that says what was being read.

Errors are located in ONE place: a ``RedoError`` raised while a routine runs
(by a page helper that does not know the record, or by the context) gets the
record's rmgr, info and LSN from ``RedoContext.locate`` — and, when it came from
a page helper, the block whose page the routine holds.

This module imports no rmgr module and no table: rmgr modules import it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from typing import Any, Protocol

from pyredo import BLCKSZ
from pyredo.errors import ImageError, PyredoError, RedoError
from pyredo.page import bufpage
from pyredo.page.bufpage import OFF_LSN, OFF_UPPER
from pyredo.wal.image import restore_block_image as _restore_block_image
from pyredo.wal.record import (
    BKPBLOCK_WILL_INIT,
    VISIBILITYMAP_FORKNUM,
    BufferTag,
    DecodedBkpBlock,
    DecodedXLogRecord,
    RelFileNode,
)

__all__ = [
    "RBM_NORMAL",
    "RBM_ZERO_AND_CLEANUP_LOCK",
    "RBM_ZERO_AND_LOCK",
    "RBM_ZERO_ON_ERROR",
    "BlkAction",
    "ReadBufferMode",
    "RecordCursor",
    "RedoContext",
    "RedoFn",
    "RedoSettings",
]


class BlkAction(Enum):
    """xlogutils.h XLogRedoAction, plus NOT_TARGET for blocks this engine skips."""

    BLK_NEEDS_REDO = "needs_redo"
    BLK_DONE = "done"
    BLK_RESTORED = "restored"
    BLK_NOTFOUND = "notfound"
    NOT_TARGET = "not_target"


class ReadBufferMode(Enum):
    """bufmgr.h ReadBufferMode (the ones redo uses)."""

    RBM_NORMAL = "normal"
    RBM_ZERO_AND_LOCK = "zero_and_lock"
    RBM_ZERO_AND_CLEANUP_LOCK = "zero_and_cleanup_lock"
    RBM_ZERO_ON_ERROR = "zero_on_error"


RBM_NORMAL = ReadBufferMode.RBM_NORMAL
RBM_ZERO_AND_LOCK = ReadBufferMode.RBM_ZERO_AND_LOCK
RBM_ZERO_AND_CLEANUP_LOCK = ReadBufferMode.RBM_ZERO_AND_CLEANUP_LOCK
RBM_ZERO_ON_ERROR = ReadBufferMode.RBM_ZERO_ON_ERROR
_ZERO_MODES = (RBM_ZERO_AND_LOCK, RBM_ZERO_AND_CLEANUP_LOCK)

_BLOCK_DATA = tuple(f"block {i} data" for i in range(33))  # a cursor's source, by block_id
_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_PAGE_LSN = struct.Struct("<II")  # pd_lsn: xlogid, xrecoff
_new_object = object.__new__


class RecordCursor:
    """A bounds-checked reader over record data, advancing the way a C routine
    advances its ``ptr``.

    ``source`` names the data in errors ("main data", "block 1 data", "ZEROPAGE
    record: main data"); ``error`` builds the exception a short read raises (a
    RedoError by default; the context passes one that names the record). A
    short read never becomes an IndexError or struct.error.
    """

    __slots__ = ("_error", "data", "pos", "source")

    def __init__(self, data: bytes | bytearray | memoryview, source: str = "main data", *,
                 error: Callable[[str], PyredoError] | None = None) -> None:
        self.data = data if type(data) is bytes else bytes(data)
        self.pos = 0
        self.source = source
        self._error: Callable[[str], PyredoError] = error if error is not None else RedoError

    def __len__(self) -> int:
        return len(self.data)

    def __bytes__(self) -> bytes:
        return self.data

    def error(self, message: str) -> PyredoError:
        """The error this cursor raises (typed and, from a context, located)."""
        return self._error(message)

    def need(self, n: int, what: str, *, at: int | None = None) -> None:
        """``n`` bytes must be there at ``at`` (default: the current position)."""
        pos = self.pos if at is None else at
        if n < 0 or pos < 0 or pos + n > len(self.data):
            have = max(len(self.data) - pos, 0)
            raise self._error(f"{self.source} too short: {what} needs {n} bytes at offset "
                              f"{pos} of {len(self.data)}; {what} is {have} bytes")

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    @property
    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def seek(self, pos: int) -> RecordCursor:
        """Move to ``pos`` (checked on the next read); returns self."""
        self.pos = pos
        return self

    def skip(self, n: int, what: str) -> None:
        self.need(n, what)
        self.pos += n

    def unpack(self, st: struct.Struct, what: str, *, size: int | None = None) -> tuple[Any, ...]:
        """The struct at the current position. ``size`` < ``st.size`` reads a
        struct whose tail padding is not logged (the rest reads as zeros)."""
        pos = self.pos
        if size is None and pos >= 0 and pos + st.size <= len(self.data):  # the common case, checked inline
            self.pos = pos + st.size
            return st.unpack_from(self.data, pos)
        need = st.size if size is None else size
        self.need(need, what)
        if need < st.size:
            raw = self.data[self.pos : self.pos + need] + bytes(st.size - need)
            out = st.unpack(raw)
        else:
            out = st.unpack_from(self.data, self.pos)
        self.pos += need
        return tuple(out)

    def peek(self, st: struct.Struct, what: str, *, at: int | None = None) -> tuple[Any, ...]:
        """The struct at ``at`` (default: the current position), without moving."""
        pos = self.pos if at is None else at
        self.need(st.size, what, at=pos)
        return tuple(st.unpack_from(self.data, pos))

    def u8(self, what: str) -> int:
        return int(self.unpack(_U8, what)[0])

    def u16(self, what: str) -> int:
        return int(self.unpack(_U16, what)[0])

    def u32(self, what: str) -> int:
        return int(self.unpack(_U32, what)[0])

    def i32(self, what: str) -> int:
        return int(self.unpack(_I32, what)[0])

    def u16_array(self, n: int, what: str) -> list[int]:
        """``n`` uint16 (OffsetNumber) values."""
        self.need(2 * n, what)
        out = [int(v[0]) for v in _U16.iter_unpack(self.data[self.pos : self.pos + 2 * n])]
        self.pos += 2 * n
        return out

    def count(self, what: str, item_size: int) -> int:
        """An ``int`` element count followed by that many items: checked against
        the bytes left so a bogus count cannot make us read past them."""
        n = self.i32(what)
        if n < 0:
            raise self._error(f"{self.source}: negative {what} ({n})")
        self.need(n * item_size, f"{n} {what} items")
        return n

    def take(self, n: int, what: str) -> bytes:
        """The next ``n`` bytes."""
        self.need(n, what)
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def rest(self) -> bytes:
        """Everything from the current position to the end."""
        out = self.data[self.pos :]
        self.pos = len(self.data)
        return out


class RedoSettings(Protocol):
    """What a routine may ask of the engine that runs it."""

    @property
    def hint_bits_logged(self) -> bool: ...

    def redo_is_before(self, version_num: int) -> bool: ...

    def rmgr_name(self, rmid: int) -> str: ...


RestoreBlockImage = Callable[[DecodedBkpBlock, int], bytes]


class RedoContext:
    """What a redo routine sees: the record, and the target page when it needs redo.

    ``page`` is the target page as a bytearray (zeros when the block does not
    exist yet, as a wal-redo server sees a block it was not given).
    """

    __slots__ = ("_in_hand", "_lsn_kept", "actions", "engine", "lsn", "page", "record", "tag")

    def __init__(
        self, engine: RedoSettings, record: DecodedXLogRecord, tag: BufferTag, page: bytearray
    ) -> None:
        self.engine = engine
        self.record = record
        self.tag = tag
        self.page = page
        self.lsn = record.end_lsn  # what PageSetLSN stamps: the record's EndRecPtr
        self.actions: dict[int, BlkAction] = {}
        self._lsn_kept = False
        self._in_hand: int | None = None  # block_id of the target page a routine holds

    # -- XLogReadBufferForRedo and friends ---------------------------------------
    def _block(self, block_id: int) -> DecodedBkpBlock:
        blk = self.record.blocks.get(block_id)
        if blk is None:
            raise self.error(f"failed to locate backup block with ID {block_id} in WAL record",
                             block_id=block_id)
        return blk

    def block_tag(self, block_id: int) -> BufferTag:
        """XLogRecGetBlockTag: the block the record names as ``block_id`` (an error,
        as in C, when it names none)."""
        blk = self.record.blocks.get(block_id)
        return (blk if blk is not None else self._block(block_id)).tag

    def is_target(self, block_id: int) -> bool:
        blk = self.record.blocks.get(block_id)
        return blk is not None and blk.tag == self.tag

    def read_buffer_for_redo(
        self,
        block_id: int,
        mode: ReadBufferMode = RBM_NORMAL,
        *,
        get_cleanup_lock: bool = False,
    ) -> bytearray | None:
        """XLogReadBufferForRedoExtended: the target page when it needs redo, else None.

        The action taken is kept in ``actions[block_id]`` for routines that
        branch on it (BLK_RESTORED, BLK_DONE ...).
        """
        blk = self.record.blocks.get(block_id)
        if blk is None:
            blk = self._block(block_id)  # raises
        if blk.tag != self.tag:
            self.actions[block_id] = BlkAction.NOT_TARGET
            return None
        self._in_hand = block_id
        zeromode = mode is not RBM_NORMAL and mode in _ZERO_MODES
        will_init = blk.flags & BKPBLOCK_WILL_INIT != 0
        if will_init and not zeromode:
            raise self.error("block with WILL_INIT flag in WAL record must be zeroed by redo routine",
                             block_id=block_id)
        if not will_init and zeromode:
            raise self.error("block to be initialized in redo routine must be marked with "
                             "WILL_INIT flag in the WAL record", block_id=block_id)
        if blk.apply_image:
            self._restore_image(blk, _restore_block_image)
            self.actions[block_id] = BlkAction.BLK_RESTORED
            return None
        page = self.page
        if zeromode:
            page[:] = bytes(BLCKSZ)
        elif mode is RBM_NORMAL and not (page[OFF_UPPER] or page[OFF_UPPER + 1]):  # PageIsNew
            # XLogReadBufferExtended: an uninitialized page counts as missing
            self.actions[block_id] = BlkAction.BLK_NOTFOUND
            return None
        hi, lo = _PAGE_LSN.unpack_from(page, OFF_LSN)  # PageGetLSN, inline: once per record
        if self.lsn <= (hi << 32) | lo:
            self.actions[block_id] = BlkAction.BLK_DONE
            return None
        self.actions[block_id] = BlkAction.BLK_NEEDS_REDO
        return page

    def init_buffer_for_redo(self, block_id: int) -> bytearray | None:
        """XLogInitBufferForRedo: the target page, zeroed, when ``block_id`` is the target."""
        return self.read_buffer_for_redo(block_id, RBM_ZERO_AND_LOCK)

    def _restore_image(self, blk: DecodedBkpBlock, restore_block_image: RestoreBlockImage) -> None:
        try:
            image = restore_block_image(blk, self.record.lsn)
        except ImageError as e:
            raise self.error(f"could not restore image: {e.message}", block_id=blk.block_id) from e
        self.page[:] = image
        if not bufpage.PageIsNew(self.page):
            bufpage.PageSetLSN(self.page, self.lsn)

    def restore_image_if_target(
        self, block_id: int, *, restore_block_image: RestoreBlockImage = _restore_block_image
    ) -> BlkAction:
        """For records that carry only images (XLOG_FPI): restore when ours.
        ``restore_block_image`` is wal/image.py's unless a caller passes another."""
        blk = self._block(block_id)
        if blk.tag != self.tag:
            self.actions[block_id] = BlkAction.NOT_TARGET
            return BlkAction.NOT_TARGET
        self._in_hand = block_id
        if not blk.has_image:
            raise self.error("image record without an image", block_id=block_id)
        self._restore_image(blk, restore_block_image)
        self.actions[block_id] = BlkAction.BLK_RESTORED
        return BlkAction.BLK_RESTORED

    def keep_page_lsn(self) -> None:
        """The routine's C twin does not PageSetLSN on this path (e.g. heap
        VISIBLE without wal_log_hints): the engine then leaves the LSN alone."""
        self._lsn_kept = True

    @property
    def lsn_kept(self) -> bool:
        return self._lsn_kept

    # -- pages a record changes without naming them --------------------------------
    def visibilitymap_clear(self, rnode: RelFileNode, heap_blk: int, flags: int) -> None:
        """visibilitymap_pin + visibilitymap_clear from a heap record's
        ALL_VISIBLE_CLEARED flags: applied when the target is the VM page
        covering ``heap_blk``. No LSN check and no LSN stamp, as in C."""
        from pyredo.page import visibilitymap

        t = self.tag
        if (
            t.fork == VISIBILITYMAP_FORKNUM
            and (t.spc, t.db, t.rel) == rnode
            and t.blk == visibilitymap.HEAPBLK_TO_MAPBLOCK(heap_blk)
        ):
            visibilitymap.visibilitymap_clear(self.page, heap_blk, flags)

    # -- the record's data --------------------------------------------------------------
    def main_data(self) -> RecordCursor:
        """XLogRecGetData, as a cursor (raw bytes: ``record.main_data``)."""
        return _record_cursor(self.record.main_data, "main data", self.error)

    def main_struct(self, st: struct.Struct, what: str, *, size: int | None = None) -> tuple[Any, ...]:
        """The main data read as the struct ``st`` (C: ``(xl_heap_insert *) XLogRecGetData(record)``),
        without a cursor; a short record raises what ``main_data().unpack`` raises."""
        data = self.record.main_data
        if size is None and len(data) >= st.size:
            return st.unpack_from(data)
        return self.main_data().unpack(st, what, size=size)

    def block_data(self, block_id: int) -> RecordCursor:
        """XLogRecGetBlockData, as a cursor (raw bytes: ``record.block_data(id)``)."""

        def error(message: str) -> RedoError:
            return self.error(message, block_id=block_id)

        blk = self.record.blocks.get(block_id)
        source = _BLOCK_DATA[block_id] if 0 <= block_id < len(_BLOCK_DATA) else f"block {block_id} data"
        return _record_cursor(blk.data if blk is not None else b"", source, error)

    @property
    def info(self) -> int:
        return self.record.info

    # -- errors -------------------------------------------------------------------------
    def error(self, message: str, *, block_id: int | None = None) -> RedoError:
        """A RedoError naming this record (rmgr, info, LSN) and ``block_id``."""
        rec = self.record
        return RedoError(message, rmgr=self.engine.rmgr_name(rec.rmid), info=rec.info,
                         lsn=rec.lsn, block_id=block_id)

    def locate(self, e: RedoError, *, block_id: int | None = None) -> RedoError:
        """Give an error raised without the record (by a page helper: bufpage.py,
        nbtree.py, gin.py ...) this record's rmgr, info and LSN, and the block
        whose page the routine holds (or ``block_id``). An error that already
        names its record is left as it is. The one place errors get located."""
        if e.lsn is None:
            rec = self.record
            e.locate(rmgr=self.engine.rmgr_name(rec.rmid), info=rec.info, lsn=rec.lsn,
                     block_id=block_id if block_id is not None else self._in_hand)
        return e

    @contextmanager
    def page_errors(self, block_id: int, *also: type[RedoError]) -> Iterator[None]:
        """Errors raised in the block are located naming ``block_id`` (not the
        block in hand). Routines need not use it: the engine locates every
        error; this is for code that changes a page it did not read."""
        try:
            yield
        except RedoError as e:
            self.locate(e, block_id=block_id)
            raise


RedoFn = Callable[[RedoContext], None]


def _record_cursor(data: bytes, source: str, error: Callable[[str], PyredoError]) -> RecordCursor:
    """``RecordCursor(data, source, error=error)`` without the call: a routine makes
    one or two per record, and __init__'s keyword handling was a tenth of a heap insert."""
    cur = _new_object(RecordCursor)
    cur.data = data if type(data) is bytes else bytes(data)
    cur.pos = 0
    cur.source = source
    cur._error = error
    return cur
