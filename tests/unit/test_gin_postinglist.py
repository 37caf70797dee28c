"""GIN posting lists (pyredo.page.gin) and ginRedoRecompress, without PostgreSQL.

Varbyte coding and ginCompressPostingList are checked against bytes worked
out by hand from ginpostinglist.c; ginRedoRecompress against pages built
independently: the new segment sequence written from the start of the
posting-list area, every byte after it left as it was.
"""

from __future__ import annotations

import random
import struct

import pytest
from factories import block, record

from oracles.masks.gin import gin_mask
from pyredo import BLCKSZ
from pyredo.engine import RedoEngine
from pyredo.errors import RedoError
from pyredo.page.bufpage import PageGetLSN, pd_lower, pd_upper, set_pd_lower
from pyredo.page.gin import (
    GIN_COMPRESSED,
    GIN_DATA,
    GIN_DATA_OFF,
    GIN_DELETED,
    GIN_LEAF,
    GIN_LIST,
    GinFormatError,
    GinInitPage,
    GinPageSetMaxoff,
    ItemPointer,
    decode_varbyte,
    encode_varbyte,
    ginCompressPostingList,
    ginMergeItemPointers,
    ginPostingListDecode,
    ginPostingListDecodeAllSegments,
    pack_itemptr,
)
from pyredo.rmgr import RM_GIN_ID
from pyredo.rmgr.gin import (
    GIN_SEGMENT_ADDITEMS,
    GIN_SEGMENT_DELETE,
    GIN_SEGMENT_INSERT,
    GIN_SEGMENT_REPLACE,
    GIN_SEGMENT_UNMODIFIED,
    XLOG_GIN_VACUUM_DATA_LEAF_PAGE,
)
from pyredo.wal.record import BufferTag, DecodedXLogRecord


