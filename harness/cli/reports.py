"""``coverage``, ``merge``, ``report``: reading and rendering reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.table import Table

from harness.cli.common import (
    EXIT_DIVERGENCE,
    EXIT_OK,
    fail_setup,
    out,
)
from harness.reports.cells import CellGrid, compute_cells


@click.command()
@click.argument("reports", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--corpus", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Include the corpus's running coverage (corpus/coverage.json).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the table as JSON.")
@click.option("--pg", "pg_major", type=click.Choice(["15", "16", "17", "18"]),
              help="Whose universe of page-modifying record types to measure against "
                   "(default: the major the REPORTS name, else 15).")
@click.option("--cells", "show_cells", is_flag=True,
              help="Show the grid cell by cell: record type | fork | block form (reached, count).")
def coverage(reports: tuple[Path, ...], corpus: Path | None, report_path: Path | None,
             pg_major: str | None, show_cells: bool) -> None:
    """Every page-modifying record type of one PostgreSQL major, how many times it was
    verified (summed over fuzz/check REPORTS and the corpus), and the share covered.

    \b
      redodiff coverage out/report.json            the major the report was run on
      redodiff coverage --pg 17 --corpus corpus/   PostgreSQL 17's record types
      redodiff coverage out/report.json --cells    every record type|fork|block form cell
    """
    from harness.reports.coverage import compute_coverage, load_cells, load_counts, table_of
    from pyredo.rmgrlist import table_for

    if pg_major is not None:
        table = table_for(int(pg_major))
    else:
        versions = {json.loads(p.read_text()).get("pg_version") for p in reports}
        if len(versions) > 1:
            fail_setup(f"the reports were run on different PostgreSQL versions ({', '.join(sorted(map(str, versions)))}); "
                       "choose the universe with --pg")
        table = table_of(versions.pop() if versions else None)
    cov = compute_coverage(load_counts(list(reports), corpus), table)
    if report_path:
        report_path.write_text(json.dumps(cov.to_json(), indent=2) + "\n")
    t = Table(title=f"coverage (PostgreSQL {table.major}): {cov.covered}/{cov.total} page-modifying types verified "
                    f"({cov.share:.0%}); of pyredo's {cov.implemented}: "
                    f"{cov.implemented_share:.0%}")
    t.add_column("record type")
    t.add_column("verified", justify="right")
    t.add_column("pyredo")
    for row in cov.rows:
        t.add_row(row.type, str(row.verified) if row.verified else "[red]0[/]",
                  "yes" if row.pyredo_implements else "[yellow]no[/]")
    out.print(t)
    _print_cells(compute_cells(load_cells(list(reports), corpus), table), show_cells)


def _print_cells(grid: CellGrid, show_cells: bool) -> None:
    """The coverage grid: a summary by fork and form, and with ``--cells`` every cell."""
    by: dict[tuple[str, str], list[int]] = {}
    for c in grid.reachable:
        _, fork, form = c.split("|")
        row = by.setdefault((fork, form), [0, 0])
        row[0] += bool(grid.counts.get(c))
        row[1] += 1
    t = Table(title=f"coverage grid: {grid.covered}/{grid.total} reachable cells (record type | fork | block form)")
    for col in ("fork", "block form", "reached", "reachable"):
        t.add_column(col, justify="right" if col.startswith("reach") else "left")
    for (fork, form), (n, total) in sorted(by.items()):
        t.add_row(fork, form, str(n) if n else "[red]0[/]", str(total))
    out.print(t)
    if show_cells:
        cells = Table(title="cells")
        cells.add_column("cell")
        cells.add_column("count", justify="right")
        for c in sorted(grid.reachable | set(grid.unexpected) | grid.race):
            n = grid.counts.get(c, 0)
            note = ("" if c in grid.reachable else "  [dim](race-only, not counted)[/]"
                    if c in grid.race else "  [yellow](not in the universe)[/]")
            cells.add_row(c + note, str(n) if n else ("0" if c in grid.race else "[red]0[/]"))
        out.print(cells)


# -- gate ---------------------------------------------------------------------------


@click.command()
@click.argument("reports", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--report", "report_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Write the merged JSON report here.")
def merge(reports: tuple[Path, ...], report_path: Path) -> None:
    """Merge fuzz reports of several shards into one (counts summed, lists joined,
    coverage recomputed). Exit 1 if any shard found a divergence that is not a known
    PostgreSQL issue (oracles/known_issues.toml), as fuzz does."""
    from harness.reports.merge import merge_files

    merged = merge_files(list(reports))
    report_path.write_text(json.dumps(merged.to_json(), indent=2) + "\n")
    cov = merged.coverage()
    unknown = len(merged.unknown_divergences)
    known = len(merged.divergences) - unknown
    out.print(f"{len(reports)} reports: {merged.iterations} iterations, {merged.pages_checked:,} pages, "
              f"{unknown} divergences" + (f" (+ {known:,} known PostgreSQL issues)" if known else "")
              + f", coverage {cov.covered}/{cov.total}")
    sys.exit(EXIT_DIVERGENCE if unknown else EXIT_OK)


# -- report -------------------------------------------------------------------------
@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--html", "html_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Write a self-contained HTML page here.")
def report(path: Path, html_path: Path) -> None:
    """Render a BUNDLE, or a run directory (fuzz *.json reports + bundles/), as HTML:
    summary, coverage table, and per divergence a decoded side-by-side page view with
    the differing bytes highlighted, the records, and the replay command."""
    from harness.campaign.bundle import BundleError
    from harness.reports.html import render

    try:
        html_path.write_text(render(path))
    except BundleError as e:
        fail_setup(str(e))
    out.print(f"wrote {html_path}")

