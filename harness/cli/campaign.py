"""``fuzz``, ``replay``, ``minimize``, ``gate``: the fuzz campaign and what is done with its findings."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from harness.cli.common import (
    EXIT_DIVERGENCE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    PG_MAJORS,
    PROFILE,
    PROFILE_HELP,
    _engine_set,
    _parse_shard,
    cluster_option,
    default_workers,
    engine_option,
    err,
    fail_setup,
    fuzz_engine_set,
    hidden_cluster_option,
    mutant_option,
    out,
    pg_install,
    pg_options,
    phases_line,
    print_known_issues,
    stop_requests,
    tag_layout_option,
    walredo_cmd_option,
    walredo_docker_option,
    workers_option,
)
from harness.interrupts import Interrupted
from oracles.pgbin import SetupError


@click.command()
@click.option("--budget", type=float, metavar="SECONDS", help="Stop starting iterations after this long.")
@click.option("--iterations", type=int, metavar="N", help="Run this many iterations (of this shard).")
@click.option("--seed", type=int, default=0, show_default=True, help="Campaign seed: iteration i runs workload seed (SEED<<20)|i.")
@workers_option
@click.option("--shard", metavar="K/N", help="Run only iterations i with i % N == K-1 (CI matrices).")
@engine_option
@walredo_cmd_option
@walredo_docker_option
@tag_layout_option
@cluster_option
@click.option("--profile", type=PROFILE, default="ci", show_default=True, help=PROFILE_HELP)
@click.option("--corpus", type=click.Path(file_okay=False, path_type=Path),
              help="Keep bundles (corpus/bundles), diverging seeds (corpus/seeds) and running coverage here.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the JSON report here.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False, path_type=Path), help="Write a JUnit XML report here.")
@mutant_option
@click.option("--faults", metavar="SPEC", envvar="REDODIFF_FAULTS", hidden=True,
              help="Testing aid: inject infrastructure faults (harness.selftest.faults), e.g. kill_postgres=3@0.")
@click.option("--workload", "workload_kind", type=click.Choice(["generated", "pg-regress"]), default="generated",
              show_default=True, help="pg-regress: PostgreSQL's regression suite of the server's major, a step per "
              "file (one pass when neither --budget nor --iterations is given).")
@click.option("--interleave", is_flag=True, help="pg-regress: interleave the suite's files with generated steps.")
@click.option("--regress-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="pg-regress: take the suite from this src/test/regress directory (copied into the cache).")
@pg_options(allow_all=True)
def fuzz(budget: float | None, iterations: int | None, seed: int, workers: int | None, shard: str | None,
         engines: tuple[str, ...], walredo_cmd: str | None, tag_layout: str, profile: str, corpus: Path | None,
         report_path: Path | None, junit_path: Path | None, mutant: str | None,
         walredo_docker: str | None = None, cluster: str | None = None, faults: str | None = None,
         pg_major: str | None = None, pg_bindir: Path | None = None, workload_kind: str = "generated",
         interleave: bool = False, regress_dir: Path | None = None) -> None:
    """Fuzz: generate workloads, run them on throwaway clusters, redo every page with
    every engine, compare, and bundle each divergence.

    \b
    Examples:
      redodiff fuzz --budget 60 --seed 1       (both engines when the wal-redo server starts, one worker per core)
      redodiff fuzz --budget 600 --profile nightly --engine pyredo --engine walredo --corpus corpus/
      redodiff fuzz --iterations 50 --shard 3/8 --report shard3.json --junit shard3.xml
      redodiff fuzz --budget 60 --cluster docker:postgres:15.19-bookworm --engine pyredo --engine walredo
      redodiff fuzz --budget 600 --pg 17 --engine walredo --profile nightly
      redodiff fuzz --budget 1200 --pg all        (iteration i on major 15+(i%4), 300 s each, one after another)
      redodiff fuzz --pg 17 --workload pg-regress  (one pass of 17's regression suite, a step per file)

    Exit 0 when clean, 1 when a divergence was found, 2 on a usage or setup error.
    """
    from harness.campaign.fuzz import FuzzConfig, spread_over_majors
    from harness.selftest.faults import FaultPlan
    from harness.verify.engines import EngineSet

    if budget is None and iterations is None:
        if workload_kind != "pg-regress":
            raise click.UsageError("give --budget SECONDS or --iterations N")
        iterations = 1  # one pass of the suite
    if workload_kind == "pg-regress" and workers is None:
        workers = 1  # a pass of the suite is one long iteration
    every = pg_major == "all"
    if (every or pg_bindir is not None or pg_major is not None) and cluster not in (None, "local"):
        raise click.UsageError("--pg/--pg-bindir choose the binaries of local clusters; "
                               "with --cluster docker:IMAGE the image's PostgreSQL runs")
    if every and pg_bindir is not None:
        raise click.UsageError("--pg all runs the installed majors; --pg-bindir names one build")
    pgs = [pg_install(m, None) for m in PG_MAJORS] if every else [pg_install(pg_major, pg_bindir)]
    _regress_setup(workload_kind, interleave, regress_dir, pgs, cluster)
    try:
        # the mutant, the cluster spec, the fault plan and the PostgreSQL travel in the config (to workers too)
        cfg = FuzzConfig(seed=seed, budget=budget, iterations=iterations,
                         workers=workers if workers is not None else default_workers(), shard=_parse_shard(shard),
                         engines=EngineSet() if every else
                         fuzz_engine_set(engines, walredo_cmd, tag_layout, walredo_docker, mutant, pg=pgs[0]),
                         profile=profile, corpus=corpus, cluster=cluster,
                         faults=FaultPlan.parse(faults) if faults else None, interrupts=stop_requests(),
                         workload=workload_kind, interleave=interleave)
        cfgs = (spread_over_majors(cfg, [fuzz_engine_set(engines, walredo_cmd, tag_layout, walredo_docker, mutant,
                                                         pg=p) for p in pgs]) if every else [cfg])
    except ValueError as e:
        fail_setup(str(e))
    reps = []
    try:
        for c in cfgs:  # --pg all: the majors one after another; a stop request ends the run
            if c.interrupts.pending:
                break
            reps.append(_fuzz_live(c, seed))
    finally:
        for c in cfgs:  # the majors a stop left unrun: their wal-redo servers (started to see) too
            c.engines.close()
    _fuzz_outputs(reps, report_path, junit_path, corpus, cfg)
    divergences = [d for r in reps for d in r.divergences]
    sys.exit(EXIT_DIVERGENCE if any(d.known is None for d in divergences) else EXIT_OK)


def _regress_setup(kind: str, interleave: bool, source: Path | None, pgs: list[Any], cluster: str | None) -> None:
    """``--workload pg-regress``: the suite of each major in the cache (from --regress-dir, or
    the major's source package) before any worker starts; a SetupError names what to give."""
    if kind != "pg-regress":
        if interleave or source is not None:
            raise click.UsageError("--interleave and --regress-dir go with --workload pg-regress")
        return
    if cluster not in (None, "local"):
        raise click.UsageError("--workload pg-regress runs on local clusters (its data files are read by the server)")
    if source is not None and len(pgs) > 1:
        raise click.UsageError("--regress-dir is the suite of one major: give it with --pg MAJOR")
    from harness.campaign.regress import regress_dir
    from oracles.pgbin import default_install

    try:
        for pg in pgs:
            regress_dir((pg or default_install()).major, source)
    except SetupError as e:
        fail_setup(str(e))


def _print_script_errors(reps: list[Any]) -> None:
    """pg-regress: per iteration, the regression files whose errors differ from their expected output."""
    for r in reps:
        for it in r.results:
            if it.script_errors:
                err.print(f"iteration {it.index}: {len(it.script_errors)} regression file(s) did not run as "
                          "their expected output shows (statement errors tolerated, as pg_regress runs them):")
                for name, why in it.script_errors.items():
                    err.print(f"    {name}: {escape(why[:160])}", soft_wrap=True, highlight=False)


def _fuzz_live(cfg: Any, seed: int) -> Any:
    """One campaign with its live table (stderr); the report."""
    from rich.live import Live

    from harness.campaign.fuzz import run_campaign

    def render(rep: Any) -> Table:
        t = Table(title=f"redodiff fuzz seed={seed} shard={cfg.shard[0]}/{cfg.shard[1]} engines={','.join(cfg.engines.names)}"
                        f" PostgreSQL {cfg.pg.version}", show_header=False)
        t.add_row("iterations", str(rep.iterations))
        t.add_row("records", f"{rep.records:,}")
        t.add_row("pages verified", f"{rep.pages_checked:,}")
        t.add_row("record types seen", str(len(rep.record_types)))
        unknown = len(rep.unknown_divergences)
        known = len(rep.divergences) - unknown
        t.add_row("divergences", (f"[bold red]{unknown}[/]" if unknown else "0")
                  + (f" (+ {known:,} known PostgreSQL issue{'s' if known != 1 else ''})" if known else ""))
        t.add_row("infrastructure errors", str(len(rep.infrastructure_errors)))
        t.add_row("step errors (recorded)", str(rep.step_errors))
        for verdict, n in sorted(rep.verdicts.items()):  # what the engines and the primary said, page by page
            t.add_row(f"pages: {escape(verdict)}", f"{n:,}")  # "[neon: ...]" is text, not markup
        if rep.phases:
            t.add_row("seconds by phase", phases_line(rep.phases))
        return t

    try:
        with Live(console=err, refresh_per_second=4, transient=False) as live:
            rep = run_campaign(cfg, progress=lambda r: live.update(render(r)))
            live.update(render(rep))
        if not err.is_terminal:
            err.line()  # off a terminal, Live leaves its last frame without a line end
    except SetupError as e:
        fail_setup(str(e))
    return rep


def _fuzz_outputs(reps: list[Any], report_path: Path | None, junit_path: Path | None, corpus: Path | None,
                  cfg: Any) -> None:
    """The report (one major: its FuzzReport; several: harness.campaign.fuzz.write_major_outputs),
    then the summary: a line per major, the findings, each known issue once."""
    from harness.campaign.fuzz import write_major_outputs, write_outputs

    with cfg.interrupts.holding():  # a further signal does not cut the report short
        if len(reps) == 1:
            write_outputs(reps[0], report_path, junit_path, corpus)
        else:
            write_major_outputs(reps, report_path, junit_path, corpus)
    if any(r.interrupted for r in reps) or cfg.interrupts.pending:
        err.print("[yellow]interrupted[/]: report and bundles written so far are kept")
    for rep in reps:
        cov = rep.coverage()
        on = f" on PostgreSQL {(rep.pg_version or '?').split()[-1]}" if len(reps) > 1 else ""
        err.print(f"{rep.iterations} iterations in {rep.seconds:.0f}s{on}: {rep.pages_checked:,} pages verified, "
                  f"{len(rep.record_types)} record types, coverage {cov.covered}/{cov.total} page-modifying types")
    divergences = [d for r in reps for d in r.divergences]
    # the findings one by one; each known PostgreSQL issue once, with its page count
    for d in [d for d in divergences if d.known is None][:20]:
        err.print(f"[bold red]{d.kind}[/] {d.tag}: {escape(d.verdict or d.kind)}", soft_wrap=True, highlight=False)
        err.print(f"    {d.kind} {d.record_type} seed={d.seed} bundle={d.bundle}")
    print_known_issues(divergences)
    _print_script_errors(reps)
    for ie in [ie for r in reps for ie in r.infrastructure_errors][:10]:
        err.print(f"[yellow]infrastructure[/] iteration {ie.iteration}: {ie.error}")


# -- replay -------------------------------------------------------------------------
@click.command()
@click.argument("bundle", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--seed", type=int, help="Instead of a bundle: rerun the workload of this (iteration) seed.")
@click.option("--profile", type=PROFILE, default="ci", show_default=True, help=PROFILE_HELP)
@click.option("--workload", "rerun", is_flag=True, help="Rerun the bundle's workload end to end on a fresh cluster.")
@engine_option
@walredo_cmd_option
@walredo_docker_option
@tag_layout_option
@cluster_option
@mutant_option
@pg_options
def replay(bundle: Path | None, seed: int | None, profile: str, rerun: bool, engines: tuple[str, ...],
           walredo_cmd: str | None, tag_layout: str, mutant: str | None,
           walredo_docker: str | None = None, cluster: str | None = None,
           pg_major: str | None = None, pg_bindir: Path | None = None) -> None:
    """Reproduce a divergence and say whether it still diverges.

    With a BUNDLE: rebuild its page from the saved records and base page with the
    bundle's engines (or --engine), compare byte for byte and with the saved primary
    page under masks. With --workload or --seed: rerun the workload on a fresh cluster.
    A bundle runs on the PostgreSQL major it was made with (its pg_version; --pg or
    --pg-bindir to choose another build).
    Exit 1 if it (still) diverges, 0 if not.
    """
    from generators import generate
    from harness.campaign.bundle import BundleError, read_bundle
    from harness.campaign.replay import replay_bundle, rerun_workload

    if bundle is None and seed is None:
        raise click.UsageError("give a BUNDLE directory or --seed N")
    pg = pg_install(pg_major, pg_bindir)
    try:
        if pg is None and bundle is not None:
            pg = _bundle_pg(read_bundle(bundle).meta.get("pg_version"))
        if bundle is not None and not rerun:
            b = read_bundle(bundle)
            if pg is not None and not engines:
                engines = tuple(n for n in b.meta.get("engines", []) if n in ("pyredo", "walredo"))
            es = (_engine_set(engines, walredo_cmd, tag_layout, walredo_docker, mutant, pg=pg)
                  if engines or walredo_docker or pg is not None else None)
            try:
                result = replay_bundle(b, es, mutant=mutant, interrupts=stop_requests())
            except ValueError as e:  # an unknown mutant
                fail_setup(str(e))
            except Interrupted:
                err.print("[yellow]interrupted[/]: the bundle's replay was stopped; its servers are shut down")
                sys.exit(EXIT_INTERRUPTED)
            out.print(result.summary())
            for d in result.divergences[:1]:
                for line in d.diff[:30]:
                    out.print(f"    {line}")
            sys.exit(EXIT_DIVERGENCE if result.diverges else EXIT_OK)
        wl = read_bundle(bundle).workload if bundle is not None else generate(seed or 0, profile)
        if wl is None:
            fail_setup(f"{bundle} has no workload.json")
        if pg is not None:
            from generators.capabilities import fit_workload

            wl = fit_workload(wl, pg.capabilities)
        res = rerun_workload(wl, _engine_set(engines, walredo_cmd, tag_layout, walredo_docker, mutant, pg=pg),
                             cluster=cluster, interrupts=stop_requests())
    except (BundleError, KeyError) as e:
        fail_setup(str(e))
    except SetupError as e:
        fail_setup(str(e))
    r = res.report
    if res.interrupted:
        err.print("[yellow]interrupted[/]: the workload's rerun was stopped; clusters are shut down")
        sys.exit(EXIT_INTERRUPTED)
    if res.infrastructure_error:
        fail_setup(f"infrastructure error: {res.infrastructure_error}")
    assert r is not None
    unknown = r.unknown_divergences  # known PostgreSQL issues pass, as in fuzz, merge and gate
    known = len(r.divergences) - len(unknown)
    out.print(f"workload seed {wl.seed} [{wl.settings.label()}]: {r.pages_checked} pages verified, "
              f"{len(unknown)} divergence(s)" + (f" (+ {known} pages of known PostgreSQL issues)" if known else ""))
    for d in unknown[:10]:
        out.print(f"  {d.kind} {d.tag} {d.record_type}")
        for line in d.diff[:10]:
            out.print(f"      {line}")
    sys.exit(EXIT_DIVERGENCE if unknown else EXIT_OK)


def _bundle_pg(pg_version: object) -> Any:
    """The installation of the major a bundle was made with (None: the default one's major,
    or a bundle that does not say)."""
    import re

    from oracles.pgbin import default_install, installed

    m = re.search(r"PostgreSQL\)? (\d+)", str(pg_version or ""))
    if m is None or int(m.group(1)) == default_install().major:
        return None
    return installed(int(m.group(1)))


# -- minimize -----------------------------------------------------------------------
@click.command()
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where to write the minimized bundle (default: next to BUNDLE).")
@click.option("--max-trials", default=120, show_default=True, help="Workload runs to spend at most.")
@engine_option
@walredo_cmd_option
@tag_layout_option
@mutant_option
@pg_options
@hidden_cluster_option
def minimize(bundle: Path, out_dir: Path | None, max_trials: int, engines: tuple[str, ...], walredo_cmd: str | None,
             tag_layout: str, mutant: str | None, pg_major: str | None, pg_bindir: Path | None,
             cluster: str | None = None) -> None:
    """Shrink a divergence to the fewest workload steps that still diverge the same way
    (same kind, record type and page owner), and write a new bundle. The workload reruns
    on the PostgreSQL major the bundle was made with, unless --pg/--pg-bindir say otherwise."""
    from harness.campaign.bundle import BundleError, read_bundle
    from harness.campaign.minimize import minimize_bundle

    try:
        b = read_bundle(bundle)
        names = engines or tuple(n for n in b.meta.get("engines", ["pyredo"]) if n in ("pyredo", "walredo", "neon"))
        pg = pg_install(pg_major, pg_bindir) if (pg_major or pg_bindir) else _bundle_pg(b.meta.get("pg_version"))
        es = _engine_set(names, walredo_cmd, tag_layout, mutant=mutant, pg=pg)
        res = minimize_bundle(b, es, out_dir=out_dir or bundle.parent, max_trials=max_trials,
                              log=lambda s: err.print(f"[dim]{s}[/]"), cluster=cluster, interrupts=stop_requests())
    except Interrupted:
        err.print("[yellow]interrupted[/]: minimization stopped, no bundle written")
        sys.exit(EXIT_INTERRUPTED)
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


@click.command()
@click.option("--corpus", type=click.Path(file_okay=False, path_type=Path), default=Path("corpus"), show_default=True,
              help="Saved cases: bundles/* and seeds/*.json.")
@click.option("--budget", type=float, default=60, show_default=True, metavar="SECONDS",
              help="Fuzz this long after the saved cases pass (0: saved cases only).")
@click.option("--seed", type=int, default=0, show_default=True)
@engine_option
@walredo_cmd_option
@tag_layout_option
@mutant_option
@pg_options
@hidden_cluster_option
def gate(corpus: Path, budget: float, seed: int, engines: tuple[str, ...], walredo_cmd: str | None, tag_layout: str,
         mutant: str | None, pg_major: str | None, pg_bindir: Path | None, cluster: str | None = None) -> None:
    """Regression gate for a redo change: every saved bundle and seed in the corpus
    must now agree, then a fuzz campaign must find nothing. Exit 1 naming each failure.

    With --pg-bindir (your PostgreSQL build: its redo code is the subject) and no
    --engine, both engines run: that build's wal-redo server against pyredo."""
    from harness.campaign.gate import run_gate

    if pg_bindir is not None and not engines:
        engines = ("pyredo", "walredo")
    try:
        engine_set = _engine_set(engines, walredo_cmd, tag_layout, mutant=mutant, pg=pg_install(pg_major, pg_bindir))
        res = run_gate(corpus, engine_set, budget=budget,
                       seed=seed, progress=lambda s: err.print(s), cluster=cluster, interrupts=stop_requests())
    except (KeyError, SetupError) as e:
        fail_setup(str(e))
    if res.interrupted:
        out.print(f"[yellow]gate interrupted[/]: {len(res.cases)} saved cases run, "
                  f"{len(res.failures)} failure(s) so far")
        for f in res.failures:
            out.print(f"  {f}")
        sys.exit(EXIT_INTERRUPTED)
    if res.passed:
        out.print(f"[green]gate passed[/]: {len(res.cases)} saved cases agree"
                  + (f", {res.fuzz.iterations} fuzz iterations clean" if res.fuzz else ""))
        sys.exit(EXIT_OK)
    out.print(f"[bold red]gate failed[/]: {len(res.failures)} failure(s)")
    for f in res.failures:
        out.print(f"  {f}")
    sys.exit(EXIT_DIVERGENCE)


# -- selftest -----------------------------------------------------------------------
