"""The regression gate and the pytest plugin over a corpus."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from generators import generate
from harness.cli import main

pytestmark = pytest.mark.slow  # whole campaigns: left out of the fast loop (-m "not slow")

MUTANT = "heap_insert_ctid_off_by_one"


def _corpus(tmp_path: Path, mutant_bundle: Path) -> tuple[Path, Path]:
    corpus = tmp_path / "corpus"
    (corpus / "bundles").mkdir(parents=True)
    (corpus / "seeds").mkdir()
    bundle = corpus / "bundles" / mutant_bundle.name
    shutil.copytree(mutant_bundle, bundle)
    # a saved seed whose workload is clean
    wl = generate(12345)
    (corpus / "seeds" / "12345.json").write_text(wl.dumps())
    return corpus, bundle


def test_gate_fails_on_the_injected_bug_and_passes_without(tmp_path: Path, mutant_bundle: Path) -> None:
    corpus, bundle = _corpus(tmp_path, mutant_bundle)
    bad = CliRunner().invoke(main, ["gate", "--corpus", str(corpus), "--budget", "0", "--mutant", MUTANT])
    assert bad.exit_code == 1, bad.output
    assert bundle.name in bad.output and "gate failed" in bad.output
    assert "seed:12345.json" not in [line.split(":")[0] for line in bad.output.splitlines() if "FAIL" in line]
    good = CliRunner().invoke(main, ["gate", "--corpus", str(corpus), "--budget", "0"])
    assert good.exit_code == 0, good.output
    assert "gate passed: 2 saved cases agree" in good.output


def test_pytest_plugin_runs_one_test_per_case(tmp_path: Path, mutant_bundle: Path) -> None:
    corpus, bundle = _corpus(tmp_path, mutant_bundle)
    empty = tmp_path / "proj"
    empty.mkdir()
    (empty / "pytest.ini").write_text("[pytest]\n")
    ok = subprocess.run([sys.executable, "-m", "pytest", "-q", "--redodiff-corpus", str(corpus), "-p", "no:cacheprovider"],
                        cwd=empty, capture_output=True, text=True, timeout=600)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "2 passed" in ok.stdout
    # break the saved primary page: that case must now fail, by name
    meta = json.loads((bundle / "bundle.json").read_text())
    page = bytearray((bundle / "pages" / "primary.page").read_bytes())
    page[8192 - 30] ^= 0xFF
    (bundle / "pages" / "primary.page").write_bytes(bytes(page))
    bad = subprocess.run([sys.executable, "-m", "pytest", "-q", "--redodiff-corpus", str(corpus), "-p", "no:cacheprovider"],
                         cwd=empty, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 1, bad.stdout
    assert f"bundle:{bundle.name} still diverges" in bad.stdout and "1 failed, 1 passed" in bad.stdout
    assert meta["kind"] == "engine_vs_primary"
