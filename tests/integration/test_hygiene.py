"""Resource hygiene, short version of ``redodiff bench hygiene --iterations 1000``.

20 fuzz iterations (profile tiny, pyredo and the wal-redo server), sampled every
5. Bounds (harness.robustness.hygiene.DEFAULT_BOUNDS): after warm-up no growth at all in
child processes, PostgreSQL server processes, temporary directories or threads,
at most 4 more open files and 64 MB more RSS; at most 4 clusters alive; once the
campaign returns, everything it opened is closed; once the process exits,
nothing at all is left in its temporary base.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path


def test_twenty_iterations_leave_nothing_behind() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "harness.cli", "bench", "hygiene", "--iterations", "20", "--every", "5",
         "--keep-tmp", "--json"],
        capture_output=True, text=True, timeout=900, check=False)
    data = json.loads(res.stdout)
    base = Path(data["temp_base"])
    try:
        assert res.returncode == 0, (data["violations"], res.stderr[-3000:])
        assert data["passed"] and data["violations"] == []
        assert data["records"] > 0 and data["pages_checked"] > 0  # it did real work
        g = data["growth"]
        assert g["children"] <= 0 and g["server_processes"] <= 0 and g["tempdirs"] <= 0 and g["threads"] <= 0
        assert g["fds"] <= 4 and g["rss_mb"] <= 64
        assert data["peaks"]["clusters"] <= 4 and data["peaks"]["children"] <= 1
        assert all(v <= 0 for v in data["leftovers_after_close"].values()), data["leftovers_after_close"]
        assert len(data["samples"]) == 5  # iteration 0, then every 5
        # after exit: the wal-redo scratch template and spares went too, no server survived
        assert sorted(p.name for p in base.iterdir()) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)
