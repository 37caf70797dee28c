"""PostgreSQL in Docker: the workload cluster (`--cluster docker:IMAGE`), the wal-redo
server (`--walredo-docker IMAGE`), and docker-compose.yml.

The session uses a Docker engine that answers (DOCKER_HOST or the default socket)
or, as root, starts its own (`dockerd --iptables=false --bridge=none
--storage-driver=vfs` with a private data root and socket, stopped at the end).
Only when no engine can be had at all are these tests skipped, with the reason.
The image is `redodiff/hostpg`, imported from the host's PostgreSQL 15
(harness.clusters.docker_images): no registry is ever contacted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_run import CliRun

from generators import generate
from harness.campaign.fuzz import iteration_seed
from harness.campaign.iteration import run_workload
from harness.clusters import docker_common as docker_backend
from harness.clusters.docker_cluster import DockerCluster
from harness.clusters.docker_common import LABEL_CLIENT, LABEL_OWNER, LABEL_ROLE, docker_client
from harness.clusters.docker_images import PG_UID, ensure_hostpg_image
from harness.clusters.docker_walredo import DockerWalRedo, DockerWalRedoServer
from harness.clusters.local import ClusterSettings
from harness.clusters.pool import ClusterPool
from harness.verify.engines import EngineSet, is_infrastructure
from oracles.pgbin import SetupError
from oracles.walredo import WalRedoError
from oracles.walredo_protocol import PING_PAYLOAD, ping_msg

pytestmark = pytest.mark.slow  # whole campaigns: left out of the fast loop (-m "not slow")

REPO = Path(__file__).resolve().parents[2]


# -- the engine and the image -------------------------------------------------------------
def _answers(base_url: str) -> bool:
    import docker

    try:
        client = docker.DockerClient(base_url=base_url, timeout=10)
        client.ping()
        client.close()
        return True
    except Exception:
        return False


def _start_dockerd() -> tuple[subprocess.Popen[bytes], Path, str]:
    """As root: a private dockerd (own data root, exec root, socket). Skips if it cannot start."""
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        pytest.skip("no Docker engine answers and dockerd is not installed (Debian: apt-get install docker.io)")
    # short: the engine's and containerd's unix socket paths must fit in 108 bytes
    base = Path(tempfile.mkdtemp(prefix="rdd-", dir="/tmp"))
    sock = base / "docker.sock"
    url = f"unix://{sock}"
    logf = open(base / "dockerd.log", "wb")  # noqa: SIM115 - closed with the daemon
    proc = subprocess.Popen(
        [dockerd, "--iptables=false", "--bridge=none", "--storage-driver=vfs",
         "--data-root", str(base / "root"), "--exec-root", str(base / "exec"),
         "--pidfile", str(base / "dockerd.pid"), "-H", url],
        stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    logf.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if sock.exists() and _answers(url):
            return proc, base, url
        time.sleep(0.2)
    tail = (base / "dockerd.log").read_text(errors="replace").splitlines()[-15:]
    _stop_dockerd(proc, base)
    pytest.skip("no Docker engine answers and dockerd could not be started:\n" + "\n".join(tail))


def _stop_dockerd(proc: subprocess.Popen[bytes], base: Path) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    # dockerd leaves its default network namespace bind-mounted under the exec root
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f if line.split()[1].startswith(f"{base}/")]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[str]:
    """The DOCKER_HOST of a Docker engine for the session."""
    for url in filter(None, [os.environ.get("DOCKER_HOST"), "unix:///var/run/docker.sock"]):
        if _answers(url):
            old = os.environ.get("DOCKER_HOST")
            os.environ["DOCKER_HOST"] = url
            docker_backend._client = None
            yield url
            _restore_env(old)
            return
    if os.geteuid() != 0:
        pytest.skip("no Docker engine answers (DOCKER_HOST, /var/run/docker.sock) and only root can start one")
    proc, base, url = _start_dockerd()
    old = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = url
    docker_backend._client = None
    try:
        yield url
    finally:
        with_client = docker_backend._client
        if with_client is not None:
            for c in with_client[1].containers.list(all=True):
                c.remove(force=True)
        docker_backend._client = None
        _restore_env(old)
        _stop_dockerd(proc, base)


def _restore_env(old: str | None) -> None:
    if old is None:
        os.environ.pop("DOCKER_HOST", None)
    else:
        os.environ["DOCKER_HOST"] = old


@pytest.fixture(scope="session")
def image(docker_engine: str) -> str:
    t0 = time.monotonic()
    tag = ensure_hostpg_image(docker_client())
    print(f"\n[docker] engine {docker_engine}, image {tag} ready in {time.monotonic() - t0:.1f}s")
    return tag


def _containers(**labels: str) -> list[Any]:
    filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
    return list(docker_client().containers.list(all=True, filters=filters))


def _owned_by(pid: int) -> list[Any]:
    prefix = f"{socket.gethostname()}:{pid}:"
    return [c for c in docker_client().containers.list(all=True, filters={"label": LABEL_OWNER})
            if c.labels.get(LABEL_OWNER, "").startswith(prefix)]


def _listed(pid: int) -> list[dict[str, Any]]:
    """The containers of process ``pid`` as one listing shows them: none is inspected
    afterwards, so a short-lived one (initdb's) that goes away meanwhile is no error."""
    prefix = f"{socket.gethostname()}:{pid}:"
    return [c for c in docker_client().api.containers(all=True, filters={"label": LABEL_OWNER})
            if (c.get("Labels") or {}).get(LABEL_OWNER, "").startswith(prefix)]


def _wait_for(pred: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


# -- a fuzz iteration end to end ------------------------------------------------------------
def test_iteration_with_the_cluster_in_a_container(image: str) -> None:
    """The workload cluster in a container (initdb there, PGDATA bind-mounted and owned by
    the image's postgres uid); pyredo and the local wal-redo server agree with each other
    and with the primary."""
    wl = generate(iteration_seed(4, 0), "ci")  # no FPIs: redo routines rebuild the pages; checksums
    engines = EngineSet(names=("pyredo", "walredo"))
    try:
        with ClusterPool(cluster_spec=f"docker:{image}") as pool:
            res = run_workload(pool, wl, engines)
            (slot,) = pool.slots.values()
            cluster = slot.cluster
            assert isinstance(cluster, DockerCluster) and cluster.running
            name = cluster.name
            assert cluster.pgdata.stat().st_uid == (PG_UID if os.geteuid() == 0 else os.getuid())
            assert cluster.scalar("SHOW data_checksums") == "on"
            assert cluster.scalar("SHOW cluster_name") == name
            ours = [c for c in _owned_by(os.getpid()) if c.labels.get(LABEL_ROLE) == "cluster"]
            assert [(c.name, c.status) for c in ours] == [(name, "running")]
    finally:
        engines.close()
    assert res.infrastructure_error is None, res.infrastructure_error
    assert res.report is not None
    assert res.report.pages_checked > 0
    assert res.report.divergences == []
    assert not [c for c in _containers(**{LABEL_ROLE: "cluster"}) if c.name == name]
    assert not cluster.root.exists()


def test_iteration_with_the_walredo_server_in_a_container(image: str) -> None:
    """The wal-redo engine is pg_walredo on the image's PostgreSQL, behind
    `docker run -i --rm --network none`; it agrees with pyredo and the primary."""
    wl = generate(iteration_seed(3, 0), "ci")
    engines = EngineSet(names=("pyredo", "walredo"), walredo_docker=image)
    try:
        with ClusterPool() as pool:
            res = run_workload(pool, wl, engines)
        wr = engines._walredo
        assert isinstance(wr, DockerWalRedo)
        assert wr.spawns >= 1 and wr.requests > 0 and wr.failures == 0
        client_id = wr.docker.client_id
        assert len(_containers(**{LABEL_CLIENT: client_id})) == 1  # the server, still serving
        assert "--network" in wr.argv and "none" in wr.argv
    finally:
        engines.close()
    assert res.infrastructure_error is None, res.infrastructure_error
    assert res.report is not None
    assert res.report.pages_checked > 0
    assert res.report.divergences == []
    assert _containers(**{LABEL_CLIENT: client_id}) == []


def test_cli_fuzz_with_both_in_containers(image: str, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "fuzz", "--iterations", "1", "--seed", "7",
         "--engine", "pyredo", "--engine", "walredo", "--walredo-docker", image,
         "--cluster", f"docker:{image}", "--report", str(report)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output[-4000:]
    data = json.loads(report.read_text())
    assert data["iterations"] == 1
    assert data["pages_checked"] > 0
    assert [d for d in data["divergences"] if not d.get("known")] == [] and data["infrastructure_errors"] == []
    assert _owned_by(proc.pid) == []  # neither the cluster nor the wal-redo server is left


def test_cli_rejects_bad_specs(image: str) -> None:
    bad = subprocess.run([sys.executable, "-m", "harness.cli", "fuzz", "--iterations", "1", "--cluster", "dokker:x"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "docker:IMAGE" in bad.stderr
    no_engine = subprocess.run([sys.executable, "-m", "harness.cli", "fuzz", "--iterations", "1",
                                "--walredo-docker", image], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert no_engine.returncode == 2 and "--engine walredo" in no_engine.stderr


def test_cluster_specs() -> None:
    from harness.clusters.pool import parse_cluster_spec

    assert parse_cluster_spec("local") == ("local", None)
    assert parse_cluster_spec("docker:postgres:15.19-bookworm") == ("docker", "postgres:15.19-bookworm")
    for bad in ("docker:", "podman:x", "dockerx"):
        with pytest.raises(ValueError, match="docker:IMAGE"):
            parse_cluster_spec(bad)


# -- the cluster's lifecycle ------------------------------------------------------------------
def test_a_cluster_that_cannot_start_says_why(image: str) -> None:
    pg = DockerCluster(image, ClusterSettings(wal_segsize_mb=1, gucs={"shared_buffers": "plenty"}))
    with pytest.raises(SetupError) as ei:
        pg.__enter__()
    msg = str(ei.value)
    assert "docker run" in msg and image in msg  # the command
    assert "shared_buffers" in msg and "plenty" in msg  # the server's log tail
    assert not pg.root.exists()
    assert not [c for c in _containers(**{LABEL_ROLE: "cluster"}) if c.name == pg.name]


def test_missing_image_is_a_clear_setup_error(docker_engine: str) -> None:
    pg = DockerCluster("redodiff/no-such-image:1", ClusterSettings(wal_segsize_mb=1))
    with pytest.raises(SetupError, match=r"not present locally: `docker pull redodiff/no-such-image:1`"):
        pg.__enter__()
    assert not pg.root.exists()


def test_ctrl_c_stops_and_removes_the_cluster_container(image: str) -> None:
    # one process: its pid is the owner label of the containers looked for (workers label their own)
    with CliRun("fuzz", "--budget", "3600", "--seed", "5", "--workers", "1", "--cluster", f"docker:{image}",
                "--report", "{root}/r.json") as run:
        assert run.proc is not None
        pid = run.proc.pid
        try:
            run.wait_for(lambda: [c for c in _listed(pid) if c["Labels"].get(LABEL_ROLE) == "cluster"
                                  and c["State"] == "running"], "the fuzz run's cluster container")
            run.stop(signal.SIGINT)
            assert _listed(pid) == []
            assert json.loads(run.path("r.json").read_text())["interrupted"] is True
            assert run.leftovers() == []
        finally:  # also when the test fails: no container of the run outlives it
            for c in _listed(pid):
                docker_client().api.remove_container(c["Id"], force=True)


def test_orphans_of_dead_processes_are_removed(image: str) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    client = docker_client()
    c = client.containers.create(image, command=["postgres", "--version"],
                                 labels={LABEL_OWNER: f"{socket.gethostname()}:{dead.pid}:1", LABEL_ROLE: "test"})
    docker_backend._reap_orphans(client)
    assert _containers(**{LABEL_ROLE: "test"}) == [], c.name


# -- the wal-redo server's lifecycle -------------------------------------------------------------
def test_walredo_containers_never_outlive_their_client(image: str) -> None:
    wr = DockerWalRedo(image)
    try:
        assert wr.ping() > 0
        label = {LABEL_CLIENT: wr.docker.client_id}
        assert [c.status for c in _containers(**label)] == ["running"]
        # the docker client dies: the container sees EOF on stdin, exits, and --rm removes it
        assert wr.pid is not None
        os.kill(wr.pid, signal.SIGKILL)
        _wait_for(lambda: not _containers(**label), 30, "the container to go away after its client died")
        assert wr.ping() > 0  # respawned
        assert wr.spawns == 2
    finally:
        wr.close()
    assert _containers(**label) == []


def test_a_hung_walredo_container_is_removed(image: str) -> None:
    wr = DockerWalRedo(image, cmd=["/usr/bin/sleep", "1000"], timeout=3)  # never reads, never answers
    label = {LABEL_CLIENT: wr.docker.client_id}
    try:
        with pytest.raises(WalRedoError) as ei:
            wr.send_request(ping_msg())
        assert ei.value.kind == "timeout" and is_infrastructure(ei.value)
        assert _containers(**label) == []
    finally:
        wr.close()


def test_a_stop_request_ends_a_hung_walredo_container(image: str) -> None:
    """Ctrl-C while a request waits on a container that never answers (an hour's
    timeout): after the stop's grace the request ends as cancelled (infrastructure)
    and the container is removed."""
    wr = DockerWalRedo(image, cmd=["/usr/bin/sleep", "1000"], timeout=3600)
    wr.stop_requested, wr.stop_grace = (lambda: True), 0.5
    wr.check_layout = False  # the request under test is the first one, not a spawn-time probe
    label = {LABEL_CLIENT: wr.docker.client_id}
    try:
        with pytest.raises(WalRedoError) as ei:
            wr.send_request(ping_msg())
        assert ei.value.kind == "cancelled" and is_infrastructure(ei.value)
        assert _containers(**label) == []
    finally:
        wr.close()


def test_walredo_exit_statuses(image: str) -> None:
    # docker run cannot start the command: infrastructure, not a finding
    wr = DockerWalRedo(image, cmd=["/nonexistent/postgres", "--wal-redo"])
    try:
        with pytest.raises(WalRedoError) as ei:
            wr.send_request(ping_msg())
        assert ei.value.kind == "spawn" and is_infrastructure(ei.value), ei.value
        assert "docker run exit 12" in str(ei.value)
    finally:
        wr.close()
    # the server itself fails (exit 1, message on stderr): a finding, as with a local server
    wr = DockerWalRedo(image)
    try:
        with pytest.raises(WalRedoError) as ei:
            wr.send_request(b"Z\x00\x00\x00\x04")
        err = ei.value
        assert err.kind == "crash" and err.returncode == 1 and not is_infrastructure(err), err
        assert err.stderr_tail
        assert wr.ping() > 0  # and the next request gets a new server
    finally:
        wr.close()


def test_walredo_command_route(image: str) -> None:
    """--walredo-docker IMAGE --walredo-cmd CMD: how Neon's `postgres --wal-redo` is run.
    Here CMD is our pg_walredo server on a scratch directory passed with extra docker args."""
    prepared = DockerWalRedoServer(image)
    prepared.prepare()
    try:
        assert prepared.root is not None and prepared.info is not None and prepared.run_as is not None
        bindir = prepared.info.bindir
        cmd = [f"{bindir}/postgres", "--single", "-D", "/w/data", "-c", "session_preload_libraries=/w/pg_walredo.so",
               "-c", "pg_walredo.serve=on", "-c", "shared_buffers=2MB", "postgres"]
        wr = DockerWalRedo(image, cmd=cmd, ping=True,
                           docker_args=["-v", f"{prepared.root}:/w", "--user", prepared.run_as.user])
        try:
            argv = wr.argv
            assert argv[argv.index("--entrypoint") + 1] == cmd[0]
            assert f"LD_LIBRARY_PATH={Path(bindir).parent / 'lib'}" in argv  # as the pageserver does
            assert wr.send_request(ping_msg()) == PING_PAYLOAD
        finally:
            wr.close()
    finally:
        prepared.cleanup()


# -- docker-compose.yml ---------------------------------------------------------------------------
def test_compose_file_is_valid() -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (Debian: apt-get install docker-compose)")
    res = subprocess.run([compose, "-f", str(REPO / "docker-compose.yml"), "config"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    text = res.stdout
    assert "image: postgres:15." in text and "image: ghcr.io/neondatabase/neon:release-" in text
    assert "latest" not in text
    assert "wal_level=replica" in text and "/usr/local/v15/bin/postgres" in text
    services = subprocess.run([compose, "-f", str(REPO / "docker-compose.yml"), "--profile", "walredo",
                               "config", "--services"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert set(services.stdout.split()) == {"postgres", "neon-walredo"}


def test_compose_checker_role_has_what_check_needs(image: str) -> None:
    """The compose init script, run against PostgreSQL 15 in a container, gives the
    `checker` role exactly the rights `redodiff check --dsn` asks for."""
    from harness.clusters.existing import ExistingCluster

    script = REPO / "compose" / "postgres-init" / "10-redodiff-checker.sh"
    assert os.access(script, os.X_OK)  # the entrypoint executes it (rather than sourcing it)
    with DockerCluster(image, ClusterSettings(wal_segsize_mb=1)) as pg:
        shutil.copy(script, pg.root / "init.sh")
        rc, output = pg.container.exec_run(
            ["/bin/sh", "/redodiff/init.sh"], user=str(PG_UID) if os.geteuid() == 0 else None,
            environment={"PGHOST": "/redodiff", "PGPORT": str(pg.port), "PGDATA": "/redodiff/data",
                         "POSTGRES_USER": "postgres", "POSTGRES_DB": "postgres"})
        assert rc == 0, output.decode()
        assert "host replication checker all scram-sha-256" in (pg.pgdata / "pg_hba.conf").read_text()
        remote = ExistingCluster(f"host=127.0.0.1 port={pg.port} user=checker dbname=postgres")
        try:
            p = remote.privileges
            assert (p.superuser, p.replication, p.can_read_files, p.can_checkpoint) == (False, True, True, True)
        finally:
            remote.close()
