"""Read relation blocks from a PostgreSQL data directory, or from a snapshot of one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from pyredo import BLCKSZ
from pyredo.wal.record import FORK_NAMES, BufferTag

if TYPE_CHECKING:
    from oracles.pgbin import PgInstall

GLOBALTABLESPACE_OID = 1664
DEFAULTTABLESPACE_OID = 1663
RELSEG_SIZE = (1 << 30) // BLCKSZ  # blocks per 1 GB segment file


def database_dir(pgdata: Path, spc: int, db: int) -> Path:
    """The directory of database ``db`` in tablespace ``spc`` (GetDatabasePath)."""
    if spc == GLOBALTABLESPACE_OID:
        return pgdata / "global"
    if spc == DEFAULTTABLESPACE_OID:
        return pgdata / "base" / str(db)
    spcdir = pgdata / "pg_tblspc" / str(spc)
    versions = sorted(spcdir.glob("PG_*")) if spcdir.exists() else []
    return (versions[0] if versions else spcdir / "PG_15") / str(db)


def segment_file(tag: BufferTag) -> tuple[str, int]:
    """The name of the segment file holding ``tag`` in its database's directory, and the
    byte offset in it (relpath()'s file name + segment arithmetic)."""
    name = str(tag.rel) if tag.fork == 0 else f"{tag.rel}_{FORK_NAMES[tag.fork]}"
    segno, blk_in_seg = divmod(tag.blk, RELSEG_SIZE)
    if segno:
        name += f".{segno}"
    return name, blk_in_seg * BLCKSZ


class DataDirPages:
    """Blocks as they are in a data directory (or a copy of one). Call after a CHECKPOINT."""

    def __init__(self, pgdata: str | os.PathLike[str]) -> None:
        self.pgdata = Path(pgdata)
        self._dirs: dict[tuple[int, int], Path] = {}  # (spc, db) -> database_dir, made once

    def __call__(self, tag: BufferTag) -> bytes | None:
        # the witness reads a page per verified page: one pread, no file object
        key = (tag.spc, tag.db)
        parent = self._dirs.get(key)
        if parent is None:
            parent = self._dirs[key] = database_dir(self.pgdata, tag.spc, tag.db)
        name, off = segment_file(tag)
        path = parent / name
        try:
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            data = os.pread(fd, BLCKSZ, off)
        finally:
            os.close(fd)
        return data if len(data) == BLCKSZ else None

    def __repr__(self) -> str:
        return f"DataDirPages({str(self.pgdata)!r})"


def snapshot_relation_files(pgdata: str | os.PathLike[str], dest: str | os.PathLike[str]) -> DataDirPages:
    """Copy the relation files (base/, global/, tablespaces) of a checkpointed data
    directory: the base pages for no-FPI runs, where redo routines — not page
    images — must carry the reconstruction."""
    src, dst = Path(pgdata), Path(dest)
    dst.mkdir(parents=True, exist_ok=True)
    for sub in ("base", "global"):
        if (src / sub).exists():
            shutil.copytree(src / sub, dst / sub, dirs_exist_ok=True)
    tblspc = src / "pg_tblspc"
    if tblspc.exists():
        for link in tblspc.iterdir():
            shutil.copytree(link.resolve(), dst / "pg_tblspc" / link.name, dirs_exist_ok=True)
    return DataDirPages(dst)


def hint_bits_logged(pgdata: str | os.PathLike[str], pg: PgInstall | None = None) -> bool:
    """XLogHintBitIsNeeded() of a cluster: data checksums or wal_log_hints, per pg_controldata
    (of ``pg``, the cluster's major; None: the default installation's)."""
    import subprocess

    from oracles.pgbin import program

    res = subprocess.run([pg.program("pg_controldata") if pg is not None else program("pg_controldata"), str(pgdata)], capture_output=True, text=True, check=False,
                         env={**os.environ, "LC_ALL": "C"})
    checksums = logged = False
    for line in res.stdout.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Data page checksum version":
            checksums = value.strip() not in ("0", "")
        elif key.strip() == "wal_log_hints setting":
            logged = value.strip() == "on"
    return checksums or logged
