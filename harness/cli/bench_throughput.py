"""``bench check`` and ``bench fuzz``: where a check's and a campaign's time goes, and
how it compares with PostgreSQL's own recovery of the same WAL."""

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
    LSN,
    _progress,
    before_fork,
    default_workers,
    engine_option,
    err,
    fail_setup,
    fuzz_engine_set,
    out,
    pg_install,
    pg_options,
    stop_requests,
    tag_layout_option,
    walredo_cmd_option,
)
from oracles.pgbin import SetupError


@click.command("check")
@click.option("--pgdata", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The primary's data directory (stopped, or CHECKPOINTed after the range): its pg_wal and pages.")
@click.option("--base-backup", "base", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A copy of the data directory whose pg_control points at the checkpoint at --start "
                   "(taken after CHECKPOINT and an immediate stop): base pages, and what PostgreSQL recovers from.")
@click.option("--start", type=LSN, required=True, help="The range's start: the base copy's checkpoint redo LSN.")
@click.option("--end", type=LSN, help="End of the range (default: end of WAL, where crash recovery ends too).")
@click.option("--workers", "workers", type=click.IntRange(min=1), multiple=True,
              help="Worker processes; give several (e.g. --workers 1 --workers 2) to compare. Default: the cores.")
@engine_option
@walredo_cmd_option
@tag_layout_option
@pg_options
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_check_cmd(pgdata: Path, base: Path, start: int, end: int | None, workers: tuple[int, ...],
                    engines: tuple[str, ...], walredo_cmd: str | None, tag_layout: str,
                    pg_major: str | None, pg_bindir: Path | None, as_json: bool) -> None:
    """redodiff's check of a WAL range (default engines: pyredo and walredo) vs PostgreSQL's
    own crash recovery of the same range from the same base copy: seconds and their ratio."""
    from generators.workload import Settings
    from harness.bench.check import describe_range, run_summary, time_pg_recovery, time_redodiff
    from harness.clusters.datadir import DataDirPages, hint_bits_logged
    from harness.verify.check import Checker
    from oracles.known_issues import KnownIssues
    from oracles.pgbin import default_install, installed

    pg = pg_install(pg_major, pg_bindir)
    major = int((pgdata / "PG_VERSION").read_text().strip())
    inst = pg or (installed(major) if major != default_install().major else default_install())
    interrupts = stop_requests()
    es = fuzz_engine_set(engines, walredo_cmd, tag_layout, pg=pg)
    before_fork(es, max(workers or (default_workers(),)))
    es.close()  # each run starts its own servers
    hints = hint_bits_logged(pgdata, inst)
    known = KnownIssues.load(inst.version_num)

    def make_checker() -> Checker:
        return Checker(es.for_settings(Settings(wal_log_hints=hints)), DataDirPages(pgdata), DataDirPages(base),
                       base_is_snapshot=True, known_issues=known, interrupts=interrupts)

    try:
        err.print(f"[dim]PostgreSQL {inst.major}: crash recovery of {describe_range(start, end)} from a copy of "
                  f"{base}[/]")
        recovery = time_pg_recovery(pgdata, base, inst)
        pg_seconds = recovery["redo_elapsed_s"] or recovery["wall_to_ready_s"]
        runs = []
        for n in workers or (default_workers(),):
            with _progress() as prog:
                task = prog.add_task(f"redodiff check, {n} worker(s)", total=None)

                def advance(done: int, total: int, prog: Any = prog, task: Any = task) -> None:
                    prog.update(task, completed=done, total=total)
                secs, cpu, report = time_redodiff(pgdata / "pg_wal", start, end, make_checker, workers=n,
                                                  engines=es.names, primary=DataDirPages(pgdata),
                                                  interrupts=interrupts, close=es.close, progress=advance)
            runs.append(run_summary(secs, cpu, report, n, pg_seconds, recovery["redo_cpu_s"]))
            err.print(f"[dim]{n} worker(s): {json.dumps(runs[-1])}[/]")
    except SetupError as e:
        fail_setup(str(e))
    result = {"range": describe_range(start, end), "engines": list(es.names), "postgres": recovery, "runs": runs}
    if as_json:
        out.print_json(json.dumps(result))
        return
    table = Table(title=f"check {result['range']} ({', '.join(es.names)}) vs PostgreSQL {inst.major}'s recovery")
    for col in ("what", "seconds", "× PostgreSQL", "CPU s", "CPU × PostgreSQL", "records", "pages verified",
                "divergences"):
        table.add_column(col, justify="left" if col == "what" else "right")
    table.add_row("PostgreSQL crash recovery (redo loop)", f"{pg_seconds:.2f}", "1", str(recovery["redo_cpu_s"]),
                  "1", "", "", "")
    for r in runs:
        table.add_row(f"redodiff check, {r['workers']} worker(s)", f"{r['seconds']:.1f}", f"{r['ratio_to_postgres']}",
                      f"{r['cpu_seconds']}", f"{r['cpu_ratio_to_postgres']}",
                      f"{r['records']:,}", f"{r['pages_checked']:,}", str(r["divergences"]))
    out.print(table)
    out.print(f"PostgreSQL: {recovery['redo_log']} (wall to ready {recovery['wall_to_ready_s']} s)")
    for r in runs:
        out.print(f"{r['workers']} worker(s), seconds by phase (engines and witness summed over workers): "
                  + ", ".join(f"{k} {v}" for k, v in r["phases"].items()))


@click.command("fuzz")
@click.option("--budget", type=float, default=300.0, show_default=True, metavar="SECONDS")
@click.option("--iterations", type=int, metavar="N", help="Stop after N iterations instead.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes. Default: the cores.")
@click.option("--profile", type=click.Choice(["ci", "nightly"]), default="ci", show_default=True)
@engine_option
@walredo_cmd_option
@tag_layout_option
@click.option("--slowest", default=5, show_default=True, help="List this many slowest iterations.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the campaign's report here.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@pg_options
def bench_fuzz_cmd(budget: float, iterations: int | None, seed: int, workers: int | None, profile: str,
                   engines: tuple[str, ...], walredo_cmd: str | None, tag_layout: str, slowest: int,
                   report_path: Path | None, as_json: bool, pg_major: str | None = None,
                   pg_bindir: Path | None = None) -> None:
    """A fuzz campaign (default: both engines, one worker per core), timed: pages verified
    per minute, the harness's share of iteration time (its phases: decode, plan, each
    engine, witness, coverage, judge, commit log, bundles; what no phase timed is shown
    as unaccounted), the phases' shares, and the slowest iterations."""
    from harness.bench.fuzz import fuzz_figures
    from harness.campaign.fuzz import FuzzConfig, run_campaign, write_outputs

    try:
        cfg = FuzzConfig(seed=seed, budget=None if iterations else budget, iterations=iterations,
                         workers=workers or default_workers(), profile=profile,
                         engines=fuzz_engine_set(engines, walredo_cmd, tag_layout, pg=pg_install(pg_major, pg_bindir)),
                         interrupts=stop_requests())
        rep = run_campaign(cfg, progress=lambda r: err.print(
            f"[dim]{r.iterations} iterations, {r.pages_checked:,} pages[/]") if r.iterations % 5 == 0 else None)
    except (SetupError, ValueError) as e:
        fail_setup(str(e))
    if report_path:
        write_outputs(rep, report_path, None, None)
    fig = fuzz_figures(rep, slowest, cfg.workers)
    if as_json:
        out.print_json(json.dumps(fig))
    else:
        _print_fuzz(fig)
    sys.exit(EXIT_DIVERGENCE if rep.unknown_divergences else EXIT_OK)


def _print_fuzz(fig: dict[str, Any]) -> None:
    out.print(f"{fig['iterations']} iterations in {fig['seconds']:.0f} s on {fig['workers_seen']} worker(s), "
              f"engines {', '.join(fig['engines'])}: {fig['pages_checked']:,} pages verified, "
              f"[bold]{fig['pages_per_minute']:,.0f} pages/min[/]")
    known = fig["divergences"] - fig["unknown_divergences"]
    out.print(f"divergences: {fig['unknown_divergences']} unknown (+ {known} known PostgreSQL issues), "
              f"{fig['infrastructure_errors']} infrastructure errors; "
              f"{fig['replays_superseded']:,} record replays superseded by a later reset of their page")
    out.print(f"harness share of iteration time: [bold]{fig['harness_share']:.0%}[/] "
              f"(workload {fig['workload_share']:.0%}, checkpoints {fig['checkpoint_share']:.0%}, "
              f"clusters {fig['cluster_share']:.0%}, "
              f"unaccounted {fig['other_share']:.0%})")
    table = Table(title="seconds by phase, summed over iterations")
    for col in ("phase", "seconds", "share"):
        table.add_column(col, justify="left" if col == "phase" else "right")
    for name, secs in fig["phases"].items():
        table.add_row(name, f"{secs:.1f}", f"{secs / fig['iteration_seconds']:.0%}" if fig["iteration_seconds"] else "")
    out.print(table)
    slow = Table(title="slowest iterations")
    for col in ("iteration", "seed", "settings", "seconds", "pages", "where the time went"):
        slow.add_column(col, justify="right" if col in ("seconds", "pages") else "left")
    for it in fig["slowest"]:
        slow.add_row(str(it["index"]), str(it["seed"]), it["settings"], f"{it['seconds']:.1f}",
                     str(it["pages_checked"]), ", ".join(f"{k} {v:.1f}" for k, v in it["phases"].items()))
    out.print(slow)
