"""``redodiff fuzz --workers N``: worker processes, each with its own clusters, pull
iterations from a shared counter and send their results to the parent.

Stopping: the campaign's ``Interrupts`` level is shared with the workers. Only
the parent's signal handler raises it; the parent then signals each worker, whose
handler only wakes it to look at the shared level (so a terminal's Ctrl-C, which
reaches every process of the group, counts once). The parent waits for its
workers with a bound: after ``STOP_WAIT`` it asks for an immediate stop, after
``KILL_WAIT`` more it kills them and stops the clusters they left behind (each
worker keeps its clusters in a directory of its own, so they can be found).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import queue as queue_module
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.clusters.local import stop_orphans
from harness.interrupts import IMMEDIATE, STOP_SIGNALS, Interrupts, stop_signals
from harness.reports.schema import FuzzReport, InfrastructureError, IterationSummary

if TYPE_CHECKING:
    from harness.campaign.fuzz import FuzzConfig
    from harness.clusters.pool import ClusterPool

log = logging.getLogger("redodiff.fuzz")

STOP_WAIT = 30.0  # seconds the workers get to stop fast (bundle, shut clusters down)
KILL_WAIT = 10.0  # then to stop immediately, before they are killed

RunOne = Callable[["ClusterPool", "FuzzConfig", int, str], IterationSummary]
ProgressFn = Callable[[FuzzReport], None]


def _worker(cfg: FuzzConfig, run_one: RunOne, counter: Any, base_dir: Path, queue: Any,
            deadline: float | None) -> None:
    """A worker process: iterations from the shared counter until the campaign ends."""
    with stop_signals(cfg.interrupts, escalate=False):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked by the parent while it started us
        try:
            pg_version = cfg.pg.server_version
            with cfg.pool(base_dir) as pool:
                while True:
                    with counter.get_lock():
                        j = counter.value
                        if not cfg.more(j, deadline):
                            break
                        counter.value += 1
                    queue.put(("result", run_one(pool, cfg, cfg.global_index(j), pg_version)))
        except KeyboardInterrupt:  # an immediate stop: the pool was closed on the way out
            pass
        except Exception as e:  # a worker that dies says why
            queue.put(("error", f"{type(e).__name__}: {e}"))
        finally:
            with cfg.interrupts.holding():
                cfg.engines.close()
            queue.put(("done", os.getpid()))


def run_parallel(cfg: FuzzConfig, rep: FuzzReport, deadline: float | None, progress: ProgressFn | None,
                 run_one: RunOne) -> None:
    """Run the campaign on ``cfg.workers`` processes; ``run_one`` runs one iteration."""
    ctx = mp.get_context("spawn")
    cfg.interrupts.share(ctx)
    counter = ctx.Value("i", 0)
    queue = ctx.Queue()
    # short names: a cluster's Unix socket lives in its directory, and its path must fit 107 bytes
    base = Path(tempfile.mkdtemp(prefix="redodiff-w-", dir=cfg.cluster_dir))
    base.chmod(0o755)  # the server user must reach the clusters below
    dirs = [base / str(i) for i in range(cfg.workers)]
    procs: list[Any] = []
    try:
        for d in dirs:
            d.mkdir(mode=0o755)
            procs.append(ctx.Process(target=_worker, args=(cfg, run_one, counter, d, queue, deadline)))
        # a worker starts with the stop signals blocked, until its handler is in place
        old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            for p in procs:
                p.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        with cfg.interrupts.holding():  # the parent only waits: a second signal must not cut that short
            _collect(cfg, rep, procs, queue, progress)
    finally:
        with cfg.interrupts.holding():
            reap_workers(procs, cfg.interrupts, KILL_WAIT if cfg.interrupts.pending else STOP_WAIT, KILL_WAIT)
            for d in dirs:
                stop_orphans(d)  # the clusters of a worker that had to be killed
            shutil.rmtree(base, ignore_errors=True)


def _collect(cfg: FuzzConfig, rep: FuzzReport, procs: list[Any], queue: Any,
             progress: ProgressFn | None) -> None:
    """Fold the workers' results in until every worker is done; pass each stop level
    on to the workers, and bound the wait for them once one is asked for."""
    running = {p.pid for p in procs}
    woken_for = 0  # the stop level the workers were last woken for
    give_up: float | None = None
    while running:
        level = cfg.interrupts.level
        if level > woken_for:
            woken_for = level
            signal_workers(procs, signal.SIGINT)
            give_up = time.monotonic() + (KILL_WAIT if level >= IMMEDIATE else STOP_WAIT)
        if give_up is not None and time.monotonic() > give_up:
            if level >= IMMEDIATE:
                return  # reap_workers kills what is left
            cfg.interrupts.escalate()
            continue
        try:
            kind, payload = queue.get(timeout=0.2)
        except queue_module.Empty:
            running -= {p.pid for p in procs if p.exitcode is not None}  # died without saying so
            continue
        if kind == "result":
            rep.add(payload)
            if progress:
                progress(rep)
        elif kind == "error":
            rep.infrastructure_errors.append(InfrastructureError(f"worker: {payload}"))
        else:
            running.discard(payload)


def signal_workers(procs: list[Any], signum: int) -> None:
    """Send ``signum`` to each worker process still alive."""
    for p in procs:
        if p.is_alive() and p.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signum)


def reap_workers(procs: list[Any], interrupts: Interrupts, wait: float, kill_wait: float) -> None:
    """Join every worker process (also ``check --workers``'); one that does not exit
    within ``wait`` is asked to stop immediately, then, after ``kill_wait``, killed."""
    for p in procs:
        p.join(timeout=wait)
        if p.is_alive():
            interrupts.request(IMMEDIATE)
            signal_workers([p], signal.SIGINT)
            p.join(timeout=kill_wait)
        if p.is_alive():
            log.warning("worker %s did not stop: killing it", p.pid)
            p.kill()
            p.join(timeout=kill_wait)
