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
import pwd
import select
import selectors
import signal
import subprocess
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import IO, Any

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
_CHUNK = 1 << 18


# -- errors ------------------------------------------------------------------------
class WalRedoError(Exception):
    """The wal-redo server could not answer a request.

    ``kind``: ``"crash"`` (the server exited or closed its pipes),
    ``"timeout"``, ``"protocol"`` (it answered something impossible),
    ``"spawn"`` (it did not come up), ``"cancelled"`` (a stop request ended
    the wait), ``"refused"`` (the client would not
    send the request, see ``WalRedoRequestError``). ``request`` is the full
    request, byte for byte, so the one that killed the server can be saved
    and replayed.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        tag: BufferTag | None = None,
        request: bytes = b"",
        returncode: int | None = None,
        stderr_tail: str = "",
        argv: Sequence[str] | None = None,
        pid: int | None = None,
    ) -> None:
        self.message = message
        self.kind = kind
        self.tag = tag
        self.request = request
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        self.argv = list(argv) if argv is not None else None
        self.pid = pid
        super().__init__(self.__str__())

    @property
    def exit_status(self) -> str:
        return describe_returncode(self.returncode)

    def __str__(self) -> str:
        parts = [self.message]
        if self.tag is not None:
            parts.append(f"target {self.tag}")
        if self.returncode is not None:
            parts.append(f"server {self.exit_status}")
        if self.request:
            parts.append(f"request {len(self.request)} bytes")
        text = "; ".join(parts)
        if self.stderr_tail:
            tail = "\n".join(self.stderr_tail.splitlines()[-12:])
            text += f"\n--- wal-redo server stderr (tail) ---\n{tail}"
        return text


class WalRedoRequestError(WalRedoError):
    """A request the server cannot answer, refused before it was sent."""

    def __init__(self, message: str, *, tag: BufferTag | None = None) -> None:
        super().__init__(message, kind="refused", tag=tag)


def describe_returncode(rc: int | None) -> str:
    if rc is None:
        return "still running"
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        return f"killed by {name}"
    return f"exited with status {rc}"


# -- the child process ------------------------------------------------------------
class _Child:
    """One running server: pipes, stderr drain thread, ring buffer."""

    def __init__(self, argv: Sequence[str], user: str | None, env: dict[str, str] | None,
                 stderr_lines: int, stderr_error: Callable[[str], bool] | None = None) -> None:
        kwargs: dict[str, Any] = {}
        if user is not None and os.geteuid() == 0:
            pw = pwd.getpwnam(user)
            kwargs.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
        self.argv = list(argv)
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            close_fds=True,
            start_new_session=True,  # own process group: killpg reaches everything
            env=env,
            **kwargs,
        )
        self.pid = self.popen.pid
        # readable once the child exits, without reaping it: until we reap it, its pid
        # and process group id stay ours, so killpg can never hit a stranger
        self.pidfd: int | None = None
        with contextlib.suppress(OSError, AttributeError):
            self.pidfd = os.pidfd_open(self.pid)
        assert self.popen.stdin and self.popen.stdout and self.popen.stderr
        self.stdin: IO[bytes] | None = self.popen.stdin
        self.stdout: IO[bytes] = self.popen.stdout
        self.stdin_fd = self.stdin.fileno()
        self.stdout_fd = self.stdout.fileno()
        os.set_blocking(self.stdin_fd, False)
        os.set_blocking(self.stdout_fd, False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.stdout_fd, selectors.EVENT_READ)
        self.ring: deque[str] = deque(maxlen=stderr_lines)
        self.stderr_thread = threading.Thread(
            target=_drain_stderr, args=(self.popen.stderr, self.ring, self.pid, stderr_error or _is_error_line),
            name=f"walredo-stderr-{self.pid}", daemon=True,
        )
        self.stderr_thread.start()
        self.requests = 0
        self.started = time.monotonic()

    def stderr_tail(self, wait: float = 2.0) -> str:
        """The last stderr lines; waits (briefly) for the drain thread to see EOF."""
        if self.popen.returncode is not None:
            self.stderr_thread.join(wait)
        return "\n".join(self.ring)

    def close_stdin(self) -> None:
        if self.stdin is not None:
            with contextlib.suppress(OSError):
                self.stdin.close()
            self.stdin = None

    def has_exited(self, timeout: float = 0.0) -> bool:
        """Has the child exited (waiting up to ``timeout``)? Does not reap it."""
        if self.popen.returncode is not None:
            return True
        if self.pidfd is None:  # no pidfd (old kernel): poll, which reaps
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        ready, _, _ = select.select([self.pidfd], [], [], timeout)
        return bool(ready)

    def kill(self) -> None:
        """SIGKILL the process group (anything the server forked dies too), then reap."""
        if self.popen.returncode is None:  # alive or a zombie: the group id is still ours
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
        self._reap()

    def shutdown(self, grace: float = 5.0) -> None:
        """Close stdin (a clean EOF), wait ``grace`` seconds for the exit, then kill and reap."""
        self.close_stdin()
        if not self.has_exited(grace):
            log.warning("wal-redo server %d did not exit on EOF within %.1fs: killing it",
                        self.pid, grace)
        self.kill()

    def _reap(self) -> None:
        self.close_stdin()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)
        if self.popen.returncode is None:  # pragma: no cover - SIGKILL does not fail
            log.error("wal-redo server %d survived SIGKILL", self.pid)
            return
        if self.pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self.pidfd)
            self.pidfd = None
        self.stderr_thread.join(2.0)
        with contextlib.suppress(OSError):
            self.stdout.close()
        with contextlib.suppress(OSError, ValueError):
            self.selector.close()


def _is_error_line(line: str) -> bool:  # the stderr lines of our stock server logged as warnings
    return "PANIC:" in line or "FATAL:" in line or "ERROR:" in line or "WARNING:" in line


def _drain_stderr(stream: IO[bytes], ring: deque[str], pid: int,
                  is_error: Callable[[str], bool] = _is_error_line) -> None:
    try:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            ring.append(line)
            if is_error(line):
                log.warning("walredo[%d]: %s", pid, line)
            else:
                log.debug("walredo[%d]: %s", pid, line)
    except (OSError, ValueError):
        pass
    finally:
        with contextlib.suppress(OSError):
            stream.close()


def _reap_holder(holder: list[_Child | None], server: Any) -> None:
    """weakref.finalize target (garbage collection, interpreter exit): kill the
    child, give up an owned scratch server. Must not reference the WalRedoProcess."""
    child = holder[0]
    holder[0] = None
    if child is not None:
        child.kill()
    if server is not None:
        server.cleanup()


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
        self._holder: list[_Child | None] = [None]
        self._finalizer = weakref.finalize(self, _reap_holder, self._holder,
                                           self._server if self._own_server else None)
        self._lock = threading.Lock()
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

    def _ensure_child(self) -> _Child:
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
            child = _Child(argv, self.user, self.env, self.stderr_lines, self.stderr_error)
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

    def _check_layout(self, child: _Child) -> None:
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
        recs = list(records)
        if self.validate:
            problem = first_record_problem(tag, base_page, recs)
            if problem is not None:
                raise WalRedoRequestError(problem, tag=tag)
        request = build_request(tag, base_page, recs, self.tag_layout)
        page = self.send_request(request, tag=tag)
        self.records += len(recs)
        return page

    def send_request(self, request: bytes, *, tag: BufferTag | None = None) -> bytes:
        """Send raw request bytes (ending with ``G``); return the 8192-byte answer."""
        with self._lock:
            child = self._ensure_child()
            page = self._roundtrip(child, request, self.timeout, tag)
            self.requests += 1
            child.requests += 1
            if self.respawn_every is not None and child.requests >= self.respawn_every:
                self._holder[0] = None
                child.shutdown()
            return page

    def ping(self) -> float:
        """Round trip of one ``H`` message, in seconds."""
        if not self.ping_supported:
            raise WalRedoError("this wal-redo server does not answer pings (ping=False)",
                               kind="protocol")
        with self._lock:
            child = self._ensure_child()
            t0 = time.perf_counter()
            reply = self._roundtrip(child, ping_msg(), self.timeout, None)
            dt = time.perf_counter() - t0
        if reply != PING_PAYLOAD:
            raise WalRedoError("ping answered with something else than its payload",
                               kind="protocol")
        return dt

    def _fail(self, child: _Child, message: str, kind: str, tag: BufferTag | None,
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

    def _roundtrip(self, child: _Child, request: bytes, timeout: float,
                   tag: BufferTag | None) -> bytes:
        """Write ``request`` while reading the 8192-byte reply, within ``timeout``."""
        deadline = time.monotonic() + timeout
        view = memoryview(request)
        sent = 0
        reply = bytearray()
        sel = child.selector
        wfd, rfd = child.stdin_fd, child.stdout_fd
        writing = False
        broken_pipe = False
        stop_at: float | None = None  # the end of the grace a stop request leaves

        def try_write() -> None:
            nonlocal sent, broken_pipe
            while sent < len(view):
                try:
                    n = os.write(wfd, view[sent : sent + _CHUNK])
                except BlockingIOError:
                    return
                except (BrokenPipeError, ConnectionResetError):
                    broken_pipe = True
                    return
                sent += n

        try_write()
        try:
            while len(reply) < BLCKSZ:
                want_write = sent < len(view) and not broken_pipe
                if want_write != writing:
                    if want_write:
                        sel.register(wfd, selectors.EVENT_WRITE)
                    else:
                        sel.unregister(wfd)
                    writing = want_write
                now = time.monotonic()
                remaining = deadline - now
                if remaining <= 0:
                    raise self._fail(
                        child,
                        f"no answer from the wal-redo server within {timeout:g}s "
                        f"(sent {sent} of {len(view)} request bytes, got {len(reply)} reply bytes)",
                        "timeout", tag, request)
                if self.stop_requested is not None:
                    if stop_at is None and self.stop_requested():
                        stop_at = now + self.stop_grace
                    if stop_at is not None and now >= stop_at:
                        raise self._fail(
                            child, f"stop requested: the request in flight did not finish within "
                            f"{self.stop_grace:g}s more (sent {sent} of {len(view)} request bytes, got "
                            f"{len(reply)} reply bytes)", "cancelled", tag, request)
                    # a signal handler does not wake select() (PEP 475): look again soon
                    remaining = min(remaining, _STOP_POLL if stop_at is None else stop_at - now)
                for key, _ in sel.select(remaining):
                    if key.fd == wfd:
                        try_write()
                        continue
                    try:
                        chunk = os.read(rfd, BLCKSZ - len(reply))
                    except BlockingIOError:
                        continue
                    if not chunk:
                        child.has_exited(5.0)  # let it finish dying, so the status is its own
                        raise self._fail(
                            child,
                            f"the wal-redo server closed its output after {len(reply)} of "
                            f"{BLCKSZ} reply bytes (sent {sent} of {len(view)} request bytes)",
                            "crash", tag, request)
                    reply += chunk
        finally:
            if writing:
                with contextlib.suppress(KeyError, ValueError):
                    sel.unregister(wfd)
        if sent < len(view):
            raise self._fail(child, f"the wal-redo server answered after only {sent} of "
                             f"{len(view)} request bytes", "protocol", tag, request)
        return bytes(reply)

    def __repr__(self) -> str:
        return f"<WalRedoProcess pid={self.pid} layout={self.tag_layout} requests={self.requests}>"

