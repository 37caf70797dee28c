"""``decode``, ``check``, ``slot``, ``demo``: read and verify WAL of a cluster."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.table import Table

from harness.cli.common import (
    EXIT_DIVERGENCE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    LSN,
    _engine_set,
    _progress,
    before_fork,
    default_workers,
    engine_option,
    err,
    fail_setup,
    out,
    pg_install,
    pg_options,
    print_report_summary,
    stop_requests,
    tag_layout_option,
    walredo_cmd_option,
    walredo_docker_option,
    workers_option,
)
from harness.interrupts import Interrupted
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
@click.option("--pg", "pg_major", type=click.Choice(["15", "16", "17", "18"]),
              help="Read the WAL as this major's (default: the major its page magic names).")
def decode(waldir: Path, start: int | None, end: int | None, fmt: str, details: bool,
           timeline: int | None, limit: int | None, pg_major: str | None) -> None:
    """Decode the WAL in WALDIR (a pg_wal directory or a copy of segment files).

    \b
    JSON keys: lsn, end_lsn, prev, rmgr, info (full xl_info byte), xid, total_len,
    rec_len, main_data_len, blocks [{id, spc, db, rel, fork, blk, has_image,
    apply_image, will_init, data_len, image?}], desc. LSNs print as X/X.

    PostgreSQL 15 to 18: the WAL page magic says which major wrote it, and record
    and resource-manager names are that major's (custom resource managers, ids
    128-255, print as customNNN with their records undecoded, as pg_waldump does).

    Exit 1 on corrupt WAL, after printing every record read before it; the
    error names the LSN, segment file and offset.
    """
    from harness.reports.recordfmt import record_json, record_text
    from pyredo.rmgrlist import table_for
    from pyredo.wal.reader import WalDirectory, WalReader

    try:
        wd = WalDirectory.open(waldir, start=start, tli=timeline)
        reader = WalReader(wd, start, end, major=int(pg_major) if pg_major else None)
        n = 0
        write = sys.stdout.write
        table = None
        for rec in reader:
            if table is None:
                table = table_for(reader.major or 15)
            if fmt == "jsonl":
                write(json.dumps(record_json(rec, table), separators=(",", ":")) + "\n")
            else:
                write(record_text(rec, details, table) + "\n")
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
@click.option("--strict-known", is_flag=True,
              help="Fail (exit 1) also on divergences that match a known PostgreSQL issue "
                   "(oracles/known_issues.toml); by default they are reported as known and pass.")
@click.option("--replay-superseded", is_flag=True,
              help="Also redo the records that a later full-page image or re-initialization of their "
                   "page erases (by default a page starts at its last one: their effect cannot reach the "
                   "compared page). Slower; runs every record's redo, so an engine that fails on one shows.")
@workers_option
@pg_options
def check(pgdata: Path | None, dsn: str | None, slot: str | None, start: int | None, end: int | None,
          engines: tuple[str, ...], base_backup: Path | None, walredo_cmd: str | None, tag_layout: str,
          report_path: Path | None, walredo_docker: str | None = None, strict_known: bool = False,
          replay_superseded: bool = False,
          pg_major: str | None = None, pg_bindir: Path | None = None, workers: int | None = None) -> None:
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

    With two engines every page gets a verdict: verified (engines and primary
    agree), primary_differs (the engines agree, the primary differs: the WAL
    does not carry what the primary has), engine_disagreement or engine_error
    (naming the engine at fault where the primary can tell).

    The cluster's major (its PG_VERSION, or the server's version) picks the
    PostgreSQL whose wal-redo server and programs are used (`redodiff pg install`
    for 16-18); --pg / --pg-bindir name it explicitly.

    Exit 0 when clean or when every divergence is a known PostgreSQL issue
    (with --strict-known: only when clean), 1 on any other divergence, 2 on a
    usage or setup error, 130 when Ctrl-C/SIGTERM stopped it first (the report,
    written all the same, says ``interrupted`` and counts the pages not reached).
    """
    from generators.workload import Settings
    from harness.clusters.datadir import DataDirPages, hint_bits_logged
    from harness.reports.counts import PageCounts
    from harness.verify.check import Checker
    from harness.verify.parallel import check_range
    from harness.verify.plan import decode_all
    from oracles.known_issues import KnownIssues
    from oracles.pgbin import default_install, installed
    from pyredo.wal.reader import WalReader

    if (pgdata is None) == (dsn is None):
        raise click.UsageError("give exactly one of --pgdata DIR or --dsn DSN")
    pg = pg_install(pg_major, pg_bindir)
    interrupts = stop_requests()
    workdir = None
    remote = None
    es = None
    try:
        if dsn is not None:
            from harness.clusters.existing import ExistingCluster, fetch_range, scratch_dir

            remote = ExistingCluster(dsn)
            workdir = scratch_dir()
            waldir, start, end = fetch_range(remote, start=start, end=end, slot=slot, workdir=workdir)
            primary = remote.read_block
            hints = bool(remote.scalar("SELECT current_setting('wal_log_hints')::bool OR "
                                       "current_setting('data_checksums')::bool"))
            version = int(remote.scalar("SELECT current_setting('server_version_num')::int"))
            pg_version = str(remote.scalar("SELECT 'postgres (PostgreSQL) ' || current_setting('server_version')"))
            if pg is None and version // 10000 != default_install().major:
                pg = installed(version // 10000)  # the wal-redo server must be the cluster's major
        else:
            assert pgdata is not None
            if start is None:
                raise click.UsageError("--start is required with --pgdata")
            if pg is None:
                major = int((pgdata / "PG_VERSION").read_text().strip())
                pg = installed(major) if major != default_install().major else None
            inst = pg if pg is not None else default_install()
            waldir, primary, hints = pgdata / "pg_wal", DataDirPages(pgdata), hint_bits_logged(pgdata, inst)
            version, pg_version = inst.version_num, inst.server_version
        es = _engine_set(engines, walredo_cmd, tag_layout, walredo_docker, pg=pg)
        timing = PageCounts()
        try:
            with timing.timed("decode"):
                records = decode_all(interrupts.each(WalReader(waldir, start, end)))
        except WalError as e:
            fail_setup(f"cannot read the WAL range: {e}")
        real_end = end if end is not None else (records[-1].end_lsn if records else start)
        known = KnownIssues.load(version)

        def make_checker() -> Checker:  # in each worker: engines (a wal-redo server) of its own
            return Checker(es.for_settings(Settings(wal_log_hints=hints)), primary,
                           DataDirPages(base_backup) if base_backup else None, end_lsn=real_end,
                           base_is_snapshot=base_backup is not None, known_issues=known, interrupts=interrupts,
                           table=es.pyredo_table(), supersede=not replay_superseded)

        # a remote primary is read over one connection: one process
        n = 1 if dsn is not None else (workers if workers is not None else default_workers())
        before_fork(es, n)
        with _progress() as progress:
            task = progress.add_task(f"redo ({n} worker{'s' if n != 1 else ''})", total=None)
            report = check_range(
                make_checker, records, start=start, end=real_end, workers=n, interrupts=interrupts,
                engines=list(es.names), primary=primary, table=es.pyredo_table(),
                progress=lambda done, total: progress.update(task, completed=done, total=total),
                supersede=not replay_superseded,
            )
        report.phases.add_all(timing.phases)
    except SetupError as e:
        fail_setup(str(e))
    except Interrupted:
        err.print("[yellow]interrupted[/] before any page was checked: no report")
        sys.exit(EXIT_INTERRUPTED)
    finally:
        if es is not None:  # the wal-redo server, also when a second signal cut the check short
            with interrupts.holding():
                es.close()
        if remote is not None:
            remote.close()
        if workdir is not None:
            from harness.clusters.existing import remove

            remove(workdir)
    result = report.result()
    result.pg_version = pg_version
    if report_path:
        with interrupts.holding():
            report_path.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    print_report_summary(result)
    if report.interrupted:
        err.print("[yellow]interrupted[/]: the report holds the pages checked before the stop request")
    if result.unknown_divergences or (strict_known and result.divergences):
        sys.exit(EXIT_DIVERGENCE)
    sys.exit(EXIT_INTERRUPTED if report.interrupted else EXIT_OK)  # an unfinished check is not clean


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
@pg_options
def demo(keep: bool, report_path: Path | None, pg_major: str | None = None, pg_bindir: Path | None = None) -> None:
    """Run the built-in mixed workload on a throwaway cluster, decode and verify its WAL.

    With --pg 16/17/18 the wal-redo server of that major verifies (pyredo redoes 15)."""
    from collections import Counter

    from generators.capabilities import fit_steps
    from generators.workload import Settings
    from harness.campaign.demo import DEMO_STEPS
    from harness.clusters.local import ClusterSettings, LocalCluster
    from harness.reports.counts import PageCounts
    from harness.verify.capture import capture, verify
    from harness.verify.plan import decode_all
    from oracles.pgbin import default_install
    from pyredo.engine import RedoEngine
    from pyredo.rmgrlist import PG15, table_for

    inst = pg_install(pg_major, pg_bindir)
    # on a later major, or any build named by --pg-bindir (a source build of another 15.x minor), both
    # engines: pyredo mirroring that exact version and the wal-redo server built against it
    es = (_engine_set(("pyredo", "walredo"), None, "neon", pg=inst)
          if inst is not None and (inst.major != PG15.major or pg_bindir is not None) else None)
    try:
        inst = inst or default_install()
        rmgrs = table_for(inst.major)
        with LocalCluster(ClusterSettings(wal_segsize_mb=1, pg=inst), keep=keep) as pg:
            err.print(f"cluster: {pg.pgdata} on port {pg.port} ({inst.server_version}, {inst.source})")
            with capture(pg, fit_steps(DEMO_STEPS, inst.capabilities)) as cap:
                for e in cap.errors:
                    err.print(f"[yellow]step failed:[/] {e}")
                timing = PageCounts()
                with timing.timed("decode"):
                    records = decode_all(cap.records())  # once: the counts, the plan and the commit-log check
                counts = Counter(rmgrs.record_type(r) for r in records)
                table = Table(title=f"WAL {format_lsn(cap.start)} .. {format_lsn(cap.end)}")
                table.add_column("record type")
                table.add_column("count", justify="right")
                for k, v in sorted(counts.items()):
                    table.add_row(k, str(v))
                out.print(table)
                engines = es.for_settings(Settings()) if es is not None else [RedoEngine()]
                result = verify(cap, engines, records=records).result()
                result.phases.add_all(timing.phases)
                result.pg_version = inst.server_version
            if report_path:
                report_path.write_text(json.dumps(result.to_json(), indent=2) + "\n")
            print_report_summary(result, f"{' and '.join(result.engines) or 'pyredo'} vs the primary")
    except SetupError as e:
        fail_setup(str(e))
    finally:
        if es is not None:
            es.close()
    sys.exit(EXIT_DIVERGENCE if result.divergences else EXIT_OK)


# -- bench --------------------------------------------------------------------------
