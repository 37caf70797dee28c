"""A broken engine diverges on many pages: bundles stay few and share one WAL copy."""

from __future__ import annotations

import json
from pathlib import Path

from harness.campaign.bundle import is_bundle, read_bundle
from harness.campaign.iteration import MAX_BUNDLES_PER_ITERATION


def test_bundles_are_capped_and_share_the_wal(mutant_corpus: Path) -> None:
    report = json.loads((mutant_corpus / "report.json").read_text())
    bundles = [p for p in (mutant_corpus / "bundles").iterdir() if is_bundle(p)]
    assert 1 <= len(bundles) <= MAX_BUNDLES_PER_ITERATION
    # every divergence is in the report; the unbundled ones say so
    assert len(report["divergences"]) >= len(bundles)
    assert sum(1 for d in report["divergences"] if d["bundle"]) == len(bundles)
    # one bundle per signature
    sigs = [(b.meta["kind"], b.meta["record_type"], b.meta["owner"]) for b in map(read_bundle, bundles)]
    assert len(sigs) == len(set(sigs))
    # the WAL range is copied once; the others point at that bundle
    with_wal = [p for p in bundles if (p / "wal").is_dir()]
    assert len(with_wal) == 1
    for p in bundles:
        if p not in with_wal:
            assert read_bundle(p).meta["wal_in_bundle"] == with_wal[0].name
