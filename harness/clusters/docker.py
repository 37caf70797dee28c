"""PostgreSQL in Docker containers: the workload cluster (``--cluster docker:IMAGE``)
and the wal-redo server (``--walredo-docker IMAGE``).

``DockerCluster`` is a ``LocalCluster`` whose server runs in a container:

* PGDATA is a host directory, bind-mounted into the container at
  ``/redodiff/data`` and owned by the image's ``postgres`` uid (when we are
  root; otherwise by us), so the harness reads WAL segments and relation files
  directly, exactly as with a local cluster;
* ``initdb`` runs in a one-shot container of the image, with the chosen WAL
  segment size and checksums; the GUCs go to postgresql.conf from the host;
* the server listens on 127.0.0.1 on a free port with host networking (and
  on a Unix socket in the mounted directory); ``conninfo()`` uses TCP;
* ``destroy()`` (also on Ctrl-C and at interpreter exit) stops and removes the
  container. Errors quote the container's log tail and the equivalent
  ``docker run`` command line.

``DockerWalRedo`` is a ``WalRedoProcess`` whose server is ``docker run -i
--rm --network none ... IMAGE``: stdin/stdout are the protocol, stderr the
log. By default the container runs our stock-PostgreSQL server — the
``pg_walredo`` library built on the host (``ensure_built``) and a scratch data
directory initdb'd by the image's own ``initdb``, both bind-mounted. With
``cmd`` it runs that command instead, e.g. Neon's::

    DockerWalRedo("ghcr.io/neondatabase/neon:release-9129",
                  cmd=["/usr/local/v15/bin/postgres", "--wal-redo"])

Every container carries the labels ``redodiff.owner`` (host, pid and start
time of the Python process) and ``redodiff.role``; a wal-redo client's also
``redodiff.client``. A client removes its containers after a failure, on
``restart()`` and ``close()``; and the first use of Docker in a process
removes containers whose owner process is gone (a harness killed with
SIGKILL leaves no container running for long).

The SDK (``docker`` package) does the container lifecycle; the wal-redo
server's pipes go through the ``docker`` command-line client, which is the
simplest robust way to give a child process a container's stdin and stdout.
Images are never pulled implicitly: a missing image is a SetupError that says
``docker pull IMAGE``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from harness.clusters.local import BASE_GUCS, ClusterSettings, LocalCluster, free_port
from oracles.pgbin import SetupError, server_user
from oracles.walredo import DEFAULT_TIMEOUT, WalRedoError, WalRedoProcess
from oracles.walredo_protocol import TagLayout
from pyredo.wal.record import BufferTag

__all__ = [
    "DockerCluster",
    "DockerWalRedo",
    "DockerWalRedoServer",
    "ImageInfo",
    "docker_client",
    "probe_image",
    "remove_containers",
]

log = logging.getLogger("redodiff.docker")

LABEL_OWNER = "redodiff.owner"
LABEL_ROLE = "redodiff.role"
LABEL_CLIENT = "redodiff.client"
CLUSTER_ROOT = "/redodiff"  # the cluster's host directory, inside its container
WALREDO_ROOT = "/redodiff-walredo"  # the wal-redo scratch directory, inside its container
SUPPORTED_MAJOR = 15


# -- the engine ----------------------------------------------------------------------
_client_lock = threading.Lock()
_client: tuple[int, Any] | None = None


def _engine_address() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def docker_client() -> Any:
    """A docker SDK client for this process (DOCKER_HOST or the default socket),
    checked with a ping. The first call also removes orphaned redodiff containers."""
    global _client
    with _client_lock:
        if _client is not None and _client[0] == os.getpid():
            return _client[1]
        try:
            import docker
        except ImportError as e:
            raise SetupError("the Docker backend needs the Python package 'docker' "
                             "(pip install 'docker>=7')") from e
        try:
            client = docker.from_env(timeout=120)
            client.ping()
        except Exception as e:
            raise SetupError(
                f"cannot reach the Docker engine at {_engine_address()}: {e}\n"
                "Start one (as root, e.g. `dockerd --iptables=false --bridge=none --storage-driver=vfs &`) "
                "or point DOCKER_HOST at it.") from e
        _client = (os.getpid(), client)
    _reap_orphans(client)
    return client


def _docker_errors() -> Any:
    import docker.errors

    return docker.errors


def _proc_start_time(pid: int) -> str:
    """Field 22 of /proc/PID/stat: the start time, so a reused pid is not mistaken for its owner."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def owner_label() -> str:
    pid = os.getpid()
    try:
        start = _proc_start_time(pid)
    except OSError:
        start = "0"
    return f"{socket.gethostname()}:{pid}:{start}"


