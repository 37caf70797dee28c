"""The report schema: what a fuzz, merged or check report holds, typed.

Every class reads (``from_json``) and writes (``to_json``) exactly the JSON
that ``redodiff fuzz/merge/check/demo --report`` write; the keys are the
contract with CI scripts and the HTML report, so they and their order are
fixed here and nowhere else.

* ``DivergenceKind``: what a divergence is (engines disagree, an engine
  disagrees with the primary, an engine failed, the commit log differs).
* ``EngineErrorKind``: what an engine's exception means (infrastructure,
  a refusal, or a finding).
* ``DivergenceEntry``: one divergence as a check report lists it;
  ``CampaignDivergence`` adds where a campaign found it (seed, iteration, bundle).
* ``IterationSummary``: one fuzz iteration (what a worker hands the campaign);
  ``IterationEntry``: its row in a report's ``iteration_results``.
* ``FuzzReport``: one campaign (or shard); ``MergedReport``: several merged
  (``FuzzReport.merged``); ``load_run_report`` reads either.
* ``CheckResult``: a ``redodiff check``/``demo`` report.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import quoteattr

from harness.reports.cells import CellGrid, compute_cells
from harness.reports.counts import PageCounts, Seconds, counts_of, phases_json, seconds_of
from harness.reports.coverage import CoverageSummary, compute_coverage, table_of
from pyredo.wal.lsn import format_lsn, parse_lsn

JSONDict = dict[str, Any]


class DivergenceKind(enum.StrEnum):
    """What diverged; the value is the report's ``kind`` string."""

    ENGINE_DISAGREEMENT = "engine_disagreement"  # two engines, byte for byte (no masks)
    ENGINE_VS_PRIMARY = "engine_vs_primary"  # an engine's page vs the primary's, under masks
    ENGINE_ERROR = "engine_error"  # an engine failed on a record (not infrastructure)
    CLOG_VS_PRIMARY = "clog_vs_primary"  # pg_xact rebuilt by pyredo vs the primary's
    PRIMARY_DIFFERS = "primary_differs"  # every engine agrees, the primary differs: the WAL lacks it

    @property
    def bundle_prefix(self) -> str:
        """The first word of a bundle's directory name."""
        return {"engine_disagreement": "engines", "engine_vs_primary": "primary",
                "engine_error": "error", "primary_differs": "wal"}.get(self.value, self.value)


class EngineErrorKind(enum.StrEnum):
    """What an exception from an engine means for the verdict."""

    INFRASTRUCTURE = "infrastructure"  # a dead, hung or unstartable wal-redo server: not a finding
    REFUSAL = "refusal"  # the engine declined a request it cannot answer (e.g. no base page)
    FINDING = "finding"  # an engine failed redoing a record: a divergence

    @classmethod
    def of(cls, exc: BaseException) -> EngineErrorKind:
        """Classify by the exception's ``kind`` (and ``returncode``), as the
        wal-redo client sets them: timeout and spawn failures, and a server
        killed by a signal, are infrastructure; a server that exited with an
        error while redoing a record IS a finding."""
        kind = getattr(exc, "kind", None)
        if kind == "refused":
            return cls.REFUSAL
        if kind in ("timeout", "spawn", "cancelled"):  # cancelled: a stop request ended the wait
            return cls.INFRASTRUCTURE
        rc = getattr(exc, "returncode", None)
        if kind == "crash" and rc is not None and rc < 0:
            return cls.INFRASTRUCTURE
        return cls.FINDING


def _lsn(v: int | None) -> str | None:
    return format_lsn(v) if v is not None else None


def _parse_lsn(v: Any) -> int | None:
    return parse_lsn(v) if v else None


def _sorted(c: Mapping[str, int]) -> dict[str, int]:
    return dict(sorted(c.items()))


def _interrupted_key(interrupted: bool) -> JSONDict:
    """``{"interrupted": true}`` for a part done before a stop request, else no key:
    reports of whole runs keep the keys they always had."""
    return {"interrupted": True} if interrupted else {}


