"""What a redodiff process left behind, and how to clear it: the processes running
in a directory it owned (a PostgreSQL server's working directory is its PGDATA,
a wal-redo server's its scratch cluster) or in its session, and its ``redodiff-*``
temporary directories. Used by ``redodiff bench interrupt`` and by the test
suite's leak check, both of which give each run a private temporary base.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.clusters.local import stop_orphans

PREFIX = "redodiff-"


@dataclass(frozen=True)
class Proc:
    pid: int
    cmdline: str

    def __str__(self) -> str:
        return f"{self.pid} {self.cmdline[:200]}"


def _cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace").strip()


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


def processes(base: Path, *, session: int | None = None) -> list[Proc]:
    """Live processes (ours excepted) whose working directory or command line is under
    ``base``, or that belong to session ``session``."""
    prefix = str(base)
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        pid = int(d)
        with contextlib.suppress(OSError):
            cmd = _cmdline(pid)
            ours = prefix in cmd or (session is not None and os.getsid(pid) == session)
            if not ours:
                with contextlib.suppress(OSError):  # another user's process: no cwd to read
                    ours = os.readlink(f"/proc/{pid}/cwd").startswith(prefix)
            if ours and _alive(pid):
                out.append(Proc(pid, cmd))
    return out


def settled(find: Callable[[], list[Proc]], wait: float = 5.0) -> list[Proc]:
    """What ``find`` still sees after up to ``wait`` seconds: a backend whose server
    just stopped may still be exiting when we first look; a leaked one stays."""
    deadline = time.monotonic() + wait
    found = find()
    while found and time.monotonic() < deadline:
        time.sleep(0.2)
        found = find()
    return found


def cluster_dirs(base: Path) -> list[Path]:
    """The ``redodiff-pg-*`` cluster directories anywhere under ``base`` whose server
    may run (a postmaster.pid); directories vanishing meanwhile are passed over."""
    out = []
    for top, dirs, _files in os.walk(base):
        if Path(top).name.startswith(f"{PREFIX}pg-"):
            dirs.clear()  # not into the data directory
            if (Path(top) / "data" / "postmaster.pid").exists():
                out.append(Path(top))
    return out


def temp_dirs(base: Path, *, keep: tuple[str, ...] = ()) -> list[str]:
    """The ``redodiff-*`` entries directly under ``base`` (names starting with ``keep`` excepted)."""
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.name.startswith(PREFIX) and not p.name.startswith(keep))


def end_session(proc: subprocess.Popen[Any] | None, base: Path) -> None:
    """After a process started as a session of its own with ``base`` as its TMPDIR:
    kill its session if it still runs, then clear what it left under ``base``."""
    sid = proc.pid if proc is not None else None
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    clear(base, processes(base, session=sid))


def clear(base: Path, procs: list[Proc]) -> None:
    """Remove what was left: stop the clusters anywhere under ``base`` (immediate
    shutdown), kill the other processes, delete the ``redodiff-*`` directories."""
    for holder in {d.parent for d in cluster_dirs(base)}:
        stop_orphans(holder)
    for p in procs:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p.pid, signal.SIGKILL)
    for name in temp_dirs(base):
        shutil.rmtree(base / name, ignore_errors=True)
