"""Find PostgreSQL's programs and run them as a user PostgreSQL accepts.

PostgreSQL refuses to run as root; in CI and containers we often are root, so
server-side programs then run through ``runuser -u postgres --`` (override
the user with ``REDODIFF_PG_USER``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
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
