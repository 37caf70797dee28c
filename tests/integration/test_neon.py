"""Neon's own ``postgres --wal-redo`` (PostgreSQL 17) as the third engine.

Runs against the Neon binary configured (``$REDODIFF_NEON_POSTGRES``, else the
shared reference build ``../shared/neon-walredo/pg17``); every test is skipped,
with the reason, when there is none. Start-up as Neon's pageserver does it,
ping and respawn, the version guard, the tag-layout check, and one fuzz
iteration where pyredo, the stock PostgreSQL 17 server and Neon's vote on
every page.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from majors import pg_of

from generators import generate
from generators.capabilities import fit_workload
from harness.campaign.iteration import run_workload
from harness.clusters.pool import ClusterPool
from harness.verify.engines import EngineSet
from oracles.neon import NEON_POSTGRES_ENV, NeonConfig, NeonWalRedo, neon_walredo
from oracles.neon_profile import OTHER_BLOCKS_DONE
from oracles.walredo import WalRedoError
from oracles.walredo_probe import PROBE_TAG, layout_probe

NEON_MAJOR = 17


@pytest.fixture(scope="module")
def neon() -> NeonConfig:
    path = os.environ.get(NEON_POSTGRES_ENV)
    cfg = NeonConfig(postgres=Path(path)) if path else NeonConfig.default()
    if cfg is None or not cfg.postgres.is_file():
        pytest.skip(f"no Neon wal-redo binary configured (${NEON_POSTGRES_ENV}, or "
                    "../shared/neon-walredo/pg17/bin/postgres)")
    return cfg


@pytest.fixture
def proc(neon: NeonConfig) -> Iterator[NeonWalRedo]:
    p = neon_walredo(neon)
    try:
        yield p
    finally:
        p.close()


def _server_processes(pgid: int) -> list[int]:
    """The ``postgres`` processes in the child's process group (runuser and env exec it)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and comm == "postgres":
                out.append(int(d.name))
    return out


def _wait_dead(pids: list[int], timeout: float = 10.0) -> None:
    """Wait until each pid has exited (gone or a zombie): SIGKILL is delivered
    asynchronously, and a request written before it lands would be lost with it."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while True:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                break
            if stat[stat.rindex(")") + 2] == "Z":
                break
            assert time.monotonic() < deadline, f"process {pid} still alive after SIGKILL"
            time.sleep(0.01)


def test_it_starts_as_the_pageserver_starts_it_answers_pings_and_respawns(proc: NeonWalRedo) -> None:
    proc.start()
    assert proc.ping() > 0
    pgid = proc.pid
    assert pgid is not None
    [server] = _server_processes(pgid)
    argv = Path(f"/proc/{server}/cmdline").read_bytes().split(b"\0")[:-1]
    assert argv[1:] == [b"--wal-redo", b"--tenant-shard-id", b"0"]
    env = Path(f"/proc/{server}/environ").read_bytes().split(b"\0")[:-1]
    assert [e.split(b"=")[0] for e in env] == [b"LD_LIBRARY_PATH"]
    if os.geteuid() == 0:
        assert os.stat(f"/proc/{server}").st_uid != 0  # runuser: PostgreSQL refuses root
    # the server dies between requests: the next request respawns it (ping + layout check)
    os.killpg(pgid, signal.SIGKILL)
    _wait_dead([server, pgid])
    request, want = layout_probe("neon")
    assert proc.send_request(request, tag=PROBE_TAG) == want
    assert proc.spawns == 2 and proc.pid != pgid


def test_it_states_its_major_and_wal_of_another_major_is_refused(neon: NeonConfig) -> None:
    assert neon.major() == NEON_MAJOR
    with pytest.raises(ValueError, match=r"replays PostgreSQL 17 WAL; this run's WAL is PostgreSQL 15"):
        EngineSet(names=("neon",), neon=neon)  # no --pg: the system's PostgreSQL 15
    # every external command, not only --engine neon
    with pytest.raises(ValueError, match=r"--walredo-cmd .* replays PostgreSQL 17 WAL"):
        EngineSet(names=("walredo",), walredo_cmd=" ".join(neon.argv()))
    EngineSet(names=("neon", "walredo"), neon=neon, pg=pg_of(NEON_MAJOR)).close()


def test_the_tag_layout_is_checked_at_start(neon: NeonConfig) -> None:
    wrong = NeonWalRedo(neon.argv(), tag_layout="old", ping=True, check_layout=True, env=neon.env())
    try:
        with pytest.raises(WalRedoError, match=r"tag-layout check failed.*--tag-layout old") as e:
            wrong.start()
        assert e.value.kind == "spawn"
    finally:
        wrong.close()


def test_one_fuzz_iteration_with_three_engines(neon: NeonConfig) -> None:
    inst = pg_of(NEON_MAJOR)
    wl = fit_workload(generate(7, "ci"), inst.capabilities)
    es = EngineSet(names=("pyredo", "walredo", "neon"), neon=neon, pg=inst)
    try:
        with ClusterPool(pg=inst) as pool:
            res = run_workload(pool, wl, es)
    finally:
        es.close()
    report = res.report
    assert report is not None and res.infrastructure_error is None, res.infrastructure_error
    assert report.engines == ["pyredo", "walredo", "neon"]
    assert report.unknown_divergences == [], [d.verdict for d in report.divergences]
    # pages where every engine answered, and pages where pyredo abstained (a PostgreSQL 17
    # record it does not implement yet) while walredo and neon still voted
    verified = {label: n for label, n in report.verdicts.items() if label.startswith("verified")}
    assert any("did not answer" not in label for label in verified), report.verdicts
    assert sum(verified.values()) == report.pages_checked - sum(
        n for label, n in report.verdicts.items() if not label.startswith("verified"))
    assert any(OTHER_BLOCKS_DONE.name in label for label in report.verdicts), report.verdicts
