"""The vote on one page: every engine's answer and the primary's make one verdict.

Every engine runs on every page, whatever the others did; then:

* every engine agrees and the primary agrees (under its masks): verified;
* every engine agrees, the primary differs: ``primary_differs`` — the WAL does
  not carry what the primary has (a WAL-logging bug in PostgreSQL, or a change
  made without WAL). With ONE engine that answered this cannot be told from an
  engine bug, and stays ``engine_vs_primary``;
* engines disagree: ``engine_disagreement``, naming which engines side with
  the primary;
* an engine fails where another answers: ``engine_error`` naming the failing
  engine, with the other engines' verdict against the primary.

An engine's comparison profile (``oracles.neon_profile``: Neon's deliberate
differences) is applied first, by ``reconcile``; the allowances that applied
are named in the page's label, so the report counts them.

An engine that declines a request (a record pyredo does not implement, a
request the wal-redo client refuses, a dead server) abstains: it is counted
where it always was (``unsupported``, ``pages_skipped``, ``infrastructure``)
and the others still vote. Pure: no I/O, no engine is run here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.reports.schema import DivergenceKind

VERIFIED = "verified"
AGREE_NO_WITNESS = "engines agree, no witness"
AGREE_BLOCK_ABSENT = "engines agree, block absent on the primary (dropped relation)"
BLOCK_ABSENT = "witness: block absent on the primary"
WAL_LACKS = ("the WAL does not carry what the primary has (a WAL-logging bug in PostgreSQL, "
             "or a change made without WAL)")


@dataclass
class Witnessed:
    """What the primary says of each engine's page, under its masks.
    ``reason`` says why there is no witness (None: the primary witnessed)."""

    reason: str | None = None
    primary: bytes | None = None
    owner: str | None = None
    # the primary's page and each engine's, masked (not when every engine's page is the
    # primary's byte for byte: equal pages stay equal under any mask)
    want: bytes | None = None
    masked: dict[str, bytes] = field(default_factory=dict)  # engine -> its page

    @property
    def present(self) -> bool:
        return self.reason is None and self.want is not None

    def agrees(self, name: str) -> bool:
        return self.present and self.masked.get(name) == self.want

    def differing_offsets(self, name: str) -> set[int]:
        """Byte offsets where the engine's masked page differs from the primary's."""
        got, want = self.masked.get(name), self.want
        if got is None or want is None:
            return set()
        return {i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b}


@dataclass
class Verdict:
    """``kind`` None: no divergence. ``label`` is the page's row in the report's
    ``verdicts`` counts; ``compared``: some comparison was made (the page counts
    as checked)."""

    kind: DivergenceKind | None
    engines: list[str]
    line: str
    label: str
    compared: bool = True
    groups: list[list[str]] = field(default_factory=list)  # engines with byte-identical pages


def _names(names: Sequence[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _groups(pages: Mapping[str, bytes]) -> list[list[str]]:
    """Engines grouped by identical pages, in the order they answered."""
    out: dict[bytes, list[str]] = {}
    for name, page in pages.items():
        out.setdefault(page, []).append(name)
    return list(out.values())


def _against_primary(names: Sequence[str], w: Witnessed) -> str:
    """What the primary says of these engines' pages, as one clause."""
    if not names:
        return ""
    if not w.present:
        return f"no witness for {_names(names)} ({w.reason})"
    sides = [n for n in names if w.agrees(n)]
    others = [n for n in names if not w.agrees(n)]
    parts = []
    if sides:
        parts.append(f"{_names(sides)} {'matches' if len(sides) == 1 else 'match'} the primary")
    if others:
        parts.append(f"{_names(others)} {'differs' if len(others) == 1 else 'differ'} from the primary")
    return "; ".join(parts)


