"""LocalCluster under Ctrl-C: an interrupted start leaves no server and no directory."""

from __future__ import annotations

import signal
import subprocess
import time
from types import FrameType

import pytest

from harness.clusters.local import LocalCluster

pytestmark = pytest.mark.integration


def _servers_in(path: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if path in line and "postgres" in line]


@pytest.mark.parametrize("delay", [0.05, 0.3])
def test_ctrl_c_during_start_leaves_nothing_behind(delay: float) -> None:
    """Ctrl-C while pg_ctl start runs: pg_ctl is let finish, so destroy() knows a
    server may be up, stops it and removes the directory."""
    c = LocalCluster()
    c.init()
    root = str(c.root)

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, delay)
    try:
        with pytest.raises(KeyboardInterrupt):
            c.start()
            time.sleep(5)  # started before the timer fired: the interrupt lands here
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        c.destroy()
    deadline = time.monotonic() + 10
    while _servers_in(root) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _servers_in(root)
    assert not c.root.exists()
