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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pyredo import BLCKSZ
from pyredo.errors import RedoError, UnsupportedRecord, format_lsn
from pyredo.wal.record import XLR_INFO_MASK, DecodedXLogRecord

# clog.c -----------------------------------------------------------------------
CLOG_BITS_PER_XACT = 2
CLOG_XACTS_PER_BYTE = 4
CLOG_XACTS_PER_PAGE = BLCKSZ * CLOG_XACTS_PER_BYTE
CLOG_XACT_BITMASK = (1 << CLOG_BITS_PER_XACT) - 1

# slru.h
SLRU_PAGES_PER_SEGMENT = 32

# clog.h: XidStatus
TRANSACTION_STATUS_IN_PROGRESS = 0x00
TRANSACTION_STATUS_COMMITTED = 0x01
TRANSACTION_STATUS_ABORTED = 0x02
TRANSACTION_STATUS_SUB_COMMITTED = 0x03
STATUS_NAMES = {
    TRANSACTION_STATUS_IN_PROGRESS: "in progress",
    TRANSACTION_STATUS_COMMITTED: "committed",
    TRANSACTION_STATUS_ABORTED: "aborted",
    TRANSACTION_STATUS_SUB_COMMITTED: "sub-committed",
}

CLOG_ZEROPAGE = 0x00
CLOG_TRUNCATE = 0x10

# transam.h
InvalidTransactionId = 0
BootstrapTransactionId = 1
FrozenTransactionId = 2
FirstNormalTransactionId = 3
MaxTransactionId = 0xFFFFFFFF
# the last page number a 32-bit xid can map to
MAX_CLOG_PAGE = MaxTransactionId // CLOG_XACTS_PER_PAGE

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
_ORIGIN = struct.Struct("<Qq")

RM_XACT_NAME = "Transaction"
RM_CLOG_NAME = "CLOG"
_RM_XACT_ID = 1
_RM_CLOG_ID = 3

MissingMode = Literal["raise", "report", "zero"]


# -- errors ---------------------------------------------------------------------
class ClogError(RedoError):
    """pg_xact redo failed: a malformed xact/clog record, or a state PostgreSQL
    would refuse (an Assert in clog.c). Names rmgr, info and LSN."""


class NoBasePage(ClogError):
    """A record sets the status of an xid whose clog page is neither in the base
    pages nor created by a ZEROPAGE earlier in the range."""

    def __init__(
        self, pageno: int, xids: Sequence[int], *,
        rmgr: str | None = None, info: int | None = None, lsn: int | None = None,
    ) -> None:
        self.pageno = pageno
        self.xids = tuple(xids)
        shown = ", ".join(str(x) for x in self.xids[:8]) + (" ..." if len(self.xids) > 8 else "")
        super().__init__(f"no base page for clog page {pageno} (xids {shown})",
                         rmgr=rmgr, info=info, lsn=lsn)


class ClogStateError(ClogError):
    """A status change that TransactionIdSetStatusBit's Assert forbids
    (e.g. a committed xid marked aborted)."""


@dataclass(frozen=True, slots=True)
class _Where:
    """The record an error is about."""

    rmgr: str
    info: int | None = None
    lsn: int | None = None

    @classmethod
    def of(cls, rec: DecodedXLogRecord | None, rmgr: str) -> _Where:
        return cls(rmgr) if rec is None else cls(rmgr, rec.info, rec.lsn)

    def error(self, message: str, cls: type[ClogError] = ClogError) -> ClogError:
        return cls(message, rmgr=self.rmgr, info=self.info, lsn=self.lsn)


# -- bit layout (clog.c macros) -------------------------------------------------
def TransactionIdToPage(xid: int) -> int:
    return xid // CLOG_XACTS_PER_PAGE


def TransactionIdToPgIndex(xid: int) -> int:
    return xid % CLOG_XACTS_PER_PAGE


def TransactionIdToByte(xid: int) -> int:
    return TransactionIdToPgIndex(xid) // CLOG_XACTS_PER_BYTE


def TransactionIdToBIndex(xid: int) -> int:
    return xid % CLOG_XACTS_PER_BYTE


def TransactionIdIsNormal(xid: int) -> bool:
    return xid >= FirstNormalTransactionId


