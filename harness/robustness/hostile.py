"""Hostile input: mutate REAL WAL and real decoded records, and hold pyredo to
its promise — every outcome is a result or a typed error that says where; no
untyped exception, no hang, no allocation sized by an attacker's length field.

Two targets, one runner:

* the decoder (``mode="wal"``): real segments made once by a LocalCluster
  (1 MB segments, wal_compression pglz, lz4 and zstd in turn) are copied to a
  scratch directory; each case patches those files in place (bit flips,
  truncation, a missing segment, spliced pages, bad page headers, wrong
  xl_tot_len, bogus block headers, huge lengths, broken compressed images),
  reads the neighbourhood with ``WalReader`` — decoding every record and
  restoring every image — then undoes its patches. Some categories call
  ``decode_record`` and ``restore_block_image`` directly with edits the file
  layout cannot carry (bytes inserted or cut, arbitrary hole fields).
  A result or a ``WalError`` naming LSN and file passes.
* pyredo (``mode="redo"``): the records of one page from the same WAL, one of
  them with mutated main data, block data or info bits, go through
  ``RedoEngine().reconstruct``. A page or a ``RedoError`` naming rmgr, info
  and LSN passes; the report counts, per rmgr, which exception a routine
  raised before the engine wrapped it, and the slowest record types.

Each case runs under an interval timer (``signal.setitimer``); a case that
overruns is a hang. ``faulthandler`` is the backstop for one stuck in C.
Memory: tracemalloc's peak per case (Python allocations), and ru_maxrss growth
over the run (everything, C libraries included). A soft RLIMIT_AS turns a
runaway allocation into a MemoryError (counted as untyped) instead of an OOM.

Cases are deterministic: case ``i`` of seed ``S`` draws from
``random.Random(f"{S}:{category}:{i}")`` (redo: ``f"{S}:redo:{i}"``), so any
failure replays alone (``run_wal_case`` / ``run_redo_case``); its note says
what was mutated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import json
import os
import random
import resource
import shutil
import signal
import struct
import sys
import time
import traceback
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import crc32c

from pyredo import BLCKSZ
from pyredo.errors import PyredoError, RedoError, WalError
from pyredo.wal.decoder import decode_record
from pyredo.wal.image import restore_block_image
from pyredo.wal.lsn import format_lsn, parse_segment_file_name, segment_file_name
from pyredo.wal.reader import (
    XLOG_BLCKSZ,
    SizeOfXLogLongPHD,
    SizeOfXLogShortPHD,
    WalReader,
)
from pyredo.wal.record import (
    BKPBLOCK_HAS_DATA,
    BKPBLOCK_HAS_IMAGE,
    BKPBLOCK_SAME_REL,
    BKPIMAGE_COMPRESS_LZ4,
    BKPIMAGE_COMPRESS_PGLZ,
    BKPIMAGE_COMPRESS_ZSTD,
    BKPIMAGE_COMPRESSED_MASK,
    BKPIMAGE_HAS_HOLE,
    XLR_BLOCK_ID_DATA_LONG,
    XLR_BLOCK_ID_DATA_SHORT,
    XLR_BLOCK_ID_ORIGIN,
    XLR_BLOCK_ID_TOPLEVEL_XID,
    BufferTag,
    DecodedXLogRecord,
    SizeOfXLogRecord,
)

CORPUS_META = "corpus.json"
COMPRESSIONS = ("pglz", "lz4", "zstd")

# A small mixed workload for the checked-in fixture (tests/data/hostile_wal):
# every index AM, TOAST, a record longer than a WAL page, run once per
# compression method so the fixture holds pglz, lz4 and zstd images.
FIXTURE_STEPS: tuple[str, ...] = (
    "CREATE EXTENSION IF NOT EXISTS bloom",
    "DROP TABLE IF EXISTS hx_t, hx_docs, hx_geo CASCADE",
    "DROP SEQUENCE IF EXISTS hx_seq",
    "CREATE SEQUENCE hx_seq",
    "CREATE TABLE hx_t (id int PRIMARY KEY, k int, v text) WITH (fillfactor = 70)",
    "CREATE INDEX hx_t_hash ON hx_t USING hash (k)",
    "CREATE INDEX hx_t_brin ON hx_t USING brin (k) WITH (pages_per_range = 2)",
    "CREATE INDEX hx_t_bloom ON hx_t USING bloom (id, k)",
    "INSERT INTO hx_t SELECT g, g % 37, md5(g::text) FROM generate_series(1, 120) g",
    "UPDATE hx_t SET v = v || 'x' WHERE id % 5 = 0",
    "UPDATE hx_t SET k = k + 1 WHERE id % 11 = 0",
    "DELETE FROM hx_t WHERE id % 7 = 0",
    "INSERT INTO hx_t SELECT 1000 + g, g, string_agg(md5((g * 100 + i)::text), '') "
    "FROM generate_series(1, 2) g, generate_series(1, 100) i GROUP BY g",
    "CREATE TABLE hx_docs (id int, tags int[])",
    "CREATE INDEX hx_docs_gin ON hx_docs USING gin (tags) WITH (fastupdate = off)",
    "INSERT INTO hx_docs SELECT g, ARRAY[g % 10, g % 17] FROM generate_series(1, 100) g",
    "CREATE TABLE hx_geo (id int, b box, name text)",
    "CREATE INDEX hx_geo_gist ON hx_geo USING gist (b)",
    "CREATE INDEX hx_geo_spgist ON hx_geo USING spgist (name)",
    "INSERT INTO hx_geo SELECT g, box(point(g % 50, g % 30), point(g % 50 + 3, g % 30 + 2)), "
    "'name-' || (g % 90) FROM generate_series(1, 120) g",
    "SELECT nextval('hx_seq') FROM generate_series(1, 40)",
    "VACUUM hx_t",
    "SELECT pg_logical_emit_message(false, 'redodiff', repeat('m', 12000))",
)


# -- the real-WAL corpus ------------------------------------------------------------
@dataclass(frozen=True)
class RecordInfo:
    """Where one real record lies, and what it carries (to aim mutations)."""

    lsn: int
    end_lsn: int
    tot_len: int
    rmid: int
    info: int
    images: tuple[int, ...]  # bimg_info of each block image
    nblocks: int
    main_len: int

    @property
    def compressions(self) -> set[str]:
        out = set()
        for b in self.images:
            if b & BKPIMAGE_COMPRESS_PGLZ:
                out.add("pglz")
            elif b & BKPIMAGE_COMPRESS_LZ4:
                out.add("lz4")
            elif b & BKPIMAGE_COMPRESS_ZSTD:
                out.add("zstd")
        return out


@dataclass
class WalCorpus:
    """Real WAL segment files (in memory) and an index of their records."""

    path: Path
    seg_size: int
    tli: int
    start: int
    end: int
    segments: dict[int, bytes]  # segno -> file bytes (a last file may be short)
    records: list[RecordInfo] = field(default_factory=list)
    raws: dict[int, bytes] = field(default_factory=dict)  # lsn -> raw record

    @classmethod
    def load(cls, path: Path) -> WalCorpus:
        meta = json.loads((path / CORPUS_META).read_text())
        seg_size = int(meta["seg_size"])
        segments: dict[int, bytes] = {}
        for p in sorted(path.iterdir()):
            if len(p.name) == 24:
                _tli, segno = parse_segment_file_name(p.name, seg_size)
                segments[segno] = p.read_bytes()
            elif len(p.name) == 27 and p.name.endswith(".xz"):  # the checked-in fixture
                import lzma

                _tli, segno = parse_segment_file_name(p.name[:24], seg_size)
                segments[segno] = lzma.decompress(p.read_bytes())
        corpus = cls(path, seg_size, int(meta["tli"]), int(meta["start"]), int(meta["end"]), segments)
        corpus._index()
        return corpus

    def _index(self) -> None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="redodiff-hostile-index-") as d:
            for segno, data in self.segments.items():
                (Path(d) / self.seg_name(segno)).write_bytes(data)
            self._index_dir(Path(d))

    def _index_dir(self, waldir: Path) -> None:
        for rec in WalReader(waldir, self.start, self.end):
            self.records.append(RecordInfo(
                rec.lsn, rec.end_lsn, rec.tot_len, rec.rmid, rec.info,
                tuple(b.bimg_info for b in rec.blocks.values() if b.has_image),
                len(rec.blocks), len(rec.main_data)))
            self.raws[rec.lsn] = rec.raw
        if not self.records:
            raise ValueError(f"no records in the WAL corpus at {self.path}")

    def seg_name(self, segno: int) -> str:
        return segment_file_name(self.tli, segno, self.seg_size)

    def where(self, lsn: int) -> tuple[str, int]:
        return self.seg_name(lsn // self.seg_size), lsn % self.seg_size

    def decoded(self) -> list[DecodedXLogRecord]:
        return [decode_record(self.raws[r.lsn], r.lsn, r.end_lsn) for r in self.records]


def make_real_wal(dest: Path, steps: Sequence[str] | None = None,
                  compressions: Sequence[str] = COMPRESSIONS, *, single_segment: bool = False) -> Path:
    """Run ``steps`` (default: the demo workload) on a throwaway cluster with
    1 MB segments, once per compression method, and copy the WAL to ``dest``.

    ``single_segment`` starts at a fresh segment and keeps only the used pages
    of it (for a small fixture; the steps must fit in one segment)."""
    from harness.campaign.demo import DEMO_STEPS
    from harness.clusters.local import ClusterSettings, LocalCluster
    from harness.verify.capture import capture

    steps = list(steps if steps is not None else DEMO_STEPS)
    dest.mkdir(parents=True, exist_ok=True)
    with LocalCluster(ClusterSettings(wal_segsize_mb=1)) as pg:
        if single_segment:
            pg.execute("SELECT txid_current()")
            pg.switch_wal()
        start: int | None = None
        end = 0
        for comp in compressions:
            pg.execute(f"ALTER SYSTEM SET wal_compression = '{comp}'")
            pg.execute("SELECT pg_reload_conf()")
            deadline = time.monotonic() + 10
            while pg.scalar("SHOW wal_compression") != comp:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"wal_compression did not become {comp}")
                time.sleep(0.05)
            cap = capture(pg, steps)
            cap.cleanup()  # only its LSN range is used
            if cap.errors:
                raise RuntimeError(f"corpus workload step failed: {cap.errors[0]}")
            start = cap.start if start is None else start
            end = cap.end
        assert start is not None
        seg_size = pg.wal_segsize
        first, last = start // seg_size, (end - 1) // seg_size
        if single_segment and first != last:
            raise RuntimeError("the fixture workload does not fit in one WAL segment")
        for segno in range(first, last + 1):
            name = segment_file_name(1, segno, seg_size)
            data = (pg.waldir / name).read_bytes()
            if single_segment:  # the used pages, zero-filled as a fresh segment is
                used = end % seg_size
                used += -used % XLOG_BLCKSZ
                data = data[:used] + bytes(seg_size - used)
            (dest / name).write_bytes(data)
    meta = {"seg_size": seg_size, "tli": 1, "start": start, "end": end,
            "start_lsn": format_lsn(start), "end_lsn": format_lsn(end),
            "compressions": list(compressions), "steps": len(steps)}
    (dest / CORPUS_META).write_text(json.dumps(meta, indent=2) + "\n")
    return dest


# -- record layout: where each header field and payload lies ------------------------
@dataclass(frozen=True)
class Field:
    kind: str  # block_id, fork_flags, data_len, bimg_len, hole_offset, bimg_info, hole_length,
    #            rnode, blkno, main_len, origin, toplevel_xid
    pos: int
    size: int
    block_id: int | None = None


@dataclass(frozen=True)
class Region:
    kind: str  # image, data, main
    pos: int
    size: int
    block_id: int | None = None
    bimg_info: int = 0


def record_layout(raw: bytes) -> tuple[list[Field], list[Region]]:
    """Header fields and payload regions of a well-formed record (DecodeXLogRecord's walk)."""
    fields: list[Field] = []
    blocks: list[tuple[int, int, int, int]] = []  # block_id, bimg_len, bimg_info, data_len
    pos = SizeOfXLogRecord
    remaining = len(raw) - SizeOfXLogRecord
    datatotal = 0
    main_len = 0
    while remaining > datatotal:
        start = pos
        bid = raw[pos]
        fields.append(Field("block_id", pos, 1, bid))
        if bid == XLR_BLOCK_ID_DATA_SHORT:
            fields.append(Field("main_len", pos + 1, 1))
            main_len = raw[pos + 1]
            pos += 2
            break
        if bid == XLR_BLOCK_ID_DATA_LONG:
            fields.append(Field("main_len", pos + 1, 4))
            main_len = struct.unpack_from("<I", raw, pos + 1)[0]
            pos += 5
            break
        if bid == XLR_BLOCK_ID_ORIGIN:
            fields.append(Field("origin", pos + 1, 2))
            pos += 3
            remaining -= 3
            continue
        if bid == XLR_BLOCK_ID_TOPLEVEL_XID:
            fields.append(Field("toplevel_xid", pos + 1, 4))
            pos += 5
            remaining -= 5
            continue
        flags, data_len = struct.unpack_from("<BH", raw, pos + 1)
        fields += [Field("fork_flags", pos + 1, 1, bid), Field("data_len", pos + 2, 2, bid)]
        pos += 4
        datatotal += data_len
        bimg_len = bimg_info = 0
        if flags & BKPBLOCK_HAS_IMAGE:
            bimg_len, _hole, bimg_info = struct.unpack_from("<HHB", raw, pos)
            fields += [Field("bimg_len", pos, 2, bid), Field("hole_offset", pos + 2, 2, bid),
                       Field("bimg_info", pos + 4, 1, bid)]
            pos += 5
            if bimg_info & BKPIMAGE_COMPRESSED_MASK and bimg_info & BKPIMAGE_HAS_HOLE:
                fields.append(Field("hole_length", pos, 2, bid))
                pos += 2
            datatotal += bimg_len
        if not flags & BKPBLOCK_SAME_REL:
            fields.append(Field("rnode", pos, 12, bid))
            pos += 12
        fields.append(Field("blkno", pos, 4, bid))
        pos += 4
        remaining -= pos - start
        blocks.append((bid, bimg_len, bimg_info, data_len if flags & BKPBLOCK_HAS_DATA else 0))
    regions: list[Region] = []
    for bid, bimg_len, bimg_info, data_len in blocks:
        if bimg_len:
            regions.append(Region("image", pos, bimg_len, bid, bimg_info))
            pos += bimg_len
        if data_len:
            regions.append(Region("data", pos, data_len, bid))
            pos += data_len
    if main_len:
        regions.append(Region("main", pos, main_len))
    return fields, regions


def fix_crc(raw: bytes | bytearray) -> bytes:
    """The record with xl_crc recomputed (so a mutation gets past the CRC check)."""
    raw = bytearray(raw)
    raw[20:24] = bytes(4)
    crc = crc32c.crc32c(bytes(raw[:20]), crc32c.crc32c(bytes(raw[SizeOfXLogRecord:])))
    struct.pack_into("<I", raw, 20, crc)
    return bytes(raw)


# -- the scratch WAL directory cases patch --------------------------------------------
class ScratchWal:
    """A writable copy of the corpus' segment files. A case patches it; ``restore``
    puts the original bytes back, so 100,000 cases cost no file copies."""

    def __init__(self, corpus: WalCorpus, root: Path) -> None:
        self.corpus = corpus
        self.dir = root
        root.mkdir(parents=True, exist_ok=True)
        for segno, data in corpus.segments.items():
            (root / corpus.seg_name(segno)).write_bytes(data)
        self._undo: list[Callable[[], None]] = []

    def path(self, segno: int) -> Path:
        return self.dir / self.corpus.seg_name(segno)

    def original(self, lsn: int, n: int) -> bytes:
        segno, off = divmod(lsn, self.corpus.seg_size)
        return self.corpus.segments.get(segno, b"")[off : off + n]

    def write(self, lsn: int, data: bytes) -> None:
        """Overwrite file bytes at WAL position ``lsn`` (within one segment)."""
        segno, off = divmod(lsn, self.corpus.seg_size)
        p = self.path(segno)
        orig = self.original(lsn, len(data))
        fd = os.open(p, os.O_WRONLY)
        try:
            os.pwrite(fd, data, off)
        finally:
            os.close(fd)

        def undo() -> None:
            fd = os.open(p, os.O_WRONLY)
            try:
                os.pwrite(fd, orig, off)
                size = len(self.corpus.segments[segno])
                if off + len(data) > size:
                    os.ftruncate(fd, size)
            finally:
                os.close(fd)
        self._undo.append(undo)

    def write_record(self, lsn: int, raw: bytes) -> None:
        """Write a record of the original length back where it lies, across pages."""
        done = 0
        for pos, n in record_chunks(lsn, len(raw), self.corpus.seg_size):
            self.write(pos, raw[done : done + n])
            done += n

    def truncate(self, segno: int, size: int) -> None:
        p = self.path(segno)
        os.truncate(p, size)

        def undo() -> None:
            p.write_bytes(self.corpus.segments[segno])
        self._undo.append(undo)

    def rename(self, segno: int, new_name: str) -> None:
        p = self.path(segno)
        q = self.dir / new_name
        os.rename(p, q)
        self._undo.append(lambda: os.rename(q, p))

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()


def record_chunks(lsn: int, n: int, seg_size: int) -> list[tuple[int, int]]:
    """The (WAL position, length) pieces of ``n`` record bytes starting at ``lsn``,
    skipping the page headers they straddle."""
    out = []
    pos = lsn
    while n > 0:
        page = pos - pos % XLOG_BLCKSZ
        if pos == page:
            pos += SizeOfXLogLongPHD if page % seg_size == 0 else SizeOfXLogShortPHD
        k = min(page + XLOG_BLCKSZ - pos, n)
        out.append((pos, k))
        pos += k
        n -= k
    return out


def record_pages(rec: RecordInfo) -> list[int]:
    """Start LSNs of the WAL pages a record's bytes lie on."""
    first = rec.lsn - rec.lsn % XLOG_BLCKSZ
    last = rec.lsn + rec.tot_len - 1
    # page headers push the record further; over-estimate by one page, harmless
    last += (last - first) // XLOG_BLCKSZ * SizeOfXLogLongPHD + SizeOfXLogLongPHD
    return list(range(first, last - last % XLOG_BLCKSZ + 1, XLOG_BLCKSZ))


# -- outcomes -------------------------------------------------------------------------
class CaseTimeout(BaseException):
    """Raised by the interval timer: the case ran past its time bound (a hang).
    A BaseException, so no ``except Exception`` in the code under test swallows it."""


OK = "ok"


@dataclass
class Outcome:
    kind: str  # "ok", "typed", "untyped", "timeout", "unlocated", "bad_result"
    name: str  # exception class (or "ok")
    seconds: float
    peak_bytes: int = 0
    note: str = ""
    detail: str = ""  # traceback for untyped/unlocated
    cause: str | None = None  # the exception a typed error was raised from
    stray: str | None = None  # redo: an exception the engine's catch-all had to wrap
    rmgr: str | None = None
    record_type: str | None = None
    helper_error: str | None = None  # desc/implicit_tags/record_type raised this (redo mode)


@dataclass
class CategoryStats:
    cases: int = 0
    ok: int = 0
    typed: Counter[str] = field(default_factory=Counter)
    untyped: Counter[str] = field(default_factory=Counter)
    unlocated: Counter[str] = field(default_factory=Counter)
    bad_result: int = 0
    timeouts: int = 0
    worst_seconds: float = 0.0
    worst_case: str = ""
    peak_bytes: int = 0
    causes: Counter[str] = field(default_factory=Counter)  # what typed errors were raised from
    stray: Counter[str] = field(default_factory=Counter)  # redo: wrapped by the engine's catch-all
    helper_errors: Counter[str] = field(default_factory=Counter)
    slowest: list[tuple[float, str]] = field(default_factory=list)  # redo: (seconds, record type)
    examples: list[dict[str, str]] = field(default_factory=list)  # failures, first few

    def add(self, o: Outcome, case_id: str, keep: int = 3) -> None:
        self.cases += 1
        if o.kind == OK:
            self.ok += 1
        elif o.kind == "typed":
            self.typed[o.name] += 1
        elif o.kind == "unlocated":
            self.unlocated[o.name] += 1
        elif o.kind == "timeout":
            self.timeouts += 1
        elif o.kind == "bad_result":
            self.bad_result += 1
        else:
            self.untyped[o.name] += 1
        if o.cause:
            self.causes[o.cause] += 1
        if o.stray:
            self.stray[o.stray] += 1
            if sum(1 for e in self.examples if e["kind"] == "stray") < keep:
                self.examples.append({"kind": "stray", "case": case_id, "error": o.stray, "note": o.note,
                                      "traceback": o.detail})
        if o.helper_error:
            self.helper_errors[o.helper_error.split(":")[0]] += 1
            if sum(1 for e in self.examples if e["kind"] == "helper") < keep:
                self.examples.append({"kind": "helper", "case": case_id, "note": o.note,
                                      "error": o.helper_error})
        if o.seconds > self.worst_seconds:
            self.worst_seconds = o.seconds
            self.worst_case = f"{case_id} {o.record_type or ''} {o.note}".strip()
        self.peak_bytes = max(self.peak_bytes, o.peak_bytes)
        if o.record_type:
            self.slowest.append((o.seconds, o.record_type))
            if len(self.slowest) > 64:
                self.slowest = sorted(self.slowest, reverse=True)[:8]
        if o.kind not in (OK, "typed") and sum(1 for e in self.examples if e["kind"] == o.kind) < keep:
            self.examples.append({"kind": o.kind, "case": case_id, "error": o.name, "note": o.note,
                                  "traceback": o.detail})

    @property
    def failures(self) -> int:
        return sum(self.untyped.values()) + self.timeouts + self.bad_result + sum(self.unlocated.values())

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "cases": self.cases,
            "clean_results": self.ok,
            "typed_errors": dict(self.typed.most_common()),
            "untyped_exceptions": dict(self.untyped.most_common()),
            "unlocated_errors": dict(self.unlocated.most_common()),
            "bad_results": self.bad_result,
            "timeouts": self.timeouts,
            "worst_seconds": round(self.worst_seconds, 4),
            "worst_case": self.worst_case,
            "peak_case_bytes": self.peak_bytes,
        }
        if self.causes:
            out["raised_from"] = dict(self.causes.most_common())
        if self.stray:
            out["stray_exceptions_wrapped_by_engine"] = dict(self.stray.most_common())
        if self.helper_errors:
            out["helper_errors"] = dict(self.helper_errors.most_common())
        if self.slowest:
            seen: dict[str, float] = {}
            for s, t in sorted(self.slowest, reverse=True):
                seen.setdefault(t, round(s, 4))
            out["slowest_record_types"] = dict(list(seen.items())[:5])
        if self.examples:
            out["examples"] = self.examples
        return out


