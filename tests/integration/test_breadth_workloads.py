"""The issue-16 rules emit SQL a real PostgreSQL runs without an error, and reach the
WAL they are for (init forks, HEAP_CONFIRM, partition moves, ...)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from generators.choose import RandomChooser
from generators.rules import RULES, Model, Session, create_table, finish
from generators.rules.builds import OPCLASS_BUILDS
from generators.rules.databases import DATABASE_SLOTS, TABLESPACE_SLOTS
from generators.workload import Settings, Workload
from harness.campaign.execute import execute
from harness.clusters.local import LocalCluster

BREADTH_RULES = ("unlogged_workout", "toggle_logged", "partition_move", "upsert_workout", "super_delete",
                 "multixact_locks",
                 "large_objects", "toast_heavy", "temp_tables", "create_tablespace", "create_database", "index_build")


def _workload(rules: tuple[str, ...], seed: int) -> Workload:
    ch = RandomChooser(seed)
    m = Model([Session(), Session()], max_rows=500)
    steps = create_table(m, ch)
    for rule in rules:
        r = next(r for r in RULES if r.name == rule)
        assert r.pre(m), f"{rule} does not apply after create_table"
        steps += r.fn(m, ch)
    steps += finish(m)
    # odd seeds: every session logs consistency-check images (BKPIMAGE_APPLY off)
    settings = Settings(wal_consistency_checking="all" if seed % 2 else "")
    return Workload(settings, tuple(steps), seed, len(m.sessions))


def _run(cluster: LocalCluster, wl: Workload, schema: str) -> list[Any]:
    cluster.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    cluster.execute(f"CREATE SCHEMA {schema}")
    try:
        return execute(cluster, wl, schema).errors
    finally:
        cluster.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        for db in DATABASE_SLOTS:  # the session's cluster is shared: leave no database or tablespace
            cluster.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        for spc in TABLESPACE_SLOTS:
            cluster.execute(f"DROP TABLESPACE IF EXISTS {spc}")


@pytest.mark.parametrize("rule", BREADTH_RULES)
def test_rule_sql_runs_on_postgresql(rule: str, major_cluster: Callable[..., LocalCluster]) -> None:
    cluster = major_cluster(15)
    for seed in range(4):
        errors = _run(cluster, _workload((rule,), seed), "breadth")
        assert not errors, [e.to_json() for e in errors]


def test_every_opclass_builds_over_rows(major_cluster: Callable[..., LocalCluster]) -> None:
    """Each (kind, AM, opclass) of the index_build rule: its CREATE INDEX (CONCURRENTLY
    or not) and its rebuild run on PostgreSQL over existing rows."""
    cluster = major_cluster(15)
    seen: set[tuple[str, str, str]] = set()
    for seed in range(400):
        wl = _workload(("index_build",), seed)
        idx = next(s.sql for s in wl.steps if "CREATE INDEX" in s.sql and " b" in s.sql)
        key = next(o for o in OPCLASS_BUILDS if f"USING {o[1]} (c0 {o[2]})" in idx)
        if key in seen:
            continue
        seen.add(key)
        errors = _run(cluster, wl, "breadth")
        assert not errors, [e.to_json() for e in errors]
    assert seen == set(OPCLASS_BUILDS)


def test_databases_in_tablespaces(major_cluster: Callable[..., LocalCluster]) -> None:
    """A workload tablespace, then databases made in it or moved to it (ALTER DATABASE
    SET TABLESPACE) with sessions connected to them."""
    cluster = major_cluster(15)
    moved = 0
    for seed in range(8):
        wl = _workload(("create_tablespace", "set_tablespace", "create_database", "create_database"), seed)
        moved += sum(1 for s in wl.steps if s.sql.startswith("ALTER DATABASE") or " TABLESPACE rdw_" in s.sql)
        assert any(s.database == "rdw_db_b" for s in wl.steps)
        errors = _run(cluster, wl, "breadth")
        assert not errors, [e.to_json() for e in errors]
    assert moved


def test_super_delete_is_written_and_redone(major_cluster: Callable[..., LocalCluster]) -> None:
    """The super_delete rule makes PostgreSQL back out speculative insertions in one
    session: Heap/DELETE records with XLH_DELETE_IS_SUPER, each followed by the retried
    insertion's Heap/CONFIRM; pyredo redoes the range and the primary agrees."""
    from generators.rules.relations import super_delete
    from harness.verify.capture import capture, verify
    from harness.verify.plan import decode_all
    from pyredo.engine import RedoEngine
    from pyredo.rmgr import RM_HEAP_ID
    from pyredo.rmgr.heapam_xlog import (
        XL_HEAP_DELETE,
        XLH_DELETE_IS_SUPER,
        XLOG_HEAP_CONFIRM,
        XLOG_HEAP_DELETE,
    )
    from pyredo.wal.record import XLR_RMGR_INFO_MASK

    cluster = major_cluster(15)
    steps = super_delete(Model([Session()]), RandomChooser(1))
    cluster.execute("DROP SCHEMA IF EXISTS sdel CASCADE")
    cluster.execute("CREATE SCHEMA sdel")
    try:
        sql = ["SET search_path = sdel" + "; " + s.sql for s in steps]
        with capture(cluster, sql) as cap:
            records = decode_all(cap.records())
            heap = [r for r in records if r.rmid == RM_HEAP_ID]
            supers = [r for r in heap if r.info & XLR_RMGR_INFO_MASK == XLOG_HEAP_DELETE
                      and XL_HEAP_DELETE.unpack_from(r.main_data)[3] & XLH_DELETE_IS_SUPER]
            confirms = [r for r in heap if r.info & XLR_RMGR_INFO_MASK == XLOG_HEAP_CONFIRM]
            assert supers and len(confirms) >= len(supers)
            report = verify(cap, [RedoEngine()], records=records)
            assert report.divergences == [] and report.pages_checked > 0
    finally:
        cluster.execute("DROP SCHEMA IF EXISTS sdel CASCADE")
