"""The wal-redo server as a child process, and one request on its pipes.

* ``Child``: one running server -- non-blocking stdin/stdout pipes (stdin's
  pipe buffer enlarged, so that most requests fit in it whole and the client
  can go on while the server works), a thread draining stderr into a ring
  buffer and ``logging``, its own process group (``killpg`` reaches whatever
  it forked), a pidfd to tell its exit without reaping it.
* ``Exchange``: one request's bytes on the wire, written as far as the pipe
  takes them, and its 8192-byte reply as it comes; the waiting loop (requests
  in flight, timeouts, stop requests, errors) is ``oracles.walredo.WalRedoProcess``'s.
* ``reap_holder``: the finalizer that kills a forgotten server.
* ``WalRedoError``: what a failed request raises (re-exported by ``oracles.walredo``).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import pwd
import select
import selectors
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import IO, Any

from pyredo.wal.record import BufferTag

__all__ = ["Child", "Exchange", "WalRedoError", "WalRedoRequestError", "describe_returncode", "is_error_line",
           "reap_holder"]

log = logging.getLogger("redodiff.walredo")

_IOV_MAX = 64  # buffers per writev() call
PIPE_SIZE = 1 << 20  # the request pipe's buffer (Linux's default pipe-max-size)
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


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
class Child:
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
        for fd in (self.stdin_fd, self.stdout_fd):  # requests and answers in flight fit in the pipes
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, _F_SETPIPE_SZ, PIPE_SIZE)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.stdout_fd, selectors.EVENT_READ)
        self.ring: deque[str] = deque(maxlen=stderr_lines)
        self.stderr_thread = threading.Thread(
            target=_drain_stderr, args=(self.popen.stderr, self.ring, self.pid, stderr_error or is_error_line),
            name=f"walredo-stderr-{self.pid}", daemon=True,
        )
        self.stderr_thread.start()
        self.requests = 0
        self.started = time.monotonic()
        # requests queued for stdin, written in order, as much as the pipe takes at a time
        self.out: deque[memoryview] = deque()
        self.queued = 0  # bytes ever queued
        self.written = 0  # bytes ever written
        self.broken_pipe = False  # the server closed its stdin: it is dying

    def queue(self, data: bytes) -> int:
        """Queue ``data`` for stdin; its offset in the stream."""
        offset = self.queued
        self.out.append(memoryview(data))
        self.queued += len(data)
        return offset

    @property
    def unsent(self) -> int:
        return 0 if self.broken_pipe else self.queued - self.written

    def write_some(self) -> None:
        """Write queued bytes until the pipe is full (never blocks): several requests
        in one system call, so that a batch wakes the server once."""
        out = self.out
        while out and not self.broken_pipe:
            try:
                n = os.writev(self.stdin_fd, list(itertools.islice(out, _IOV_MAX)))
            except BlockingIOError:
                return
            except (BrokenPipeError, ConnectionResetError):
                self.broken_pipe = True
                return
            self.written += n
            while n:
                head = out[0]
                if n >= len(head):
                    n -= len(head)
                    out.popleft()
                else:
                    out[0] = head[n:]
                    n = 0

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


class Exchange:
    """One request to ``child``: its bytes, queued on the child's output stream at
    ``offset``, and its answer as it comes (``reply``)."""

    __slots__ = ("child", "offset", "reply", "request")

    def __init__(self, child: Child, request: bytes) -> None:
        self.child = child
        self.request = request
        self.offset = child.queue(request)
        self.reply = bytearray()

    @property
    def sent(self) -> int:
        """Bytes of the request written to the pipe so far."""
        return max(0, min(len(self.request), self.child.written - self.offset))


def is_error_line(line: str) -> bool:  # the stderr lines of our stock server logged as warnings
    return "PANIC:" in line or "FATAL:" in line or "ERROR:" in line or "WARNING:" in line


def _drain_stderr(stream: IO[bytes], ring: deque[str], pid: int,
                  is_error: Callable[[str], bool] = is_error_line) -> None:
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


def reap_holder(holder: list[Child | None], server: Any) -> None:
    """weakref.finalize target (garbage collection, interpreter exit): kill the
    child, give up an owned scratch server. Must not reference the WalRedoProcess."""
    child = holder[0]
    holder[0] = None
    if child is not None:
        child.kill()
    if server is not None:
        server.cleanup()