# -- varbyte ----------------------------------------------------------------------
@pytest.mark.parametrize(("val", "enc"), [
    (0, b"\x00"),
    (1, b"\x01"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (2047, b"\xff\x0f"),
    (16384, b"\x80\x80\x01"),
    ((1 << 43) - 1, b"\xff\xff\xff\xff\xff\xff\x01"),
])
def test_varbyte_known_encodings(val: int, enc: bytes) -> None:
    assert encode_varbyte(val) == enc
    assert decode_varbyte(enc, 0) == (val, len(enc))


def test_varbyte_round_trip_lengths() -> None:
    for nbits in range(44):
        for val in {max(0, (1 << nbits) - 1), 1 << nbits, (1 << nbits) + 1}:
            if val >= 1 << 43:
                continue
            enc = encode_varbyte(val)
            assert len(enc) == max(1, -(-val.bit_length() // 7))
            assert decode_varbyte(b"\xee" + enc + b"\x55", 1) == (val, 1 + len(enc))


def test_varbyte_seventh_byte_keeps_all_bits() -> None:
    """decode_varbyte takes the 7th byte whole (no continuation-bit mask)."""
    assert decode_varbyte(b"\x80" * 6 + b"\xff", 0) == (0xFF << 42, 7)


def test_varbyte_truncated_raises() -> None:
    with pytest.raises(GinFormatError):
        decode_varbyte(b"\x80\x80", 0)


# -- ginCompressPostingList / decode -------------------------------------------------
def test_compress_known_bytes() -> None:
    # (0,1) first; (0,2): delta 1; (1,1): delta (1<<11 | 1) - 2 = 2047 -> ff 0f; pad to even
    seg, n = ginCompressPostingList([(0, 1), (0, 2), (1, 1)])
    assert n == 3
    assert seg == bytes.fromhex("000000000100" "0300" "01ff0f00")
    assert ginPostingListDecode(seg, 0) == [(0, 1), (0, 2), (1, 1)]


def test_compress_first_item_copied_raw() -> None:
    """``first`` is the ItemPointerData as given: block split in bi_hi / bi_lo."""
    seg, _ = ginCompressPostingList([(0x12345, 7)])
    assert seg[:6] == struct.pack("<HHH", 0x1, 0x2345, 7)
    assert seg[6:8] == b"\x00\x00"
    assert len(seg) == 8


def _random_items(rng: random.Random, n: int, spread: int) -> list[ItemPointer]:
    vals = sorted(rng.sample(range(1, spread), n))
    return [(v // 291, v % 291 + 1) for v in vals]


@pytest.mark.parametrize("seed", range(5))
def test_compress_round_trip(seed: int) -> None:
    rng = random.Random(seed)
    items = _random_items(rng, rng.randint(1, 2000), 10**9)
    seg, n = ginCompressPostingList(items)
    assert n == len(items)
    assert len(seg) % 2 == 0
    assert ginPostingListDecode(seg, 0) == items


def test_compress_maxsize_packs_a_prefix() -> None:
    items = [(b * 10, 5) for b in range(100)]  # 3-byte deltas (10 << 11)
    seg, n = ginCompressPostingList(items, 41)  # SHORTALIGN_DOWN: 40 bytes
    assert len(seg) <= 40
    assert n == 1 + (40 - 8) // 3
    assert ginPostingListDecode(seg, 0) == items[:n]


def test_removing_an_item_never_grows_the_list() -> None:
    """The property VACUUM relies on (ginpostinglist.c header comment)."""
    rng = random.Random(7)
    items = _random_items(rng, 300, 10**7)
    size = len(ginCompressPostingList(items)[0])
    for i in rng.sample(range(len(items)), 50):
        assert len(ginCompressPostingList(items[:i] + items[i + 1:])[0]) <= size


def test_decode_all_segments() -> None:
    a, _ = ginCompressPostingList([(1, 1), (1, 5), (2, 9)])
    b, _ = ginCompressPostingList([(7, 1), (700, 3)])
    buf = b"\xaa" * 4 + a + b
    assert ginPostingListDecodeAllSegments(buf, 4, len(a) + len(b)) == [
        (1, 1), (1, 5), (2, 9), (7, 1), (700, 3)]


def test_merge_item_pointers() -> None:
    a = [(1, 1), (3, 1)]
    b = [(5, 1)]
    assert ginMergeItemPointers(a, b) == [(1, 1), (3, 1), (5, 1)]
    assert ginMergeItemPointers(b, a) == [(1, 1), (3, 1), (5, 1)]
    assert ginMergeItemPointers([(1, 1), (2, 2), (4, 4)], [(2, 2), (3, 3)]) == [
        (1, 1), (2, 2), (3, 3), (4, 4)]
    assert ginMergeItemPointers([], b) == b


# -- ginRedoRecompress through the engine ------------------------------------------------
TAG = BufferTag(1663, 5, 16400, 0, 3)
LSN = 0x1_0000_2000


def _leaf(segments: list[bytes]) -> bytearray:
    """A compressed posting-tree leaf holding ``segments``; free space full of 0xAB."""
    page = bytearray(BLCKSZ)
    GinInitPage(page, GIN_DATA | GIN_LEAF | GIN_COMPRESSED)
    page[GIN_DATA_OFF : pd_upper(page)] = b"\xab" * (pd_upper(page) - GIN_DATA_OFF)
    data = b"".join(segments)
    page[GIN_DATA_OFF : GIN_DATA_OFF + len(data)] = data
    set_pd_lower(page, GIN_DATA_OFF + len(data))
    return page


def _record(payload: bytes) -> DecodedXLogRecord:
    return record(RM_GIN_ID, XLOG_GIN_VACUUM_DATA_LEAF_PAGE, b"",
                  block(0, TAG.blk, payload, rnode=TAG.rnode, fork=TAG.fork), lsn=LSN - 0x40, size=0x40)


def _actions(*actions: tuple[int, int, bytes]) -> bytes:
    out = struct.pack("<H", len(actions))
    for segno, action, data in actions:
        out += bytes([segno, action]) + data
    return out


def _additems(items: list[ItemPointer]) -> bytes:
    return struct.pack("<H", len(items)) + b"".join(pack_itemptr(i) for i in items)


def _seg(items: list[ItemPointer]) -> bytes:
    return ginCompressPostingList(items)[0]


def _expected(old: bytearray, new_segments: list[bytes]) -> bytes:
    want = bytearray(old)
    data = b"".join(new_segments)
    want[GIN_DATA_OFF : GIN_DATA_OFF + len(data)] = data
    set_pd_lower(want, GIN_DATA_OFF + len(data))
    want[0:8] = struct.pack("<II", LSN >> 32, LSN & 0xFFFFFFFF)
    return bytes(want)


S0 = _seg([(1, 1), (1, 2), (1, 3)])
S1 = _seg([(2, 1), (2, 4), (3, 9)])
S2 = _seg([(10, 1), (11, 2), (40, 3), (41, 3)])


def _redo(page: bytearray, payload: bytes) -> bytes:
    return RedoEngine().reconstruct(TAG, bytes(page), [_record(payload)])


def test_recompress_every_action() -> None:
    page = _leaf([S0, S1, S2])
    added = _seg([(2, 1), (2, 3), (2, 4), (3, 9), (3, 10)])
    replaced = _seg([(40, 3)])
    inserted = _seg([(50, 1), (60, 1)])
    payload = _actions(
        (0, GIN_SEGMENT_DELETE, b""),
        (1, GIN_SEGMENT_ADDITEMS, _additems([(2, 3), (3, 10)])),
        (2, GIN_SEGMENT_REPLACE, replaced),
        (3, GIN_SEGMENT_INSERT, inserted),
    )
    got = _redo(page, payload)
    assert got == _expected(page, [added, replaced, inserted])
    assert PageGetLSN(got) == LSN


def test_recompress_leading_segments_stay_and_tail_moves_down() -> None:
    page = _leaf([S0, S1, S2])
    smaller = _seg([(2, 1)])
    got = _redo(page, _actions((1, GIN_SEGMENT_REPLACE, smaller)))
    assert got == _expected(page, [S0, smaller, S2])
    # the bytes after the new end are the old tail's, not zeros
    assert got[pd_lower(got) : GIN_DATA_OFF + len(S0 + S1 + S2)] == (S0 + S1 + S2)[len(S0 + smaller + S2):]


def test_recompress_insert_after_the_last_segment() -> None:
    page = _leaf([S0, S1])
    new = _seg([(90, 1)])
    got = _redo(page, _actions((2, GIN_SEGMENT_INSERT, new), (2, GIN_SEGMENT_INSERT, new)))
    assert got == _expected(page, [S0, S1, new, new])


def test_recompress_insert_between_segments() -> None:
    page = _leaf([S0, S2])
    got = _redo(page, _actions((1, GIN_SEGMENT_INSERT, S1)))
    assert got == _expected(page, [S0, S1, S2])


def test_recompress_no_actions_empties_the_page() -> None:
    """As in C: with nothing copied, the end pointer never moves past the start."""
    page = _leaf([S0, S1])
    assert _redo(page, _actions()) == _expected(page, [])


def test_recompress_converts_pre_94_leaf() -> None:
    items = [(1, 1), (1, 2), (5, 7)]
    page = bytearray(BLCKSZ)
    GinInitPage(page, GIN_DATA | GIN_LEAF)
    page[GIN_DATA_OFF : GIN_DATA_OFF + 18] = b"".join(pack_itemptr(i) for i in items)
    GinPageSetMaxoff(page, len(items))
    extra = _seg([(9, 1)])
    got = bytearray(_redo(page, _actions((1, GIN_SEGMENT_INSERT, extra))))
    seg = _seg(items)
    assert got[GIN_DATA_OFF : GIN_DATA_OFF + len(seg) + len(extra)] == seg + extra
    assert pd_lower(got) == GIN_DATA_OFF + len(seg) + len(extra)
    assert got[-2:] == struct.pack("<H", GIN_DATA | GIN_LEAF | GIN_COMPRESSED)
    assert got[-4:-2] == b"\x00\x00"  # maxoff reset


@pytest.mark.parametrize("payload", [
    _actions((0, GIN_SEGMENT_UNMODIFIED, b"")),
    _actions((0, 9, b"")),
    _actions((5, GIN_SEGMENT_DELETE, b"")),
    _actions((4, GIN_SEGMENT_ADDITEMS, _additems([(1, 9)]))),
    _actions((0, GIN_SEGMENT_REPLACE, S0[:5])),
    _actions((0, GIN_SEGMENT_ADDITEMS, struct.pack("<H", 3))),
    struct.pack("<H", 2) + b"\x00",
    b"\x01",
])
def test_recompress_malformed_raises(payload: bytes) -> None:
    with pytest.raises(RedoError) as exc:
        _redo(_leaf([S0, S1]), payload)
    assert exc.value.lsn == LSN - 0x40


def test_recompress_overflow_raises() -> None:
    big = _seg([(b * 300, 1) for b in range(1, 2000)])  # ~6 KB
    page = _leaf([big])
    with pytest.raises(RedoError):
        _redo(page, _actions((1, GIN_SEGMENT_INSERT, big)))


# -- gin_mask ----------------------------------------------------------------------------
def test_gin_mask_hole_and_deleted_pages() -> None:
    page = _leaf([S0])
    page[0:8] = b"\x11" * 8
    masked = bytearray(page)
    gin_mask(masked, 3)
    assert masked[0:8] == bytes(8)
    assert masked[pd_lower(page) : pd_upper(page)] == bytes(pd_upper(page) - pd_lower(page))
    assert masked[GIN_DATA_OFF : pd_lower(page)] == S0

    deleted = bytearray(BLCKSZ)
    GinInitPage(deleted, GIN_LIST)
    deleted[100:200] = b"\x22" * 100
    deleted[-2:] = struct.pack("<H", GIN_DELETED)
    gin_mask(deleted, 4)
    assert deleted[24:] == bytes(BLCKSZ - 24)
    assert deleted[12:16] == bytes(4)  # pd_lower, pd_upper
