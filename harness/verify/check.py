"""Verify a WAL range: redo every block with every engine, compare, witness with the primary.

Steps 3–5 of the data flow (plan, redo twice, witness). Engines are compared
byte for byte with NO masks; each engine's page is compared with the primary's
page under PostgreSQL's consistency masks. The result is a ``CheckReport``
whose JSON keys the CLI and the fuzzer share.
"""

from __future__ import annotations

import functools
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.interrupts import Interrupted, Interrupts
from harness.reports.cells import block_cells
from harness.reports.counts import ENGINE_PHASE, PageCounts
from harness.reports.schema import CheckResult, DivergenceEntry, DivergenceKind, EngineErrorKind
from harness.verify.engines import Engine, SendsAhead
from harness.verify.plan import RESET_BASE, BlockPlan, Plan, build_plan, decode_all, records_frozen
from harness.verify.unlogged import end_of_recovery
from harness.verify.verdict import BLOCK_ABSENT, Verdict, Witnessed, judge, reconcile
from oracles.compare import explain_diff
from oracles.known_issues import KnownIssues
from oracles.masks import MaskError, guess_owner, mask_page
from pyredo.errors import UnsupportedRecord
from pyredo.page.bufpage import PageGetLSN
from pyredo.rmgrlist import PG15, RmgrTable
from pyredo.wal.record import (
    FSM_FORKNUM,
    INIT_FORKNUM,
    XLR_RMGR_INFO_MASK,
    BufferTag,
    DecodedXLogRecord,
)

PageSource = Callable[[BufferTag], "bytes | None"]
_Sent = tuple["bytes | None", dict[str, Any]]  # a page's base, and its requests already sent (by engine)


class _NotSent:
    """``check_block``'s default: nothing was looked up ahead for the page (None: it was,
    and the page cannot be redone)."""


NOT_SENT = _NotSent()
LOOKAHEAD = 32  # pages whose wal-redo requests may be sent before their turn


ENGINE_DISAGREEMENT = DivergenceKind.ENGINE_DISAGREEMENT
ENGINE_VS_PRIMARY = DivergenceKind.ENGINE_VS_PRIMARY
ENGINE_ERROR = DivergenceKind.ENGINE_ERROR
PRIMARY_DIFFERS = DivergenceKind.PRIMARY_DIFFERS


@dataclass
class Divergence:
    """One page where engines disagree, the primary differs from them, or an engine failed.
    ``verdict``: the vote in one line (harness.verify.verdict); ``known``: the id of
    the known PostgreSQL issue it matches (oracles/known_issues.toml), if any."""

    kind: DivergenceKind
    tag: BufferTag
    engines: list[str]
    record_type: str
    first_diverging_lsn: int | None
    records: list[DecodedXLogRecord]
    base_page: bytes | None
    pages: dict[str, bytes]  # engine name (or "primary") -> page
    owner: str | None
    diff: list[str] = field(default_factory=list)
    error: str | None = None
    verdict: str | None = None
    known: str | None = None

    def entry(self) -> DivergenceEntry:
        """What a report says of it (harness.reports.schema)."""
        return DivergenceEntry(self.kind, str(self.tag), list(self.engines), self.record_type,
                               self.first_diverging_lsn, list(self.tag), [r.lsn for r in self.records],
                               self.owner, list(self.diff), self.error, self.verdict, self.known)

    def to_json(self) -> dict[str, Any]:
        return self.entry().to_json()


