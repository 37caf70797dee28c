"""Neon's own ``postgres --wal-redo`` as a redo engine (``--engine neon``).

Neon's process is a second configuration of the stock server's client
(``oracles.walredo.WalRedoProcess``), started the way Neon's pageserver starts
it (pageserver/src/walredo/process.rs, ``WalRedoProcess::launch``):

* argv ``BIN/postgres --wal-redo --tenant-shard-id 0`` (the shard id is only
  for ``ps``); no data directory, no configuration: the binary loads
  ``neon_walredo`` from its own ``../lib/postgresql``;
* the environment cleared except ``LD_LIBRARY_PATH`` (``env_clear()``);
* seccomp left on (the binary's default);
* as root, ``runuser -u postgres --`` first (PostgreSQL refuses to run as root);
* every stderr line without ``LOG:`` is an error (the pageserver logs it so);
* pinged after every spawn, then the tag-layout check (``oracles.walredo_probe``);
  respawned after a failure like the stock server.

``NeonConfig.major()`` is the major the binary replays (``postgres --version``):
Neon's v14/v15 forks write another heap WAL format (``t_cid``), so only
PostgreSQL 16+ WAL of the same major is fed to it (``harness.verify.engines``).

Neon's deliberate differences from stock redo are ``oracles.neon_profile``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oracles.neon_profile import NEON_PROFILE
from oracles.pgbin import server_user
from oracles.walredo import WalRedoProcess
from oracles.walredo_probe import version_major

__all__ = ["DEFAULT_NEON_POSTGRES", "NEON_POSTGRES_ENV", "NeonConfig", "NeonWalRedo", "neon_walredo"]

# the prebuilt reference binary next to the repository (../shared/neon-walredo/README.md)
DEFAULT_NEON_POSTGRES = Path(__file__).resolve().parents[2] / "shared/neon-walredo/pg17/bin/postgres"
NEON_POSTGRES_ENV = "REDODIFF_NEON_POSTGRES"  # read at the CLI boundary only (harness.cli.common)


def _which(program: str) -> str:
    found = shutil.which(program)
    if found is None:
        raise FileNotFoundError(f"{program} not found: running Neon's postgres as root needs it")
    return found


def _not_a_log_line(line: str) -> bool:
    """Neon's pageserver: a stderr line without ``LOG:`` is an error."""
    return "LOG:" not in line


@dataclass(frozen=True)
class NeonConfig:
    """Where Neon's ``postgres`` is and how to start it.

    ``postgres``: the binary (its ``../lib`` holds ``postgresql/neon_walredo.so``).
    ``user``: run as this user when we are root (default: the server user).
    ``seccomp``: leave Neon's seccomp filter on (``--disable-seccomp`` otherwise).
    """

    postgres: Path = DEFAULT_NEON_POSTGRES
    user: str | None = None
    seccomp: bool = True
    tenant_shard_id: str = "0"

    @classmethod
    def default(cls) -> NeonConfig | None:
        """The shared reference binary when it is there, else None."""
        return cls() if DEFAULT_NEON_POSTGRES.is_file() else None

    @property
    def libdir(self) -> Path:
        return self.postgres.resolve().parent.parent / "lib"

    def env(self) -> dict[str, str]:
        """The whole environment the process gets: the library path alone."""
        return {"LD_LIBRARY_PATH": str(self.libdir)}

    def argv(self) -> list[str]:
        argv = [str(self.postgres), "--wal-redo", "--tenant-shard-id", self.tenant_shard_id]
        if not self.seccomp:
            argv.append("--disable-seccomp")
        if os.geteuid() == 0:
            user = self.user or server_user() or "postgres"
            # env -i after runuser: runuser sets HOME, SHELL, USER and LOGNAME again
            # absolute paths: the cleared environment has no PATH to look them up
            argv = [_which("runuser"), "-u", user, "--", _which("env"), "-i", *(f"{k}={v}" for k, v in self.env().items()),
                    *argv]
        return argv

    def major(self) -> int:
        """The PostgreSQL major the binary replays (``postgres --version``)."""
        if not self.postgres.is_file():
            raise FileNotFoundError(f"Neon's postgres binary {self.postgres} does not exist "
                                    f"(--neon-postgres PATH, or ${NEON_POSTGRES_ENV})")
        return version_major(self.postgres, self.env())


class NeonWalRedo(WalRedoProcess):
    """The stock server's client, configured for Neon's binary; its pages are compared
    under ``NEON_PROFILE`` (Neon's deliberate differences, counted when they apply)."""

    name = "neon"
    profile = NEON_PROFILE


def neon_walredo(config: NeonConfig, **kwargs: Any) -> NeonWalRedo:
    """A client that runs Neon's binary as its pageserver does."""
    return NeonWalRedo(config.argv(), tag_layout="neon", ping=True, check_layout=True, env=config.env(),
                       major=config.major(), stderr_error=_not_a_log_line, **kwargs)
