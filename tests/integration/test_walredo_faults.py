"""The wal-redo client when things go wrong: bad requests, a server killed or
hung mid-request, signals while idle, respawn, shutdown, garbage collection.

Every failure must give a WalRedoError that says what happened and carries the
request; the next request must succeed on a fresh server; no child process may
be left behind (checked in /proc after every test).
"""

from __future__ import annotations

import gc
import os
import signal
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.clusters.local import LocalCluster
from oracles.masks import mask_page
from oracles.walredo import WalRedoError, WalRedoProcess, WalRedoRequestError
from oracles.walredo_protocol import (
    apply_msg,
    begin_msg,
    build_request,
    get_page_msg,
    parse_request,
    push_page_msg,
)
from oracles.walredo_routing import first_record_problem, records_by_block
from oracles.walredo_server import StockWalRedoServer
from pyredo.wal.reader import WalReader
from pyredo.wal.record import BufferTag, DecodedXLogRecord


# -- /proc bookkeeping ---------------------------------------------------------------
def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgid) of a process, None if it does not exist."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data[data.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2])


def _children() -> dict[int, str]:
    """Our child processes (pid -> state) right now."""
    me = os.getpid()
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _proc_stat(int(d))
            if st is not None and st[1] == me:
                out[int(d)] = st[0]
    return out


