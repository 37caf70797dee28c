"""The redodiff command line as a child process, the way a user runs it, and cleaned
up after whatever happens to the test.

``CliRun`` starts ``python -m harness.cli ARGS`` (``{root}`` in an argument: its
own directory) as a session of its own, with a private temporary directory (its clusters, snapshots and wal-redo scratch clusters
land there). Leaving the block — a pass, a failed assertion, a timeout — kills the
session if it still runs, stops every server running in that directory
(harness.robustness.leftovers), and removes it. Waits end on a progress signal
(``wait_for``) or when the process exits, never on a guessed time; the only time
bound is a hang guard, far above what a loaded machine needs.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from harness.robustness.leftovers import end_session, processes, settled, temp_dirs

REPO = Path(__file__).resolve().parents[2]
HANG_GUARD = 600.0  # seconds: only a process that hangs gets near it


class CliRun:
    def __init__(self, *args: str) -> None:
        # short: a cluster's Unix socket lives in its directory, and its path must fit 107 bytes
        self.root = Path(tempfile.mkdtemp(prefix="redodiff-c-"))
        self.root.chmod(0o755)  # the server user must reach the clusters below
        self.tmp = self.root  # the child's TMPDIR: its clusters land next to its outputs
        self.args = [sys.executable, "-m", "harness.cli", *(a.format(root=self.root) for a in args)]
        self.log = self.root / "output.txt"
        self.proc: subprocess.Popen[bytes] | None = None

    def path(self, name: str) -> Path:
        return self.root / name

    def __enter__(self) -> CliRun:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(self.args, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True,
                                         env={**os.environ, "TMPDIR": str(self.tmp), "PYTHONUNBUFFERED": "1"})
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        end_session(self.proc, self.tmp)
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, reached: Callable[[], object], what: str) -> None:
        """Until ``reached()`` is true; fails (with the output) if the process ends first."""
        assert self.proc is not None
        deadline = time.monotonic() + HANG_GUARD
        while not reached():
            assert self.proc.poll() is None, f"exited ({self.proc.returncode}) before {what}:\n{self.output[-3000:]}"
            assert time.monotonic() < deadline, f"no {what} after {HANG_GUARD:g} s:\n{self.output[-3000:]}"
            time.sleep(0.05)

    def stop(self, *signals: int) -> int:
        """Send ``signals`` one after the other (default: one SIGINT) and wait for the exit."""
        assert self.proc is not None
        for s in signals or (signal.SIGINT,):
            self.proc.send_signal(s)
        try:
            return self.proc.wait(HANG_GUARD)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {HANG_GUARD:g} s after {signals}:\n{self.output[-3000:]}") from None

    def leftovers(self) -> list[str]:
        """What the finished process left running or on disk (its session, its directory)."""
        sid = self.proc.pid if self.proc is not None else None
        return [str(p) for p in settled(lambda: processes(self.tmp, session=sid))] + temp_dirs(self.tmp)
