"""Issue 16: the image-form rules (generators.rules.images) reach, on a real PostgreSQL 15,
the coverage cells a nightly misses -- records whose page image is applied (a CHECKPOINT
right before them) or only checked (wal_consistency_checking) -- and both engines redo
every page the primary witnesses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from majors import pg_of

from generators.choose import RandomChooser
from generators.rules import Model, Session
from generators.rules import images as im
from generators.rules.model import StepList
from generators.workload import Settings, Workload
from harness.campaign.execute import execute
from harness.clusters.datadir import DataDirPages
from harness.verify.capture import capture
from harness.verify.check import Checker
from harness.verify.engines import EngineSet
from harness.verify.plan import decode_all
from pyredo.rmgrlist import table_for

SCHEMA = "images"


def _steps(rule: Callable[[Model, RandomChooser], StepList], want: Callable[[str], bool], names: int) -> StepList:
    """The rule's steps (two idle sessions; relation names numbered from ``names``) for the
    first seed whose SQL ``want`` accepts."""
    for seed in range(100):
        m = Model([Session(), Session()])
        m.counter = names
        steps = rule(m, RandomChooser(seed))
        if want(" ;; ".join(s.sql for s in steps)):
            return steps
    raise AssertionError(f"no seed of {rule.__name__} draws the variant")


def test_image_rules_reach_their_cells(major_cluster: Callable[..., Any]) -> None:
    cluster = major_cluster(15)
    wcc_gist = "'wal_consistency_checking', 'gist'"
    steps = [
        *_steps(im.heap_lock_updated, lambda sql: True, 0),
        *_steps(im.heap_vacuum_images, lambda sql: True, 10),
        *_steps(im.hash_image_forms, lambda sql: "generate_series(1, 6000)" in sql, 20),
        # the small variants (not the 1,400 ranges of REVMAP_EXTEND): a full BRIN page, then
        # a new range (INSERT+INIT) or a grown summary (UPDATE+INIT)
        *_steps(im.brin_image_forms, lambda sql: "(1, 1400)" not in sql and "(1, 408)" in sql, 30),
        *_steps(im.brin_image_forms, lambda sql: "(1, 1400)" not in sql and "(1, 410)" in sql, 40),
        *_steps(im.spgist_vacuum_images, lambda sql: sql.count("VACUUM") == 1, 50),  # the root-only index
        *_steps(im.gist_delete_images, lambda sql: wcc_gist in sql and "(1, 3000)" in sql, 60),
        *_steps(im.gist_delete_images, lambda sql: wcc_gist not in sql and "(1, 3000)" in sql, 70),
    ]
    wl = Workload(Settings(), tuple(steps), 0, 2)
    cluster.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    cluster.execute(f"CREATE SCHEMA {SCHEMA}")
    errors: list[Any] = []
    try:
        cap = capture(cluster, lambda c: errors.extend(execute(c, wl, SCHEMA).errors))
        try:
            es = EngineSet(names=("pyredo", "walredo"), pg=pg_of(15))
            try:
                checker = Checker(es.for_settings(wl.settings), DataDirPages(cluster.pgdata), cap.base,
                                  end_lsn=cap.end, table=table_for(15), supersede=False)
                report = checker.check_records(decode_all(cap.records()), start=cap.start, end=cap.end)
            finally:
                es.close()
        finally:
            cap.cleanup()
    finally:
        cluster.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    assert not errors, [e.to_json() for e in errors]
    assert not report.unknown_divergences, report.unknown_divergences
    missing = [c for c in (
        "Heap2/LOCK_UPDATED|main|image-applied", "Heap2/VACUUM|main|image-applied",
        "Heap2/FREEZE_PAGE|main|image-not-applied", "Hash/ADD_OVFL_PAGE|main|image-applied",
        "Hash/MOVE_PAGE_CONTENTS|main|image-applied", "Hash/VACUUM_ONE_PAGE|main|image-applied",
        "BRIN/INSERT+INIT|main|image-applied", "BRIN/UPDATE|main|image-applied",
        "BRIN/UPDATE+INIT|main|image-applied", "SPGist/VACUUM_ROOT|main|image-applied",
        "Gist/DELETE|main|image-applied", "Gist/DELETE|main|image-not-applied",
    ) if not report.cells.get(c)]
    assert not missing, sorted(c for c in report.cells if c.split("/")[0] in ("Heap2", "Hash", "BRIN", "SPGist", "Gist"))
