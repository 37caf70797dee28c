"""``redodiff bench walredo``: how fast the wal-redo server rebuilds pages.

Two request shapes, both made from real WAL of a throwaway (or given) cluster:

* **short**: 2 records per request -- a heap page that holds two wide rows
  (``Heap/INSERT+INIT``, ``Heap/INSERT``);
* **medium**: ~226 records per request -- a heap page filled by single-row
  inserts of two ints (Neon's own walredo bench uses ~226-insert requests).

For each: requests/s and records/s of ``WalRedoProcess.reconstruct`` (one
synchronous request at a time, as the harness sends them), plus the round
trip of an ``H`` ping. Any other engine passed in (pyredo's RedoEngine) runs
the same request stream; the result gives its rates, the ratio to the
server's, and how many of its pages differ from the server's; one that
answers pings (Neon's wal-redo process) gets its ping round trip measured too.
A ``--walredo-cmd`` server is pinged when it answers pings (``answers_pings``).

``run_bench`` returns a plain dict (JSON-ready) and prints nothing.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from harness.clusters.local import ClusterSettings, LocalCluster
from oracles.walredo import WalRedoError, WalRedoProcess
from oracles.walredo_routing import first_record_problem, records_by_block
from pyredo.wal.lsn import format_lsn
from pyredo.wal.reader import WalReader
from pyredo.wal.record import MAIN_FORKNUM, BufferTag, DecodedXLogRecord

__all__ = ["Engine", "Request", "answers_pings", "build_requests", "run_bench"]


class Engine(Protocol):
    name: str

    def reconstruct(self, tag: BufferTag, base_page: bytes | None,
                    records: Iterable[DecodedXLogRecord]) -> bytes: ...


@dataclass
class Request:
    tag: BufferTag
    records: list[DecodedXLogRecord]


def _make_wal(pg: LocalCluster, short_pages: int, medium_pages: int) -> tuple[int, int, str, str]:
    """Fill fresh tables so their pages make the two request shapes; returns the WAL range
    and the two tables' names."""
    suffix = f"{int(time.time() * 1000) % 10**9}"
    short_t, medium_t = f"walredo_bench_short_{suffix}", f"walredo_bench_medium_{suffix}"
    pg.execute(f"CREATE TABLE {short_t} (a int, b text)")
    pg.execute(f"ALTER TABLE {short_t} ALTER COLUMN b SET STORAGE PLAIN")
    pg.execute(f"CREATE TABLE {medium_t} (a int, b int)")
    start = pg.checkpoint()
    # two ~3 kB rows per page, each row its own record
    pg.execute(f"INSERT INTO {short_t} SELECT g, repeat('x', 3000) "
               f"FROM generate_series(1, {2 * short_pages}) g")
    # 226 rows of two ints per page, each row its own Heap/INSERT
    pg.execute(f"INSERT INTO {medium_t} SELECT g, g FROM generate_series(1, {226 * medium_pages}) g")
    end = pg.current_lsn()
    pg.checkpoint()  # flushes the WAL up to ``end`` (commits are asynchronous here)
    return start, end, short_t, medium_t


def build_requests(records: Iterable[DecodedXLogRecord], rel: int, *,
                   min_records: int = 1) -> list[Request]:
    """Self-contained requests (no base page needed) for the main-fork pages of one relation."""
    out = []
    for tag, recs in records_by_block(records).items():
        if tag.rel != rel or tag.fork != MAIN_FORKNUM or len(recs) < min_records:
            continue
        if first_record_problem(tag, None, recs) is None:
            out.append(Request(tag, recs))
    return out


def _time_stream(engine: Engine, reqs: Sequence[Request], min_seconds: float,
                 max_requests: int) -> tuple[dict[str, Any], list[bytes]]:
    """Run the stream (repeated until ``min_seconds`` or ``max_requests``); rates + first pages."""
    pages: list[bytes] = []
    n_req = n_rec = 0
    t0 = time.perf_counter()
    elapsed = 0.0
    while True:
        for r in reqs:
            page = engine.reconstruct(r.tag, None, r.records)
            if len(pages) < len(reqs):
                pages.append(page)
            n_req += 1
            n_rec += len(r.records)
            if n_req >= max_requests:
                break
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds or n_req >= max_requests:
            break
    return {
        "requests": n_req,
        "records": n_rec,
        "seconds": round(elapsed, 4),
        "requests_per_s": round(n_req / elapsed, 1) if elapsed else None,
        "records_per_s": round(n_rec / elapsed, 1) if elapsed else None,
        "records_per_request": round(n_rec / n_req, 1) if n_req else 0,
    }, pages


