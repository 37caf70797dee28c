"""Verify a WAL range: redo every block with every engine, compare, witness with the primary.

Steps 3–5 of the data flow (plan, redo twice, witness). Engines are compared
byte for byte with NO masks; each engine's page is compared with the primary's
page under PostgreSQL's consistency masks. The result is a ``CheckReport``
whose JSON keys the CLI and the fuzzer share.
"""

from __future__ import annotations

import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.reports.schema import CheckResult, DivergenceEntry, DivergenceKind, EngineErrorKind
from harness.verify.engines import Engine
from harness.verify.plan import BlockPlan, Plan, build_plan
from oracles.compare import explain_diff
from oracles.masks import MaskError, guess_owner, mask_page
from pyredo.errors import UnsupportedRecord
from pyredo.page.bufpage import PageGetLSN
from pyredo.rmgrlist import PG15
from pyredo.wal.record import FSM_FORKNUM, XLR_RMGR_INFO_MASK, BufferTag, DecodedXLogRecord

PageSource = Callable[[BufferTag], "bytes | None"]


ENGINE_DISAGREEMENT = DivergenceKind.ENGINE_DISAGREEMENT
ENGINE_VS_PRIMARY = DivergenceKind.ENGINE_VS_PRIMARY
ENGINE_ERROR = DivergenceKind.ENGINE_ERROR


@dataclass
class Divergence:
    """One page where engines disagree, an engine disagrees with the primary, or an engine failed."""

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

    def entry(self) -> DivergenceEntry:
        """What a report says of it (harness.reports.schema)."""
        return DivergenceEntry(self.kind, str(self.tag), list(self.engines), self.record_type,
                               self.first_diverging_lsn, list(self.tag), [r.lsn for r in self.records],
                               self.owner, list(self.diff), self.error)

    def to_json(self) -> dict[str, Any]:
        return self.entry().to_json()


@dataclass
class CheckReport:
    records: int = 0
    pages_checked: int = 0
    pages_skipped_no_base: int = 0
    pages_skipped: Counter[str] = field(default_factory=Counter)
    divergences: list[Divergence] = field(default_factory=list)
    unsupported: Counter[str] = field(default_factory=Counter)
    record_types: Counter[str] = field(default_factory=Counter)
    engines: list[str] = field(default_factory=list)
    infrastructure: list[str] = field(default_factory=list)  # engine trouble that is not a finding
    clog_pages_checked: int = 0
    clog_xids_verified: int = 0
    clog_divergences: list[str] = field(default_factory=list)
    start: int | None = None
    end: int | None = None
    _verified: set[int] = field(default_factory=set, repr=False)
    _unsupported_seen: set[int] = field(default_factory=set, repr=False)

    @property
    def clean(self) -> bool:
        return not self.divergences and not self.clog_divergences

    def add_clog(self, clog: Any) -> None:
        """Fold in a commit-log check (harness.verify.clogcheck.ClogReport)."""
        self.clog_pages_checked += len(clog.pages_checked)
        self.clog_xids_verified += clog.xids_set
        self.clog_divergences += [str(d) for d in clog.divergences] + [f"missing {m}" for m in clog.missing]

    def merge(self, other: CheckReport) -> None:
        self.records += other.records
        self.pages_checked += other.pages_checked
        self.pages_skipped_no_base += other.pages_skipped_no_base
        self.pages_skipped.update(other.pages_skipped)
        self.divergences.extend(other.divergences)
        self.unsupported.update(other.unsupported)
        self.record_types.update(other.record_types)
        self.clog_pages_checked += other.clog_pages_checked
        self.clog_xids_verified += other.clog_xids_verified
        self.clog_divergences += other.clog_divergences
        for e in other.engines:
            if e not in self.engines:
                self.engines.append(e)

    def result(self) -> CheckResult:
        """What the report says (harness.reports.schema): ``redodiff check/demo --report``."""
        return CheckResult(
            self.records, self.pages_checked, self.pages_skipped_no_base, Counter(self.pages_skipped),
            [d.entry() for d in self.divergences], Counter(self.unsupported), Counter(self.record_types),
            list(self.engines), list(self.infrastructure), self.clog_pages_checked, self.clog_xids_verified,
            list(self.clog_divergences), self.start, self.end,
        )

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