def TransactionIdPrecedes(id1: int, id2: int) -> bool:
    """TransactionIdPrecedes (transam.c): modulo-2^32 order for normal xids."""
    if not TransactionIdIsNormal(id1) or not TransactionIdIsNormal(id2):
        return id1 < id2
    diff = (id1 - id2) & 0xFFFFFFFF
    return diff >= 0x80000000  # (int32) diff < 0


def CLOGPagePrecedes(page1: int, page2: int) -> bool:
    """CLOGPagePrecedes (clog.c): page order for truncation, wraparound-aware.

    Both pages are offset so that the xids compared are normal ones.
    """
    xid1 = (page1 * CLOG_XACTS_PER_PAGE + FirstNormalTransactionId + 1) & 0xFFFFFFFF
    xid2 = (page2 * CLOG_XACTS_PER_PAGE + FirstNormalTransactionId + 1) & 0xFFFFFFFF
    return TransactionIdPrecedes(xid1, xid2) and TransactionIdPrecedes(
        xid1, (xid2 + CLOG_XACTS_PER_PAGE - 1) & 0xFFFFFFFF
    )


def SlruMayDeleteSegment(segpage: int, cutoff_page: int) -> bool:
    """SlruMayDeleteSegment (slru.c): the segment's first and last pages both
    precede the cutoff page."""
    seg_last_page = segpage + SLRU_PAGES_PER_SEGMENT - 1
    return CLOGPagePrecedes(segpage, cutoff_page) and CLOGPagePrecedes(seg_last_page, cutoff_page)


def get_xid_status(page: bytes | bytearray | memoryview, xid: int) -> int:
    """The 2-bit status of ``xid`` on its clog page (the read half of
    TransactionIdGetStatus, without the SLRU)."""
    bshift = TransactionIdToBIndex(xid) * CLOG_BITS_PER_XACT
    return (page[TransactionIdToByte(xid)] >> bshift) & CLOG_XACT_BITMASK


def set_xid_status(page: bytearray, xid: int, status: int) -> None:
    """Store a 2-bit status in the page (the byte arithmetic of
    TransactionIdSetStatusBit, without its checks)."""
    byteno = TransactionIdToByte(xid)
    bshift = TransactionIdToBIndex(xid) * CLOG_BITS_PER_XACT
    byteval = page[byteno] & ~(CLOG_XACT_BITMASK << bshift) & 0xFF
    page[byteno] = byteval | ((status & CLOG_XACT_BITMASK) << bshift)


def page_xids(pageno: int) -> range:
    """Every xid whose status lives on clog page ``pageno``."""
    return range(pageno * CLOG_XACTS_PER_PAGE, (pageno + 1) * CLOG_XACTS_PER_PAGE)


def status_name(status: int | None) -> str:
    if status is None:
        return "no page"
    return STATUS_NAMES.get(status, f"status {status}")


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


class _Cursor:
    """Bounds-checked reads from a record's main data: a short record gives a
    ClogError naming the record, never an IndexError or struct.error."""

    def __init__(self, data: bytes, what: str, where: _Where) -> None:
        self.data = data
        self.pos = 0
        self.what = what
        self.where = where

    def need(self, n: int, field_name: str) -> None:
        if n < 0 or self.pos + n > len(self.data):
            raise self.where.error(
                f"{self.what}: main data too short for {field_name} "
                f"(needs {n} bytes at offset {self.pos}, has {len(self.data)})"
            )

    def unpack(self, st: struct.Struct, field_name: str) -> tuple[int, ...]:
        self.need(st.size, field_name)
        out = st.unpack_from(self.data, self.pos)
        self.pos += st.size
        return tuple(out)

    def u32(self, field_name: str) -> int:
        return self.unpack(_U32, field_name)[0]

    def count(self, field_name: str, item_size: int) -> int:
        """An ``int`` element count followed by that many items: checked
        against the bytes left so a bogus count cannot make us read past them."""
        n = self.unpack(_I32, field_name)[0]
        if n < 0:
            raise self.where.error(f"{self.what}: negative {field_name} ({n})")
        self.need(n * item_size, f"{n} {field_name} items")
        return n

    def take(self, n: int, field_name: str) -> bytes:
        self.need(n, field_name)
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def _parse_xact_completion(
    info: int, data: bytes, *, with_invals: bool, what: str, where: _Where
) -> XactParsed:
    """The body shared by ParseCommitRecord and ParseAbortRecord: the optional
    parts in the order XactLogCommitRecord / XactLogAbortRecord write them."""
    cur = _Cursor(data, what, where)
    p = XactParsed()
    p.xact_time = cur.unpack(_I64, "xact_time")[0]
    if info & XLOG_XACT_HAS_INFO:
        p.xinfo = cur.u32("xl_xact_xinfo")
    if p.xinfo & XACT_XINFO_HAS_DBINFO:
        p.db_id, p.ts_id = cur.unpack(_DBINFO, "xl_xact_dbinfo")
    if p.xinfo & XACT_XINFO_HAS_SUBXACTS:
        n = cur.count("nsubxacts", 4)
        p.subxacts = struct.unpack_from(f"<{n}I", data, cur.pos)
        cur.pos += 4 * n
    if p.xinfo & XACT_XINFO_HAS_RELFILENODES:
        n = cur.count("nrels", SizeOfRelFileNode)
        p.xnodes = tuple(_RELFILENODE.iter_unpack(cur.take(n * SizeOfRelFileNode, "xnodes")))
    if p.xinfo & XACT_XINFO_HAS_DROPPED_STATS:
        n = cur.count("nitems", SizeOfXactStatsItem)
        p.stats = tuple(_STATS_ITEM.iter_unpack(cur.take(n * SizeOfXactStatsItem, "stats items")))
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
            cur.pos = end + 1
    # no alignment is guaranteed from here on: xl_xact_origin is copied bytewise
    if p.xinfo & XACT_XINFO_HAS_ORIGIN:
        p.origin_lsn, p.origin_timestamp = cur.unpack(_ORIGIN, "xl_xact_origin")
    return p


