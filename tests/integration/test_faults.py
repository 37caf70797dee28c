"""Infrastructure faults during fuzzing (harness/selftest/faults.py injects them, from a
FaultPlan carried in the campaign's configuration).

PostgreSQL killed mid-workload, a workload step that errors, the wal-redo
server killed or hung mid-request, the bundle disk full or read-only: each
iteration is recorded as an infrastructure error (a step error is just
counted), never as a divergence; the campaign goes on with the next
iteration; the report counts it; bundles already written stay intact and no
half-written bundle is left behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.campaign.bundle import is_bundle, read_bundle
from harness.campaign.fuzz import FuzzConfig, FuzzReport, run_campaign, write_outputs
from harness.selftest import faults
from harness.verify.engines import EngineSet

pytestmark = pytest.mark.slow  # whole campaigns: left out of the fast loop (-m "not slow")

MUTANT = "heap_insert_ctid_off_by_one"  # breaks heap insert redo: real divergences, real bundles


# -- fault plans -------------------------------------------------------------------------
def test_fault_spec_parses() -> None:
    plan = faults.FaultPlan.parse("kill_postgres=3@0+2, walredo_hang=1, bundle_errno=ENOSPC@4")
    assert plan.faults[0] == faults.Fault("kill_postgres", 3, frozenset({0, 2}))
    assert plan.faults[1] == faults.Fault("walredo_hang", 1, None)
    assert plan.faults[2] == faults.Fault("bundle_errno", errno.ENOSPC, frozenset({4}))
    assert plan.find("kill_postgres", 2) is not None and plan.find("kill_postgres", 1) is None
    for bad in ("nope=1", "kill_postgres", "bundle_errno=EWHAT"):
        with pytest.raises(ValueError):
            faults.FaultPlan.parse(bad)


def test_hooks_are_no_ops_without_a_plan_or_a_matching_fault() -> None:
    plan = faults.FaultPlan.parse("step_error=0@3")
    for hooks in (faults.NO_FAULTS, faults.FaultPlan(()).at(0), plan.at(0)):
        sentinel = object()
        assert hooks.before_step(None, 0, sentinel) is sentinel
        engines = [object()]
        assert hooks.engines(engines) == engines
        hooks.before_bundle_write(Path("/nonexistent"))
    assert not plan.fired
    failing = plan.at(3).before_step(None, 0, _Step("SELECT 1"))
    assert "fault injection" in failing.sql and plan.fired["step_error"] == 1


def test_the_cli_reads_the_fault_plan_from_the_environment() -> None:
    """``REDODIFF_FAULTS`` is the envvar of fuzz's hidden --faults option: read by the
    CLI and put in the FuzzConfig, never read (or written) by the harness itself."""
    from harness.cli.campaign import fuzz

    [opt] = [p for p in fuzz.params if p.name == "faults"]
    assert opt.envvar == faults.ENV and getattr(opt, "hidden", False)


# -- helpers -------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Step:
    sql: str
    copy_rows: list[Any] | None = None



@pytest.fixture
def cluster_dir() -> Iterator[Path]:
    """A base for this test's clusters that the server user can traverse."""
    d = Path(tempfile.mkdtemp(prefix="redodiff-faults-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _children() -> set[int]:
    me = os.getpid()
    out = set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = Path(f"/proc/{d}/stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == me:
                    out.add(int(d))
    return out


def _processes_under(path: Path) -> list[int]:
    """Processes whose working directory is under ``path`` (a server's is its PGDATA)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{d}/cwd").startswith(str(path)):
                    out.append(int(d))
    return out


def _infra(rep: FuzzReport) -> dict[int | None, str]:
    return {e.iteration: e.error for e in rep.infrastructure_errors}


# -- PostgreSQL and the wal-redo server --------------------------------------------------------
def test_cluster_and_walredo_faults_are_infrastructure_and_the_run_goes_on(
        cluster_dir: Path, tmp_path: Path) -> None:
    """Iteration 0: the postmaster is SIGKILLed before step 2. Iteration 1: a step
    fails, and the wal-redo server is killed while answering its 2nd request.
    Iteration 2: the server hangs (SIGSTOP) on its 2nd request. Iteration 3: clean."""
    before = _children()
    engines = EngineSet(names=("pyredo", "walredo"), walredo_timeout=3.0)
    plan = faults.FaultPlan.parse("kill_postgres=2@0,step_error=1@1,walredo_kill=2@1,walredo_hang=2@2")
    cfg = FuzzConfig(seed=41, iterations=4, engines=engines, cluster_dir=cluster_dir, corpus=tmp_path / "corpus",
                     faults=plan)
    rep = run_campaign(cfg)
    assert dict(plan.fired) == {"kill_postgres": 1, "step_error": 1, "walredo_kill": 1, "walredo_hang": 1}
    assert rep.iterations == 4 and not rep.interrupted
    assert rep.divergences == []  # infrastructure trouble is never a finding
    infra = _infra(rep)
    assert set(infra) == {0, 1, 2}, infra
    assert any(k in infra[0] for k in ("ClusterLost", "OperationalError")), infra[0]
    assert "SIGKILL" in infra[1] and "walredo" in infra[1], infra[1]
    assert "no answer from the wal-redo server within 3s" in infra[2], infra[2]
    res = {r.index: r for r in rep.results}
    assert res[1].step_errors >= 1  # the failing step is counted, not fatal
    assert res[3].infrastructure_error is None and res[3].pages_checked > 0
    junit = rep.junit_xml()
    assert 'errors="3"' in junit and 'failures="0"' in junit
    # the killed cluster was thrown away, nothing of it runs; no wal-redo server is left
    assert _processes_under(cluster_dir) == []
    assert list(cluster_dir.iterdir()) == []
    assert _children() <= before
    assert not (tmp_path / "corpus" / "bundles").exists() or not any(
        (tmp_path / "corpus" / "bundles").iterdir())


# -- the bundle disk ---------------------------------------------------------------------------------
def _fake_bundle(bundles: Path) -> dict[str, str]:
    """A bundle written by an earlier run; returns file -> sha1 to check it later."""
    old = bundles / "engines-Heap_INSERT-16384-0-0-s1-0ldbund1e"
    (old / "pages").mkdir(parents=True)
    (old / "bundle.json").write_text('{"id": "old"}\n')
    (old / "records.bin").write_bytes(os.urandom(3000))
    (old / "pages" / "pyredo.page").write_bytes(os.urandom(8192))
    return _digest(old)


def _digest(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def _check_bundle_dir(bundles: Path, old: dict[str, str]) -> list[Path]:
    entries = list(bundles.iterdir())
    assert not [p for p in entries if p.name.startswith(".tmp-")], "a half-written bundle was left behind"
    assert _digest(bundles / "engines-Heap_INSERT-16384-0-0-s1-0ldbund1e") == old
    new = [p for p in entries if "0ldbund1e" not in p.name]
    for p in new:
        assert is_bundle(p)
        read_bundle(p)
    return new


def test_bundle_write_failure_is_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    """An injected ENOSPC while writing iteration 0's bundles (no root needed)."""
    corpus = tmp_path / "corpus"
    old = _fake_bundle(corpus / "bundles")
    plan = faults.FaultPlan.parse("bundle_errno=ENOSPC@0")
    rep = run_campaign(FuzzConfig(seed=8, iterations=2, corpus=corpus, engines=EngineSet(mutant=MUTANT),
                                  faults=plan))
    assert plan.fired["bundle_errno"] >= 1
    assert rep.iterations == 2
    infra = _infra(rep)
    assert set(infra) == {0} and "could not write bundle" in infra[0] and "No space left" in infra[0]
    by_it: dict[int, list[str | None]] = {}
    for d in rep.divergences:
        by_it.setdefault(d.iteration, []).append(d.bundle)
    assert by_it[0] and all(b is None for b in by_it[0])  # found, reported, not saved
    # the next iteration saves bundles again (one per distinct divergence signature,
    # the rest are reported unbundled: harness.campaign.iteration.MAX_BUNDLES_PER_ITERATION)
    assert by_it[1] and any(b is not None for b in by_it[1])
    new = _check_bundle_dir(corpus / "bundles", old)
    assert sorted(str(p) for p in new) == sorted(b for b in by_it[1] if b)


def _can_mount() -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    d = tempfile.mkdtemp(prefix="redodiff-mnt-probe-")
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", d],
                            capture_output=True, check=False).returncode == 0
        if ok:
            subprocess.run(["umount", d], check=False)
        return ok
    finally:
        os.rmdir(d)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs: a real disk that can fill up and be remounted read-only."""
    if not _can_mount():
        pytest.skip("needs root and mount(8) for a real tmpfs (the injected-fault test covers the rest)")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(bytes(1 << 16))
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC
    return filler


def test_bundle_disk_full_then_read_only(small_disk: Path, tmp_path: Path) -> None:
    """Iteration 0 finds the bundle disk full, iteration 1 finds it read-only,
    iteration 2 has it back: 0 and 1 are infrastructure errors (their divergences
    still reported), 2 writes its bundles; the old bundle is untouched throughout."""
    corpus = small_disk / "corpus"
    old = _fake_bundle(corpus / "bundles")
    filler = _fill(small_disk)

    def between(rep: FuzzReport) -> None:
        if rep.iterations == 1:
            filler.unlink()
            subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
        elif rep.iterations == 2:
            subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)

    rep = run_campaign(FuzzConfig(seed=8, iterations=3, corpus=corpus, engines=EngineSet(mutant=MUTANT)),
                       progress=between)
    assert rep.iterations == 3
    infra = _infra(rep)
    assert set(infra) == {0, 1}, infra
    assert "No space left on device" in infra[0] and "Read-only file system" in infra[1]
    by_it: dict[int, list[str | None]] = {}
    for d in rep.divergences:
        by_it.setdefault(d.iteration, []).append(d.bundle)
    assert set(by_it) == {0, 1, 2}
    assert all(b is None for b in by_it[0] + by_it[1]) and any(by_it[2])
    new = _check_bundle_dir(corpus / "bundles", old)
    assert len(new) == len([b for b in by_it[2] if b])
    # the report goes elsewhere; updating the corpus coverage on a full disk only warns
    _fill(small_disk)
    write_outputs(rep, tmp_path / "report.json", None, corpus)
    assert (tmp_path / "report.json").exists()
    assert not [p for p in corpus.rglob(".*.tmp")]
