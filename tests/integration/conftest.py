"""Fixtures shared by integration tests: a real divergence, made by a mutant; the C redo engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from majors import pg_of

from harness.campaign.bundle import is_bundle
from harness.campaign.fuzz import FuzzConfig, run_campaign, write_outputs
from harness.clusters.local import ClusterSettings, LocalCluster
from harness.verify.check import Engine
from harness.verify.engines import EngineSet
from oracles.pgbin import SetupError
from oracles.walredo import WalRedoError, WalRedoProcess
from oracles.walredo_server import ensure_built

MUTANT = "heap_insert_ctid_off_by_one"


@pytest.fixture(scope="session")
def mutant_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus whose bundles come from a one-iteration campaign under a mutant
    that breaks heap insert redo: real WAL, real divergences."""
    corpus = tmp_path_factory.mktemp("mutant-corpus")
    rep = run_campaign(FuzzConfig(seed=7, iterations=1, corpus=corpus, engines=EngineSet(mutant=MUTANT)))
    assert rep.divergences, "the mutant produced no divergence"
    write_outputs(rep, corpus / "report.json", None, None)
    return corpus


@pytest.fixture(scope="session")
def mutant_bundle(mutant_corpus: Path) -> Path:
    bundles = sorted(p for p in (mutant_corpus / "bundles").iterdir() if is_bundle(p))
    # prefer a bundle of the mutated record type, on a user table
    for p in bundles:
        if "Heap_INSERT" in p.name:
            return p
    return bundles[0]


@pytest.fixture(scope="module")
def c_redo() -> Iterator[Engine]:
    """PostgreSQL's C redo (oracles/pg_walredo, a running wal-redo server) as a second
    engine. A test that needs it is skipped, with the reason, when the server cannot be
    built or started here (CI has postgresql-server-dev, so it runs there)."""
    try:
        ensure_built()
        proc = WalRedoProcess()
    except SetupError as e:
        pytest.skip(f"the wal-redo server cannot be built: {e}")
    try:
        proc.start()
    except WalRedoError as e:
        proc.close()
        pytest.skip(f"the wal-redo server cannot start: {e}")
    try:
        yield proc
    finally:
        proc.close()


@pytest.fixture(scope="session")
def major_cluster() -> Iterator[Callable[..., LocalCluster]]:
    """``major_cluster(major, wal_segsize_mb=16, **gucs)``: a cluster of that major (skipped
    when it is not installed), one per arguments for the session, destroyed at the end."""
    made: dict[str, LocalCluster] = {}

    def make(major: int, *, wal_segsize_mb: int = 16, **gucs: Any) -> LocalCluster:
        key = repr((major, wal_segsize_mb, sorted(gucs.items())))
        if key not in made:
            c = LocalCluster(ClusterSettings(wal_segsize_mb=wal_segsize_mb, gucs=dict(gucs), pg=pg_of(major)))
            c.__enter__()
            made[key] = c
        return made[key]

    yield make
    for c in made.values():
        c.destroy()
