"""The fuzz loop end to end: reports, JUnit, sharding, determinism, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.campaign.bundle import read_bundle
from harness.campaign.fuzz import FuzzConfig, iteration_seed, run_campaign, write_outputs

pytestmark = pytest.mark.slow  # whole campaigns: left out of the fast loop (-m "not slow")

REPORT_KEYS = {"records", "pages_checked", "divergences", "unsupported", "record_types",
               "iterations", "seed", "settings_seen", "infrastructure_errors"}


def test_short_campaign_reports(tmp_path: Path) -> None:
    cfg = FuzzConfig(seed=3, iterations=3, corpus=tmp_path / "corpus")
    rep = run_campaign(cfg)
    write_outputs(rep, tmp_path / "r.json", tmp_path / "j.xml", cfg.corpus)
    data = json.loads((tmp_path / "r.json").read_text())
    assert set(data) >= REPORT_KEYS
    assert data["iterations"] == 3 and data["seed"] == 3
    assert data["pages_checked"] > 20 and data["records"] > 100
    assert data["divergences"] == [] and data["infrastructure_errors"] == []
    assert "Heap/INSERT" in data["record_types"] or "Heap2/MULTI_INSERT" in data["record_types"]
    assert sum(data["settings_seen"].values()) == 3
    seeds = [r["seed"] for r in data["iteration_results"]]
    assert seeds == [iteration_seed(3, i) for i in range(3)]
    suite = ET.parse(tmp_path / "j.xml").getroot()
    assert suite.tag == "testsuite" and suite.get("tests") == "3" and suite.get("failures") == "0"
    cov = json.loads((tmp_path / "corpus" / "coverage.json").read_text())
    assert cov["record_types"] == data["record_types"]


def test_shards_partition_the_iterations() -> None:
    shards = [FuzzConfig(seed=1, iterations=4, shard=(k, 3)) for k in (1, 2, 3)]
    picked = [[c.global_index(j) for j in range(4)] for c in shards]
    assert picked == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]]
    with pytest.raises(ValueError):
        FuzzConfig(seed=1, iterations=1, shard=(4, 3))


def test_same_seed_same_campaign(tmp_path: Path) -> None:
    a = run_campaign(FuzzConfig(seed=11, iterations=2))
    b = run_campaign(FuzzConfig(seed=11, iterations=2))
    assert [r.seed for r in a.results] == [r.seed for r in b.results]
    assert [r.settings for r in a.results] == [r.settings for r in b.results]


def _redodiff(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *args]


def _our_postgres(root: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(root) in line and "postgres" in line]


def test_ctrl_c_stops_cleanly_and_keeps_bundles(tmp_path: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="redodiff-sigint-", dir="/tmp"))
    root.chmod(0o755)  # the postgres user must reach clusters made under it
    corpus = tmp_path / "corpus"
    report = tmp_path / "report.json"
    env = {**os.environ, "TMPDIR": str(root), "PYTHONUNBUFFERED": "1"}
    # a mutant on a path every workload takes, so bundles are being written
    proc = subprocess.Popen(
        _redodiff("fuzz", "--budget", "600", "--seed", "5", "--corpus", str(corpus), "--report", str(report),
                  "--mutant", "heap_insert_ctid_off_by_one"),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2],
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            bundles = [p for p in (corpus / "bundles").glob("*") if not p.name.startswith(".")] \
                if (corpus / "bundles").exists() else []
            if bundles:
                break
            time.sleep(1)
        assert bundles, "no bundle written within the wait"
        time.sleep(2)  # let it get into the next iteration
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.decode(errors="replace")
    assert proc.returncode in (0, 1), text[-2000:]
    assert "interrupted" in text
    data = json.loads(report.read_text())
    assert data["interrupted"] is True
    # every bundle on disk is whole and readable; no half-written temp dirs
    on_disk = sorted((corpus / "bundles").iterdir())
    assert on_disk and not [p for p in on_disk if p.name.startswith(".tmp-")]
    for p in on_disk:
        b = read_bundle(p)
        assert b.records and "primary" in b.pages
    # every divergence is reported; the bundled ones are on disk (bundles are capped per iteration)
    bundled = {d["bundle"] for d in data["divergences"] if d["bundle"]}
    assert bundled and bundled <= {str(p) for p in on_disk}
    # no PostgreSQL left running, no cluster directory left behind
    assert not _our_postgres(root), _our_postgres(root)
    assert not list(root.glob("redodiff-pg-*")), list(root.iterdir())
    os.rmdir(root)
