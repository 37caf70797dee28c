"""A few files of PostgreSQL's regression suite run as a pg-regress workload (psql
scripts in their own database) on the session's cluster; every page their WAL
touched verifies."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from generators.regress import REGRESS_DB, regress_workload
from generators.workload import Settings
from harness.campaign.execute import execute
from harness.campaign.regress import regress_dir
from harness.clusters.local import LocalCluster
from harness.verify.capture import capture, verify
from oracles.pgbin import SetupError
from pyredo.engine import RedoEngine

# the setup every test needs (tables loaded from data/ with server-side COPY), an
# in-place tablespace, COPY to and from files of the build directory, btree and hash
# indexes over the loaded tables
FILES = ("test_setup", "tablespace", "copy", "btree_index", "hash_index")


def test_regress_files_run_and_their_pages_verify(major_cluster: Callable[..., LocalCluster]) -> None:
    cluster = major_cluster(15)
    try:
        suite = regress_dir(cluster.pg.major)
    except SetupError as e:
        pytest.skip(f"no regression suite of PostgreSQL 15 here: {e}")
    wl = regress_workload(suite, Settings(), seed=0, files=FILES)
    holder = []
    cap = capture(cluster, lambda c: holder.append(execute(c, wl, "public")))
    try:
        ex = holder[0]
        assert ex.steps_run == len(wl.steps)
        # the files ran as their expected output shows (the same number of errors), with
        # test_setup's functions from regress.so, built from the suite's regress.c
        assert [e.error for e in ex.errors] == []
        assert (suite / "lib" / "regress.so").is_file()
        assert cluster.scalar("SELECT count(*) FROM pg_proc WHERE probin LIKE '%/regress.so'",
                              dbname=REGRESS_DB) >= 3
        assert cluster.scalar("SELECT count(*) FROM onek", dbname=REGRESS_DB) == 1000
        report = verify(cap, [RedoEngine()])
    finally:
        cap.cleanup()
        cluster.execute(f"DROP DATABASE IF EXISTS {REGRESS_DB} WITH (FORCE)")
    assert report.pages_checked > 500
    assert report.record_types["Hash/INIT_META_PAGE"] >= 1 and report.record_types["Btree/INSERT_LEAF"] > 0
    assert [f"{d.kind} {d.tag} {d.record_type}" for d in report.unknown_divergences] == []
    assert not report.unsupported
