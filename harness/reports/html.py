"""Render a bundle, or a run directory (reports + bundles), as one self-contained
HTML page: run summary, coverage by record type, and per divergence a
side-by-side decoded page view with the differing bytes highlighted in a hex
view, the records with the first diverging one marked, and the replay command.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from harness.campaign.bundle import Bundle, is_bundle, read_bundle
from harness.reports.coverage import TABLE, compute_coverage
from harness.reports.merge import read_run_report
from harness.reports.schema import DivergenceKind, FuzzReport, MergedReport, is_run_report
from oracles.compare import explain_diff
from pyredo import BLCKSZ
from pyredo.page.bufpage import PageGetItemId, PageGetLSN, PageGetMaxOffsetNumber
from pyredo.rmgrlist import PG15, RmgrTable, table_for
from pyredo.wal.lsn import format_lsn

record_type = TABLE.record_type

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330;background:#fafbfc}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left}
th{background:#eef1f4}.num{text-align:right}.ok{color:#1a7f37}.bad{color:#cf222e;font-weight:600}
.pages{display:flex;gap:24px;flex-wrap:wrap}.page{flex:1;min-width:520px}
.hex{font:12px/1.35 ui-monospace,monospace;white-space:pre;background:#fff;border:1px solid #d0d7de;padding:6px}
.d{background:#ff4d4d;color:#fff;font-weight:700}.m{background:#d8dee4;color:#57606a}.muted{color:#57606a}.cell-d{background:#ffd7d5}
.first{background:#fff3b0;font-weight:700}code{background:#eef1f4;padding:1px 4px;border-radius:3px}
details summary{cursor:pointer;color:#0969da}
.cov table{column-count:3}.cov{columns:3 280px}.cov tr{break-inside:avoid}
.toc li{margin:2px 0}.known{color:#9a6700;font-weight:600}
.verdict{font-size:15px;background:#fff8c5;border:1px solid #d4a72c;padding:6px 10px}
"""


def _e(s: Any) -> str:
    return html.escape(str(s))


def _header_rows(a: bytes, b: bytes) -> str:
    fields = [("pd_lsn", 0, 8), ("pd_checksum", 8, 2), ("pd_flags", 10, 2), ("pd_lower", 12, 2),
              ("pd_upper", 14, 2), ("pd_special", 16, 2), ("pd_pagesize_version", 18, 2), ("pd_prune_xid", 20, 4)]
    rows = []
    for name, off, size in fields:
        va = format_lsn(PageGetLSN(a)) if name == "pd_lsn" else int.from_bytes(a[off : off + size], "little")
        vb = format_lsn(PageGetLSN(b)) if name == "pd_lsn" else int.from_bytes(b[off : off + size], "little")
        cls = ' class="cell-d"' if a[off : off + size] != b[off : off + size] else ""
        rows.append(f"<tr><td>{name}</td><td{cls}>{_e(va)}</td><td{cls}>{_e(vb)}</td></tr>")
    return "".join(rows)


def _lp_rows(a: bytes, b: bytes, owner: str | None) -> str:
    n = max(PageGetMaxOffsetNumber(a), PageGetMaxOffsetNumber(b))
    rows = []
    for i in range(1, min(n, 400) + 1):
        la = PageGetItemId(a, i) if i <= PageGetMaxOffsetNumber(a) else None
        lb = PageGetItemId(b, i) if i <= PageGetMaxOffsetNumber(b) else None
        cls = ' class="cell-d"' if la != lb else ""
        extra_a = _item_summary(a, la, owner)
        extra_b = _item_summary(b, lb, owner)
        rows.append(f"<tr><td class=num>{i}</td><td{cls}>{_e(la)}</td><td{cls}>{_e(extra_a)}</td>"
                    f"<td{cls}>{_e(lb)}</td><td{cls}>{_e(extra_b)}</td></tr>")
    return "".join(rows)


def _item_summary(page: bytes, lp: tuple[int, int, int] | None, owner: str | None) -> str:
    if lp is None or lp[2] == 0:
        return ""
    off, _flags, length = lp
    item = page[off : off + length]
    if owner in ("Heap", "Heap2", "Sequence", None) and length >= 23:
        xmin, xmax = int.from_bytes(item[0:4], "little"), int.from_bytes(item[4:8], "little")
        ctid = (int.from_bytes(item[12:14], "little") << 16 | int.from_bytes(item[14:16], "little"),
                int.from_bytes(item[16:18], "little"))
        im2, im = int.from_bytes(item[18:20], "little"), int.from_bytes(item[20:22], "little")
        return f"xmin {xmin} xmax {xmax} ctid {ctid} infomask2 0x{im2:04x} infomask 0x{im:04x} hoff {item[22]}"
    if length >= 8:
        tid = (int.from_bytes(item[0:2], "little") << 16 | int.from_bytes(item[2:4], "little"),
               int.from_bytes(item[4:6], "little"))
        return f"t_tid {tid} t_info 0x{int.from_bytes(item[6:8], 'little'):04x}"
    return item.hex()


