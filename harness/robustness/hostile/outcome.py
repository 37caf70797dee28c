"""What a case came to (``Outcome``), the counts per category, and the report
of a run (``HostileReport``, its JSON is what ``redodiff bench hostile`` prints)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


# -- outcomes -------------------------------------------------------------------------
class CaseTimeout(BaseException):
    """Raised by the interval timer: the case ran past its time bound (a hang).
    A BaseException, so no ``except Exception`` in the code under test swallows it."""


OK = "ok"


@dataclass
class Outcome:
    kind: str  # "ok", "typed", "untyped", "timeout", "unlocated", "bad_result"
    name: str  # exception class (or "ok")
    seconds: float
    peak_bytes: int = 0
    note: str = ""
    detail: str = ""  # traceback for untyped/unlocated
    cause: str | None = None  # the exception a typed error was raised from
    stray: str | None = None  # redo: an exception the engine's catch-all had to wrap
    rmgr: str | None = None
    record_type: str | None = None
    helper_error: str | None = None  # desc/implicit_tags/record_type raised this (redo mode)


@dataclass
class CategoryStats:
    cases: int = 0
    ok: int = 0
    typed: Counter[str] = field(default_factory=Counter)
    untyped: Counter[str] = field(default_factory=Counter)
    unlocated: Counter[str] = field(default_factory=Counter)
    bad_result: int = 0
    timeouts: int = 0
    worst_seconds: float = 0.0
    worst_case: str = ""
    peak_bytes: int = 0
    causes: Counter[str] = field(default_factory=Counter)  # what typed errors were raised from
    stray: Counter[str] = field(default_factory=Counter)  # redo: wrapped by the engine's catch-all
    helper_errors: Counter[str] = field(default_factory=Counter)
    slowest: list[tuple[float, str]] = field(default_factory=list)  # redo: (seconds, record type)
    examples: list[dict[str, str]] = field(default_factory=list)  # failures, first few

    def add(self, o: Outcome, case_id: str, keep: int = 3) -> None:
        self.cases += 1
        if o.kind == OK:
            self.ok += 1
        elif o.kind == "typed":
            self.typed[o.name] += 1
        elif o.kind == "unlocated":
            self.unlocated[o.name] += 1
        elif o.kind == "timeout":
            self.timeouts += 1
        elif o.kind == "bad_result":
            self.bad_result += 1
        else:
            self.untyped[o.name] += 1
        if o.cause:
            self.causes[o.cause] += 1
        if o.stray:
            self.stray[o.stray] += 1
            if sum(1 for e in self.examples if e["kind"] == "stray") < keep:
                self.examples.append({"kind": "stray", "case": case_id, "error": o.stray, "note": o.note,
                                      "traceback": o.detail})
        if o.helper_error:
            self.helper_errors[o.helper_error.split(":")[0]] += 1
            if sum(1 for e in self.examples if e["kind"] == "helper") < keep:
                self.examples.append({"kind": "helper", "case": case_id, "note": o.note,
                                      "error": o.helper_error})
        if o.seconds > self.worst_seconds:
            self.worst_seconds = o.seconds
            self.worst_case = f"{case_id} {o.record_type or ''} {o.note}".strip()
        self.peak_bytes = max(self.peak_bytes, o.peak_bytes)
        if o.record_type:
            self.slowest.append((o.seconds, o.record_type))
            if len(self.slowest) > 64:
                self.slowest = sorted(self.slowest, reverse=True)[:8]
        if o.kind not in (OK, "typed") and sum(1 for e in self.examples if e["kind"] == o.kind) < keep:
            self.examples.append({"kind": o.kind, "case": case_id, "error": o.name, "note": o.note,
                                  "traceback": o.detail})

    @property
    def failures(self) -> int:
        return sum(self.untyped.values()) + self.timeouts + self.bad_result + sum(self.unlocated.values())

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "cases": self.cases,
            "clean_results": self.ok,
            "typed_errors": dict(self.typed.most_common()),
            "untyped_exceptions": dict(self.untyped.most_common()),
            "unlocated_errors": dict(self.unlocated.most_common()),
            "bad_results": self.bad_result,
            "timeouts": self.timeouts,
            "worst_seconds": round(self.worst_seconds, 4),
            "worst_case": self.worst_case,
            "peak_case_bytes": self.peak_bytes,
        }
        if self.causes:
            out["raised_from"] = dict(self.causes.most_common())
        if self.stray:
            out["stray_exceptions_wrapped_by_engine"] = dict(self.stray.most_common())
        if self.helper_errors:
            out["helper_errors"] = dict(self.helper_errors.most_common())
        if self.slowest:
            seen: dict[str, float] = {}
            for s, t in sorted(self.slowest, reverse=True):
                seen.setdefault(t, round(s, 4))
            out["slowest_record_types"] = dict(list(seen.items())[:5])
        if self.examples:
            out["examples"] = self.examples
        return out


class BadResult(Exception):
    """The code under test returned something that is not a valid result."""


Action = Callable[[], object]  # one case's work, run under the timer


# -- the report of a run -----------------------------------------------------------------
@dataclass
class HostileReport:
    mode: str
    seed: int
    cases: int = 0
    seconds: float = 0.0
    timeout: float = 0.0
    categories: dict[str, CategoryStats] = field(default_factory=dict)
    maxrss_start_kb: int = 0
    maxrss_end_kb: int = 0
    tracemalloc: bool = False
    corpus: dict[str, Any] = field(default_factory=dict)

    def stats(self, name: str) -> CategoryStats:
        s = self.categories.get(name)
        if s is None:
            s = self.categories[name] = CategoryStats()
        return s

    @property
    def untyped(self) -> int:
        return sum(sum(s.untyped.values()) for s in self.categories.values())

    @property
    def timeouts(self) -> int:
        return sum(s.timeouts for s in self.categories.values())

    @property
    def failures(self) -> int:
        return sum(s.failures for s in self.categories.values())

    def to_json(self) -> dict[str, Any]:
        cats = self.categories
        return {
            "mode": self.mode,
            "seed": self.seed,
            "cases": self.cases,
            "seconds": round(self.seconds, 2),
            "case_time_bound_s": self.timeout,
            "untyped_exceptions": self.untyped,
            "timeouts": self.timeouts,
            "unlocated_errors": sum(sum(s.unlocated.values()) for s in cats.values()),
            "bad_results": sum(s.bad_result for s in cats.values()),
            "worst_seconds": round(max((s.worst_seconds for s in cats.values()), default=0.0), 4),
            "peak_case_bytes": max((s.peak_bytes for s in cats.values()), default=0),
            "tracemalloc": self.tracemalloc,
            "maxrss_start_kb": self.maxrss_start_kb,
            "maxrss_end_kb": self.maxrss_end_kb,
            "maxrss_growth_kb": self.maxrss_end_kb - self.maxrss_start_kb,
            "corpus": self.corpus,
            "categories": {k: v.to_json() for k, v in sorted(cats.items())},
        }
