"""`redodiff check --dsn`: an existing cluster verified over SQL and replication."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.clusters.local import LocalCluster
from oracles.pgbin import program


@pytest.fixture(scope="module")
def existing(cluster_factory) -> LocalCluster:  # type: ignore[no-untyped-def]
    """A local cluster we treat as someone else's: we reach it only through a DSN and a role."""
    pg = cluster_factory(wal_segsize_mb=1, fresh=True)
    pg.execute("CREATE ROLE checker LOGIN REPLICATION")
    pg.execute("GRANT pg_read_server_files, pg_checkpoint TO checker")
    pg.execute("GRANT EXECUTE ON FUNCTION pg_read_binary_file(text, bigint, bigint, boolean) TO checker")
    pg.execute("CREATE ROLE bystander LOGIN")
    return pg


def dsn(pg: LocalCluster, user: str) -> str:
    return f"host={pg.sockdir} port={pg.port} user={user} dbname=postgres"


def pgbench(pg: LocalCluster, *args: str) -> None:
    subprocess.run([program("pgbench"), "-h", str(pg.sockdir), "-p", str(pg.port), "-U", "postgres", *args,
                    "postgres"], check=True, capture_output=True, timeout=600)


def test_check_dsn_through_a_slot_after_pgbench(existing: LocalCluster, tmp_path: Path) -> None:
    pg = existing
    res = CliRunner().invoke(main, ["slot", "create", "--dsn", dsn(pg, "checker"), "--name", "rd_test"])
    assert res.exit_code == 0, res.output
    start = res.output.strip()
    pgbench(pg, "-i", "-s", "2", "-q")
    pgbench(pg, "-c", "4", "-j", "2", "-t", "400")
    report = tmp_path / "r.json"
    res = CliRunner().invoke(main, ["check", "--dsn", dsn(pg, "checker"), "--slot", "rd_test",
                                    "--engine", "pyredo", "--engine", "walredo", "--report", str(report)])
    assert res.exit_code == 0, res.output
    data = json.loads(report.read_text())
    assert data["start"] == start
    assert data["divergences"] == [] and data["unsupported"] == {}
    assert data["pages_checked"] > 100 and data["records"] > 5000
    for t in ("Heap/UPDATE", "Heap/HOT_UPDATE", "Heap/INSERT", "Btree/INSERT_LEAF"):
        assert data["record_types"].get(t, 0) > 0, t
    assert CliRunner().invoke(main, ["slot", "drop", "--dsn", dsn(pg, "checker"), "--name", "rd_test"]).exit_code == 0


def test_check_dsn_reading_pg_wal_files(existing: LocalCluster, tmp_path: Path) -> None:
    pg = existing
    pg.checkpoint()
    start = pg.current_lsn()
    pgbench(pg, "-c", "2", "-t", "200")
    report = tmp_path / "r.json"
    res = CliRunner().invoke(main, ["check", "--dsn", dsn(pg, "checker"), "--start", f"{start >> 32:X}/{start & 0xFFFFFFFF:X}",
                                    "--report", str(report)])
    assert res.exit_code == 0, res.output
    data = json.loads(report.read_text())
    assert data["divergences"] == [] and data["pages_checked"] > 20


def test_missing_rights_name_the_grant(existing: LocalCluster) -> None:
    pg = existing
    res = CliRunner().invoke(main, ["check", "--dsn", dsn(pg, "bystander"), "--start", "0/1000000"])
    assert res.exit_code == 2
    assert "GRANT EXECUTE ON FUNCTION pg_read_binary_file(text, bigint, bigint, boolean) TO bystander" in res.output
    assert "ALTER ROLE bystander REPLICATION" in res.output
    res = CliRunner().invoke(main, ["check", "--dsn", dsn(pg, "bystander"), "--slot", "nope"])
    assert res.exit_code == 2 and "ALTER ROLE bystander REPLICATION" in res.output
    res = CliRunner().invoke(main, ["slot", "create", "--dsn", dsn(pg, "bystander")])
    assert res.exit_code == 2 and "ALTER ROLE bystander REPLICATION" in res.output
