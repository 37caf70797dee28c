"""Heap and Heap2 redo of PostgreSQL 16, 17 and 18 against the real thing: a VACUUM-heavy
workload with full_page_writes=off (so redo routines, not page images, rebuild the
pages) on a cluster of each major, every page rebuilt by pyredo with that major's table
and by the major's wal-redo server, and witnessed by the primary."""

from __future__ import annotations

from collections import Counter

import pytest
from majors import redo_steps_without_page_images

from pyredo.rmgr import RM_HEAP2_ID, RM_HEAP_ID

STEPS = [
    "CREATE TABLE t (id int primary key, v text, n int) WITH (fillfactor = 70, autovacuum_enabled = off)",
    "INSERT INTO t SELECT g, repeat('x', g % 50), g FROM generate_series(1, 20000) g",
    "VACUUM (FREEZE) t",  # all-visible and all-frozen: what follows clears VM bits
    "UPDATE t SET n = n + 1 WHERE id % 7 = 0",
    "DELETE FROM t WHERE id % 11 = 0",
    "SELECT * FROM t WHERE id % 13 = 0 FOR UPDATE",
    "SELECT count(*) FROM t",  # on-access pruning
    "VACUUM t",
    "UPDATE t SET v = v || 'y' WHERE id % 5 = 0",
    "VACUUM (FREEZE) t",
    "DELETE FROM t WHERE id % 3 = 0",
    "VACUUM (FREEZE, DISABLE_PAGE_SKIPPING) t",
]
# the Heap2 types this workload must reach, per major's names
REACHED = {
    16: {"Heap2/PRUNE", "Heap2/VACUUM", "Heap2/FREEZE_PAGE", "Heap2/VISIBLE"},
    17: {"Heap2/PRUNE_ON_ACCESS", "Heap2/PRUNE_VACUUM_SCAN", "Heap2/PRUNE_VACUUM_CLEANUP", "Heap2/VISIBLE"},
}


@pytest.mark.slow
@pytest.mark.parametrize("major", [16, 17, 18])
def test_vacuum_heavy_heap_wal_is_redone_alike_by_pyredo_and_the_major_s_server(major_cluster, major: int) -> None:  # type: ignore[no-untyped-def]
    report, records, table = redo_steps_without_page_images(major_cluster, major, STEPS)
    assert report.divergences == [] and not report.unsupported, report.divergences[:3]
    assert report.pages_checked > 200 and set(report.verdicts) == {"verified"}, dict(report.verdicts)
    in_wal = Counter(table.record_type(r) for r in records if r.rmid in (RM_HEAP_ID, RM_HEAP2_ID))
    assert REACHED[min(major, 17)] <= set(in_wal), in_wal
    assert set(in_wal) <= set(report.record_types), "a heap record type was not verified"
