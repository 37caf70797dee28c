"""WAL reader and decoder on synthetic WAL: CRC, page/segment assembly, typed errors."""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import crc32c
import lz4.block
import pytest
import zstandard

from pyredo.errors import (
    CrcMismatch,
    InvalidPageHeader,
    InvalidRecord,
    MissingSegment,
    TruncatedWal,
    WalError,
)
from pyredo.wal.assembler import XLOG_BLCKSZ
from pyredo.wal.builder import BlockSpec, WalBuilder, encode_record
from pyredo.wal.decoder import _new_block, _new_record, decode_record
from pyredo.wal.image import restore_block_image
from pyredo.wal.lsn import format_lsn, parse_lsn, segment_file_name
from pyredo.wal.pglz import pglz_compress
from pyredo.wal.reader import WalReader
from pyredo.wal.record import (
    BKPIMAGE_COMPRESS_LZ4,
    BKPIMAGE_COMPRESS_PGLZ,
    BKPIMAGE_COMPRESS_ZSTD,
    BKPIMAGE_COMPRESSED_MASK,
    BufferTag,
    DecodedBkpBlock,
    DecodedXLogRecord,
    RelFileNode,
)

REL = RelFileNode(1663, 5, 16384)
SEG = 1 << 20


def page_with(fill: int) -> bytes:
    return bytes(24) + bytes([fill]) * (8192 - 24)


def build(n: int = 40) -> WalBuilder:
    b = WalBuilder(seg_size=SEG)
    for i in range(n):
        b.add(10, 0x00, xid=700 + i, blocks=[BlockSpec(0, REL, 0, i, data=b"d" * (i * 13 + 1))],
              main_data=b"m" * (i % 30 + 3))
    return b


def read_all(waldir: Path, **kw: int) -> list:  # type: ignore[type-arg]
    return list(WalReader(waldir, **kw))


# -- CRC -----------------------------------------------------------------------------
def test_crc32c_check_value() -> None:
    # the CRC-32C check value of "123456789"
    assert crc32c.crc32c(b"123456789") == 0xE3069283


def test_record_crc_covers_payload_then_header() -> None:
    rec = encode_record(10, 0, xid=5, main_data=b"hello")
    stored = struct.unpack_from("<I", rec, 20)[0]
    assert stored == crc32c.crc32c(rec[:20], crc32c.crc32c(rec[24:]))


# -- assembly --------------------------------------------------------------------------
def test_all_records_read_back_exactly(tmp_path: Path) -> None:
    b = build(200)
    b.write(tmp_path)
    recs = read_all(tmp_path)
    assert [(r.lsn, r.end_lsn, r.raw) for r in recs] == b.records
    assert recs[3].xid == 703 and recs[3].blocks[0].blkno == 3 and recs[3].main_data == b"m" * 6


@pytest.mark.parametrize("offset", [8192 - 8, 8192 - 16, 8192 - 24, 8192 - 32])
def test_record_header_split_across_pages(tmp_path: Path, offset: int) -> None:
    b = build(3)
    b.pad_to(offset)
    lsn = b.add(10, 0x10, xid=9, blocks=[BlockSpec(0, REL, 0, 1, data=b"q" * 100)], main_data=b"z" * 40)
    b.add(10, 0x00, xid=10)
    b.write(tmp_path)
    recs = {r.lsn: r for r in read_all(tmp_path)}
    assert lsn % XLOG_BLCKSZ == offset
    assert recs[lsn].blocks[0].data == b"q" * 100 and recs[lsn].main_data == b"z" * 40


def test_record_spanning_many_pages_and_a_segment_boundary(tmp_path: Path) -> None:
    b = build(3)
    while b.insert_lsn < b.base + SEG - 20000:
        b.add(0, 0x20, main_data=b"\1" * 250)
    big = bytes(range(256)) * 300  # 76,800 bytes: ~10 pages, across the segment end
    lsn = b.add(21, 0x00, main_data=big)
    after = b.add(10, 0x00, xid=1)
    b.write(tmp_path)
    recs = {r.lsn: r for r in read_all(tmp_path)}
    assert lsn < b.base + SEG < lsn + len(big)
    assert recs[lsn].main_data == big
    assert recs[lsn].end_lsn == after
    assert len(list(tmp_path.iterdir())) == 2


