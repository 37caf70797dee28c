"""Ctrl-C and SIGTERM, handled the way PostgreSQL handles them.

PostgreSQL's signal handlers only note a request (``die()`` and
``StatementCancelHandler`` set ``InterruptPending``); the work stops at the next
``CHECK_FOR_INTERRUPTS()``, where stopping is safe. Here the same: a signal only
raises the ``Interrupts`` level, and the harness calls ``check()`` at its safe
points — between workload steps, between pages of a check, between WAL records
of a plan, between bundles.

* The first SIGINT or SIGTERM asks for a **fast** stop (as ``pg_ctl -m fast``):
  the statement running on the workload cluster is cancelled, the iteration stops
  at its next step or page, the divergences found so far are bundled, clusters are
  shut down fast, the report is written and says ``interrupted``.
* A second asks for an **immediate** stop: ``Interrupted`` is raised at once from
  the handler, bundles not yet written are given up, clusters are shut down with
  ``-m immediate``. Cleanup (``holding()``) hurries but is never cut short.

An ``Interrupts`` travels in the configuration objects (``FuzzConfig``,
``ClusterPool``, ``Checker`` ...), never in a module global. Worker processes share
their parent's level through shared memory (``share()``): only the parent's handler
raises it; a worker's handler wakes the worker (cancels its statement, and at the
immediate level raises).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

FAST, IMMEDIATE = 1, 2  # the shutdown modes of pg_ctl, in the order a user escalates
MODE_NAMES = {FAST: "fast", IMMEDIATE: "immediate"}
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run was asked to stop. A KeyboardInterrupt, so no ``except Exception``
    swallows it and whatever cleans up after Ctrl-C cleans up after it."""


class Interrupts:
    """The stop request of one run: its level (0, FAST, IMMEDIATE), the calls that
    cut a blocking wait short (``cancelling``), and whether cleanup is running."""

    def __init__(self) -> None:
        self._level = 0
        self._shared: Any = None  # a multiprocessing RawValue once shared with workers
        self._cancels: list[Callable[[], None]] = []
        self._holding = 0

    def __getstate__(self) -> dict[str, Any]:
        """A worker gets the shared level only: callbacks and cleanup state are its own."""
        return {"_shared": self._shared, "_level": self.level}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._shared, self._level = state["_shared"], state["_level"]
        self._cancels, self._holding = [], 0

    def share(self, ctx: Any) -> None:
        """Keep the level in shared memory of multiprocessing context ``ctx``, so the
        worker processes started with this object see every request."""
        if self._shared is None:
            self._shared = ctx.RawValue("i", self._level)

    @property
    def level(self) -> int:
        return int(self._shared.value) if self._shared is not None else self._level

    @property
    def pending(self) -> bool:
        return self.level >= FAST

    @property
    def immediate(self) -> bool:
        return self.level >= IMMEDIATE

    @property
    def shutdown_mode(self) -> str:
        """The pg_ctl shutdown mode cleanup uses: fast, or immediate once asked to."""
        return "immediate" if self.immediate else "fast"

    def request(self, level: int = FAST) -> None:
        new = max(self.level, level)
        self._level = new
        if self._shared is not None:
            self._shared.value = new

    def escalate(self) -> None:
        """One more stop signal: fast, then immediate."""
        self.request(min(self.level + 1, IMMEDIATE))

    def check(self) -> None:
        """CHECK_FOR_INTERRUPTS(): raise ``Interrupted`` when a stop was asked for."""
        if self.pending:
            raise Interrupted(f"{MODE_NAMES[min(self.level, IMMEDIATE)]} stop requested")

    def each(self, items: Iterable[T]) -> Iterator[T]:
        """``items``, checking before each one (a loop that cannot call check() itself)."""
        shared = self._shared
        for item in items:  # ``pending``, inline: this runs once per WAL record
            if (shared.value if shared is not None else self._level) >= FAST:
                self.check()
            yield item

    @contextlib.contextmanager
    def cancelling(self, cancel: Callable[[], None]) -> Iterator[None]:
        """While the block runs, a stop request calls ``cancel`` (in a thread: it may
        block) — e.g. a connection's ``cancel_safe``, which ends the running statement."""
        self._cancels.append(cancel)
        try:
            if self.pending:  # asked just before the block began
                _in_thread(cancel)
            yield
        finally:
            self._cancels.remove(cancel)

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Cleanup: a further signal makes it hurry (``shutdown_mode``), never cuts it short."""
        self._holding += 1
        try:
            yield
        finally:
            self._holding -= 1

    def wake(self) -> None:
        """What a signal does once its request is noted: cut blocking waits short, and
        at the immediate level stop where we are (unless cleaning up)."""
        if not self.pending:
            return
        for cancel in list(self._cancels):
            _in_thread(cancel)
        if self.immediate and not self._holding:
            raise Interrupted("immediate stop requested")


def _in_thread(fn: Callable[[], None]) -> None:
    def run() -> None:
        with contextlib.suppress(Exception):  # the statement may have ended meanwhile
            fn()

    threading.Thread(target=run, name="redodiff-cancel", daemon=True).start()


@contextlib.contextmanager
def stop_signals(interrupts: Interrupts, *, escalate: bool = True) -> Iterator[Interrupts]:
    """Route SIGINT and SIGTERM to ``interrupts`` while the block runs (main thread).
    ``escalate=False`` in a worker process: its parent raises the shared level, a
    signal only wakes the worker to look at it."""

    def handler(signum: int, frame: object) -> None:
        if escalate:
            interrupts.escalate()
        interrupts.wake()

    old = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield interrupts
    finally:
        for s, h in old.items():
            signal.signal(s, h)
