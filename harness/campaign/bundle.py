"""Divergence bundles: everything needed to replay one divergence with one command.

A bundle is a directory, written atomically (a temporary directory renamed into
place), so a crash or a full disk never leaves half a bundle and never touches
bundles already written:

    bundle.json       what diverged, where, with which engines; seed, settings,
                      PostgreSQL version, WAL range, first diverging record,
                      the replay command
    workload.json     the workload that produced it
    records.bin       the records that touch the page (framed raw XLogRecords)
    base.page         the base page, when the rebuild needed one
    pages/NAME.page   every engine's page, and primary.page
    diff.txt          the page diff in PostgreSQL's terms
    wal/              the WAL segment files of the range (when small enough)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generators.workload import Workload
from harness.reports.schema import DivergenceKind
from harness.selftest.faults import NO_FAULTS, IterationFaults
from harness.verify.check import Divergence
from pyredo.wal.decoder import decode_record
from pyredo.wal.lsn import format_lsn, parse_lsn
from pyredo.wal.record import BufferTag, DecodedXLogRecord

_FRAME = struct.Struct("<QQI")
MAX_WAL_COPY = 64 << 20  # don't copy more WAL than this into a bundle


def encode_records(records: Iterable[DecodedXLogRecord]) -> bytes:
    return b"".join(_FRAME.pack(r.lsn, r.end_lsn, len(r.raw)) + r.raw for r in records)


def decode_records(blob: bytes) -> list[DecodedXLogRecord]:
    out = []
    pos = 0
    while pos < len(blob):
        lsn, end, n = _FRAME.unpack_from(blob, pos)
        pos += _FRAME.size
        out.append(decode_record(blob[pos : pos + n], lsn, end))
        pos += n
    return out


def bundle_id(div: Divergence, seed: int | None) -> str:
    kind = DivergenceKind(div.kind).bundle_prefix
    rtype = re.sub(r"[^A-Za-z0-9]+", "_", div.record_type).strip("_")
    h = hashlib.sha1(f"{div.tag}{[r.lsn for r in div.records]}{time.time_ns()}".encode()).hexdigest()[:8]
    return f"{kind}-{rtype}-{div.tag.rel}-{div.tag.fork}-{div.tag.blk}-s{seed if seed is not None else 'x'}-{h}"


def replay_command(path: Path) -> str:
    return f"redodiff replay {path}"


def write_bundle(
    dest_dir: Path,
    div: Divergence,
    *,
    workload: Workload | None,
    seed: int | None,
    settings_label: str | None,
    pg_version: str | None,
    wal_range: tuple[int, int] | None,
    waldir: Path | None = None,
    seg_size: int | None = None,
    extra: dict[str, Any] | None = None,
    faults: IterationFaults = NO_FAULTS,
) -> Path:
    """Write a bundle under ``dest_dir`` atomically; returns its final path."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    bid = bundle_id(div, seed)
    final = dest_dir / bid
    tmp = dest_dir / f".tmp-{bid}-{os.getpid()}"
    try:
        tmp.mkdir()
        faults.before_bundle_write(tmp)  # a no-op unless a fault is planned
        (tmp / "pages").mkdir()
        if workload is not None:
            (tmp / "workload.json").write_text(workload.dumps() + "\n")
        (tmp / "records.bin").write_bytes(encode_records(div.records))
        if div.base_page is not None:
            (tmp / "base.page").write_bytes(div.base_page)
        for name, page in div.pages.items():
            (tmp / "pages" / f"{name}.page").write_bytes(page)
        (tmp / "diff.txt").write_text(render_diff(div) + "\n")
        if waldir is not None and wal_range is not None and seg_size:
            _copy_wal(waldir, tmp / "wal", wal_range, seg_size)
        meta = {
            "id": bid,
            **div.to_json(),
            "seed": seed,
            "settings": settings_label,
            "pg_version": pg_version,
            "wal_range": [format_lsn(wal_range[0]), format_lsn(wal_range[1])] if wal_range else None,
            "replay": replay_command(final),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **(extra or {}),
        }
        (tmp / "bundle.json").write_text(json.dumps(meta, indent=2) + "\n")
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _copy_wal(waldir: Path, dest: Path, wal_range: tuple[int, int], seg_size: int) -> None:
    first, last = wal_range[0] // seg_size, (wal_range[1] - 1) // seg_size
    if (last - first + 1) * seg_size > MAX_WAL_COPY:
        return
    dest.mkdir()
    for segno in range(first, last + 1):
        for p in waldir.glob(f"*{segno // (0x100000000 // seg_size):08X}{segno % (0x100000000 // seg_size):08X}"):
            if len(p.name) == 24:
                shutil.copy2(p, dest / p.name)


def render_diff(div: Divergence) -> str:
    lines = [f"verdict: {div.verdict}"] if div.verdict else []
    if div.known:
        lines.append(f"known PostgreSQL issue: {div.known} (oracles/known_issues.toml)")
    lines += [
        f"{div.kind}: {div.tag}",
        f"engines: {', '.join(div.engines)}   page owner: {div.owner}",
        f"record type: {div.record_type}   first diverging record: "
        f"{format_lsn(div.first_diverging_lsn) if div.first_diverging_lsn is not None else 'unknown'}",
    ]
    if div.error:
        lines.append(f"error: {div.error}")
    lines.append("records touching the page:")
    from pyredo.rmgrlist import PG15

    for r in div.records:
        mark = "  <-- first divergence" if r.lsn == div.first_diverging_lsn else ""
        lines.append(f"  {format_lsn(r.lsn):>14}  {PG15.record_type(r)}{mark}")
    lines.append("differences:")
    lines.extend(f"  {d}" for d in div.diff)
    return "\n".join(lines)


@dataclass
class Bundle:
    """A bundle read back from disk."""

    path: Path
    meta: dict[str, Any]
    records: list[DecodedXLogRecord]
    base_page: bytes | None
    pages: dict[str, bytes]
    workload: Workload | None

    @property
    def tag(self) -> BufferTag:
        return BufferTag(*self.meta["tag_fields"])

    @property
    def first_diverging_lsn(self) -> int | None:
        v = self.meta.get("first_diverging_lsn")
        return parse_lsn(v) if v else None


class BundleError(ValueError):
    """Not a readable bundle directory."""


def read_bundle(path: Path) -> Bundle:
    path = Path(path)
    try:
        meta = json.loads((path / "bundle.json").read_text())
        records = decode_records((path / "records.bin").read_bytes())
    except (OSError, ValueError) as e:
        raise BundleError(f"{path} is not a readable redodiff bundle: {e}") from e
    base = (path / "base.page").read_bytes() if (path / "base.page").exists() else None
    pages = {p.stem: p.read_bytes() for p in sorted((path / "pages").glob("*.page"))}
    wl = path / "workload.json"
    workload = Workload.loads(wl.read_text()) if wl.exists() else None
    return Bundle(path, meta, records, base, pages, workload)


def is_bundle(path: Path) -> bool:
    return (path / "bundle.json").is_file() and (path / "records.bin").is_file()
