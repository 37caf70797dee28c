"""Hostile input on REAL WAL: a slice of ``redodiff bench hostile`` in the suite.

The fixture (tests/data/hostile_wal) is one real 1 MB segment from a throwaway
PostgreSQL 15 that ran ``harness.robustness.hostile.FIXTURE_STEPS`` once under each of
wal_compression pglz, lz4 and zstd (remake it with
``python -m harness.robustness.hostile make-fixture DIR`` and ``xz -9`` the segment).
Every case must end in a result or a typed error that says where; the
regression tests below pin the holes the fuzzer found.
"""

from __future__ import annotations

import dataclasses
import json
import time
import tracemalloc
from pathlib import Path

import pytest
import zstandard
from click.testing import CliRunner
from factories import block

from harness.robustness.hostile.corpus import WalCorpus
from harness.robustness.hostile.layout import record_layout
from harness.robustness.hostile.outcome import CaseTimeout
from harness.robustness.hostile.redo import RedoTarget
from harness.robustness.hostile.runner import _case_timer, _run_action, run_hostile, run_wal_case
from harness.robustness.hostile.wal import WAL_CATEGORIES, ScratchWal, WalTarget
from pyredo.errors import ImageError, InvalidPageHeader, InvalidRecord, RedoError
from pyredo.wal.builder import BlockSpec, encode_record
from pyredo.wal.decoder import decode_record
from pyredo.wal.image import restore_block_image
from pyredo.wal.reader import WalReader
from pyredo.wal.record import (
    BKPIMAGE_APPLY,
    BKPIMAGE_COMPRESS_ZSTD,
    DecodedBkpBlock,
    RelFileNode,
)

FIXTURE = Path(__file__).parent.parent / "data" / "hostile_wal"
REL = RelFileNode(1663, 5, 16384)


@pytest.fixture(scope="module")
def corpus() -> WalCorpus:
    return WalCorpus.load(FIXTURE)


def test_fixture_is_real_mixed_wal(corpus: WalCorpus) -> None:
    kinds = {c for r in corpus.records for c in r.compressions}
    assert kinds == {"pglz", "lz4", "zstd"}
    rmids = {r.rmid for r in corpus.records}
    assert {0, 9, 10, 11, 12, 13, 14, 15, 16, 17, 20} <= rmids  # every page-owning rmgr
    assert any(r.tot_len > 8192 for r in corpus.records)  # a record longer than a WAL page


def test_record_layout_matches_the_decoder(corpus: WalCorpus) -> None:
    """The mutator's map of a record agrees with decode_record on every real record."""
    for info in corpus.records:
        raw = corpus.raws[info.lsn]
        rec = decode_record(raw, info.lsn, info.end_lsn)
        _fields, regions = record_layout(raw)
        assert (regions[-1].pos + regions[-1].size if regions else len(raw)) == len(raw)
        for g in regions:
            got = raw[g.pos : g.pos + g.size]
            if g.kind == "main":
                assert got == rec.main_data
            elif g.kind == "image":
                assert g.block_id is not None and got == rec.blocks[g.block_id].bkp_image
            else:
                assert g.block_id is not None and got == rec.blocks[g.block_id].data


def test_wal_slice_every_category(corpus: WalCorpus, tmp_path: Path) -> None:
    n = len(WAL_CATEGORIES) * 12
    rep = run_hostile(corpus, mode="wal", cases=n, seed=20240601, timeout=10.0, workdir=tmp_path)
    d = rep.to_json()
    problems = {k: v.get("examples") for k, v in d["categories"].items() if rep.categories[k].failures}
    assert rep.failures == 0, json.dumps(problems, indent=1)[:6000]
    assert set(d["categories"]) == set(WAL_CATEGORIES)
    assert all(c["cases"] == 12 for c in d["categories"].values())
    typed = sum(sum(c["typed_errors"].values()) for c in d["categories"].values())
    clean = sum(c["clean_results"] for c in d["categories"].values())
    assert typed > n // 3 and clean > 10  # the mutations bite, and not all of them
    # memory per case stays near the reader's 1 MB read buffer, whatever the lengths say
    assert d["peak_case_bytes"] < 8 << 20
    assert not list(tmp_path.iterdir())  # the scratch directory is gone