def _where_ok(e: BaseException, mode: str) -> bool:
    """Does a typed error say where? WalError: LSN and file. RedoError: rmgr, info, LSN."""
    if isinstance(e, WalError):
        return e.lsn is not None and e.segment is not None
    if isinstance(e, RedoError):
        return e.rmgr is not None and e.info is not None and e.lsn is not None
    return False


# -- byte and value edits -------------------------------------------------------------
EDGE_U8 = (0, 1, 0x7F, 0x80, 0xFE, 0xFF)
EDGE_U16 = (0, 1, 2, 3, 8, 23, 24, 0xFF, 0x100, 0x7FFF, 0x8000, 8191, 8192, 8193, 0xFFFE, 0xFFFF)
EDGE_U32 = (*EDGE_U16, 0x10000, 0x3FFFFFFF, 0x40000000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)
_PACK = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}


def edge_value(rng: random.Random, size: int, current: int | None = None) -> int:
    """A value for a ``size``-byte little-endian field: an edge case, a near miss
    of the current value, or anything."""
    top = (1 << (8 * size)) - 1
    r = rng.random()
    if r < 0.5:
        return rng.choice({1: EDGE_U8, 2: EDGE_U16}.get(size, EDGE_U32)) & top
    if r < 0.75 and current is not None:
        return (current + rng.choice((-8, -2, -1, 1, 2, 8, 4096, -4096))) & top
    return rng.randint(0, top)