# -- divergences ----------------------------------------------------------------------------
@dataclass
class DivergenceEntry:
    """One divergence as a report lists it. A commit-log divergence has no page:
    its JSON omits ``tag_fields``, ``records``, ``owner`` and ``error``.
    ``verdict``: the vote in one readable line; ``known``: the id of the known
    PostgreSQL issue it matches (oracles/known_issues.toml). Both keys are
    written when there is a verdict (reports written before it read back unchanged)."""

    kind: DivergenceKind
    tag: str  # "spc/db/rel.fork blk N", or "pg_xact"
    engines: list[str]
    record_type: str
    first_diverging_lsn: int | None = None
    tag_fields: list[int] | None = None  # spc, db, rel, fork, blk
    records: list[int] = field(default_factory=list)  # LSNs of the records touching the page
    owner: str | None = None
    diff: list[str] = field(default_factory=list)
    error: str | None = None
    verdict: str | None = None
    known: str | None = None

    @property
    def is_clog(self) -> bool:
        return self.kind is DivergenceKind.CLOG_VS_PRIMARY

    @classmethod
    def clog(cls, description: str) -> DivergenceEntry:
        """A pg_xact difference found by the commit-log check (pyredo's pg_xact vs the primary's)."""
        return cls(DivergenceKind.CLOG_VS_PRIMARY, "pg_xact", ["pyredo"], "Transaction", diff=[description])

    def to_json(self) -> JSONDict:
        if self.is_clog:
            return {"kind": self.kind.value, "tag": self.tag, "record_type": self.record_type,
                    "diff": list(self.diff), "engines": list(self.engines),
                    "first_diverging_lsn": _lsn(self.first_diverging_lsn)}
        return {
            "kind": self.kind.value,
            "tag": self.tag,
            "tag_fields": list(self.tag_fields) if self.tag_fields is not None else None,
            "engines": list(self.engines),
            "record_type": self.record_type,
            "first_diverging_lsn": _lsn(self.first_diverging_lsn),
            "records": [format_lsn(r) for r in self.records],
            "owner": self.owner,
            "diff": list(self.diff),
            "error": self.error,
            **({"verdict": self.verdict, "known": self.known} if self.verdict is not None else {}),
        }

    @classmethod
    def _fields(cls, d: Mapping[str, Any]) -> JSONDict:
        tf = d.get("tag_fields")
        return {
            "kind": DivergenceKind(d["kind"]),
            "tag": str(d["tag"]),
            "engines": [str(e) for e in d.get("engines", [])],
            "record_type": str(d.get("record_type", "")),
            "first_diverging_lsn": _parse_lsn(d.get("first_diverging_lsn")),
            "tag_fields": [int(x) for x in tf] if tf is not None else None,
            "records": [parse_lsn(r) for r in d.get("records", [])],
            "owner": d.get("owner"),
            "diff": [str(x) for x in d.get("diff", [])],
            "error": d.get("error"),
            "verdict": d.get("verdict"),
            "known": d.get("known"),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> DivergenceEntry:
        return cls(**cls._fields(d))


@dataclass
class CampaignDivergence(DivergenceEntry):
    """A divergence a campaign found: its iteration, the workload seed, its bundle (None: not written)."""

    seed: int | None = None
    iteration: int | None = None
    bundle: str | None = None

    @classmethod
    def found(cls, d: DivergenceEntry, *, seed: int | None, iteration: int | None,
              bundle: str | None) -> CampaignDivergence:
        return cls(d.kind, d.tag, list(d.engines), d.record_type, d.first_diverging_lsn, d.tag_fields,
                   list(d.records), d.owner, list(d.diff), d.error, d.verdict, d.known,
                   seed=seed, iteration=iteration, bundle=bundle)

    def to_json(self) -> JSONDict:
        return {**super().to_json(), "seed": self.seed, "iteration": self.iteration, "bundle": self.bundle}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CampaignDivergence:
        return cls(**cls._fields(d), seed=d.get("seed"), iteration=d.get("iteration"), bundle=d.get("bundle"))


@dataclass
class InfrastructureError:
    """Trouble that is not a finding (a lost cluster, a hung wal-redo server, a full disk).
    ``iteration`` and ``seed`` are None for a worker that died outside an iteration."""

    error: str
    iteration: int | None = None
    seed: int | None = None

    def to_json(self) -> JSONDict:
        return {"iteration": self.iteration, "seed": self.seed, "error": self.error}

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | str) -> InfrastructureError:
        if isinstance(d, str):  # a check report lists its infrastructure errors as strings
            return cls(d)
        return cls(str(d["error"]), d.get("iteration"), d.get("seed"))