def ParseCommitRecord(info: int, data: bytes, rec: DecodedXLogRecord | None = None) -> XactParsed:
    """ParseCommitRecord (xactdesc.c): xl_xact_commit and the parts that its
    xinfo announces — dbinfo, subxacts, relfilenodes, dropped stats, invals,
    twophase (+ gid), origin."""
    return _parse_xact_completion(info, data, with_invals=True, what="commit record", where=_Where.of(rec, RM_XACT_NAME))


def ParseAbortRecord(info: int, data: bytes, rec: DecodedXLogRecord | None = None) -> XactParsed:
    """ParseAbortRecord (xactdesc.c): like a commit record without invals."""
    return _parse_xact_completion(info, data, with_invals=False, what="abort record", where=_Where.of(rec, RM_XACT_NAME))


def TransactionIdLatest(mainxid: int, xids: Sequence[int]) -> int:
    """TransactionIdLatest (transam.c): the newest of an xid and its children."""
    result = mainxid
    for x in reversed(xids):
        if TransactionIdPrecedes(result, x):
            result = x
    return result


# -- results --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class XidChange:
    """The last status a record of the range gave an xid."""

    xid: int
    status: int
    lsn: int
    record: str  # "Transaction/COMMIT" ...
    top_xid: int  # the xid the record completes (the tree's top)

    def __str__(self) -> str:
        top = "" if self.top_xid == self.xid else f" (subxact of {self.top_xid})"
        return f"{status_name(self.status)} by {self.record} at {format_lsn(self.lsn)}{top}"


@dataclass(frozen=True, slots=True)
class MissingPage:
    """Status bits a record wanted to set on a page the engine does not have."""

    pageno: int
    xids: tuple[int, ...]
    lsn: int
    record: str
    zeroed: bool  # on_missing="zero": read as zeroes, as SlruPhysicalReadPage does InRecovery

    def __str__(self) -> str:
        what = "read as zeroes" if self.zeroed else "bits not set"
        return (f"no base page for clog page {self.pageno} ({len(self.xids)} xids, first {self.xids[0]}) "
                f"at {self.record} {format_lsn(self.lsn)}: {what}")


@dataclass(frozen=True, slots=True)
class Truncation:
    """One CLOG/TRUNCATE as SimpleLruTruncate carried it out."""

    lsn: int
    cutoff_page: int
    oldest_xact: int
    oldest_xact_db: int
    removed_segments: tuple[int, ...]
    refused_wraparound: bool  # "could not truncate directory: apparent wraparound"