def test_start_in_the_middle_finds_the_next_record(tmp_path: Path) -> None:
    b = build(50)
    b.write(tmp_path)
    target = b.records[20][0]
    recs = read_all(tmp_path, start=target - 5)
    assert recs[0].lsn == target
    # starting at a page boundary skips the continuation of a record that crosses it
    page = (b.records[30][0] // XLOG_BLCKSZ + 1) * XLOG_BLCKSZ
    first = read_all(tmp_path, start=page)[0]
    assert first.lsn >= page and first.lsn in {r[0] for r in b.records}


def test_end_lsn_stops_before_the_record_there(tmp_path: Path) -> None:
    b = build(30)
    b.write(tmp_path)
    end = b.records[10][0]
    assert [r.lsn for r in read_all(tmp_path, end=end)] == [r[0] for r in b.records[:10]]


def test_switch_record_jumps_to_next_segment(tmp_path: Path) -> None:
    b = build(5)
    sw = b.add_switch()
    nxt = b.base + SEG
    b.add(10, 0x00, xid=77)
    b.write(tmp_path)
    recs = read_all(tmp_path)
    switch = next(r for r in recs if r.lsn == sw)
    assert switch.end_lsn == nxt
    assert recs[-1].lsn == nxt + 40 and recs[-1].xid == 77


# -- block references and images -----------------------------------------------------
@pytest.mark.parametrize(("data", "main"), [(b"abc", b"main"), (b"", b"m"), (b"d", b""), (b"", b"")])
def test_usual_record_decodes_to_every_field(data: bytes, main: bytes) -> None:
    """The one-block record the decoder reads at once (and builds field by field) is the
    record the dataclasses make: every field set, none forgotten; with a second block
    (decoded the general way) block 0 comes out the same."""
    raw = encode_record(10, 0x40, xid=9, prev=0x0F00, blocks=[BlockSpec(0, REL, 1, 7, data=data)],
                        main_data=main)
    rec = decode_record(raw, 0x1000, 0x1100)
    flags = 1 | (0x20 if data else 0)
    blk = DecodedBkpBlock(0, REL, 1, 7, flags, has_data=bool(data), data=data)
    crc = struct.unpack_from("<I", raw, 20)[0]
    assert rec == DecodedXLogRecord(0x1000, 0x1100, len(raw), 9, 0x0F00, 0x40, 10, crc, raw, main_data=main,
                                    blocks={0: blk})
    assert type(rec.blocks[0].data) is bytes and type(rec.main_data) is bytes
    assert rec.blocks[0].tag == BufferTag(1663, 5, 16384, 1, 7) and rec.origin == rec.toplevel_xid == 0
    two = decode_record(encode_record(10, 0x40, blocks=[BlockSpec(0, REL, 1, 7, data=data),
                                                        BlockSpec(1, REL, 0, 8, data=b"x")], main_data=main),
                        0x1000, 0x1100)
    assert two.blocks[0] == rec.blocks[0] and two.main_data == main


def test_block_reference_forms(tmp_path: Path) -> None:
    other = RelFileNode(1663, 5, 99999)
    img = page_with(0xAB)
    rec = decode_record(encode_record(11, 0x30, blocks=[
        BlockSpec(0, REL, 0, 7, data=b"abc", image=img, hole=(64, 4000)),
        BlockSpec(1, REL, 0, 8, data=b"same-rel"),
        BlockSpec(3, other, 2, 9, will_init=True, data=b"x"),
        BlockSpec(4, other, 0, 1, image=img, apply=False),
    ], main_data=b"main"), 0x1000, 0x1100)
    b0, b1, b3, b4 = rec.blocks[0], rec.blocks[1], rec.blocks[3], rec.blocks[4]
    assert (b0.hole_offset, b0.hole_length, b0.bimg_len) == (64, 4000, 8192 - 4000)
    assert b0.apply_image and b0.data == b"abc"
    assert restore_block_image(b0) == img[:64] + bytes(4000) + img[4064:]
    assert b1.rnode == REL and b1.blkno == 8 and b1.data == b"same-rel"
    assert 2 not in rec.blocks
    assert b3.rnode == other and b3.forknum == 2 and b3.will_init
    assert b4.has_image and not b4.apply_image
    assert rec.main_data == b"main"


def _compressed_block(method: int, payload: bytes, hole: tuple[int, int]) -> bytes:
    """A record whose block image is compressed (built by hand: the builder writes raw images)."""
    rec = bytearray(encode_record(10, 0, blocks=[BlockSpec(0, REL, 0, 1, image=page_with(1), hole=hole)]))
    # rewrite the image header + payload: length, hole_offset, bimg_info, hole_length
    body = struct.pack("<BBH", 0, 0x10, 0) + struct.pack("<HHB", len(payload), hole[0], 0x02 | 0x01 | method)
    body += struct.pack("<H", hole[1]) + struct.pack("<III", *REL) + struct.pack("<I", 1) + payload
    tot = 24 + len(body)
    head = struct.pack("<IIQBB2xI", tot, 0, 0, 0, 10, 0)
    crc = crc32c.crc32c(head[:20], crc32c.crc32c(body))
    del rec
    return struct.pack("<IIQBB2xI", tot, 0, 0, 0, 10, crc) + body


@pytest.mark.parametrize("method", [BKPIMAGE_COMPRESS_PGLZ, BKPIMAGE_COMPRESS_LZ4, BKPIMAGE_COMPRESS_ZSTD])
def test_compressed_images_restore(method: int) -> None:
    page = bytes(range(256)) * 16 + bytes(2000) + b"tail" * 524
    hole = (4096, 2000)
    without_hole = page[:4096] + page[6096:]
    if method == BKPIMAGE_COMPRESS_PGLZ:
        payload = pglz_compress(without_hole)
    elif method == BKPIMAGE_COMPRESS_LZ4:
        payload = lz4.block.compress(without_hole, store_size=False)
    else:
        payload = zstandard.ZstdCompressor().compress(without_hole)
    rec = decode_record(_compressed_block(method, payload, hole), 0x2000, 0x3000)
    assert restore_block_image(rec.blocks[0]) == page


@pytest.mark.parametrize("method", [BKPIMAGE_COMPRESS_PGLZ, BKPIMAGE_COMPRESS_LZ4, BKPIMAGE_COMPRESS_ZSTD])
def test_bad_compression_payload_is_an_image_error(method: int) -> None:
    rec = decode_record(_compressed_block(method, b"\xff" * 50, (100, 100)), 0x2000, 0x3000)
    with pytest.raises(WalError, match=r"decompress|image"):
        restore_block_image(rec.blocks[0], rec.lsn)


def test_decoded_objects_set_every_field() -> None:
    """The decoder's field-by-field constructors set every field of the dataclasses, as
    their __init__ would (a field added there and not here fails)."""
    blk = _new_block(3, REL, 0x10 | 0x20 | 2, 9, b"d", b"img", 10, 20, 3, 0x03)
    assert blk == DecodedBkpBlock(3, REL, 2, 9, 0x32, True, True, b"img", 10, 20, 3, 0x03, True, b"d")
    plain = _new_block(1, REL, 0, 4, b"", b"", 0, 0, 0, 0)
    assert plain == DecodedBkpBlock(1, REL, 0, 4, 0)
    rec = _new_record(1, 2, 3, 4, 5, 6, 7, 8, b"raw", 9, 10, b"m", {3: blk, 1: plain})
    assert rec == DecodedXLogRecord(1, 2, 3, 4, 5, 6, 7, 8, b"raw", 9, 10, b"m", {3: blk, 1: plain})
    for obj in (blk, plain, rec):
        for f in dataclasses.fields(obj):
            getattr(obj, f.name)  # a slot left unset raises AttributeError


def _image_record(bimg_info: int, image: bytes, hole: tuple[int, int], data: bytes, main: bytes,
                  second: bool) -> bytes:
    """Block 0 with an image (its header as given), block data, maybe a block 1, short main data."""
    flags = 0x10 | (0x20 if data else 0)
    heads = struct.pack("<BBH", 0, flags, len(data)) + struct.pack("<HHB", len(image), hole[0], bimg_info)
    if bimg_info & BKPIMAGE_COMPRESSED_MASK and bimg_info & 0x01:
        heads += struct.pack("<H", hole[1])
    heads += struct.pack("<IIII", *REL, 7)
    payload = image + data
    if second:
        heads += struct.pack("<BBHIIII", 1, 0x20, 1, *REL, 8)
        payload += b"x"
    if main:
        heads += struct.pack("<BB", 255, len(main))
    body = heads + payload + main
    head = struct.pack("<IIQBB2xI", 24 + len(body), 5, 0x0F00, 0x10, 10, 0)
    crc = crc32c.crc32c(head[:20], crc32c.crc32c(body))
    return struct.pack("<IIQBB2xI", 24 + len(body), 5, 0x0F00, 0x10, 10, crc) + body


@pytest.mark.parametrize("form", ["whole", "hole", "pglz-hole", "pglz"])
@pytest.mark.parametrize(("data", "main"), [(b"abc", b"main"), (b"", b"m"), (b"d", b"")])
def test_image_record_decodes_as_the_general_way(form: str, data: bytes, main: bytes) -> None:
    """A one-block record with an image (read with two structs when it has main data) gives
    the block the general way gives: every field, with and without hole and compression."""
    hole = {"whole": (0, 0), "hole": (100, 4000), "pglz-hole": (100, 4000), "pglz": (0, 0)}[form]
    page = page_with(0x5A)[: hole[0]] + bytes(hole[1]) + page_with(0x5A)[hole[0] + hole[1]:]
    info = 0x02 | (0x01 if hole[1] else 0) | (BKPIMAGE_COMPRESS_PGLZ if form.startswith("pglz") else 0)
    image = page[: hole[0]] + page[hole[0] + hole[1]:]
    if form.startswith("pglz"):
        image = pglz_compress(image)
    one = decode_record(_image_record(info, image, hole, data, main, False), 0x1000, 0x1100)
    two = decode_record(_image_record(info, image, hole, data, main, True), 0x1000, 0x1100)
    b0 = one.blocks[0]
    assert b0 == two.blocks[0] and one.main_data == two.main_data == main and list(one.blocks) == [0]
    assert (b0.has_image, b0.apply_image, b0.bimg_info, b0.bimg_len) == (True, True, info, len(image))
    assert (b0.hole_offset, b0.hole_length, b0.data, b0.has_data) == (*hole, data, bool(data))
    assert type(b0.bkp_image) is bytes and restore_block_image(b0) == page
    assert (one.xid, one.prev, one.info, one.rmid, one.tot_len) == (5, 0x0F00, 0x10, 10, len(one.raw))
    assert b0.tag == BufferTag(*REL, 0, 7)
    # a header the general way refuses is refused the same way (a hole without its length)
    bad = _image_record(0x03, page[:4000], (0, 4192), data, main, False)  # hole at offset 0
    with pytest.raises(InvalidRecord, match="BKPIMAGE_HAS_HOLE set"):
        decode_record(bad, 0x1000, 0x1100)


# -- typed errors, each naming LSN and file ------------------------------------------
def _seg(tmp_path: Path, b: WalBuilder) -> Path:
    return tmp_path / segment_file_name(1, b.start_segno, SEG)


def test_flipped_crc_byte(tmp_path: Path) -> None:
    b = build(20)
    b.write(tmp_path)
    lsn = b.records[7][0]
    p = _seg(tmp_path, b)
    data = bytearray(p.read_bytes())
    data[lsn - b.base + 30] ^= 0x40  # a payload byte of record 7
    p.write_bytes(bytes(data))
    with pytest.raises(CrcMismatch) as ei:
        read_all(tmp_path)
    e = ei.value
    assert e.lsn == lsn and e.segment == p.name and e.offset == lsn - b.base
    assert format_lsn(lsn) in str(e) and p.name in str(e)


def test_truncated_segment(tmp_path: Path) -> None:
    b = build(3)
    lsn = b.add(21, 0x00, main_data=b"L" * 30000)  # spans several pages
    b.write(tmp_path)
    p = _seg(tmp_path, b)
    p.write_bytes(p.read_bytes()[: lsn - b.base + 10000])  # cut inside a later page of the record
    with pytest.raises(TruncatedWal) as ei:
        read_all(tmp_path)
    assert ei.value.lsn == lsn and ei.value.segment == p.name
    assert format_lsn(lsn) in str(ei.value)


def test_bad_magic(tmp_path: Path) -> None:
    b = build(120)
    b.write(tmp_path)
    p = _seg(tmp_path, b)
    data = bytearray(p.read_bytes())
    data[XLOG_BLCKSZ : XLOG_BLCKSZ + 2] = b"\x34\x12"
    p.write_bytes(bytes(data))
    with pytest.raises(InvalidPageHeader, match="invalid magic number 1234") as ei:
        read_all(tmp_path)
    assert ei.value.segment == p.name and ei.value.offset == XLOG_BLCKSZ
    assert ei.value.lsn == b.base + XLOG_BLCKSZ


def test_wrong_pageaddr(tmp_path: Path) -> None:
    b = build(120)
    b.write(tmp_path)
    p = _seg(tmp_path, b)
    data = bytearray(p.read_bytes())
    struct.pack_into("<Q", data, 2 * XLOG_BLCKSZ + 8, 0xDEAD0000)
    p.write_bytes(bytes(data))
    end = b.records[-1][0]
    with pytest.raises(InvalidPageHeader, match="unexpected pageaddr") as ei:
        read_all(tmp_path, end=end)
    assert ei.value.offset == 2 * XLOG_BLCKSZ and ei.value.segment == p.name


def test_record_length_beyond_segment_end(tmp_path: Path) -> None:
    b = build(3)
    while b.insert_lsn < b.base + SEG - 3000:
        b.add(0, 0x20, main_data=b"\1" * 250)
    lsn = b.add(21, 0x00, main_data=b"B" * 10000)  # continues into the next segment
    b.write(tmp_path)
    nxt = tmp_path / segment_file_name(1, b.start_segno + 1, SEG)
    nxt.unlink()  # ... which is missing
    with pytest.raises(MissingSegment) as ei:
        read_all(tmp_path)
    assert ei.value.lsn == lsn and ei.value.segment == nxt.name
    assert nxt.name in str(ei.value) and format_lsn(lsn) in str(ei.value)


def test_contrecord_length_mismatch(tmp_path: Path) -> None:
    b = build(3)
    lsn = b.add(21, 0x00, main_data=b"C" * 20000)
    b.write(tmp_path)
    p = _seg(tmp_path, b)
    data = bytearray(p.read_bytes())
    page = (lsn // XLOG_BLCKSZ + 1) * XLOG_BLCKSZ - b.base
    struct.pack_into("<I", data, page + 16, 5)  # xlp_rem_len
    p.write_bytes(bytes(data))
    with pytest.raises(InvalidRecord, match="invalid contrecord length") as ei:
        read_all(tmp_path)
    assert ei.value.lsn == lsn


def test_clean_end_of_wal_is_not_an_error(tmp_path: Path) -> None:
    b = build(10)
    b.write(tmp_path)
    r = WalReader(tmp_path)
    assert len(list(r)) == 10
    assert r.end_reason is not None and "zero record length" in r.end_reason


def test_wal_ending_before_requested_end_is_an_error(tmp_path: Path) -> None:
    b = build(10)
    b.write(tmp_path)
    with pytest.raises(TruncatedWal, match="before the end LSN"):
        read_all(tmp_path, end=b.records[-1][1] + 4096)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda body: b"\x21" + body[1:], "invalid block_id 33"),
        (lambda body: body[:1] + bytes([body[1] & ~0x20]) + body[2:], "BKPBLOCK_HAS_DATA not set"),
        (lambda body: body[:1] + bytes([body[1] | 0x80]) + body[2:], "SAME_REL set but no previous rel"),
    ],
)
def test_decoder_rejects_bad_block_headers(mutate, match: str) -> None:  # type: ignore[no-untyped-def]
    rec = encode_record(10, 0, blocks=[BlockSpec(0, REL, 0, 1, data=b"abc")])
    bad = rec[:24] + mutate(rec[24:])
    with pytest.raises(InvalidRecord, match=match) as ei:
        decode_record(bad, 0x5000, 0x5100, segment="000000010000000000000001", offset=0x5000)
    assert ei.value.lsn == 0x5000 and ei.value.segment == "000000010000000000000001"


def test_out_of_order_block_ids() -> None:
    rec = encode_record(10, 0, blocks=[BlockSpec(2, REL, 0, 1, data=b"a"), BlockSpec(1, REL, 0, 2, data=b"b")])
    with pytest.raises(InvalidRecord, match="out-of-order block_id 1"):
        decode_record(rec, 0x5000, 0x5100)


def test_lsn_parse_and_format() -> None:
    assert parse_lsn("16/B374D848") == 0x16B374D848
    assert format_lsn(0x16B374D848) == "16/B374D848"
    assert format_lsn(0) == "0/0"
    with pytest.raises(ValueError):
        parse_lsn("1/2/3")
