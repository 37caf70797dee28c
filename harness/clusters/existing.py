"""Verify the WAL of an existing cluster reached by DSN.

The WAL comes either through a physical replication slot, streamed by
PostgreSQL's own ``pg_receivewal`` into a local directory (the slot, created
before the workload with ``redodiff slot create``, keeps every segment of the
range from being recycled), or by ``pg_read_binary_file`` on ``pg_wal/`` where
the role may. The primary's pages come from ``pg_read_binary_file`` on the
relation files, after a CHECKPOINT. Reading files inside the data directory
needs EXECUTE on that function (pg_read_server_files is only needed for files
outside it); CHECKPOINT needs pg_checkpoint. Missing rights give an error naming the
grant that would fix it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from oracles.pgbin import SetupError, program
from pyredo import BLCKSZ
from pyredo.wal.lsn import format_lsn, parse_lsn, segment_file_name
from pyredo.wal.record import FORK_NAMES, BufferTag

GLOBAL_SPC, DEFAULT_SPC = 1664, 1663
RELSEG_BLOCKS = (1 << 30) // BLCKSZ


class PrivilegeError(SetupError):
    """The role lacks a right redodiff needs; the message names the grant."""


READ_FN = "pg_read_binary_file(text, bigint, bigint, boolean)"
GRANT_READ = f"GRANT EXECUTE ON FUNCTION {READ_FN} TO {{role}}"


@dataclass
class Privileges:
    role: str
    superuser: bool
    replication: bool
    read_binary_file: bool  # EXECUTE on pg_read_binary_file: files inside the data directory
    checkpoint: bool

    @property
    def can_read_files(self) -> bool:
        return self.superuser or self.read_binary_file

    @property
    def can_checkpoint(self) -> bool:
        return self.superuser or self.checkpoint


class ExistingCluster:
    """A running cluster we do not own: read-only use through SQL and replication."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        try:
            self.conn = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as e:
            raise SetupError(f"cannot connect to {dsn!r}: {e}") from e
        self.wal_segsize = int(self.scalar("SELECT setting::int FROM pg_settings WHERE name = 'wal_segment_size'"))
        self.catversion = int(self.scalar("SELECT catalog_version_no FROM pg_control_system()"))
        self.privileges = self._privileges()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()

    def __enter__(self) -> ExistingCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def scalar(self, sql: str, params: Any = None) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return row[0] if row else None

    def _privileges(self) -> Privileges:
        row = self.conn.execute(
            "SELECT current_user, rolsuper, rolreplication, "
            f"has_function_privilege('{READ_FN}', 'EXECUTE'), "
            "pg_has_role(current_user, 'pg_checkpoint', 'USAGE') "
            "FROM pg_roles WHERE rolname = current_user").fetchone()
        assert row is not None
        return Privileges(*row)

    # -- rights -------------------------------------------------------------------------
    def require_wal_access(self, slot: str | None) -> str:
        """Which WAL source this role can use: "slot" or "read_file"; else a PrivilegeError."""
        p = self.privileges
        if slot is not None:
            if not (p.replication or p.superuser):
                raise PrivilegeError(
                    f"role {p.role} cannot stream WAL through slot {slot!r}: it needs the REPLICATION "
                    f"attribute (ALTER ROLE {p.role} REPLICATION)")
            return "slot"
        if p.can_read_files:
            return "read_file"
        raise PrivilegeError(
            f"role {p.role} can read no WAL: create a slot before the workload and stream through it "
            f"(needs ALTER ROLE {p.role} REPLICATION; then `redodiff slot create`), or let it read pg_wal/: "
            + GRANT_READ.format(role=p.role))

    def require_pages(self) -> None:
        p = self.privileges
        if not p.can_read_files:
            raise PrivilegeError(
                f"role {p.role} cannot read relation pages with pg_read_binary_file: "
                + GRANT_READ.format(role=p.role))
        if not p.can_checkpoint:
            raise PrivilegeError(
                f"role {p.role} cannot run CHECKPOINT (needed so the pages on disk are current): "
                f"GRANT pg_checkpoint TO {p.role}")

    # -- positions ------------------------------------------------------------------------
    def checkpoint(self) -> None:
        self.conn.execute("CHECKPOINT")

    def current_lsn(self) -> int:
        return parse_lsn(self.scalar("SELECT pg_current_wal_insert_lsn()::text"))

    def flush_lsn(self) -> int:
        return parse_lsn(self.scalar("SELECT pg_current_wal_flush_lsn()::text"))

    def timeline(self) -> int:
        return int(self.scalar("SELECT timeline_id FROM pg_control_checkpoint()"))

    # -- slots ------------------------------------------------------------------------------
    def create_slot(self, name: str) -> int:
        """A physical slot reserving WAL from now on; returns its restart LSN (the range start)."""
        row = self.conn.execute(
            "SELECT lsn::text FROM pg_create_physical_replication_slot(%s, true, false)", (name,)).fetchone()
        assert row is not None
        return parse_lsn(row[0])

    def slot_restart_lsn(self, name: str) -> int | None:
        v = self.scalar("SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = %s", (name,))
        return parse_lsn(v) if v else None

    def drop_slot(self, name: str) -> None:
        self.conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))

    # -- WAL --------------------------------------------------------------------------------
    def stream_wal(self, slot: str, end: int, dest: Path, timeout: float = 600) -> Path:
        """pg_receivewal from the slot's restart LSN up to ``end`` into ``dest`` (empty)."""
        dest.mkdir(parents=True, exist_ok=True)
        argv = [program("pg_receivewal"), "-d", self.dsn, "-S", slot, "-D", str(dest),
                "--endpos", format_lsn(end), "--no-loop", "--no-sync"]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if res.returncode != 0:
            raise SetupError(f"pg_receivewal failed (exit {res.returncode}): {' '.join(argv)}\n{res.stderr[-2000:]}")
        for p in dest.glob("*.partial"):  # the last segment, cut at --endpos
            p.rename(p.with_suffix(""))
        return dest

    def read_wal_files(self, start: int, end: int, dest: Path) -> Path:
        """Copy the segments covering [start, end) with pg_read_binary_file."""
        dest.mkdir(parents=True, exist_ok=True)
        tli = self.timeline()
        for segno in range(start // self.wal_segsize, (end - 1) // self.wal_segsize + 1):
            name = segment_file_name(tli, segno, self.wal_segsize)
            data = self.scalar("SELECT pg_read_binary_file(%s, 0, %s, true)", (f"pg_wal/{name}", self.wal_segsize))
            if data is None:
                raise SetupError(f"WAL segment {name} is no longer in pg_wal (recycled?): create a slot with "
                                 f"`redodiff slot create` before the workload so the range is kept")
            (dest / name).write_bytes(bytes(data))
        return dest

    # -- pages ------------------------------------------------------------------------------
    def relation_path(self, tag: BufferTag) -> tuple[str, int]:
        if tag.spc == GLOBAL_SPC:
            base = "global"
        elif tag.spc == DEFAULT_SPC:
            base = f"base/{tag.db}"
        else:
            base = f"pg_tblspc/{tag.spc}/PG_15_{self.catversion}/{tag.db}"
        name = str(tag.rel) if tag.fork == 0 else f"{tag.rel}_{FORK_NAMES[tag.fork]}"
        segno, blk = divmod(tag.blk, RELSEG_BLOCKS)
        return f"{base}/{name}" + (f".{segno}" if segno else ""), blk * BLCKSZ

    def read_block(self, tag: BufferTag) -> bytes | None:
        path, off = self.relation_path(tag)
        data = self.scalar("SELECT pg_read_binary_file(%s, %s, %s, true)", (path, off, BLCKSZ))
        if data is None or len(data) != BLCKSZ:
            return None
        return bytes(data)


def fetch_range(cluster: ExistingCluster, *, start: int | None, end: int | None, slot: str | None,
                workdir: Path) -> tuple[Path, int, int]:
    """Get the WAL of [start, end) into ``workdir``; returns (waldir, start, end).
    CHECKPOINTs first so that the pages on disk are current for the witness."""
    source = cluster.require_wal_access(slot)
    cluster.require_pages()
    if end is None:
        end = cluster.current_lsn()
    cluster.checkpoint()
    waldir = workdir / "wal"
    if source == "slot":
        assert slot is not None
        restart = cluster.slot_restart_lsn(slot)
        if restart is None:
            raise SetupError(f"no replication slot {slot!r} (create it before the workload: redodiff slot create)")
        if start is None:
            start = restart
        if start < restart:
            raise SetupError(f"slot {slot} keeps WAL from {format_lsn(restart)} only; --start {format_lsn(start)} "
                             "is older")
        cluster.stream_wal(slot, cluster.flush_lsn(), waldir)
    else:
        if start is None:
            raise SetupError("--start is required without --slot")
        cluster.read_wal_files(start, end, waldir)
    return waldir, start, end


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="redodiff-dsn-"))


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


__all__ = ["ExistingCluster", "PrivilegeError", "fetch_range", "os"]
