"""Shared fixtures. Integration tests get real PostgreSQL clusters started by
the test session (free port, temp dir, cleaned up at the end).

The session's temporary directories — clusters, snapshots, wal-redo scratch
clusters, the redodiff processes tests start — all go under one private base
(TMPDIR and ``tempfile.tempdir`` point there while the session runs). At its end
the session fails if a PostgreSQL (or any) process still runs there or a
``redodiff-*`` directory is left; what another run on the machine made is never
counted. The base is removed when the session's process exits.
"""

from __future__ import annotations

import atexit
import gc
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.clusters.local import ClusterSettings, LocalCluster
from harness.robustness.leftovers import clear, processes, settled, temp_dirs
from oracles.pgbin import SetupError, bindir

SESSION_BASE = pytest.StashKey[Path]()
SESSION_ENV = pytest.StashKey[pytest.MonkeyPatch]()
# this process's wal-redo scratch clusters are kept for reuse until it exits (oracles.walredo_server)
KEPT_UNTIL_EXIT = ("redodiff-walredo-",)


def pytest_sessionstart(session: pytest.Session) -> None:
    base = Path(tempfile.mkdtemp(prefix="pytest-rd-"))  # short: socket paths below must fit 107 bytes
    base.chmod(0o755)  # the server user must reach the clusters below
    env = pytest.MonkeyPatch()
    env.setenv("TMPDIR", str(base))
    env.setattr(tempfile, "tempdir", str(base))
    session.config.stash[SESSION_BASE] = base
    session.config.stash[SESSION_ENV] = env
    atexit.register(shutil.rmtree, base, True)
    # a SIGTERM to the run (CI stopping it) stops it as Ctrl-C does, so the fixtures that
    # started clusters and wal-redo servers tear them down; by default it would just die
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a test left a process or a redodiff-* directory in the session's base."""
    base = session.config.stash.get(SESSION_BASE, None)
    if base is None:
        return
    gc.collect()  # wal-redo clients no test holds any more stop their servers when collected
    left = settled(lambda: processes(base))
    dirs = temp_dirs(base, keep=KEPT_UNTIL_EXIT)
    session.config.stash[SESSION_ENV].undo()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write("\n")  # after the progress line
    if not (left or dirs):
        if reporter is not None:
            reporter.write_line(f"leak check: no process and no redodiff-* directory left in {base}")
        return
    lines = [f"process still running: {p}" for p in left] + [f"directory left: {base / d}" for d in dirs]
    if reporter is not None:
        reporter.section("left behind by the tests", sep="=", red=True, bold=True)
        for line in lines:
            reporter.write_line(line)
    clear(base, left)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _have_postgres() -> bool:
    try:
        bindir()
    except SetupError:
        return False
    return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Integration tests need PostgreSQL; CI installs it, so missing binaries there is an error
    # (the test fails at fixture set-up), never a silent pass.
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


ClusterFactory = Callable[..., LocalCluster]


@pytest.fixture(scope="session")
def cluster_factory() -> Iterator[ClusterFactory]:
    """Make clusters with given settings; each is cached for the session by its settings
    and destroyed at the end. Call with ``fresh=True`` for a private one."""
    cache: dict[str, LocalCluster] = {}
    made: list[LocalCluster] = []

    def make(
        *,
        wal_segsize_mb: int = 16,
        data_checksums: bool = False,
        fresh: bool = False,
        **gucs: Any,
    ) -> LocalCluster:
        key = repr((wal_segsize_mb, data_checksums, sorted(gucs.items())))
        if not fresh and key in cache:
            return cache[key]
        c = LocalCluster(ClusterSettings(wal_segsize_mb=wal_segsize_mb,
                                         data_checksums=data_checksums, gucs=dict(gucs)))
        c.__enter__()
        made.append(c)
        if not fresh:
            cache[key] = c
        return c

    yield make
    for c in made:
        c.destroy()


@pytest.fixture(scope="session")
def pg(cluster_factory: ClusterFactory) -> LocalCluster:
    """The default session cluster (16 MB segments, full_page_writes on)."""
    return cluster_factory()


@pytest.fixture(scope="session")
def pg_waldump() -> str:
    path = bindir() / "pg_waldump"
    if not path.exists():
        found = shutil.which("pg_waldump")
        if not found:
            pytest.fail("pg_waldump not found")
        return found
    return str(path)