class Checker:
    """Runs the redo-twice-and-witness comparison over a plan."""

    def __init__(
        self,
        engines: Sequence[Engine],
        primary: PageSource | None,
        base: PageSource | None = None,
        *,
        end_lsn: int | None = None,
        owner_of: Callable[[BufferTag], str | None] | None = None,
        base_is_snapshot: bool = False,
    ) -> None:
        if not engines:
            raise ValueError("at least one engine is needed")
        self.engines = list(engines)
        self.primary = primary
        self.base = base
        self.end_lsn = end_lsn
        self.owner_of = owner_of
        # a snapshot of the whole data directory at the range start: a block it
        # lacks did not exist then, and redo starts from a zero page (as a
        # wal-redo server given no page does)
        self.base_is_snapshot = base_is_snapshot

    def check_records(self, records: Iterable[DecodedXLogRecord], *,
                      progress: Callable[[int, int], None] | None = None,
                      start: int | None = None, end: int | None = None) -> CheckReport:
        plan = build_plan(records, start, end)
        return self.check_plan(plan, progress=progress)

    def check_plan(self, plan: Plan, *, progress: Callable[[int, int], None] | None = None) -> CheckReport:
        report = CheckReport(records=plan.records, engines=[e.name for e in self.engines],
                             start=plan.start, end=plan.end)
        if self.end_lsn is None and plan.end is not None:
            self.end_lsn = plan.end
        if plan.retired:
            report.pages_skipped["cut off by a relation truncation"] += len(plan.retired)
        total = len(plan.blocks)
        for i, bp in enumerate(plan.blocks.values()):
            if bp.records:
                self.check_block(bp, report)
            if progress is not None:
                progress(i + 1, total)
        return report

    def check_block(self, bp: BlockPlan, report: CheckReport) -> None:
        tag = bp.tag
        if bp.unverifiable:
            report.pages_skipped["unverifiable: " + bp.unverifiable.split(" at LSN")[0]] += 1
            return
        base: bytes | None = None
        if bp.needs_base:
            base = self.base(tag) if self.base is not None else None
            if base is None and not (self.base is not None and self.base_is_snapshot):
                report.pages_skipped_no_base += 1
                return

        pages: dict[str, bytes] = {}
        for engine in self.engines:
            try:
                pages[engine.name] = engine.reconstruct(tag, base, bp.records)
            except UnsupportedRecord as e:
                self._count_unsupported(report, bp, e)
                return
            except Exception as e:  # an engine failure is a finding, not a crash
                error_kind = EngineErrorKind.of(e)
                if error_kind is EngineErrorKind.REFUSAL:
                    report.pages_skipped[f"{engine.name} refused the request"] += 1
                    return
                if error_kind is EngineErrorKind.INFRASTRUCTURE:
                    report.infrastructure.append(f"{engine.name} on {tag}: {type(e).__name__}: {e}")
                    return
                report.divergences.append(Divergence(
                    ENGINE_ERROR, tag, [engine.name], self._type_at(bp, e), getattr(e, "lsn", None),
                    bp.records, base, pages, bp.owner, error=f"{type(e).__name__}: {e}",
                    diff=traceback.format_exception_only(type(e), e),
                ))
                return

        compared = False
        names = list(pages)
        ref = names[0]
        for other in names[1:]:
            compared = True
            if pages[other] != pages[ref]:
                ea = next(e for e in self.engines if e.name == ref)
                eb = next(e for e in self.engines if e.name == other)
                k = bisect_first_divergence(ea, eb, tag, base, bp.records)
                rec = bp.records[k] if k is not None else bp.records[-1]
                report.divergences.append(Divergence(
                    ENGINE_DISAGREEMENT, tag, [ref, other], PG15.record_type(rec),
                    rec.lsn if k is not None else None, bp.records, base, pages, bp.owner,
                    diff=[str(d) for d in explain_diff(pages[ref], pages[other], bp.owner)],
                ))
                return

        witnessed = self._witness(bp, pages, base, report)
        if witnessed is None:
            return  # a divergence was recorded
        compared = compared or witnessed
        if compared:
            report.pages_checked += 1
            for rec in bp.records:
                if rec.lsn not in report._verified:
                    report._verified.add(rec.lsn)
                    report.record_types[PG15.record_type(rec)] += 1

    def _witness(self, bp: BlockPlan, pages: dict[str, bytes], base: bytes | None,
                 report: CheckReport) -> bool | None:
        """Compare each engine's page with the primary's under masks. True when
        compared and equal, False when no comparison was possible, None on divergence."""
        tag = bp.tag
        if self.primary is None:
            return False
        if tag.fork == FSM_FORKNUM:
            report.pages_skipped["witness: free-space map is not WAL-logged"] += 1
            return False
        primary = self.primary(tag)
        if primary is None:
            report.pages_skipped["witness: block absent on the primary"] += 1
            return False
        if self.end_lsn is not None and PageGetLSN(primary) > self.end_lsn:
            report.pages_skipped["witness: primary page changed after the range"] += 1
            return False
        owner = bp.owner or (self.owner_of(tag) if self.owner_of else None) or guess_owner(primary)
        try:
            want = mask_page(primary, owner or "Heap", tag.blk, tag.fork, final_state=True)
            got = {name: mask_page(p, owner or "Heap", tag.blk, tag.fork, final_state=True)
                   for name, p in pages.items()}
        except MaskError as e:
            report.pages_skipped[f"witness: {e}"] += 1
            return False
        for name, masked in got.items():
            if masked != want:
                diff = [str(d) for d in explain_diff(masked, want, owner)]
                report.divergences.append(Divergence(
                    ENGINE_VS_PRIMARY, tag, [name], PG15.record_type(bp.records[-1]), None,
                    bp.records, base, {**pages, "primary": primary}, owner, diff=diff,
                ))
                return None
        return True

    @staticmethod
    def _type_at(bp: BlockPlan, e: Exception) -> str:
        lsn = getattr(e, "lsn", None)
        for rec in bp.records:
            if rec.lsn == lsn:
                return PG15.record_type(rec)
        return PG15.record_type(bp.records[-1])

    @staticmethod
    def _count_unsupported(report: CheckReport, bp: BlockPlan, e: UnsupportedRecord) -> None:
        for rec in bp.records:
            if rec.lsn == e.lsn:
                if rec.lsn not in report._unsupported_seen:
                    report._unsupported_seen.add(rec.lsn)
                    report.unsupported[PG15.record_type(rec)] += 1
                return
        report.unsupported[f"{e.rmgr}/0x{(e.info or 0) & XLR_RMGR_INFO_MASK:02X}"] += 1