def flip_bits(rng: random.Random, data: bytes, n: int | None = None,
              lo: int = 0, hi: int | None = None) -> bytes:
    """``data`` with ``n`` random bits flipped in ``[lo, hi)``."""
    hi = len(data) if hi is None else hi
    if hi <= lo:
        return data
    out = bytearray(data)
    for _ in range(n or rng.randint(1, 8)):
        out[rng.randrange(lo, hi)] ^= 1 << rng.randrange(8)
    return bytes(out)


def edit_bytes(rng: random.Random, data: bytes, *, resize: bool,
               max_len: int = 1 << 20) -> tuple[bytes, str]:
    """One hostile edit of a byte string; with ``resize`` it may change its length
    (up to about ``max_len``: what the length field that carries it can say)."""
    ops = ["flip", "overwrite", "zeros", "ones", "int"]
    if resize:
        ops += ["truncate", "truncate", "extend", "insert", "delete", "empty", "huge"]
    if not data:
        ops = ["extend", "huge"] if resize else []
        if not ops:
            return data, "none"
    op = rng.choice(ops)
    b = bytearray(data)
    n = len(b)
    if op == "flip":
        return flip_bits(rng, data), op
    if op in ("overwrite", "zeros", "ones"):
        i = rng.randrange(n)
        k = rng.randint(1, min(64, n - i))
        fill = {"overwrite": rng.randbytes(k), "zeros": bytes(k), "ones": b"\xff" * k}[op]
        b[i : i + k] = fill
        return bytes(b), f"{op}@{i}+{k}"
    if op == "int":
        size = rng.choice((2, 2, 4, 4, 8, 1))
        if n < size:
            return flip_bits(rng, data), "flip"
        i = rng.randrange(0, n - size + 1)
        if rng.random() < 0.7:
            i -= i % size  # aligned, where structs keep their fields
        v = edge_value(rng, size, int.from_bytes(b[i : i + size], "little"))
        b[i : i + size] = struct.pack(_PACK[size], v)
        return bytes(b), f"int{size * 8}@{i}={v}"
    if op == "truncate":
        k = rng.randrange(n)
        return bytes(b[:k]), f"truncate->{k}"
    if op == "extend":
        k = rng.randint(1, 64)
        return bytes(b) + rng.randbytes(k), f"extend+{k}"
    if op == "huge":
        k = min(rng.choice((8192, 65536, 1 << 20)), max(1, max_len - n))
        return bytes(b) + bytes(k), f"extend+{k}"
    if op == "insert":
        i, k = rng.randrange(n + 1), rng.randint(1, 16)
        b[i:i] = rng.randbytes(k)
        return bytes(b), f"insert@{i}+{k}"
    if op == "delete":
        i = rng.randrange(n)
        k = rng.randint(1, min(16, n - i))
        del b[i : i + k]
        return bytes(b), f"delete@{i}+{k}"
    return b"", "empty"


