"""BRIN redo (pyredo.rmgr.brin) on real WAL, witnessed by the primary.

One workload makes PostgreSQL 15 emit every BRIN record type:

* CREATE INDEX on an existing 1 600-page table with pages_per_range=1:
  CREATE_INDEX, INSERT, INSERT+INIT, and REVMAP_EXTEND twice — the second
  revmap page lands on a regular page, which is first evacuated with
  UPDATE / UPDATE+INIT records;
* minmax on text growing past its page's free space: cross-page UPDATE and
  UPDATE+INIT; widening int / inet / box summaries in place, and text
  summaries shrinking in place (a greater, shorter max): SAMEPAGE_UPDATE;
* brin_summarize_range, brin_summarize_new_values and VACUUM summarizing new
  ranges (INSERT of a placeholder, then SAMEPAGE_UPDATE);
* brin_desummarize_range: DESUMMARIZE (then a re-summarize).

It runs with full_page_writes on, with it off (base pages from a snapshot, so
redo routines rebuild every page), and with wal_compression pglz / lz4 / zstd.
With full_page_writes off nothing zeroes page holes, so there the primary's
page must equal pyredo's byte for byte (stale bytes included), not only under
brin_mask; the one unlogged difference is the BRIN_EVACUATE_PAGE flag.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from redocases import COMPRESSED_MODES, MODES, compressed_images, divergences_of

from harness.clusters.datadir import DataDirPages
from harness.clusters.local import LocalCluster
from harness.verify.capture import Capture, capture, verify
from harness.verify.check import CheckReport
from harness.verify.plan import build_plan
from oracles.compare import explain_diff
from pyredo.engine import RedoEngine
from pyredo.page.brin import BRIN_EVACUATE_PAGE, BrinPageFlags, SetBrinPageFlags
from pyredo.rmgr import RM_BRIN_ID

BRIN_TYPES = (
    "CREATE_INDEX",
    "INSERT",
    "INSERT+INIT",
    "UPDATE",
    "UPDATE+INIT",
    "SAMEPAGE_UPDATE",
    "REVMAP_EXTEND",
    "DESUMMARIZE",
)


SETUP = (
    "DROP TABLE IF EXISTS brinrd_big, brinrd_txt, brinrd_geo",
    # fillfactor 10: ~22 rows a page, 1 637 heap pages, more ranges than one
    # revmap page holds (REVMAP_PAGE_MAXITEMS = 1360)
    "CREATE TABLE brinrd_big (id int) WITH (fillfactor = 10, autovacuum_enabled = off)",
    "INSERT INTO brinrd_big SELECT generate_series(1, 36000)",
    "CREATE TABLE brinrd_txt (id int, t text) WITH (fillfactor = 10, autovacuum_enabled = off)",
    "INSERT INTO brinrd_txt SELECT g, lpad(g::text, 100, 'a') FROM generate_series(1, 400) g",
    "CREATE INDEX brinrd_txt_idx ON brinrd_txt USING brin (t) WITH (pages_per_range = 1)",
    "CREATE TABLE brinrd_geo (id int, a inet, b box) WITH (fillfactor = 10, autovacuum_enabled = off)",
    "INSERT INTO brinrd_geo SELECT g, ('10.0.' || (g % 250) || '.1')::inet, "
    "box(point(g, g), point(g + 1, g + 1)) FROM generate_series(1, 300) g",
    "CREATE INDEX brinrd_geo_idx ON brinrd_geo USING brin "
    "(a inet_inclusion_ops, b box_inclusion_ops) WITH (pages_per_range = 1)",
)

WORKLOAD = (
    "CREATE INDEX brinrd_big_idx ON brinrd_big USING brin (id) WITH (pages_per_range = 1)",
    "INSERT INTO brinrd_big VALUES (100000), (-5)",
    # ~800 bytes of incompressible text as the new max: the summaries no longer fit
    "UPDATE brinrd_txt SET t = 'z' || (SELECT string_agg(md5((brinrd_txt.id * 100 + g)::text), '') "
    "FROM generate_series(1, 25) g) WHERE id % 6 = 1 AND id < 110",
    # a greater but shorter max: summaries shrink in place, leaving stale bytes
    "UPDATE brinrd_txt SET t = 'zz' || id WHERE id % 6 = 3 AND id < 200",
    "UPDATE brinrd_geo SET a = ('2001:db8::' || to_hex(id))::inet, "
    "b = box(point(-id, -id), point(id * 10, id * 10)) WHERE id % 7 = 0",
    "INSERT INTO brinrd_big SELECT generate_series(200001, 201000)",
    "SELECT brin_summarize_range('brinrd_big_idx', (pg_relation_size('brinrd_big') / 8192 - 30)::int)",
    "SELECT brin_summarize_new_values('brinrd_big_idx')",
    "INSERT INTO brinrd_big SELECT generate_series(300001, 301000)",
    "VACUUM brinrd_big",
    # 0 when VACUUM summarized the ranges the INSERT above added
    "SELECT brin_summarize_new_values('brinrd_big_idx')",
    "SELECT brin_desummarize_range('brinrd_big_idx', 5)",
    "SELECT brin_desummarize_range('brinrd_txt_idx', 2)",
    "SELECT brin_summarize_range('brinrd_txt_idx', 2)",
)


@dataclass
class Run:
    mode: str
    cap: Capture
    report: CheckReport
    results: list[tuple[str, Any]] = field(default_factory=list)  # (SELECT, its value)

    def values(self, needle: str) -> list[Any]:
        return [v for sql, v in self.results if needle in sql]


def run_steps(steps: tuple[str, ...], results: list[tuple[str, Any]],
              compression: str | None) -> Callable[[LocalCluster], None]:
    """The workload as a capture callable that keeps each SELECT's result."""

    def run(cluster: LocalCluster) -> None:
        with cluster.connect() as conn:
            if compression:
                conn.execute(f"SET wal_compression = {compression}")
            for sql in steps:
                cur = conn.execute(sql)
                if sql.startswith("SELECT"):
                    row = cur.fetchone()
                    results.append((sql, row[0] if row else None))

    return run