# -- one iteration ---------------------------------------------------------------------------
@dataclass
class IterationEntry:
    """An iteration's row in a report's ``iteration_results``."""

    index: int
    seed: int | None
    settings: str
    seconds: float
    records: int
    pages_checked: int
    step_errors: int
    infrastructure_error: str | None
    bundles: list[str | None]
    interrupted: bool = False  # stopped part-way by Ctrl-C / SIGTERM (the key only when true)
    phases: Seconds = field(default_factory=Seconds)  # the key only when timed
    script_errors: dict[str, str] = field(default_factory=dict)  # psql script (pg-regress file) -> its errors

    def to_json(self) -> JSONDict:
        return {"index": self.index, "seed": self.seed, "settings": self.settings, "seconds": self.seconds,
                "records": self.records, "pages_checked": self.pages_checked, "step_errors": self.step_errors,
                "infrastructure_error": self.infrastructure_error, "bundles": list(self.bundles),
                **_interrupted_key(self.interrupted), **phases_json(self.phases),
                **({"script_errors": dict(self.script_errors)} if self.script_errors else {})}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> IterationEntry:
        return cls(int(d["index"]), d.get("seed"), str(d.get("settings", "")), float(d.get("seconds", 0.0)),
                   int(d.get("records", 0)), int(d.get("pages_checked", 0)), int(d.get("step_errors", 0)),
                   d.get("infrastructure_error"), list(d.get("bundles", [])), bool(d.get("interrupted")),
                   seconds_of(d.get("phases")), dict(d.get("script_errors", {})))


