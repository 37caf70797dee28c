"""Sequence resource manager: redo of its page-modifying records.

Mirrors seq_redo (sequence.c), seq_identify and seq_desc (seqdesc.c).
Record types without an entry in ``REDO`` raise UnsupportedRecord.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from pyredo import BLCKSZ
from pyredo.page.bufpage import InvalidOffsetNumber, PageAddItem, PageInit, PageSetLSN, pd_special
from pyredo.wal.record import XLR_RMGR_INFO_MASK

if TYPE_CHECKING:
    from collections.abc import Callable

    from pyredo.wal.record import DecodedXLogRecord
    from pyredo.xlogutils import RedoContext, RedoFn

# xl_info values (C header names)
XLOG_SEQ_LOG = 0x00

_NAMES = {
    XLOG_SEQ_LOG: "LOG",
}


def identify(info: int) -> str | None:
    return _NAMES.get(info & XLR_RMGR_INFO_MASK)

# record types whose redo changes a relation page (coverage counts these)
PAGE_MODIFYING: tuple[int, ...] = (
    XLOG_SEQ_LOG,
)

SEQ_MAGIC = 0x1717
XL_SEQ_REC = struct.Struct("<III")  # RelFileNode node; the sequence tuple follows
SEQUENCE_MAGIC = struct.Struct("<I")  # sequence_magic, the page's special space


def seq_redo(ctx: RedoContext) -> None:
    """Mirrors seq_redo (sequence.c): the page is rebuilt from scratch — an empty
    page with a sequence_magic special space and the record's tuple at offset 1
    (C builds it in a palloc'd page that PageInit zeroes, then copies it over)."""
    page = ctx.init_buffer_for_redo(0)
    if page is None:
        return
    data = ctx.main_data()
    data.unpack(XL_SEQ_REC, "xl_seq_rec")
    localpage = bytearray(BLCKSZ)
    PageInit(localpage, BLCKSZ, SEQUENCE_MAGIC.size)
    SEQUENCE_MAGIC.pack_into(localpage, pd_special(localpage), SEQ_MAGIC)
    item = data.rest()
    if PageAddItem(localpage, item, 1) == InvalidOffsetNumber:
        raise ctx.error("seq_redo: failed to add item to page", block_id=0)
    PageSetLSN(localpage, ctx.lsn)
    page[:] = localpage


def desc(rec: DecodedXLogRecord) -> str:
    """Mirrors seq_desc (seqdesc.c)."""
    if len(rec.main_data) < XL_SEQ_REC.size:
        return f"<malformed: {len(rec.main_data)} bytes of main data>"
    spc, db, rel = XL_SEQ_REC.unpack_from(rec.main_data)
    return f"rel {spc}/{db}/{rel}"


REDO: dict[int, RedoFn] = {XLOG_SEQ_LOG: seq_redo}

# seq_redo, seq_mask and seq_desc read the same xl_seq_rec in 15, 16, 17 and 18 (16 renames
# RelFileNode to RelFileLocator, same 12 bytes, and adds XLogFlushBufferForRedoIfInit: an
# init-fork flush, no page change)
MAJORS: tuple[int, ...] = (15, 16, 17, 18)
DESC_SINCE: dict[int, Callable[[DecodedXLogRecord], str] | None] = {16: desc}