def _hex_view(page: bytes, other: bytes, only_diff_rows: bool, significant: set[int]) -> str:
    """Hex rows; bytes that differ and survive the masks in red, masked differences in grey."""
    lines = []
    for row in range(0, BLCKSZ, 16):
        a, b = page[row : row + 16], other[row : row + 16]
        if only_diff_rows and a == b:
            continue
        cells = []
        for i, byte in enumerate(a):
            h = f"{byte:02x}"
            if byte != b[i]:
                cls = "d" if row + i in significant else "m"
                h = f'<span class="{cls}">{h}</span>'
            cells.append(h)
        lines.append(f"{row:04x}  " + " ".join(cells))
    return "\n".join(lines) or "(no differing bytes)"


def _significant(b: Bundle, left: bytes, right: bytes) -> tuple[set[int], set[str]]:
    """Byte offsets (and field descriptions) that differ after masking, when the
    pair is engine vs primary; every difference when two engines disagree."""
    if b.meta.get("kind") == DivergenceKind.ENGINE_DISAGREEMENT:
        return {i for i in range(BLCKSZ) if left[i] != right[i]}, {str(d) for d in explain_diff(left, right, b.meta.get("owner"))}
    from oracles.masks import mask_page
    from oracles.masks.bufmask import MaskError

    tag = b.tag
    owner = b.meta.get("owner") or "Heap"
    table = _table_of(b.meta.get("pg_version"))
    try:
        ml = mask_page(left, owner, tag.blk, tag.fork, final_state=True, table=table)
        mr = mask_page(right, owner, tag.blk, tag.fork, final_state=True, table=table)
    except MaskError:
        ml, mr = left, right
    return {i for i in range(BLCKSZ) if ml[i] != mr[i]}, {str(d) for d in explain_diff(ml, mr, owner)}


def _table_of(pg_version: object) -> RmgrTable:
    """The rmgr table (its masks) of the major a bundle names ("17.10"); PostgreSQL 15's
    for a bundle that does not say."""
    m = re.search(r"(\d+)", str(pg_version or ""))
    try:
        return table_for(int(m.group(1))) if m is not None else PG15
    except KeyError:
        return PG15


def _pair(b: Bundle) -> tuple[str, bytes, str, bytes]:
    """Which two pages to show side by side: the two engines, or engine vs primary."""
    names = [n for n in b.pages if n != "primary"]
    if b.meta.get("kind") == DivergenceKind.ENGINE_DISAGREEMENT and len(names) >= 2:
        return names[0], b.pages[names[0]], names[1], b.pages[names[1]]
    left = names[0] if names else "engine"
    return left, b.pages.get(left, bytes(BLCKSZ)), "primary", b.pages.get("primary", bytes(BLCKSZ))


def render_bundle_section(b: Bundle) -> str:
    m = b.meta
    ln, lp, rn, rp = _pair(b)
    owner = m.get("owner")
    first = b.first_diverging_lsn
    recs = "".join(
        f"<tr{' class=first' if r.lsn == first else ''}><td>{format_lsn(r.lsn)}</td><td>{_e(record_type(r))}</td>"
        f"<td>{'first diverging record' if r.lsn == first else ''}</td></tr>" for r in b.records)
    sig_bytes, sig_fields = _significant(b, lp, rp)
    raw = [str(d) for d in explain_diff(lp, rp, owner)]
    diffs = "".join(f"<li><code>{_e(d)}</code> <span class=bad>survives masks</span></li>" for d in raw if d in sig_fields)
    diffs += "".join(f"<li><code>{_e(d)}</code> <span class=muted>masked (may legitimately differ)</span></li>"
                     for d in raw if d not in sig_fields)
    return f"""
<h2 id="{_e(m.get('id', b.path.name))}">{_verdict_badge(m)} {_e(m.get('tag'))}</h2>
{_verdict_line(m)}
<p>kind: <b>{_e(m.get('kind'))}</b> &middot; engines: <b>{_e(', '.join(m.get('engines', [])))}</b> &middot; page owner: <b>{_e(owner)}</b> &middot;
record type: <b>{_e(m.get('record_type'))}</b> &middot; seed: {_e(m.get('seed'))} &middot; settings: {_e(m.get('settings'))}
&middot; {_e(m.get('pg_version'))}</p>
<p>replay: <code>{_e(m.get('replay', f'redodiff replay {b.path}'))}</code></p>
<h3>differences</h3><ul>{diffs}</ul>
<h3>hex (rows that differ; differing bytes highlighted)</h3>
<div class=pages>
 <div class=page><b>{_e(ln)}</b><div class=hex>{_hex_view(lp, rp, True, sig_bytes)}</div></div>
 <div class=page><b>{_e(rn)}</b><div class=hex>{_hex_view(rp, lp, True, sig_bytes)}</div></div>
</div>
<div class=pages>
 <div class=page><h3>page header</h3><table><tr><th>field</th><th>{_e(ln)}</th><th>{_e(rn)}</th></tr>{_header_rows(lp, rp)}</table></div>
 <div class=page><h3>records touching the page</h3><table><tr><th>LSN</th><th>type</th><th></th></tr>{recs}</table></div>
</div>
<h3>line pointers and items</h3>
<table><tr><th>lp</th><th>{_e(ln)} (off, flags, len)</th><th>{_e(ln)} item</th><th>{_e(rn)} (off, flags, len)</th><th>{_e(rn)} item</th></tr>{_lp_rows(lp, rp, owner)}</table>
<details><summary>whole pages</summary><div class=pages>
 <div class=page><div class=hex>{_hex_view(lp, rp, False, sig_bytes)}</div></div>
 <div class=page><div class=hex>{_hex_view(rp, lp, False, sig_bytes)}</div></div></div></details>
"""