class BadResult(Exception):
    """The code under test returned something that is not a valid result."""


# -- the decoder target -----------------------------------------------------------------
@dataclass
class WalTarget:
    """The corpus, the scratch directory, and the records worth aiming at."""

    corpus: WalCorpus
    scratch: ScratchWal
    by_comp: dict[str, list[int]] = field(default_factory=dict)
    with_image: list[int] = field(default_factory=list)
    with_blocks: list[int] = field(default_factory=list)
    multi_page: list[int] = field(default_factory=list)
    seg_crossing: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        seg = self.corpus.seg_size
        for i, r in enumerate(self.corpus.records):
            for c in r.compressions:
                self.by_comp.setdefault(c, []).append(i)
            if r.images:
                self.with_image.append(i)
            if r.nblocks or r.main_len:
                self.with_blocks.append(i)
            if r.lsn // XLOG_BLCKSZ != (r.lsn + r.tot_len) // XLOG_BLCKSZ:
                self.multi_page.append(i)
            if r.lsn // seg != (r.end_lsn - 1) // seg and (r.end_lsn - 1) // seg in self.corpus.segments:
                self.seg_crossing.append(i)

    def pick(self, rng: random.Random, pool: Sequence[int] | None = None) -> int:
        if pool:
            return rng.choice(pool)
        return rng.randrange(len(self.corpus.records))

    def window(self, rng: random.Random, idx: int) -> tuple[int, int]:
        """Read from a record 0-3 before the target to two records after it."""
        recs = self.corpus.records
        start = recs[max(0, idx - rng.randint(0, 3))].lsn
        stop = recs[idx + 2].lsn if idx + 2 < len(recs) else self.corpus.end
        return start, stop

    def read(self, start: int, stop: int, end: int | None = None) -> int:
        """WalReader from ``start``: decode every record and restore every image,
        until a record begins at ``stop``. Returns the number of records."""
        n = 0
        it = iter(WalReader(self.scratch.dir, start, end))
        try:
            for rec in it:
                seg, off = self.corpus.where(rec.lsn)
                for blk in rec.blocks.values():
                    if blk.has_image:
                        page = restore_block_image(blk, rec.lsn, segment=seg, offset=off)
                        if len(page) != BLCKSZ:
                            raise BadResult(f"restored image is {len(page)} bytes")
                n += 1
                if rec.lsn >= stop:
                    break
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
        return n


Action = Callable[[], object]
WalCategory = Callable[[random.Random, WalTarget], tuple[str, Action]]


def _reader_action(t: WalTarget, start: int, stop: int, end: int | None = None) -> Action:
    return lambda: t.read(start, stop, end)


def cat_bitflip(rng: random.Random, t: WalTarget) -> tuple[str, Action]:
    """Flip 1-8 bits of a record as it lies in the file (or of a page header it spans)."""
    idx = t.pick(rng)
    r = t.corpus.records[idx]
    flips: dict[int, int] = {}
    if rng.random() < 0.2:
        page = rng.choice(record_pages(r))
        hsize = SizeOfXLogLongPHD if page % t.corpus.seg_size == 0 else SizeOfXLogShortPHD
        for _ in range(rng.randint(1, 4)):
            p = page + rng.randrange(hsize)
            flips[p] = flips.get(p, 0) ^ (1 << rng.randrange(8))
        where = f"page header {format_lsn(page)}"
    else:
        chunks = record_chunks(r.lsn, r.tot_len, t.corpus.seg_size)
        for _ in range(rng.randint(1, 8)):
            k = rng.randrange(r.tot_len)
            for pos, n in chunks:
                if k < n:
                    flips[pos + k] = flips.get(pos + k, 0) ^ (1 << rng.randrange(8))
                    break
                k -= n
        where = f"record {format_lsn(r.lsn)}"
    for p, mask in flips.items():
        if p // t.corpus.seg_size in t.corpus.segments:
            t.scratch.write(p, bytes([t.scratch.original(p, 1)[0] ^ mask]))
    return f"{len(flips)} bytes flipped in {where}", _reader_action(t, *t.window(rng, idx))


