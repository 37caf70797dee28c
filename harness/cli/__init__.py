"""The ``redodiff`` command line. Thin: each command parses options and calls
the module that does the job. Exit codes: 0 clean, 1 divergence (or bad WAL
for ``decode``), 2 usage or setup error."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from oracles.pgbin import SetupError
from pyredo.errors import WalError
from pyredo.wal.lsn import format_lsn, parse_lsn

EXIT_OK, EXIT_DIVERGENCE, EXIT_SETUP = 0, 1, 2

err = Console(stderr=True)
out = Console()


class LsnType(click.ParamType):
    name = "LSN"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_lsn(value)
        except ValueError:
            self.fail(f"{value!r} is not an LSN (expected X/X, e.g. 0/16B3748)", param, ctx)


LSN = LsnType()


def fail_setup(message: str) -> NoReturn:
    # soft_wrap: never break a line inside a command or a GRANT the user will copy
    err.print(f"[bold red]error:[/] {message}", soft_wrap=True, markup=True, highlight=False)
    sys.exit(EXIT_SETUP)


def _engine_set(engines: tuple[str, ...], walredo_cmd: str | None, tag_layout: str,
                walredo_docker: str | None = None) -> Any:
    from harness.verify.engines import EngineSet

    names = engines or ("pyredo",)
    if walredo_docker and "walredo" not in names:
        fail_setup("--walredo-docker runs the wal-redo engine in a container: add --engine walredo")
    try:
        return EngineSet(names=names, walredo_cmd=walredo_cmd, tag_layout=tag_layout,
                         walredo_docker=walredo_docker)
    except ValueError as e:
        fail_setup(str(e))


engine_option = click.option(
    "--engine", "engines", multiple=True, type=click.Choice(["pyredo", "walredo"]),
    help="Engine(s): pyredo, walredo, or both (given twice) to compare them byte for byte. Default: pyredo.")
walredo_cmd_option = click.option(
    "--walredo-cmd", help="Command line of an external wal-redo server, e.g. Neon's `postgres --wal-redo`.")
tag_layout_option = click.option(
    "--tag-layout", type=click.Choice(["neon", "old"]), default="neon", show_default=True,
    help="BufferTag layout the wal-redo server speaks.")
mutant_option = click.option(
    "--mutant", metavar="NAME", help="Testing aid: run with this pyredo mutant applied (see `redodiff selftest --list`).")
walredo_docker_option = click.option(
    "--walredo-docker", metavar="IMAGE",
    help="Run the wal-redo server in a container of IMAGE (docker run -i --rm --network none): our "
         "pg_walredo on the image's PostgreSQL 15, or with --walredo-cmd that command, e.g. Neon's "
         "`/usr/local/v15/bin/postgres --wal-redo` in ghcr.io/neondatabase/neon.")


def _cluster_spec(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from harness.clusters.pool import parse_cluster_spec

    if value is not None:
        try:
            parse_cluster_spec(value)
        except ValueError as e:
            raise click.BadParameter(str(e)) from None
    return value


cluster_option = click.option(
    "--cluster", metavar="SPEC", callback=_cluster_spec,
    help="Where workload clusters run: local (initdb + pg_ctl here) or docker:IMAGE (the server in a "
         "container, PGDATA bind-mounted). Default: $REDODIFF_CLUSTER, else local.")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="redodiff")
def main() -> None:
    """redodiff — differential testing of PostgreSQL WAL redo.

    Workloads run on a real PostgreSQL; every page their WAL touches is rebuilt
    by pyredo (a redo engine in Python) and by a `postgres --wal-redo` server
    (PostgreSQL's own C redo), compared byte for byte, and witnessed by the
    primary's page under PostgreSQL's consistency masks.

    \b
    Start here:
      redodiff demo                      run a built-in workload, decode and verify its WAL
      redodiff decode PGDATA/pg_wal      dump WAL like pg_waldump (text or JSON lines)
      redodiff check --pgdata DIR --start LSN
                                         verify a local cluster's WAL range
      redodiff fuzz --budget 60          a short fuzz campaign on throwaway clusters
      redodiff replay BUNDLE             does a saved divergence still diverge?
      redodiff minimize BUNDLE           shrink it to the fewest workload steps
      redodiff coverage REPORT.json      which record types have been verified
    """


# -- decode -------------------------------------------------------------------------
@main.command()
@click.argument("waldir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--start", type=LSN, help="First LSN to read (default: start of the oldest segment).")
@click.option("--end", type=LSN, help="Stop before the record at this LSN (default: end of WAL).")
@click.option("--format", "fmt", type=click.Choice(["text", "jsonl"]), default="text", show_default=True,
              help="text: one pg_waldump-style line per record; jsonl: one JSON object per record.")
@click.option("--details", "-b", is_flag=True, help="text format: block references one per line with image details.")
@click.option("--timeline", type=int, help="Timeline to read (default: the newest holding --start).")
@click.option("--limit", "-n", type=int, help="Stop after this many records.")
def decode(waldir: Path, start: int | None, end: int | None, fmt: str, details: bool,
           timeline: int | None, limit: int | None) -> None:
    """Decode the WAL in WALDIR (a pg_wal directory or a copy of segment files).

    \b
    JSON keys: lsn, end_lsn, prev, rmgr, info (full xl_info byte), xid, total_len,
    rec_len, main_data_len, blocks [{id, spc, db, rel, fork, blk, has_image,
    apply_image, will_init, data_len, image?}], desc. LSNs print as X/X.

    Exit 1 on corrupt WAL, after printing every record read before it; the
    error names the LSN, segment file and offset.
    """
    from harness.reports.recordfmt import record_json, record_text
    from pyredo.wal.reader import WalDirectory, WalReader

    try:
        wd = WalDirectory.open(waldir, start=start, tli=timeline)
        reader = WalReader(wd, start, end)
        n = 0
        write = sys.stdout.write
        for rec in reader:
            if fmt == "jsonl":
                write(json.dumps(record_json(rec), separators=(",", ":")) + "\n")
            else:
                write(record_text(rec, details) + "\n")
            n += 1
            if limit is not None and n >= limit:
                break
    except WalError as e:
        sys.stdout.flush()
        err.print(f"[bold red]WAL error:[/] {e}")
        sys.exit(EXIT_DIVERGENCE)
    except BrokenPipeError:  # `| head`
        sys.exit(EXIT_OK)
    if reader.end_reason and limit is None:
        err.print(f"[dim]{n} records; stopped: {reader.end_reason}[/]")


# -- check --------------------------------------------------------------------------
def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=True)


def print_report_summary(report: Any, title: str = "redodiff check") -> None:
    data = report.to_json()
    table = Table(title=title, show_header=False)
    table.add_row("engines", ", ".join(data["engines"]))
    table.add_row("records", str(data["records"]))
    table.add_row("pages checked", str(data["pages_checked"]))
    table.add_row("pages skipped (no base page)", str(data["pages_skipped_no_base"]))
    for reason, n in data["pages_skipped"].items():
        table.add_row(f"pages skipped ({reason})", str(n))
    table.add_row("divergences", f"[bold red]{len(data['divergences'])}[/]" if data["divergences"] else "0")
    table.add_row("unsupported records", ", ".join(f"{k}: {v}" for k, v in data["unsupported"].items()) or "0")
    err.print(table)
    if data["record_types"]:
        types = Table(title="record types verified", show_header=True)
        types.add_column("type")
        types.add_column("count", justify="right")
        for k, v in data["record_types"].items():
            types.add_row(k, str(v))
        err.print(types)
    for d in data["divergences"][:20]:
        err.print(f"[bold red]{d['kind']}[/] {d['tag']} engines={d['engines']} "
                  f"record={d['record_type']} first diverging LSN={d['first_diverging_lsn']}")
        for line in d["diff"][:10]:
            err.print(f"    {line}")


@main.command()
@click.option("--pgdata", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Data directory of a local cluster (run CHECKPOINT after the range first).")
@click.option("--dsn", help="An existing cluster to verify over SQL and replication (see `redodiff slot`).")
@click.option("--slot", help="With --dsn: stream the WAL through this physical slot with pg_receivewal.")
@click.option("--start", type=LSN, help="First LSN of the range (with --slot: default the slot's restart LSN).")
@click.option("--end", type=LSN, help="End of the range (default: end of WAL / the current insert LSN).")
@engine_option
@click.option("--base-backup", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A copy of the data directory taken at --start: base pages for blocks without an image.")
@walredo_cmd_option
@walredo_docker_option
@tag_layout_option
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report as JSON here.")
def check(pgdata: Path | None, dsn: str | None, slot: str | None, start: int | None, end: int | None,
          engines: tuple[str, ...], base_backup: Path | None, walredo_cmd: str | None, tag_layout: str,
          report_path: Path | None, walredo_docker: str | None = None) -> None:
    """Verify a WAL range of a cluster, page by page.

    Every block referenced in the range whose first record there carries a
    full-page image or WILL_INIT is rebuilt by each engine (with --base-backup,
    every block) and compared with the cluster's block under PostgreSQL's
    consistency masks; with two engines they must also agree byte for byte.

    \b
    A local cluster:   redodiff check --pgdata DIR --start 0/1A2B3C8
    An existing one:   redodiff slot create --dsn "host=db user=checker" --name rd   (before the workload)
                       redodiff check --dsn "host=db user=checker" --slot rd
    The role needs REPLICATION (for --slot) or EXECUTE on pg_read_binary_file (to read
    pg_wal/), EXECUTE on pg_read_binary_file (pages) and pg_checkpoint; a missing right
    is named with the GRANT that fixes it.

    Exit 0 when clean, 1 on a divergence, 2 on a usage or setup error.
    """
    from generators.workload import Settings
    from harness.clusters.datadir import DataDirPages, hint_bits_logged
    from harness.verify.check import Checker
    from pyredo.wal.reader import WalReader

    if (pgdata is None) == (dsn is None):
        raise click.UsageError("give exactly one of --pgdata DIR or --dsn DSN")
    workdir = None
    remote = None
    try:
        if dsn is not None:
            from harness.clusters.existing import ExistingCluster, fetch_range, scratch_dir

            remote = ExistingCluster(dsn)
            workdir = scratch_dir()
            waldir, start, end = fetch_range(remote, start=start, end=end, slot=slot, workdir=workdir)
            primary = remote.read_block
            hints = bool(remote.scalar("SELECT current_setting('wal_log_hints')::bool OR "
                                       "current_setting('data_checksums')::bool"))
        else:
            assert pgdata is not None
            if start is None:
                raise click.UsageError("--start is required with --pgdata")
            waldir, primary, hints = pgdata / "pg_wal", DataDirPages(pgdata), hint_bits_logged(pgdata)
        es = _engine_set(engines, walredo_cmd, tag_layout, walredo_docker)
        engine_objs = es.for_settings(Settings(wal_log_hints=hints))
        try:
            records = list(WalReader(waldir, start, end))
        except WalError as e:
            fail_setup(f"cannot read the WAL range: {e}")
        real_end = end if end is not None else (records[-1].end_lsn if records else start)
        checker = Checker(engine_objs, primary, DataDirPages(base_backup) if base_backup else None,
                          end_lsn=real_end, base_is_snapshot=base_backup is not None)
        with _progress() as progress:
            task = progress.add_task("redo", total=None)
            report = checker.check_records(
                records, start=start, end=real_end,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        es.close()
    except SetupError as e:
        fail_setup(str(e))
    finally:
        if remote is not None:
            remote.close()
        if workdir is not None:
            from harness.clusters.existing import remove

            remove(workdir)
    if report_path:
        report_path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    print_report_summary(report)
    sys.exit(EXIT_DIVERGENCE if report.divergences else EXIT_OK)


@main.group()
def slot() -> None:
    """Physical replication slots that keep an existing cluster's WAL for `check --dsn`."""


@slot.command("create")
@click.option("--dsn", required=True)
@click.option("--name", default="redodiff", show_default=True)
def slot_create(dsn: str, name: str) -> None:
    """Create a slot now, before the workload; prints the LSN the range starts at."""
    from harness.clusters.existing import ExistingCluster, PrivilegeError

    try:
        with ExistingCluster(dsn) as c:
            if not (c.privileges.replication or c.privileges.superuser):
                raise PrivilegeError(f"role {c.privileges.role} cannot create replication slots: "
                                     f"ALTER ROLE {c.privileges.role} REPLICATION")
            lsn = c.create_slot(name)
    except SetupError as e:
        fail_setup(str(e))
    except Exception as e:
        fail_setup(f"cannot create slot {name!r}: {e}")
    out.print(format_lsn(lsn))


@slot.command("drop")
@click.option("--dsn", required=True)
@click.option("--name", default="redodiff", show_default=True)
def slot_drop(dsn: str, name: str) -> None:
    """Drop the slot (its WAL may then be recycled)."""
    from harness.clusters.existing import ExistingCluster

    try:
        with ExistingCluster(dsn) as c:
            c.drop_slot(name)
    except Exception as e:
        fail_setup(f"cannot drop slot {name!r}: {e}")


# -- demo ---------------------------------------------------------------------------
@main.command()
@click.option("--keep", is_flag=True, help="Keep the throwaway cluster's directory.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the verification report as JSON here.")
def demo(keep: bool, report_path: Path | None) -> None:
    """Run the built-in mixed workload on a throwaway cluster, decode and verify its WAL."""
    from collections import Counter

    from harness.campaign.demo import DEMO_STEPS
    from harness.clusters.local import ClusterSettings, LocalCluster
    from harness.verify.capture import capture, verify
    from pyredo.engine import RedoEngine
    from pyredo.rmgr import record_type

    try:
        with LocalCluster(ClusterSettings(wal_segsize_mb=1), keep=keep) as pg:
            err.print(f"cluster: {pg.pgdata} on port {pg.port}")
            with capture(pg, DEMO_STEPS) as cap:
                for e in cap.errors:
                    err.print(f"[yellow]step failed:[/] {e}")
                counts = Counter(record_type(r) for r in cap.records())
                table = Table(title=f"WAL {format_lsn(cap.start)} .. {format_lsn(cap.end)}")
                table.add_column("record type")
                table.add_column("count", justify="right")
                for k, v in sorted(counts.items()):
                    table.add_row(k, str(v))
                out.print(table)
                report = verify(cap, [RedoEngine()])
            if report_path:
                report_path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
            print_report_summary(report, "pyredo vs the primary")
    except SetupError as e:
        fail_setup(str(e))
    sys.exit(EXIT_DIVERGENCE if report.divergences else EXIT_OK)


# -- bench --------------------------------------------------------------------------
@main.group()
def bench() -> None:
    """Benchmarks, reported as ratios against a reference measured in the same run."""


@bench.command("decode")
@click.option("--waldir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="WAL to decode (default: generate it with the demo workload).")
@click.option("--start", type=LSN)
@click.option("--end", type=LSN)
@click.option("--runs", default=3, show_default=True, help="Best of this many runs.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_decode_cmd(waldir: Path | None, start: int | None, end: int | None, runs: int, as_json: bool) -> None:
    """Decoder speed: pyredo vs pg_waldump on the same WAL (records/s, MB/s, ratio)."""
    from harness.bench.decode import bench_decode

    def run(wd: Path, s: int, e: int) -> dict[str, Any]:
        return bench_decode(wd, s, e, runs)

    try:
        if waldir is not None:
            from pyredo.wal.reader import WalReader

            recs = WalReader(waldir, start, end)
            lsns = [(r.lsn, r.end_lsn) for r in recs]
            if not lsns:
                fail_setup("no records in that range")
            result = run(waldir, lsns[0][0], lsns[-1][1])
        else:
            from harness.campaign.demo import DEMO_STEPS
            from harness.clusters.local import ClusterSettings, LocalCluster
            from harness.verify.capture import capture

            with LocalCluster(ClusterSettings(wal_segsize_mb=1)) as pg, capture(pg, list(DEMO_STEPS)) as cap:
                result = run(pg.waldir, cap.start, cap.end)
    except SetupError as e:
        fail_setup(str(e))
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
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_walredo_cmd(seconds: float, pings: int, walredo_cmd: str | None, tag_layout: str, as_json: bool) -> None:
    """wal-redo server throughput: requests/s and records/s for short (2-record) and
    medium (~200 heap inserts) requests, ping round trip, and pyredo on the same
    request stream side by side (ratio)."""
    import shlex

    from harness.bench.walredo import run_bench
    from oracles.walredo import WalRedoProcess
    from pyredo.engine import RedoEngine

    try:
        wr = WalRedoProcess(shlex.split(walredo_cmd), tag_layout=tag_layout) if walredo_cmd else None  # type: ignore[arg-type]
        result = run_bench(walredo=wr, engines=[RedoEngine()], min_seconds=seconds, other_min_seconds=seconds,
                           pings=pings, progress=lambda m: err.print(f"[dim]{m}[/]"))
        if wr is not None:
            wr.close()
    except SetupError as e:
        fail_setup(str(e))
    if as_json:
        out.print_json(json.dumps(result))
        return
    p = result["ping"]
    out.print(f"ping round trip: median {p['median_us']} µs, mean {p['mean_us']} µs, p99 {p['p99_us']} µs")
    table = Table(title="requests through the wal-redo server and through pyredo")
    for col in ("shape", "engine", "requests/s", "records/s", "records/request", "pyredo / walredo"):
        table.add_column(col, justify="left" if col in ("shape", "engine") else "right")
    for shape in ("short", "medium"):
        for engine in ("walredo", "pyredo"):
            r = result[shape][engine]
            ratio = f"{r['speed_vs_walredo']:.2f}" if "speed_vs_walredo" in r else ""
            table.add_row(shape, engine, f"{r['requests_per_s']:,.0f}", f"{r['records_per_s']:,.0f}",
                          f"{r['records_per_request']:.0f}", ratio)
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
def bench_hostile_cmd(cases: int, seed: int, modes: tuple[str, ...], categories: tuple[str, ...],
                      wal_dir: Path | None, timeout: float, no_tracemalloc: bool, memory_limit_mb: int,
                      as_json: bool) -> None:
    """Hostile input: real WAL mutated (bit flips, truncation, spliced pages, bad
    headers and lengths, broken pglz/lz4/zstd images) through the decoder, and real
    records mutated through pyredo. Every case must end in a result or a typed error
    that says where, within the time bound. Exit 1 on any untyped exception or hang."""
    import shutil as _shutil

    from harness.robustness.hostile import address_space_limit, load_or_make_corpus, run_hostile

    try:
        corpus = load_or_make_corpus(wal_dir, progress=lambda m: err.print(f"[dim]{m}[/]"))
    except SetupError as e:
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
        table = Table(title=f"hostile {mode}: {d['cases']:,} cases in {d['seconds']:.0f}s, seed {seed}, "
                            f"bound {timeout:g}s/case")
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


@bench.command("hygiene")
@click.option("--iterations", default=1000, show_default=True, help="Fuzz iterations to run.")
@click.option("--every", default=50, show_default=True, help="Sample every K iterations.")
@click.option("--seed", default=0, show_default=True)
@click.option("--profile", type=click.Choice(["tiny", "ci", "nightly"]), default="tiny", show_default=True)
@engine_option
@click.option("--rss-bound-mb", default=64.0, show_default=True, help="Allowed RSS growth after warm-up.")
@click.option("--keep-tmp", is_flag=True, help="Keep the private temporary base (to inspect what is left).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_hygiene_cmd(iterations: int, every: int, seed: int, profile: str, engines: tuple[str, ...],
                      rss_bound_mb: float, keep_tmp: bool, as_json: bool) -> None:
    """Resource hygiene: run N fuzz iterations (default engines: pyredo and walredo) and
    sample open files, child and server processes, temporary directories, threads and
    RSS every K; report growth after warm-up and what is left once the run closed.
    Exit 1 when a bound is exceeded."""
    from harness.robustness.hygiene import run_hygiene

    try:
        rep = run_hygiene(iterations, every=every, seed=seed, profile=profile,
                          engines=engines or ("pyredo", "walredo"), bounds={"rss_mb": rss_bound_mb},
                          keep_base=keep_tmp,
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
def _parse_shard(value: str | None) -> tuple[int, int]:
    if not value:
        return (1, 1)
    try:
        k, n = (int(x) for x in value.split("/"))
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected K/N, e.g. 2/8") from None
    if not 1 <= k <= n:
        raise click.BadParameter(f"{value!r}: K must be between 1 and N")
    return k, n


@main.command()
@click.option("--budget", type=float, metavar="SECONDS", help="Stop starting iterations after this long.")
@click.option("--iterations", type=int, metavar="N", help="Run this many iterations (of this shard).")
@click.option("--seed", type=int, default=0, show_default=True, help="Campaign seed: iteration i runs workload seed (SEED<<20)|i.")
@click.option("--workers", type=int, default=1, show_default=True, help="Worker processes, each with its own clusters.")
@click.option("--shard", metavar="K/N", help="Run only iterations i with i % N == K-1 (CI matrices).")
@engine_option
@walredo_cmd_option
@walredo_docker_option
@tag_layout_option
@cluster_option
@click.option("--profile", type=click.Choice(["ci", "nightly"]), default="ci", show_default=True,
              help="Workload size: ci (short) or nightly (longer, more steps).")
@click.option("--corpus", type=click.Path(file_okay=False, path_type=Path),
              help="Keep bundles (corpus/bundles), diverging seeds (corpus/seeds) and running coverage here.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the JSON report here.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False, path_type=Path), help="Write a JUnit XML report here.")
@mutant_option
def fuzz(budget: float | None, iterations: int | None, seed: int, workers: int, shard: str | None,
         engines: tuple[str, ...], walredo_cmd: str | None, tag_layout: str, profile: str, corpus: Path | None,
         report_path: Path | None, junit_path: Path | None, mutant: str | None,
         walredo_docker: str | None = None, cluster: str | None = None) -> None:
    """Fuzz: generate workloads, run them on throwaway clusters, redo every page with
    every engine, compare, and bundle each divergence.

    \b
    Examples:
      redodiff fuzz --budget 60 --seed 1
      redodiff fuzz --budget 600 --profile nightly --engine pyredo --engine walredo --corpus corpus/
      redodiff fuzz --iterations 50 --shard 3/8 --report shard3.json --junit shard3.xml
      redodiff fuzz --budget 60 --cluster docker:postgres:15.19-bookworm --engine pyredo --engine walredo

    Exit 0 when clean, 1 when a divergence was found, 2 on a usage or setup error.
    """
    import os

    from harness.campaign.fuzz import FuzzConfig, run_campaign, write_outputs
    from harness.selftest.mutants import ENV, applied

    if budget is None and iterations is None:
        raise click.UsageError("give --budget SECONDS or --iterations N")
    try:
        cfg = FuzzConfig(seed=seed, budget=budget, iterations=iterations, workers=workers,
                         shard=_parse_shard(shard),
                         engines=_engine_set(engines, walredo_cmd, tag_layout, walredo_docker),
                         profile=profile, corpus=corpus, cluster=cluster)
    except ValueError as e:
        fail_setup(str(e))
    if mutant:
        os.environ[ENV] = mutant  # workers apply it too
    from rich.live import Live

    def render(rep: Any) -> Table:
        t = Table(title=f"redodiff fuzz seed={seed} shard={cfg.shard[0]}/{cfg.shard[1]} engines={','.join(cfg.engines.names)}",
                  show_header=False)
        t.add_row("iterations", str(rep.iterations))
        t.add_row("records", f"{rep.records:,}")
        t.add_row("pages verified", f"{rep.pages_checked:,}")
        t.add_row("record types seen", str(len(rep.record_types)))
        t.add_row("divergences", f"[bold red]{len(rep.divergences)}[/]" if rep.divergences else "0")
        t.add_row("infrastructure errors", str(len(rep.infrastructure_errors)))
        t.add_row("step errors (recorded)", str(rep.step_errors))
        return t

    try:
        with applied(mutant), Live(console=err, refresh_per_second=4, transient=False) as live:
            rep = run_campaign(cfg, progress=lambda r: live.update(render(r)))
            live.update(render(rep))
    except KeyError as e:
        fail_setup(str(e))
    except SetupError as e:
        fail_setup(str(e))
    write_outputs(rep, report_path, junit_path, corpus)
    if rep.interrupted:
        err.print("[yellow]interrupted[/]: report and bundles written so far are kept")
    cov = rep.coverage()
    err.print(f"{rep.iterations} iterations in {rep.seconds:.0f}s: {rep.pages_checked:,} pages verified, "
              f"{len(rep.record_types)} record types, coverage {cov['covered']}/{cov['total']} page-modifying types")
    for d in rep.divergences[:20]:
        err.print(f"[bold red]{d['kind']}[/] {d['tag']} {d['record_type']} seed={d['seed']} bundle={d['bundle']}")
    for ie in rep.infrastructure_errors[:10]:
        err.print(f"[yellow]infrastructure[/] iteration {ie['iteration']}: {ie['error']}")
    sys.exit(EXIT_DIVERGENCE if rep.divergences else EXIT_OK)


# -- replay -------------------------------------------------------------------------
@main.command()
@click.argument("bundle", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--seed", type=int, help="Instead of a bundle: rerun the workload of this (iteration) seed.")
@click.option("--profile", type=click.Choice(["ci", "nightly"]), default="ci", show_default=True)
@click.option("--workload", "rerun", is_flag=True, help="Rerun the bundle's workload end to end on a fresh cluster.")
@engine_option
@walredo_cmd_option
@walredo_docker_option
@tag_layout_option
@cluster_option
@mutant_option
def replay(bundle: Path | None, seed: int | None, profile: str, rerun: bool, engines: tuple[str, ...],
           walredo_cmd: str | None, tag_layout: str, mutant: str | None,
           walredo_docker: str | None = None, cluster: str | None = None) -> None:
    """Reproduce a divergence and say whether it still diverges.

    With a BUNDLE: rebuild its page from the saved records and base page with the
    bundle's engines (or --engine), compare byte for byte and with the saved primary
    page under masks. With --workload or --seed: rerun the workload on a fresh cluster.
    Exit 1 if it (still) diverges, 0 if not.
    """
    from generators import generate
    from harness.campaign.bundle import BundleError, read_bundle
    from harness.campaign.replay import replay_bundle, rerun_workload
    from harness.selftest.mutants import applied

    if bundle is None and seed is None:
        raise click.UsageError("give a BUNDLE directory or --seed N")
    try:
        with applied(mutant):
            if bundle is not None and not rerun:
                b = read_bundle(bundle)
                es = (_engine_set(engines, walredo_cmd, tag_layout, walredo_docker)
                      if engines or walredo_docker else None)
                result = replay_bundle(b, es)
                out.print(result.summary())
                for d in result.divergences[:1]:
                    for line in d.diff[:30]:
                        out.print(f"    {line}")
                sys.exit(EXIT_DIVERGENCE if result.diverges else EXIT_OK)
            wl = read_bundle(bundle).workload if bundle is not None else generate(seed or 0, profile)
            if wl is None:
                fail_setup(f"{bundle} has no workload.json")
            if cluster is not None:
                import os

                from harness.clusters.pool import CLUSTER_ENV

                os.environ[CLUSTER_ENV] = cluster  # the pool rerun_workload makes reads it
            res = rerun_workload(wl, _engine_set(engines, walredo_cmd, tag_layout, walredo_docker))
    except (BundleError, KeyError) as e:
        fail_setup(str(e))
    except SetupError as e:
        fail_setup(str(e))
    r = res.report
    if res.infrastructure_error:
        fail_setup(f"infrastructure error: {res.infrastructure_error}")
    assert r is not None
    out.print(f"workload seed {wl.seed} [{wl.settings.label()}]: {r.pages_checked} pages verified, "
              f"{len(r.divergences)} divergence(s)")
    for d in r.divergences[:10]:
        out.print(f"  {d.kind} {d.tag} {d.record_type}")
        for line in d.diff[:10]:
            out.print(f"      {line}")
    sys.exit(EXIT_DIVERGENCE if r.divergences else EXIT_OK)


# -- minimize -----------------------------------------------------------------------
@main.command()
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where to write the minimized bundle (default: next to BUNDLE).")
@click.option("--max-trials", default=120, show_default=True, help="Workload runs to spend at most.")
@engine_option
@walredo_cmd_option
@tag_layout_option
@mutant_option
def minimize(bundle: Path, out_dir: Path | None, max_trials: int, engines: tuple[str, ...], walredo_cmd: str | None,
             tag_layout: str, mutant: str | None) -> None:
    """Shrink a divergence to the fewest workload steps that still diverge the same way
    (same kind, record type and page owner), and write a new bundle."""
    from harness.campaign.bundle import BundleError, read_bundle
    from harness.campaign.minimize import minimize_bundle
    from harness.selftest.mutants import applied

    try:
        b = read_bundle(bundle)
        names = engines or tuple(n for n in b.meta.get("engines", ["pyredo"]) if n in ("pyredo", "walredo"))
        es = _engine_set(names, walredo_cmd, tag_layout)
        with applied(mutant):
            res = minimize_bundle(b, es, out_dir=out_dir or bundle.parent, max_trials=max_trials,
                                  log=lambda s: err.print(f"[dim]{s}[/]"))
    except (BundleError, KeyError, ValueError) as e:
        fail_setup(str(e))
    except SetupError as e:
        fail_setup(str(e))
    if res.divergence is None:
        out.print("the bundle's workload no longer diverges; nothing to minimize")
        sys.exit(EXIT_OK)
    out.print(f"minimized {res.original_steps} -> {res.steps} steps in {res.trials} trials: {res.bundle}")
    for s in res.workload.steps:
        out.print(f"  [session {s.session}] {s.sql[:160]}")
    sys.exit(EXIT_DIVERGENCE)


# -- coverage -----------------------------------------------------------------------
@main.command()
@click.argument("reports", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--corpus", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Include the corpus's running coverage (corpus/coverage.json).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the table as JSON.")
def coverage(reports: tuple[Path, ...], corpus: Path | None, report_path: Path | None) -> None:
    """Every page-modifying record type of PostgreSQL 15, how many times it was verified
    (summed over fuzz/check REPORTS and the corpus), and the share covered."""
    from harness.reports.coverage import coverage_table, load_counts

    table_data = coverage_table(load_counts(list(reports), corpus))
    if report_path:
        report_path.write_text(json.dumps(table_data, indent=2) + "\n")
    t = Table(title=f"coverage: {table_data['covered']}/{table_data['total']} page-modifying types verified "
                    f"({table_data['share']:.0%}); of pyredo's {table_data['implemented']}: "
                    f"{table_data['implemented_share']:.0%}")
    t.add_column("record type")
    t.add_column("verified", justify="right")
    t.add_column("pyredo")
    for row in table_data["types"]:
        t.add_row(row["type"], str(row["verified"]) if row["verified"] else "[red]0[/]",
                  "yes" if row["pyredo_implements"] else "[yellow]no[/]")
    out.print(t)


# -- gate ---------------------------------------------------------------------------
@main.command()
@click.option("--corpus", type=click.Path(file_okay=False, path_type=Path), default=Path("corpus"), show_default=True,
              help="Saved cases: bundles/* and seeds/*.json.")
@click.option("--budget", type=float, default=60, show_default=True, metavar="SECONDS",
              help="Fuzz this long after the saved cases pass (0: saved cases only).")
@click.option("--seed", type=int, default=0, show_default=True)
@engine_option
@walredo_cmd_option
@tag_layout_option
@mutant_option
def gate(corpus: Path, budget: float, seed: int, engines: tuple[str, ...], walredo_cmd: str | None, tag_layout: str,
         mutant: str | None) -> None:
    """Regression gate for a redo change: every saved bundle and seed in the corpus
    must now agree, then a fuzz campaign must find nothing. Exit 1 naming each failure."""
    from harness.campaign.gate import run_gate
    from harness.selftest.mutants import applied

    try:
        with applied(mutant):
            res = run_gate(corpus, _engine_set(engines, walredo_cmd, tag_layout), budget=budget, seed=seed,
                           progress=lambda s: err.print(s))
    except (KeyError, SetupError) as e:
        fail_setup(str(e))
    if res.passed:
        out.print(f"[green]gate passed[/]: {len(res.cases)} saved cases agree"
                  + (f", {res.fuzz.iterations} fuzz iterations clean" if res.fuzz else ""))
        sys.exit(EXIT_OK)
    out.print(f"[bold red]gate failed[/]: {len(res.failures)} failure(s)")
    for f in res.failures:
        out.print(f"  {f}")
    sys.exit(EXIT_DIVERGENCE)


# -- selftest -----------------------------------------------------------------------
def _selftest_catalog_text() -> str:
    """The catalog as a listing: one heading line per mutant, its description indented
    below (a table leaves the description no room on 80 columns)."""
    import textwrap

    from harness.selftest.mutants import CATALOG

    lines = [f"mutant catalog: {len(CATALOG)} mutants  "
             "(masked: only engine-vs-engine can see it; historical: modelled on a real PostgreSQL bug)", ""]
    for m in CATALOG.values():
        tags = [m.category] + (["masked"] if m.masked else []) + (["historical"] if m.history else [])
        lines.append(f"{m.name}  [{m.record_type}; {', '.join(tags)}]")
        lines.extend(textwrap.wrap(m.description, 76, initial_indent="    ", subsequent_indent="    "))
        if m.history:
            lines.extend(textwrap.wrap(f"history: {m.history}", 76, initial_indent="    ",
                                       subsequent_indent="    "))
    return "\n".join(lines)


def _selftest_results_table(rep: Any) -> Table:
    t = Table(title=f"redodiff selftest: mutation score {rep.caught}/{rep.total} = {rep.score:.0%} "
                    f"(engines {'+'.join(rep.engines)}, {rep.budget:g} s per mutant)")
    t.add_column("mutant", no_wrap=True)
    t.add_column("rmgr")
    t.add_column("caught", justify="center")
    t.add_column("seconds", justify="right")
    t.add_column("iterations", justify="right")
    t.add_column("steps", justify="right")
    t.add_column("minimized steps", justify="right")
    for r in rep.results:
        t.add_row(r.name, r.rmgr, "[green]yes[/]" if r.caught else "[bold red]no[/]",
                  f"{r.seconds:.1f}" if r.seconds is not None else "-",
                  str(r.iterations) if r.iterations is not None else f"({r.iterations_run} run)",
                  str(r.original_steps) if r.original_steps is not None else "-",
                  str(r.minimized_steps) if r.minimized_steps is not None else "-")
    return t


@main.command()
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
@click.option("--minimize-trials", type=int, default=12, show_default=True, metavar="N",
              help="Minimize each catching workload with at most N runs (0: report un-minimized sizes).")
@click.option("--no-control", is_flag=True, help="Skip the control campaign (no mutant) that counts false alarms.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep bundles and minimized bundles here (default: a temporary directory, removed).")
@click.option("--min-score", type=float, default=0.9, show_default=True,
              help="Exit 1 when the mutation score is below this.")
def selftest(budget: float, only: tuple[str, ...], report_path: Path | None, list_only: bool,
             engines: tuple[str, ...], walredo_cmd: str | None, tag_layout: str, seed: int, profile: str,
             minimize_trials: int, no_control: bool, workdir: Path | None, min_score: float) -> None:
    """Prove the harness finds redo bugs: apply each pyredo mutant (a named, documented
    bug in one redo routine), fuzz until the harness catches it or the budget runs out,
    and report the mutation score (caught / total) with time, iterations and case size.

    \b
    Examples:
      redodiff selftest --list
      redodiff selftest --budget-per-mutant 60 --report selftest.json
      redodiff selftest --only heap_insert_no_page_lsn --only btree_newroot_no_root_flag

    Both engines are used when the wal-redo server is available (masked and LSN-only
    mutants can only be seen by comparing engines), else pyredo and the primary alone.
    Exit 0 when the score reaches --min-score and the control campaign found nothing,
    1 otherwise, 2 on a usage or setup error.
    """
    from harness.selftest.mutants import get
    from harness.selftest.runner import SelftestConfig, run_selftest, walredo_available

    if list_only:
        click.echo(_selftest_catalog_text())
        return
    try:
        names = [get(n).name for n in only] or None
    except KeyError as e:
        fail_setup(str(e))
    note = None
    if engines:
        es = _engine_set(engines, walredo_cmd, tag_layout)
    else:
        es = _engine_set(("pyredo", "walredo"), walredo_cmd, tag_layout)
        ok, why = walredo_available(es)
        if not ok:
            note = f"wal-redo server unavailable ({why}): pyredo and the primary witness only"
            err.print(f"[yellow]{note}[/]", soft_wrap=True)
            es = _engine_set(("pyredo",), None, tag_layout)
    cfg = SelftestConfig(budget=budget, names=names, engines=es, seed=seed, profile=profile,
                         minimize_trials=minimize_trials, control=not no_control, workdir=workdir,
                         min_score=min_score)

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
            err.print(f"[bold][{i + 1}/{n}][/] {m.name} ({m.record_type})")
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
        rep = run_selftest(cfg, progress=progress, report_path=report_path)
    except SetupError as e:
        fail_setup(str(e))
    rep.walredo_note = note
    if report_path:
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


# -- merge --------------------------------------------------------------------------
@main.command()
@click.argument("reports", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--report", "report_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Write the merged JSON report here.")
def merge(reports: tuple[Path, ...], report_path: Path) -> None:
    """Merge fuzz reports of several shards into one (counts summed, lists joined,
    coverage recomputed). Exit 1 if any shard found a divergence."""
    from harness.reports.merge import merge_reports

    merged = merge_reports(list(reports))
    report_path.write_text(json.dumps(merged, indent=2) + "\n")
    out.print(f"{len(reports)} reports: {merged['iterations']} iterations, {merged['pages_checked']:,} pages, "
              f"{len(merged['divergences'])} divergences, coverage {merged['coverage']['covered']}/"
              f"{merged['coverage']['total']}")
    sys.exit(EXIT_DIVERGENCE if merged["divergences"] else EXIT_OK)


# -- report -------------------------------------------------------------------------
@main.command()
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


if __name__ == "__main__":
    main()