@dataclass
class CheckReport(PageCounts):
    """What a check found; its counts (``PageCounts``, with seconds by phase) are a report's."""

    divergences: list[Divergence] = field(default_factory=list)
    engines: list[str] = field(default_factory=list)
    infrastructure: list[str] = field(default_factory=list)  # engine trouble that is not a finding
    clog_divergences: list[str] = field(default_factory=list)
    start: int | None = None
    end: int | None = None
    interrupted: bool = False  # a stop request ended the check before its last page
    end_of_recovery: dict[str, Any] | None = None  # what crash recovery does with unlogged relations
    _verified: set[int] = field(default_factory=set, repr=False)
    _init_pages: dict[BufferTag, tuple[bytes, str | None]] = field(default_factory=dict, repr=False)
    _unsupported_seen: set[int] = field(default_factory=set, repr=False)

    @property
    def clean(self) -> bool:
        return not self.divergences and not self.clog_divergences

    @property
    def unknown_divergences(self) -> list[Divergence]:
        """The findings: divergences that match no known PostgreSQL issue."""
        return [d for d in self.divergences if d.known is None]

    def add_clog(self, clog: Any) -> None:
        """Fold in a commit-log check (harness.verify.clogcheck.ClogReport)."""
        self.clog_pages_checked += len(clog.pages_checked)
        self.clog_xids_verified += clog.xids_set
        self.clog_divergences += [str(d) for d in clog.divergences] + [f"missing {m}" for m in clog.missing]

    def merge(self, other: CheckReport) -> None:
        self.add_counts(other)
        self.divergences.extend(other.divergences)
        self.infrastructure += other.infrastructure
        self.clog_divergences += other.clog_divergences
        self.interrupted |= other.interrupted
        for e in other.engines:
            if e not in self.engines:
                self.engines.append(e)

    def result(self) -> CheckResult:
        """What the report says (harness.reports.schema): ``redodiff check/demo --report``."""
        result = CheckResult([d.entry() for d in self.divergences], list(self.engines), list(self.infrastructure),
                             list(self.clog_divergences), self.start, self.end, interrupted=self.interrupted,
                             end_of_recovery=self.end_of_recovery)
        result.add_counts(self)
        return result

    def to_json(self) -> dict[str, Any]:
        return self.result().to_json()


