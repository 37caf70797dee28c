"""The wal-redo server in a Docker container (``--walredo-docker IMAGE``).

``DockerWalRedo`` is a ``WalRedoProcess`` whose server is ``docker run -i
--rm --network none ... IMAGE``: stdin/stdout are the protocol, stderr the
log. By default the container runs our stock-PostgreSQL server — the
``pg_walredo`` library built on the host (``ensure_built``) and a scratch data
directory initdb'd by the image's own ``initdb``, both bind-mounted. With
``cmd`` it runs that command instead, e.g. Neon's::

    DockerWalRedo("ghcr.io/neondatabase/neon:release-9129",
                  cmd=["/usr/local/v15/bin/postgres", "--wal-redo"])

The container's pipes go through the ``docker`` command-line client, which is
the simplest robust way to give a child process a container's stdin and stdout.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
import threading
import uuid
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.clusters.docker_common import (
    LABEL_CLIENT,
    LABEL_OWNER,
    LABEL_ROLE,
    ImageInfo,
    _get_image,
    _give_to,
    _run_as,
    _run_once,
    _RunAs,
    _volumes,
    _warn_version,
    docker_client,
    owner_label,
    probe_image,
    remove_containers,
)
from oracles.pgbin import SetupError
from oracles.walredo import DEFAULT_TIMEOUT, WalRedoError, WalRedoProcess
from oracles.walredo_protocol import TagLayout
from pyredo.wal.record import BufferTag

__all__ = ["DockerWalRedo", "DockerWalRedoServer"]

WALREDO_ROOT = "/redodiff-walredo"  # the wal-redo scratch directory, inside its container


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
                         respawn_every=respawn_every, stderr_lines=stderr_lines,
                         check_layout=cmd is None)  # as locally: our server is probed, a given command is not
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