def test_redo_slice(corpus: WalCorpus) -> None:
    rep = run_hostile(corpus, mode="redo", cases=150, seed=7, timeout=10.0, trace_memory=False)
    d = rep.to_json()
    problems = {k: v.get("examples") for k, v in d["categories"].items() if rep.categories[k].failures}
    assert rep.failures == 0, json.dumps(problems, indent=1)[:6000]
    assert len(d["categories"]) >= 8  # cases spread over the rmgrs
    assert sum(sum(c["typed_errors"].values()) for c in d["categories"].values()) > 20


def test_scratch_is_restored_after_each_case(corpus: WalCorpus, tmp_path: Path) -> None:
    t = WalTarget(corpus, ScratchWal(corpus, tmp_path / "wal"))
    for cat in WAL_CATEGORIES:
        for i in range(3):
            run_wal_case(t, cat, 1, i)
    for segno, data in corpus.segments.items():
        assert t.scratch.path(segno).read_bytes() == data
    assert sorted(p.name for p in t.scratch.dir.iterdir()) == [corpus.seg_name(s) for s in corpus.segments]


def test_cases_replay_alone(corpus: WalCorpus, tmp_path: Path) -> None:
    t = WalTarget(corpus, ScratchWal(corpus, tmp_path / "wal"))
    a = [run_wal_case(t, "lengths", 3, i) for i in range(10)]
    b = [run_wal_case(t, "lengths", 3, i) for i in range(10)]
    assert [(o.name, o.note) for o in a] == [(o.name, o.note) for o in b]


# -- the runner's own classification --------------------------------------------------------
def test_runner_classifies_hang_untyped_and_typed() -> None:
    def spin() -> None:
        while True:
            pass

    with _case_timer(0.2):
        t0 = time.monotonic()
        o = _run_action(spin, "wal", 0.2, False)
        assert o.kind == "timeout" and time.monotonic() - t0 < 5
        o = _run_action(lambda: [][1], "wal", 1.0, False)
        assert (o.kind, o.name) == ("untyped", "IndexError") and "IndexError" in o.detail
        o = _run_action(lambda: (_ for _ in ()).throw(InvalidRecord("x", lsn=1, segment="s")), "wal", 1.0, False)
        assert (o.kind, o.name) == ("typed", "InvalidRecord")
        o = _run_action(lambda: (_ for _ in ()).throw(InvalidRecord("x")), "wal", 1.0, False)
        assert o.kind == "unlocated"


def test_case_timeout_is_not_an_exception() -> None:
    # code under test that catches Exception must not swallow the time bound
    assert not issubclass(CaseTimeout, Exception)


# -- regressions: holes the fuzzer found -----------------------------------------------------
def _zstd_block(payload: bytes) -> DecodedBkpBlock:
    return block(0, 0, rnode=REL, image=payload, bimg_info=BKPIMAGE_APPLY | BKPIMAGE_COMPRESS_ZSTD)


def test_zstd_frame_claiming_a_huge_size_is_refused_without_allocating_it() -> None:
    # 1 kB of payload whose frame header says 64 MB: decompress(max_output_size=)
    # alone would allocate all 64 MB before failing
    bomb = zstandard.ZstdCompressor(write_content_size=True).compress(bytes(64 << 20))
    assert len(bomb) < 4096
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match="claims 67108864 bytes") as ei:
            restore_block_image(_zstd_block(bomb), 0x5000028, segment="000000010000000000000005", offset=40)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert ei.value.lsn == 0x5000028 and ei.value.segment == "000000010000000000000005"