def bisect_first_divergence(
    a: Engine, b: Engine, tag: BufferTag, base: bytes | None, records: Sequence[DecodedXLogRecord]
) -> int | None:
    """Index of the first record after which engines ``a`` and ``b`` disagree
    (bisecting the record prefix); None if they agree on every prefix tried."""

    def differs(k: int) -> bool:
        try:
            return a.reconstruct(tag, base, records[:k]) != b.reconstruct(tag, base, records[:k])
        except Exception:  # an engine failing on a prefix counts as disagreement
            return True

    lo, hi = 1, len(records)
    if not differs(hi):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if differs(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo - 1


@functools.cache
def default_known_issues() -> KnownIssues:
    """oracles/known_issues.toml, read once, for any PostgreSQL release."""
    return KnownIssues.load()


class Checker:
    """Runs the redo-and-witness vote over a plan: every engine on every page
    (harness.verify.verdict says what their answers and the primary's mean)."""

    def __init__(
        self,
        engines: Sequence[Engine],
        primary: PageSource | None,
        base: PageSource | None = None,
        *,
        end_lsn: int | None = None,
        owner_of: Callable[[BufferTag], str | None] | None = None,
        base_is_snapshot: bool = False,
        interrupts: Interrupts | None = None,
        known_issues: KnownIssues | None = None,
        table: RmgrTable | None = None,
        supersede: bool = True,
    ) -> None:
        if not engines:
            raise ValueError("at least one engine is needed")
        self.engines = list(engines)
        # those that take requests ahead (asked once: isinstance of a Protocol takes 10 us)
        self.senders: list[SendsAhead] = [e for e in self.engines if isinstance(e, SendsAhead)]
        # the major's rmgr table names record types (Heap2/PRUNE_ON_ACCESS in 17):
        # given, else pyredo's, else PostgreSQL 15's
        self.table = table or next((t for t in (getattr(e, "table", None) for e in self.engines)
                                    if isinstance(t, RmgrTable)), PG15)
        self.primary = primary
        self.base = base
        self.end_lsn = end_lsn
        self.owner_of = owner_of
        # a snapshot of the whole data directory at the range start: a block it
        # lacks did not exist then, and redo starts from a zero page (as a
        # wal-redo server given no page does)
        self.base_is_snapshot = base_is_snapshot
        self.interrupts = interrupts if interrupts is not None else Interrupts()
        for e in self.engines:  # a wal-redo request in flight waits for a stop a short grace only
            if hasattr(e, "stop_requested"):
                e.stop_requested = lambda: self.interrupts.pending
        # known PostgreSQL issues (oracles/known_issues.toml); default: for any release
        self.known_issues = known_issues if known_issues is not None else default_known_issues()
        # a page's redo starts at its last reset (harness.verify.plan); False: every record is redone
        self.supersede = supersede

    def check_records(self, records: Iterable[DecodedXLogRecord], *,
                      progress: Callable[[int, int], None] | None = None,
                      start: int | None = None, end: int | None = None) -> CheckReport:
        """Decode (unless ``records`` is a list: decoded already), plan, check; the
        report's phases say how long each took."""
        timing = PageCounts()
        try:
            with timing.timed("decode"):
                records = decode_all(records if isinstance(records, list) else self.interrupts.each(records))
        except Interrupted:  # stopped while decoding: no page was reached
            return CheckReport(engines=[e.name for e in self.engines], start=start, end=end, interrupted=True,
                               phases=timing.phases)
        with records_frozen():
            try:
                with timing.timed("plan"):
                    plan = build_plan(records, start, end, check=self.interrupts.check, supersede=self.supersede)
            except Interrupted:  # stopped while planning: no page was reached
                return CheckReport(engines=[e.name for e in self.engines], start=start, end=end,
                                   interrupted=True, phases=timing.phases)
            report = self.check_plan(plan, progress=progress)
        report.phases.add_all(timing.phases)
        return report

    def check_plan(self, plan: Plan, *, progress: Callable[[int, int], None] | None = None) -> CheckReport:
        report = CheckReport(records=plan.records, engines=[e.name for e in self.engines],
                             start=plan.start, end=plan.end)
        if self.end_lsn is None and plan.end is not None:
            self.end_lsn = plan.end
        if plan.retired:
            report.pages_skipped["cut off by a relation truncation"] += len(plan.retired)
        report.replays_superseded = sum(bp.superseded for bp in plan.blocks.values())
        total = len(plan.blocks)
        done = 0
        blocks = list(plan.blocks.values())
        # wal-redo requests go out ahead of their pages, LOOKAHEAD/2 at a time (one write,
        # one wake-up of the server): it works through them while pyredo and the witness
        # work here, and its answers wait in the pipe
        ahead: dict[int, _Sent | None] = {}
        senders = self.senders
        t_loop = time.perf_counter()
        try:
            for i, bp in enumerate(blocks):
                self.interrupts.check()  # between pages: what was found so far is kept
                if senders and len(ahead) <= LOOKAHEAD // 2:
                    for k in range(i + len(ahead), min(i + LOOKAHEAD, total)):
                        ahead[k] = self._send_ahead(blocks[k], report) if blocks[k].records else None
                    for e in senders:
                        t0 = time.perf_counter()
                        e.flush()
                        report.phases.add(ENGINE_PHASE + e.name, time.perf_counter() - t0)
                sent = ahead.pop(i, NOT_SENT)
                if bp.records:
                    self.check_block(bp, report, sent)
                done += 1
                if progress is not None:
                    progress(done, total)
        except Interrupted:
            report.interrupted = True
            report.pages_skipped["not reached: interrupted"] += total - done
        report.end_of_recovery = end_of_recovery(plan.unlogged, report._init_pages, self.primary, self.table)
        # what the loop took besides the engines, the witness and the coverage: base pages,
        # verdicts, skips, bookkeeping (the report's phases are this loop's so far)
        report.phases.add("judge", max(0.0, time.perf_counter() - t_loop - sum(report.phases.values())))
        return report

    def _base_of(self, bp: BlockPlan) -> tuple[bool, bytes | None]:
        """(whether the page can be redone, its base page): not without a base it needs;
        RESET_BASE when the first record resets the page (harness.verify.plan)."""
        if not bp.needs_base:
            return True, RESET_BASE if bp.self_contained else None
        base = self.base(bp.tag) if self.base is not None else None
        return base is not None or (self.base is not None and self.base_is_snapshot), base

    def _send_ahead(self, bp: BlockPlan, report: CheckReport) -> _Sent | None:
        """Send ``bp``'s request to the engines that take requests ahead (a wal-redo
        server's ``submit``); None when the page will not be redone."""
        if bp.unverifiable:
            return None
        ok, base = self._base_of(bp)
        if not ok:
            return None
        submitted: dict[str, Any] = {}
        for engine in self.senders:
            t0 = time.perf_counter()
            submitted[engine.name] = engine.submit(bp.tag, base, bp.records)
            report.phases.add(ENGINE_PHASE + engine.name, time.perf_counter() - t0)
        return base, submitted

    def check_block(self, bp: BlockPlan, report: CheckReport, sent: _Sent | _NotSent | None = NOT_SENT) -> None:
        """Redo one page with every engine and judge it; ``sent``: what ``_send_ahead``
        returned for it already (NOT_SENT: the requests go out now), so a page without
        its base is not looked up twice."""
        tag = bp.tag
        if bp.unverifiable:
            report.pages_skipped["unverifiable: " + bp.unverifiable.split(" at LSN")[0]] += 1
            return
        if isinstance(sent, _NotSent):
            sent = self._send_ahead(bp, report)
        if sent is None:
            report.pages_skipped_no_base += 1
            return
        base, submitted = sent

        pages: dict[str, bytes] = {}
        failures: dict[str, Exception] = {}
        abstained: list[str] = []
        for engine in self.engines:  # every engine runs, whatever the others did
            t0 = time.perf_counter()
            try:
                pending = submitted.get(engine.name)
                pages[engine.name] = (pending.result() if pending is not None
                                      else engine.reconstruct(tag, base, bp.records))
            except UnsupportedRecord as e:  # abstains: a record it does not implement
                self._count_unsupported(report, bp, e)
                abstained.append(engine.name)
            except Exception as e:  # an engine failure is a finding, not a crash
                self.interrupts.check()  # ... unless a stop request caused it: the page is not reached
                error_kind = EngineErrorKind.of(e)
                if error_kind is EngineErrorKind.REFUSAL:
                    report.pages_skipped[f"{engine.name} refused the request"] += 1
                    abstained.append(engine.name)
                elif error_kind is EngineErrorKind.INFRASTRUCTURE:
                    report.infrastructure.append(f"{engine.name} on {tag}: {type(e).__name__}: {e}")
                    abstained.append(engine.name)
                else:
                    failures[engine.name] = e
            report.phases.add(ENGINE_PHASE + engine.name, time.perf_counter() - t0)
        if not pages and not failures:
            return
        allowed = reconcile(self.engines, tag, bp.records, pages)  # e.g. Neon's deliberate differences
        t0 = time.perf_counter()  # report.timed("witness"), without a generator-based context per page
        witness = self._witness(bp, pages, report) if pages else Witnessed("no engine answered")
        report.phases.add("witness", time.perf_counter() - t0)
        verdict = judge(pages, failures, witness, abstained, allowed)
        if verdict.kind is None:
            if tag.fork == INIT_FORKNUM and pages:  # what the main fork becomes at recovery's end
                report._init_pages[tag] = (next(iter(pages.values())), witness.owner or bp.owner)
            if verdict.compared:
                t0 = time.perf_counter()
                self._count_verified(bp, report, verdict.label)
                report.phases.add("coverage", time.perf_counter() - t0)
            return
        div = self._divergence(bp, base, pages, failures, witness, verdict)
        report.divergences.append(div)
        report.verdicts[verdict.label + (f" (known: {div.known})" if div.known else "")] += 1

    def _count_verified(self, bp: BlockPlan, report: CheckReport, label: str) -> None:
        """A verified page's counts: its verdict, its cells, and its records' types (a
        record verified on several pages counts once)."""
        report.verdicts[label] += 1
        report.pages_checked += 1
        report.cells.update(block_cells(bp.tag, bp.records, self.table))
        verified = report._verified
        new = [rec for rec in bp.records if rec.lsn not in verified]
        if new:
            verified.update(rec.lsn for rec in new)
            type_name_of = self.table.type_name_of
            for (rmid, info), n in Counter((rec.rmid, rec.info) for rec in new).items():
                report.record_types[type_name_of(rmid, info)] += n

    def _divergence(self, bp: BlockPlan, base: bytes | None, pages: dict[str, bytes],
                    failures: dict[str, Exception], w: Witnessed, verdict: Verdict) -> Divergence:
        """The divergence a verdict names, with what a bundle needs to replay it."""
        tag = bp.tag
        owner = w.owner or bp.owner
        shown = {**pages, "primary": w.primary} if w.primary is not None else dict(pages)
        last = self.table.record_type(bp.records[-1])
        if verdict.kind is ENGINE_ERROR:
            e = next(iter(failures.values()))
            diff = [line for err in failures.values() for line in traceback.format_exception_only(type(err), err)]
            for name in pages:
                if w.present and not w.agrees(name):
                    diff += [f"{name} vs primary: {d}" for d in explain_diff(w.masked[name], w.want or b"", owner)]
            return Divergence(ENGINE_ERROR, tag, verdict.engines, self._type_at(bp, e), getattr(e, "lsn", None),
                              bp.records, base, shown, owner, diff=diff, verdict=verdict.line,
                              error="; ".join(f"{type(x).__name__}: {x}" for x in failures.values()))
        if verdict.kind is ENGINE_DISAGREEMENT:
            ref, other = verdict.groups[0][0], verdict.groups[1][0]
            ea = next(e for e in self.engines if e.name == ref)
            eb = next(e for e in self.engines if e.name == other)
            k = bisect_first_divergence(ea, eb, tag, base, bp.records)
            rec = bp.records[k] if k is not None else bp.records[-1]
            return Divergence(ENGINE_DISAGREEMENT, tag, verdict.engines, self.table.record_type(rec),
                              rec.lsn if k is not None else None, bp.records, base, shown, bp.owner,
                              diff=[str(d) for d in explain_diff(pages[ref], pages[other], bp.owner)],
                              verdict=verdict.line)
        # every engine that answered agrees, the primary differs
        assert verdict.kind is not None and w.want is not None
        name = verdict.engines[0]
        div = Divergence(verdict.kind, tag, verdict.engines, last, None, bp.records, base, shown, owner,
                         diff=[str(d) for d in explain_diff(w.masked[name], w.want, owner)],
                         verdict=verdict.line)
        # one engine alone cannot tell an engine bug from WAL that lacks the change; a page
        # that carries a known issue's exact signature is still reported as that issue
        issue = self.known_issues.match(PRIMARY_DIFFERS.value, tag, owner, bp.records, w.differing_offsets(name))
        if issue is not None:
            div.known = issue.id
            div.verdict = f"{verdict.line}; known PostgreSQL issue {issue.id}: {issue.title} ({issue.reference})"
        return div

    def _witness(self, bp: BlockPlan, pages: dict[str, bytes], report: CheckReport) -> Witnessed:
        """What the primary says of each engine's page, under its masks (or why it cannot say)."""
        tag = bp.tag
        if self.primary is None:
            return Witnessed("no primary")
        if tag.fork == FSM_FORKNUM:
            return self._no_witness(report, "witness: free-space map is not WAL-logged")
        primary = self.primary(tag)
        if primary is None:
            return self._no_witness(report, BLOCK_ABSENT)
        if self.end_lsn is not None and PageGetLSN(primary) > self.end_lsn:
            return self._no_witness(report, "witness: primary page changed after the range")
        owner = bp.owner or (self.owner_of(tag) if self.owner_of else None) or guess_owner(primary)
        if all(p == primary for p in pages.values()):  # masks cannot make equal pages differ
            return Witnessed(None, primary, owner, primary, dict.fromkeys(pages, primary))
        try:
            want = mask_page(primary, owner or "Heap", tag.blk, tag.fork, final_state=True, table=self.table)
            # a mask is a function of the page: each distinct page is masked once (engines
            # that agree, as they should, and a page equal to the primary's share it)
            masked: dict[bytes, bytes] = {bytes(primary): want}
            got = {}
            for name, p in pages.items():
                key = bytes(p)
                m = masked.get(key)
                if m is None:
                    m = masked[key] = mask_page(p, owner or "Heap", tag.blk, tag.fork, final_state=True,
                                                table=self.table)
                got[name] = m
        except MaskError as e:
            return self._no_witness(report, f"witness: {e}")
        return Witnessed(None, primary, owner, want, got)

    @staticmethod
    def _no_witness(report: CheckReport, reason: str) -> Witnessed:
        report.pages_skipped[reason] += 1
        return Witnessed(reason.removeprefix("witness: "))

    def _type_at(self, bp: BlockPlan, e: Exception) -> str:
        lsn = getattr(e, "lsn", None)
        for rec in bp.records:
            if rec.lsn == lsn:
                return self.table.record_type(rec)
        return self.table.record_type(bp.records[-1])

    def _count_unsupported(self, report: CheckReport, bp: BlockPlan, e: UnsupportedRecord) -> None:
        for rec in bp.records:
            if rec.lsn == e.lsn:
                if rec.lsn not in report._unsupported_seen:
                    report._unsupported_seen.add(rec.lsn)
                    report.unsupported[self.table.record_type(rec)] += 1
                return
        report.unsupported[f"{e.rmgr}/0x{(e.info or 0) & XLR_RMGR_INFO_MASK:02X}"] += 1