def _owner_alive(owner: str) -> bool:
    try:
        host, pid, start = owner.rsplit(":", 2)
    except ValueError:
        return True
    if host != socket.gethostname():
        return True  # another machine's (or container's): not ours to judge
    try:
        return _proc_start_time(int(pid)) == start
    except (OSError, ValueError, IndexError):
        return False


def _labels(role: str, **extra: str) -> dict[str, str]:
    return {LABEL_OWNER: owner_label(), LABEL_ROLE: role, **extra}


def remove_containers(client: Any, labels: dict[str, str]) -> int:
    """Force-remove every container (running or not) carrying all these labels."""
    errors = _docker_errors()
    filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
    n = 0
    try:
        found = client.containers.list(all=True, filters=filters)
    except errors.DockerException as e:
        log.warning("could not list containers %s: %s", filters, e)
        return 0
    for c in found:
        with contextlib.suppress(errors.NotFound, errors.APIError):
            c.remove(force=True)
            n += 1
    return n


def _reap_orphans(client: Any) -> None:
    errors = _docker_errors()
    try:
        found = client.containers.list(all=True, filters={"label": LABEL_OWNER})
    except errors.DockerException:
        return
    for c in found:
        owner = (c.labels or {}).get(LABEL_OWNER, "")
        if owner and not _owner_alive(owner):
            log.warning("removing container %s left by a redodiff process that is gone (%s)", c.name, owner)
            with contextlib.suppress(errors.NotFound, errors.APIError):
                c.remove(force=True)


_live: weakref.WeakSet[DockerCluster] = weakref.WeakSet()


@atexit.register
def _remove_own_containers() -> None:
    """At exit: destroy our clusters, then remove whatever container this process still owns
    (e.g. one whose creation a Ctrl-C interrupted). Orphans of processes that could not run
    this (SIGKILL) are removed by the next process's first ``docker_client()``."""
    for cluster in list(_live):
        with contextlib.suppress(Exception):
            cluster.destroy()
    if _client is None or _client[0] != os.getpid():
        return
    with contextlib.suppress(Exception):
        remove_containers(_client[1], {LABEL_OWNER: owner_label()})