@dataclass
class ClogResult:
    """What the range left in pg_xact, and what it did on the way."""

    pages: dict[int, bytes]
    touched: set[int]  # pages whose status bits the range set, or that it zeroed
    zeroed: dict[int, int]  # pageno -> LSN of the range's last ZEROPAGE of it
    truncations: list[Truncation]
    changes: dict[int, XidChange]  # xid -> the last status the range gave it
    missing: list[MissingPage]
    counts: Counter[str]  # records seen by type ("Transaction/COMMIT" ...)
    subxacts: int  # subxact xids completed by commit/abort records
    assigned_subxacts: int  # subxact xids named by ASSIGNMENT records
    prepared_xids: list[int]  # xids of PREPARE records
    latest_page_number: int | None
    oldest_clog_xid: int | None

    def status(self, xid: int) -> int | None:
        """The xid's status in the result; None when its page does not exist."""
        page = self.pages.get(TransactionIdToPage(xid))
        return None if page is None else get_xid_status(page, xid)

    @property
    def removed_pages(self) -> set[int]:
        """Pages of segments that a TRUNCATE of the range removed (and that no
        later ZEROPAGE brought back)."""
        out: set[int] = set()
        for t in self.truncations:
            for seg in t.removed_segments:
                out.update(range(seg * SLRU_PAGES_PER_SEGMENT, (seg + 1) * SLRU_PAGES_PER_SEGMENT))
        return out - set(self.pages)


