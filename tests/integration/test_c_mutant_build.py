"""A C mutant end to end: PostgreSQL 15 built from source, one redo routine patched and
rebuilt incrementally, a campaign with that build as the subject catches it, the work
tree is clean again afterwards, and the gate fails on the patched build and passes on
the unpatched one.

Needs the source build in the cache (``redodiff pg build``: minutes on 2 cores). ``./dev
setup`` and ``./dev test`` build it (reused once cached), so CI runs this test; .ci/run sets
REDODIFF_PG_BUILD=1, which makes this test build rather than skip when the build is missing.
Elsewhere, without the build, the test is skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.clusters.pgbuild import APPLIED, MANIFEST, build, build_root, plan, work_tree
from harness.selftest.c_mutants import get
from harness.selftest.c_runner import CSelftestConfig, run_c_mutant

pytestmark = pytest.mark.slow  # a source build (reused from the cache) and a campaign

MUTANT = "heap_delete_no_xmax"  # Heap/DELETE: every workload that deletes reaches it


@pytest.fixture(scope="module")
def base_build():  # type: ignore[no-untyped-def]
    if not (build_root() / "15" / MANIFEST).exists() and os.environ.get("REDODIFF_PG_BUILD") != "1":
        pytest.skip(f"no PostgreSQL source build in {build_root() / '15'}: run `redodiff pg build` "
                    "(or set REDODIFF_PG_BUILD=1 to let this test build it)")
    return build(plan(15))


def test_c_mutant_caught_reverted_and_gated(base_build, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    m = get(MUTANT)
    work = work_tree(base_build, name="15-test")
    cfg = CSelftestConfig(budget=120, names=[m.name], control=False, workdir=tmp_path / "st")
    clean = cfg.engines(base_build.install)
    try:
        res, interrupted = run_c_mutant(m, cfg, work, clean, tmp_path / "st")
    finally:
        clean.close()
    assert not interrupted and res.error is None
    assert res.caught, res.survivor_reason
    assert res.divergence is not None and res.divergence["record_type"] == "Heap/DELETE"
    assert res.rebuild_seconds is not None and res.false_alarms == 0
    # reverted: the patch applies forward again, nothing is recorded as applied
    assert not (work.root / APPLIED).exists()
    ok = subprocess.run(["patch", "-p1", "--dry-run", "--fuzz=0", "-i", str(m.patch)], cwd=work.worktree,
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stdout

    # the gate over a corpus holding the catching bundle: fails on the patched build, passes without
    corpus = tmp_path / "corpus"
    (corpus / "bundles").mkdir(parents=True)
    (corpus / "seeds").mkdir()
    bundle = Path(str(res.divergence["bundle"]))
    shutil.copytree(bundle, corpus / "bundles" / bundle.name)
    patched_build = build(plan(15, patches=[m.patch]))
    bad = CliRunner().invoke(main, ["gate", "--corpus", str(corpus), "--budget", "0",
                                    "--pg-bindir", str(patched_build.install.bindir)])
    assert bad.exit_code == 1, bad.output
    assert "Heap/DELETE" in bad.output
    good = CliRunner().invoke(main, ["gate", "--corpus", str(corpus), "--budget", "0",
                                     "--pg-bindir", str(base_build.install.bindir)])
    assert good.exit_code == 0, good.output