def answers_pings(wr: WalRedoProcess) -> bool:
    """Does the server answer ``H``? A server not known to is tried once (a spawn
    with a ping); one that does not is left to respawn without pings."""
    if not wr.ping_supported:
        wr.ping_supported = True
        try:
            wr.start()
        except WalRedoError:
            wr.ping_supported = False
    return wr.ping_supported


def _ping_stats(wr: WalRedoProcess, pings: int) -> dict[str, Any]:
    for _ in range(min(50, pings)):  # warm-up
        wr.ping()
    rtts = [wr.ping() for _ in range(pings)]
    rtts.sort()
    return {
        "pings": pings,
        "mean_us": round(statistics.fmean(rtts) * 1e6, 1),
        "median_us": round(statistics.median(rtts) * 1e6, 1),
        "p99_us": round(rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))] * 1e6, 1),
    }


def run_bench(
    *,
    cluster: LocalCluster | None = None,
    walredo: WalRedoProcess | None = None,
    engines: Sequence[Engine] = (),
    short_pages: int = 500,
    medium_pages: int = 40,
    min_seconds: float = 2.0,
    max_requests: int = 200_000,
    other_min_seconds: float = 2.0,
    pings: int = 2000,
    progress: Callable[[str], None] | None = None,
    pg_install: Any = None,
) -> dict[str, Any]:
    """Measure the wal-redo server (and ``engines`` on the same requests).

    ``cluster``: where to make the WAL (default: a throwaway LocalCluster).
    ``walredo``: the server to measure (default: the stock server, closed at the end).
    ``pg_install``: the PostgreSQL (``oracles.pgbin.PgInstall``) of the throwaway cluster and
    of the default server (None: the default installation).
    Nothing is printed; ``progress`` (if given) gets one line per step.
    """
    say = progress or (lambda _msg: None)
    own_cluster = cluster is None
    pg = cluster if cluster is not None else LocalCluster(ClusterSettings(pg=pg_install)).__enter__()
    own_wr = walredo is None
    wr = walredo if walredo is not None else WalRedoProcess(pg=pg_install)
    try:
        say("making WAL")
        start, end, short_t, medium_t = _make_wal(pg, short_pages, medium_pages)
        records = list(WalReader(pg.waldir, start, end))
        _spc, _db, short_rel = pg.relfilenode(short_t)
        _spc, _db, medium_rel = pg.relfilenode(medium_t)
        shapes = {
            "short": build_requests(records, short_rel),
            "medium": build_requests(records, medium_rel, min_records=100),
        }
        result: dict[str, Any] = {
            "server": wr.argv[0] if wr.argv else "?",
            "wal": {"start": format_lsn(start), "end": format_lsn(end), "bytes": end - start,
                    "records": len(records)},
        }
        wr.start()
        say("ping")
        result["ping"] = _ping_stats(wr, pings) if answers_pings(wr) else {"error": "does not answer pings"}
        for eng in engines:
            if isinstance(eng, WalRedoProcess) and eng.ping_supported:
                result[f"ping_{eng.name}"] = _ping_stats(eng, pings)
        for shape, reqs in shapes.items():
            if not reqs:
                result[shape] = {"error": "no requests of this shape in the WAL"}
                continue
            say(f"{shape}: {len(reqs)} distinct requests")
            _time_stream(wr, reqs[: min(len(reqs), 20)], 0.0, 20)  # warm-up
            stats, ref_pages = _time_stream(wr, reqs, min_seconds, max_requests)
            entry: dict[str, Any] = {"distinct_requests": len(reqs), "walredo": stats}
            for eng in engines:
                say(f"{shape}: {eng.name}")
                try:
                    est, pages = _time_stream(eng, reqs, other_min_seconds, max_requests)
                except Exception as e:  # an engine that cannot do it yet is a result too
                    entry[eng.name] = {"error": f"{type(e).__name__}: {e}"}
                    continue
                est["pages_differing_from_walredo"] = sum(
                    1 for a, b in zip(pages, ref_pages, strict=False) if a != b)
                if est["records_per_s"] and stats["records_per_s"]:
                    est["speed_vs_walredo"] = round(est["records_per_s"] / stats["records_per_s"], 4)
                entry[eng.name] = est
            result[shape] = entry
        result["server_stats"] = {"spawns": wr.spawns, "requests": wr.requests,
                                  "records": wr.records, "failures": wr.failures}
        return result
    finally:
        if own_wr:
            wr.close()
        if own_cluster:
            pg.destroy()