def _group_members(pgid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _proc_stat(int(d))
            if st is not None and st[2] == pgid:
                out.append(int(d))
    return out


def assert_gone(pid: int) -> None:
    """The process was reaped (no zombie) and left nothing in its group (no orphans)."""
    assert _proc_stat(pid) is None, f"process {pid} still exists: {_proc_stat(pid)}"
    assert _group_members(pid) == [], f"process group {pid} still has {_group_members(pid)}"


@pytest.fixture(autouse=True)
def no_leftover_children() -> Iterator[None]:
    before = set(_children())
    yield
    gc.collect()
    after = _children()
    zombies = {p for p, s in after.items() if s == "Z"}
    assert not zombies, f"zombie children: {zombies}"
    # only the module's shared server may still run
    extra = set(after) - before - {SHARED_PID[0]}
    assert not extra, f"children left behind: {extra}"


SHARED_PID: list[int | None] = [None]


# -- a request to play with ---------------------------------------------------------------
@dataclass
class Sample:
    tag: BufferTag
    records: list[DecodedXLogRecord]
    expected: bytes  # what the server answers for (tag, None, records)
    other_tag: BufferTag  # another block of the same table


@pytest.fixture(scope="module")
def walredo() -> Iterator[WalRedoProcess]:
    with WalRedoProcess() as wr:
        wr.start()
        SHARED_PID[0] = wr.pid
        yield wr
    SHARED_PID[0] = None


@pytest.fixture(scope="module")
def sample(pg: LocalCluster, walredo: WalRedoProcess) -> Sample:
    pg.execute("DROP TABLE IF EXISTS wr_faults")
    pg.execute("CREATE TABLE wr_faults (a int, b text)")
    start = pg.checkpoint()
    pg.execute("INSERT INTO wr_faults SELECT g, repeat('f', 100) FROM generate_series(1, 400) g")
    pg.execute("UPDATE wr_faults SET b = 'u' WHERE a % 10 = 0")
    end = pg.current_lsn()
    pg.checkpoint()
    spc, db, rel = pg.relfilenode("wr_faults")
    groups = records_by_block(WalReader(pg.waldir, start, end))
    tag, other = BufferTag(spc, db, rel, 0, 0), BufferTag(spc, db, rel, 0, 1)
    recs = groups[tag]
    assert first_record_problem(tag, None, recs) is None and len(recs) > 20
    expected = walredo.reconstruct(tag, None, recs)
    primary = pg.read_block(tag)
    assert primary is not None
    assert mask_page(expected, "Heap", 0) == mask_page(primary, "Heap", 0)
    SHARED_PID[0] = walredo.pid
    return Sample(tag, recs, expected, other)


def _expect_recovery(wr: WalRedoProcess, sample: Sample, old_pid: int | None) -> None:
    """A fresh server answers the next request right, and the failed one is gone."""
    assert wr.reconstruct(sample.tag, None, sample.records) == sample.expected
    assert wr.pid is not None and wr.pid != old_pid
    if old_pid is not None:
        assert_gone(old_pid)
    SHARED_PID[0] = wr.pid


# -- bad requests --------------------------------------------------------------------------
def test_garbage_apply_payload(walredo: WalRedoProcess, sample: Sample) -> None:
    pid = walredo.pid
    request = begin_msg(sample.tag) + apply_msg(0x1_0000_0000, b"\xde\xad\xbe\xef" * 16) + get_page_msg(sample.tag)
    with pytest.raises(WalRedoError) as ei:
        walredo.send_request(request, tag=sample.tag)
    e = ei.value
    assert e.kind == "crash" and e.returncode == 1
    assert "record length 4022250974 in the header does not match the 64 bytes sent" in e.stderr_tail
    assert e.request == request  # the request that killed the server is kept whole
    assert e.tag == sample.tag
    assert "exited with status 1" in str(e)
    _expect_recovery(walredo, sample, pid)


def test_corrupted_record_fails_its_checksum(walredo: WalRedoProcess, sample: Sample) -> None:
    pid = walredo.pid
    rec = sample.records[3]
    raw = bytearray(rec.raw)
    raw[-1] ^= 0xFF  # one bit of the record's data
    request = build_request(sample.tag, None, [sample.records[0]]) [: -len(get_page_msg(sample.tag))]
    request += apply_msg(rec.end_lsn, bytes(raw)) + get_page_msg(sample.tag)
    with pytest.raises(WalRedoError) as ei:
        walredo.send_request(request, tag=sample.tag)
    assert "incorrect resource manager data checksum" in ei.value.stderr_tail
    _expect_recovery(walredo, sample, pid)


def test_record_for_the_wrong_block(walredo: WalRedoProcess, sample: Sample) -> None:
    pid = walredo.pid
    # a base page for block 1, then a record of block 0
    request = (begin_msg(sample.other_tag) + push_page_msg(sample.other_tag, sample.expected)
               + apply_msg(sample.records[1].end_lsn, sample.records[1].raw) + get_page_msg(sample.other_tag))
    with pytest.raises(WalRedoError) as ei:
        walredo.send_request(request, tag=sample.other_tag)
    assert "record does not reference the target block" in ei.value.stderr_tail
    assert ei.value.kind == "crash"
    _expect_recovery(walredo, sample, pid)


def test_server_refuses_a_target_without_a_starting_point(walredo: WalRedoProcess, sample: Sample) -> None:
    """With client-side checks off, the server refuses too (rather than answering zeros)."""
    pid = walredo.pid
    walredo.validate = False
    try:
        with pytest.raises(WalRedoError) as ei:
            walredo.reconstruct(sample.tag, None, sample.records[1:])
    finally:
        walredo.validate = True
    assert not isinstance(ei.value, WalRedoRequestError)
    assert "no base page for the target and the first record neither restores" in ei.value.stderr_tail
    _expect_recovery(walredo, sample, pid)


def test_client_refuses_a_target_without_a_starting_point(walredo: WalRedoProcess, sample: Sample) -> None:
    pid = walredo.pid
    failures = walredo.failures
    with pytest.raises(WalRedoRequestError, match="neither restores a full-page image"):
        walredo.reconstruct(sample.tag, None, sample.records[1:])
    with pytest.raises(WalRedoRequestError, match="no records"):
        walredo.reconstruct(sample.tag._replace(fork=3), None, [])
    assert walredo.pid == pid and walredo.failures == failures  # nothing was sent
    # with the base page it can: the rest of the records on the page after the first
    base = walredo.reconstruct(sample.tag, None, sample.records[:1])
    assert walredo.reconstruct(sample.tag, base, sample.records[1:]) == sample.expected


# -- a dying or hanging server ------------------------------------------------------------
def test_sigkill_mid_request(walredo: WalRedoProcess, sample: Sample) -> None:
    pid = walredo.pid
    assert pid is not None
    # everything but the final G: the server waits for the rest, in the middle of the request
    request = build_request(sample.tag, None, sample.records)[: -len(get_page_msg(sample.tag))]
    killer = threading.Timer(0.3, os.kill, (pid, signal.SIGKILL))
    killer.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(WalRedoError) as ei:
            walredo.send_request(request, tag=sample.tag)
    finally:
        killer.cancel()
    assert time.monotonic() - t0 < 5
    e = ei.value
    assert e.kind == "crash" and e.returncode == -signal.SIGKILL
    assert "killed by SIGKILL" in str(e)
    assert e.request == request and e.pid == pid
    _expect_recovery(walredo, sample, pid)


def test_hung_server_times_out(sample: Sample) -> None:
    with WalRedoProcess(timeout=1.0) as wr:
        assert wr.reconstruct(sample.tag, None, sample.records) == sample.expected
        pid = wr.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        t0 = time.monotonic()
        with pytest.raises(WalRedoError) as ei:
            wr.reconstruct(sample.tag, None, sample.records)
        elapsed = time.monotonic() - t0
        assert 0.9 < elapsed < 5, elapsed
        e = ei.value
        assert e.kind == "timeout"
        assert "no answer from the wal-redo server within 1s" in str(e)
        assert e.returncode == -signal.SIGKILL  # the stopped server was killed and reaped
        assert e.request == build_request(sample.tag, None, sample.records)
        _expect_recovery(wr, sample, pid)


def test_sigterm_while_idle(walredo: WalRedoProcess, sample: Sample) -> None:
    """SIGTERM reaches a server waiting for input (non-blocking stdin + latch)."""
    pid = walredo.pid
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while (_proc_stat(pid) or ("Z",))[0] != "Z" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (_proc_stat(pid) or ("Z",))[0] == "Z", "the server ignored SIGTERM"
    _expect_recovery(walredo, sample, pid)


# -- lifecycle -------------------------------------------------------------------------------
def test_respawn_every_n_requests(sample: Sample) -> None:
    with WalRedoProcess(respawn_every=2) as wr:
        pids = []
        for _ in range(5):
            assert wr.reconstruct(sample.tag, None, sample.records) == sample.expected
            pids.append(wr.pid)
        # after requests 2 and 4 the server was stopped; the next request started a new one
        assert pids[1] is None and pids[3] is None
        assert None not in (pids[0], pids[2], pids[4]) and len({pids[0], pids[2], pids[4]}) == 3
        for pid in (pids[0], pids[2]):
            assert pid is not None
            assert_gone(pid)
        assert wr.spawns == 3
        assert wr.requests == 5


def test_close_is_clean(sample: Sample) -> None:
    wr = WalRedoProcess()
    assert wr.reconstruct(sample.tag, None, sample.records) == sample.expected
    pid = wr.pid
    assert pid is not None
    holder_child = wr._holder[0]
    assert holder_child is not None
    wr.close()
    assert holder_child.popen.returncode == 0  # EOF on stdin: a clean exit
    assert_gone(pid)
    with pytest.raises(WalRedoError, match="closed"):
        wr.reconstruct(sample.tag, None, sample.records)


def test_garbage_collected_process_is_killed(sample: Sample) -> None:
    wr = WalRedoProcess()
    wr.start()
    pid = wr.pid
    assert pid is not None
    del wr
    gc.collect()
    assert_gone(pid)


def test_old_tag_layout(sample: Sample) -> None:
    with WalRedoProcess(tag_layout="old") as wr:
        assert wr.reconstruct(sample.tag, None, sample.records) == sample.expected
        req = build_request(sample.tag, None, sample.records, "old")
        assert parse_request(req, "old").tag == sample.tag
        assert struct.unpack(">I", req[1:5])[0] == 24  # 'B' length as the seed writes it


def test_external_command(sample: Sample) -> None:
    """Any command speaking the protocol plugs in through ``cmd`` (here our own server, no ping)."""
    server = StockWalRedoServer()
    try:
        with WalRedoProcess(cmd=server.argv(), user=server.user, ping=False) as wr:
            assert wr.reconstruct(sample.tag, None, sample.records) == sample.expected
            with pytest.raises(WalRedoError, match="does not answer pings"):
                wr.ping()
    finally:
        server.cleanup()


def test_server_that_does_not_start() -> None:
    server = StockWalRedoServer()
    try:
        argv = [*server.argv()[:-1], "no_such_database"]
        with WalRedoProcess(cmd=argv, user=server.user, ping=True) as wr, \
                pytest.raises(WalRedoError) as ei:
            wr.start()
        assert ei.value.kind == "spawn"
        assert 'database "no_such_database" does not exist' in ei.value.stderr_tail
    finally:
        server.cleanup()


def test_ping(walredo: WalRedoProcess, sample: Sample) -> None:
    rtt = walredo.ping()
    assert 0 < rtt < 1.0


# -- submitted requests: the server works while the caller does ------------------------------
def test_submitted_requests_answer_in_order(walredo: WalRedoProcess, sample: Sample) -> None:
    """A request submitted while another is in flight first reads the other's answer;
    each PendingPage gives its own page, whatever order results are asked in."""
    shorter = walredo.reconstruct(sample.tag, None, sample.records[:5])
    assert shorter != sample.expected
    pid, requests = walredo.pid, walredo.requests
    first = walredo.submit(sample.tag, None, sample.records)
    second = walredo.submit(sample.tag, None, sample.records[:5])
    refused = walredo.submit(sample.tag, None, sample.records[1:])  # no starting point: never sent
    assert second.result() == shorter
    assert first.result() == sample.expected
    with pytest.raises(WalRedoRequestError, match="neither restores a full-page image"):
        refused.result()
    assert second.result() == shorter  # asked again: the same answer
    assert walredo.pid == pid and walredo.requests == requests + 2


def test_crash_of_a_submitted_request_is_its_own(walredo: WalRedoProcess, sample: Sample) -> None:
    """The server dies on the request in flight: that request's result says so (with its
    bytes); the next one, submitted meanwhile, is answered by a fresh server."""
    pid = walredo.pid
    walredo.validate = False
    try:
        bad = walredo.submit(sample.tag, None, sample.records[1:])
    finally:
        walredo.validate = True
    good = walredo.submit(sample.tag, None, sample.records)
    assert good.result() == sample.expected
    with pytest.raises(WalRedoError) as ei:
        bad.result()
    assert ei.value.kind == "crash"
    assert "no base page for the target and the first record neither restores" in ei.value.stderr_tail
    assert ei.value.request == build_request(sample.tag, None, sample.records[1:])
    assert walredo.pid != pid
    if pid is not None:
        assert_gone(pid)
    SHARED_PID[0] = walredo.pid


def test_close_with_a_request_in_flight(sample: Sample) -> None:
    wr = WalRedoProcess()
    pending = wr.submit(sample.tag, None, sample.records)
    pid = wr.pid
    assert pid is not None
    wr.close()
    assert_gone(pid)
    with pytest.raises(WalRedoError) as ei:
        pending.result()
    assert ei.value.kind == "cancelled"


def test_a_new_process_copies_the_kept_scratch_template() -> None:
    """The scratch cluster's template is initdb'd once per installation and kept in the
    cache: a new process (a fuzz or check worker) copies it instead of running initdb."""
    import subprocess
    import sys

    from oracles.pgbin import cache_dir, default_install
    from oracles.walredo_server import _kept_template

    kept = _kept_template(default_install())
    assert (kept / "data" / "PG_VERSION").exists() and kept.parent == cache_dir().parent / "walredo-templates"
    code = ("import oracles.walredo_server as s; from oracles.walredo import WalRedoProcess\n"
            "w = WalRedoProcess(); w.start(); w.close(); print(len(s._templates))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0 and res.stdout.strip() == "0", res.stderr  # no template of its own


def test_each_page_of_a_multi_page_image_record(pg: LocalCluster, walredo: WalRedoProcess) -> None:
    """A GiST build logs its pages up to 32 to an XLOG_FPI record (log_newpage_range); the
    server narrows such a record to the target's block (pg_walredo.c, pgwr_narrow_fpi):
    every page it names, first or not, comes back as the image pyredo restores."""
    from pyredo.engine import RedoEngine
    from pyredo.rmgr import RM_XLOG_ID

    pg.execute("DROP TABLE IF EXISTS wr_fpi")
    pg.execute("CREATE TABLE wr_fpi (p point)")
    pg.execute("INSERT INTO wr_fpi SELECT point(g % 97, g / 97) FROM generate_series(1, 20000) g")
    start = pg.checkpoint()
    pg.execute("CREATE INDEX wr_fpi_p ON wr_fpi USING gist (p)")
    end = pg.current_lsn()
    multi = [r for r in WalReader(pg.waldir, start, end)
             if r.rmid == RM_XLOG_ID and r.info & 0xF0 == 0xB0 and len(r.blocks) > 1]  # XLOG_FPI
    assert multi, "the GiST build logged no multi-page XLOG_FPI record"
    rec = max(multi, key=lambda r: len(r.blocks))
    engine = RedoEngine()
    tags = [blk.tag for blk in rec.blocks.values()]
    for tag in tags:
        assert walredo.reconstruct(tag, None, [rec]) == engine.reconstruct(tag, None, [rec]), tag
