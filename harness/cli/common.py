"""What the commands share: exit codes, consoles, the LSN type, engine/cluster options, the report summary."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pyredo.wal.lsn import format_lsn, parse_lsn

if TYPE_CHECKING:
    from harness.interrupts import Interrupts
    from harness.reports.schema import CheckResult
    from oracles.pgbin import PgInstall

EXIT_OK, EXIT_DIVERGENCE, EXIT_SETUP = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command that Ctrl-C ended

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


class ProfileType(click.ParamType):
    """A workload profile: ``ci``, ``nightly``, or one aimed (``ci@lock_chain,wal_log_hints=on``:
    those rules drawn ten times as often, those settings fixed; what a selftest mutant's
    campaign runs, so its seed replays with ``replay --seed S --profile ...``)."""

    name = "PROFILE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from generators.rules import profile_named

        try:
            return profile_named(value).name
        except ValueError as e:
            self.fail(str(e), param, ctx)


PROFILE = ProfileType()
PROFILE_HELP = ("Workload size: ci (short) or nightly (longer, more steps); PROFILE@RULE,...,SETTING=VALUE "
                "aims it (those rules drawn 10x as often, those settings fixed), as a selftest campaign does.")


def fail_setup(message: str) -> NoReturn:
    # soft_wrap: never break a line inside a command or a GRANT the user will copy
    err.print(f"[bold red]error:[/] {message}", soft_wrap=True, markup=True, highlight=False)
    sys.exit(EXIT_SETUP)


def stop_requests() -> Interrupts:
    """The command's stop request, with SIGINT and SIGTERM routed to it until the command
    ends (harness.interrupts): the first stops the run fast, a second immediately."""
    from harness.interrupts import Interrupts, stop_signals

    return click.get_current_context().with_resource(stop_signals(Interrupts()))


def pg_install(pg: str | None, pg_bindir: Path | None) -> PgInstall | None:
    """What ``--pg``/``--pg-bindir`` name (None: neither given, the default installation);
    a missing major exits with the command that installs it."""
    from oracles.pgbin import SetupError, select

    if pg is None and pg_bindir is None:
        return None
    try:
        return select(pg, pg_bindir)
    except SetupError as e:
        fail_setup(str(e))


def _engine_set(engines: tuple[str, ...], walredo_cmd: str | None, tag_layout: str,
                walredo_docker: str | None = None, mutant: str | None = None,
                pg: PgInstall | None = None) -> Any:
    from harness.verify.engines import EngineSet
    from pyredo.rmgrlist import PG15

    later = pg is not None and pg.major != PG15.major
    names = engines or ("pyredo",)
    # every rmgr module lists the majors it mirrors (MAJORS); a record of an rmgr that does
    # not list this one counts as unsupported, never as a page pyredo guessed
    if later and "pyredo" in names:
        assert pg is not None
        from pyredo.rmgrlist import table_for

        table = table_for(pg.major)
        missing = sorted({t.partition("/")[0] for t in table.page_modifying_types() if not table.implemented(t)})
        if missing:  # rmgr modules that do not list this major in MAJORS
            err.print(f"[yellow]note:[/] pyredo has no PostgreSQL {pg.major} redo for {', '.join(missing)}: "
                      "those records count as unsupported", soft_wrap=True, highlight=False)
    if walredo_docker and "walredo" not in names:
        fail_setup("--walredo-docker runs the wal-redo engine in a container: add --engine walredo")
    try:
        return EngineSet(names=names, walredo_cmd=walredo_cmd, tag_layout=tag_layout,
                         walredo_docker=walredo_docker, mutant=mutant, pg=pg,
                         neon=neon_config() if "neon" in names else None)
    except ValueError as e:
        fail_setup(str(e))


def fuzz_engine_set(engines: tuple[str, ...], walredo_cmd: str | None, tag_layout: str,
                    walredo_docker: str | None = None, mutant: str | None = None,
                    pg: PgInstall | None = None) -> Any:
    """``fuzz``'s engines: those named, else both pyredo and walredo when the wal-redo
    server starts (it is started once to see), else pyredo alone, saying so."""
    from harness.verify.engines import is_infrastructure
    from oracles.pgbin import SetupError

    if engines or walredo_docker:
        return _engine_set(engines, walredo_cmd, tag_layout, walredo_docker, mutant, pg=pg)
    es = _engine_set(("pyredo", "walredo"), walredo_cmd, tag_layout, walredo_docker, mutant, pg=pg)
    try:
        es.walredo().start()
        return es
    except (SetupError, OSError) as e:
        why = str(e)
    except Exception as e:
        if not is_infrastructure(e):
            raise
        why = str(e)
    es.close()
    err.print(f"[yellow]note:[/] the wal-redo server does not start ({why.splitlines()[0] if why else 'no reason'}): "
              "fuzzing with pyredo alone", soft_wrap=True, highlight=False)
    return _engine_set(("pyredo",), walredo_cmd, tag_layout, walredo_docker, mutant, pg=pg)


def before_fork(es: Any, workers: int) -> None:
    """Before ``check --workers`` forks: start the wal-redo server once and stop it, so
    its scratch template exists in this process (the parent removes it at exit) and the
    workers only copy it."""
    if workers > 1 and es.uses_walredo and not es.walredo_cmd:
        es.walredo().start()
        es.close()


PG_MAJORS = ("15", "16", "17", "18")


def pg_options(f: Any = None, *, allow_all: bool = False) -> Any:
    """``--pg MAJOR`` and ``--pg-bindir DIR``: which PostgreSQL starts the clusters and servers
    (``@pg_options``; ``@pg_options(allow_all=True)`` also takes ``--pg all``)."""
    if f is None:
        return lambda g: pg_options(g, allow_all=allow_all)
    f = click.option("--pg-bindir", type=click.Path(exists=True, file_okay=False, path_type=Path),
                     help="Run the PostgreSQL in this bin directory (any build, e.g. of master); "
                          "its major is read off `postgres --version`.")(f)
    every = " `all`: the iterations dealt over 15, 16, 17 and 18 in turn." if allow_all else ""
    return click.option("--pg", "pg_major", type=click.Choice([*PG_MAJORS, *(["all"] if allow_all else [])]),
                        help="PostgreSQL major to run (default: the system's, 15). 16-18 come from "
                             f"`redodiff pg install`; see `redodiff pg list`.{every}")(f)


_NEON_META = "redodiff.neon_postgres"  # where --neon-postgres leaves its value (click context meta)


def _neon_postgres(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.meta[_NEON_META] = value


def neon_config() -> Any:
    """Neon's binary as --neon-postgres (or $REDODIFF_NEON_POSTGRES) names it, else the
    shared reference binary when present (oracles.neon.NeonConfig; None: none)."""
    from oracles.neon import NeonConfig

    ctx = click.get_current_context(silent=True)
    path = ctx.meta.get(_NEON_META) if ctx is not None else None
    return NeonConfig(postgres=path) if path is not None else NeonConfig.default()


def engine_option(f: Any) -> Any:
    """``--engine`` (repeatable) and ``--neon-postgres PATH`` (for ``--engine neon``)."""
    from oracles.neon import NEON_POSTGRES_ENV

    f = click.option(
        "--neon-postgres", type=click.Path(exists=True, dir_okay=False, path_type=Path), envvar=NEON_POSTGRES_ENV,
        expose_value=False, callback=_neon_postgres,
        help="Neon's `postgres` binary (with --wal-redo) for --engine neon. Default: "
             f"${NEON_POSTGRES_ENV}, else ../shared/neon-walredo/pg17 when present.")(f)
    return click.option(
        "--engine", "engines", multiple=True, type=click.Choice(["pyredo", "walredo", "neon"]),
        help="Engine(s): pyredo, walredo (stock PostgreSQL's redo), neon (Neon's wal-redo process); "
             "give several to compare them byte for byte. Default: pyredo (fuzz: pyredo and walredo "
             "when the wal-redo server starts).")(f)
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
    if report.replays_superseded:
        table.add_row("records superseded (a later image or init of the page erases them)",
                      str(report.replays_superseded))
    for reason, n in sorted(report.pages_skipped.items()):
        table.add_row(f"pages skipped ({reason})", str(n))
    unknown = report.unknown_divergences
    known = len(report.divergences) - len(unknown)
    table.add_row("divergences", (f"[bold red]{len(unknown)}[/]" if unknown else "0")
                  + (f" (+ {known} known PostgreSQL issue{'s' if known != 1 else ''})" if known else ""))
    for verdict, n in sorted(report.verdicts.items()):
        table.add_row(f"pages: {escape(verdict)}", str(n))  # "[neon: ...]" is text, not markup
    eor = report.end_of_recovery
    if eor:
        table.add_row("end of recovery", str(eor.get("summary", "")))
    table.add_row("unsupported records",
                  ", ".join(f"{k}: {v}" for k, v in sorted(report.unsupported.items())) or "0")
    if report.phases:
        table.add_row("seconds by phase", phases_line(report.phases))
    err.print(table)
    if report.record_types:
        types = Table(title="record types verified", show_header=True)
        types.add_column("type")
        types.add_column("count", justify="right")
        for k, v in sorted(report.record_types.items()):
            types.add_row(k, str(v))
        err.print(types)
    # the verdict first: the findings, then each known PostgreSQL issue once with its pages
    for d in unknown[:20]:
        lsn = format_lsn(d.first_diverging_lsn) if d.first_diverging_lsn is not None else None
        err.print(f"[bold red]divergence[/] {d.tag}: {escape(d.verdict or d.kind)}", soft_wrap=True,
                  highlight=False)
        err.print(f"    {d.kind} engines={d.engines} record={d.record_type} first diverging LSN={lsn}")
        for line in d.diff[:10]:
            err.print(f"    {line}")
    print_known_issues(report.divergences)
    if known and not unknown:
        err.print(f"every divergence ({known}) is a known PostgreSQL issue: not a finding "
                  f"(--strict-known makes them fail)", highlight=False)




def print_known_issues(divergences: Sequence[Any]) -> None:
    """Each known PostgreSQL issue once, with how many pages it explains and a few of them."""
    by_issue: dict[str, list[Any]] = {}
    for d in divergences:
        if d.known is not None:
            by_issue.setdefault(d.known, []).append(d)
    for issue, divs in sorted(by_issue.items()):
        err.print(f"[yellow]known PostgreSQL issue {issue}[/] on {len(divs)} page{'s' if len(divs) != 1 else ''} "
                  f"({', '.join(d.tag for d in divs[:3])}{', ...' if len(divs) > 3 else ''}): "
                  f"{escape(divs[0].verdict or divs[0].kind)}", soft_wrap=True, highlight=False)


def phases_line(phases: Mapping[str, float]) -> str:
    """Seconds by phase, in running order, on one line (engines and witness sum over workers)."""
    from harness.reports.counts import phase_order

    return ", ".join(f"{k} {phases[k]:.1f}" for k in sorted(phases, key=phase_order))


def default_workers() -> int:
    """The cores this process may run on: the default of ``--workers``."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


workers_option = click.option(
    "--workers", type=click.IntRange(min=1), default=None,
    help="Worker processes, each with its own clusters and wal-redo server. Default: the number of cores.")


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