@contextlib.contextmanager
def _hold_ctrl_c() -> Iterator[None]:
    """Hold Ctrl-C back while the engine creates a container: interrupting the request
    would leave the engine making a container we never hear of. KeyboardInterrupt is
    raised when the request is done. Only with Python's default SIGINT handler, in the
    main thread (a fuzz worker's own handler is left alone)."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    hit: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: hit.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if hit:
            raise KeyboardInterrupt


# -- images --------------------------------------------------------------------------
_PROBE = r"""
for d in "$PG_BINDIR" "$(p=$(command -v postgres 2>/dev/null) && echo "${p%/*}")" \
         /usr/lib/postgresql/15/bin /usr/local/pgsql/bin /usr/local/bin /usr/bin; do
  if [ -n "$d" ] && [ -x "$d/postgres" ] && [ -x "$d/initdb" ]; then
    echo "bindir=$d"; echo "version=$("$d/postgres" --version)"; break
  fi
done
echo "uid=$(id -u postgres 2>/dev/null)"
echo "gid=$(id -g postgres 2>/dev/null)"
echo "--- /etc/passwd"
cat /etc/passwd 2>/dev/null
"""


@dataclass(frozen=True)
class ImageInfo:
    """What a probe container found in an image."""

    image: str
    image_id: str
    bindir: str | None  # where postgres and initdb are (None: not found)
    version: str  # `postgres --version`
    pg_uid: int | None  # the image's postgres user
    pg_gid: int | None
    passwd: str  # the image's /etc/passwd

    @property
    def version_num(self) -> int:
        m = re.search(r"(\d+)\.(\d+)", self.version)
        return int(m.group(1)) * 10000 + int(m.group(2)) if m else 0

    def has_uid(self, uid: int) -> bool:
        for line in self.passwd.splitlines():
            parts = line.split(":")
            if len(parts) > 2 and parts[2] == str(uid):
                return True
        return False

    def require_postgres(self) -> str:
        """The bindir, checked to hold PostgreSQL 15."""
        if self.bindir is None:
            raise SetupError(f"no PostgreSQL found in image {self.image} (looked for postgres and initdb "
                             "in $PG_BINDIR, on PATH, /usr/lib/postgresql/15/bin, /usr/local/pgsql/bin)")
        if self.version_num // 10000 != SUPPORTED_MAJOR:
            raise SetupError(f"image {self.image} has {self.version!r}; redodiff needs PostgreSQL {SUPPORTED_MAJOR}")
        return self.bindir


_probe_cache: dict[str, ImageInfo] = {}
_probe_lock = threading.Lock()


def _get_image(client: Any, image: str) -> Any:
    errors = _docker_errors()
    try:
        return client.images.get(image)
    except errors.ImageNotFound:
        raise SetupError(f"Docker image {image!r} is not present locally: `docker pull {image}` "
                         "(or build it: `python -m harness.clusters.docker_images` makes one from the host's "
                         "PostgreSQL); redodiff never pulls implicitly") from None
    except errors.DockerException as e:
        raise SetupError(f"cannot inspect Docker image {image!r}: {e}") from e


def probe_image(client: Any, image: str) -> ImageInfo:
    """Find PostgreSQL, its version and the postgres user in ``image`` (one short container),
    cached per image id."""
    img = _get_image(client, image)
    with _probe_lock:
        cached = _probe_cache.get(image)
        if cached is not None and cached.image_id == img.id:
            return cached
    out = _run_once(client, image, entrypoint=["/bin/sh", "-c", _PROBE], command=[], user="0:0",
                    volumes={}, what="probing the image (needs /bin/sh)", role="probe", timeout=120)
    head, _, passwd = out.partition("--- /etc/passwd\n")
    kv = dict(line.split("=", 1) for line in head.splitlines() if "=" in line)

    def num(key: str) -> int | None:
        v = kv.get(key, "").strip()
        return int(v) if v.isdigit() else None

    info = ImageInfo(image, img.id, kv.get("bindir") or None, kv.get("version", "").strip(),
                     num("uid"), num("gid"), passwd)
    with _probe_lock:
        _probe_cache[image] = info
    return info


# -- running containers ----------------------------------------------------------------
def _cmdline(image: str, *, entrypoint: Sequence[str], command: Sequence[str], user: str | None,
             volumes: dict[str, dict[str, str]], network_mode: str, name: str | None = None,
             detach: bool = False, extra: Sequence[str] = ()) -> str:
    """The `docker run` command line equivalent to an SDK call (for messages)."""
    argv = ["docker", "run", "-d" if detach else "--rm"]
    if name:
        argv += ["--name", name]
    argv += ["--network", network_mode]
    if user:
        argv += ["--user", user]
    for host, spec in volumes.items():
        argv += ["-v", f"{host}:{spec['bind']}:{spec.get('mode', 'rw')}"]
    argv += list(extra)
    if entrypoint:
        argv += ["--entrypoint", entrypoint[0]]
    argv += [image, *entrypoint[1:], *command]
    return shlex.join(argv)


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def _remove_by_name(name: str, container: Any = None) -> None:
    """Force-remove a container (given, or looked up by name); a missing one is fine."""
    try:
        c = container if container is not None else docker_client().containers.get(name)
        c.remove(force=True)
    except Exception as e:
        if type(e).__name__ != "NotFound":
            log.warning("could not remove container %s: %s", name, e)


def _run_once(client: Any, image: str, *, entrypoint: list[str], command: list[str], user: str,
              volumes: dict[str, dict[str, str]], what: str, role: str, network_mode: str = "none",
              timeout: float = 300) -> str:
    """Run a container to completion; return its stdout. SetupError (with the output's
    tail and the command line) when it fails."""
    errors = _docker_errors()
    cmd = _cmdline(image, entrypoint=entrypoint, command=command, user=user, volumes=volumes,
                   network_mode=network_mode)
    name = f"redodiff-{role}-{uuid.uuid4().hex[:12]}"
    try:
        with _hold_ctrl_c():
            c = client.containers.create(image, entrypoint=entrypoint, command=command, user=user,
                                         volumes=volumes, network_mode=network_mode, labels=_labels(role),
                                         name=name)
    except errors.DockerException as e:
        raise SetupError(f"{what}: could not create a container of {image}: {e}\n  {cmd}") from e
    except BaseException:  # Ctrl-C: the engine may have made it anyway
        _remove_by_name(name)
        raise
    try:
        c.start()
        try:
            status = int(c.wait(timeout=timeout).get("StatusCode", -1))
        except Exception as e:  # requests' ReadTimeout, ConnectionError
            raise SetupError(f"{what}: no result within {timeout:g}s ({type(e).__name__}: {e})\n  {cmd}") from e
        out = c.logs(stdout=True, stderr=False).decode("utf-8", "replace")
        if status != 0:
            both = c.logs(stdout=True, stderr=True).decode("utf-8", "replace")
            raise SetupError(f"{what} failed in a container of {image} (exit {status}):\n  {cmd}\n"
                             f"--- container output (tail) ---\n{_tail(both)}")
        return str(out)
    except errors.DockerException as e:
        raise SetupError(f"{what}: {e}\n  {cmd}") from e
    finally:
        _remove_by_name(name, c)


@dataclass(frozen=True)
class _RunAs:
    """The user a container runs as, and a passwd file to mount when the image lacks it."""

    uid: int
    gid: int
    passwd: Path | None = None

    @property
    def user(self) -> str:
        return f"{self.uid}:{self.gid}"


def _run_as(info: ImageInfo, workdir: Path) -> _RunAs:
    """As root: the image's postgres user (files in the mounted directory are then owned
    by it). Otherwise ourselves, so we can read what the server writes; PostgreSQL
    needs a passwd entry for its uid, so one is added when the image has none."""
    if os.geteuid() == 0 and info.pg_uid is not None and info.pg_gid is not None:
        return _RunAs(info.pg_uid, info.pg_gid)
    if os.geteuid() == 0:  # root, and the image has no postgres user: the host's server user
        pw = pwd.getpwnam(server_user() or "postgres")
        uid, gid = pw.pw_uid, pw.pw_gid
    else:
        uid, gid = os.getuid(), os.getgid()
    if info.has_uid(uid):
        return _RunAs(uid, gid)
    passwd = workdir / "passwd"
    text = info.passwd if info.passwd.endswith("\n") or not info.passwd else info.passwd + "\n"
    passwd.write_text(text + f"redodiff:x:{uid}:{gid}:redodiff:/tmp:/bin/sh\n")
    passwd.chmod(0o644)
    return _RunAs(uid, gid, passwd)


def _give_to(path: Path, run_as: _RunAs) -> None:
    if os.geteuid() == 0:
        os.chown(path, run_as.uid, run_as.gid)


def _volumes(root: Path, bind: str, run_as: _RunAs) -> dict[str, dict[str, str]]:
    vols = {str(root): {"bind": bind, "mode": "rw"}}
    if run_as.passwd is not None:
        vols[str(run_as.passwd)] = {"bind": "/etc/passwd", "mode": "ro"}
    return vols


def _warn_version(info: ImageInfo) -> None:
    from oracles.pgbin import server_version_num

    with contextlib.suppress(SetupError):
        host = server_version_num()
        if host != info.version_num:
            log.warning("image %s has %s but pyredo mirrors the host's PostgreSQL (%d): redo that "
                        "changed between these minor releases may diverge", info.image, info.version, host)


# -- the workload cluster ----------------------------------------------------------------
_STOP_SIGNALS = {"smart": "SIGTERM", "fast": "SIGINT", "immediate": "SIGQUIT"}


class DockerCluster(LocalCluster):
    """A throwaway cluster whose server runs in a container of ``image``.

    The data directory is on the host (``pgdata``), so everything the harness
    does with a LocalCluster works unchanged; ``destroy()`` removes the
    container and (unless ``keep``) the directory.
    """

    def __init__(
        self,
        image: str,
        settings: ClusterSettings | None = None,
        *,
        base_dir: str | os.PathLike[str] | None = None,
        keep: bool = False,
        start_timeout: float = 120.0,
    ) -> None:
        super().__init__(settings, base_dir=base_dir, keep=keep)
        self.image = image
        self.start_timeout = start_timeout
        self.name = f"redodiff-pg-{uuid.uuid4().hex[:12]}"
        self.container: Any = None
        self.info: ImageInfo | None = None
        self.run_as: _RunAs | None = None
        self.command = ""  # the `docker run` equivalent of the server container
        self._logs = ""  # output of the last server container, kept after its removal
        _live.add(self)

    # -- lifecycle ---------------------------------------------------------------
    def _prepare(self) -> tuple[Any, ImageInfo, _RunAs]:
        client = docker_client()
        if self.info is None:
            self.info = probe_image(client, self.image)
            self.info.require_postgres()
            _warn_version(self.info)
        if self.run_as is None:
            self.run_as = _run_as(self.info, self.root)
            _give_to(self.root, self.run_as)
        return client, self.info, self.run_as

    def init(self) -> None:
        """initdb in a one-shot container, then the GUCs into postgresql.conf."""
        client, info, run_as = self._prepare()
        bindir = info.require_postgres()
        argv = ["-D", f"{CLUSTER_ROOT}/data", "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8",
                "--locale=C", f"--wal-segsize={self.settings.wal_segsize_mb}"]
        if self.settings.data_checksums:
            argv.append("--data-checksums")
        _run_once(client, self.image, entrypoint=[f"{bindir}/initdb"], command=argv, user=run_as.user,
                  volumes=_volumes(self.root, CLUSTER_ROOT, run_as), what="initdb", role="initdb")
        gucs = {**BASE_GUCS, **self.settings.gucs}
        with open(self.pgdata / "postgresql.conf", "a") as f:
            f.write("\n# redodiff\n" + "\n".join(ClusterSettings(gucs=gucs).conf_lines()) + "\n")

    def start(self, attempts: int = 3) -> None:
        """Run the server container on a free port; wait until it answers."""
        client, info, run_as = self._prepare()
        bindir = info.require_postgres()
        errors = _docker_errors()
        last: SetupError | None = None
        for _ in range(attempts):
            self.port = free_port()
            command = ["-D", f"{CLUSTER_ROOT}/data", "-p", str(self.port), "-k", CLUSTER_ROOT,
                       "-c", f"cluster_name={self.name}"]
            kw: dict[str, Any] = {
                "entrypoint": [f"{bindir}/postgres"], "command": command, "user": run_as.user,
                "volumes": _volumes(self.root, CLUSTER_ROOT, run_as), "network_mode": "host",
            }
            self.command = _cmdline(self.image, name=self.name, detach=True, **kw)
            try:
                with _hold_ctrl_c():
                    self.container = client.containers.run(
                        self.image, detach=True, name=self.name, labels=_labels("cluster"),
                        stop_signal="SIGINT", **kw)
            except BaseException as e:  # also Ctrl-C: the engine may have made it anyway
                _remove_by_name(self.name)
                if isinstance(e, errors.DockerException):
                    raise SetupError(f"could not start a container of {self.image}: {e}\n  {self.command}") from e
                raise
            try:
                self._wait_ready()
                self.running = True
                return
            except BaseException as e:
                self._save_logs()
                self._remove_container()
                if not isinstance(e, SetupError):
                    raise
                last = e
                if "could not bind" not in self._logs and "could not create any TCP/IP" not in self._logs:
                    break
        assert last is not None
        raise last

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        problem = ""
        while True:
            self.container.reload()
            state = self.container.attrs.get("State", {})
            if state.get("Status") in ("exited", "dead"):
                raise SetupError(
                    f"PostgreSQL in container {self.name} ({self.image}) exited with status "
                    f"{state.get('ExitCode')} while starting:\n  {self.command}{self.log_tail()}")
            try:
                with psycopg.connect(self.conninfo(), connect_timeout=3, autocommit=True) as conn:
                    row = conn.execute("SHOW cluster_name").fetchone()
                if row and row[0] == self.name:
                    return
                problem = f"port {self.port} is answered by another server ({row[0] if row else '?'})"
            except psycopg.Error as e:
                problem = str(e).strip()
            if time.monotonic() > deadline:
                raise SetupError(
                    f"PostgreSQL in container {self.name} ({self.image}) did not accept connections "
                    f"on 127.0.0.1:{self.port} within {self.start_timeout:g}s ({problem}):\n"
                    f"  {self.command}{self.log_tail()}")
            time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        """Shut the server down (smart/fast/immediate = SIGTERM/SIGINT/SIGQUIT), remove the container."""
        if not self.running:
            return
        try:
            self._stop_container(mode)
        finally:
            self.running = False

    def _stop_container(self, mode: str, timeout: float = 60) -> None:
        c = self.container
        if c is None:
            return
        errors = _docker_errors()
        try:
            with contextlib.suppress(errors.APIError):  # not running any more
                c.kill(signal=_STOP_SIGNALS[mode])
            try:
                c.wait(timeout=timeout)
            except errors.DockerException:
                raise
            except Exception:  # ReadTimeout: it would not stop
                log.warning("container %s did not stop within %gs: killing it", self.name, timeout)
                with contextlib.suppress(errors.APIError):
                    c.kill()
        finally:
            self._save_logs()
            self._remove_container()

    def destroy(self) -> None:
        """Stop and remove the container, then delete the directory (unless keep)."""
        if self._destroyed:
            return
        try:
            if self.container is not None:
                self._stop_container("fast")
        except Exception as e:
            log.warning("stopping container %s: %s", self.name, e)
        finally:
            self._remove_container()
            self.running = False
            _live.discard(self)
            super().destroy()

    def _remove_container(self) -> None:
        """Remove the server container — by name, so also one whose creation was
        interrupted (Ctrl-C) before the SDK handed it back."""
        c, self.container = self.container, None
        if c is None and self.info is None:
            return  # never got as far as creating one
        _remove_by_name(self.name, c)

    def _save_logs(self) -> None:
        if self.container is None:
            return
        with contextlib.suppress(Exception):
            self._logs = self.container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
            if self.keep:
                self.logfile.write_text(self._logs)

    def _kill_postmaster(self) -> None:
        if self.container is not None:
            with contextlib.suppress(Exception):
                self.container.kill()
        self.running = False

    def log_tail(self, lines: int = 30) -> str:
        text = self._logs
        if self.container is not None:
            with contextlib.suppress(Exception):
                text = self.container.logs(stdout=True, stderr=True, tail=lines).decode("utf-8", "replace")
        if not text.strip():
            return ""
        return f"\n--- server log tail (container {self.name}) ---\n{_tail(text, lines)}"

    def postmaster_pid(self) -> int | None:
        """The postmaster's pid on the host (it is the container's first process)."""
        if self.container is None:
            return None
        with contextlib.suppress(Exception):
            self.container.reload()
            pid = int(self.container.attrs.get("State", {}).get("Pid") or 0)
            return pid or None
        return None

    # -- connections -------------------------------------------------------------
    @property
    def dsn(self) -> str:
        return self.conninfo()

    def conninfo(self, dbname: str = "postgres", user: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={user} dbname={dbname}"

    @property
    def server_version(self) -> str:
        return self.info.version if self.info else ""

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<DockerCluster {self.image} {self.name} {self.pgdata} port={self.port} {state}>"


# -- the wal-redo server -------------------------------------------------------------------
class DockerWalRedoServer:
    """Command lines of wal-redo servers in containers of ``image``.

    Without ``cmd``: our stock-PostgreSQL server (``oracles/pg_walredo``) on a
    scratch data directory that the image's initdb makes once (``prepare()``),
    both mounted at ``/redodiff-walredo``. With ``cmd``: that program (the
    first word becomes the entrypoint), e.g. ``/usr/local/v15/bin/postgres
    --wal-redo`` in Neon's image, as the image's default user.

    Every ``argv()`` names a new container (``docker run -i --rm``), labelled
    with this object's ``client_id``; ``remove_containers()`` removes them all.
    """

    user = None  # the docker client runs as ourselves; the container has its own user

    def __init__(
        self,
        image: str,
        cmd: Sequence[str] | None = None,
        *,
        shared_buffers: str = "2MB",
        extra_gucs: dict[str, str] | None = None,
        docker_args: Sequence[str] = (),
    ) -> None:
        self.image = image
        self.cmd = list(cmd) if cmd else None
        self.shared_buffers = shared_buffers
        self.extra_gucs = dict(extra_gucs or {})
        self.docker_args = list(docker_args)
        self.client_id = uuid.uuid4().hex
        self.root: Path | None = None
        self.info: ImageInfo | None = None
        self.run_as: _RunAs | None = None
        self._docker_cli: str | None = None
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Check the image and the docker client; without ``cmd``, build the library and
        initdb the scratch directory in a container of the image."""
        with self._lock:
            if self._docker_cli is not None:
                return
            client = docker_client()
            cli = shutil.which("docker")
            if cli is None:
                raise SetupError("the `docker` command-line client is needed to attach to the wal-redo "
                                 "container (Debian: apt-get install docker.io)")
            if self.cmd is not None:
                _get_image(client, self.image)
                self._docker_cli = cli
                return
            from oracles.walredo_server import LIBRARY_NAME, SCRATCH_CONF, ensure_built

            built = ensure_built()
            info = probe_image(client, self.image)
            bindir = info.require_postgres()
            _warn_version(info)
            root = Path(tempfile.mkdtemp(prefix="redodiff-walredo-docker-"))
            try:
                root.chmod(0o755)
                run_as = _run_as(info, root)
                _give_to(root, run_as)
                lib = root / LIBRARY_NAME
                shutil.copy2(built, lib)
                lib.chmod(0o644)
                _run_once(client, self.image, entrypoint=[f"{bindir}/initdb"],
                          command=["-D", f"{WALREDO_ROOT}/data", "-U", "postgres", "-A", "trust", "--no-sync",
                                   "-E", "UTF8", "--locale=C", "--wal-segsize=1"],
                          user=run_as.user, volumes=_volumes(root, WALREDO_ROOT, run_as),
                          what="initdb of the wal-redo scratch cluster", role="initdb")
                with open(root / "data" / "postgresql.conf", "a") as f:
                    f.write("\n# redodiff wal-redo scratch cluster\n")
                    for k, v in SCRATCH_CONF.items():
                        f.write(f"{k} = '{v}'\n")
            except BaseException:
                shutil.rmtree(root, ignore_errors=True)
                raise
            self.root, self.info, self.run_as = root, info, run_as
            self._docker_cli = cli

    def argv(self) -> list[str]:
        """The command line of one server: a new container each time."""
        self.prepare()
        assert self._docker_cli is not None
        name = f"redodiff-walredo-{uuid.uuid4().hex[:12]}"
        argv = [self._docker_cli, "run", "-i", "--rm", "--pull", "never", "--name", name,
                "--label", f"{LABEL_OWNER}={owner_label()}", "--label", f"{LABEL_ROLE}=walredo",
                "--label", f"{LABEL_CLIENT}={self.client_id}", "--network", "none", "--log-driver", "none",
                *self.docker_args]
        if self.cmd is not None:
            prog = self.cmd[0]
            if prog.startswith("/") and Path(prog).parent.name == "bin":
                # as Neon's pageserver starts it: LD_LIBRARY_PATH = the installation's lib/
                argv += ["-e", f"LD_LIBRARY_PATH={Path(prog).parent.parent / 'lib'}"]
            return [*argv, "--entrypoint", prog, self.image, *self.cmd[1:]]
        assert self.root is not None and self.info is not None and self.run_as is not None
        from oracles.walredo_server import LIBRARY_NAME

        for host, spec in _volumes(self.root, WALREDO_ROOT, self.run_as).items():
            argv += ["-v", f"{host}:{spec['bind']}:{spec['mode']}"]
        argv += ["--user", self.run_as.user, "--entrypoint", f"{self.info.bindir}/postgres", self.image,
                 "--single", "-D", f"{WALREDO_ROOT}/data"]
        gucs = {
            "session_preload_libraries": f"{WALREDO_ROOT}/{LIBRARY_NAME}",
            "pg_walredo.serve": "on",
            "shared_buffers": self.shared_buffers,
            "fsync": "off",
            **self.extra_gucs,
        }
        for k, v in gucs.items():
            argv += ["-c", f"{k}={v}"]
        argv.append("postgres")
        return argv

    def remove_containers(self) -> int:
        """Force-remove every container this object started (they are all disposable)."""
        if self._docker_cli is None:
            return 0
        try:
            client = docker_client()
        except SetupError:
            return 0
        return remove_containers(client, {LABEL_CLIENT: self.client_id})

    def cleanup(self) -> None:
        """Remove the containers and the scratch directory."""
        self.remove_containers()
        root, self.root = self.root, None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
        self._docker_cli = None

    def __repr__(self) -> str:
        what = shlex.join(self.cmd) if self.cmd else "pg_walredo"
        return f"<DockerWalRedoServer {self.image} {what}>"


# exit codes of `docker run` itself (not of the container's program)
_DOCKER_RUN_FAILED = {125: "the docker client or daemon could not run the container",
                      126: "the container's command cannot be invoked",
                      127: "the container's command was not found"}


class DockerWalRedo(WalRedoProcess):
    """A wal-redo server in a container (``name = "walredo"``): a ``WalRedoProcess``
    whose child is ``docker run -i --rm ...``.

    ``cmd``: run this in the image instead of our pg_walredo server (e.g.
    Neon's ``/usr/local/v15/bin/postgres --wal-redo``); pings are then off
    unless ``ping=True``. Exit statuses are translated: ``docker run`` failing
    (125-127) is a spawn error, a container killed by signal N (128+N) looks
    like a child killed by that signal — so infrastructure trouble never
    passes for a finding.
    """

    def __init__(
        self,
        image: str,
        cmd: Sequence[str] | None = None,
        *,
        tag_layout: TagLayout = "neon",
        timeout: float = DEFAULT_TIMEOUT,
        spawn_timeout: float = 120.0,
        ping: bool | None = None,
        respawn_every: int | None = None,
        stderr_lines: int = 200,
        docker_args: Sequence[str] = (),
    ) -> None:
        self.docker = DockerWalRedoServer(image, cmd, docker_args=docker_args)
        super().__init__(None, server=self.docker, tag_layout=tag_layout, timeout=timeout,
                         spawn_timeout=spawn_timeout, ping=(cmd is None) if ping is None else ping,
                         respawn_every=respawn_every, stderr_lines=stderr_lines)
        self.image = image
        self._docker_finalizer = weakref.finalize(self, self.docker.cleanup)

    def _fail(self, child: Any, message: str, kind: str, tag: BufferTag | None,
              request: bytes) -> WalRedoError:
        err = super()._fail(child, message, kind, tag, request)
        self.docker.remove_containers()  # a hung container outlives its killed client
        rc = err.returncode
        if kind == "crash" and rc in _DOCKER_RUN_FAILED:
            err.kind = "spawn"
            err.message = f"{message} ({_DOCKER_RUN_FAILED[rc]}, docker run exit {rc})"
        elif rc is not None and 128 < rc < 160:
            err.returncode = -(rc - 128)  # the container's process died of a signal
        err.args = (str(err),)
        return err

    def restart(self) -> None:
        super().restart()
        self.docker.remove_containers()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._docker_finalizer()

    def __repr__(self) -> str:
        return f"<DockerWalRedo {self.image} pid={self.pid} requests={self.requests}>"
