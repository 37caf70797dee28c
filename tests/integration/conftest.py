"""Fixtures shared by integration tests: a real divergence, made by a mutant."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.bundle import is_bundle
from harness.fuzz import FuzzConfig, run_campaign, write_outputs
from harness.mutants import applied

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
