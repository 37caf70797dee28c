"""``decode``, ``check``, ``slot``, ``demo``: read and verify WAL of a cluster."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.table import Table

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
    print_report_summary,
    tag_layout_option,
    walredo_cmd_option,
    walredo_docker_option,
)
from oracles.pgbin import SetupError
from pyredo.errors import WalError
from pyredo.wal.lsn import format_lsn


@click.command()
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


@click.command()
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
    result = report.result()
    if report_path:
        report_path.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    print_report_summary(result)
    sys.exit(EXIT_DIVERGENCE if result.divergences else EXIT_OK)


@click.group()
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
@click.command()
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
    from pyredo.rmgrlist import PG15

    try:
        with LocalCluster(ClusterSettings(wal_segsize_mb=1), keep=keep) as pg:
            err.print(f"cluster: {pg.pgdata} on port {pg.port}")
            with capture(pg, DEMO_STEPS) as cap:
                for e in cap.errors:
                    err.print(f"[yellow]step failed:[/] {e}")
                counts = Counter(PG15.record_type(r) for r in cap.records())
                table = Table(title=f"WAL {format_lsn(cap.start)} .. {format_lsn(cap.end)}")
                table.add_column("record type")
                table.add_column("count", justify="right")
                for k, v in sorted(counts.items()):
                    table.add_row(k, str(v))
                out.print(table)
                result = verify(cap, [RedoEngine()]).result()
            if report_path:
                report_path.write_text(json.dumps(result.to_json(), indent=2) + "\n")
            print_report_summary(result, "pyredo vs the primary")
    except SetupError as e:
        fail_setup(str(e))
    sys.exit(EXIT_DIVERGENCE if result.divergences else EXIT_OK)


# -- bench --------------------------------------------------------------------------
