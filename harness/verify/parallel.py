"""``redodiff check --workers N``: the plan's pages split across processes.

Pages are independent: each worker redoes and witnesses its share of the plan
with engines of its own (its own wal-redo server) and sends back a
``CheckReport``; the parent folds the parts into one report, the same as one
process would have written. The workers are forked after the WAL is decoded and
planned, so they share the decoded records with the parent instead of
decoding the range again or receiving it through a pipe.

Stopping follows harness.campaign.workers: the stop level is shared memory;
only the parent's signal handler raises it, a worker's handler only wakes the
worker, which stops at its next page and still sends what it found.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import queue as queue_module
import signal
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from harness.campaign.workers import reap_workers, signal_workers
from harness.interrupts import STOP_SIGNALS, Interrupted, Interrupts, stop_signals
from harness.verify.check import Checker, CheckReport
from harness.verify.plan import Plan, build_plan, records_frozen
from harness.verify.unlogged import end_of_recovery
from pyredo.rmgrlist import PG15, RmgrTable
from pyredo.wal.record import BufferTag, DecodedXLogRecord

log = logging.getLogger("redodiff.check")

JOIN_WAIT = 10.0  # seconds a worker gets to exit once it sent its part (or was told to stop)
PROGRESS_EVERY = 0.25  # seconds between a worker's progress messages

MakeChecker = Callable[[], Checker]  # builds a worker's Checker, with engines of its own


def split_plan(plan: Plan, workers: int) -> list[list[BufferTag]]:
    """The plan's blocks in ``workers`` shares of about the same number of records.
    A relation's blocks stay together (the records that touch several of its pages,
    such as a btree split, are then redone by one worker) unless the relation alone
    outweighs half a share; then it is cut into runs of consecutive blocks."""
    groups: dict[tuple[int, int, int], list[BufferTag]] = {}
    for tag in plan.blocks:
        groups.setdefault((tag.spc, tag.db, tag.rel), []).append(tag)
    weight = {tag: max(1, len(bp.records)) for tag, bp in plan.blocks.items()}
    cap = max(1, sum(weight.values()) // (2 * workers))
    pieces: list[list[BufferTag]] = []
    for tags in groups.values():
        run: list[BufferTag] = []
        run_weight = 0
        for tag in tags:
            run.append(tag)
            run_weight += weight[tag]
            if run_weight >= cap:
                pieces.append(run)
                run, run_weight = [], 0
        if run:
            pieces.append(run)
    shares: list[list[BufferTag]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for piece in sorted(pieces, key=lambda p: -sum(weight[t] for t in p)):  # longest first to the lightest
        i = loads.index(min(loads))
        shares[i] += piece
        loads[i] += sum(weight[t] for t in piece)
    order = {tag: k for k, tag in enumerate(plan.blocks)}
    return [sorted(share, key=order.__getitem__) for share in shares]


def check_parallel(plan: Plan, workers: int, make_checker: MakeChecker, interrupts: Interrupts, *,
                   engines: list[str], primary: Any = None, table: RmgrTable = PG15,
                   progress: Callable[[int, int], None] | None = None) -> CheckReport:
    """Check ``plan`` on ``workers`` forked processes; one report, as one process writes it."""
    ctx = mp.get_context("fork")
    interrupts.share(ctx)
    results = ctx.Queue()
    shares = [s for s in split_plan(plan, workers) if s]
    procs: list[Any] = []
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # until a worker's handler is in place
    try:
        for k, share in enumerate(shares):
            procs.append(ctx.Process(target=_worker, args=(plan, share, k, make_checker, interrupts, results),
                                     name=f"redodiff-check-{k}"))
            procs[-1].start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    report = CheckReport(records=plan.records, engines=list(engines), start=plan.start, end=plan.end)
    if plan.retired:
        report.pages_skipped["cut off by a relation truncation"] += len(plan.retired)
    try:
        with interrupts.holding():  # the parent only waits: a second signal must not cut that short
            parts = _collect(procs, results, interrupts, len(plan.blocks), progress)
    finally:
        with interrupts.holding():
            reap_workers(procs, interrupts, JOIN_WAIT, JOIN_WAIT)
    for k, share in enumerate(shares):
        part = parts.get(k)
        if part is None:  # killed, or stopped at once: its pages were not reached
            part = CheckReport(interrupted=interrupts.pending)
            part.pages_skipped["not reached: " + ("interrupted" if interrupts.pending else "worker died")] += len(share)
        merge_part(report, part, plan, table)
    report.end_of_recovery = end_of_recovery(plan.unlogged, report._init_pages, primary)
    return report


def _worker(plan: Plan, share: list[BufferTag], k: int, make_checker: MakeChecker, interrupts: Interrupts,
            results: Any) -> None:
    """A worker process: check its share of the plan, send the part (also when stopped)."""
    with contextlib.suppress(KeyboardInterrupt):  # an immediate stop: the parent counts its pages not reached
        _work(plan, share, k, make_checker, interrupts, results)


def _work(plan: Plan, share: list[BufferTag], k: int, make_checker: MakeChecker, interrupts: Interrupts,
          results: Any) -> None:
    with stop_signals(interrupts, escalate=False):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        sub = Plan({tag: plan.blocks[tag] for tag in share}, 0, plan.start, plan.end)
        last = [time.monotonic(), 0]

        def tick(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY or done == total:
                results.put(("progress", k, done - last[1]))
                last[0], last[1] = now, done

        checker = None
        try:
            checker = make_checker()
            part = checker.check_plan(sub, progress=tick)
            part.end_of_recovery = None  # the parent decides it, from every worker's init pages
            results.put(("part", k, part))
        except Interrupted:
            pass
        except Exception as e:  # a worker that fails says why; its pages count as not reached
            log.warning("check worker %d: %s: %s", k, type(e).__name__, e)
            failed = CheckReport(infrastructure=[f"check worker {k}: {type(e).__name__}: {e}"])
            failed.pages_skipped["not reached: worker failed"] += len(share)
            results.put(("part", k, failed))
        finally:
            if checker is not None:
                with interrupts.holding():
                    for engine in checker.engines:
                        close = getattr(engine, "close", None)
                        if close is not None:
                            with contextlib.suppress(Exception):
                                close()
            results.put(("done", k, os.getpid()))


def _collect(procs: list[Any], results: Any, interrupts: Interrupts, total: int,
             progress: Callable[[int, int], None] | None) -> dict[int, CheckReport]:
    """The workers' parts by worker; each stop level is passed on to the workers."""
    parts: dict[int, CheckReport] = {}
    running = set(range(len(procs)))
    woken_for = 0
    done = 0
    while running:
        if interrupts.level > woken_for:
            woken_for = interrupts.level
            signal_workers(procs, signal.SIGINT)
        try:
            kind, k, payload = results.get(timeout=0.2)
        except queue_module.Empty:  # a worker that exited has flushed what it sent: it died without "done"
            running -= {k for k, p in enumerate(procs) if p.exitcode is not None}
            continue
        if kind == "progress":
            done += payload
            if progress is not None:
                progress(min(done, total), total)
        elif kind == "part":
            parts[k] = payload
        else:
            running.discard(k)
    return parts