def cat_bitflip_crc(rng: random.Random, t: WalTarget) -> tuple[str, Action]:
    """Flip bits inside a record, then fix its CRC so the decoder sees the damage."""
    idx = t.pick(rng, t.with_blocks)
    r = t.corpus.records[idx]
    raw = t.corpus.raws[r.lsn]
    _fields, regions = record_layout(raw)
    hdr_end = regions[0].pos if regions else len(raw)
    if rng.random() < 0.6:  # aim at the headers: xl_info/xl_rmid and block headers
        raw2 = flip_bits(rng, raw, rng.randint(1, 3), 16, hdr_end)
        raw2 = raw2[:20] + raw[20:24] + raw2[24:]
    else:
        raw2 = flip_bits(rng, raw, lo=SizeOfXLogRecord)
    t.scratch.write_record(r.lsn, fix_crc(raw2))
    return f"bits flipped in {format_lsn(r.lsn)}, CRC fixed", _reader_action(t, *t.window(rng, idx))


def cat_truncate(rng: random.Random, t: WalTarget) -> tuple[str, Action]:
    """Cut the segment file holding a record somewhere around it."""
    idx = t.pick(rng, t.multi_page if rng.random() < 0.5 else None)
    r = t.corpus.records[idx]
    segno, off = divmod(r.lsn, t.corpus.seg_size)
    full = len(t.corpus.segments[segno])
    x = rng.random()
    if x < 0.1:
        size = rng.randint(0, SizeOfXLogLongPHD)
    else:
        size = rng.randint(max(0, off - 64), min(full, off + r.tot_len + 256))
        if x < 0.4:
            size -= size % XLOG_BLCKSZ
    t.scratch.truncate(segno, size)
    end = t.corpus.end if rng.random() < 0.5 else None
    start, stop = t.window(rng, idx)
    return f"segment {t.corpus.seg_name(segno)} cut to {size} bytes, end={end}", \
        _reader_action(t, start, stop, end)


def cat_missing_segment(rng: random.Random, t: WalTarget) -> tuple[str, Action]:
    """A segment the reader needs is not there (removed, or under another name)."""
    seg = t.corpus.seg_size
    end = t.corpus.end if rng.random() < 0.5 else None
    if t.seg_crossing and rng.random() < 0.6:
        idx = rng.choice(t.seg_crossing)
        r = t.corpus.records[idx]
        nxt = (r.end_lsn - 1) // seg
        t.scratch.rename(nxt, t.corpus.seg_name(nxt) + ".gone")
        start, _ = t.window(rng, idx)
        return f"segment {t.corpus.seg_name(nxt)} removed, end={end}", \
            _reader_action(t, start, nxt * seg + seg, end)
    idx = t.pick(rng)
    r = t.corpus.records[idx]
    segno = r.lsn // seg
    other = segno + rng.choice((1, -1, 2))
    name = t.corpus.seg_name(other) if other not in t.corpus.segments else t.corpus.seg_name(segno) + ".gone"
    t.scratch.rename(segno, name)
    return f"segment {t.corpus.seg_name(segno)} renamed to {name}, end={end}", \
        _reader_action(t, *t.window(rng, idx), end)


def _page_at(t: WalTarget, page: int) -> bytes:
    return t.scratch.original(page, XLOG_BLCKSZ)


def _with_pageaddr(page: bytes, addr: int) -> bytes:
    return page[:8] + struct.pack("<Q", addr) + page[16:]


def cat_splice(rng: random.Random, t: WalTarget) -> tuple[str, Action]:
    """Another page where a record's page should be: copied raw, with its pageaddr
    made to fit, the previous page again, two pages swapped, or zeros."""
    idx = t.pick(rng, t.multi_page if rng.random() < 0.5 else None)
    r = t.corpus.records[idx]
    seg = t.corpus.seg_size
    pages = [p for p in record_pages(r) if len(_page_at(t, p)) == XLOG_BLCKSZ]
    if not pages:
        return "no page to splice", _reader_action(t, *t.window(rng, idx))
    p = rng.choice(pages)
    segno = rng.choice(list(t.corpus.segments))
    npages = len(t.corpus.segments[segno]) // XLOG_BLCKSZ
    q = segno * seg + rng.randrange(npages) * XLOG_BLCKSZ
    kind = rng.choice(("raw", "fit", "fit", "previous", "swap", "zeros"))
    if kind == "raw":
        t.scratch.write(p, _page_at(t, q))
    elif kind == "fit":
        t.scratch.write(p, _with_pageaddr(_page_at(t, q), p))
    elif kind == "previous" and p % seg:
        t.scratch.write(p, _with_pageaddr(_page_at(t, p - XLOG_BLCKSZ), p))
    elif kind == "swap" and len(_page_at(t, p + XLOG_BLCKSZ)) == XLOG_BLCKSZ and (p + XLOG_BLCKSZ) % seg:
        a, b = _page_at(t, p), _page_at(t, p + XLOG_BLCKSZ)
        t.scratch.write(p, _with_pageaddr(b, p))
        t.scratch.write(p + XLOG_BLCKSZ, _with_pageaddr(a, p + XLOG_BLCKSZ))
    else:
        kind = "zeros"
        t.scratch.write(p, bytes(XLOG_BLCKSZ))
    return f"page {format_lsn(p)} <- {kind} {format_lsn(q)}", _reader_action(t, *t.window(rng, idx))


# (name, offset in the page, size); the last three only on a segment's first page
_PAGE_FIELDS = (("xlp_magic", 0, 2), ("xlp_info", 2, 2), ("xlp_tli", 4, 4), ("xlp_pageaddr", 8, 8),
                ("xlp_rem_len", 16, 4), ("xlp_sysid", 24, 8), ("xlp_seg_size", 32, 4),
                ("xlp_xlog_blcksz", 36, 4))


def cat_page_header(rng: random.Random, t: WalTarget) -> tuple[str, Action]:
    """One field of a WAL page header the reader crosses gets a bad value."""
    idx = t.pick(rng, t.multi_page if rng.random() < 0.6 else None)
    r = t.corpus.records[idx]
    seg = t.corpus.seg_size
    if rng.random() < 0.15:
        page = r.lsn - r.lsn % seg
    else:
        page = rng.choice(record_pages(r))
    if len(_page_at(t, page)) < SizeOfXLogLongPHD:
        page = r.lsn - r.lsn % XLOG_BLCKSZ
    fields = _PAGE_FIELDS if page % seg == 0 else _PAGE_FIELDS[:5]
    name, off, size = rng.choice(fields)
    cur = int.from_bytes(_page_at(t, page)[off : off + size], "little")
    if name == "xlp_info" and rng.random() < 0.6:
        new = cur ^ (1 << rng.randrange(5))
    elif name == "xlp_pageaddr" and rng.random() < 0.6:
        new = (cur + rng.choice((-XLOG_BLCKSZ, XLOG_BLCKSZ, seg, -seg, 1))) & (2**64 - 1)
    elif name == "xlp_tli" and rng.random() < 0.6:
        new = (cur + rng.choice((-1, 1))) & 0xFFFFFFFF
    elif name == "xlp_seg_size" and rng.random() < 0.5:
        new = rng.choice((1 << 20, 1 << 24, 1 << 30, 1 << 31, 0, 8192))
    else:
        new = edge_value(rng, size, cur)
    t.scratch.write(page + off, struct.pack(_PACK[size], new))
    return f"{name} of page {format_lsn(page)}: {cur:#x} -> {new:#x}", \
        _reader_action(t, *t.window(rng, idx))


