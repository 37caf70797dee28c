"""Generic WAL redo (pyredo.rmgr.generic) on real WAL from contrib bloom.

bloom writes every change as a generic record: CREATE INDEX writes each page
as a GENERIC_XLOG_FULL_IMAGE block (an image, also without full_page_writes),
inserts and VACUUM write deltas (fragments of offset / length / bytes) of the
data pages and the metapage. One index is built inside the captured range, the
other before it (so with full_page_writes off its deltas apply to snapshot
base pages). VACUUM compacts the pages, so pd_lower moves down over old tuple
bytes: redo must zero the hole as GenericXLogFinish did on the primary.

Runs with full_page_writes on, off (base pages from a snapshot), and with
wal_compression pglz / lz4 / zstd. GenericXLogFinish zeroes the hole on the
primary too, so without full_page_writes the primary's page must equal
pyredo's byte for byte, not only under generic_mask.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from redocases import COMPRESSED_MODES, MODES, compressed_images

from harness.clusters.datadir import DataDirPages
from harness.clusters.local import LocalCluster
from harness.verify.capture import Capture, capture, verify
from harness.verify.check import CheckReport
from harness.verify.plan import build_plan
from oracles.compare import explain_diff
from pyredo.engine import RedoEngine
from pyredo.rmgr import RM_GENERIC_ID

SETUP = (
    "CREATE EXTENSION IF NOT EXISTS bloom",
    "DROP TABLE IF EXISTS genrd_old, genrd_new",
    "CREATE TABLE genrd_old (a int, b int, c text) WITH (autovacuum_enabled = off)",
    "INSERT INTO genrd_old SELECT g, g % 97, 'v' || g FROM generate_series(1, 2000) g",
    "CREATE INDEX genrd_old_idx ON genrd_old USING bloom (a, b, c) "
    "WITH (length = 80, col1 = 2, col2 = 2, col3 = 4)",
)

WORKLOAD = (
    "CREATE TABLE genrd_new (a int, b int, c text) WITH (autovacuum_enabled = off)",
    "INSERT INTO genrd_new SELECT g, g % 89, md5(g::text) FROM generate_series(1, 1500) g",
    "CREATE INDEX genrd_new_idx ON genrd_new USING bloom (a, b, c)",
    "INSERT INTO genrd_new SELECT g, g % 89, md5(g::text) FROM generate_series(1501, 2500) g",
    "INSERT INTO genrd_old SELECT g, g % 97, 'v' || g FROM generate_series(2001, 3000) g",
    "DELETE FROM genrd_old WHERE a % 3 = 0",
    "DELETE FROM genrd_new WHERE a BETWEEN 100 AND 1400",
    "VACUUM genrd_old",
    "VACUUM genrd_new",
    # after VACUUM: inserts reuse the freed space the metapage lists
    "INSERT INTO genrd_new SELECT g, g % 89, md5(g::text) FROM generate_series(3001, 3500) g",
)


@dataclass
class Run:
    mode: str
    cap: Capture
    report: CheckReport


def raw_mismatches(cap: Capture, owners: set[str]) -> tuple[int, list[str]]:
    """Rebuild every page ``owners``' records touch and compare it with the
    primary's page byte for byte: (pages compared, mismatches)."""
    primary, base = DataDirPages(cap.cluster.pgdata), cap.base
    compared, bad = 0, []
    for bp in build_plan(cap.records(), cap.start, cap.end):
        if bp.owner not in owners or bp.unverifiable:
            continue
        base_page = base(bp.tag) if bp.needs_base and base is not None else None
        want = primary(bp.tag)
        if (bp.needs_base and base_page is None) or want is None:
            continue
        got = RedoEngine().reconstruct(bp.tag, base_page, bp.records)
        compared += 1
        if got != want:
            bad.append(f"{bp.tag}: " + "; ".join(map(str, explain_diff(got, want, bp.owner)[:5])))
    return compared, bad


@pytest.fixture(scope="module", params=list(MODES))
def generic_run(request: pytest.FixtureRequest, cluster_factory: Any) -> Iterator[Run]:
    fpw, compression = MODES[request.param]
    cluster: LocalCluster = (cluster_factory(wal_segsize_mb=1) if fpw
                             else cluster_factory(wal_segsize_mb=1, full_page_writes=False))
    with cluster.connect() as conn:
        for sql in SETUP:
            conn.execute(sql)
    steps = ([f"SET wal_compression = {compression}"] if compression else []) + list(WORKLOAD)
    cap = capture(cluster, steps, snapshot=not fpw)
    try:
        assert cap.errors == []
        yield Run(request.param, cap, verify(cap, [RedoEngine()]))
    finally:
        cap.cleanup()
        with cluster.connect() as conn:
            conn.execute("DROP TABLE IF EXISTS genrd_old, genrd_new")


def test_generic_records_verified(generic_run: Run) -> None:
    """Generic/Generic records occur, and every page they touch matches the primary."""
    rep = generic_run.report
    divergences = [f"{d.kind} {d.tag} {d.record_type}: {d.error or ''} {d.diff[:5]}"
                   for d in rep.divergences
                   if d.owner == "Generic" or d.record_type.startswith("Generic/")]
    assert divergences == []
    assert not {t for t in rep.unsupported if t.startswith("Generic/")}, rep.unsupported
    assert rep.record_types["Generic/Generic"] > 0, dict(rep.record_types)


def test_generic_records_carry_deltas_and_images(generic_run: Run) -> None:
    """Both block forms occur: deltas (block data) and full images (CREATE INDEX)."""
    deltas = images = 0
    for rec in generic_run.cap.records():
        if rec.rmid == RM_GENERIC_ID:
            for blk in rec.blocks.values():
                deltas += blk.has_data
                images += blk.has_image
    assert deltas > 1000
    assert images > 0


@pytest.mark.parametrize("generic_run", ["nofpw-snapshot"], indirect=True)
def test_generic_pages_byte_exact_without_fpw(generic_run: Run) -> None:
    """Without full-page writes the primary's bloom pages are the byte-exact
    witness, hole included (GenericXLogFinish and generic_redo both zero it);
    generic_mask would hide a hole redo forgot to zero."""
    compared, bad = raw_mismatches(generic_run.cap, {"Generic"})
    assert bad == []
    assert compared >= 10


@pytest.mark.parametrize("generic_run", COMPRESSED_MODES, indirect=True)
def test_generic_images_compressed(generic_run: Run) -> None:
    """wal_compression really compressed the generic block images replayed."""
    compression = MODES[generic_run.mode][1]
    assert compression is not None
    records = (r for r in generic_run.cap.records() if r.rmid == RM_GENERIC_ID)
    assert compressed_images(records, compression) > 0
