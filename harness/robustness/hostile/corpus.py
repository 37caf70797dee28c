"""The real-WAL corpus the hostile cases mutate: segment files made once by a
LocalCluster (``make_real_wal``), loaded with an index of their records."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from oracles.pgbin import PgInstall
from pyredo.wal.assembler import XLOG_BLCKSZ
from pyredo.wal.decoder import decode_record
from pyredo.wal.lsn import format_lsn, parse_segment_file_name, segment_file_name
from pyredo.wal.reader import WalReader
from pyredo.wal.record import (
    BKPIMAGE_COMPRESS_LZ4,
    BKPIMAGE_COMPRESS_PGLZ,
    BKPIMAGE_COMPRESS_ZSTD,
    DecodedXLogRecord,
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
    major: int = 15  # the PostgreSQL that wrote it (its page magic): decoded and redone as that major
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
        reader = WalReader(waldir, self.start, self.end)
        for rec in reader:
            self.records.append(RecordInfo(
                rec.lsn, rec.end_lsn, rec.tot_len, rec.rmid, rec.info,
                tuple(b.bimg_info for b in rec.blocks.values() if b.has_image),
                len(rec.blocks), len(rec.main_data)))
            self.raws[rec.lsn] = rec.raw
        if not self.records:
            raise ValueError(f"no records in the WAL corpus at {self.path}")
        self.major = reader.major or self.major

    def seg_name(self, segno: int) -> str:
        return segment_file_name(self.tli, segno, self.seg_size)

    def where(self, lsn: int) -> tuple[str, int]:
        return self.seg_name(lsn // self.seg_size), lsn % self.seg_size

    def decoded(self) -> list[DecodedXLogRecord]:
        return [decode_record(self.raws[r.lsn], r.lsn, r.end_lsn) for r in self.records]


def make_real_wal(dest: Path, steps: Sequence[str] | None = None,
                  compressions: Sequence[str] = COMPRESSIONS, *, single_segment: bool = False,
                  pg: PgInstall | None = None) -> Path:
    """Run ``steps`` (default: the demo workload) on a throwaway cluster of ``pg``
    (None: the default installation) with 1 MB segments, once per compression
    method, and copy the WAL to ``dest``.

    ``single_segment`` starts at a fresh segment and keeps only the used pages
    of it (for a small fixture; the steps must fit in one segment)."""
    from generators.capabilities import fit_steps
    from harness.campaign.demo import DEMO_STEPS
    from harness.clusters.local import ClusterSettings, LocalCluster
    from harness.verify.capture import capture
    from oracles.pgbin import default_install

    # the demo's steps fitted to the build (no bloom where contrib lacks it: 16's wheel)
    steps = list(steps if steps is not None else fit_steps(DEMO_STEPS, (pg or default_install()).capabilities))
    dest.mkdir(parents=True, exist_ok=True)
    with LocalCluster(ClusterSettings(wal_segsize_mb=1, pg=pg)) as cluster:
        # a build without lz4 or zstd (the 16-18 wheels) offers fewer methods: use those it has
        offered = str(cluster.scalar("SELECT array_to_string(enumvals, ',') FROM pg_settings "
                                     "WHERE name = 'wal_compression'")).split(",")
        compressions = [c for c in compressions if c in offered]
        if single_segment:
            cluster.execute("SELECT txid_current()")
            cluster.switch_wal()
        start: int | None = None
        end = 0
        for comp in compressions:
            cluster.execute(f"ALTER SYSTEM SET wal_compression = '{comp}'")
            cluster.execute("SELECT pg_reload_conf()")
            deadline = time.monotonic() + 10
            while cluster.scalar("SHOW wal_compression") != comp:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"wal_compression did not become {comp}")
                time.sleep(0.05)
            cap = capture(cluster, steps)
            cap.cleanup()  # only its LSN range is used
            if cap.errors:
                raise RuntimeError(f"corpus workload step failed: {cap.errors[0]}")
            start = cap.start if start is None else start
            end = cap.end
        assert start is not None
        seg_size = cluster.wal_segsize
        first, last = start // seg_size, (end - 1) // seg_size
        if single_segment and first != last:
            raise RuntimeError("the fixture workload does not fit in one WAL segment")
        for segno in range(first, last + 1):
            name = segment_file_name(1, segno, seg_size)
            data = (cluster.waldir / name).read_bytes()
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


def load_or_make_corpus(path: Path | None, *, progress: Callable[[str], None] | None = None,
                        pg: PgInstall | None = None) -> WalCorpus:
    """The real-WAL corpus at ``path`` (made there first, by ``pg``'s clusters, if it
    has none yet); with no path, a fresh one in a temporary directory (the caller
    removes it). A ValueError when ``pg`` is given and the corpus is another major's."""
    import shutil
    import tempfile

    made_here = path is None
    if path is None:
        path = Path(tempfile.mkdtemp(prefix="redodiff-hostile-wal-"))
    if not (path / CORPUS_META).exists():
        if progress:
            progress(f"making real WAL in {path}: the demo workload under pglz, lz4, zstd (1 MB segments)"
                     + (f", PostgreSQL {pg.major}" if pg is not None else ""))
        try:
            make_real_wal(path, pg=pg)
        except BaseException:
            if made_here:  # a temporary corpus that failed is nobody's to remove but ours
                shutil.rmtree(path, ignore_errors=True)
            raise
    corpus = WalCorpus.load(path)
    if pg is not None and corpus.major != pg.major:
        raise ValueError(f"the WAL corpus at {path} is PostgreSQL {corpus.major}'s, not {pg.major}'s")
    return corpus
