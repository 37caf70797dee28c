"""The ``redodiff`` command line. Thin: each command parses options and calls
the module that does the job; one module per command family. Exit codes: 0 clean,
1 divergence (or bad WAL for ``decode``), 2 usage or setup error."""

from __future__ import annotations

import click

from harness.cli import bench as _bench
from harness.cli import campaign as _campaign
from harness.cli import pg as _pg
from harness.cli import reports as _reports
from harness.cli import selftest as _selftest
from harness.cli import verify as _verify


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="redodiff")
def main() -> None:
    """redodiff — differential testing of PostgreSQL WAL redo.

    Workloads run on a real PostgreSQL; every page their WAL touches is rebuilt
    by pyredo (a redo engine in Python) and by a `postgres --wal-redo` server
    (PostgreSQL's own C redo), compared byte for byte, and witnessed by the
    primary's page under PostgreSQL's consistency masks.

    \b
    Start here:
      redodiff demo                      run a built-in workload, decode and verify its WAL
      redodiff decode PGDATA/pg_wal      dump WAL like pg_waldump (text or JSON lines)
      redodiff check --pgdata DIR --start LSN
                                         verify a local cluster's WAL range
      redodiff fuzz --budget 60          a short fuzz campaign on throwaway clusters
      redodiff replay BUNDLE             does a saved divergence still diverge?
      redodiff minimize BUNDLE           shrink it to the fewest workload steps
      redodiff coverage REPORT.json      which record types have been verified
      redodiff pg install all            PostgreSQL 16, 17 and 18 next to the system's 15 (--pg N)
    """




main.add_command(_verify.decode)
main.add_command(_verify.check)
main.add_command(_verify.slot)
main.add_command(_verify.demo)
main.add_command(_bench.bench)
main.add_command(_campaign.fuzz)
main.add_command(_campaign.replay)
main.add_command(_campaign.minimize)
main.add_command(_campaign.gate)
main.add_command(_selftest.selftest)
main.add_command(_reports.coverage)
main.add_command(_reports.merge)
main.add_command(_reports.report)
main.add_command(_pg.pg)
