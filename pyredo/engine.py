"""RedoEngine: rebuild one page from a base image and the records that touch it.

The engine is a pure function of its inputs. It owns the step every redo
routine shares (xlogutils.c XLogReadBufferForRedoExtended): restore a block
image when the record says to apply it, zero the page for WILL_INIT, skip the
record when the page LSN is already at or past it, and stamp the record's end
LSN on the page after a routine changed it. A routine (``pyredo.rmgr.*``)
only changes the page.

Like a wal-redo server, the engine rebuilds a single target block: a routine
asks the context for each block it would touch, and only the target's page
comes back; every other block is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from enum import Enum

from pyredo import BLCKSZ
from pyredo.errors import ImageError, PyredoError, RedoError
from pyredo.page import bufpage
from pyredo.rmgr import get_rmgr, rmgr_name
from pyredo.wal.image import restore_block_image
from pyredo.wal.record import (
    INIT_FORKNUM,
    VISIBILITYMAP_FORKNUM,
    BufferTag,
    DecodedBkpBlock,
    DecodedXLogRecord,
    RelFileNode,
)

__all__ = ["BlkAction", "ReadBufferMode", "RedoContext", "RedoEngine"]


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


class RedoContext:
    """What a redo routine sees: the record, and the target page when it needs redo.

    ``page`` is the target page as a bytearray (zeros when the block does not
    exist yet, as a wal-redo server sees a block it was not given).
    """

    __slots__ = ("_lsn_kept", "actions", "engine", "lsn", "page", "record", "tag")

    def __init__(
        self, engine: RedoEngine, record: DecodedXLogRecord, tag: BufferTag, page: bytearray
    ) -> None:
        self.engine = engine
        self.record = record
        self.tag = tag
        self.page = page
        self.lsn = record.end_lsn  # what PageSetLSN stamps: the record's EndRecPtr
        self.actions: dict[int, BlkAction] = {}
        self._lsn_kept = False

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
        return self._block(block_id).tag

    @contextmanager
    def page_errors(self, block_id: int, *also: type[RedoError]) -> Iterator[None]:
        """bufpage.c's "corrupted page" errors, and the access method's own page
        errors ``also``, re-raised naming this record and ``block_id``."""
        caught: tuple[type[RedoError], ...] = (bufpage.PageCorrupted, *also)
        try:
            yield
        except caught as e:
            raise self.error(e.message, block_id=block_id) from e

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
        blk = self._block(block_id)
        if blk.tag != self.tag:
            self.actions[block_id] = BlkAction.NOT_TARGET
            return None
        zeromode = mode in _ZERO_MODES
        if blk.will_init and not zeromode:
            raise self.error("block with WILL_INIT flag in WAL record must be zeroed by redo routine",
                             block_id=block_id)
        if not blk.will_init and zeromode:
            raise self.error("block to be initialized in redo routine must be marked with "
                             "WILL_INIT flag in the WAL record", block_id=block_id)
        if blk.apply_image:
            self._restore_image(blk)
            self.actions[block_id] = BlkAction.BLK_RESTORED
            return None
        page = self.page
        if zeromode:
            page[:] = bytes(BLCKSZ)
        elif mode is RBM_NORMAL and bufpage.PageIsNew(page):
            # XLogReadBufferExtended: an uninitialized page counts as missing
            self.actions[block_id] = BlkAction.BLK_NOTFOUND
            return None
        if self.lsn <= bufpage.PageGetLSN(page):
            self.actions[block_id] = BlkAction.BLK_DONE
            return None
        self.actions[block_id] = BlkAction.BLK_NEEDS_REDO
        return page

    def init_buffer_for_redo(self, block_id: int) -> bytearray | None:
        """XLogInitBufferForRedo: the target page, zeroed, when ``block_id`` is the target."""
        return self.read_buffer_for_redo(block_id, RBM_ZERO_AND_LOCK)

    def _restore_image(self, blk: DecodedBkpBlock) -> None:
        try:
            image = restore_block_image(blk, self.record.lsn)
        except ImageError as e:
            raise self.error(f"could not restore image: {e.message}", block_id=blk.block_id) from e
        self.page[:] = image
        if not bufpage.PageIsNew(self.page):
            bufpage.PageSetLSN(self.page, self.lsn)

    def restore_image_if_target(self, block_id: int) -> BlkAction:
        """For records that carry only images (XLOG_FPI): restore when ours."""
        blk = self._block(block_id)
        if blk.tag != self.tag:
            self.actions[block_id] = BlkAction.NOT_TARGET
            return BlkAction.NOT_TARGET
        if not blk.has_image:
            raise self.error("image record without an image", block_id=block_id)
        self._restore_image(blk)
        self.actions[block_id] = BlkAction.BLK_RESTORED
        return BlkAction.BLK_RESTORED

    def keep_page_lsn(self) -> None:
        """The routine's C twin does not PageSetLSN on this path (e.g. heap
        VISIBLE without wal_log_hints): the engine then leaves the LSN alone."""
        self._lsn_kept = True

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

    # -- helpers for routines -----------------------------------------------------------
    @property
    def main_data(self) -> bytes:
        return self.record.main_data

    @property
    def info(self) -> int:
        return self.record.info

    def block_data(self, block_id: int) -> bytes:
        return self.record.block_data(block_id)

    def error(self, message: str, *, block_id: int | None = None) -> RedoError:
        rec = self.record
        return RedoError(message, rmgr=rmgr_name(rec.rmid), info=rec.info, lsn=rec.lsn,
                         block_id=block_id)


class RedoEngine:
    """pyredo's redo engine. ``hint_bits_logged`` mirrors XLogHintBitIsNeeded()
    (data checksums or wal_log_hints) of the server it must agree with.
    ``server_version_num`` (e.g. 150019) names the PostgreSQL minor release
    whose redo to mirror where minor releases differ; None means the newest."""

    name = "pyredo"

    def __init__(self, *, hint_bits_logged: bool = False,
                 server_version_num: int | None = None) -> None:
        self.hint_bits_logged = hint_bits_logged
        self.server_version_num = server_version_num

    def redo_is_before(self, version_num: int) -> bool:
        """True when the server mirrored is older than ``version_num`` (a minor
        release that changed some redo routine); never for the newest."""
        return self.server_version_num is not None and self.server_version_num < version_num

    def reconstruct(
        self,
        tag: BufferTag,
        base_page: bytes | None,
        records: Iterable[DecodedXLogRecord],
    ) -> bytes:
        """What PostgreSQL's redo leaves on block ``tag`` after ``records`` (in LSN order)."""
        if tag.fork == INIT_FORKNUM:
            raise RedoError(f"init-fork target {tag} is not supported")
        if base_page is not None and len(base_page) != BLCKSZ:
            raise RedoError(f"base page for {tag} is {len(base_page)} bytes, not {BLCKSZ}")
        page = bytearray(base_page) if base_page is not None else bytearray(BLCKSZ)
        for rec in records:
            self.apply(tag, page, rec)
        return bytes(page)

    def apply(self, tag: BufferTag, page: bytearray, rec: DecodedXLogRecord) -> None:
        """Apply one record to the target page in place."""
        routine = get_rmgr(rec.rmid).redo_routine(rec)
        ctx = RedoContext(self, rec, tag, page)
        try:
            routine(ctx)
        except PyredoError:
            raise
        except Exception as e:  # IndexError, struct.error ... on bad input: never untyped
            raise ctx.error(f"redo routine {routine.__name__} failed: {type(e).__name__}: {e}") from e
        if not ctx._lsn_kept and BlkAction.BLK_NEEDS_REDO in ctx.actions.values():
            bufpage.PageSetLSN(page, ctx.lsn)
