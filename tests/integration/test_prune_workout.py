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
