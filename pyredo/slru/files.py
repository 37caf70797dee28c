"""SLRU segment files on disk: pg_xact/0000, 0001, ... (slru.c's file layout).

A segment holds SLRU_PAGES_PER_SEGMENT (32) pages of BLCKSZ bytes; its name is
the segment number in upper-case hex, at least four digits (SlruFileName).
A file can be shorter than 32 pages: PostgreSQL writes the pages it has used
(SlruPhysicalWritePage), so page ``n`` of a segment exists when the file is
at least ``(n + 1) * BLCKSZ`` bytes long.

This is the I/O half of ``pyredo.slru``; the engine in ``pyredo.slru.clog``
never touches a file.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from pyredo import BLCKSZ
from pyredo.errors import PyredoError
from pyredo.slru.clog import SLRU_PAGES_PER_SEGMENT

PathLike = str | os.PathLike[str]

# SlruScanDirectory: 4 to 6 upper-case hex digits
_SEGMENT_NAME = re.compile(r"^[0-9A-F]{4,6}$")


class SlruFileError(PyredoError):
    """An SLRU directory or segment file that cannot be read as pages."""

    def __init__(self, message: str, path: PathLike) -> None:
        self.path = Path(path)
        super().__init__(f"{message} ({self.path})")


def SlruFileName(segno: int) -> str:
    """SlruFileName (slru.c): ``%04X`` of the segment number."""
    return f"{segno:04X}"


def pg_xact_dir(pgdata: PathLike) -> Path:
    return Path(pgdata) / "pg_xact"


def slru_dir(path: PathLike) -> Path:
    """A directory of segment files: ``path`` itself, or ``path/pg_xact`` when
    ``path`` is a data directory."""
    p = Path(path)
    return pg_xact_dir(p) if (p / "pg_xact").is_dir() else p


def segment_files(directory: PathLike) -> dict[int, Path]:
    """segno -> file, for every segment file in the directory (other names
    are ignored, as SlruScanDirectory does)."""
    d = Path(directory)
    if not d.is_dir():
        raise SlruFileError("not an SLRU directory", d)
    return {int(f.name, 16): f for f in sorted(d.iterdir()) if _SEGMENT_NAME.match(f.name) and f.is_file()}


def read_segment(path: PathLike, segno: int) -> dict[int, bytes]:
    """The pages of one segment file, by page number."""
    data = Path(path).read_bytes()
    if len(data) % BLCKSZ:
        raise SlruFileError(f"segment file is {len(data)} bytes, not a whole number of {BLCKSZ}-byte pages", path)
    if len(data) > SLRU_PAGES_PER_SEGMENT * BLCKSZ:
        raise SlruFileError(f"segment file holds {len(data) // BLCKSZ} pages, more than "
                            f"{SLRU_PAGES_PER_SEGMENT}", path)
    first = segno * SLRU_PAGES_PER_SEGMENT
    return {first + i: data[i * BLCKSZ : (i + 1) * BLCKSZ] for i in range(len(data) // BLCKSZ)}


def read_slru_pages(directory: PathLike) -> dict[int, bytes]:
    """Every page of every segment file of an SLRU directory (or of a data
    directory's pg_xact): ``{pageno: 8192 bytes}``."""
    pages: dict[int, bytes] = {}
    for segno, f in segment_files(slru_dir(directory)).items():
        pages.update(read_segment(f, segno))
    return pages


def write_slru_pages(pages: Mapping[int, bytes], directory: PathLike) -> list[Path]:
    """Write pages as segment files. A page missing inside a segment, before
    one that exists, is written as zeroes (a hole, as a later write leaves it
    on disk). Returns the files written."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    by_seg: dict[int, dict[int, bytes]] = {}
    for pageno, data in pages.items():
        if len(data) != BLCKSZ:
            raise SlruFileError(f"page {pageno} has {len(data)} bytes, not {BLCKSZ}", d)
        by_seg.setdefault(pageno // SLRU_PAGES_PER_SEGMENT, {})[pageno % SLRU_PAGES_PER_SEGMENT] = data
    written = []
    for segno, seg_pages in sorted(by_seg.items()):
        n = max(seg_pages) + 1
        blob = b"".join(seg_pages.get(i, bytes(BLCKSZ)) for i in range(n))
        path = d / SlruFileName(segno)
        path.write_bytes(blob)
        written.append(path)
    return written


def snapshot_pg_xact(pgdata: PathLike, dest: PathLike) -> Path:
    """Copy the segment files of ``pgdata/pg_xact`` into ``dest``: the base
    pages of a range. Take it right after the CHECKPOINT that starts the range
    (CheckPointCLOG has written every dirty clog page then)."""
    src = pg_xact_dir(pgdata)
    dst = Path(dest)
    dst.mkdir(parents=True, exist_ok=True)
    for f in segment_files(src).values():
        shutil.copyfile(f, dst / f.name)
    return dst


def load_base_pages(source: PathLike | Mapping[int, bytes] | None) -> dict[int, bytes]:
    """Base pages from a mapping (copied), a directory of segment files, a
    data directory, or nothing (no pages: only ZEROPAGE records make some)."""
    if source is None:
        return {}
    if isinstance(source, Mapping):
        return dict(source)
    return read_slru_pages(source)
