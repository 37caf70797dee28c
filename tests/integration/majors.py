"""The PostgreSQL majors the integration tests run on (``from majors import ...``, as
``redocases``): 15 is the system's, 16-18 come from ``redodiff pg install``."""

from __future__ import annotations

import pytest

from oracles.pgbin import PgInstall, SetupError, installed

MAJORS = (15, 16, 17, 18)


def pg_of(major: int) -> PgInstall:
    """PostgreSQL ``major``; a test of a major that is not installed skips, naming the
    command that installs it (``./dev setup`` installs them all, so CI runs them)."""
    try:
        return installed(major)
    except SetupError as e:
        pytest.skip(str(e))


def redo_steps_without_page_images(major_cluster, major: int, steps: list[str]):  # type: ignore[no-untyped-def]
    """Run ``steps`` on a cluster of ``major`` with full_page_writes=off (redo routines,
    not page images, rebuild the pages), then check every page the WAL changed with
    pyredo (that major's table) and the major's wal-redo server, witnessed by the
    primary. Returns (the check's report, the decoded records, the table)."""
    from generators.workload import Settings
    from harness.clusters.datadir import DataDirPages
    from harness.verify.capture import capture
    from harness.verify.check import Checker
    from harness.verify.engines import EngineSet
    from harness.verify.plan import decode_all
    from pyredo.rmgrlist import table_for

    inst, table = pg_of(major), table_for(major)
    pg = major_cluster(major, full_page_writes=False, autovacuum=False, vacuum_freeze_min_age=0)
    cap = capture(pg, steps, snapshot=True)
    try:
        assert not cap.errors, cap.errors
        es = EngineSet(names=("pyredo", "walredo"), pg=inst)
        try:
            checker = Checker(es.for_settings(Settings(full_page_writes=False)), DataDirPages(pg.pgdata),
                              cap.base, end_lsn=cap.end, base_is_snapshot=True, table=table)
            records = decode_all(cap.records())
            return checker.check_records(records, start=cap.start, end=cap.end), records, table
        finally:
            es.close()
    finally:
        cap.cleanup()
