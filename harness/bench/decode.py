"""Benchmarks: figures as ratios against a reference measured in the same run."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oracles.pgbin import program
from pyredo.wal.lsn import format_lsn
from pyredo.wal.reader import WalReader


@dataclass
class Rate:
    seconds: float
    records: int
    bytes: int

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds else float("inf")

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.seconds / 1e6 if self.seconds else float("inf")

    def to_json(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 4), "records": self.records, "bytes": self.bytes,
                "records_per_s": round(self.records_per_s), "mb_per_s": round(self.mb_per_s, 2)}


def _best(runs: list[Rate]) -> Rate:
    return min(runs, key=lambda r: r.seconds)


def time_pyredo_decode(waldir: Path, start: int, end: int) -> Rate:
    """Read, CRC-check and fully decode every record in [start, end)."""
    t0 = time.perf_counter()
    n = 0
    reader = WalReader(waldir, start, end)
    for _rec in reader:
        n += 1
    return Rate(time.perf_counter() - t0, n, end - start)


def time_pg_waldump(waldir: Path, start: int, end: int, *, quiet: bool, waldump: str | None = None) -> Rate:
    """pg_waldump over the same range: --quiet (read + decode only) or printing to /dev/null.
    ``waldump``: the pg_waldump of the WAL's major (default: the system's)."""
    waldump = waldump or program("pg_waldump")
    argv = [waldump, "-p", str(waldir), "-s", format_lsn(start), "-e", format_lsn(end)]
    if quiet:
        argv.append("--quiet")
    with open(os.devnull, "w") as devnull:
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=devnull, stderr=subprocess.PIPE, check=False)
        secs = time.perf_counter() - t0
    count = subprocess.run(
        [waldump, "-p", str(waldir), "-s", format_lsn(start), "-e", format_lsn(end), "--stats"],
        capture_output=True, text=True, check=False,
    ).stdout
    n = 0
    for line in count.splitlines():
        if line.startswith("Total"):
            n = int(line.split()[1])
    return Rate(secs, n, end - start)


def bench_decode(waldir: Path, start: int, end: int, runs: int = 3, waldump: str | None = None) -> dict[str, Any]:
    py = _best([time_pyredo_decode(waldir, start, end) for _ in range(runs)])
    quiet = _best([time_pg_waldump(waldir, start, end, quiet=True, waldump=waldump) for _ in range(runs)])
    printing = _best([time_pg_waldump(waldir, start, end, quiet=False, waldump=waldump) for _ in range(runs)])
    return {
        "wal_bytes": end - start,
        "start": format_lsn(start),
        "end": format_lsn(end),
        "pyredo": py.to_json(),
        "pg_waldump_quiet": quiet.to_json(),
        "pg_waldump_print": printing.to_json(),
        "ratio_vs_quiet": round(py.records_per_s / quiet.records_per_s, 3) if quiet.records else None,
        "ratio_vs_print": round(py.records_per_s / printing.records_per_s, 3) if printing.records else None,
        "records_match": py.records == quiet.records,
    }