@dataclass
class IterationSummary(PageCounts):
    """Everything one fuzz iteration found: what a worker hands the campaign.
    ``bundles[i]`` is the bundle of ``divergences[i]`` (None: not written);
    commit-log divergences, listed last, have none."""

    index: int
    seed: int | None
    settings: str
    seconds: float = 0.0  # rounded to ms
    divergences: list[DivergenceEntry] = field(default_factory=list)
    step_errors: int = 0
    infrastructure_error: str | None = None
    bundles: list[str | None] = field(default_factory=list)
    bundles_skipped: int = 0
    rules: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False  # stopped part-way: pages not reached are not counted
    script_errors: dict[str, str] = field(default_factory=dict)  # psql script (pg-regress file) -> its errors

    def entry(self) -> IterationEntry:
        return IterationEntry(self.index, self.seed, self.settings, self.seconds, self.records, self.pages_checked,
                              self.step_errors, self.infrastructure_error, list(self.bundles), self.interrupted,
                              Seconds(self.phases), dict(self.script_errors))

    def add_infrastructure_error(self, why: str) -> None:
        self.infrastructure_error = f"{self.infrastructure_error}; {why}" if self.infrastructure_error else why

    def to_json(self) -> JSONDict:
        return {
            "index": self.index, "seed": self.seed, "settings": self.settings, "seconds": self.seconds,
            "records": self.records, "pages_checked": self.pages_checked,
            "pages_skipped_no_base": self.pages_skipped_no_base,
            "divergences": [d.to_json() for d in self.divergences],
            "clog_pages_checked": self.clog_pages_checked, "clog_xids_verified": self.clog_xids_verified,
            "unsupported": dict(self.unsupported), "record_types": dict(self.record_types),
            **({"cells": dict(self.cells)} if self.cells else {}), **self.verdicts_json(), **self.superseded_json(),
            "pages_skipped": dict(self.pages_skipped), "step_errors": self.step_errors,
            "infrastructure_error": self.infrastructure_error, "bundles": list(self.bundles),
            "bundles_skipped": self.bundles_skipped, "rules": dict(self.rules),
            **_interrupted_key(self.interrupted), **phases_json(self.phases),
            **({"script_errors": dict(self.script_errors)} if self.script_errors else {}),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> IterationSummary:
        s = cls(
            int(d["index"]), d.get("seed"), str(d.get("settings", "")), float(d.get("seconds", 0.0)),
            [DivergenceEntry.from_json(x) for x in d.get("divergences", [])],
            int(d.get("step_errors", 0)), d.get("infrastructure_error"), list(d.get("bundles", [])),
            int(d.get("bundles_skipped", 0)), dict(d.get("rules", {})), bool(d.get("interrupted")),
            dict(d.get("script_errors", {})),
        )
        s._load_counts(d)
        return s


# -- campaign reports ------------------------------------------------------------------------
@dataclass
class RunTotals(PageCounts):
    """What a campaign report and a merge of them share: counts, findings, iterations."""

    engines: list[str] = field(default_factory=list)
    iterations: int = 0
    divergences: list[CampaignDivergence] = field(default_factory=list)
    settings_seen: Counter[str] = field(default_factory=Counter)
    rules_used: Counter[str] = field(default_factory=Counter)
    infrastructure_errors: list[InfrastructureError] = field(default_factory=list)
    step_errors: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    results: list[IterationEntry] = field(default_factory=list)
    pg_version: str | None = None  # `postgres --version` of the clusters (the key only when known)

    @property
    def unknown_divergences(self) -> list[CampaignDivergence]:
        """The divergences that are findings: those matching no known PostgreSQL issue."""
        return [d for d in self.divergences if d.known is None]

    def coverage(self) -> CoverageSummary:
        return compute_coverage(self.record_types, table_of(self.pg_version)).summary()

    def cell_grid(self) -> CellGrid:
        """Record type x fork x block form (harness.reports.cells): ``coverage_cells``."""
        return compute_cells(self.cells, table_of(self.pg_version))

    @staticmethod
    def merged(reports: Sequence[RunTotals], sources: Iterable[str] = ()) -> MergedReport:
        """One report of several (shards of one run, or earlier merges): counts summed,
        lists joined in order, coverage recomputed, the longest shard's seconds."""
        m = MergedReport(merged_from=[str(s) for s in sources])
        seeds: set[int] = set()
        engines: set[str] = set()
        for r in reports:
            m.add_counts(r)
            m.iterations += r.iterations
            m.step_errors += r.step_errors
            m.settings_seen.update(r.settings_seen)
            m.rules_used.update(r.rules_used)
            m.divergences += r.divergences
            m.infrastructure_errors += r.infrastructure_errors
            m.results += r.results
            if isinstance(r, MergedReport):
                m.shards += r.shards
                seeds.update(r.seeds)
            elif isinstance(r, FuzzReport):
                m.shards.append(r.shard)
                if r.seed is not None:
                    seeds.add(r.seed)
            engines.update(r.engines)
            m.seconds = max(m.seconds, r.seconds)
            m.interrupted |= r.interrupted
        m.seeds = sorted(seeds)
        m.engines = sorted(engines)
        versions = {r.pg_version for r in reports}
        m.pg_version = versions.pop() if len(versions) == 1 else None  # one major: its coverage universe
        return m

    def _load_totals(self, d: Mapping[str, Any]) -> None:
        self.engines = [str(e) for e in d.get("engines", [])]
        self._load_counts(d)
        self.iterations, self.step_errors = int(d.get("iterations", 0)), int(d.get("step_errors", 0))
        self.settings_seen, self.rules_used = counts_of(d.get("settings_seen")), counts_of(d.get("rules_used"))
        self.divergences = [CampaignDivergence.from_json(x) for x in d.get("divergences", [])]
        self.infrastructure_errors = [InfrastructureError.from_json(x) for x in d.get("infrastructure_errors", [])]
        self.results = [IterationEntry.from_json(x) for x in d.get("iteration_results", [])]
        self.seconds = float(d.get("seconds", 0.0))
        self.interrupted = bool(d.get("interrupted"))

    def _json_lists(self) -> tuple[list[JSONDict], list[JSONDict], list[JSONDict]]:
        return ([d.to_json() for d in self.divergences], [e.to_json() for e in self.infrastructure_errors],
                [r.to_json() for r in self.results])


@dataclass
class FuzzReport(RunTotals):
    """One campaign (or one shard of it): ``redodiff fuzz --report``."""

    seed: int | None = None
    shard: str | None = None  # "K/N"
    profile: str | None = None

    def add(self, r: IterationSummary) -> None:
        """Fold one iteration in."""
        self.iterations += 1
        self.add_counts(r)
        self.settings_seen[r.settings] += 1
        self.rules_used.update(r.rules)
        self.step_errors += r.step_errors
        for d, b in zip(r.divergences, r.bundles + [None] * len(r.divergences), strict=False):
            self.divergences.append(CampaignDivergence.found(d, seed=r.seed, iteration=r.index, bundle=b))
        if r.infrastructure_error:
            self.infrastructure_errors.append(InfrastructureError(r.infrastructure_error, r.index, r.seed))
        self.interrupted |= r.interrupted
        self.results.append(r.entry())

    def to_json(self) -> JSONDict:
        divergences, infra, results = self._json_lists()
        return {
            "records": self.records,
            "pages_checked": self.pages_checked,
            "pages_skipped_no_base": self.pages_skipped_no_base,
            "pages_skipped": _sorted(self.pages_skipped),
            "clog": {"pages_checked": self.clog_pages_checked, "xids_verified": self.clog_xids_verified},
            "divergences": divergences,
            "unsupported": _sorted(self.unsupported),
            "record_types": _sorted(self.record_types),
            "iterations": self.iterations,
            "seed": self.seed,
            "shard": self.shard,
            "engines": list(self.engines),
            "profile": self.profile,
            "settings_seen": _sorted(self.settings_seen),
            "rules_used": _sorted(self.rules_used),
            "infrastructure_errors": infra,
            "step_errors": self.step_errors,
            "coverage": self.coverage().to_json(),
            **self.cells_json(), **self.verdicts_json(), **self.superseded_json(),
            "seconds": round(self.seconds, 1),
            "interrupted": self.interrupted,
            "iteration_results": results,
            **({"pg_version": self.pg_version} if self.pg_version is not None else {}),
            **phases_json(self.phases),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FuzzReport:
        """Read a fuzz report; keys it lacks (a check report read as one) count as zero."""
        rep = cls(seed=d.get("seed"), shard=d.get("shard"), profile=d.get("profile"), pg_version=d.get("pg_version"))
        rep._load_totals(d)
        return rep

    def junit_xml(self) -> str:
        cases = []
        for r in self.results:
            name = quoteattr(f"iteration {r.index} seed {r.seed} [{r.settings}]")
            body = ""
            divs = [d for d in self.divergences if d.iteration == r.index]
            if divs:
                msg = "; ".join(f"{d.kind} {d.tag} {d.record_type}" for d in divs)
                detail = "\n".join(f"{d.kind} {d.tag} bundle={d.bundle}\n" + "\n".join(d.diff[:20]) for d in divs)
                body = f"<failure message={quoteattr(msg)}>{_xml_text(detail)}</failure>"
            elif r.infrastructure_error:
                body = f"<error message={quoteattr(r.infrastructure_error[:500])}/>"
            cases.append(f'  <testcase classname="redodiff.fuzz" name={name} time="{r.seconds}">{body}</testcase>')
        failures = sum(1 for r in self.results if any(d.iteration == r.index for d in self.divergences))
        errors = sum(1 for r in self.results if r.infrastructure_error)
        return (f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="redodiff-fuzz" tests="{len(self.results)}" '
                f'failures="{failures}" errors="{errors}" time="{self.seconds:.1f}">\n' + "\n".join(cases)
                + "\n</testsuite>\n")


def _xml_text(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass
class MergedReport(RunTotals):
    """Several campaign reports in one: ``redodiff merge``. Its ``shards`` and
    ``seed`` are lists, and it names the files it was merged from."""

    shards: list[str | None] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    merged_from: list[str] = field(default_factory=list)

    def to_json(self) -> JSONDict:
        divergences, infra, results = self._json_lists()
        return {
            "records": self.records,
            "pages_checked": self.pages_checked,
            "pages_skipped_no_base": self.pages_skipped_no_base,
            "iterations": self.iterations,
            "step_errors": self.step_errors,
            "pages_skipped": _sorted(self.pages_skipped),
            "unsupported": _sorted(self.unsupported),
            "record_types": _sorted(self.record_types),
            "settings_seen": _sorted(self.settings_seen),
            "rules_used": _sorted(self.rules_used),
            "divergences": divergences,
            "infrastructure_errors": infra,
            "iteration_results": results,
            "coverage": self.coverage().to_json(),
            **self.cells_json(), **self.verdicts_json(), **self.superseded_json(),
            "shards": list(self.shards),
            "seed": list(self.seeds),
            "engines": list(self.engines),
            "seconds": self.seconds,
            "interrupted": self.interrupted,
            "merged_from": list(self.merged_from),
            **({"pg_version": self.pg_version} if self.pg_version is not None else {}),
            **phases_json(self.phases),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> MergedReport:
        rep = cls(shards=list(d.get("shards", [])), seeds=[int(s) for s in d.get("seed", [])],
                  merged_from=[str(p) for p in d.get("merged_from", [])], pg_version=d.get("pg_version"))
        rep._load_totals(d)
        return rep


def is_merged(d: Mapping[str, Any]) -> bool:
    return "shards" in d or isinstance(d.get("seed"), list)


def load_run_report(d: Mapping[str, Any]) -> FuzzReport | MergedReport:
    """A campaign report's JSON, merged or not."""
    return MergedReport.from_json(d) if is_merged(d) else FuzzReport.from_json(d)


def is_run_report(d: Any) -> bool:
    """Does this JSON look like a report with run counts (fuzz, merged or check)?"""
    return isinstance(d, dict) and "record_types" in d and "pages_checked" in d


# -- check reports ---------------------------------------------------------------------------
@dataclass
class CheckResult(PageCounts):
    """A verified WAL range: ``redodiff check --report`` and ``redodiff demo --report``."""

    divergences: list[DivergenceEntry] = field(default_factory=list)
    engines: list[str] = field(default_factory=list)
    infrastructure_errors: list[str] = field(default_factory=list)
    clog_divergences: list[str] = field(default_factory=list)
    start: int | None = None
    end: int | None = None
    interrupted: bool = False  # stopped before its last page (the key only when true)
    # what the end of recovery does with the range's unlogged relations; None in reports
    # written before it (no key)
    end_of_recovery: JSONDict | None = None
    pg_version: str | None = None  # `postgres --version` of the cluster checked (the key only when known)

    def coverage(self) -> CoverageSummary:
        return compute_coverage(self.record_types, table_of(self.pg_version)).summary()

    def cell_grid(self) -> CellGrid:
        """Record type x fork x block form (harness.reports.cells): ``coverage_cells``."""
        return compute_cells(self.cells, table_of(self.pg_version))

    @property
    def unknown_divergences(self) -> list[DivergenceEntry]:
        """The divergences that are findings: those matching no known PostgreSQL issue."""
        return [d for d in self.divergences if d.known is None]

    def to_json(self) -> JSONDict:
        return {
            "records": self.records,
            "pages_checked": self.pages_checked,
            "pages_skipped_no_base": self.pages_skipped_no_base,
            "pages_skipped": _sorted(self.pages_skipped),
            "divergences": [d.to_json() for d in self.divergences],
            "unsupported": _sorted(self.unsupported),
            "record_types": _sorted(self.record_types),
            "engines": list(self.engines),
            "infrastructure_errors": list(self.infrastructure_errors),
            "clog": {"pages_checked": self.clog_pages_checked, "xids_verified": self.clog_xids_verified,
                     "divergences": list(self.clog_divergences)},
            "start": _lsn(self.start),
            "end": _lsn(self.end),
            **_interrupted_key(self.interrupted),
            **self.verdicts_json(), **self.superseded_json(),
            **({"end_of_recovery": self.end_of_recovery} if self.end_of_recovery is not None else {}),
            **({"pg_version": self.pg_version} if self.pg_version is not None else {}),
            **self.cells_json(),
            **phases_json(self.phases),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CheckResult:
        clog = d.get("clog") or {}
        r = cls(
            [DivergenceEntry.from_json(x) for x in d.get("divergences", [])], [str(e) for e in d.get("engines", [])],
            [str(e) for e in d.get("infrastructure_errors", [])], [str(x) for x in clog.get("divergences", [])],
            _parse_lsn(d.get("start")), _parse_lsn(d.get("end")), bool(d.get("interrupted")),
            d.get("end_of_recovery"), d.get("pg_version"),
        )
        r._load_counts(d)
        return r
