"""The pg_xact page-state machine: clog.c's bit layout and the SLRU as redo sees it.

``ClogPages`` holds the pg_xact pages of a replay (page buffers and segment
files in one) and carries out what clog.c and slru.c do to them:
TransactionIdSetTreeStatus, SimpleLruZeroPage, SimpleLruTruncate. What the
records say is parsed in ``pyredo.slru.clog``, which drives this machine
(``replay_clog``) and re-exports its public names.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pyredo import BLCKSZ
from pyredo.errors import RedoError, format_lsn
from pyredo.wal.record import DecodedXLogRecord

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

RM_XACT_NAME = "Transaction"
RM_CLOG_NAME = "CLOG"

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
class Where:
    """The record an error is about."""

    rmgr: str
    info: int | None = None
    lsn: int | None = None

    @classmethod
    def of(cls, rec: DecodedXLogRecord | None, rmgr: str) -> Where:
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
    def where(self, rmgr: str = RM_XACT_NAME) -> Where:
        return Where.of(self._rec, rmgr)

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
