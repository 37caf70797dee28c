"""A divergence in a pg-regress pass shrinks to the statements that cause it, and the
minimized bundle replays on its own: the pass's set-up (a fresh regression database)
is kept by every trial, so no trial runs on what the cluster's last trial left behind.

The bug is a pyredo mutant of BRIN/DESUMMARIZE; the suite is three files of
PostgreSQL 15's (test_setup, boolean, brin_bloom), the CLI run in subprocesses with
its own regression-suite cache, as a user would point ``--regress-dir`` at a tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from generators.regress import SETUP_RULE
from harness.campaign.bundle import read_bundle
from harness.campaign.regress import regress_dir
from oracles.pgbin import CACHE_ENV, SetupError

pytestmark = pytest.mark.slow  # a pass, a minimization of about 30 trials and a replay

MUTANT = "brin_desummarize_revmap_kept"
FILES = ("test_setup", "boolean", "brin_bloom")
ROOT = Path(__file__).parents[2]


def _suite(tmp_path: Path) -> Path:
    try:
        full = regress_dir(15)
    except SetupError as e:
        pytest.skip(f"no regression suite of PostgreSQL 15 here: {e}")
    suite = tmp_path / "regress"
    for part in ("sql", "data", "expected"):
        shutil.copytree(full / part, suite / part)
    if (full / "regress.c").exists():
        shutil.copy2(full / "regress.c", suite / "regress.c")
    (suite / "parallel_schedule").write_text("".join(f"test: {f}\n" for f in FILES))
    return suite


def test_a_regress_divergence_shrinks_to_statements_that_replay_alone(tmp_path: Path) -> None:
    for d in (tmp_path, *tmp_path.parents[:2]):  # the server user reads the suite's data files
        d.chmod(d.stat().st_mode | 0o755)
    suite = _suite(tmp_path)
    env = {**os.environ, CACHE_ENV: str(tmp_path / "cache" / "pg")}  # its own regress cache

    def redodiff(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "harness.cli", *args, "--mutant", MUTANT, "--engine", "pyredo"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)

    corpus = tmp_path / "corpus"
    fuzz = redodiff("fuzz", "--workload", "pg-regress", "--regress-dir", str(suite), "--iterations", "1",
                    "--workers", "1", "--corpus", str(corpus), "--report", str(tmp_path / "r.json"))
    assert fuzz.returncode == 1, fuzz.stdout[-2000:] + fuzz.stderr[-2000:]
    report = json.loads((tmp_path / "r.json").read_text())
    caught = [d for d in report["divergences"] if d["record_type"] == "BRIN/DESUMMARIZE" and d["bundle"]]
    assert caught, [(d["kind"], d["record_type"]) for d in report["divergences"]]

    out = tmp_path / "min"
    mini = redodiff("minimize", caught[0]["bundle"], "--max-trials", "60", "--out", str(out))
    assert mini.returncode == 1, mini.stdout[-2000:] + mini.stderr[-2000:]  # 1: it still diverges
    [bundle_dir] = [p for p in out.iterdir() if p.is_dir()]
    wl = read_bundle(bundle_dir).workload
    assert wl is not None
    body = [s for s in wl.steps if s.rule != SETUP_RULE]
    assert [s.rule for s in wl.steps[: len(wl.steps) - len(body)]] == [SETUP_RULE] * (len(wl.steps) - len(body))
    # down from three files to a few statements of brin_bloom, the desummarize among them
    assert 1 <= len(body) <= 8 and all((s.script or "").startswith("brin_bloom#") for s in body), \
        [(s.script, s.sql) for s in body]
    assert any("brin_desummarize_range" in s.sql for s in body)

    again = redodiff("replay", str(bundle_dir), "--workload")  # on a fresh cluster
    assert again.returncode == 1, again.stdout[-2000:] + again.stderr[-2000:]
    assert "BRIN/DESUMMARIZE" in again.stdout
