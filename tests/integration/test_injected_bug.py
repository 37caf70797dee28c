"""Injected bug -> caught by the fuzzer -> replayed from a fresh process -> minimized.

The bug is a mutant (harness/selftest/mutants.py): heap_xlog_insert points the new
tuple's t_ctid one line pointer too far. It runs in subprocesses through
``--mutant``, exactly as a user reproduces a saved divergence.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.campaign.bundle import read_bundle

pytestmark = pytest.mark.slow  # whole campaigns: left out of the fast loop (-m "not slow")

MUTANT = "heap_insert_ctid_off_by_one"
ROOT = Path(__file__).parents[2]


def redodiff(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_injected_bug_is_caught_replayed_and_minimized(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    fuzz = redodiff("fuzz", "--iterations", "1", "--seed", "21", "--engine", "pyredo", "--engine", "walredo",
                    "--corpus", str(corpus), "--report", str(tmp_path / "r.json"), "--mutant", MUTANT)
    assert fuzz.returncode == 1, fuzz.stdout + fuzz.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    caught = [d for d in report["divergences"] if d["kind"] == "engine_disagreement" and d["bundle"]]
    assert caught, report["divergences"][:3]
    # the engines disagree first at a heap insert: bisection names the patched record type
    insert = next(d for d in caught if d["record_type"].startswith("Heap/INSERT"))
    assert insert["first_diverging_lsn"] is not None
    bundle = Path(insert["bundle"])

    # a fresh process with the same bug reproduces it; without the bug it is gone
    again = redodiff("replay", str(bundle), "--mutant", MUTANT)
    assert again.returncode == 1 and "still diverges: engine_disagreement" in again.stdout, again.stdout
    assert "same kind as recorded" in again.stdout
    fixed = redodiff("replay", str(bundle))
    assert fixed.returncode == 0 and "no longer diverges" in fixed.stdout, fixed.stdout

    # minimize: a workload of a few steps whose first diverging record is the patched type
    out = tmp_path / "min"
    mini = redodiff("minimize", str(bundle), "--mutant", MUTANT, "--max-trials", "25", "--out", str(out))
    assert mini.returncode == 1, mini.stdout + mini.stderr
    [small] = [p for p in out.iterdir() if not p.name.startswith(".")]
    b = read_bundle(small)
    assert b.workload is not None and b.meta["original_steps"] > len(b.workload.steps)
    assert 1 <= len(b.workload.steps) <= 4, [s.sql for s in b.workload.steps]
    first = b.first_diverging_lsn
    assert first is not None and b.records[-1].lsn == first  # records trimmed to the first divergence
    assert b.meta["record_type"].startswith("Heap/INSERT")
