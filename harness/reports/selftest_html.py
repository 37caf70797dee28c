"""HTML for a self-test report (``redodiff selftest --report``, pyredo or C mutants).

``harness.reports.html.render`` adds this section for every self-test JSON report in a
run directory: the score, the control run, and per mutant whether and how fast it was
caught (for C mutants also the C function and the incremental rebuild time), with the
reason a survivor survived.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any


def _e(s: Any) -> str:
    return html.escape("" if s is None else str(s))


def is_selftest_report(d: object) -> bool:
    return isinstance(d, dict) and "mutants" in d and "score" in d and "budget_per_mutant" in d


def read_selftest_reports(path: Path) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for p in sorted(Path(path).glob("*.json")):
        try:
            d = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if is_selftest_report(d):
            found.append((p, d))
    return found


def render_selftest(d: dict[str, Any], name: str = "") -> str:
    """One self-test report as an HTML section."""
    c = d.get("kind") == "c"
    what = "C mutants (PostgreSQL's redo patched, rebuilt, used as the subject)" if c else "pyredo mutants"
    ctl = d.get("control") or {}
    head = (f"<h2>self-test {_e(name)}: {_e(what)}</h2><p>mutation score <b>{_e(d.get('caught'))}/"
            f"{_e(d.get('total'))} = {float(d.get('score', 0)):.0%}</b> (threshold {float(d.get('min_score', 0)):.0%}); "
            f"{'passed' if d.get('passed') else 'not passed'}; false alarms {_e(d.get('false_alarms'))}; "
            f"{_e(d.get('budget_per_mutant'))} s per mutant; engines {_e('+'.join(d.get('engines') or []))}; "
            f"PostgreSQL {_e(d.get('pg_major'))}"
            + (f"; control: {_e(ctl.get('divergences'))} divergences in {_e(ctl.get('iterations'))} iterations"
               if ctl else "") + ("; <b>interrupted</b>" if d.get("interrupted") else "") + "</p>")
    build = d.get("build")
    if c and isinstance(build, dict):
        head += (f"<p>build: {_e(build.get('version'))} at {_e(build.get('bindir'))}, work tree "
                 f"{_e(build.get('work_tree'))}</p>")
    cols = ["mutant", "rmgr", "record type", "category", "masked", "caught", "seconds", "iteration",
            "first divergence", *(["function", "rebuild s"] if c else []), "survivor reason / history"]
    rows = []
    for m in d.get("mutants", []):
        div = m.get("divergence") or {}
        note = m.get("survivor_reason") or ""
        if m.get("history"):
            note = (note + " " if note else "") + f"history: {m['history']}"
        cells = [m.get("name"), m.get("rmgr"), m.get("record_type"), m.get("category"),
                 "yes" if m.get("masked") else "", "yes" if m.get("caught") else "no", m.get("seconds"),
                 m.get("iterations"), f"{div.get('kind', '')} {div.get('record_type', '')}".strip(),
                 *([m.get("function"), m.get("rebuild_seconds")] if c else []), note]
        style = "" if m.get("caught") else " style='background:#fdd'"
        rows.append(f"<tr{style}>" + "".join(f"<td>{_e(x)}</td>" for x in cells) + "</tr>")
    table = ("<table><tr>" + "".join(f"<th>{_e(x)}</th>" for x in cols) + "</tr>" + "".join(rows) + "</table>")
    return head + table