# -- the SLRU ---------------------------------------------------------------------
class ClogPages:
    """The pg_xact SLRU as redo sees it: page buffers and segment files in one
    (what is on disk after the next SimpleLruWriteAll).

    ``on_missing`` says what to do when a status must go on a page that does
    not exist: "raise" NoBasePage; "report" it and set nothing; or "zero" —
    read the page as zeroes when its whole segment file is absent, as
    SlruPhysicalReadPage does InRecovery (still reported). ``strict`` keeps
    the Assert of TransactionIdSetStatusBit (a ClogStateError); off, a
    transition it forbids overwrites the bits as a non-assert build does.
    """

    def __init__(
        self,
        base: Mapping[int, bytes] | None = None,
        *,
        latest_page: int | None = None,
        on_missing: MissingMode = "raise",
        strict: bool = True,
    ) -> None:
        self.pages: dict[int, bytearray] = {}
        for pageno, data in (base or {}).items():
            if not 0 <= pageno <= MAX_CLOG_PAGE:
                raise ClogError(f"base page number {pageno} is not a clog page", rmgr=RM_CLOG_NAME)
            if len(data) != BLCKSZ:
                raise ClogError(f"base clog page {pageno} has {len(data)} bytes, not {BLCKSZ}",
                                rmgr=RM_CLOG_NAME)
            self.pages[pageno] = bytearray(data)
        if on_missing not in ("raise", "report", "zero"):
            raise ValueError(f"on_missing must be raise, report or zero, not {on_missing!r}")
        self.on_missing: MissingMode = on_missing
        self.strict = strict
        # SLRU latest_page_number: StartupCLOG sets it from nextXid; without
        # one we take the highest base page (no wraparound inside the base).
        self.latest_page_number = latest_page if latest_page is not None else (
            max(self.pages) if self.pages else None)
        self.oldest_clog_xid: int | None = None
        self.touched: set[int] = set()
        self.zeroed: dict[int, int] = {}
        self.truncations: list[Truncation] = []
        self.changes: dict[int, XidChange] = {}
        self.missing: list[MissingPage] = []
        # the record being replayed, for error messages and XidChange
        self._rec: DecodedXLogRecord | None = None
        self._rec_type = ""
        self._top_xid = InvalidTransactionId

    # error context ---------------------------------------------------------
    def where(self, rmgr: str = RM_XACT_NAME) -> _Where:
        return _Where.of(self._rec, rmgr)

    def begin_record(self, rec: DecodedXLogRecord, rec_type: str) -> None:
        self._rec = rec
        self._rec_type = rec_type
        self._top_xid = InvalidTransactionId

    # slru.c ----------------------------------------------------------------
    def SimpleLruZeroPage(self, pageno: int) -> None:
        """SimpleLruZeroPage (slru.c), plus the SimpleLruWritePage that
        clog_redo does at once: the page exists, all zeroes, and is the
        latest page."""
        self.pages[pageno] = bytearray(BLCKSZ)
        self.latest_page_number = pageno
        self.touched.add(pageno)
        self.zeroed[pageno] = self._rec.lsn if self._rec is not None else 0

    def SimpleLruTruncate(self, cutoff_page: int, oldest_xact: int, oldest_xact_db: int) -> None:
        """SimpleLruTruncate (slru.c): unless the latest page would go (apparent
        wraparound), remove every segment whose pages all precede the cutoff
        (SlruScanDirCbDeleteCutoff over the segments that exist)."""
        lsn = self._rec.lsn if self._rec is not None else 0
        if self.latest_page_number is not None and CLOGPagePrecedes(self.latest_page_number, cutoff_page):
            self.truncations.append(Truncation(lsn, cutoff_page, oldest_xact, oldest_xact_db, (), True))
            return
        segments = sorted({p // SLRU_PAGES_PER_SEGMENT for p in self.pages})
        removed = tuple(s for s in segments if SlruMayDeleteSegment(s * SLRU_PAGES_PER_SEGMENT, cutoff_page))
        for seg in removed:
            for p in range(seg * SLRU_PAGES_PER_SEGMENT, (seg + 1) * SLRU_PAGES_PER_SEGMENT):
                self.pages.pop(p, None)
        self.truncations.append(Truncation(lsn, cutoff_page, oldest_xact, oldest_xact_db, removed, False))

    def SimpleLruReadPage(self, pageno: int, xids: Sequence[int]) -> bytearray | None:
        """SimpleLruReadPage (slru.c) for redo: the page, or — when it does not
        exist — what ``on_missing`` says (never a silent skip)."""
        page = self.pages.get(pageno)
        if page is not None:
            return page
        rec = self._rec
        lsn = rec.lsn if rec is not None else 0
        seg = pageno // SLRU_PAGES_PER_SEGMENT
        seg_exists = any(p // SLRU_PAGES_PER_SEGMENT == seg for p in self.pages)
        # SlruPhysicalReadPage zero-fills only a missing *file*; a page past the
        # end of an existing segment file is a read error even InRecovery.
        zero = self.on_missing == "zero" and not seg_exists
        if self.on_missing == "raise" or (self.on_missing == "zero" and not zero):
            w = self.where()
            raise NoBasePage(pageno, xids, rmgr=w.rmgr, info=w.info, lsn=w.lsn)
        self.missing.append(MissingPage(pageno, tuple(xids), lsn, self._rec_type, zero))
        if not zero:
            return None
        page = self.pages[pageno] = bytearray(BLCKSZ)
        return page

    # clog.c ----------------------------------------------------------------
    def TransactionIdSetStatusBit(self, xid: int, status: int, page: bytearray) -> None:
        """TransactionIdSetStatusBit (clog.c), InRecovery."""
        curval = get_xid_status(page, xid)
        # Replay goes through sub-commit then commit again; an xid already
        # committed stays so.
        if status == TRANSACTION_STATUS_SUB_COMMITTED and curval == TRANSACTION_STATUS_COMMITTED:
            return
        allowed = curval in (TRANSACTION_STATUS_IN_PROGRESS, status) or (
            curval == TRANSACTION_STATUS_SUB_COMMITTED and status != TRANSACTION_STATUS_IN_PROGRESS)
        if self.strict and not allowed:
            raise self.where().error(
                f"xid {xid} is {status_name(curval)} in pg_xact; "
                f"{self._rec_type} would make it {status_name(status)}",
                ClogStateError,
            )
        set_xid_status(page, xid, status)
        lsn = self._rec.lsn if self._rec is not None else 0
        self.changes[xid] = XidChange(xid, status, lsn, self._rec_type, self._top_xid)

    def TransactionIdSetPageStatusInternal(
        self, xid: int, subxids: Sequence[int], status: int, pageno: int
    ) -> None:
        """TransactionIdSetPageStatusInternal (clog.c): on one page, for a
        commit sub-commit the children first, then set the parent, then the
        children. (TransactionIdSetPageStatus only adds locking and the group
        update, which do not change the bytes.)"""
        valid = xid != InvalidTransactionId
        wanted = ([xid] if valid else []) + list(subxids)
        page = self.SimpleLruReadPage(pageno, wanted)
        if page is None:
            return
        if valid:
            if status == TRANSACTION_STATUS_COMMITTED:
                for sub in subxids:
                    self.TransactionIdSetStatusBit(sub, TRANSACTION_STATUS_SUB_COMMITTED, page)
            self.TransactionIdSetStatusBit(xid, status, page)
        for sub in subxids:
            self.TransactionIdSetStatusBit(sub, status, page)
        self.touched.add(pageno)

    def set_status_by_pages(self, subxids: Sequence[int], status: int) -> None:
        """set_status_by_pages (clog.c): runs of consecutive subxids on the same
        page, one TransactionIdSetPageStatus each."""
        i = 0
        while i < len(subxids):
            pageno = TransactionIdToPage(subxids[i])
            j = i
            while j < len(subxids) and TransactionIdToPage(subxids[j]) == pageno:
                j += 1
            self.TransactionIdSetPageStatusInternal(InvalidTransactionId, subxids[i:j], status, pageno)
            i = j

    def TransactionIdSetTreeStatus(self, xid: int, subxids: Sequence[int], status: int) -> None:
        """TransactionIdSetTreeStatus (clog.c): parent and children on one page
        in one go; otherwise (commit only) sub-commit the children on other
        pages, set the parent's page, then the other pages."""
        pageno = TransactionIdToPage(xid)
        i = 0
        while i < len(subxids) and TransactionIdToPage(subxids[i]) == pageno:
            i += 1
        if i == len(subxids):
            self.TransactionIdSetPageStatusInternal(xid, subxids, status, pageno)
            return
        rest = subxids[i:]
        if status == TRANSACTION_STATUS_COMMITTED:
            self.set_status_by_pages(rest, TRANSACTION_STATUS_SUB_COMMITTED)
        self.TransactionIdSetPageStatusInternal(xid, subxids[:i], status, pageno)
        self.set_status_by_pages(rest, status)

    def TransactionIdGetStatus(self, xid: int) -> int | None:
        """TransactionIdGetStatus (clog.c) without the group LSN; None if the
        page does not exist."""
        page = self.pages.get(TransactionIdToPage(xid))
        return None if page is None else get_xid_status(page, xid)

    # transam.c ---------------------------------------------------------------
    def TransactionIdCommitTree(self, xid: int, subxids: Sequence[int]) -> None:
        """TransactionIdCommitTree / TransactionIdAsyncCommitTree (transam.c):
        the same bits; the async LSN only goes to the in-memory group LSN."""
        self._top_xid = xid
        self.TransactionIdSetTreeStatus(xid, subxids, TRANSACTION_STATUS_COMMITTED)

    def TransactionIdAbortTree(self, xid: int, subxids: Sequence[int]) -> None:
        """TransactionIdAbortTree (transam.c)."""
        self._top_xid = xid
        self.TransactionIdSetTreeStatus(xid, subxids, TRANSACTION_STATUS_ABORTED)


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


def xact_redo(clog: ClogPages, stats: _Stats, rec: DecodedXLogRecord) -> None:
    """xact_redo (xact.c): dispatch on ``info & XLOG_XACT_OPMASK``."""
    _check_no_blocks(clog, rec, RM_XACT_NAME)
    info = rec.info & XLOG_XACT_OPMASK
    data = rec.main_data
    if info == XLOG_XACT_COMMIT:
        xact_redo_commit(clog, stats, ParseCommitRecord(rec.info, data, rec), rec.xid)
    elif info == XLOG_XACT_COMMIT_PREPARED:
        parsed = ParseCommitRecord(rec.info, data, rec)
        xact_redo_commit(clog, stats, parsed, parsed.twophase_xid)
    elif info == XLOG_XACT_ABORT:
        xact_redo_abort(clog, stats, ParseAbortRecord(rec.info, data, rec), rec.xid)
    elif info == XLOG_XACT_ABORT_PREPARED:
        parsed = ParseAbortRecord(rec.info, data, rec)
        xact_redo_abort(clog, stats, parsed, parsed.twophase_xid)
    elif info == XLOG_XACT_PREPARE:
        # No clog bit: PrepareRedoAdd only records the gxact in TwoPhaseState;
        # the xid keeps its in-progress status until COMMIT/ABORT PREPARED.
        cur = _Cursor(data, "prepare record", clog.where())
        cur.need(XactPrepareXidOffset + 4, "xl_xact_prepare.xid")
        stats.prepared_xids.append(_U32.unpack_from(data, XactPrepareXidOffset)[0])
    elif info == XLOG_XACT_ASSIGNMENT:
        # No clog bit: ProcArrayApplyXidAssignment feeds KnownAssignedXids and
        # pg_subtrans (SubTransSetParent) of a hot standby, not pg_xact.
        cur = _Cursor(data, "assignment record", clog.where())
        cur.need(MinSizeOfXactAssignment, "xl_xact_assignment")
        cur.pos = 4
        stats.assigned_subxacts += cur.count("nsubxacts", 4)
    elif info == XLOG_XACT_INVALIDATIONS:
        # No clog bit: xact_redo ignores these ("what matters are invalidations
        # written into the commit record").
        pass
    else:
        raise UnsupportedRecord(RM_XACT_NAME, rec.info, rec.lsn)


def clog_redo(clog: ClogPages, rec: DecodedXLogRecord) -> None:
    """clog_redo (clog.c): ZEROPAGE and TRUNCATE."""
    _check_no_blocks(clog, rec, RM_CLOG_NAME)
    info = rec.info & ~XLR_INFO_MASK & 0xFF
    where = clog.where(RM_CLOG_NAME)
    if info == CLOG_ZEROPAGE:
        cur = _Cursor(rec.main_data, "ZEROPAGE record", where)
        (pageno,) = cur.unpack(_I32, "pageno")
        if not 0 <= pageno <= MAX_CLOG_PAGE:
            raise where.error(f"ZEROPAGE of page {pageno}, not a clog page")
        clog.SimpleLruZeroPage(pageno)
    elif info == CLOG_TRUNCATE:
        cur = _Cursor(rec.main_data, "TRUNCATE record", where)
        pageno, oldest_xact, oldest_db = cur.unpack(_CLOG_TRUNCATE, "xl_clog_truncate")
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
    if rec.rmid == _RM_XACT_ID:
        name = _XACT_NAMES.get(rec.info & XLOG_XACT_OPMASK, f"UNKNOWN ({rec.info & XLOG_XACT_OPMASK:x})")
        return f"{RM_XACT_NAME}/{name}"
    name = _CLOG_NAMES.get(rec.info & 0xF0, f"UNKNOWN ({rec.info & 0xF0:x})")
    return f"{RM_CLOG_NAME}/{name}"


def replay_clog(
    records: Iterable[DecodedXLogRecord],
    base: Mapping[int, bytes] | None = None,
    *,
    latest_page: int | None = None,
    on_missing: MissingMode = "raise",
    strict: bool = True,
) -> ClogResult:
    """Replay the pg_xact part of a WAL range.

    ``records`` in LSN order (records of other resource managers are passed
    over: none of them writes pg_xact); ``base`` the pg_xact pages at the
    range's start. Pure: the base mapping is not modified.
    """
    clog = ClogPages(base, latest_page=latest_page, on_missing=on_missing, strict=strict)
    stats = _Stats()
    for rec in records:
        if rec.rmid == _RM_XACT_ID:
            kind = record_kind(rec)
            stats.counts[kind] += 1
            clog.begin_record(rec, kind)
            xact_redo(clog, stats, rec)
        elif rec.rmid == _RM_CLOG_ID:
            kind = record_kind(rec)
            stats.counts[kind] += 1
            clog.begin_record(rec, kind)
            clog_redo(clog, rec)
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


def completed_xids(records: Iterable[DecodedXLogRecord]) -> dict[int, XidChange]:
    """The final status that the commit and abort records of a range give
    each xid (the top xid and its subxacts; last record wins), read from the
    records alone, without pages: what the range determines, independent of
    how an engine sets the bits. Malformed records raise as in ``replay_clog``."""
    out: dict[int, XidChange] = {}
    for rec in records:
        if rec.rmid != _RM_XACT_ID:
            continue
        op = rec.info & XLOG_XACT_OPMASK
        if op in (XLOG_XACT_COMMIT, XLOG_XACT_COMMIT_PREPARED):
            parsed = ParseCommitRecord(rec.info, rec.main_data, rec)
            status = TRANSACTION_STATUS_COMMITTED
        elif op in (XLOG_XACT_ABORT, XLOG_XACT_ABORT_PREPARED):
            parsed = ParseAbortRecord(rec.info, rec.main_data, rec)
            status = TRANSACTION_STATUS_ABORTED
        else:
            continue
        top = parsed.twophase_xid if op in (XLOG_XACT_COMMIT_PREPARED, XLOG_XACT_ABORT_PREPARED) else rec.xid
        if top == InvalidTransactionId:
            raise _Where.of(rec, RM_XACT_NAME).error("completion record completes no transaction (invalid xid)")
        kind = record_kind(rec)
        for x in (top, *parsed.subxacts):
            out[x] = XidChange(x, status, rec.lsn, kind, top)
    return out


ClogEngine = Callable[..., ClogResult]
"""What ``harness.verify.clogcheck.check_clog`` calls: ``replay_clog`` or a stand-in
with its signature (records, base, *, latest_page, on_missing)."""
