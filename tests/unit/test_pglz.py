"""pglz: a real PostgreSQL-compressed image, round trips, corruption."""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path

import pytest
from factories import block

from pyredo.wal.image import restore_block_image
from pyredo.wal.pglz import PglzError, pglz_compress, pglz_decompress
from pyredo.wal.record import DecodedBkpBlock, RelFileNode

DATA = Path(__file__).parent.parent / "data"


def _fixture_block() -> tuple[DecodedBkpBlock, bytes]:
    meta = json.loads((DATA / "pglz_fpi.json").read_text())
    blk = block(0, 0, rnode=RelFileNode(1663, 5, 1), image=(DATA / "pglz_fpi.bin").read_bytes(),
                hole=(meta["hole_offset"], meta["hole_length"]), bimg_info=meta["bimg_info"])
    return blk, (DATA / "pglz_fpi.page").read_bytes()


def test_real_postgresql_image_restores_to_the_page_on_disk() -> None:
    blk, disk = _fixture_block()
    page = bytearray(restore_block_image(blk))
    # the image was taken before its record's LSN was stamped; disk has the LSN
    page[0:8] = disk[0:8]
    assert bytes(page) == disk


def test_real_image_decompresses_to_exact_size() -> None:
    blk, _ = _fixture_block()
    raw = pglz_decompress(blk.bkp_image, 8192 - blk.hole_length)
    assert len(raw) == 8192 - blk.hole_length
    with pytest.raises(PglzError):
        pglz_decompress(blk.bkp_image, 8192 - blk.hole_length + 1)


@pytest.mark.parametrize("seed", range(8))
def test_round_trip_page_like_data(seed: int) -> None:
    rnd = random.Random(seed)
    chunks = [bytes([rnd.randrange(4)]) * rnd.randrange(1, 300) + rnd.randbytes(rnd.randrange(0, 40))
              for _ in range(80)]
    data = b"".join(chunks)[:8192]
    comp = pglz_compress(data)
    assert pglz_decompress(comp, len(data)) == data


def test_round_trip_our_compressor_on_the_real_page() -> None:
    _, disk = _fixture_block()
    comp = pglz_compress(disk)
    assert len(comp) < len(disk)
    assert pglz_decompress(comp, len(disk)) == disk


def test_overlapping_match_repeats_period() -> None:
    # literal "112341234" style: 5 literals then a match of 16 at offset 4
    data = b"1123412341234123412341234"
    assert pglz_decompress(pglz_compress(data), len(data)) == data


@pytest.mark.parametrize(
    "blob, why",
    [
        (b"\x01\x0f", "truncated match tag"),
        (b"\x01\x00\x00", "match offset 0"),
        (b"\x02a\x00\x05", "offset beyond output"),
        (b"\x01\x0f\x01", "extended length missing"),
    ],
)
def test_corrupt_input_raises(blob: bytes, why: str) -> None:
    with pytest.raises(PglzError):
        pglz_decompress(blob, 100)


def test_incomplete_output_raises() -> None:
    comp = pglz_compress(b"abc" * 10)
    with pytest.raises(PglzError):
        pglz_decompress(comp, 40)


def test_random_garbage_never_raises_untyped() -> None:
    rnd = random.Random(7)
    for _ in range(300):
        blob = rnd.randbytes(rnd.randrange(0, 64))
        with contextlib.suppress(PglzError):
            pglz_decompress(blob, rnd.randrange(0, 200))


def test_negative_raw_size_is_a_typed_error() -> None:
    with pytest.raises(PglzError, match="negative raw size"):
        pglz_decompress(b"\x00abc", -1)
