"""``redodiff bench check``: redodiff's check of a WAL range against PostgreSQL's own
crash recovery of the same range, from the same base copy, timed in the same run.

PostgreSQL's side: the base copy (a data directory whose pg_control points at a
checkpoint at ``--start``, as a copy taken after CHECKPOINT and an immediate stop
is) is copied again, the primary's pg_wal is put in it, and the postmaster is
started on it: crash recovery replays the range. Its own log line ("redo done at
... elapsed: N s") gives the replay time; the wall time to "ready to accept
connections" is reported as well.
"""

from __future__ import annotations

import re
import resource
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness.interrupts import Interrupts
from harness.verify.check import Checker, CheckReport
from harness.verify.parallel import check_range
from harness.verify.plan import decode_all
from oracles.pgbin import PgInstall, SetupError, as_server_user, give_to_server_user
from pyredo.wal.lsn import format_lsn
from pyredo.wal.reader import WalReader

_REDO_DONE = re.compile(r"redo done at \S+ system usage: CPU: user: ([0-9.]+) s, system: ([0-9.]+) s, "
                        r"elapsed: ([0-9.]+) s")
_READY = "database system is ready to accept connections"
RECOVERY_TIMEOUT = 600.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def time_pg_recovery(pgdata: Path, base: Path, pg: PgInstall) -> dict[str, Any]:
    """PostgreSQL's crash recovery of pgdata's WAL from a copy of ``base``: its own
    "elapsed" of the redo loop, and the wall time from start to ready."""
    work = Path(tempfile.mkdtemp(prefix="redodiff-bench-recovery-"))
    try:
        data = work / "data"
        shutil.copytree(base, data, symlinks=True, ignore=shutil.ignore_patterns("postmaster.pid", "pg_wal"))
        shutil.copytree(pgdata / "pg_wal", data / "pg_wal", symlinks=True)
        for p in [work, *work.rglob("*")]:
            give_to_server_user(p)
        data.chmod(0o700)
        log_path = work / "postgres.log"
        argv = as_server_user([str(pg.bindir / "postgres"), "-D", str(data), "-c", f"port={_free_port()}",
                               "-c", f"unix_socket_directories={work}", "-c", "listen_addresses=",
                               "-c", "logging_collector=off", "-c", "archive_mode=off"])
        with open(log_path, "wb") as log:
            t0 = time.perf_counter()
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                text = _wait_ready(proc, log_path)
                wall = time.perf_counter() - t0
            finally:
                proc.send_signal(2)  # SIGINT: fast shutdown
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        m = _REDO_DONE.search(text)
        return {"redo_elapsed_s": float(m.group(3)) if m else None, "wall_to_ready_s": round(wall, 3),
                "redo_cpu_s": round(float(m.group(1)) + float(m.group(2)), 2) if m else None,
                "redo_log": m.group(0) if m else None}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _wait_ready(proc: subprocess.Popen[bytes], log_path: Path) -> str:
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if _READY in text:
            return text
        if proc.poll() is not None:
            raise SetupError(f"postgres exited during recovery (code {proc.returncode}):\n{text[-2000:]}")
        time.sleep(0.05)
    raise SetupError(f"postgres did not finish recovery within {RECOVERY_TIMEOUT:.0f} s")


def cpu_seconds() -> float:
    """User and system CPU of this process and of its children that have been waited for
    (workers, wal-redo servers): on a busy machine, what a run costs whatever the load."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def time_redodiff(waldir: Path, start: int, end: int | None, make_checker: Callable[[], Checker], *,
                  workers: int, engines: Sequence[str], primary: Any, interrupts: Interrupts,
                  close: Callable[[], None],
                  progress: Callable[[int, int], None] | None = None) -> tuple[float, float, CheckReport]:
    """What ``redodiff check`` does after its setup: decode once, plan, redo and witness.
    Wall seconds and CPU seconds (``close`` stops the engines first, so that the wal-redo
    servers' CPU is counted)."""
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    timing = CheckReport()
    with timing.timed("decode"):
        records = decode_all(interrupts.each(WalReader(waldir, start, end)))
    real_end = end if end is not None else (records[-1].end_lsn if records else start)
    report = check_range(make_checker, records, start=start, end=real_end, workers=workers,
                         interrupts=interrupts, engines=list(engines), primary=primary, progress=progress)
    report.phases.add_all(timing.phases)
    wall = time.perf_counter() - t0
    close()
    return wall, cpu_seconds() - cpu0, report


def run_summary(seconds: float, cpu: float, report: CheckReport, workers: int, pg_seconds: float | None,
                pg_cpu: float | None) -> dict[str, Any]:
    return {
        "workers": workers, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 1),
        "cpu_ratio_to_postgres": round(cpu / pg_cpu, 1) if pg_cpu else None, "records": report.records,
        "pages_checked": report.pages_checked, "divergences": len(report.divergences),
        "interrupted": report.interrupted,
        "ratio_to_postgres": round(seconds / pg_seconds, 1) if pg_seconds else None,
        "phases": {k: round(v, 2) for k, v in report.phases.items()},
    }


def describe_range(start: int, end: int | None) -> str:
    return f"{format_lsn(start)} .. {format_lsn(end) if end is not None else 'end of WAL'}"
