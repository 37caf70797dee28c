"""Fault injection for the fuzz loop: a plan object, off unless one is given.

A ``FaultPlan`` travels in the campaign's configuration (``FuzzConfig.faults``;
``redodiff fuzz --faults SPEC``, hidden, also read from ``$REDODIFF_FAULTS`` by
the CLI), so worker processes get it with their configuration. Without a plan
nothing is injected. For one iteration, ``plan.at(index)`` gives the
``IterationFaults`` the harness calls explicitly:

* ``before_step(cluster, i, step)`` — the executor, before each workload step;
* ``engines(list)`` — run_workload, on the engines it is about to check with
  (the wal-redo engine comes back wrapped in a ``FaultyWalRedo``);
* ``before_bundle_write(tmpdir)`` — write_bundle, inside its temporary directory.

``NO_FAULTS`` is the no-op one (every hook returns its input).

The spec is comma-separated ``KIND=VALUE[@I+I...]`` (``@`` restricts the fault to
those iteration indices; without it the fault fires in every iteration):

``kill_postgres=S``   SIGKILL the postmaster just before step S
``step_error=S``      run a statement that fails instead of step S
``walredo_kill=N``    stop the wal-redo server as its N-th request of the
                      iteration goes out, then SIGKILL it (a crash mid-request)
``walredo_hang=N``    SIGSTOP it instead: the client's timeout must fire
``bundle_errno=E``    writing a bundle fails with errno E (ENOSPC, EROFS, EIO or a number)
``step_sleep=S``      run ``SELECT pg_sleep(3600)`` instead of step S: a statement only a
                      cancel ends (Ctrl-C must cancel it, harness.interrupts)
``bundle_delay=MS``   writing a bundle takes MS milliseconds longer (a slow disk), with its
                      temporary directory in place: a window to interrupt it in

e.g. ``--faults "kill_postgres=3@0,walredo_hang=1@2"``. ``FaultPlan.fired`` keeps
what actually fired in this process, for tests and reports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

ENV = "REDODIFF_FAULTS"  # read by the CLI only (click envvar of the hidden --faults option)
KINDS = ("kill_postgres", "step_error", "walredo_kill", "walredo_hang", "bundle_errno", "step_sleep",
         "bundle_delay")
FAILING_SQL = "DO $$BEGIN RAISE EXCEPTION 'redodiff fault injection: step % fails', {i}; END$$"
SLEEPING_SQL = "SELECT pg_sleep(3600) /* redodiff fault injection: step {i} sleeps */"


@dataclass(frozen=True)
class Fault:
    kind: str
    value: int
    iterations: frozenset[int] | None = None  # None: every iteration

    def applies(self, index: int | None) -> bool:
        return self.iterations is None or index in self.iterations


@dataclass
class FaultPlan:
    faults: tuple[Fault, ...]
    fired: Counter[str] = field(default_factory=Counter)

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        out = []
        for item in (s.strip() for s in spec.split(",")):
            if not item:
                continue
            body, _, where = item.partition("@")
            kind, sep, value = body.partition("=")
            kind = kind.strip()
            if kind not in KINDS or not sep:
                raise ValueError(f"fault {item!r}: expected KIND=VALUE[@ITER+ITER], KIND one of {', '.join(KINDS)}")
            if kind == "bundle_errno" and not value.strip().isdigit():
                code = getattr(errno, value.strip().upper(), None)
                if code is None:
                    raise ValueError(f"fault {item!r}: unknown errno {value!r}")
            else:
                code = int(value)
            its = frozenset(int(x) for x in where.split("+")) if where else None
            out.append(Fault(kind, code, its))
        return cls(tuple(out))

    def find(self, kind: str, index: int | None) -> Fault | None:
        return next((f for f in self.faults if f.kind == kind and f.applies(index)), None)

    def at(self, index: int | None) -> IterationFaults:
        """The hooks of fuzz iteration ``index``: faults with ``@I`` fire only in iteration I."""
        return IterationFaults(self, index)


@dataclass(frozen=True)
class IterationFaults:
    """The faults of one iteration (``plan`` None: none). The harness calls its
    hooks explicitly; each returns its input unchanged when no fault applies."""

    plan: FaultPlan | None = None
    index: int | None = None

    def _find(self, kind: str) -> Fault | None:
        return self.plan.find(kind, self.index) if self.plan is not None else None

    def before_step(self, cluster: Any, index: int, step: Any) -> Any:
        """Called before workload step ``index``; returns the step to run."""
        if self.plan is None:
            return step
        f = self._find("kill_postgres")
        if f is not None and f.value == index:
            pid = cluster.postmaster_pid()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _wait_gone(pid)
                self.plan.fired["kill_postgres"] += 1
        for kind, sql in (("step_error", FAILING_SQL), ("step_sleep", SLEEPING_SQL)):
            f = self._find(kind)
            if f is not None and f.value == index:
                self.plan.fired[kind] += 1
                return dataclasses.replace(step, sql=sql.format(i=index), copy_rows=None)
        return step

    def engines(self, engine_list: Iterable[Any]) -> list[Any]:
        """The engines to check with; the wal-redo one wrapped when a walredo fault applies."""
        out = list(engine_list)
        if self.plan is None:
            return out
        fault = self._find("walredo_kill") or self._find("walredo_hang")
        if fault is None:
            return out
        return [FaultyWalRedo(e, fault, self.plan) if getattr(e, "name", None) == "walredo" else e for e in out]

    def before_bundle_write(self, path: Any) -> None:
        """Called by write_bundle inside its temporary directory, before the files."""
        f = self._find("bundle_delay")
        if f is not None and self.plan is not None:
            self.plan.fired["bundle_delay"] += 1
            time.sleep(f.value / 1000)
        f = self._find("bundle_errno")
        if f is not None and self.plan is not None:
            self.plan.fired["bundle_errno"] += 1
            raise OSError(f.value, f"{os.strerror(f.value)} (injected fault)", str(path))


NO_FAULTS = IterationFaults()


class FaultyWalRedo:
    """A wal-redo engine whose server is stopped (and maybe killed) during the
    N-th request: the request is really in flight when the server goes."""

    def __init__(self, inner: Any, fault: Fault, plan: FaultPlan) -> None:
        self.inner = inner
        self.name = inner.name
        self.fault = fault
        self.plan = plan
        self.requests = 0

    def reconstruct(self, tag: Any, base_page: bytes | None, records: Iterable[Any]) -> bytes:
        self._count_request()
        return bytes(self.inner.reconstruct(tag, base_page, records))

    def submit(self, tag: Any, base_page: bytes | None, records: Iterable[Any]) -> Any:
        """The checker sends requests ahead (oracles.walredo ``submit``): counted alike."""
        self._count_request()
        return self.inner.submit(tag, base_page, records)

    def _count_request(self) -> None:
        """One more request; at the N-th, stop (and maybe kill) the server before it is sent."""
        self.requests += 1
        if self.requests == self.fault.value:
            start = getattr(self.inner, "start", None)
            if start is not None:
                start()  # make sure there is a server to stop
            pid = getattr(self.inner, "pid", None)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
                if self.fault.kind == "walredo_kill":
                    # killed a moment later, while the client waits for the answer
                    threading.Timer(0.3, _kill_quietly, (pid,)).start()
                self.plan.fired[self.fault.kind] += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Wait until a process we do not own is gone (not even a zombie)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state == "Z":  # dead; reaping it is its parent's business
                return
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return
        time.sleep(0.05)
