"""Shared fixtures. Integration tests get real PostgreSQL clusters started by
the test session (free port, temp dir, cleaned up at the end)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness.clusters.local import ClusterSettings, LocalCluster
from oracles.pgbin import SetupError, bindir


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