def merge_part(report: CheckReport, part: CheckReport, plan: Plan, table: RmgrTable = PG15) -> None:
    """Fold one worker's part into ``report``. A record that changes pages of two
    workers was verified (or found unsupported) by both; it counts once, as in one
    process (``table``: the one the workers' checkers name record types with)."""
    twice_verified = report._verified & part._verified
    twice_unsupported = report._unsupported_seen & part._unsupported_seen
    records = report.records
    report.merge(part)  # counts, verdicts, findings, interrupted
    report.records = records  # every part saw the same range
    report._verified |= part._verified
    report._unsupported_seen |= part._unsupported_seen
    report._init_pages.update(part._init_pages)
    if twice_verified or twice_unsupported:
        by_lsn = _records_at(plan, twice_verified | twice_unsupported)
        for lsn in twice_verified:
            report.record_types[table.record_type(by_lsn[lsn])] -= 1
        for lsn in twice_unsupported:
            report.unsupported[table.record_type(by_lsn[lsn])] -= 1
        report.record_types += Counter()  # drop the counts that fell to zero
        report.unsupported += Counter()


def _records_at(plan: Plan, lsns: set[int]) -> dict[int, DecodedXLogRecord]:
    found: dict[int, DecodedXLogRecord] = {}
    for bp in plan.blocks.values():
        for rec in bp.records:
            if rec.lsn in lsns:
                found[rec.lsn] = rec
    return found


def check_range(make_checker: MakeChecker, records: list[DecodedXLogRecord], *, start: int | None,
                end: int | None, workers: int, interrupts: Interrupts, engines: list[str], primary: Any = None,
                table: RmgrTable = PG15, progress: Callable[[int, int], None] | None = None,
                supersede: bool = True) -> CheckReport:
    """Plan the decoded range and check it, on ``workers`` processes when that is more than one
    (``supersede``: see build_plan)."""
    timing = CheckReport()
    # frozen: the collector leaves the records alone, and the forked workers do not copy them by touching them
    with records_frozen():
        try:
            with timing.timed("plan"):
                plan = build_plan(records, start, end, check=interrupts.check, supersede=supersede)
        except Interrupted:  # stopped while planning: no page was reached
            return CheckReport(engines=list(engines), start=start, end=end, interrupted=True, phases=timing.phases)
        if workers > 1 and len(plan.blocks) > 1:
            report = check_parallel(plan, workers, make_checker, interrupts, engines=engines, primary=primary,
                                    table=table, progress=progress)
        else:
            report = make_checker().check_plan(plan, progress=progress)
    report.phases.add_all(timing.phases)
    return report
