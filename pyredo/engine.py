"""RedoEngine: rebuild one page from a base image and the records that touch it.

The engine is a pure function of its inputs: a table of resource managers
(``pyredo.rmgrlist``, one per PostgreSQL major), a base page and records. For
each record it looks the routine up in ITS table, runs it on a
``pyredo.xlogutils.RedoContext``, locates any error the routine raised (rmgr,
info, LSN, block: in one place) and stamps the record's end LSN on the page
when the routine changed it.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyredo import BLCKSZ
from pyredo.errors import PyredoError, RedoError
from pyredo.page import bufpage
from pyredo.rmgrlist import PG15, RmgrTable
from pyredo.wal.record import BufferTag, DecodedXLogRecord
from pyredo.xlogutils import BlkAction, RedoContext, RedoFn

__all__ = ["RedoEngine"]

_NEEDS_REDO = BlkAction.BLK_NEEDS_REDO


def _routine_name(routine: RedoFn) -> str:
    """The routine's name, also through functools.partial (a mutant)."""
    fn: object = routine
    while not hasattr(fn, "__name__") and hasattr(fn, "func"):
        fn = fn.func
    return str(getattr(fn, "__name__", repr(routine)))


class RedoEngine:
    """pyredo's redo engine over ``table`` (default: PostgreSQL 15's).
    ``hint_bits_logged`` mirrors XLogHintBitIsNeeded() (data checksums or
    wal_log_hints) of the server it must agree with. ``server_version_num``
    (e.g. 150019) names the PostgreSQL minor release whose redo to mirror where
    minor releases differ; None means the newest."""

    name = "pyredo"

    def __init__(self, table: RmgrTable = PG15, *, hint_bits_logged: bool = False,
                 server_version_num: int | None = None) -> None:
        self.table = table
        self.hint_bits_logged = hint_bits_logged
        self.server_version_num = server_version_num
        self._routines: dict[tuple[int, int], RedoFn] = {}
        self._routines_of: RmgrTable | None = None

    def redo_is_before(self, version_num: int) -> bool:
        """True when the server mirrored is older than ``version_num`` (a minor
        release that changed some redo routine); never for the newest."""
        return self.server_version_num is not None and self.server_version_num < version_num

    def rmgr_name(self, rmid: int) -> str:
        return self.table.rmgr_name(rmid)

    def reconstruct(
        self,
        tag: BufferTag,
        base_page: bytes | None,
        records: Iterable[DecodedXLogRecord],
    ) -> bytes:
        """What PostgreSQL's redo leaves on block ``tag`` after ``records`` (in LSN order).

        Init-fork blocks (``INIT_FORKNUM``, the empty image of an unlogged relation)
        are redone like any other: XLogReadBufferForRedoExtended, hash_xlog_init_meta_page
        and hash_xlog_init_bitmap_page only add FlushOneBuffer for them, so that the
        file on disk matches the buffer when ResetUnloggedRelations (reinit.c) copies
        the init fork over the main fork at the end of recovery; the page is the same.
        """
        if base_page is not None and len(base_page) != BLCKSZ:
            raise RedoError(f"base page for {tag} is {len(base_page)} bytes, not {BLCKSZ}")
        page = bytearray(base_page) if base_page is not None else bytearray(BLCKSZ)
        for rec in records:
            self.apply(tag, page, rec)
        return bytes(page)

    def apply(self, tag: BufferTag, page: bytearray, rec: DecodedXLogRecord) -> None:
        """Apply one record to the target page in place."""
        table = self.table
        if table is not self._routines_of:  # the routine by (rmid, info), looked up once per table
            self._routines, self._routines_of = {}, table
        routine = self._routines.get((rec.rmid, rec.info))
        if routine is None:
            routine = self._routines[rec.rmid, rec.info] = table.routine(rec.rmid, rec.info, rec.lsn)
        ctx = RedoContext(self, rec, tag, page)
        try:
            routine(ctx)
        except RedoError as e:
            ctx.locate(e)
            raise
        except PyredoError:
            raise
        except Exception as e:  # IndexError, struct.error ... on bad input: never untyped
            raise ctx.error(f"redo routine {_routine_name(routine)} failed: "
                            f"{type(e).__name__}: {e}") from e
        if not ctx.lsn_kept and _NEEDS_REDO in ctx.actions.values():
            bufpage.PageSetLSN(page, ctx.lsn)
