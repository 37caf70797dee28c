"""pg_xact (CLOG) redo: the commit-log pages that clog_redo and xact_redo leave.

A pure engine. ``replay_clog(records, base)`` takes the pg_xact pages at the
start of a WAL range (``{pageno: 8192 bytes}``, or nothing) and the records of
the range in LSN order, and returns the pages as PostgreSQL's redo leaves them
once they are written out (a CHECKPOINT at the end of recovery).

Which records touch pg_xact (the C callers of the SLRU, grepped in PG 15):

* CLOG/ZEROPAGE (clog_redo -> ZeroCLOGPage + SimpleLruWritePage): the page
  becomes zeroes and now exists; it is the SLRU's latest page.
* CLOG/TRUNCATE (clog_redo -> AdvanceOldestClogXid + SimpleLruTruncate):
  whole segments (32 pages) before the cutoff page are removed.
* Transaction/COMMIT, COMMIT_PREPARED (xact_redo_commit ->
  TransactionIdCommitTree / TransactionIdAsyncCommitTree) and ABORT,
  ABORT_PREPARED (xact_redo_abort -> TransactionIdAbortTree): the top xid and
  its subxacts get their final status, via TransactionIdSetTreeStatus. For
  the *_PREPARED kinds the xid is the record's xl_xact_twophase, not xl_xid;
  ROLLBACK TO SAVEPOINT of a subxact that has an xid logs a plain ABORT whose
  xl_xid is that subxact.
* Transaction/PREPARE, ASSIGNMENT and INVALIDATION change no clog bit (see
  ``xact_redo``), and no other resource manager writes pg_xact in redo.

Only the status bits are modelled. The per-page group LSNs that an async
commit (TransactionIdAsyncCommitTree) records live in shared memory, never on
the page, so the on-disk bytes of an async and a sync commit are the same.

Sub-committed is an intermediate state: a commit whose subxacts span several
pages marks the ones off the parent's page TRANSACTION_STATUS_SUB_COMMITTED
first, then sets every xid of the tree to COMMITTED. The engine goes through
the same steps (so a bug in them shows), but what ends up on disk is the final
status for every xid of the tree; a 0b11 pair never survives a completed
record.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from pyredo.errors import UnsupportedRecord
from pyredo.rmgr import RM_CLOG_ID, RM_XACT_ID
from pyredo.slru.clogpages import (
    CLOG_BITS_PER_XACT,
    CLOG_TRUNCATE,
    CLOG_XACT_BITMASK,
    CLOG_XACTS_PER_BYTE,
    CLOG_XACTS_PER_PAGE,
    CLOG_ZEROPAGE,
    MAX_CLOG_PAGE,
    RM_CLOG_NAME,
    RM_XACT_NAME,
    SLRU_PAGES_PER_SEGMENT,
    STATUS_NAMES,
    TRANSACTION_STATUS_ABORTED,
    TRANSACTION_STATUS_COMMITTED,
    TRANSACTION_STATUS_IN_PROGRESS,
    TRANSACTION_STATUS_SUB_COMMITTED,
    BootstrapTransactionId,
    ClogError,
    CLOGPagePrecedes,
    ClogPages,
    ClogResult,
    ClogStateError,
    FirstNormalTransactionId,
    FrozenTransactionId,
    InvalidTransactionId,
    MaxTransactionId,
    MissingMode,
    MissingPage,
    NoBasePage,
    SlruMayDeleteSegment,
    TransactionIdIsNormal,
    TransactionIdLatest,
    TransactionIdPrecedes,
    TransactionIdToBIndex,
    TransactionIdToByte,
    TransactionIdToPage,
    TransactionIdToPgIndex,
    Truncation,
    Where,
    XidChange,
    get_xid_status,
    page_xids,
    set_xid_status,
    status_name,
)
from pyredo.wal.record import XLR_RMGR_INFO_MASK, DecodedXLogRecord
from pyredo.xlogutils import RecordCursor

__all__ = [
    "CLOG_BITS_PER_XACT",
    "CLOG_TRUNCATE",
    "CLOG_XACTS_PER_BYTE",
    "CLOG_XACTS_PER_PAGE",
    "CLOG_XACT_BITMASK",
    "CLOG_ZEROPAGE",
    "GIDSIZE",
    "MAX_CLOG_PAGE",
    "RM_CLOG_NAME",
    "RM_XACT_NAME",
    "SLRU_PAGES_PER_SEGMENT",
    "STATUS_NAMES",
    "TRANSACTION_STATUS_ABORTED",
    "TRANSACTION_STATUS_COMMITTED",
    "TRANSACTION_STATUS_IN_PROGRESS",
    "TRANSACTION_STATUS_SUB_COMMITTED",
    "XACT_COMPLETION_APPLY_FEEDBACK",
    "XACT_COMPLETION_FORCE_SYNC_COMMIT",
    "XACT_COMPLETION_UPDATE_RELCACHE_FILE",
    "XACT_XINFO_HAS_AE_LOCKS",
    "XACT_XINFO_HAS_DBINFO",
    "XACT_XINFO_HAS_DROPPED_STATS",
    "XACT_XINFO_HAS_GID",
    "XACT_XINFO_HAS_INVALS",
    "XACT_XINFO_HAS_ORIGIN",
    "XACT_XINFO_HAS_RELFILENODES",
    "XACT_XINFO_HAS_SUBXACTS",
    "XACT_XINFO_HAS_TWOPHASE",
    "XLOG_XACT_ABORT",
    "XLOG_XACT_ABORT_PREPARED",
    "XLOG_XACT_ASSIGNMENT",
    "XLOG_XACT_COMMIT",
    "XLOG_XACT_COMMIT_PREPARED",
    "XLOG_XACT_HAS_INFO",
    "XLOG_XACT_INVALIDATIONS",
    "XLOG_XACT_OPMASK",
    "XLOG_XACT_PREPARE",
    "BootstrapTransactionId",
    "CLOGPagePrecedes",
    "ClogEngine",
    "ClogError",
    "ClogPages",
    "ClogResult",
    "ClogStateError",
    "FirstNormalTransactionId",
    "FrozenTransactionId",
    "InvalidTransactionId",
    "MaxTransactionId",
    "MinSizeOfXactAbort",
    "MinSizeOfXactAssignment",
    "MinSizeOfXactCommit",
    "MinSizeOfXactInvals",
    "MinSizeOfXactRelfilenodes",
    "MinSizeOfXactStatsItems",
    "MinSizeOfXactSubxacts",
    "MissingMode",
    "MissingPage",
    "NoBasePage",
    "ParseAbortRecord",
    "ParseCommitRecord",
    "SizeOfRelFileNode",
    "SizeOfSharedInvalidationMessage",
    "SizeOfXactDbinfo",
    "SizeOfXactOrigin",
    "SizeOfXactStatsItem",
    "SizeOfXactTwophase",
    "SizeOfXactXinfo",
    "SizeOfXlClogTruncate",
    "SlruMayDeleteSegment",
    "TransactionIdIsNormal",
    "TransactionIdLatest",
    "TransactionIdPrecedes",
    "TransactionIdToBIndex",
    "TransactionIdToByte",
    "TransactionIdToPage",
    "TransactionIdToPgIndex",
    "Truncation",
    "XactLayout",
    "XactParsed",
    "XactPrepareXidOffset",
    "XidChange",
    "clog_redo",
    "completed_xids",
    "get_xid_status",
    "page_xids",
    "record_kind",
    "replay_clog",
    "set_xid_status",
    "status_name",
    "xact_redo",
    "xact_redo_abort",
    "xact_redo_commit",
]

# xact.h: xl_info of RM_XACT_ID records
XLOG_XACT_COMMIT = 0x00
XLOG_XACT_PREPARE = 0x10
XLOG_XACT_ABORT = 0x20
XLOG_XACT_COMMIT_PREPARED = 0x30
XLOG_XACT_ABORT_PREPARED = 0x40
XLOG_XACT_ASSIGNMENT = 0x50
XLOG_XACT_INVALIDATIONS = 0x60
XLOG_XACT_OPMASK = 0x70
XLOG_XACT_HAS_INFO = 0x80

# xact.h: xl_xact_xinfo.xinfo
XACT_XINFO_HAS_DBINFO = 1 << 0
XACT_XINFO_HAS_SUBXACTS = 1 << 1
XACT_XINFO_HAS_RELFILENODES = 1 << 2
XACT_XINFO_HAS_INVALS = 1 << 3
XACT_XINFO_HAS_TWOPHASE = 1 << 4
XACT_XINFO_HAS_ORIGIN = 1 << 5
XACT_XINFO_HAS_AE_LOCKS = 1 << 6
XACT_XINFO_HAS_GID = 1 << 7
XACT_XINFO_HAS_DROPPED_STATS = 1 << 8
XACT_COMPLETION_APPLY_FEEDBACK = 1 << 29
XACT_COMPLETION_UPDATE_RELCACHE_FILE = 1 << 30
XACT_COMPLETION_FORCE_SYNC_COMMIT = 1 << 31

# sizes of the pieces of xl_xact_commit / xl_xact_abort (xact.h, sinval.h)
MinSizeOfXactCommit = 8  # TimestampTz xact_time
MinSizeOfXactAbort = 8
SizeOfXactXinfo = 4
SizeOfXactDbinfo = 8  # dbId, tsId
MinSizeOfXactSubxacts = 4  # int nsubxacts
MinSizeOfXactRelfilenodes = 4  # int nrels
SizeOfRelFileNode = 12
MinSizeOfXactStatsItems = 4  # int nitems
SizeOfXactStatsItem = 12  # int kind, Oid dboid, Oid objoid
MinSizeOfXactInvals = 4  # int nmsgs
SizeOfSharedInvalidationMessage = 16  # the union's largest member, SharedInvalSmgrMsg
SizeOfXactTwophase = 4  # TransactionId xid
SizeOfXactOrigin = 16  # XLogRecPtr origin_lsn, TimestampTz origin_timestamp (unaligned)
GIDSIZE = 200
MinSizeOfXactAssignment = 8  # xtop, nsubxacts
SizeOfXlClogTruncate = 12  # int pageno, TransactionId oldestXact, Oid oldestXactDb
# xl_xact_prepare (the two-phase state file header): xid is its third field
XactPrepareXidOffset = 8
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_U64 = struct.Struct("<Q")
_DBINFO = struct.Struct("<II")
_RELFILENODE = struct.Struct("<III")
_STATS_ITEM = struct.Struct("<iII")
_CLOG_TRUNCATE = struct.Struct("<iII")
# 17: SLRU page numbers are int64 (clog.h xl_clog_truncate, CLOG_ZEROPAGE's pageno)
_CLOG_TRUNCATE_17 = struct.Struct("<qII")
# 18: xl_xact_stats_item stores PgStat_HashKey.objid as objid_lo, objid_hi (xact.h)
_STATS_ITEM_18 = struct.Struct("<iIII")


@dataclass(frozen=True)
class XactLayout:
    """The xact and clog record parts whose layout changed across majors."""

    stats_item: struct.Struct  # xl_xact_stats_item
    clog_pageno: struct.Struct  # CLOG_ZEROPAGE's main data
    clog_truncate: struct.Struct  # xl_clog_truncate

    @classmethod
    def of(cls, major: int) -> XactLayout:
        """The layout of PostgreSQL ``major`` (15 to 18, and newer as 18)."""
        return cls(_STATS_ITEM_18 if major >= 18 else _STATS_ITEM,
                   _I64 if major >= 17 else _I32,
                   _CLOG_TRUNCATE_17 if major >= 17 else _CLOG_TRUNCATE)
_ORIGIN = struct.Struct("<Qq")


# -- parsed commit / abort records (xactdesc.c) ---------------------------------
@dataclass(slots=True)
class XactParsed:
    """xl_xact_parsed_commit / xl_xact_parsed_abort: what ParseCommitRecord and
    ParseAbortRecord pull out of a commit or abort record. ``msgs`` (the shared
    invalidation messages, 16 bytes each) only ever come with a commit."""

    xact_time: int = 0
    xinfo: int = 0
    db_id: int = 0
    ts_id: int = 0
    subxacts: tuple[int, ...] = ()
    xnodes: tuple[tuple[int, int, int], ...] = ()  # RelFileNode: spc, db, rel
    stats: tuple[tuple[int, int, int], ...] = ()  # xl_xact_stats_item: kind, dboid, objoid
    msgs: tuple[bytes, ...] = ()
    twophase_xid: int = InvalidTransactionId
    twophase_gid: str = ""
    origin_lsn: int = 0
    origin_timestamp: int = 0

    @property
    def nsubxacts(self) -> int:
        return len(self.subxacts)


def _parse_xact_completion(
    info: int, data: bytes, *, with_invals: bool, what: str, where: Where, major: int = 15
) -> XactParsed:
    """The body shared by ParseCommitRecord and ParseAbortRecord: the optional
    parts in the order XactLogCommitRecord / XactLogAbortRecord write them."""
    cur = RecordCursor(data, f"{what}: main data", error=where.error)
    p = XactParsed()
    p.xact_time = int(cur.unpack(_I64, "xact_time")[0])
    if info & XLOG_XACT_HAS_INFO:
        p.xinfo = cur.u32("xl_xact_xinfo")
    if p.xinfo & XACT_XINFO_HAS_DBINFO:
        p.db_id, p.ts_id = cur.unpack(_DBINFO, "xl_xact_dbinfo")
    if p.xinfo & XACT_XINFO_HAS_SUBXACTS:
        n = cur.count("nsubxacts", 4)
        p.subxacts = struct.unpack(f"<{n}I", cur.take(4 * n, "subxacts"))
    if p.xinfo & XACT_XINFO_HAS_RELFILENODES:
        n = cur.count("nrels", SizeOfRelFileNode)
        p.xnodes = tuple(_RELFILENODE.iter_unpack(cur.take(n * SizeOfRelFileNode, "xnodes")))
    if p.xinfo & XACT_XINFO_HAS_DROPPED_STATS:
        item = XactLayout.of(major).stats_item
        n = cur.count("nitems", item.size)
        raw = tuple(item.iter_unpack(cur.take(n * item.size, "stats items")))
        # kind, dboid, objid (18: objid_lo | objid_hi << 32)
        p.stats = tuple((t[0], t[1], t[2] | (t[3] << 32 if len(t) > 3 else 0)) for t in raw)
    # An abort record has no invalidation messages (xact.h: "No invalidation
    # messages needed"), so ParseAbortRecord never looks for them.
    if with_invals and p.xinfo & XACT_XINFO_HAS_INVALS:
        n = cur.count("nmsgs", SizeOfSharedInvalidationMessage)
        blob = cur.take(n * SizeOfSharedInvalidationMessage, "invalidation messages")
        p.msgs = tuple(
            blob[i : i + SizeOfSharedInvalidationMessage]
            for i in range(0, len(blob), SizeOfSharedInvalidationMessage)
        )
    if p.xinfo & XACT_XINFO_HAS_TWOPHASE:
        p.twophase_xid = cur.u32("xl_xact_twophase")
        if p.xinfo & XACT_XINFO_HAS_GID:
            end = data.find(b"\0", cur.pos)
            if end < 0:
                raise where.error(f"{what}: twophase_gid is not NUL-terminated")
            # strlcpy into a GIDSIZE buffer keeps at most GIDSIZE - 1 bytes
            p.twophase_gid = data[cur.pos : min(end, cur.pos + GIDSIZE - 1)].decode("utf-8", "replace")
            cur.seek(end + 1)
    # no alignment is guaranteed from here on: xl_xact_origin is copied bytewise
    if p.xinfo & XACT_XINFO_HAS_ORIGIN:
        p.origin_lsn, p.origin_timestamp = cur.unpack(_ORIGIN, "xl_xact_origin")
    return p


def ParseCommitRecord(info: int, data: bytes, rec: DecodedXLogRecord | None = None, *,
                      major: int = 15) -> XactParsed:
    """ParseCommitRecord (xactdesc.c): xl_xact_commit and the parts that its
    xinfo announces — dbinfo, subxacts, relfilenodes, dropped stats, invals,
    twophase (+ gid), origin. ``major``: 18 widens xl_xact_stats_item to 16 bytes."""
    return _parse_xact_completion(info, data, with_invals=True, what="commit record",
                                  where=Where.of(rec, RM_XACT_NAME), major=major)


def ParseAbortRecord(info: int, data: bytes, rec: DecodedXLogRecord | None = None, *,
                     major: int = 15) -> XactParsed:
    """ParseAbortRecord (xactdesc.c): like a commit record without invals."""
    return _parse_xact_completion(info, data, with_invals=False, what="abort record",
                                  where=Where.of(rec, RM_XACT_NAME), major=major)

# -- redo routines ----------------------------------------------------------------
@dataclass
class _Stats:
    counts: Counter[str] = field(default_factory=Counter)
    subxacts: int = 0
    assigned_subxacts: int = 0
    prepared_xids: list[int] = field(default_factory=list)


def _check_no_blocks(clog: ClogPages, rec: DecodedXLogRecord, rmgr: str) -> None:
    # clog_redo / xact_redo: Assert(!XLogRecHasAnyBlockRefs(record))
    if rec.blocks:
        raise clog.where(rmgr).error(f"{rmgr} record has block references {sorted(rec.blocks)}")


def _completion_xid(clog: ClogPages, xid: int, what: str) -> int:
    # xact_redo_commit / xact_redo_abort: Assert(TransactionIdIsValid(xid))
    if xid == InvalidTransactionId:
        raise clog.where().error(f"{what} record completes no transaction (invalid xid)")
    return xid


def xact_redo_commit(clog: ClogPages, stats: _Stats, parsed: XactParsed, xid: int) -> None:
    """xact_redo_commit (xact.c), its pg_xact part: TransactionIdCommitTree
    (TransactionIdAsyncCommitTree in hot standby: same bits). Commit
    timestamps, invalidations, lock release and file drops touch other files."""
    clog.TransactionIdCommitTree(_completion_xid(clog, xid, "commit"), parsed.subxacts)
    stats.subxacts += parsed.nsubxacts


def xact_redo_abort(clog: ClogPages, stats: _Stats, parsed: XactParsed, xid: int) -> None:
    """xact_redo_abort (xact.c), its pg_xact part: TransactionIdAbortTree."""
    clog.TransactionIdAbortTree(_completion_xid(clog, xid, "abort"), parsed.subxacts)
    stats.subxacts += parsed.nsubxacts


def xact_redo(clog: ClogPages, stats: _Stats, rec: DecodedXLogRecord, *, major: int = 15) -> None:
    """xact_redo (xact.c): dispatch on ``info & XLOG_XACT_OPMASK``."""
    _check_no_blocks(clog, rec, RM_XACT_NAME)
    info = rec.info & XLOG_XACT_OPMASK
    data = rec.main_data
    if info == XLOG_XACT_COMMIT:
        xact_redo_commit(clog, stats, ParseCommitRecord(rec.info, data, rec, major=major), rec.xid)
    elif info == XLOG_XACT_COMMIT_PREPARED:
        parsed = ParseCommitRecord(rec.info, data, rec, major=major)
        xact_redo_commit(clog, stats, parsed, parsed.twophase_xid)
    elif info == XLOG_XACT_ABORT:
        xact_redo_abort(clog, stats, ParseAbortRecord(rec.info, data, rec, major=major), rec.xid)
    elif info == XLOG_XACT_ABORT_PREPARED:
        parsed = ParseAbortRecord(rec.info, data, rec, major=major)
        xact_redo_abort(clog, stats, parsed, parsed.twophase_xid)
    elif info == XLOG_XACT_PREPARE:
        # No clog bit: PrepareRedoAdd only records the gxact in TwoPhaseState;
        # the xid keeps its in-progress status until COMMIT/ABORT PREPARED.
        cur = RecordCursor(data, "prepare record: main data", error=clog.where().error)
        stats.prepared_xids.append(cur.seek(XactPrepareXidOffset).u32("xl_xact_prepare.xid"))
    elif info == XLOG_XACT_ASSIGNMENT:
        # No clog bit: ProcArrayApplyXidAssignment feeds KnownAssignedXids and
        # pg_subtrans (SubTransSetParent) of a hot standby, not pg_xact.
        cur = RecordCursor(data, "assignment record: main data", error=clog.where().error)
        cur.need(MinSizeOfXactAssignment, "xl_xact_assignment")
        cur.seek(4)
        stats.assigned_subxacts += cur.count("nsubxacts", 4)
    elif info == XLOG_XACT_INVALIDATIONS:
        # No clog bit: xact_redo ignores these ("what matters are invalidations
        # written into the commit record").
        pass
    else:
        raise UnsupportedRecord(RM_XACT_NAME, rec.info, rec.lsn)


def clog_redo(clog: ClogPages, rec: DecodedXLogRecord, *, major: int = 15) -> None:
    """clog_redo (clog.c): ZEROPAGE and TRUNCATE (their pageno is an int64 from 17 on)."""
    layout = XactLayout.of(major)
    _check_no_blocks(clog, rec, RM_CLOG_NAME)
    info = rec.info & XLR_RMGR_INFO_MASK
    where = clog.where(RM_CLOG_NAME)
    if info == CLOG_ZEROPAGE:
        cur = RecordCursor(rec.main_data, "ZEROPAGE record: main data", error=where.error)
        (pageno,) = cur.unpack(layout.clog_pageno, "pageno")
        if not 0 <= pageno <= MAX_CLOG_PAGE:
            raise where.error(f"ZEROPAGE of page {pageno}, not a clog page")
        clog.SimpleLruZeroPage(pageno)
    elif info == CLOG_TRUNCATE:
        cur = RecordCursor(rec.main_data, "TRUNCATE record: main data", error=where.error)
        pageno, oldest_xact, oldest_db = cur.unpack(layout.clog_truncate, "xl_clog_truncate")
        if not 0 <= pageno <= MAX_CLOG_PAGE:
            raise where.error(f"TRUNCATE before page {pageno}, not a clog page")
        clog.oldest_clog_xid = oldest_xact  # AdvanceOldestClogXid
        clog.SimpleLruTruncate(pageno, oldest_xact, oldest_db)
    else:
        raise UnsupportedRecord(RM_CLOG_NAME, rec.info, rec.lsn)


_XACT_NAMES = {
    XLOG_XACT_COMMIT: "COMMIT",
    XLOG_XACT_PREPARE: "PREPARE",
    XLOG_XACT_ABORT: "ABORT",
    XLOG_XACT_COMMIT_PREPARED: "COMMIT_PREPARED",
    XLOG_XACT_ABORT_PREPARED: "ABORT_PREPARED",
    XLOG_XACT_ASSIGNMENT: "ASSIGNMENT",
    XLOG_XACT_INVALIDATIONS: "INVALIDATION",
}
_CLOG_NAMES = {CLOG_ZEROPAGE: "ZEROPAGE", CLOG_TRUNCATE: "TRUNCATE"}


def record_kind(rec: DecodedXLogRecord) -> str:
    """``Rmgr/TYPE`` of an xact or clog record, as pg_waldump names it."""
    if rec.rmid == RM_XACT_ID:
        name = _XACT_NAMES.get(rec.info & XLOG_XACT_OPMASK, f"UNKNOWN ({rec.info & XLOG_XACT_OPMASK:x})")
        return f"{RM_XACT_NAME}/{name}"
    name = _CLOG_NAMES.get(rec.info & XLR_RMGR_INFO_MASK,
                           f"UNKNOWN ({rec.info & XLR_RMGR_INFO_MASK:x})")
    return f"{RM_CLOG_NAME}/{name}"


def replay_clog(
    records: Iterable[DecodedXLogRecord],
    base: Mapping[int, bytes] | None = None,
    *,
    latest_page: int | None = None,
    on_missing: MissingMode = "raise",
    strict: bool = True,
    major: int = 15,
) -> ClogResult:
    """Replay the pg_xact part of a WAL range.

    ``records`` in LSN order (records of other resource managers are passed
    over: none of them writes pg_xact); ``base`` the pg_xact pages at the
    range's start; ``major`` the PostgreSQL major that wrote them (XactLayout).
    Pure: the base mapping is not modified.
    """
    clog = ClogPages(base, latest_page=latest_page, on_missing=on_missing, strict=strict)
    stats = _Stats()
    for rec in records:
        if rec.rmid == RM_XACT_ID:
            kind = record_kind(rec)
            stats.counts[kind] += 1
            clog.begin_record(rec, kind)
            xact_redo(clog, stats, rec, major=major)
        elif rec.rmid == RM_CLOG_ID:
            kind = record_kind(rec)
            stats.counts[kind] += 1
            clog.begin_record(rec, kind)
            clog_redo(clog, rec, major=major)
    return ClogResult(
        pages={p: bytes(b) for p, b in sorted(clog.pages.items())},
        touched=clog.touched & set(clog.pages),  # (a page truncated after it was written is gone)
        zeroed=dict(clog.zeroed),
        truncations=list(clog.truncations),
        changes=dict(clog.changes),
        missing=list(clog.missing),
        counts=stats.counts,
        subxacts=stats.subxacts,
        assigned_subxacts=stats.assigned_subxacts,
        prepared_xids=stats.prepared_xids,
        latest_page_number=clog.latest_page_number,
        oldest_clog_xid=clog.oldest_clog_xid,
    )


def completed_xids(records: Iterable[DecodedXLogRecord], *, major: int = 15) -> dict[int, XidChange]:
    """The final status that the commit and abort records of a range give
    each xid (the top xid and its subxacts; last record wins), read from the
    records alone, without pages: what the range determines, independent of
    how an engine sets the bits. Malformed records raise as in ``replay_clog``."""
    out: dict[int, XidChange] = {}
    for rec in records:
        if rec.rmid != RM_XACT_ID:
            continue
        op = rec.info & XLOG_XACT_OPMASK
        if op in (XLOG_XACT_COMMIT, XLOG_XACT_COMMIT_PREPARED):
            parsed = ParseCommitRecord(rec.info, rec.main_data, rec, major=major)
            status = TRANSACTION_STATUS_COMMITTED
        elif op in (XLOG_XACT_ABORT, XLOG_XACT_ABORT_PREPARED):
            parsed = ParseAbortRecord(rec.info, rec.main_data, rec, major=major)
            status = TRANSACTION_STATUS_ABORTED
        else:
            continue
        top = parsed.twophase_xid if op in (XLOG_XACT_COMMIT_PREPARED, XLOG_XACT_ABORT_PREPARED) else rec.xid
        if top == InvalidTransactionId:
            raise Where.of(rec, RM_XACT_NAME).error("completion record completes no transaction (invalid xid)")
        kind = record_kind(rec)
        for x in (top, *parsed.subxacts):
            out[x] = XidChange(x, status, rec.lsn, kind, top)
    return out


ClogEngine = Callable[..., ClogResult]
"""What ``harness.verify.clogcheck.check_clog`` calls: ``replay_clog`` or a stand-in
with its signature (records, base, *, latest_page, on_missing)."""
