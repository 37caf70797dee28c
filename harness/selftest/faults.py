"""Fault injection for the fuzz loop: a few explicit hooks, off unless asked for.

A fault plan comes from ``$REDODIFF_FAULTS`` (so ``redodiff fuzz`` and its
worker processes pick it up) or from ``injected(...)`` in a test. Without
one, every hook is a no-op that returns its input. The harness calls:

* ``set_iteration(index)`` — run_workload, so a fault can target iterations;
* ``before_step(cluster, i, step)`` — the executor, before each workload step;
* ``engines(list)`` — run_workload, on the engines it is about to check with;
* ``before_bundle_write(tmpdir)`` — write_bundle, inside its temporary directory.

The spec is comma-separated ``KIND=VALUE[@I+I...]`` (``@`` restricts the fault to
those iteration indices; without it the fault fires in every iteration):

``kill_postgres=S``   SIGKILL the postmaster just before step S
``step_error=S``      run a statement that fails instead of step S
``walredo_kill=N``    stop the wal-redo server as its N-th request of the
                      iteration goes out, then SIGKILL it (a crash mid-request)
``walredo_hang=N``    SIGSTOP it instead: the client's timeout must fire
``bundle_errno=E``    writing a bundle fails with errno E (ENOSPC, EROFS, EIO or a number)

e.g. ``REDODIFF_FAULTS="kill_postgres=3@0,walredo_hang=1@2"``. ``fired`` keeps
what actually fired, for tests and reports.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

ENV = "REDODIFF_FAULTS"
KINDS = ("kill_postgres", "step_error", "walredo_kill", "walredo_hang", "bundle_errno")
FAILING_SQL = "DO $$BEGIN RAISE EXCEPTION 'redodiff fault injection: step % fails', {i}; END$$"


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


_injected: FaultPlan | None = None  # set by injected(): wins over the environment
_env: tuple[str, FaultPlan | None] = ("", None)  # $REDODIFF_FAULTS as last parsed
_iteration: int | None = None


def active() -> FaultPlan | None:
    """The plan in force: the one ``injected`` set, else ``$REDODIFF_FAULTS``."""
    global _env
    if _injected is not None:
        return _injected
    spec = os.environ.get(ENV, "")
    if spec != _env[0]:
        _env = (spec, FaultPlan.parse(spec) if spec else None)
    return _env[1]


@contextlib.contextmanager
def injected(spec: str | FaultPlan) -> Iterator[FaultPlan]:
    """Test API: run the block with this fault plan (and nothing from the environment)."""
    global _injected
    plan = FaultPlan.parse(spec) if isinstance(spec, str) else spec
    old = _injected
    _injected = plan
    try:
        yield plan
    finally:
        _injected = old


def set_iteration(index: int | None) -> None:
    """The fuzz iteration now running: faults with ``@I`` fire only in iteration I."""
    global _iteration
    _iteration = index


# -- hooks -------------------------------------------------------------------------------
def before_step(cluster: Any, index: int, step: Any) -> Any:
    """Called before workload step ``index``; returns the step to run."""
    plan = active()
    if plan is None:
        return step
    f = plan.find("kill_postgres", _iteration)
    if f is not None and f.value == index:
        pid = cluster.postmaster_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid)
            plan.fired["kill_postgres"] += 1
    f = plan.find("step_error", _iteration)
    if f is not None and f.value == index:
        import dataclasses

        plan.fired["step_error"] += 1
        return dataclasses.replace(step, sql=FAILING_SQL.format(i=index), copy_rows=None)
    return step


def engines(engine_list: Iterable[Any]) -> list[Any]:
    """The engines to check with; the wal-redo one wrapped when a walredo fault applies."""
    out = list(engine_list)
    plan = active()
    if plan is None:
        return out
    fault = plan.find("walredo_kill", _iteration) or plan.find("walredo_hang", _iteration)
    if fault is None:
        return out
    return [_FaultyWalRedo(e, fault, plan) if getattr(e, "name", None) == "walredo" else e for e in out]


def before_bundle_write(path: Any) -> None:
    """Called by write_bundle inside its temporary directory, before the files."""
    plan = active()
    if plan is None:
        return
    f = plan.find("bundle_errno", _iteration)
    if f is not None:
        plan.fired["bundle_errno"] += 1
        raise OSError(f.value, f"{os.strerror(f.value)} (injected fault)", str(path))


class _FaultyWalRedo:
    """A wal-redo engine whose server is stopped (and maybe killed) during the
    N-th request: the request is really in flight when the server goes."""

    def __init__(self, inner: Any, fault: Fault, plan: FaultPlan) -> None:
        self.inner = inner
        self.name = inner.name
        self.fault = fault
        self.plan = plan
        self.requests = 0

    def reconstruct(self, tag: Any, base_page: bytes | None, records: Iterable[Any]) -> bytes:
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
        return bytes(self.inner.reconstruct(tag, base_page, records))

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
