"""What the commands share: exit codes, consoles, the LSN type, engine/cluster options, the report summary."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pyredo.wal.lsn import format_lsn, parse_lsn

if TYPE_CHECKING:
    from harness.reports.schema import CheckResult

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
                walredo_docker: str | None = None, mutant: str | None = None) -> Any:
    from harness.verify.engines import EngineSet

    names = engines or ("pyredo",)
    if walredo_docker and "walredo" not in names:
        fail_setup("--walredo-docker runs the wal-redo engine in a container: add --engine walredo")
    try:
        return EngineSet(names=names, walredo_cmd=walredo_cmd, tag_layout=tag_layout,
                         walredo_docker=walredo_docker, mutant=mutant)
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


CLUSTER_ENV = "REDODIFF_CLUSTER"  # read here, at the CLI boundary, as the --cluster default; never written
cluster_option = click.option(
    "--cluster", metavar="SPEC", callback=_cluster_spec, envvar=CLUSTER_ENV,
    help="Where workload clusters run: local (initdb + pg_ctl here) or docker:IMAGE (the server in a "
         "container, PGDATA bind-mounted). Default: $REDODIFF_CLUSTER, else local.")
# the same for commands that make throwaway clusters without offering --cluster in their help
hidden_cluster_option = click.option("--cluster", metavar="SPEC", callback=_cluster_spec, envvar=CLUSTER_ENV,
                                     hidden=True)



def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, transient=True)


def print_report_summary(report: CheckResult, title: str = "redodiff check") -> None:
    table = Table(title=title, show_header=False)
    table.add_row("engines", ", ".join(report.engines))
    table.add_row("records", str(report.records))
    table.add_row("pages checked", str(report.pages_checked))
    table.add_row("pages skipped (no base page)", str(report.pages_skipped_no_base))
    for reason, n in sorted(report.pages_skipped.items()):
        table.add_row(f"pages skipped ({reason})", str(n))
    table.add_row("divergences", f"[bold red]{len(report.divergences)}[/]" if report.divergences else "0")
    table.add_row("unsupported records",
                  ", ".join(f"{k}: {v}" for k, v in sorted(report.unsupported.items())) or "0")
    err.print(table)
    if report.record_types:
        types = Table(title="record types verified", show_header=True)
        types.add_column("type")
        types.add_column("count", justify="right")
        for k, v in sorted(report.record_types.items()):
            types.add_row(k, str(v))
        err.print(types)
    for d in report.divergences[:20]:
        lsn = format_lsn(d.first_diverging_lsn) if d.first_diverging_lsn is not None else None
        err.print(f"[bold red]{d.kind}[/] {d.tag} engines={d.engines} "
                  f"record={d.record_type} first diverging LSN={lsn}")
        for line in d.diff[:10]:
            err.print(f"    {line}")




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
