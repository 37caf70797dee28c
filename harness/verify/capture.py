"""Run SQL on a cluster and capture the WAL range it produced (step 2 of the data flow).

CHECKPOINT, note the start LSN (and, for no-FPI runs, snapshot the relation
files as base pages), run the steps, note the end LSN, CHECKPOINT so the
primary's pages are on disk, then verify the range with the given engines.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.clusters.datadir import DataDirPages, snapshot_relation_files
from harness.clusters.local import LocalCluster
from harness.reports.counts import PageCounts
from harness.verify.check import Checker, CheckReport, Engine
from harness.verify.clogcheck import check_clog, take_pg_xact_snapshot
from harness.verify.plan import decode_all
from pyredo.wal.reader import WalReader
from pyredo.wal.record import DecodedXLogRecord


@dataclass
class Capture:
    """A WAL range of a cluster, and the base pages taken at its start (if any)."""

    cluster: LocalCluster
    start: int
    end: int
    base_dir: Path | None = None
    pg_xact_dir: Path | None = None  # pg_xact at the range start, for the commit-log check
    errors: list[str] = field(default_factory=list)  # steps that failed (recorded, not fatal)

    @property
    def base(self) -> DataDirPages | None:
        return DataDirPages(self.base_dir) if self.base_dir is not None else None

    def records(self) -> Iterable[DecodedXLogRecord]:
        return WalReader(self.cluster.waldir, self.start, self.end)

    def cleanup(self) -> None:
        for d in (self.base_dir, self.pg_xact_dir):
            if d is not None:
                shutil.rmtree(d, ignore_errors=True)
        self.base_dir = self.pg_xact_dir = None

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def capture(
    cluster: LocalCluster,
    steps: Sequence[str] | Callable[[LocalCluster], None],
    *,
    snapshot: bool = False,
    dbname: str = "postgres",
) -> Capture:
    """Run ``steps`` (SQL strings, each autocommitted, or a callable) between two CHECKPOINTs."""
    start = cluster.checkpoint()
    cap = Capture(cluster, start, start)
    try:
        cap.pg_xact_dir = take_pg_xact_snapshot(cluster.pgdata, tempfile.mkdtemp(prefix="redodiff-xact-"))
        if snapshot:
            cap.base_dir = Path(tempfile.mkdtemp(prefix="redodiff-base-"))
            snapshot_relation_files(cluster.pgdata, cap.base_dir)
        if callable(steps):
            steps(cluster)
        else:
            with cluster.connect(dbname) as conn:
                for sql in steps:
                    try:
                        conn.execute(sql)
                    except Exception as e:  # a failing step is recorded, not fatal
                        cap.errors.append(f"{sql[:200]}: {type(e).__name__}: {e}")
        cap.end = cluster.current_lsn()
        cluster.checkpoint()
    except BaseException:  # Ctrl-C or a lost server: leave no snapshot behind
        cap.cleanup()
        raise
    return cap


def verify(cap: Capture, engines: Sequence[Engine], *, clog: bool = True,
           records: list[DecodedXLogRecord] | None = None, supersede: bool = True) -> CheckReport:
    """Redo every block of the captured range with ``engines`` and witness with the
    primary; then rebuild the commit log of the range and compare it with pg_xact.
    ``records``: the range decoded already (``decode_all``), if the caller has it."""
    checker = Checker(engines, DataDirPages(cap.cluster.pgdata), cap.base, end_lsn=cap.end,
                      base_is_snapshot=cap.base is not None, supersede=supersede)
    timing = PageCounts()
    if records is None:
        with timing.timed("decode"):
            records = decode_all(cap.records())  # once: the plan and the commit-log check share it
    report = checker.check_records(records, start=cap.start, end=cap.end)
    report.phases.add_all(timing.phases)
    if clog and cap.pg_xact_dir is not None:
        with report.timed("clog"):
            report.add_clog(check_clog(records, cap.pg_xact_dir, cap.cluster.pgdata))
    return report
