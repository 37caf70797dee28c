"""Stop requests (harness.interrupts): what a signal does, where the work stops, what
the partial result says. No PostgreSQL: the checker runs fake engines."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
from collections.abc import Iterable

import pytest
from factories import block, record, tag

from harness.interrupts import FAST, IMMEDIATE, Interrupted, Interrupts, stop_signals
from harness.reports.schema import CheckResult, IterationSummary
from harness.verify.check import Checker
from harness.verify.plan import BlockPlan, Plan
from pyredo import BLCKSZ
from pyredo.rmgr import RM_HEAP_ID
from pyredo.wal.record import BufferTag, DecodedXLogRecord

XLOG_HEAP_INSERT = 0x00


def test_a_request_is_noted_then_raised_where_the_work_checks() -> None:
    it = Interrupts()
    it.check()  # nothing asked: nothing raised
    it.escalate()
    assert it.pending and not it.immediate and it.shutdown_mode == "fast"
    with pytest.raises(Interrupted) as ei:
        it.check()
    assert isinstance(ei.value, KeyboardInterrupt)  # so no `except Exception` swallows it
    it.escalate()
    it.escalate()
    assert it.level == IMMEDIATE and it.shutdown_mode == "immediate"


def test_each_stops_before_the_next_item() -> None:
    it = Interrupts()
    seen = []
    with pytest.raises(Interrupted):
        for x in it.each(range(10)):
            seen.append(x)
            if x == 3:
                it.request()
    assert seen == [0, 1, 2, 3]


def test_first_signal_notes_and_cancels_second_raises() -> None:
    it = Interrupts()
    cancelled = threading.Event()
    old = signal.getsignal(signal.SIGINT)
    with stop_signals(it), it.cancelling(cancelled.set):
        signal.raise_signal(signal.SIGINT)  # the handler returns: the work goes on ...
        assert it.level == FAST
        assert cancelled.wait(30), "the blocking call was not cancelled"  # ... but its wait is cut short
        with pytest.raises(Interrupted):
            signal.raise_signal(signal.SIGTERM)  # the second stops where we are
    assert it.immediate
    assert signal.getsignal(signal.SIGINT) is old  # the handlers are put back


def test_cleanup_is_not_cut_short_by_a_further_signal() -> None:
    it = Interrupts()
    with stop_signals(it):
        signal.raise_signal(signal.SIGINT)
        with it.holding():
            signal.raise_signal(signal.SIGINT)  # immediate now, but cleanup runs on
            assert it.immediate
        with pytest.raises(Interrupted):
            it.check()


def test_a_worker_signal_only_wakes_the_worker() -> None:
    it = Interrupts()
    with stop_signals(it, escalate=False):
        signal.raise_signal(signal.SIGINT)  # a terminal's Ctrl-C reaches the worker too
        assert not it.pending  # the parent alone raises the level
        it.request(IMMEDIATE)  # the parent did
        with pytest.raises(Interrupted):
            signal.raise_signal(signal.SIGINT)  # the parent's wake-up


def _wait_for_stop(it: Interrupts, seen: object) -> None:
    while not it.pending:
        pass
    seen.value = it.level  # type: ignore[attr-defined]


def test_workers_see_their_parents_request() -> None:
    ctx = mp.get_context("spawn")
    it = Interrupts()
    it.share(ctx)
    seen = ctx.RawValue("i", 0)
    p = ctx.Process(target=_wait_for_stop, args=(it, seen))
    p.start()
    try:
        it.request(IMMEDIATE)
        p.join(120)  # a hang guard: the child returns as soon as it sees the level
        assert p.exitcode == 0 and seen.value == IMMEDIATE
    finally:
        if p.is_alive():
            p.kill()
            p.join()


# -- the checker: between pages -----------------------------------------------------------
class FakeEngine:
    """Answers every block with a page of ``fill``; fails on ``fail_on``; asks for a
    stop while redoing block ``stop_at`` (a signal arriving mid-page)."""

    def __init__(self, name: str, interrupts: Interrupts, *, fail_on: int | None = None,
                 stop_at: int | None = None) -> None:
        self.name = name
        self.interrupts = interrupts
        self.fail_on, self.stop_at = fail_on, stop_at
        self.asked: list[int] = []

    def reconstruct(self, t: BufferTag, base_page: bytes | None, records: Iterable[DecodedXLogRecord]) -> bytes:
        self.asked.append(t.blk)
        if t.blk == self.stop_at:
            self.interrupts.request()
        if t.blk == self.fail_on:
            raise ValueError(f"redo failed on block {t.blk}")
        return bytes(BLCKSZ)


def _plan(nblocks: int) -> Plan:
    blocks = {}
    for b in range(nblocks):
        rec = record(RM_HEAP_ID, XLOG_HEAP_INSERT, b"", block(0, b, will_init=True), lsn=0x0100_0000 + 0x100 * b)
        blocks[tag(b)] = BlockPlan(tag(b), [rec], owner="Heap")
    return Plan(blocks, nblocks, None, None)


def test_the_check_stops_at_the_next_page_and_keeps_what_it_found() -> None:
    it = Interrupts()
    a = FakeEngine("pyredo", it, fail_on=0, stop_at=2)
    b = FakeEngine("walredo", it)
    report = Checker([a, b], None, interrupts=it).check_plan(_plan(6))
    assert report.interrupted
    assert a.asked == [0, 1, 2] and b.asked == [0, 1, 2]  # block 2 was finished, 3.. never redone
    assert report.pages_skipped["not reached: interrupted"] == 3  # and not counted as verified
    assert [d.tag.blk for d in report.divergences] == [0]  # found before the stop: kept
    assert report.result().interrupted


def test_a_stop_while_decoding_reaches_no_page() -> None:
    it = Interrupts()
    plan = _plan(3)

    def records() -> Iterable[DecodedXLogRecord]:
        for bp in plan:
            yield from bp.records
            it.request()

    engine = FakeEngine("pyredo", it)
    report = Checker([engine], None, interrupts=it).check_records(records())
    assert report.interrupted and engine.asked == [] and report.pages_checked == 0


def test_an_engine_failing_because_of_the_stop_is_no_finding() -> None:
    """A wal-redo request cut short by the stop (its server killed) fails the page: the
    page is not reached, never an engine error."""
    it = Interrupts()
    a = FakeEngine("pyredo", it)
    b = FakeEngine("walredo", it, fail_on=1, stop_at=1)
    report = Checker([a, b], None, interrupts=it).check_plan(_plan(3))
    assert report.interrupted and not report.divergences and report.pages_checked == 1  # block 0, before
    assert report.pages_skipped["not reached: interrupted"] == 2


def test_a_wal_redo_request_in_flight_waits_a_short_grace_only() -> None:
    """A server that never answers (``sleep``), with a 1-hour timeout: once a stop is
    asked for, the request ends after its grace, as ``cancelled`` (infrastructure,
    never a finding), the server is killed, and a next request would start a new one."""
    from harness.reports.schema import EngineErrorKind
    from oracles.walredo import WalRedoError, WalRedoProcess

    it = Interrupts()
    server = WalRedoProcess(["sleep", "3600"], timeout=3600, stop_grace=0.1)
    Checker([server], None, interrupts=it)  # binds the stop request to the engine
    it.request()
    try:
        with pytest.raises(WalRedoError) as e:
            server.send_request(b"G" + bytes(20))
        assert e.value.kind == "cancelled" and EngineErrorKind.of(e.value) is EngineErrorKind.INFRASTRUCTURE
        assert server.pid is None and e.value.pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(e.value.pid, 0)
    finally:
        server.close()


# -- what the reports say ------------------------------------------------------------------
def test_interrupted_is_said_only_of_what_was_interrupted() -> None:
    whole = IterationSummary(0, 1, "fpw")
    part = IterationSummary(1, 2, "fpw", interrupted=True)
    assert "interrupted" not in whole.to_json() and "interrupted" not in whole.entry().to_json()
    assert part.to_json()["interrupted"] is True and part.entry().to_json()["interrupted"] is True
    assert IterationSummary.from_json(part.to_json()).interrupted
    assert "interrupted" not in CheckResult().to_json()
    assert CheckResult.from_json(CheckResult(interrupted=True).to_json()).interrupted
