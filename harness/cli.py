"""The ``redodiff`` command line. Thin: each command parses options and calls
the module that does the job. Exit codes: 0 clean, 1 divergence (or bad WAL
for ``decode``), 2 usage or setup error."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.pgbin import SetupError
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


def fail_setup(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}")
    sys.exit(EXIT_SETUP)


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
    from harness.recordfmt import record_json, record_text
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
def _engines(names: tuple[str, ...], walredo_cmd: str | None, tag_layout: str) -> list[Any]:
    from pyredo.engine import RedoEngine

    engines: list[Any] = []
    for name in names or ("pyredo",):
        if name == "pyredo":
            engines.append(RedoEngine())
        elif name == "walredo":
            try:
                from oracles.walredo import WalRedoProcess
            except ImportError as e:
                fail_setup(f"the walredo engine is not available: {e}")
            engines.append(WalRedoProcess.from_options(cmd=walredo_cmd, tag_layout=tag_layout))
        else:
            fail_setup(f"unknown engine {name!r} (choose pyredo or walredo)")
    return engines


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
@click.option("--pgdata", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Data directory of a local cluster (run CHECKPOINT after the range first).")
@click.option("--start", type=LSN, required=True, help="First LSN of the range (e.g. taken right after a CHECKPOINT).")
@click.option("--end", type=LSN, help="End of the range (default: end of WAL).")
@click.option("--engine", "engines", multiple=True, type=click.Choice(["pyredo", "walredo"]),
              help="Engine(s) to redo with; give twice to compare both byte for byte. Default: pyredo.")
@click.option("--base-backup", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A copy of the data directory taken at --start: base pages for blocks without an image.")
@click.option("--walredo-cmd", help="Command line of an external wal-redo server (e.g. Neon's `postgres --wal-redo`).")
@click.option("--tag-layout", type=click.Choice(["neon", "old"]), default="neon", show_default=True,
              help="BufferTag layout the wal-redo server speaks.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report as JSON here.")
def check(pgdata: Path, start: int, end: int | None, engines: tuple[str, ...], base_backup: Path | None,
          walredo_cmd: str | None, tag_layout: str, report_path: Path | None) -> None:
    """Verify a WAL range of a local cluster, page by page.

    Every block referenced in the range whose first record there carries a
    full-page image or WILL_INIT is rebuilt by each engine (with --base-backup,
    every block) and compared with the block in PGDATA under PostgreSQL's
    consistency masks; with two engines they must also agree byte for byte.
    Exit 0 when clean, 1 on a divergence, 2 on a usage or setup error.
    """
    from harness.check import Checker
    from harness.datadir import DataDirPages
    from pyredo.wal.reader import WalReader

    engine_objs = _engines(engines, walredo_cmd, tag_layout)
    try:
        reader = WalReader(pgdata / "pg_wal", start, end)
        records = list(reader)
    except WalError as e:
        fail_setup(f"cannot read the WAL range: {e}")
    real_end = end if end is not None else (records[-1].end_lsn if records else start)
    checker = Checker(engine_objs, DataDirPages(pgdata), DataDirPages(base_backup) if base_backup else None,
                      end_lsn=real_end)
    with _progress() as progress:
        task = progress.add_task("redo", total=None)
        report = checker.check_records(
            records, start=start, end=real_end,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    for engine in engine_objs:
        close = getattr(engine, "close", None)
        if close:
            close()
    if report_path:
        report_path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    print_report_summary(report)
    sys.exit(EXIT_DIVERGENCE if report.divergences else EXIT_OK)


# -- demo ---------------------------------------------------------------------------
@main.command()
@click.option("--keep", is_flag=True, help="Keep the throwaway cluster's directory.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the verification report as JSON here.")
def demo(keep: bool, report_path: Path | None) -> None:
    """Run the built-in mixed workload on a throwaway cluster, decode and verify its WAL."""
    from collections import Counter

    from harness.capture import capture, verify
    from harness.cluster import ClusterSettings, LocalCluster
    from harness.demo import DEMO_STEPS
    from pyredo.engine import RedoEngine
    from pyredo.rmgr import record_type

    try:
        with LocalCluster(ClusterSettings(wal_segsize_mb=1), keep=keep) as pg:
            err.print(f"cluster: {pg.pgdata} on port {pg.port}")
            cap = capture(pg, DEMO_STEPS)
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
    from harness.bench import bench_decode

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
            from harness.capture import capture
            from harness.cluster import ClusterSettings, LocalCluster
            from harness.demo import DEMO_STEPS

            with LocalCluster(ClusterSettings(wal_segsize_mb=1)) as pg:
                cap = capture(pg, list(DEMO_STEPS) * 1)
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


if __name__ == "__main__":
    main()
