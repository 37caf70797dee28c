"""Issue 20: the index_prune_workout rule reaches the records the 16-18 mutants of
gistRedoDeleteRecord, hash_xlog_vacuum_one_page and the freeze plans need, on a real
PostgreSQL, redone without page images by pyredo and the major's wal-redo server."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from majors import redo_steps_without_page_images

from generators.choose import RandomChooser
from generators.rules import Model, Session
from generators.rules.workouts import index_prune_workout
from pyredo.rmgr import heap2 as h2


def _steps(am: str) -> list[str]:
    """The rule's steps for the first seed that draws ``am`` and VACUUM (FREEZE)."""
    for seed in range(200):
        steps = [s.sql for s in index_prune_workout(Model([Session()]), RandomChooser(seed))]
        if any(f" USING {am} " in s for s in steps) and any("VACUUM (FREEZE)" in s for s in steps):
            return [f"DROP TABLE IF EXISTS {steps[0].split()[2]}", *steps]  # the cluster is the session's
    raise AssertionError(f"no seed draws {am} with a freeze")


@pytest.mark.parametrize(("major", "am", "cleanup", "freeze"), [
    (17, "gist", "Gist/DELETE", "Heap2/PRUNE_VACUUM_SCAN"),
    (16, "hash", "Hash/VACUUM_ONE_PAGE", "Heap2/FREEZE_PAGE"),
])
def test_an_insert_cleans_a_full_page_and_vacuum_freezes(major_cluster: Callable[..., Any], major: int, am: str,
                                                          cleanup: str, freeze: str) -> None:
    report, records, table = redo_steps_without_page_images(major_cluster, major, _steps(am))
    assert not report.unknown_divergences, report.unknown_divergences
    assert report.record_types[cleanup] > 0, Counter(table.record_type(r) for r in records)  # verified pages
    frozen = [r for r in records if table.record_type(r) == freeze]
    if major >= 17:  # PRUNE_VACUUM_SCAN carries freeze plans only when it froze something
        frozen = [r for r in frozen if r.main_data[1] & h2.XLHP_HAS_FREEZE_PLANS]
    assert frozen and report.record_types[freeze] > 0


def _deep_steps(rule: Callable[..., Any], want: Callable[[list[str]], bool]) -> list[str]:
    """The steps of ``rule`` for the first seed whose steps ``want`` accepts, run without
    wal_consistency_checking (the session fixture's cluster: the table is dropped first)."""
    for seed in range(200):
        steps = [s.sql for s in rule(Model([Session()]), RandomChooser(seed))]
        if want(steps) and not any("wal_consistency_checking" in s for s in steps):
            return [f"DROP TABLE IF EXISTS {steps[0].split()[2]}", *steps]
    raise AssertionError(f"no seed draws the wanted {rule.__name__}")


def test_deep_index_records_are_reached_and_redone(major_cluster: Callable[..., Any]) -> None:
    """The deep index maintenance records the 60 s selftest never reached (issues 16, 20, 22),
    from one run of each rule on 16, redone without page images: the fast root moves down
    (Btree/UNLINK_PAGE_META) and its split moves it up (Btree/INSERT_META); emptied posting-tree
    leaves (Gin/DELETE_PAGE, the build shape) and GiST leaves (Gist/PAGE_DELETE) are deleted;
    an inner GIN entry page splits (Gin/SPLIT with the child whose split it completes)."""
    from generators.rules.indexes import (
        btree_fastroot,
        gin_posting_tree,
        gist_page_delete,
        inner_split_workout,
    )

    steps = [*_deep_steps(btree_fastroot, lambda s: "(id)" in s[1]),
             *_deep_steps(gin_posting_tree, lambda s: s[2].startswith("CREATE INDEX")),
             *_deep_steps(gist_page_delete, lambda s: True),
             *_deep_steps(inner_split_workout, lambda s: " USING gin " in s[1])]
    report, records, table = redo_steps_without_page_images(major_cluster, 16, steps)
    assert not report.unknown_divergences, report.unknown_divergences
    got = Counter(table.record_type(r) for r in records)
    for t in ("Btree/UNLINK_PAGE_META", "Btree/INSERT_META", "Gin/DELETE_PAGE", "Gist/PAGE_DELETE"):
        assert report.record_types[t] > 0, (t, got)
    # an inner entry page split by its child's split carries the child, redone (not an image)
    assert "Gin/SPLIT|main|data" in report.cells, sorted(c for c in report.cells if c.startswith("Gin/"))