def cat_tot_len(rng: random.Random, t: WalTarget) -> tuple[str, Action]:
    """xl_tot_len says something else: 0, too short, off by a few, a page, 1 GB, 4 GB."""
    idx = t.pick(rng, t.multi_page if rng.random() < 0.3 else None)
    r = t.corpus.records[idx]
    raw = t.corpus.raws[r.lsn]
    new = rng.choice((0, 1, 23, 24, 25, r.tot_len - 1, r.tot_len + 1, r.tot_len - 8, r.tot_len + 8,
                      r.tot_len * 2, 8192, 8193, 0x3FFFFFFF, 0x40000000, 0xFFFFFFFF,
                      rng.randint(0, 0xFFFFFFFF))) & 0xFFFFFFFF
    raw2 = struct.pack("<I", new) + raw[4:]
    fixed = rng.random() < 0.5
    t.scratch.write_record(r.lsn, fix_crc(raw2) if fixed else raw2)
    return f"xl_tot_len of {format_lsn(r.lsn)}: {r.tot_len} -> {new} (crc {'fixed' if fixed else 'stale'})", \
        _reader_action(t, *t.window(rng, idx))


def _patch_field(rng: random.Random, t: WalTarget, kinds: tuple[str, ...], pool: Sequence[int]) -> tuple[str, Action]:
    idx = t.pick(rng, pool)
    r = t.corpus.records[idx]
    raw = t.corpus.raws[r.lsn]
    fields = [f for f in record_layout(raw)[0] if f.kind in kinds]
    if not fields:
        return "no such field", _reader_action(t, *t.window(rng, idx))
    f = rng.choice(fields)
    cur = int.from_bytes(raw[f.pos : f.pos + f.size], "little")
    if f.kind == "block_id":
        new = rng.choice((rng.randrange(256), rng.randint(33, 251), rng.randint(252, 255),
                          max(0, cur - 1), 0, 32))
    elif f.kind in ("fork_flags", "bimg_info") and rng.random() < 0.7:
        new = cur ^ (1 << rng.randrange(8))
    elif f.size > 4:  # rnode: change one of its three u32s
        k = rng.randrange(3) * 4
        cur = int.from_bytes(raw[f.pos + k : f.pos + k + 4], "little")
        f = Field(f.kind, f.pos + k, 4, f.block_id)
        new = edge_value(rng, 4, cur)
    else:
        new = edge_value(rng, f.size, cur)
    raw2 = raw[: f.pos] + new.to_bytes(f.size, "little") + raw[f.pos + f.size :]
    fixed = rng.random() < 0.9
    t.scratch.write_record(r.lsn, fix_crc(raw2) if fixed else raw2)
    return (f"{f.kind} (block {f.block_id}) of {format_lsn(r.lsn)}: {cur} -> {new}"
            f"{'' if fixed else ' crc stale'}"), _reader_action(t, *t.window(rng, idx))


def cat_block_header(rng: random.Random, t: WalTarget) -> tuple[str, Action]:
    """Bogus block ids, fork flags, relfilenodes, block numbers, origin and xid headers."""
    return _patch_field(rng, t, ("block_id", "fork_flags", "rnode", "blkno", "origin", "toplevel_xid"),
                        t.with_blocks)


def cat_lengths(rng: random.Random, t: WalTarget) -> tuple[str, Action]:
    """Length fields with huge or off-by-a-few values: block data, image, hole, main data."""
    pool = t.with_image if rng.random() < 0.5 else t.with_blocks
    return _patch_field(rng, t, ("data_len", "bimg_len", "hole_offset", "hole_length", "main_len",
                                 "bimg_info"), pool)


def _cat_image(method: str) -> WalCategory:
    def cat(rng: random.Random, t: WalTarget) -> tuple[str, Action]:
        pool = t.by_comp.get(method)
        if not pool:
            return f"no {method} image in the corpus", lambda: None
        idx = rng.choice(pool)
        r = t.corpus.records[idx]
        raw = t.corpus.raws[r.lsn]
        fields, regions = record_layout(raw)
        images = [g for g in regions if g.kind == "image" and g.bimg_info & BKPIMAGE_COMPRESSED_MASK]
        g = rng.choice(images)
        b = bytearray(raw)
        if rng.random() < 0.75:
            payload, what = edit_bytes(rng, bytes(raw[g.pos : g.pos + g.size]), resize=False)
            b[g.pos : g.pos + g.size] = payload
        else:
            mine = [f for f in fields if f.block_id == g.block_id and f.kind in ("bimg_info", "hole_length", "hole_offset")]
            f = rng.choice(mine)
            cur = int.from_bytes(raw[f.pos : f.pos + f.size], "little")
            if f.kind == "bimg_info":
                others = [m for m in (BKPIMAGE_COMPRESS_PGLZ, BKPIMAGE_COMPRESS_LZ4, BKPIMAGE_COMPRESS_ZSTD)
                          if not cur & m]
                new = rng.choice(((cur & ~BKPIMAGE_COMPRESSED_MASK) | rng.choice(others),
                                  cur ^ BKPIMAGE_HAS_HOLE, cur | BKPIMAGE_COMPRESSED_MASK,
                                  cur ^ (1 << rng.randrange(8))))
            else:
                new = edge_value(rng, f.size, cur)
            b[f.pos : f.pos + f.size] = new.to_bytes(f.size, "little")
            what = f"{f.kind} {cur:#x}->{new:#x}"
        t.scratch.write_record(r.lsn, fix_crc(b))
        return f"{method} image of block {g.block_id} at {format_lsn(r.lsn)}: {what}", \
            _reader_action(t, *t.window(rng, idx))
    cat.__doc__ = f"A {method}-compressed full-page image with a broken payload or header (CRC fixed)."
    return cat


def cat_record_direct(rng: random.Random, t: WalTarget) -> tuple[str, Action]:
    """decode_record on a record with bytes inserted, cut or changed (lengths the
    file layout cannot carry), then every image restored."""
    idx = t.pick(rng, t.with_blocks)
    r = t.corpus.records[idx]
    raw = t.corpus.raws[r.lsn]
    _fields, regions = record_layout(raw)
    hdr_end = regions[0].pos if regions else len(raw)
    if rng.random() < 0.5 and hdr_end > SizeOfXLogRecord:
        head, what = edit_bytes(rng, raw[SizeOfXLogRecord:hdr_end], resize=True)
        raw2 = raw[:SizeOfXLogRecord] + head + raw[hdr_end:]
    else:
        raw2, what = edit_bytes(rng, raw, resize=True)
    if len(raw2) >= 4 and rng.random() < 0.6:
        raw2 = struct.pack("<I", len(raw2)) + raw2[4:]
        what += ", xl_tot_len fixed"
    seg, off = t.corpus.where(r.lsn)

    def action() -> None:
        rec = decode_record(raw2, r.lsn, r.end_lsn, segment=seg, offset=off)
        for blk in rec.blocks.values():
            if blk.has_image and len(restore_block_image(blk, r.lsn, segment=seg, offset=off)) != BLCKSZ:
                raise BadResult("restored image is not a page")
    return f"{format_lsn(r.lsn)}: {what}", action


def cat_image_direct(rng: random.Random, t: WalTarget) -> tuple[str, Action]:
    """restore_block_image on a real block image with its payload, hole and
    bimg_info edited freely (sizes and values no decoder would let through)."""
    idx = t.pick(rng, t.with_image)
    r = t.corpus.records[idx]
    rec = decode_record(t.corpus.raws[r.lsn], r.lsn, r.end_lsn)
    blk = rng.choice([b for b in rec.blocks.values() if b.has_image])
    changes: dict[str, Any] = {}
    for _ in range(rng.randint(1, 2)):
        what = rng.choice(("payload", "payload", "hole_offset", "hole_length", "bimg_info", "bimg_len"))
        if what == "payload":
            changes["bkp_image"], op = edit_bytes(rng, blk.bkp_image, resize=True)
            changes["_op"] = op
        elif what == "bimg_info":
            changes[what] = rng.choice((blk.bimg_info ^ (1 << rng.randrange(8)), rng.randrange(256)))
        else:
            changes[what] = rng.choice((edge_value(rng, 2, getattr(blk, what)), -1, -BLCKSZ, BLCKSZ * 2))
    op = changes.pop("_op", "")
    blk2 = dataclasses.replace(blk, **changes)
    seg, off = t.corpus.where(r.lsn)

    def action() -> None:
        page = restore_block_image(blk2, r.lsn, segment=seg, offset=off)
        if len(page) != BLCKSZ:
            raise BadResult(f"restored image is {len(page)} bytes")
    desc = ", ".join(f"{k}={v if k != 'bkp_image' else op}" for k, v in changes.items())
    return f"block {blk.block_id} of {format_lsn(r.lsn)} (bimg_info {blk.bimg_info:#x}): {desc}", action


