"""A throwaway local PostgreSQL cluster: initdb, pg_ctl start on a free port, stop, clean up."""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from harness.clusters.datadir import DataDirPages
from oracles.pgbin import (
    PgInstall,
    SetupError,
    as_server_user,
    default_install,
    give_to_server_user,
)
from pyredo.wal.lsn import format_lsn, parse_lsn
from pyredo.wal.record import BufferTag

__all__ = ["ClusterSettings", "LocalCluster", "SetupError", "free_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ClusterSettings:
    """How to initdb and configure a cluster. ``gucs`` go to postgresql.conf; ``pg`` is
    the PostgreSQL whose programs make and run it (None: the default installation)."""

    wal_segsize_mb: int = 16
    data_checksums: bool = False
    gucs: dict[str, Any] = field(default_factory=dict)
    pg: PgInstall | None = None

    def conf_lines(self) -> list[str]:
        lines = []
        for k, v in self.gucs.items():
            if isinstance(v, bool):
                v = "on" if v else "off"
            lines.append(f"{k} = '{v}'")
        return lines


# Settings every redodiff cluster gets: small, quiet, deterministic WAL.
BASE_GUCS: dict[str, Any] = {
    "listen_addresses": "127.0.0.1",
    "shared_buffers": "32MB",
    "max_wal_size": "1GB",
    "min_wal_size": "32MB",
    "fsync": False,  # a throwaway cluster; WAL contents are unaffected
    # on (and free without fsync): VACUUM only marks pages all-visible once the
    # inserting commits are flushed, and we want its VISIBLE records
    "synchronous_commit": True,
    "full_page_writes": True,
    "autovacuum": False,
    "wal_level": "replica",
    "max_wal_senders": 4,
    "max_replication_slots": 4,
    "wal_keep_size": "1GB",  # keep the WAL we are about to read
    "checkpoint_timeout": "1h",
    "logging_collector": False,
    "log_min_messages": "warning",
    "max_prepared_transactions": 10,
    "unix_socket_permissions": "0777",
}

_live: weakref.WeakSet[LocalCluster] = weakref.WeakSet()


def _remove_tree(path: Path, attempts: int = 5) -> None:
    """rmtree that retries while a server that just stopped still lets go of files."""
    for i in range(attempts):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return
        time.sleep(0.1 * (i + 1))


def stop_orphans(base_dir: Path, wait: float = 10.0) -> None:
    """Shut down, immediately, every server of a cluster under ``base_dir`` that its
    owner could not stop (a process killed before its cleanup ran), and remove the
    clusters. A postmaster counts only if it runs in that data directory."""
    for pidfile in base_dir.glob("redodiff-pg-*/data/postmaster.pid"):
        pid = _postmaster_in(pidfile.parent)
        if pid is None:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGQUIT)  # what pg_ctl -m immediate sends
        deadline = time.monotonic() + wait
        while _postmaster_in(pidfile.parent) == pid and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if _postmaster_in(pidfile.parent) == pid:
                os.kill(pid, signal.SIGKILL)
    for root in base_dir.glob("redodiff-pg-*"):
        _remove_tree(root)