def mask_evacuate_flag(page: bytearray) -> None:
    """BRIN_EVACUATE_PAGE is set on the primary without WAL (brin_start_evacuating_page)."""
    if page[-2:] in (b"\x91\xf0", b"\x92\xf0", b"\x93\xf0"):
        SetBrinPageFlags(page, BrinPageFlags(page) & ~BRIN_EVACUATE_PAGE)


def raw_mismatches(cap: Capture, owners: set[str],
                   fix: Callable[[bytearray], None]) -> tuple[int, list[str]]:
    """Rebuild every page ``owners``' records touch and compare it with the
    primary's page byte for byte (after ``fix``): (pages compared, mismatches)."""
    primary, base = DataDirPages(cap.cluster.pgdata), cap.base
    compared, bad = 0, []
    for bp in build_plan(cap.records(), cap.start, cap.end):
        if bp.owner not in owners or bp.unverifiable:
            continue
        base_page = base(bp.tag) if bp.needs_base and base is not None else None
        want = primary(bp.tag)
        if (bp.needs_base and base_page is None) or want is None:
            continue
        got = bytearray(RedoEngine().reconstruct(bp.tag, base_page, bp.records))
        want_b = bytearray(want)
        fix(got)
        fix(want_b)
        compared += 1
        if got != want_b:
            bad.append(f"{bp.tag}: " + "; ".join(map(str, explain_diff(bytes(got), bytes(want_b), bp.owner)[:5])))
    return compared, bad


@pytest.fixture(scope="module", params=list(MODES))
def brin_run(request: pytest.FixtureRequest, cluster_factory: Any) -> Iterator[Run]:
    fpw, compression = MODES[request.param]
    cluster: LocalCluster = (cluster_factory(wal_segsize_mb=1) if fpw
                             else cluster_factory(wal_segsize_mb=1, full_page_writes=False))
    with cluster.connect() as conn:
        for sql in SETUP:
            conn.execute(sql)
    results: list[tuple[str, Any]] = []
    cap = capture(cluster, run_steps(WORKLOAD, results, compression), snapshot=not fpw)
    try:
        yield Run(request.param, cap, verify(cap, [RedoEngine()]), results)
    finally:
        cap.cleanup()
        with cluster.connect() as conn:
            conn.execute("DROP TABLE IF EXISTS brinrd_big, brinrd_txt, brinrd_geo")


@pytest.mark.parametrize("rtype", BRIN_TYPES)
def test_brin_record_type_verified(brin_run: Run, rtype: str) -> None:
    """Each BRIN record type occurs in the WAL and its pages match the primary."""
    rep = brin_run.report
    assert divergences_of(rep, "BRIN") == []
    assert not {t for t in rep.unsupported if t.startswith("BRIN/")}, rep.unsupported
    assert rep.record_types[f"BRIN/{rtype}"] > 0, dict(rep.record_types)


def test_brin_summarize_paths(brin_run: Run) -> None:
    """brin_summarize_range and brin_summarize_new_values summarized ranges, and
    VACUUM summarized the ones added after them (nothing left for the second call)."""
    assert brin_run.values("brin_summarize_range('brinrd_big_idx'") == [1]
    assert brin_run.values("brin_summarize_range('brinrd_txt_idx'") == [1]
    first, after_vacuum = brin_run.values("brin_summarize_new_values")
    assert first > 0
    assert after_vacuum == 0


@pytest.mark.parametrize("brin_run", ["nofpw-snapshot"], indirect=True)
def test_brin_pages_byte_exact_without_fpw(brin_run: Run) -> None:
    """Without full-page writes the primary's BRIN pages are the byte-exact
    witness: stale bytes that memmove leaves in free space must match too.
    (With full-page writes, images zero page holes: only brin_mask applies.)"""
    compared, bad = raw_mismatches(brin_run.cap, {"BRIN"}, mask_evacuate_flag)
    assert bad == []
    assert compared >= 10


@pytest.mark.parametrize("brin_run", COMPRESSED_MODES, indirect=True)
def test_brin_images_compressed(brin_run: Run) -> None:
    """wal_compression really compressed the BRIN block images replayed."""
    compression = MODES[brin_run.mode][1]
    assert compression is not None
    assert compressed_images((r for r in brin_run.cap.records() if r.rmid == RM_BRIN_ID), compression) > 0
