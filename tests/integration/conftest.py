"""Fixtures shared by integration tests: a real divergence, made by a mutant; the C redo engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.campaign.bundle import is_bundle
from harness.campaign.fuzz import FuzzConfig, run_campaign, write_outputs
from harness.selftest.mutants import applied
from harness.verify.check import Engine
from oracles.pgbin import SetupError

MUTANT = "heap_insert_ctid_off_by_one"


@pytest.fixture(scope="session")
def mutant_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus whose bundles come from a one-iteration campaign under a mutant
    that breaks heap insert redo: real WAL, real divergences."""
    corpus = tmp_path_factory.mktemp("mutant-corpus")
    with applied(MUTANT):
        rep = run_campaign(FuzzConfig(seed=7, iterations=1, corpus=corpus))
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
def c_redo() -> Iterator[Engine | None]:
    """PostgreSQL's C redo (oracles/pg_walredo) as a second engine, if it can be built;
    None otherwise, and pyredo still runs against the primary."""
    try:
        from oracles.walredo import WalRedoProcess
        from oracles.walredo_server import ensure_built

        ensure_built()
    except (ImportError, SetupError):
        yield None
        return
    proc = WalRedoProcess()
    try:
        yield proc
    finally:
        proc.close()
