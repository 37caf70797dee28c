"""Run a Workload's steps on a cluster, one connection per session (and per other
database a session's steps name: ``Step.database``, opened on first use). Every
connection takes the workload's session settings (wal_consistency_checking).

Each session gets a lock timeout, so steps of different sessions that wait on
each other fail fast instead of hanging the single-threaded executor; a failed
step is recorded (with its error) and the session's broken transaction rolled
back, never fatal to the run.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import psycopg

from generators.workload import Settings, Step, Workload
from harness.clusters.local import LocalCluster
from harness.interrupts import Interrupts
from harness.selftest.faults import NO_FAULTS, IterationFaults

LOCK_TIMEOUT = "300ms"
STATEMENT_TIMEOUT = "120s"


@dataclass
class StepError:
    index: int
    step: Step
    error: str

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "session": self.step.session, "sql": self.step.sql[:300], "error": self.error}


class ClusterLost(RuntimeError):
    """The server went away mid-workload (crash, kill): an infrastructure error."""


@dataclass
class Execution:
    errors: list[StepError] = field(default_factory=list)
    steps_run: int = 0


def open_session(cluster: LocalCluster, schema: str, dbname: str = "postgres",
                 settings: Settings | None = None) -> psycopg.Connection[Any]:
    conn = cluster.connect(dbname, autocommit=True)
    conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
    conn.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
    conn.execute(f"SET search_path = {schema}, public")
    if settings is not None and settings.wal_consistency_checking:  # a session setting (superuser)
        conn.execute(f"SET wal_consistency_checking = '{settings.wal_consistency_checking}'")
    return conn


def open_sessions(cluster: LocalCluster, n: int, schema: str,
                  settings: Settings | None = None) -> list[psycopg.Connection[Any]]:
    return [open_session(cluster, schema, settings=settings) for _ in range(n)]


def _session_conn(cluster: LocalCluster, conns: list[psycopg.Connection[Any]],
                  others: dict[tuple[int, str], psycopg.Connection[Any]], step: Step,
                  settings: Settings) -> psycopg.Connection[Any]:
    """The connection a step runs on: its session's, or (``step.database``) that
    session's connection to another database, opened on first use (and again if a
    DROP DATABASE ... WITH (FORCE) closed it)."""
    if step.database is None:
        return conns[step.session % len(conns)]
    key = (step.session % len(conns), step.database)
    conn = others.get(key)
    if conn is None or conn.closed or conn.broken:
        conn = others[key] = open_session(cluster, "public", step.database, settings)
    return conn


def run_step(conn: psycopg.Connection[Any], step: Step) -> None:
    if step.copy_rows is not None:
        with conn.cursor() as cur, cur.copy(step.sql) as copy:
            for row in step.copy_rows:
                copy.write_row(row)
    else:
        conn.execute(step.sql)


def execute(cluster: LocalCluster, workload: Workload, schema: str, *,
            faults: IterationFaults = NO_FAULTS, interrupts: Interrupts | None = None) -> Execution:
    """Run every step in order on its session; the schema must exist. ``faults``:
    the iteration's injected faults (none by default). A stop request cancels the
    running statement and raises ``Interrupted`` before the next step."""
    interrupts = interrupts if interrupts is not None else Interrupts()
    ex = Execution()
    conns = open_sessions(cluster, max(1, workload.sessions), schema, workload.settings)
    others: dict[tuple[int, str], psycopg.Connection[Any]] = {}  # sessions' connections to other databases
    try:
        for i, step in enumerate(workload.steps):
            interrupts.check()
            step = faults.before_step(cluster, i, step)  # returns the step unless a fault is planned
            if step.script is not None:  # a regression test file: psql runs it (harness.campaign.regress)
                _run_script(cluster, i, step, workload.settings, ex, interrupts)
                continue
            try:
                conn = _session_conn(cluster, conns, others, step, workload.settings)
            except psycopg.OperationalError as e:  # e.g. its database was never created: the step fails
                ex.errors.append(StepError(i, step, f"{type(e).__name__}: {e}".strip()))
                ex.steps_run += 1
                continue
            try:
                _run_cancellable(conn, step, interrupts)
            except psycopg.OperationalError as e:
                if (conn.closed or conn.broken) and step.database is None:
                    raise ClusterLost(f"connection lost at step {i} ({step.sql[:80]}): {e}") from e
                ex.errors.append(StepError(i, step, f"{type(e).__name__}: {e}".strip()))
                _recover(conn)
            except psycopg.Error as e:
                ex.errors.append(StepError(i, step, f"{type(e).__name__}: {e}".strip()))
                _recover(conn)
            ex.steps_run += 1
    finally:
        for c in [*conns, *others.values()]:
            with contextlib.suppress(Exception):
                if c.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    c.execute("ROLLBACK")
            with contextlib.suppress(Exception):
                c.close()
    return ex


def _run_script(cluster: LocalCluster, i: int, step: Step, settings: Settings, ex: Execution,
                interrupts: Interrupts) -> None:
    """Run a script step; its failing statements are one StepError that counts them."""
    from harness.campaign.regress import regress_dir, run_script

    res = run_script(cluster, step, settings, regress_dir(cluster.pg.major), interrupts)
    if res.connection_lost and "terminated by signal" in cluster.log_tail(200):  # a crash, not a file's own \c
        raise ClusterLost(f"connection lost at step {i} (regression file {step.script}): {res.summary()}")
    if not res.as_expected:  # more (or fewer) errors than its expected output shows
        ex.errors.append(StepError(i, step, res.summary()))
    ex.steps_run += 1


def _run_cancellable(conn: psycopg.Connection[Any], step: Step, interrupts: Interrupts) -> None:
    """Run a step; a stop request cancels it (statement_timeout bounds it otherwise)."""
    try:
        with interrupts.cancelling(conn.cancel_safe):
            run_step(conn, step)
    except psycopg.Error:
        interrupts.check()  # cancelled for a stop request: not a step error
        raise


def _recover(conn: psycopg.Connection[Any]) -> None:
    """After a failed statement inside a transaction block, end that transaction."""
    status = conn.info.transaction_status
    if status == psycopg.pq.TransactionStatus.INERROR:
        with contextlib.suppress(psycopg.Error):
            conn.execute("ROLLBACK")
