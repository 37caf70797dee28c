"""PostgreSQL in a Docker container as the workload cluster (``--cluster docker:IMAGE``).

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
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from typing import Any

import psycopg

from harness.clusters.docker_common import (
    ImageInfo,
    _cmdline,
    _docker_errors,
    _give_to,
    _hold_ctrl_c,
    _labels,
    _live,
    _remove_by_name,
    _run_as,
    _run_once,
    _RunAs,
    _tail,
    _volumes,
    _warn_version,
    docker_client,
    probe_image,
)
from harness.clusters.local import BASE_GUCS, ClusterSettings, LocalCluster, free_port
from oracles.pgbin import SetupError

__all__ = ["DockerCluster"]

log = logging.getLogger("redodiff.docker")

CLUSTER_ROOT = "/redodiff"  # the cluster's host directory, inside its container


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

    def destroy(self, mode: str = "fast") -> None:
        """Stop (in ``mode``) and remove the container, then delete the directory (unless keep)."""
        if self._destroyed:
            return
        try:
            if self.container is not None:
                self._stop_container(mode)
        except Exception as e:
            log.warning("stopping container %s: %s", self.name, e)
        finally:
            self._remove_container()
            self.running = False
            _live.discard(self)
            super().destroy(mode)

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
