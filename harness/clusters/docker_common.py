"""Docker plumbing shared by the container cluster (``docker_cluster``) and the
container wal-redo server (``docker_walredo``): the engine client, labels and
orphan cleanup, image probing, and one-shot containers.

Every container carries the labels ``redodiff.owner`` (host, pid and start
time of the Python process) and ``redodiff.role``; a wal-redo client's also
``redodiff.client``. A client removes its containers after a failure, on
``restart()`` and ``close()``; and the first use of Docker in a process
removes containers whose owner process is gone (a harness killed with
SIGKILL leaves no container running for long).

The SDK (``docker`` package) does the container lifecycle. Images are never
pulled implicitly: a missing image is a SetupError that says ``docker pull IMAGE``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import pwd
import re
import shlex
import signal
import socket
import threading
import uuid
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oracles.pgbin import SetupError, server_user

if TYPE_CHECKING:
    from harness.clusters.docker_cluster import DockerCluster

__all__ = [
    "ImageInfo",
    "docker_client",
    "probe_image",
    "remove_containers",
]

log = logging.getLogger("redodiff.docker")

LABEL_OWNER = "redodiff.owner"
LABEL_ROLE = "redodiff.role"
LABEL_CLIENT = "redodiff.client"
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


# the DockerClusters alive in this process (each adds itself): destroyed at exit
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
