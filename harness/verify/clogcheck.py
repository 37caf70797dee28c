"""Witness check of pg_xact: rebuild the clog pages a WAL range touches with
pyredo's SLRU engine and compare them with the primary's pg_xact.

A page server's C redo never replays SLRUs, so there is no second engine
here: the primary's pg_xact, read after a CHECKPOINT (CheckPointCLOG writes
every dirty clog page), is the witness.

Use::

    base = take_pg_xact_snapshot(cluster.pgdata)   # right after the CHECKPOINT that starts the range
    ... run the workload ...
    cluster.checkpoint()
    report = check_clog(WalReader(cluster.waldir, start, end), base, cluster.pgdata)
    assert report.ok, report.summary()

What the range determines, and what it does not
-----------------------------------------------
The xids the range determines are read from its commit and abort records
alone (``completed_xids``: the top xid or xl_xact_twophase, and the
subxacts), not from what the engine did, so an engine that forgets an xid
cannot make it look undetermined. Checked are the pages of those xids and
the pages the engine touched (a ZEROPAGE, a status set). On such a page
every 2-bit status is compared, and a difference is a divergence when

* a record of the range set that xid's status (commit/abort of it or of
  its tree): the range determines it; or
* the engine's status differs from the *reference*: the base snapshot's
  status, or zero when the range zeroed the page. The engine changed a bit
  no record asked it to (an off-by-one, a missed ZEROPAGE ...).

Every other xid's bits must come from the base snapshot unchanged, and the
range says nothing about them: the primary may legitimately differ there —
an xid that committed after the range's end but before the CHECKPOINT, or
one whose commit record came before the range start but whose clog page was
still dirty in shared memory when the snapshot was copied. Those differences
are counted as ``undetermined`` (with a few examples), not divergences.

Pages of segments a TRUNCATE of the range removed must be gone on the
primary too. A record that needs a page the engine does not have (not in the
base, not zeroed in the range) is reported in ``missing`` and fails the
check: never a silent skip.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pyredo import BLCKSZ
from pyredo.rmgr import RM_CLOG_ID, RM_XACT_ID
from pyredo.slru.clog import (
    CLOG_BITS_PER_XACT,
    CLOG_TRUNCATE,
    CLOG_XACT_BITMASK,
    CLOG_XACTS_PER_BYTE,
    CLOG_XACTS_PER_PAGE,
    ClogEngine,
    MissingPage,
    TransactionIdToPage,
    Truncation,
    XidChange,
    completed_xids,
    get_xid_status,
    replay_clog,
    status_name,
)
from pyredo.slru.files import load_base_pages, read_slru_pages, snapshot_pg_xact
from pyredo.wal.record import XLR_RMGR_INFO_MASK, DecodedXLogRecord

__all__ = ["ClogDivergence", "ClogReport", "check_clog", "take_pg_xact_snapshot"]

_ZERO_PAGE = bytes(BLCKSZ)


@dataclass(frozen=True)
class ClogDivergence:
    """One xid (or a whole page) where pyredo's pg_xact and the primary's differ."""

    page: int
    xid: int | None  # None: the page as a whole (missing, or should be truncated)
    expected: int | None  # pyredo's status (None: no such page)
    got: int | None  # the primary's status (None: no such page)
    reason: str
    set_by: XidChange | None = None

    def __str__(self) -> str:
        if self.xid is None:
            return f"clog page {self.page}: {self.reason}"
        by = f"; the range set it {self.set_by}" if self.set_by is not None else ""
        return (f"xid {self.xid} (clog page {self.page}): pyredo {status_name(self.expected)}, "
                f"primary {status_name(self.got)} — {self.reason}{by}")


@dataclass
class ClogReport:
    """The outcome of ``check_clog``."""

    pages_checked: list[int] = field(default_factory=list)
    pages_identical: list[int] = field(default_factory=list)  # byte for byte
    xids_set: int = 0  # xids whose status the range set (on pages still there)
    xids_by_status: Counter[str] = field(default_factory=Counter)
    divergences: list[ClogDivergence] = field(default_factory=list)
    undetermined: int = 0  # differing statuses the range does not determine
    undetermined_examples: list[tuple[int, int, int]] = field(default_factory=list)  # xid, pyredo, primary
    missing: list[MissingPage] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)  # xact/clog records by type
    subxacts: int = 0
    assigned_subxacts: int = 0
    prepared_xids: list[int] = field(default_factory=list)
    zeropages: list[int] = field(default_factory=list)
    truncations: list[Truncation] = field(default_factory=list)
    removed_pages_checked: int = 0
    pages_gone_after_range: list[int] = field(default_factory=list)  # removed by a later TRUNCATE

    @property
    def ok(self) -> bool:
        return not self.divergences and not self.missing

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items())) or "no xact/clog records"
        lines = [
            f"pg_xact: {len(self.pages_checked)} pages checked "
            f"({len(self.pages_identical)} byte-identical), {self.xids_set} xids set "
            f"({', '.join(f'{k} {v}' for k, v in sorted(self.xids_by_status.items())) or 'none'}), "
            f"{self.subxacts} of them subxacts; {len(self.divergences)} divergences, "
            f"{len(self.missing)} missing pages, {self.undetermined} undetermined differences",
            f"  records: {kinds}",
        ]
        if self.zeropages:
            lines.append(f"  zeroed pages: {self.zeropages}")
        for t in self.truncations:
            segs = ", ".join(f"{s:04X}" for s in t.removed_segments) or "none"
            extra = " (refused: apparent wraparound)" if t.refused_wraparound else ""
            lines.append(f"  truncate before page {t.cutoff_page} (oldestXact {t.oldest_xact}): "
                         f"removed segments {segs}{extra}")
        if self.pages_gone_after_range:
            lines.append(f"  pages gone on the primary after the range: {len(self.pages_gone_after_range)}")
        lines += [f"  DIVERGENCE {d}" for d in self.divergences[:50]]
        if len(self.divergences) > 50:
            lines.append(f"  ... {len(self.divergences) - 50} more divergences")
        lines += [f"  MISSING {m}" for m in self.missing[:20]]
        lines += [f"  undetermined: xid {x} pyredo {status_name(e)} primary {status_name(g)}"
                  for x, e, g in self.undetermined_examples[:5]]
        return "\n".join(lines)


def take_pg_xact_snapshot(pgdata: str | os.PathLike[str], dest: str | os.PathLike[str] | None = None) -> Path:
    """Copy pg_xact's segment files (into a new temporary directory unless
    ``dest`` is given). Call right after the CHECKPOINT that starts the range;
    the caller removes the directory."""
    target = Path(dest) if dest is not None else Path(tempfile.mkdtemp(prefix="redodiff-pg_xact-"))
    return snapshot_pg_xact(pgdata, target)


def _compare_page(
    pageno: int, exp: bytes, got: bytes, ref: bytes, changes: Mapping[int, XidChange], report: ClogReport,
    max_examples: int,
) -> None:
    """Classify every differing 2-bit status of one page (see the module docstring)."""
    first_xid = pageno * CLOG_XACTS_PER_PAGE
    for byteno in range(BLCKSZ):
        e_byte, g_byte = exp[byteno], got[byteno]
        if e_byte == g_byte:
            continue
        for k in range(CLOG_XACTS_PER_BYTE):
            shift = k * CLOG_BITS_PER_XACT
            e = (e_byte >> shift) & CLOG_XACT_BITMASK
            g = (g_byte >> shift) & CLOG_XACT_BITMASK
            if e == g:
                continue
            xid = first_xid + byteno * CLOG_XACTS_PER_BYTE + k
            change = changes.get(xid)
            r = (ref[byteno] >> shift) & CLOG_XACT_BITMASK
            if change is not None:
                report.divergences.append(ClogDivergence(pageno, xid, e, g, "status set by the range", change))
            elif e != r:
                report.divergences.append(ClogDivergence(
                    pageno, xid, e, g,
                    f"pyredo changed it from {status_name(r)} though no record of the range sets it"))
            else:
                report.undetermined += 1
                if len(report.undetermined_examples) < max_examples:
                    report.undetermined_examples.append((xid, e, g))


def pg_major_of(pgdata: str | os.PathLike[str]) -> int:
    """The major of the data directory (its PG_VERSION); 15 when it has none."""
    try:
        return int(Path(pgdata, "PG_VERSION").read_text().split(".")[0])
    except (OSError, ValueError):
        return 15


def check_clog(
    records: Iterable[DecodedXLogRecord],
    base: str | os.PathLike[str] | Mapping[int, bytes] | None,
    primary_pgdata: str | os.PathLike[str],
    *,
    engine: ClogEngine = replay_clog,
    latest_page: int | None = None,
    max_examples: int = 20,
) -> ClogReport:
    """Rebuild every clog page the range touches and compare it with the
    primary's pg_xact (read it after a CHECKPOINT).

    ``records``: the range, in LSN order (all rmgrs; only xact and clog
    records matter). ``base``: pg_xact at the range's start — a snapshot
    directory (``take_pg_xact_snapshot``), a data directory, ``{pageno:
    bytes}``, or None. ``engine``: ``replay_clog`` or a stand-in with its
    signature (tests pass a deliberately wrong one). ``latest_page``: the
    SLRU's latest page at the start, if known (TRUNCATE's wraparound check);
    by default the highest base page.
    """
    # only xact and clog records matter: keep just those (a range's heap
    # records with their page images need not stay in memory)
    records = [r for r in records if r.rmid in (RM_XACT_ID, RM_CLOG_ID)]
    base_pages = load_base_pages(base)
    major = pg_major_of(primary_pgdata)  # the xact/clog record layouts differ (XactLayout)
    determined = completed_xids(records, major=major)
    result = engine(records, base_pages, latest_page=latest_page, on_missing="report", major=major)
    primary = read_slru_pages(primary_pgdata)
    removed = result.removed_pages
    report = ClogReport(
        missing=list(result.missing), counts=Counter(result.counts), subxacts=result.subxacts,
        assigned_subxacts=result.assigned_subxacts, prepared_xids=list(result.prepared_xids),
        zeropages=sorted(result.zeroed), truncations=list(result.truncations),
    )
    determined_pages = set()
    for xid, change in determined.items():
        pageno = TransactionIdToPage(xid)
        if pageno not in removed:  # else a later TRUNCATE of the range took it away
            determined_pages.add(pageno)
            report.xids_set += 1
            report.xids_by_status[status_name(change.status)] += 1

    checked = sorted({p for p in result.touched if p in result.pages} | determined_pages)
    missing_pages = {m.pageno for m in result.missing}
    for pageno in checked:
        report.pages_checked.append(pageno)
        exp = result.pages.get(pageno)
        got = primary.get(pageno)
        if exp is None:
            if pageno not in missing_pages:  # (a missing base page is reported in ``missing``)
                report.divergences.append(ClogDivergence(
                    pageno, None, None, None,
                    "the range sets statuses on this page but pyredo has no such page"))
            continue
        if got is None:
            report.divergences.append(ClogDivergence(
                pageno, None, None, None, "the range writes this page but the primary has no such page"))
            continue
        if exp == got:
            report.pages_identical.append(pageno)
            continue
        # reference: what the page held before the range wrote it
        ref = _ZERO_PAGE if pageno in result.zeroed else base_pages.get(pageno, _ZERO_PAGE)
        _compare_page(pageno, exp, got, ref, determined, report, max_examples)

    for pageno in sorted(removed):
        report.removed_pages_checked += 1
        if pageno in primary:
            report.divergences.append(ClogDivergence(
                pageno, None, None, get_xid_status(primary[pageno], pageno * CLOG_XACTS_PER_PAGE),
                "a TRUNCATE of the range removed this page's segment but the primary still has it"))
    # The other way round: a page pyredo keeps that the primary no longer has.
    # Only a clog TRUNCATE removes pages; when the range has one, pyredo must
    # have carried it out as the primary did. Without one, the primary's
    # TRUNCATE came after the range: nothing the range determines.
    # (Whether the range has one is read from the records, not from the engine.)
    gone = sorted(set(result.pages) - set(primary))
    if any(r.rmid == RM_CLOG_ID and r.info & XLR_RMGR_INFO_MASK == CLOG_TRUNCATE for r in records):
        report.divergences += [ClogDivergence(
            p, None, None, None, "pyredo keeps this page after the range's TRUNCATE but the primary removed it")
            for p in gone]
    else:
        report.pages_gone_after_range = gone
    return report