def _verdict_badge(m: dict[str, Any]) -> str:
    """A known PostgreSQL issue is shown as known, anything else as a finding."""
    if m.get("known"):
        return f"<span class=known>known: {_e(m['known'])}</span>"
    return f"<span class=bad>{_e(m.get('kind'))}</span>"


def _verdict_line(m: dict[str, Any]) -> str:
    """The verdict first: what the vote of the engines and the primary says."""
    verdict = m.get("verdict")
    return f"<p class=verdict><b>verdict:</b> {_e(verdict)}</p>" if verdict else ""


def _coverage_table(report: MergedReport) -> str:
    cov = compute_coverage(report.record_types)
    cells = "".join(
        f"<tr><td>{_e(r.type)}</td><td class='num {'ok' if r.verified else 'bad'}'>{r.verified}</td></tr>"
        for r in cov.rows)
    return (f"<h2>coverage: {cov.covered} of {cov.total} page-modifying record types verified "
            f"({cov.share:.0%})</h2><div class=cov><table><tr><th>record type</th><th>verified</th></tr>"
            f"{cells}</table></div>")


def _summary(report: MergedReport) -> str:
    counts = [(report.iterations, "iterations"), (report.records, "records"), (report.pages_checked, "pages verified"),
              (report.pages_skipped_no_base, "pages skipped (no base)"), (report.step_errors, "step errors (recorded)")]
    rows = "".join(f"<tr><td>{label}</td><td class=num>{_e(n)}</td></tr>" for n, label in counts)
    nd = sum(1 for d in report.divergences if d.known is None)
    rows += f"<tr><td>divergences</td><td class='num {'bad' if nd else 'ok'}'>{nd}</td></tr>"
    nk = len(report.divergences) - nd
    if nk:
        rows += f"<tr><td>known PostgreSQL issues (not findings)</td><td class='num known'>{nk}</td></tr>"
    rows += f"<tr><td>infrastructure errors</td><td class=num>{len(report.infrastructure_errors)}</td></tr>"
    rows += f"<tr><td>engines</td><td>{_e(', '.join(report.engines))}</td></tr>"
    settings = ", ".join(f"{k}: {v}" for k, v in sorted(report.settings_seen.items()))
    rows += f"<tr><td>settings seen</td><td>{_e(settings)}</td></tr>"
    return f"<h2>run summary</h2><table>{rows}</table>"


def render(path: Path) -> str:
    """HTML for a bundle directory, or for a run directory (``*.json`` reports and ``bundles/``)."""
    path = Path(path)
    if is_bundle(path):
        bundles = [read_bundle(path)]
        report: MergedReport | None = None
        title = f"redodiff divergence {path.name}"
    else:
        reports = [p for p in sorted(path.glob("*.json")) if _is_report(p)]
        report = FuzzReport.merged([read_run_report(p) for p in reports], map(str, reports)) if reports else None
        bdir = path / "bundles" if (path / "bundles").is_dir() else path
        bundles = [read_bundle(p) for p in sorted(bdir.iterdir()) if is_bundle(p)]
        title = f"redodiff run {path}"
    body = [f"<h1>{_e(title)}</h1>"]
    if report is not None:
        body.append(_summary(report))
        toc = "".join(f"<li><a href='#{_e(b.meta.get('id', b.path.name))}'>{_e(b.meta.get('kind'))} "
                      f"{_e(b.meta.get('tag'))} {_e(b.meta.get('record_type'))}</a></li>" for b in bundles)
        body.append(f"<h2>divergences ({len(bundles)})</h2><ul class=toc>{toc}</ul>")
    if not is_bundle(path):  # self-test reports (pyredo or C mutants) in the run directory
        from harness.reports.selftest_html import read_selftest_reports, render_selftest

        body.extend(render_selftest(d, p.name) for p, d in read_selftest_reports(path))
    body.extend(render_bundle_section(b) for b in bundles)
    if report is not None:
        body.append(_coverage_table(report))
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{_e(title)}</title><style>{CSS}</style>"
            f"</head><body>{''.join(body)}</body></html>\n")


def _is_report(p: Path) -> bool:
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError):
        return False
    return is_run_report(d)
