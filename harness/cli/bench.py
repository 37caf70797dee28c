"""``bench``: benchmarks, each reported as a ratio against a reference measured in the same run."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from harness.cli.bench_throughput import bench_check_cmd, bench_fuzz_cmd
from harness.cli.common import (
    EXIT_DIVERGENCE,
    EXIT_OK,
    LSN,
    _engine_set,
    _progress,
    engine_option,
    err,
    fail_setup,
    out,
    pg_install,
    pg_options,
    tag_layout_option,
    walredo_cmd_option,
)
from oracles.pgbin import SetupError
from pyredo.errors import WalError


@click.group()
def bench() -> None:
    """Benchmarks, reported as ratios against a reference measured in the same run."""


bench.add_command(bench_check_cmd)
bench.add_command(bench_fuzz_cmd)


@bench.command("decode")
@click.option("--waldir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="WAL to decode (default: generate it with the demo workload).")
@click.option("--start", type=LSN)
@click.option("--end", type=LSN)
@click.option("--runs", default=3, show_default=True, help="Best of this many runs.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@pg_options
def bench_decode_cmd(waldir: Path | None, start: int | None, end: int | None, runs: int, as_json: bool,
                     pg_major: str | None = None, pg_bindir: Path | None = None) -> None:
    """Decoder speed: pyredo vs pg_waldump on the same WAL (records/s, MB/s, ratio).

    --pg V: the demo WAL is written by PostgreSQL V and timed against V's pg_waldump
    (with --waldir: the pg_waldump of the major that wrote it)."""
    from harness.bench.decode import bench_decode

    inst = pg_install(pg_major, pg_bindir)

    def run(wd: Path, s: int, e: int) -> dict[str, Any]:
        return bench_decode(wd, s, e, runs, waldump=inst.program("pg_waldump") if inst is not None else None)

    try:
        if waldir is not None:
            from pyredo.wal.reader import WalReader

            recs = WalReader(waldir, start, end)
            lsns = [(r.lsn, r.end_lsn) for r in recs]
            if not lsns:
                fail_setup("no records in that range")
            result = run(waldir, lsns[0][0], lsns[-1][1])
        else:
            from generators.capabilities import fit_steps
            from harness.campaign.demo import DEMO_STEPS
            from harness.clusters.local import ClusterSettings, LocalCluster
            from harness.verify.capture import capture
            from oracles.pgbin import default_install

            steps = fit_steps(DEMO_STEPS, (inst or default_install()).capabilities)  # no bloom where contrib lacks it
            with LocalCluster(ClusterSettings(wal_segsize_mb=1, pg=inst)) as pg, capture(pg, steps) as cap:
                result = run(pg.waldir, cap.start, cap.end)
    except SetupError as e:
        fail_setup(str(e))
    except WalError as e:  # the WAL asked for is not there or not whole: say where
        fail_setup(f"{type(e).__name__}: {e}")
    if as_json:
        out.print_json(json.dumps(result))
        return
    table = Table(title=f"decode {result['start']} .. {result['end']} ({result['wal_bytes'] / 1e6:.1f} MB of WAL)")
    for col in ("decoder", "records", "seconds", "records/s", "MB/s"):
        table.add_column(col, justify="right" if col != "decoder" else "left")
    for key, label in (("pyredo", "pyredo (read+CRC+decode)"), ("pg_waldump_quiet", "pg_waldump --quiet"),
                       ("pg_waldump_print", "pg_waldump > /dev/null")):
        r = result[key]
        table.add_row(label, str(r["records"]), f"{r['seconds']:.3f}", f"{r['records_per_s']:,}", f"{r['mb_per_s']:.1f}")
    out.print(table)
    out.print(f"ratio pyredo / pg_waldump --quiet: {result['ratio_vs_quiet']}   "
              f"pyredo / pg_waldump (printing): {result['ratio_vs_print']}")


@bench.command("walredo")
@click.option("--seconds", default=2.0, show_default=True, help="Measure each request shape at least this long.")
@click.option("--pings", default=2000, show_default=True)
@walredo_cmd_option
@tag_layout_option
@engine_option
@pg_options
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_walredo_cmd(seconds: float, pings: int, walredo_cmd: str | None, tag_layout: str,
                      engines: tuple[str, ...], pg_major: str | None, pg_bindir: Path | None, as_json: bool) -> None:
    """wal-redo server throughput: requests/s and records/s for short (2-record) and
    medium (~200 heap inserts) requests, ping round trip, and the other engines
    (--engine: pyredo by default, neon for Neon's wal-redo process) on the same
    request stream side by side (ratio to the server)."""
    import shlex

    from generators.workload import Settings
    from harness.bench.walredo import run_bench
    from oracles.walredo import WalRedoError, WalRedoProcess

    pg = pg_install(pg_major, pg_bindir)
    es = _engine_set(tuple(e for e in engines if e != "walredo") or ("pyredo",), walredo_cmd, tag_layout, pg=pg)
    try:
        wr = (WalRedoProcess(shlex.split(walredo_cmd), tag_layout=tag_layout, check_layout=True)  # type: ignore[arg-type]
              if walredo_cmd else None)
        others = es.for_settings(Settings())  # pyredo and/or Neon's process, in --engine order
        result = run_bench(walredo=wr, engines=others, min_seconds=seconds, other_min_seconds=seconds,
                           pings=pings, progress=lambda m: err.print(f"[dim]{m}[/]"), pg_install=pg)
        if wr is not None:
            wr.close()
    except (SetupError, WalRedoError) as e:
        fail_setup(str(e))
    finally:
        es.close()
    if as_json:
        out.print_json(json.dumps(result))
        return
    for name in ("", *es.names):
        p = result.get(f"ping_{name}" if name else "ping")
        if p is not None:
            out.print(f"{name or 'wal-redo server'} ping round trip: " + (
                p["error"] if "error" in p else
                f"median {p['median_us']} µs, mean {p['mean_us']} µs, p99 {p['p99_us']} µs"))
    table = Table(title="the same requests through the wal-redo server and the other engines")
    for col in ("shape", "engine", "requests/s", "records/s", "records/request", "engine / walredo",
                "pages differing"):
        table.add_column(col, justify="left" if col in ("shape", "engine") else "right")
    for shape in ("short", "medium"):
        for engine in ("walredo", *es.names):
            r = result[shape][engine]
            if "error" in r:
                table.add_row(shape, engine, r["error"][:60], "", "", "", "")
                continue
            ratio = f"{r['speed_vs_walredo']:.2f}" if "speed_vs_walredo" in r else ""
            differing = r.get("pages_differing_from_walredo")  # of the same requests' pages (none for walredo itself)
            table.add_row(shape, engine, f"{r['requests_per_s']:,.0f}", f"{r['records_per_s']:,.0f}",
                          f"{r['records_per_request']:.0f}", ratio,
                          "" if differing is None else (f"[bold red]{differing}[/]" if differing else "0"))
    out.print(table)


@bench.command("hostile")
@click.option("--cases", default=10_000, show_default=True, help="Cases per mode.")
@click.option("--seed", default=0, show_default=True)
@click.option("--mode", "modes", multiple=True, type=click.Choice(["wal", "redo"]),
              help="wal: the decoder on corrupted WAL; redo: pyredo on mutated records. Default: both.")
@click.option("--category", "categories", multiple=True, metavar="NAME",
              help="Only these wal-mode mutation categories (default: all).")
@click.option("--wal", "wal_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Real-WAL corpus directory: used if it has one, else made there (demo workload, "
                   "1 MB segments, pglz/lz4/zstd). Default: a temporary one.")
@click.option("--timeout", default=5.0, show_default=True, help="Time bound per case, seconds.")
@click.option("--no-tracemalloc", is_flag=True, help="Skip per-case peak memory (faster).")
@click.option("--memory-limit-mb", default=2048, show_default=True,
              help="Soft address-space headroom; a runaway allocation becomes a MemoryError. 0: none.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@pg_options
def bench_hostile_cmd(cases: int, seed: int, modes: tuple[str, ...], categories: tuple[str, ...],
                      wal_dir: Path | None, timeout: float, no_tracemalloc: bool, memory_limit_mb: int,
                      as_json: bool, pg_major: str | None = None, pg_bindir: Path | None = None) -> None:
    """Hostile input: real WAL mutated (bit flips, truncation, spliced pages, bad
    headers and lengths, broken pglz/lz4/zstd images) through the decoder, and real
    records mutated through pyredo. Every case must end in a result or a typed error
    that says where, within the time bound. Exit 1 on any untyped exception or hang.
    --pg V: the WAL is PostgreSQL V's (made by its clusters), decoded and redone with
    V's rmgr table."""
    import shutil as _shutil

    from harness.robustness.hostile import address_space_limit, load_or_make_corpus, run_hostile

    try:
        corpus = load_or_make_corpus(wal_dir, progress=lambda m: err.print(f"[dim]{m}[/]"),
                                     pg=pg_install(pg_major, pg_bindir))
    except (SetupError, ValueError) as e:
        fail_setup(str(e))
    results = {}
    try:
        with address_space_limit(memory_limit_mb), _progress() as prog:
            for mode in modes or ("wal", "redo"):
                task = prog.add_task(f"hostile {mode}", total=cases)

                def advance(i: int, n: int, task: Any = task) -> None:
                    prog.update(task, completed=i)
                rep = run_hostile(corpus, mode=mode, cases=cases, seed=seed, categories=categories or None,
                                  timeout=timeout, trace_memory=not no_tracemalloc, progress=advance)
                results[mode] = rep
    except ValueError as e:
        fail_setup(str(e))
    finally:
        if wal_dir is None:
            _shutil.rmtree(corpus.path, ignore_errors=True)
    bad = sum(r.failures for r in results.values())
    if as_json:
        out.print_json(json.dumps({m: r.to_json() for m, r in results.items()}))
        sys.exit(EXIT_DIVERGENCE if bad else EXIT_OK)
    for mode, rep in results.items():
        d = rep.to_json()
        table = Table(title=f"hostile {mode} (PostgreSQL {corpus.major}): {d['cases']:,} cases in "
                            f"{d['seconds']:.0f}s, seed {seed}, bound {timeout:g}s/case")
        for col in ("category" if mode == "wal" else "rmgr", "cases", "clean", "typed errors",
                    "untyped", "hangs", "worst s", "peak KB"):
            table.add_column(col, justify="left" if col in ("category", "rmgr", "typed errors") else "right")
        for name, c in d["categories"].items():
            typed = ", ".join(f"{k} {v}" for k, v in c["typed_errors"].items())
            untyped = sum(c["untyped_exceptions"].values()) + sum(c["unlocated_errors"].values()) + c["bad_results"]
            table.add_row(name, f"{c['cases']:,}", f"{c['clean_results']:,}", typed,
                          f"[bold red]{untyped}[/]" if untyped else "0",
                          f"[bold red]{c['timeouts']}[/]" if c["timeouts"] else "0",
                          f"{c['worst_seconds']:.3f}", f"{c['peak_case_bytes'] // 1024:,}")
        out.print(table)
        out.print(f"max RSS {d['maxrss_start_kb'] // 1024} -> {d['maxrss_end_kb'] // 1024} MB; "
                  f"worst case {d['worst_seconds']:.3f}s; untyped {d['untyped_exceptions']}, "
                  f"hangs {d['timeouts']}, unlocated {d['unlocated_errors']}")
        for name, c in d["categories"].items():
            for ex in c.get("examples", [])[:3]:
                err.print(f"[bold red]{ex['kind']}[/] {name} {ex['case']}: {ex['error']} — {ex['note']}")
                if ex.get("traceback"):
                    err.print(ex["traceback"].rstrip())
    sys.exit(EXIT_DIVERGENCE if bad else EXIT_OK)


@bench.command("interrupt")
@click.option("--trials", default=10, show_default=True, help="Campaigns per point.")
@click.option("--point", "points", multiple=True,
              type=click.Choice(["workload", "check", "bundle", "check-command"]),
              help="Where the signal comes (default: all four).")
@click.option("--seed", default=1, show_default=True, help="Trial i runs campaign seed SEED+i.")
@click.option("--workers", default=1, show_default=True, help="Worker processes of each campaign.")
@click.option("--sigterm", is_flag=True, help="Send SIGTERM instead of SIGINT.")
@click.option("--no-hog", is_flag=True, help="Without the CPU hog on every core.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@pg_options
def bench_interrupt_cmd(trials: int, points: tuple[str, ...], seed: int, workers: int, sigterm: bool,
                        no_hog: bool, as_json: bool, pg_major: str | None = None, pg_bindir: Path | None = None) -> None:
    """Time from Ctrl-C to exit, under a CPU hog on every core: fuzz campaigns with both
    engines get SIGINT during a workload statement, during the check of a large
    iteration, and while a bundle is written, and `redodiff check` of a large WAL
    range during its redo (check-command); median and max per point, and whether
    anything (a server, a worker, a redodiff-* directory) was left. Exit 1 unless every
    trial exited within 10 s and left nothing."""
    import signal

    from harness.bench.interrupt import run_bench

    def progress(point: str, i: int, r: Any) -> None:
        left = f", [bold red]left {len(r.left_processes)} processes {r.left_dirs}[/]" if r.left else ""
        took = f"{r.exit_seconds:.2f} s" if r.exit_seconds is not None else "[bold red]no exit[/]"
        err.print(f"[dim]{point} #{i + 1}: {took if r.reached else 'not reached'}"
                  f"{'' if r.landed or not r.reached else ' (landed elsewhere)'}{left} {r.note[:200]}[/]")

    result = run_bench(list(points or ("workload", "check", "bundle", "check-command")), trials, hog=not no_hog, seed=seed,
                       workers=workers, signum=signal.SIGTERM if sigterm else signal.SIGINT,
                       pg=pg_install(pg_major, pg_bindir), progress=progress)
    if as_json:
        out.print_json(json.dumps(result))
        sys.exit(EXIT_OK if result["passed"] else EXIT_DIVERGENCE)
    table = Table(title=f"{result['signal']} to exit, {'CPU hog on ' + str(result['cores']) + ' cores' if result['hog'] else 'no hog'}"
                        f", both engines, {workers} worker(s)")
    for col in ("point", "trials", "reached", "landed there", "median s", "max s", "no exit", "left something"):
        table.add_column(col, justify="left" if col == "point" else "right")
    for name, p in result["points"].items():
        table.add_row(name, str(p["trials"]), str(p["reached"]), str(p["landed"]),
                      str(p["median_s"]), str(p["max_s"]), str(p["not_exited"]), str(p["left_behind"]))
    out.print(table)
    for name, p in result["points"].items():
        out.print(f"  {name}: the signal comes when {p['what']}")
    for name, p in result["points"].items():
        for x in p["leftovers"]:
            err.print(f"[bold red]left[/] {name}: {x}")
    out.print(f"goal: max <= {result['goal_max_s']:g} s, nothing left: "
              + ("[green]met[/]" if result["passed"] else "[bold red]not met[/]"))
    sys.exit(EXIT_OK if result["passed"] else EXIT_DIVERGENCE)


@bench.command("hygiene")
@click.option("--iterations", default=1000, show_default=True, help="Fuzz iterations to run.")
@click.option("--every", default=50, show_default=True, help="Sample every K iterations.")
@click.option("--seed", default=0, show_default=True)
@click.option("--profile", type=click.Choice(["tiny", "ci", "nightly"]), default="tiny", show_default=True)
@engine_option
@click.option("--rss-bound-mb", default=64.0, show_default=True, help="Allowed RSS growth after warm-up.")
@click.option("--keep-tmp", is_flag=True, help="Keep the private temporary base (to inspect what is left).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@pg_options
def bench_hygiene_cmd(iterations: int, every: int, seed: int, profile: str, engines: tuple[str, ...],
                      rss_bound_mb: float, keep_tmp: bool, as_json: bool, pg_major: str | None = None,
                      pg_bindir: Path | None = None) -> None:
    """Resource hygiene: run N fuzz iterations (default engines: pyredo and walredo) and
    sample open files, child and server processes, temporary directories, threads and
    RSS every K; report growth after warm-up and what is left once the run closed.
    Exit 1 when a bound is exceeded."""
    from harness.robustness.hygiene import run_hygiene

    try:
        rep = run_hygiene(iterations, every=every, seed=seed, profile=profile,
                          engines=engines or ("pyredo", "walredo"), bounds={"rss_mb": rss_bound_mb},
                          keep_base=keep_tmp, pg=pg_install(pg_major, pg_bindir),
                          progress=lambda s: err.print(f"[dim]{s.iteration}: fds {s.fds} children {s.children} "
                                                       f"servers {s.server_processes} tempdirs {s.tempdirs} "
                                                       f"threads {s.threads} rss {s.rss_mb} MB[/]"))
    except SetupError as e:
        fail_setup(str(e))
    d = rep.to_json()
    if as_json:
        out.print_json(json.dumps(d))
        sys.exit(EXIT_OK if rep.passed else EXIT_DIVERGENCE)
    table = Table(title=f"hygiene: {iterations} iterations in {d['seconds']:.0f}s ({profile}, "
                        f"{'+'.join(rep.engines)}), sampled every {every}")
    for col in ("resource", "first", "after warm-up", "last", "growth", "bound", "after close"):
        table.add_column(col, justify="left" if col == "resource" else "right")
    first, warm, last = rep.samples[0], rep.samples[min(1, len(rep.samples) - 1)], rep.samples[-1]
    for k in ("fds", "children", "server_processes", "tempdirs", "threads", "rss_mb"):
        table.add_row(k, str(getattr(first, k)), str(getattr(warm, k)), str(getattr(last, k)),
                      str(d["growth"].get(k, "")), str(rep.bounds[k]),
                      str(getattr(rep.after, k)) if rep.after else "")
    out.print(table)
    out.print(f"infrastructure errors {d['infrastructure_errors']}, divergences {d['divergences']}, "
              f"kept until exit {d['kept_until_exit']}")
    for v in d["violations"]:
        err.print(f"[bold red]violation[/] {v}")
    sys.exit(EXIT_OK if rep.passed else EXIT_DIVERGENCE)


# -- fuzz ---------------------------------------------------------------------------