def _failure(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def reconcile(engines: Iterable[Any], tag: Any, records: Sequence[Any],
              pages: MutableMapping[str, bytes]) -> list[str]:
    """Apply each engine's comparison profile (its ``profile`` attribute, if any) to
    ``pages``; return the names of the allowances that applied."""
    allowed: list[str] = []
    for engine in engines:
        profile = getattr(engine, "profile", None)
        if profile is not None:
            allowed += profile.reconcile(tag, records, pages)
    return allowed


def judge(pages: Mapping[str, bytes], failures: Mapping[str, BaseException], w: Witnessed,
          abstained: Sequence[str] = (), allowed: Sequence[str] = ()) -> Verdict:
    """The verdict on one page from every engine's answer (``pages``), every
    engine's failure (``failures``: findings, not abstentions) and the witness;
    ``allowed``: the profile allowances that applied (named in the label)."""
    v = _judge(pages, failures, w, abstained)
    if allowed:
        v.label += f" [{'; '.join(sorted(set(allowed)))}]"
    return v


def _judge(pages: Mapping[str, bytes], failures: Mapping[str, BaseException], w: Witnessed,
           abstained: Sequence[str]) -> Verdict:
    groups = _groups(pages)
    answered = list(pages)
    if failures:
        failed = list(failures)
        if not answered:
            why = "; ".join(f"{n} ({_failure(e)})" for n, e in failures.items())
            return Verdict(DivergenceKind.ENGINE_ERROR, failed,
                           f"{'every engine' if len(failed) > 1 else _names(failed)} failed: {why}",
                           DivergenceKind.ENGINE_ERROR.value, groups=groups)
        line = (f"{_names(failed)} failed ({'; '.join(_failure(e) for e in failures.values())}) "
                f"where {_names(answered)} answered")
        if len(groups) > 1:
            line += f"; {' vs '.join(_names(g) for g in groups)} disagree among themselves"
        line += "; " + _against_primary(answered, w)
        return Verdict(DivergenceKind.ENGINE_ERROR, failed, line, DivergenceKind.ENGINE_ERROR.value,
                       groups=groups)
    if len(groups) > 1:
        line = f"engines disagree ({' vs '.join(_names(g) for g in groups)})"
        if w.present:
            sides = [n for n in answered if w.agrees(n)]
            if not sides:
                line += "; none matches the primary"
            elif len(sides) == len(answered):
                line += "; all match the primary: they differ only in bytes its masks hide"
            else:
                wrong = [n for n in answered if n not in sides]
                line += (f"; {_names(sides)} {'sides' if len(sides) == 1 else 'side'} with the primary: "
                         f"{_names(wrong)} {'is' if len(wrong) == 1 else 'are'} wrong")
        else:
            line += f"; no witness ({w.reason})"
        return Verdict(DivergenceKind.ENGINE_DISAGREEMENT, answered, line,
                       DivergenceKind.ENGINE_DISAGREEMENT.value, groups=groups)
    # every engine that answered agrees
    short = f" ({_names(abstained)} did not answer)" if abstained else ""
    if not w.present:
        if len(answered) < 2:
            return Verdict(None, answered, f"{_names(answered)} answered; no witness ({w.reason})",
                           "", compared=False, groups=groups)
        label = AGREE_BLOCK_ABSENT if w.reason == BLOCK_ABSENT.removeprefix("witness: ") else AGREE_NO_WITNESS
        return Verdict(None, answered, f"{_names(answered)} agree; no witness ({w.reason})", label + short,
                       groups=groups)
    if w.agrees(answered[0]):
        return Verdict(None, answered, f"{_names(answered)} and the primary agree", VERIFIED + short,
                       groups=groups)
    if len(answered) >= 2:
        return Verdict(DivergenceKind.PRIMARY_DIFFERS, answered,
                       f"{_names(answered)} agree; the primary differs: {WAL_LACKS}",
                       DivergenceKind.PRIMARY_DIFFERS.value, groups=groups)
    only = answered[0]
    return Verdict(DivergenceKind.ENGINE_VS_PRIMARY, answered,
                   f"{only} differs from the primary ({only} is the only engine that answered: an engine "
                   f"bug, or WAL that does not carry what the primary has)",
                   DivergenceKind.ENGINE_VS_PRIMARY.value, groups=groups)