def test_zstd_trailing_bytes_after_the_frame_are_refused() -> None:
    page = bytes(24) + b"z" * (8192 - 24)
    frame = zstandard.ZstdCompressor().compress(page)
    assert restore_block_image(_zstd_block(frame)) == page
    with pytest.raises(ImageError, match="after its frame"):
        restore_block_image(_zstd_block(frame + b"junk"))


def test_uncompressed_image_longer_than_a_page_is_a_bad_record() -> None:
    page = bytes(24) + b"x" * (8192 - 24)
    raw = bytearray(encode_record(10, 0, blocks=[BlockSpec(0, REL, 0, 0, image=page, hole=(100, 50))]))
    # bimg_len sits after xl_* (24), block id, fork flags, data length (4): make it 9000
    hdr_end = 24 + 4 + 5 + 12 + 4
    raw[28:30] = (9000).to_bytes(2, "little")
    raw = raw[:hdr_end] + raw[hdr_end:] + bytes(9000 - 8142)
    raw[0:4] = len(raw).to_bytes(4, "little")
    with pytest.raises(InvalidRecord, match="hole"):
        decode_record(bytes(raw), 0x1000000, 0x1004000, segment="seg", offset=0)


def test_restore_refuses_a_hole_outside_the_page() -> None:
    blk = block(0, 0, rnode=REL, image=bytes(9000), hole=(100, -808), apply_image=False, bimg_info=1)
    with pytest.raises(ImageError, match="outside the page"):
        restore_block_image(blk, 1, segment="s", offset=0)
    with pytest.raises(ImageError, match="outside the page"):
        restore_block_image(dataclasses.replace(blk, hole_offset=8000, hole_length=400, bkp_image=bytes(7792)))


def test_unknown_segment_size_error_names_the_start(tmp_path: Path) -> None:
    (tmp_path / "000000010000000000000001").write_bytes(b"garbage")
    with pytest.raises(InvalidPageHeader, match="segment size") as ei:
        WalReader(tmp_path, 0x100028)
    assert ei.value.lsn == 0x100028 and ei.value.segment == "000000010000000000000001"


def test_engine_wraps_a_stray_exception_and_says_where(corpus: WalCorpus, monkeypatch: pytest.MonkeyPatch) -> None:
    """A routine that trips over bad input with IndexError gives a RedoError naming
    rmgr, info, LSN — and the hostile runner counts it as a stray, not a pass."""
    from pyredo.engine import RedoEngine
    from pyredo.rmgrlist import PG15

    t = RedoTarget.from_corpus(corpus)
    ci, j, k = t.by_rmid[10][0]  # a Heap record
    chain = t.chains[ci]
    rec = chain.records[k]
    rmgr = PG15.rows[10]

    def broken(ctx: object) -> None:
        raise IndexError("index out of range")

    engine = RedoEngine(PG15.with_routine(10, rec.info & rmgr.opmask, broken))
    with pytest.raises(RedoError) as ei:
        engine.reconstruct(chain.tag, None, chain.records[j : k + 1])
    e = ei.value
    assert (e.rmgr, e.info, e.lsn) == ("Heap", rec.info, rec.lsn)
    assert isinstance(e.__cause__, IndexError)
    o = _run_action(lambda: engine.reconstruct(chain.tag, None, chain.records[j : k + 1]), "redo", 5.0, False)
    assert (o.kind, o.stray) == ("typed", "IndexError")


def test_bench_hostile_command(tmp_path: Path) -> None:
    from harness.cli import main

    res = CliRunner().invoke(main, ["bench", "hostile", "--cases", str(len(WAL_CATEGORIES)), "--mode", "wal",
                                    "--wal", str(FIXTURE), "--json", "--no-tracemalloc"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["wal"]["cases"] == len(WAL_CATEGORIES) and data["wal"]["untyped_exceptions"] == 0
