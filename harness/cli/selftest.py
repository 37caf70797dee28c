"""``selftest``: the mutation self-test (does the harness find redo bugs?)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from harness.cli.common import (
    EXIT_DIVERGENCE,
    EXIT_OK,
    _engine_set,
    err,
    fail_setup,
    hidden_cluster_option,
    out,
    pg_install,
    pg_options,
    stop_requests,
    tag_layout_option,
    walredo_cmd_option,
)
from oracles.pgbin import SetupError


def _selftest_catalog_text(major: int | None = None) -> str:
    """The catalog (of ``major``'s mutants; None: all) as a listing: one heading line per
    mutant, its description indented below (a table leaves the description no room on 80 columns)."""
    import textwrap

    from harness.selftest.catalog import CATALOG
    from pyredo.rmgrlist import table_for

    chosen = [m for m in CATALOG.values() if major is None or m.applies_to(major)]
    lines = [f"mutant catalog: {len(chosen)} mutants" + (f" of PostgreSQL {major}" if major else "")
             + "  (masked: only engine-vs-engine can see it; historical: modelled on a real PostgreSQL bug)", ""]
    for m in chosen:
        tags = [m.category] + (["masked"] if m.masked else []) + (["historical"] if m.history else [])
        rtype = m.type_name(table_for(major)) if major else m.record_type
        lines.append(f"{m.name}  [{rtype}; PostgreSQL {', '.join(map(str, m.majors))}; {', '.join(tags)}]")
        lines.extend(textwrap.wrap(m.description, 76, initial_indent="    ", subsequent_indent="    "))
        if m.history:
            lines.extend(textwrap.wrap(f"history: {m.history}", 76, initial_indent="    ",
                                       subsequent_indent="    "))
    return "\n".join(lines)


def _selftest_results_table(rep: Any) -> Table:
    t = Table(title=f"redodiff selftest (PostgreSQL {rep.pg_major}): mutation score "
                    f"{rep.caught}/{rep.total} = {rep.score:.0%} (engines {'+'.join(rep.engines)}, {rep.budget:g} s per mutant)")
    t.add_column("mutant", no_wrap=True)
    t.add_column("rmgr")
    t.add_column("caught", justify="center")
    t.add_column("seconds", justify="right")
    t.add_column("iterations", justify="right")
    t.add_column("steps", justify="right")
    t.add_column("minimized steps", justify="right")
    c = getattr(rep, "kind", "pyredo") == "c"
    if c:
        t.add_column("rebuild s", justify="right")
    for r in rep.results:
        t.add_row(r.name, r.rmgr, "[green]yes[/]" if r.caught else "[bold red]no[/]",
                  f"{r.seconds:.1f}" if r.seconds is not None else "-",
                  str(r.iterations) if r.iterations is not None else f"({r.iterations_run} run)",
                  str(r.original_steps) if r.original_steps is not None else "-",
                  str(r.minimized_steps) if r.minimized_steps is not None else "-",
                  *([f"{r.rebuild_seconds:.1f}" if r.rebuild_seconds is not None else "-"] if c else []))
    return t


@click.command()
@click.option("--budget-per-mutant", "budget", type=float, default=60, show_default=True, metavar="SECONDS",
              help="Fuzz this long with each mutant applied (the campaign stops at the first catch).")
@click.option("--only", "only", multiple=True, metavar="NAME", help="Run only this mutant (repeatable).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the JSON report here (rewritten after every mutant).")
@click.option("--list", "list_only", is_flag=True, help="List the mutant catalog and exit.")
@click.option("--engine", "engines", multiple=True, type=click.Choice(["pyredo", "walredo"]),
              help="Engine(s) to fuzz with. Default: both when the wal-redo server starts, else pyredo.")
@walredo_cmd_option
@tag_layout_option
@click.option("--seed", type=int, default=0, show_default=True,
              help="Base seed: mutant NAME fuzzes with campaign seed crc32('SEED:NAME').")
@click.option("--profile", type=click.Choice(["ci", "nightly"]), default="ci", show_default=True)
@click.option("--minimize-trials", type=int, default=None, metavar="N",
              help="Minimize each catching workload with at most N runs (0: report un-minimized sizes). "
                   "Default: 12; 0 with --c.")
@click.option("--no-control", is_flag=True, help="Skip the control campaign (no mutant) that counts false alarms.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep bundles and minimized bundles here (default: a temporary directory, removed).")
@click.option("--min-score", type=float, default=0.9, show_default=True,
              help="Exit 1 when the mutation score is below this.")
@click.option("--c", "c_mutants", is_flag=True,
              help="The C mutants: patches to PostgreSQL 15's redo code, each applied to a source build "
                   "(redodiff pg build) that then is the subject (cluster + wal-redo server).")
@click.option("--jobs", type=int, default=None, metavar="N", help="With --c: make -jN (default: cores).")
@pg_options
@hidden_cluster_option
def selftest(budget: float, only: tuple[str, ...], report_path: Path | None, list_only: bool,
             engines: tuple[str, ...], walredo_cmd: str | None, tag_layout: str, seed: int, profile: str,
             minimize_trials: int | None, no_control: bool, workdir: Path | None, min_score: float,
             c_mutants: bool = False, jobs: int | None = None,
             cluster: str | None = None, pg_major: str | None = None, pg_bindir: Path | None = None) -> None:
    """Prove the harness finds redo bugs: apply each pyredo mutant (a named, documented
    bug in one redo routine), fuzz until the harness catches it or the budget runs out,
    and report the mutation score (caught / total) with time, iterations and case size.

    \b
    Examples:
      redodiff selftest --list
      redodiff selftest --budget-per-mutant 60 --report selftest.json
      redodiff selftest --only heap_insert_no_page_lsn --only btree_newroot_no_root_flag
      redodiff selftest --pg 17 --budget-per-mutant 60   # the mutants of 17's redo, on 17

    --pg V runs the mutants that mutate PostgreSQL V's redo table against clusters and
    the wal-redo server of V.

    Both engines are used when the wal-redo server is available (masked and LSN-only
    mutants can only be seen by comparing engines), else pyredo and the primary alone.
    Exit 0 when the score reaches --min-score and the control campaign found nothing,
    1 otherwise, 2 on a usage or setup error.

    --c runs the C mutants instead (harness/selftest/c_mutants: unified diffs against
    PostgreSQL 15's heapam.c, nbtxlog.c, ginxlog.c ... redo routines): PostgreSQL is built
    once from Debian's source, then per mutant patched, rebuilt incrementally and fuzzed
    with the mutated build as the subject, pyredo and the primary as witnesses.

    \b
      redodiff selftest --c --list
      redodiff selftest --c --budget-per-mutant 120 --report selftest-c.json
    """
    if c_mutants:
        _selftest_c(budget, only, report_path, list_only, engines, tag_layout, seed, profile,
                    minimize_trials or 0, no_control, workdir, min_score, jobs, cluster,
                    pg_major, pg_bindir)
    if list_only:
        click.echo(_selftest_catalog_text(int(pg_major) if pg_major else None))
        return
    from harness.selftest.catalog import get
    from harness.selftest.runner import SelftestConfig, run_selftest, walredo_available

    try:
        names = [get(n).name for n in only] or None
    except KeyError as e:
        fail_setup(str(e))
    note = None
    pg = pg_install(pg_major, pg_bindir)
    interrupts = stop_requests()  # before the probe below starts a wal-redo server
    if engines:
        es = _engine_set(engines, walredo_cmd, tag_layout, pg=pg)
    else:
        es = _engine_set(("pyredo", "walredo"), walredo_cmd, tag_layout, pg=pg)
        ok, why = walredo_available(es)
        if not ok:
            note = f"wal-redo server unavailable ({why}): pyredo and the primary witness only"
            err.print(f"[yellow]{note}[/]", soft_wrap=True)
            es = _engine_set(("pyredo",), None, tag_layout, pg=pg)
    cfg = SelftestConfig(budget=budget, names=names, engines=es, seed=seed, profile=profile,
                         minimize_trials=12 if minimize_trials is None else minimize_trials,
                         control=not no_control, workdir=workdir,
                         min_score=min_score, cluster=cluster, interrupts=interrupts)

    def progress(event: str, data: Any) -> None:
        if event == "control":
            err.print(f"[bold]control[/]: {budget:g} s with no mutant (every divergence is a false alarm)")
        elif event == "control_done":
            c = data
            style = "bold red" if c["divergences"] else "green"
            err.print(f"  [{style}]{c['divergences']} divergences[/] in {c['iterations']} iterations, "
                      f"{c['pages_checked']:,} pages, coverage {c['coverage']['covered']}/{c['coverage']['total']}")
        elif event == "start":
            i, n, m = data
            err.print(f"[bold][{i + 1}/{n}][/] {m.name} ({m.type_name(es.pyredo_table())})")
        elif event == "minimize":
            err.print("  caught; minimizing ...")
        elif event == "done":
            _i, _n, r = data
            if r.caught:
                err.print(f"  [green]caught[/] in {r.seconds:.1f} s, iteration {r.iterations}: "
                          f"{r.divergence['kind']} {r.divergence['record_type']}"
                          + (f"; {r.minimize_note}" if r.minimize_note else ""), soft_wrap=True)
            else:
                err.print(f"  [bold red]survived[/] {r.iterations_run} iterations: {r.survivor_reason}",
                          soft_wrap=True)

    try:
        cfg.mutants()
    except ValueError as e:  # a named mutant of another major's redo
        fail_setup(str(e))
    try:
        rep = run_selftest(cfg, progress=progress, report_path=report_path)
    except SetupError as e:
        fail_setup(str(e))
    rep.walredo_note = note
    if report_path:
        with cfg.interrupts.holding():
            report_path.write_text(json.dumps(rep.to_json(), indent=2) + "\n")
    out.print(_selftest_results_table(rep))
    survivors = [r for r in rep.results if not r.caught]
    for r in survivors:
        out.print(f"[bold red]survivor[/] {r.name} ({r.record_type}): {r.survivor_reason}", soft_wrap=True)
    if rep.control is not None and rep.control["divergences"]:
        out.print(f"[bold red]false alarms[/]: the control campaign (no mutant) found "
                  f"{rep.control['divergences']} divergence(s)")
    if rep.interrupted:
        err.print("[yellow]interrupted[/]: the report holds the mutants finished so far")
    out.print(f"mutation score {rep.caught}/{rep.total} = {rep.score:.1%} in {rep.seconds:.0f} s"
              f" (threshold {min_score:.0%}): {'[green]pass[/]' if rep.passed else '[bold red]fail[/]'}")
    sys.exit(EXIT_OK if rep.passed else EXIT_DIVERGENCE)


def _selftest_c(budget: float, only: tuple[str, ...], report_path: Path | None, list_only: bool,
                engines: tuple[str, ...], tag_layout: str, seed: int, profile: str, minimize_trials: int,
                no_control: bool, workdir: Path | None, min_score: float, jobs: int | None,
                cluster: str | None, pg_major: str | None, pg_bindir: Path | None) -> None:
    """``selftest --c``: the C mutants against a source build of PostgreSQL 15 (exits)."""
    import textwrap

    from harness.selftest.c_mutants import CATALOG, MAJOR, get

    if list_only:
        for m in CATALOG.values():
            tags = [m.category] + (["masked"] if m.masked else []) + (["historical"] if m.history else [])
            click.echo(f"{m.name}  [{m.function} in {m.file}; {', '.join(m.record_types)}; {', '.join(tags)}]")
            click.echo(textwrap.fill(m.description, 76, initial_indent="    ", subsequent_indent="    "))
            if m.history:
                click.echo(textwrap.fill(f"history: {m.history}", 76, initial_indent="    ",
                                         subsequent_indent="    "))
            if m.aim:
                click.echo(f"    aimed: profile {profile}{m.profile_aim}")
        sys.exit(EXIT_OK)
    if pg_bindir is not None or (pg_major is not None and int(pg_major) != MAJOR):
        fail_setup(f"--c builds PostgreSQL {MAJOR} itself (the patches are against its source): "
                   "drop --pg/--pg-bindir")
    from harness.selftest.c_runner import CSelftestConfig, run_c_selftest

    try:
        names = [get(n).name for n in only] or None
    except KeyError as e:
        fail_setup(str(e))
    cfg = CSelftestConfig(budget=budget, names=names, engine_names=engines or ("pyredo", "walredo"),
                          tag_layout=tag_layout, seed=seed, profile=profile, minimize_trials=minimize_trials,
                          control=not no_control, workdir=workdir, min_score=min_score, cluster=cluster, jobs=jobs,
                          interrupts=stop_requests(), log=lambda s: err.print(f"[dim]{s}[/]", highlight=False))

    def progress(event: str, data: Any) -> None:
        if event == "control":
            err.print(f"[bold]control[/]: {budget:g} s on the unpatched build (every divergence is a false alarm)")
        elif event == "control_done":
            err.print(f"  {data['divergences']} divergences in {data['iterations']} iterations")
        elif event == "start":
            i, n, m = data
            err.print(f"[bold][{i + 1}/{n}][/] {m.name} ({m.function}; {', '.join(m.record_types)})")
        elif event == "rebuilt":
            err.print(f"  patched and rebuilt in {data[1]:.1f} s")
        elif event == "done":
            r = data[2]
            if r.caught:
                err.print(f"  [green]caught[/] in {r.seconds:.1f} s, iteration {r.iterations}: "
                          f"{r.divergence['kind']} {r.divergence['record_type']}", soft_wrap=True)
            else:
                err.print(f"  [bold red]survived[/] {r.iterations_run} iterations: {r.survivor_reason}",
                          soft_wrap=True)

    try:
        rep = run_c_selftest(cfg, progress=progress, report_path=report_path)
    except SetupError as e:
        fail_setup(str(e))
    if report_path:
        with cfg.interrupts.holding():
            report_path.write_text(json.dumps(rep.to_json(), indent=2) + "\n")
    out.print(_selftest_results_table(rep))
    for r in rep.results:
        if not r.caught:
            out.print(f"[bold red]survivor[/] {r.name} ({r.record_type}): {r.survivor_reason}", soft_wrap=True)
    if rep.control is not None and rep.control["divergences"]:
        out.print(f"[bold red]false alarms[/]: the control campaign found {rep.control['divergences']} divergence(s)")
    out.print(f"C mutation score {rep.caught}/{rep.total} = {rep.score:.1%} in {rep.seconds:.0f} s"
              f" (threshold {min_score:.0%}): {'[green]pass[/]' if rep.passed else '[bold red]fail[/]'}")
    sys.exit(EXIT_OK if rep.passed else EXIT_DIVERGENCE)


# -- merge --------------------------------------------------------------------------