def _postmaster_in(pgdata: Path) -> int | None:
    """The pid of the postmaster running in ``pgdata`` (postmaster.pid, checked against
    the process's working directory), None when there is none."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
        if Path(os.readlink(f"/proc/{pid}/cwd")) == pgdata.resolve():
            return pid
    except (OSError, ValueError, IndexError):
        pass
    return None


@atexit.register
def _cleanup_live() -> None:  # pragma: no cover - safety net for abnormal exits
    for c in list(_live):
        c.destroy()


class LocalCluster:
    """A PostgreSQL cluster in a temporary directory, ours alone.

    Use as a context manager::

        with LocalCluster(ClusterSettings(wal_segsize_mb=1)) as pg:
            with pg.connect() as conn: ...

    Leaving the block (also by Ctrl-C or an exception) stops the server and
    deletes the directory, unless ``keep=True``.
    """

    def __init__(
        self,
        settings: ClusterSettings | None = None,
        *,
        base_dir: str | os.PathLike[str] | None = None,
        keep: bool = False,
    ) -> None:
        self.settings = settings or ClusterSettings()
        self.keep = keep
        self.root = Path(tempfile.mkdtemp(prefix="redodiff-pg-", dir=base_dir))
        self.root.chmod(0o755)
        give_to_server_user(self.root)
        self.pgdata = self.root / "data"
        self.sockdir = self.root
        self.logfile = self.root / "server.log"
        self.port = 0
        self.running = False
        self._destroyed = False
        _live.add(self)

    @property
    def pg(self) -> PgInstall:
        """The PostgreSQL installation this cluster runs."""
        return self.settings.pg if self.settings.pg is not None else default_install()

    # -- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> LocalCluster:
        try:
            self.init()
            self.start()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def _run(self, argv: list[str], what: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        full = as_server_user(argv)
        with subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
            try:
                out, errs = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired as e:
                proc.kill()
                proc.communicate()
                raise SetupError(f"{what} timed out after {timeout}s: {shlex.join(full)}") from e
            except KeyboardInterrupt:
                # Ctrl-C: let initdb / pg_ctl finish (seconds) rather than kill it half-way,
                # which would leave a postmaster that destroy() does not know about
                try:
                    proc.communicate(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
                raise
        res = subprocess.CompletedProcess(full, proc.returncode, out, errs)
        if res.returncode != 0:
            raise SetupError(
                f"{what} failed (exit {res.returncode}): {shlex.join(full)}\n"
                f"{res.stdout[-2000:]}{res.stderr[-2000:]}{self.log_tail()}"
            )
        return res

    def init(self) -> None:
        """initdb with the chosen WAL segment size and checksums, then write the GUCs."""
        argv = [
            self.pg.program("initdb"), "-D", str(self.pgdata), "-U", "postgres", "-A", "trust",
            "--no-sync", "-E", "UTF8", "--locale=C",
            f"--wal-segsize={self.settings.wal_segsize_mb}",
        ]
        if self.settings.data_checksums:
            argv.append("--data-checksums")
        elif self.pg.major >= 18:
            argv.append("--no-data-checksums")  # initdb's default from 18 on
        self._run(argv, "initdb")
        gucs = {**BASE_GUCS, **self.settings.gucs}
        lines = ClusterSettings(gucs=gucs).conf_lines()
        with open(self.pgdata / "postgresql.conf", "a") as f:
            f.write("\n# redodiff\n" + "\n".join(lines) + "\n")

    def start(self, attempts: int = 3) -> None:
        """pg_ctl start on a free port; on failure the error shows the log tail and command."""
        last: SetupError | None = None
        for _ in range(attempts):
            self.port = free_port()
            argv = [
                self.pg.program("pg_ctl"), "-D", str(self.pgdata), "-l", str(self.logfile), "-w",
                "-t", "60", "-o", f"-p {self.port} -k {self.sockdir}", "start",
            ]
            try:
                self._run(argv, "pg_ctl start", timeout=90)
                self.running = True
                return
            except KeyboardInterrupt:
                self.running = True  # pg_ctl was let finish: a server may be up, destroy() stops it
                raise
            except SetupError as e:
                last = e
                if "could not bind" not in self.log_tail():
                    break
        assert last is not None
        raise last

    def stop(self, mode: str = "fast") -> None:
        if not self.running:
            return
        # running stays True when pg_ctl fails, so destroy() goes on to immediate / SIGKILL
        self._run([self.pg.program("pg_ctl"), "-D", str(self.pgdata), "-m", mode, "-w", "stop"], "pg_ctl stop")
        self.running = False

    def restart(self) -> None:
        self.stop()
        self.start()

    def destroy(self, mode: str = "fast") -> None:
        """Stop (in ``mode``, immediate if need be) and delete the directory (unless keep).
        Marked done only at the end: a destroy cut short (Ctrl-C) is finished by the next
        call (the atexit safety net)."""
        if self._destroyed:
            return
        if self.running:
            try:
                self.stop(mode)
            except SetupError:
                try:
                    self.stop("immediate")
                except SetupError:
                    self._kill_postmaster()
        if not self.keep:
            _remove_tree(self.root)
        self._destroyed = True
        _live.discard(self)

    def _kill_postmaster(self) -> None:
        pidfile = self.pgdata / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
            os.kill(pid, 9)
        except (OSError, ValueError, IndexError):
            pass
        self.running = False

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.logfile.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n--- server log tail ---\n" + "\n".join(text)

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    # -- connections -------------------------------------------------------------
    @property
    def dsn(self) -> str:
        return f"host={self.sockdir} port={self.port} user=postgres dbname=postgres"

    def conninfo(self, dbname: str = "postgres", user: str = "postgres") -> str:
        return f"host={self.sockdir} port={self.port} user={user} dbname={dbname}"

    def connect(self, dbname: str = "postgres", *, autocommit: bool = True, **kw: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(self.conninfo(dbname), autocommit=autocommit, **kw)

    @contextmanager
    def cursor(self, dbname: str = "postgres") -> Iterator[psycopg.Cursor[Any]]:
        with self.connect(dbname) as conn, conn.cursor() as cur:
            yield cur

    def execute(self, sql: str, params: Any = None, dbname: str = "postgres") -> list[tuple[Any, ...]]:
        with self.cursor(dbname) as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def scalar(self, sql: str, params: Any = None, dbname: str = "postgres") -> Any:
        rows = self.execute(sql, params, dbname)
        return rows[0][0] if rows else None

    # -- WAL helpers -------------------------------------------------------------
    @property
    def waldir(self) -> Path:
        return self.pgdata / "pg_wal"

    @property
    def wal_segsize(self) -> int:
        return self.settings.wal_segsize_mb * 1024 * 1024

    def checkpoint(self) -> int:
        """CHECKPOINT; returns the insert LSN right after it."""
        self.execute("CHECKPOINT")
        return self.current_lsn()

    def current_lsn(self) -> int:
        """pg_current_wal_insert_lsn(): the end of the WAL written so far."""
        return parse_lsn(self.scalar("SELECT pg_current_wal_insert_lsn()::text"))

    def flush_wal(self) -> int:
        """Make everything inserted so far durable in pg_wal (so a reader sees it)."""
        lsn = self.current_lsn()
        # a tiny transaction committing synchronously forces an XLogFlush past lsn
        with self.connect(autocommit=False) as conn:
            conn.execute("SET LOCAL synchronous_commit = on")
            conn.execute("SELECT txid_current()")
            conn.commit()
        return lsn

    def switch_wal(self) -> int:
        return parse_lsn(self.scalar("SELECT pg_switch_wal()::text"))

    def wal_file_name(self, lsn: int) -> str:
        return str(self.scalar("SELECT pg_walfile_name(%s::pg_lsn)", (format_lsn(lsn),)))

    def settings_snapshot(self, names: Mapping[str, Any] | list[str]) -> dict[str, str]:
        return {n: str(self.scalar(f"SHOW {n}")) for n in names}

    # -- relation files ----------------------------------------------------------
    def relation_path(self, relname: str, dbname: str = "postgres") -> Path:
        return self.pgdata / str(self.scalar("SELECT pg_relation_filepath(%s)", (relname,), dbname))

    def relfilenode(self, relname: str, dbname: str = "postgres") -> tuple[int, int, int]:
        """(spc, db, rel) of a relation, as block references name it."""
        row = self.execute(
            "SELECT CASE WHEN c.reltablespace = 0 THEN "
            "(SELECT dattablespace FROM pg_database WHERE datname = current_database()) "
            "ELSE c.reltablespace END, "
            "(SELECT oid FROM pg_database WHERE datname = current_database()), "
            "pg_relation_filenode(c.oid) FROM pg_class c WHERE c.oid = %s::regclass",
            (relname,), dbname,
        )[0]
        return int(row[0]), int(row[1]), int(row[2])

    def read_block(self, tag: BufferTag) -> bytes | None:
        """The block as it is in the data directory (after a CHECKPOINT), None if absent."""
        return DataDirPages(self.pgdata)(tag)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<LocalCluster {self.pgdata} port={self.port} {state}>"