WAL_CATEGORIES: dict[str, WalCategory] = {
    "bitflip": cat_bitflip,
    "bitflip_crc": cat_bitflip_crc,
    "truncate": cat_truncate,
    "missing_segment": cat_missing_segment,
    "splice": cat_splice,
    "page_header": cat_page_header,
    "tot_len": cat_tot_len,
    "block_header": cat_block_header,
    "lengths": cat_lengths,
    "image_pglz": _cat_image("pglz"),
    "image_lz4": _cat_image("lz4"),
    "image_zstd": _cat_image("zstd"),
    "record_direct": cat_record_direct,
    "image_direct": cat_image_direct,
}


# -- the pyredo target ------------------------------------------------------------------
@dataclass
class Chain:
    """The records of one page, from a real WAL plan (the first restores or inits it)."""

    tag: BufferTag
    records: list[DecodedXLogRecord]


@dataclass
class RedoTarget:
    """Every (page, record) of the corpus a case can aim at, grouped by rmgr."""

    chains: list[Chain] = field(default_factory=list)
    # rmid -> (chain index, index of the last record that restored/inited the page, record index)
    by_rmid: dict[int, list[tuple[int, int, int]]] = field(default_factory=dict)

    MAX_PREFIX = 40  # records replayed before the mutated one: bounds a case's cost

    @classmethod
    def from_corpus(cls, corpus: WalCorpus) -> RedoTarget:
        from harness.verify.plan import build_plan
        from pyredo.wal.record import INIT_FORKNUM

        t = cls()
        plan = build_plan(corpus.decoded())
        for bp in plan.blocks.values():
            if bp.unverifiable or bp.tag.fork == INIT_FORKNUM or not bp.self_contained:
                continue
            ci = len(t.chains)
            t.chains.append(Chain(bp.tag, bp.records))
            last: int | None = None
            for k, rec in enumerate(bp.records):
                for blk in rec.blocks.values():
                    if blk.tag == bp.tag and (blk.apply_image or blk.will_init):
                        last = k
                if last is not None and k - last <= cls.MAX_PREFIX:
                    t.by_rmid.setdefault(rec.rmid, []).append((ci, last, k))
        return t


def mutate_record(rng: random.Random, rec: DecodedXLogRecord, tag: BufferTag) -> tuple[DecodedXLogRecord, str]:
    """A copy of ``rec`` with hostile main data, block data, info bits or block
    references. The original (shared by other pages' chains) is not touched."""
    from pyredo.rmgr import RMGRS
    from pyredo.wal.record import BKPBLOCK_WILL_INIT

    blocks = dict(rec.blocks)
    target = next((bid for bid, b in blocks.items() if b.tag == tag), None)
    main, info = rec.main_data, rec.info
    notes = []
    for _ in range(1 if rng.random() < 0.8 else 2):
        kinds = ["main", "main", "info"]
        if blocks:
            kinds += ["block", "block", "block", "flags", "drop"]
        kind = rng.choice(kinds)
        if kind == "main":
            main, op = edit_bytes(rng, main, resize=True)
            notes.append(f"main data {op}")
        elif kind == "info":
            rmgr = RMGRS.get(rec.rmid)
            table = list(rmgr.redo_table) if rmgr is not None else []
            if table and rng.random() < 0.7:
                new = (info & ~rmgr.opmask) | rng.choice(table) if rmgr is not None else info
            else:
                new = info ^ (1 << rng.randrange(4, 8))
            notes.append(f"xl_info {info:#x}->{new:#x}")
            info = new
        else:
            bid = target if target is not None and rng.random() < 0.7 else rng.choice(list(blocks))
            b = blocks[bid]
            if kind == "block":
                data, op = edit_bytes(rng, b.data, resize=True, max_len=0xFFFF)
                blocks[bid] = dataclasses.replace(b, data=data, has_data=bool(data) or b.has_data)
                notes.append(f"block {bid} data {op}")
            elif kind == "flags":
                which = rng.choice(("apply_image", "has_image", "will_init", "has_data"))
                if which == "will_init":
                    blocks[bid] = dataclasses.replace(b, flags=b.flags ^ BKPBLOCK_WILL_INIT)
                elif which == "apply_image":
                    blocks[bid] = dataclasses.replace(b, apply_image=not b.apply_image)
                elif which == "has_image":
                    blocks[bid] = dataclasses.replace(b, has_image=not b.has_image)
                else:
                    blocks[bid] = dataclasses.replace(b, has_data=not b.has_data)
                notes.append(f"block {bid} {which} toggled")
            else:
                del blocks[bid]
                target = None if bid == target else target
                notes.append(f"block {bid} reference dropped")
            if not blocks:
                break
    return dataclasses.replace(rec, main_data=main, info=info, blocks=blocks), "; ".join(notes)


# -- the runner ---------------------------------------------------------------------------
@dataclass
class HostileReport:
    mode: str
    seed: int
    cases: int = 0
    seconds: float = 0.0
    timeout: float = 0.0
    categories: dict[str, CategoryStats] = field(default_factory=dict)
    maxrss_start_kb: int = 0
    maxrss_end_kb: int = 0
    tracemalloc: bool = False
    corpus: dict[str, Any] = field(default_factory=dict)

    def stats(self, name: str) -> CategoryStats:
        s = self.categories.get(name)
        if s is None:
            s = self.categories[name] = CategoryStats()
        return s

    @property
    def untyped(self) -> int:
        return sum(sum(s.untyped.values()) for s in self.categories.values())

    @property
    def timeouts(self) -> int:
        return sum(s.timeouts for s in self.categories.values())

    @property
    def failures(self) -> int:
        return sum(s.failures for s in self.categories.values())

    def to_json(self) -> dict[str, Any]:
        cats = self.categories
        return {
            "mode": self.mode,
            "seed": self.seed,
            "cases": self.cases,
            "seconds": round(self.seconds, 2),
            "case_time_bound_s": self.timeout,
            "untyped_exceptions": self.untyped,
            "timeouts": self.timeouts,
            "unlocated_errors": sum(sum(s.unlocated.values()) for s in cats.values()),
            "bad_results": sum(s.bad_result for s in cats.values()),
            "worst_seconds": round(max((s.worst_seconds for s in cats.values()), default=0.0), 4),
            "peak_case_bytes": max((s.peak_bytes for s in cats.values()), default=0),
            "tracemalloc": self.tracemalloc,
            "maxrss_start_kb": self.maxrss_start_kb,
            "maxrss_end_kb": self.maxrss_end_kb,
            "maxrss_growth_kb": self.maxrss_end_kb - self.maxrss_start_kb,
            "corpus": self.corpus,
            "categories": {k: v.to_json() for k, v in sorted(cats.items())},
        }


def _maxrss_kb() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


@contextlib.contextmanager
def address_space_limit(extra_mb: int | None) -> Iterator[None]:
    """Cap the address space at what we use now plus ``extra_mb``: a runaway
    allocation becomes a MemoryError (an untyped outcome) instead of an OOM."""
    if not extra_mb:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    vm_kb = 0
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                vm_kb = int(line.split()[1])
    limit = vm_kb * 1024 + extra_mb * (1 << 20)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@contextlib.contextmanager
