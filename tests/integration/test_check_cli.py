"""`redodiff check --pgdata` on a pgbench run: summary, report keys, exit codes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from click.testing import CliRunner

from harness.cli import main
from oracles.pgbin import program
from pyredo.wal.lsn import format_lsn


def test_check_pgdata_after_pgbench(cluster_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pg = cluster_factory(wal_segsize_mb=1, fresh=True)
    bench = [program("pgbench"), "-h", str(pg.sockdir), "-p", str(pg.port), "-U", "postgres"]
    start = pg.checkpoint()
    subprocess.run([*bench, "-i", "-s", "2", "-q", "postgres"], check=True, capture_output=True)
    subprocess.run([*bench, "-c", "4", "-j", "2", "-t", "500", "postgres"], check=True, capture_output=True)
    end = pg.current_lsn()
    pg.checkpoint()
    report = tmp_path / "check.json"
    res = CliRunner().invoke(main, ["check", "--pgdata", str(pg.pgdata), "--start", format_lsn(start),
                                    "--end", format_lsn(end), "--engine", "pyredo", "--engine", "walredo",
                                    "--report", str(report)])
    assert res.exit_code == 0, res.output
    data = json.loads(report.read_text())
    for key in ("records", "pages_checked", "pages_skipped_no_base", "divergences", "unsupported", "record_types"):
        assert key in data
    assert data["divergences"] == [] and data["unsupported"] == {}
    assert data["pages_checked"] > 100 and data["records"] > 10_000
    # keyed as pg_waldump --stats=record names types
    for t in ("Heap/INSERT", "Heap/HOT_UPDATE", "Heap/UPDATE", "Btree/INSERT_LEAF", "Heap2/MULTI_INSERT+INIT"):
        assert data["record_types"].get(t, 0) > 0, (t, sorted(data["record_types"]))


def test_check_usage_errors(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["check", "--start", "0/1"])
    assert res.exit_code == 2 and "exactly one of --pgdata" in res.output
    res = CliRunner().invoke(main, ["check", "--pgdata", str(tmp_path), "--start", "nonsense"])
    assert res.exit_code == 2 and "is not an LSN" in res.output
