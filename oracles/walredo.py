"""WalRedoProcess: the wal-redo server as a redo engine.

``WalRedoProcess.reconstruct(tag, base_page, records)`` has the interface of
``pyredo.engine.RedoEngine``: it sends one request (``B``, optional ``P``,
one ``A`` per record, ``G``) to a child process speaking the wal-redo
protocol and returns the 8192-byte page it answers.

The child is our stock-PostgreSQL server (``oracles/pg_walredo`` on a scratch
cluster, see ``oracles.walredo_server``) unless ``cmd`` names another one,
e.g. Neon's ``postgres --wal-redo`` (then pick its ``tag_layout``).

Process handling, in the spirit of Neon's walredo and the seed client:

* the whole request is written while the reply is read (one selector loop,
  non-blocking pipes), under a per-request timeout (default 20 s);
* ``submit()`` queues a request and returns at once (``PendingPage``); ``flush()``
  writes what is queued (a batch in one system call: one wake-up of the server),
  ``result()`` reads the answer. The server answers in order; requests in
  flight pile up in the pipes, so the server redoes pages while the caller does
  something else (pyredo redoing them too), and the round trips cost the caller
  nothing when it has work of its own. A failure is the request's the server was
  on; those behind it go to a new server;
* stderr is drained all the time by a thread into a ring buffer and
  forwarded to ``logging`` (logger ``redodiff.walredo``);
* a crash, a timeout or a protocol breach raises ``WalRedoError`` carrying
  the exit status, the stderr tail and the full request bytes; the child is
  killed and reaped, and the next request starts a new one;
* ``respawn_every`` restarts the child after N requests;
* a stop request (``stop_requested``, e.g. Ctrl-C seen by the harness) gives the
  request in flight ``stop_grace`` seconds to finish, then kills the child and
  raises ``WalRedoError`` of kind ``"cancelled"``; a next request respawns it;
* the child runs in its own process group; ``close()``, the context manager
  and garbage collection kill and wait() it: no zombies, no orphans.

The protocol codec is ``oracles.walredo_protocol``; which records a block's
request needs, and which requests the server cannot answer, is
``oracles.walredo_routing``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from oracles.walredo_child import (
    Child,
    Exchange,
    WalRedoError,
    WalRedoRequestError,
    describe_returncode,
    reap_holder,
)
from oracles.walredo_probe import binary_major, layout_probe
from oracles.walredo_protocol import (
    BLCKSZ,
    PING_PAYLOAD,
    TagLayout,
    build_request,
    ping_msg,
    tag_size,
)
from oracles.walredo_routing import first_record_problem
from pyredo.wal.record import BufferTag, DecodedXLogRecord

__all__ = [
    "PendingPage",
    "WalRedoError",
    "WalRedoProcess",
    "WalRedoRequestError",
    "describe_returncode",
]

log = logging.getLogger("redodiff.walredo")

DEFAULT_TIMEOUT = 20.0
STOP_GRACE = 2.0  # seconds a request in flight may still take once a stop is requested
_STOP_POLL = 0.2  # how often a waiting request looks at stop_requested
_STDERR_TAIL_LINES = 40
MAX_IN_FLIGHT = 64  # requests sent whose answers are not read yet
FLUSH_AT = 1 << 18  # bytes of submitted requests written without waiting for flush()
READ_SIZE = 1 << 20  # bytes of answers read at once


class WalRedoProcess:
    """A wal-redo server as a redo engine (``name = "walredo"``).

    ``cmd``: the server's argv; None runs our stock-PostgreSQL server
    (``StockWalRedoServer``), built and initdb'd on first use.
    ``tag_layout``: ``"neon"`` or ``"old"`` BufferTags. ``ping``: the server
    answers ``H`` (checked after every spawn). ``respawn_every``: restart the
    server after that many requests. ``user``: run the server as this user
    (default: the server user when we are root and ``cmd`` is None). ``pg``: the
    ``oracles.pgbin.PgInstall`` whose postgres serves (default: the default one).
    ``stop_requested``: polled while a request waits (set by whoever owns the run's
    stop request, e.g. ``harness.verify.check.Checker``); once it says yes, the
    request has ``stop_grace`` seconds left.
    """

    name = "walredo"

    def __init__(
        self,
        cmd: Sequence[str] | None = None,
        *,
        tag_layout: TagLayout = "neon",
        timeout: float = DEFAULT_TIMEOUT,
        spawn_timeout: float = 60.0,
        ping: bool | None = None,
        respawn_every: int | None = None,
        user: str | None = None,
        env: dict[str, str] | None = None,
        validate: bool = True,
        stderr_lines: int = 200,
        server: Any = None,
        pg: Any = None,
        stop_requested: Callable[[], bool] | None = None,
        stop_grace: float = STOP_GRACE,
        check_layout: bool | None = None,
        major: int | None = None,
        stderr_error: Callable[[str], bool] | None = None,
    ) -> None:
        tag_size(tag_layout)  # validate early
        if respawn_every is not None and respawn_every < 1:
            raise ValueError("respawn_every must be >= 1")
        self.tag_layout: TagLayout = tag_layout
        self.timeout = timeout
        self.spawn_timeout = spawn_timeout
        self.stop_requested = stop_requested
        self.stop_grace = stop_grace
        self.respawn_every = respawn_every
        self.validate = validate
        self.stderr_lines = stderr_lines
        self.env = env
        self._cmd = list(cmd) if cmd is not None else None
        self._server = server
        self._own_server = False
        if self._cmd is None and self._server is None:
            from oracles.walredo_server import StockWalRedoServer

            self._server = StockWalRedoServer(pg=pg)
            self._own_server = True
        if user is None and self._cmd is None:
            user = self._server.user
        self.user = user
        self.ping_supported = ping if ping is not None else self._cmd is None
        # one request with a known answer after every spawn (walredo_probe.layout_probe)
        self.check_layout = check_layout if check_layout is not None else self._cmd is None
        self.stderr_error, self._major = stderr_error, major  # stderr_error: which lines are errors
        self._holder: list[Child | None] = [None]
        self._finalizer = weakref.finalize(self, reap_holder, self._holder,
                                           self._server if self._own_server else None)
        self._lock = threading.Lock()
        self._inflight: deque[PendingPage] = deque()  # sent, in order, answers not read yet
        self._closed = False
        # statistics
        self.spawns = 0
        self.requests = 0
        self.records = 0
        self.failures = 0

    # -- lifecycle ----------------------------------------------------------------
    @property
    def argv(self) -> list[str]:
        if self._cmd is not None:
            return list(self._cmd)
        return list(self._server.argv())

    @property
    def major(self) -> int | None:
        """The major it replays: given, our server's, or `postgres --version` of cmd's binary."""
        if self._major is None:
            self._major = (self._server.pg.major if self._cmd is None
                           else binary_major(self._cmd, self.env))
        return self._major

    @property
    def pid(self) -> int | None:
        """The running server's pid (None when none is running)."""
        child = self._holder[0]
        return child.pid if child is not None else None

    def start(self) -> None:
        """Spawn the server now (otherwise the first request does)."""
        with self._lock:
            self._ensure_child()

    def _ensure_child(self) -> Child:
        if self._closed:
            raise WalRedoError("the WalRedoProcess is closed", kind="spawn")
        child = self._holder[0]
        if child is not None and child.has_exited():
            # died between requests
            child.kill()
            log.warning("wal-redo server %d died while idle (%s): respawning", child.pid,
                        describe_returncode(child.popen.returncode))
            child = self._holder[0] = None
        if child is not None:
            return child
        argv = self.argv
        try:
            child = Child(argv, self.user, self.env, self.stderr_lines, self.stderr_error)
        except OSError as e:
            raise WalRedoError(f"could not start the wal-redo server: {e}", kind="spawn",
                               argv=argv) from e
        self._holder[0] = child
        self.spawns += 1
        log.debug("started wal-redo server %d: %s", child.pid, " ".join(argv))
        if self.ping_supported:
            try:
                self._roundtrip(child, ping_msg(), self.spawn_timeout, None)
            except WalRedoError as e:
                raise WalRedoError(f"the wal-redo server did not come up: {e.message}",
                                   kind="spawn", returncode=e.returncode,
                                   stderr_tail=e.stderr_tail, argv=argv, pid=child.pid) from None
        if self.check_layout:
            self._check_layout(child)
        return child

    def _check_layout(self, child: Child) -> None:
        """A request whose answer is known: a server reading another BufferTag layout fails here."""
        request, want = layout_probe(self.tag_layout)
        why = "the server did not answer the page it was sent"
        try:
            if self._roundtrip(child, request, self.spawn_timeout, None) == want:
                return
            self._fail(child, why, "spawn", None, request)
        except WalRedoError as e:
            why = e.message
        raise WalRedoError(f"the tag-layout check failed: {why} (is --tag-layout {self.tag_layout} "
                           "the layout this server speaks?)", kind="spawn", request=request,
                           stderr_tail=child.stderr_tail(), argv=child.argv, pid=child.pid)


    def close(self) -> None:
        """Stop the server (EOF, then SIGKILL if need be) and clean up."""
        with self._lock:
            self._closed = True
            self._cancel_in_flight("the wal-redo client was closed with this request in flight")
            child = self._holder[0]
            self._holder[0] = None
            if child is not None:
                child.shutdown()
            self._finalizer.detach()
            if self._own_server and self._server is not None:
                self._server.cleanup()

    def restart(self) -> None:
        """Stop the running server; the next request starts a new one."""
        with self._lock:
            self._cancel_in_flight("the wal-redo server was restarted with this request in flight")
            child = self._holder[0]
            self._holder[0] = None
            if child is not None:
                child.shutdown()

    def __enter__(self) -> WalRedoProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests -------------------------------------------------------------------
    def reconstruct(
        self,
        tag: BufferTag,
        base_page: bytes | None,
        records: Iterable[DecodedXLogRecord],
    ) -> bytes:
        """The page the server rebuilds for ``tag`` from ``base_page`` and ``records``."""
        return self.submit(tag, base_page, records).result()

    def submit(self, tag: BufferTag, base_page: bytes | None,
               records: Iterable[DecodedXLogRecord]) -> PendingPage:
        """Queue the request for ``tag`` and return without waiting for the answer
        (it is written by ``flush()``, once enough is queued, or when an answer is
        awaited): ``result()`` of what it returns is what ``reconstruct`` would have
        returned or raised. Never raises itself (but for BaseException)."""
        recs = list(records)
        pending = PendingPage(self, tag, len(recs), self.timeout)
        try:
            if self.validate:
                problem = first_record_problem(tag, base_page, recs)
                if problem is not None:
                    raise WalRedoRequestError(problem, tag=tag)
            self._submit_bytes(pending, build_request(tag, base_page, recs, self.tag_layout))
        except Exception as e:
            pending.error = e
        return pending

    def send_request(self, request: bytes, *, tag: BufferTag | None = None) -> bytes:
        """Send raw request bytes (ending with ``G``); return the 8192-byte answer."""
        pending = PendingPage(self, tag, 0, self.timeout)
        self._submit_bytes(pending, request)
        return pending.result()

    def _submit_bytes(self, pending: PendingPage, request: bytes) -> None:
        pending.request = request
        with self._lock:
            if self.respawn_every is not None or len(self._inflight) >= MAX_IN_FLIGHT:
                self._settle_all()  # (respawn_every counts answered requests: one at a time)
            # requests in flight are all on the running server; a new one follows them there
            child = self._inflight[0].exchange.child if self._inflight else self._ensure_child()  # type: ignore[union-attr]
            self._enqueue(pending, child)

    def _enqueue(self, pending: PendingPage, child: Child) -> None:
        """Queue ``pending`` after the requests in flight (lock held); written at once
        when enough is queued, else by ``flush()`` or when an answer is awaited."""
        pending.exchange = Exchange(child, pending.request)
        self._inflight.append(pending)
        if child.unsent >= FLUSH_AT:
            self._pump(child, 0.0)

    def flush(self) -> None:
        """Write the requests submitted so far (as much as the pipe takes now): the
        server starts on them while the caller goes on."""
        with self._lock:
            if self._inflight and self._inflight[0].exchange is not None:
                self._pump(self._inflight[0].exchange.child, 0.0)

    def _pump(self, child: Child, wait: float) -> str | None:
        """Write what the request pipe takes, read what is there of the answers, waiting
        up to ``wait`` seconds for either (lock held). Trouble: ``"eof"`` (the server
        closed its output: it died) or ``"early"`` (it answered the first request in
        line before it was whole)."""
        sel = child.selector
        child.write_some()
        registered = child.unsent > 0
        if registered:
            sel.register(child.stdin_fd, selectors.EVENT_WRITE)
        try:
            for key, _ in sel.select(wait):
                if key.fd == child.stdout_fd:
                    trouble = self._read_answers(child)
                    if trouble is not None:
                        return trouble
                else:
                    child.write_some()
        finally:
            if registered:
                with contextlib.suppress(KeyError, ValueError):
                    sel.unregister(child.stdin_fd)
        return None

    def _read_answers(self, child: Child) -> str | None:
        """Read the answers the server has written and hand them out in order (lock held)."""
        head_ex = self._inflight[0].exchange if self._inflight else None
        if head_ex is not None and len(head_ex.reply) == BLCKSZ:  # answered, but not sent whole
            return "early"
        want = sum(BLCKSZ - len(p.exchange.reply) for p in self._inflight if p.exchange is not None)
        if want <= 0:
            return None
        try:
            data = os.read(child.stdout_fd, min(want, READ_SIZE))
        except BlockingIOError:
            return None
        if not data:
            return "eof"
        view, pos = memoryview(data), 0
        while pos < len(data):
            head = self._inflight[0]
            ex = head.exchange
            assert ex is not None
            take = view[pos : pos + BLCKSZ - len(ex.reply)]
            ex.reply += take
            pos += len(take)
            if len(ex.reply) == BLCKSZ:
                if ex.sent < len(ex.request):
                    return "early"
                self._answered(head)
        return None

    def _answered(self, pending: PendingPage) -> None:
        """The head request's whole answer is in: keep it (lock held)."""
        ex = self._inflight.popleft().exchange
        assert ex is not None
        pending.exchange = None
        pending.page = bytes(ex.reply)
        if not pending.counted:
            return
        self.requests += 1
        self.records += pending.records
        ex.child.requests += 1
        if self.respawn_every is not None and ex.child.requests >= self.respawn_every and not self._inflight:
            self._holder[0] = None
            ex.child.shutdown()

    def _settle(self, pending: PendingPage) -> None:
        """Wait until ``pending`` is answered or failed (lock held): the requests before
        it are answered first (the server answers in order). A failure is the head
        request's own (the one the server was redoing); those behind it go to a new server."""
        head_seen: PendingPage | None = None
        deadline = stop_at = 0.0
        stop_at_set = False
        try:
            while pending.exchange is not None:
                head = self._inflight[0]
                ex = head.exchange
                assert ex is not None
                now = time.monotonic()
                if head is not head_seen:  # each request has its whole timeout once it is first in line
                    head_seen, deadline = head, now + head.timeout
                if now >= deadline:
                    head.error = self._fail(
                        ex.child, f"no answer from the wal-redo server within {head.timeout:g}s (sent "
                        f"{ex.sent} of {len(ex.request)} request bytes, got {len(ex.reply)} reply bytes)",
                        "timeout", head.tag, ex.request)
                    self._drop_head_and_resend()
                    continue
                remaining = deadline - now
                if self.stop_requested is not None:
                    if not stop_at_set and self.stop_requested():
                        stop_at, stop_at_set = now + self.stop_grace, True
                    if stop_at_set and now >= stop_at:
                        head.error = self._fail(
                            ex.child, f"stop requested: the request in flight did not finish within "
                            f"{self.stop_grace:g}s more (sent {ex.sent} of {len(ex.request)} request bytes, got "
                            f"{len(ex.reply)} reply bytes)", "cancelled", head.tag, ex.request)
                        self._inflight.popleft()
                        head.exchange = None
                        self._cancel_in_flight("stopped: the wal-redo server was killed before this request's turn")
                        continue
                    # a signal handler does not wake select() (PEP 475): look again soon
                    remaining = min(remaining, _STOP_POLL if not stop_at_set else stop_at - now)
                trouble = self._pump(ex.child, remaining)
                if trouble == "eof":
                    ex.child.has_exited(5.0)  # let it finish dying, so the status is its own
                    head.error = self._fail(
                        ex.child, f"the wal-redo server closed its output after {len(ex.reply)} of "
                        f"{BLCKSZ} reply bytes (sent {ex.sent} of {len(ex.request)} request bytes)",
                        "crash", head.tag, ex.request)
                elif trouble == "early":
                    head.error = self._fail(ex.child, f"the wal-redo server answered after only {ex.sent} of "
                                            f"{len(ex.request)} request bytes", "protocol", head.tag, ex.request)
                if trouble is not None:
                    self._drop_head_and_resend()
        except BaseException:  # interrupted mid-answer: the server's output is out of step
            if self._inflight:
                head = self._inflight[0]
                assert head.exchange is not None
                self._fail(head.exchange.child, "interrupted while reading the answer", "cancelled",
                           head.tag, head.request)
                self._cancel_in_flight("interrupted while reading an answer")
            raise

    def _settle_all(self) -> None:
        while self._inflight:
            self._settle(self._inflight[-1])

    def _drop_head_and_resend(self) -> None:
        head = self._inflight.popleft()
        head.exchange = None
        self._resend_in_flight()

    def _resend_in_flight(self) -> None:
        """The server died (and was reaped): the requests that were behind the failed one
        go to a new server, in order (or all fail, if none will start)."""
        waiting = list(self._inflight)
        self._inflight.clear()
        if not waiting:
            return
        try:
            child = self._ensure_child()
        except WalRedoError as e:
            for p in waiting:
                p.exchange, p.error = None, e
            return
        for p in waiting:
            self._enqueue(p, child)

    def _cancel_in_flight(self, why: str) -> None:
        """Give up on every request in flight (lock held): each result() says ``why``."""
        while self._inflight:
            p = self._inflight.popleft()
            p.exchange = None
            p.error = WalRedoError(why, kind="cancelled", tag=p.tag, request=p.request)

    def ping(self) -> float:
        """Round trip of one ``H`` message, in seconds."""
        if not self.ping_supported:
            raise WalRedoError("this wal-redo server does not answer pings (ping=False)",
                               kind="protocol")
        with self._lock:
            self._settle_all()
            child = self._ensure_child()
            t0 = time.perf_counter()
            reply = self._roundtrip(child, ping_msg(), self.timeout, None)
            dt = time.perf_counter() - t0
        if reply != PING_PAYLOAD:
            raise WalRedoError("ping answered with something else than its payload",
                               kind="protocol")
        return dt

    def _fail(self, child: Child, message: str, kind: str, tag: BufferTag | None,
              request: bytes) -> WalRedoError:
        """Kill and reap the child, forget it, and make the error to raise."""
        child.kill()
        if self._holder[0] is child:
            self._holder[0] = None
        self.failures += 1
        err = WalRedoError(message, kind=kind, tag=tag, request=request,
                           returncode=child.popen.returncode,
                           stderr_tail=child.stderr_tail(), argv=child.argv, pid=child.pid)
        log.warning("wal-redo request failed: %s", err.message)
        return err

    def _roundtrip(self, child: Child, request: bytes, timeout: float,
                   tag: BufferTag | None) -> bytes:
        """``request`` to ``child``, nothing else in flight (lock held): its answer, within
        ``timeout``; not counted as a request (pings and probes)."""
        pending = PendingPage(self, tag, 0, timeout, counted=False)
        pending.request = request
        self._enqueue(pending, child)
        self._settle(pending)
        if pending.error is not None:
            raise pending.error
        assert pending.page is not None
        return pending.page

    def __repr__(self) -> str:
        return f"<WalRedoProcess pid={self.pid} layout={self.tag_layout} requests={self.requests}>"



class PendingPage:
    """A request sent by ``WalRedoProcess.submit``: ``result()`` waits for the page
    (or raises the request's error)."""

    __slots__ = ("counted", "error", "exchange", "owner", "page", "records", "request", "tag", "timeout")

    def __init__(self, owner: WalRedoProcess, tag: BufferTag | None, records: int, timeout: float, *,
                 counted: bool = True) -> None:
        self.owner = owner
        self.tag = tag
        self.records = records
        self.timeout = timeout  # from when the server starts on it (it is first in line)
        self.counted = counted  # a request (not a ping or probe): counts in requests/records
        self.request = b""
        self.exchange: Exchange | None = None  # on the wire, its answer not read yet
        self.page: bytes | None = None
        self.error: Exception | None = None

    def result(self) -> bytes:
        if self.exchange is not None:
            with self.owner._lock:
                if self.exchange is not None:
                    self.owner._settle(self)
        if self.error is not None:
            raise self.error
        assert self.page is not None
        return self.page