def _case_timer(seconds: float) -> Iterator[None]:
    """Raise CaseTimeout in the main thread after ``seconds``; faulthandler kills
    the process (with every thread's traceback) if even that cannot get through."""
    def on_alarm(signum: int, frame: object) -> None:
        raise CaseTimeout(f"case ran past {seconds:g}s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _arm_backstop(seconds: float) -> bool:
    """faulthandler kills the process, printing every thread's stack, if a case is
    stuck where the interval timer cannot reach (inside C). Needs a real stderr."""
    for stream in (sys.stderr, sys.__stderr__):
        if stream is None:
            continue
        try:
            faulthandler.dump_traceback_later(seconds, exit=True, file=stream)
            return True
        except (AttributeError, ValueError, OSError):
            continue
    return False


def _run_action(action: Action, mode: str, timeout: float, trace: bool) -> Outcome:
    """Run one case's action under the timer; classify what came out."""
    before = tracemalloc.get_traced_memory()[0] if trace else 0
    if trace:
        tracemalloc.reset_peak()
    backstop = _arm_backstop(max(30.0, timeout * 6))
    t0 = time.perf_counter()
    try:
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            result = action()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        o = Outcome(OK, OK, 0.0)
        if mode == "redo" and (not isinstance(result, bytes) or len(result) != BLCKSZ):
            o = Outcome("bad_result", type(result).__name__, 0.0)
    except CaseTimeout as e:
        o = Outcome("timeout", "CaseTimeout", 0.0, detail="".join(traceback.format_exception(e)[-6:]))
    except BadResult as e:
        o = Outcome("bad_result", "BadResult", 0.0, detail=str(e))
    except PyredoError as e:
        if (mode == "wal" and isinstance(e, WalError)) or (mode == "redo" and isinstance(e, RedoError)):
            kind = "typed" if _where_ok(e, mode) else "unlocated"
        else:
            kind = "untyped"  # the wrong family escaped
        cause = e.__cause__
        # pyredo.engine's catch-all: "redo routine X failed: IndexError: ..."
        stray = (type(cause).__name__ if isinstance(e, RedoError) and cause is not None
                 and e.message.startswith("redo routine ") else None)
        o = Outcome(kind, type(e).__name__, 0.0,
                    detail="" if kind == "typed" and not stray else "".join(traceback.format_exception(e)),
                    cause=type(cause).__name__ if cause is not None else None, stray=stray)
    except Exception as e:  # the finding this runner exists for
        o = Outcome("untyped", type(e).__name__, 0.0, detail="".join(traceback.format_exception(e)))
    finally:
        if backstop:
            faulthandler.cancel_dump_traceback_later()
    o.seconds = time.perf_counter() - t0
    if trace:
        o.peak_bytes = max(0, tracemalloc.get_traced_memory()[1] - before)
    return o


def run_wal_case(t: WalTarget, category: str, seed: int, i: int, *, timeout: float = 5.0,
                 trace: bool = False) -> Outcome:
    """Case ``i`` of ``category``: patch the scratch WAL, read, undo."""
    rng = random.Random(f"{seed}:{category}:{i}")
    try:
        note, action = WAL_CATEGORIES[category](rng, t)
        o = _run_action(action, "wal", timeout, trace)
    finally:
        t.scratch.restore()
    o.note = note
    return o


def run_redo_case(t: RedoTarget, seed: int, i: int, *, timeout: float = 5.0,
                  trace: bool = False) -> Outcome:
    """Case ``i`` of the redo mode: one mutated record in a real page's chain."""
    from pyredo.engine import RedoEngine
    from pyredo.rmgr import RMGRS, record_type, rmgr_name

    rng = random.Random(f"{seed}:redo:{i}")
    rmid = rng.choice(sorted(t.by_rmid))
    ci, j, k = rng.choice(t.by_rmid[rmid])
    chain = t.chains[ci]
    rec, note = mutate_record(rng, chain.records[k], chain.tag)
    tail = chain.records[k + 1 : k + 1 + rng.randint(0, 3)]
    records = [*chain.records[j:k], rec, *tail]
    o = _run_action(lambda: RedoEngine().reconstruct(chain.tag, None, records), "redo", timeout, trace)
    o.note = f"{chain.tag} record {k - j + 1}/{len(records)}: {note}"
    o.rmgr = rmgr_name(rmid)
    # what the harness also calls on every record: type name, description, implicit pages
    try:
        o.record_type = record_type(rec)
        r = RMGRS.get(rec.rmid)
        if r is not None:
            r.desc(rec)
            r.implicit_tags(rec)
    except Exception as e:
        o.helper_error = f"{type(e).__name__}: {e} ({''.join(traceback.format_exception(e)[-2:]).strip()})"
    return o


def run_hostile(
    corpus: WalCorpus,
    *,
    mode: str = "wal",
    cases: int = 1000,
    seed: int = 0,
    categories: Sequence[str] | None = None,
    timeout: float = 5.0,
    trace_memory: bool = True,
    workdir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> HostileReport:
    """Run ``cases`` cases of ``mode`` ("wal" or "redo") against ``corpus``."""
    import tempfile

    if mode not in ("wal", "redo"):
        raise ValueError(f"mode {mode!r}: choose wal or redo")
    cats = list(categories or WAL_CATEGORIES)
    for c in cats:
        if c not in WAL_CATEGORIES:
            raise ValueError(f"unknown category {c!r} (choose from {', '.join(WAL_CATEGORIES)})")
    rep = HostileReport(mode, seed, timeout=timeout, tracemalloc=trace_memory,
                        corpus={"path": str(corpus.path), "records": len(corpus.records),
                                "segments": len(corpus.segments), "start": format_lsn(corpus.start),
                                "end": format_lsn(corpus.end)})
    started_tracing = trace_memory and not tracemalloc.is_tracing()
    if started_tracing:
        tracemalloc.start()
    tmp = Path(tempfile.mkdtemp(prefix="redodiff-hostile-", dir=workdir))
    try:
        # set-up (the scratch WAL, or every record decoded and planned) before the baseline
        wt = WalTarget(corpus, ScratchWal(corpus, tmp / "wal")) if mode == "wal" else None
        rt = RedoTarget.from_corpus(corpus) if mode == "redo" else None
        rep.maxrss_start_kb = _maxrss_kb()
        t0 = time.monotonic()
        with _case_timer(timeout):
            if wt is not None:
                for i in range(cases):
                    cat = cats[i % len(cats)]
                    n = i // len(cats)
                    o = run_wal_case(wt, cat, seed, n, timeout=timeout, trace=trace_memory)
                    rep.stats(cat).add(o, f"{cat}#{n}")
                    rep.cases += 1
                    if progress is not None:
                        progress(i + 1, cases)
            elif rt is not None:
                for i in range(cases):
                    o = run_redo_case(rt, seed, i, timeout=timeout, trace=trace_memory)
                    rep.stats(o.rmgr or "?").add(o, f"redo#{i}")
                    rep.cases += 1
                    if progress is not None:
                        progress(i + 1, cases)
        rep.seconds = time.monotonic() - t0
    finally:
        rep.maxrss_end_kb = _maxrss_kb()
        if started_tracing:
            tracemalloc.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return rep


def load_or_make_corpus(path: Path | None, *, progress: Callable[[str], None] | None = None) -> WalCorpus:
    """The real-WAL corpus at ``path`` (made there first if it has none yet);
    with no path, a fresh one in a temporary directory (the caller removes it)."""
    import tempfile

    if path is None:
        path = Path(tempfile.mkdtemp(prefix="redodiff-hostile-wal-"))
    if not (path / CORPUS_META).exists():
        if progress:
            progress(f"making real WAL in {path}: the demo workload under pglz, lz4, zstd (1 MB segments)")
        make_real_wal(path)
    return WalCorpus.load(path)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m harness.robustness.hostile make-fixture DIR``: (re)make the small test fixture."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 2 and args[0] == "make-fixture":
        make_real_wal(Path(args[1]), FIXTURE_STEPS, single_segment=True)
        return
    raise SystemExit("usage: python -m harness.robustness.hostile make-fixture DIR")


if __name__ == "__main__":
    main()
