"""The fast paths of pyredo (issue 18) give what the straightforward code gives.

Each fast path replaces a loop that mirrors C one item at a time: the GIN
posting-list coder, the ADDITEMS shortcut of ginRedoRecompress, the
line-pointer loops of bufpage.c, pglz's literal runs, the WAL reader's lazy
error locations. Here each is compared with a reference written the C way,
on seeded random inputs that include malformed ones; no timing is asserted.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import crc32c
import pytest

from pyredo.errors import InvalidRecord, RedoError
from pyredo.page import bufpage, ginappend
from pyredo.page.bufpage import PageGetItemId, PageInit, PageSetItemId, set_pd_lower
from pyredo.page.gin import (
    GinFormatError,
    ItemPointer,
    decode_varbyte,
    encode_varbyte,
    ginCompareItemPointers,
    ginCompressPostingList,
    ginMergeItemPointers,
    ginPostingListDecode,
    ginPostingListDecodeAllSegments,
    itemptr_to_uint64,
    pack_itemptr,
    unpack_itemptr,
)
from pyredo.wal.builder import BlockSpec, WalBuilder, encode_record
from pyredo.wal.pglz import PglzError, pglz_compress, pglz_decompress
from pyredo.wal.reader import WalReader
from pyredo.wal.record import RelFileNode

U64 = (1 << 64) - 1


def outcome(fn: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    """A result, or the error's type and message: fast and reference must agree on both."""
    try:
        return ("ok", fn(*args))
    except (RedoError, PglzError) as e:
        return ("error", type(e).__name__, str(e))


# -- references, one item at a time as in C --------------------------------------------
def compress_ref(ipd: Sequence[ItemPointer], maxsize: int) -> tuple[bytes, int]:
    """ginCompressPostingList (ginpostinglist.c), item by item."""
    maxsize &= ~1
    maxbytes = maxsize - 8
    out = bytearray()
    prev = itemptr_to_uint64(ipd[0])
    packed = 1
    for ip in ipd[1:]:
        val = itemptr_to_uint64(ip)
        enc = encode_varbyte((val - prev) & U64)
        room = maxbytes - len(out)
        if room < 7 and len(enc) > room:
            break
        out += enc
        prev = val
        packed += 1
    n = len(out)
    return pack_itemptr(ipd[0]) + n.to_bytes(2, "little") + bytes(out) + bytes(n & 1), packed


def decode_ref(buf: bytes, off: int, length: int) -> list[ItemPointer]:
    """ginPostingListDecodeAllSegments, one varbyte integer at a time."""
    out: list[ItemPointer] = []
    seg = off
    while seg < off + length:
        if seg + 8 > len(buf):
            raise GinFormatError(f"posting list header at {seg} runs past {len(buf)} bytes")
        first = unpack_itemptr(buf, seg)
        out.append(first)
        val = itemptr_to_uint64(first)
        nbytes = int.from_bytes(buf[seg + 6 : seg + 8], "little")
        pos, end = seg + 8, seg + 8 + nbytes
        while pos < end:
            delta, pos = decode_varbyte(buf, pos)
            val = (val + delta) & U64
            out.append(((val >> 11) & 0xFFFFFFFF, val & 0x7FF))
        seg += 8 + nbytes + (nbytes & 1)
    return out


def merge_ref(a: Sequence[ItemPointer], b: Sequence[ItemPointer]) -> list[ItemPointer]:
    """ginMergeItemPointers: the C merge loop."""
    if not a or not b or ginCompareItemPointers(a[-1], b[0]) < 0:
        return [*a, *b]
    if ginCompareItemPointers(b[-1], a[0]) < 0:
        return [*b, *a]
    out: list[ItemPointer] = []
    i = j = 0
    while i < len(a) and j < len(b):
        c = ginCompareItemPointers(a[i], b[j])
        if c > 0:
            out.append(b[j])
            j += 1
        elif c == 0:
            out.append(b[j])
            i += 1
            j += 1
        else:
            out.append(a[i])
            i += 1
    return out + list(a[i:]) + list(b[j:])


def items(rnd: random.Random, n: int, *, blk: int = 0, pos: int = 1, wild: bool = True) -> list[ItemPointer]:
    """Mostly ascending heap TIDs, with jumps across pages and (if ``wild``) now and
    then an offset number past 11 bits."""
    out = []
    for _ in range(n):
        r = rnd.random()
        if r < 0.7:
            pos += rnd.randrange(0, 4)
        elif r < 0.9:
            blk, pos = blk + rnd.randrange(1, 4), rnd.randrange(1, 300)
        elif r < 0.96 or not wild:
            blk += rnd.randrange(1, 1 << 24)
        else:
            pos = rnd.randrange(0, 1 << 16)
        out.append((blk & 0xFFFFFFFF, pos & 0xFFFF))
    return out


# -- GIN posting lists -------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_posting_list_coder_matches_the_item_by_item_loop(seed: int) -> None:
    rnd = random.Random(seed)
    for _ in range(300):
        ipd = items(rnd, rnd.randrange(1, 400), blk=rnd.randrange(1 << rnd.choice([4, 20, 31])))
        if rnd.random() < 0.7:
            ipd.sort()
        maxsize = rnd.choice([8192, 384, 128, 41, 10, 8, rnd.randrange(0, 9000)])
        assert outcome(ginCompressPostingList, ipd, maxsize) == outcome(compress_ref, ipd, maxsize)
        other = items(rnd, rnd.randrange(0, 40), blk=rnd.randrange(64))
        assert ginMergeItemPointers(other, ipd) == merge_ref(other, ipd)
        assert ginMergeItemPointers(ipd, other) == merge_ref(ipd, other)


@pytest.mark.parametrize("seed", range(4))
def test_posting_list_decoder_matches_the_item_by_item_loop(seed: int) -> None:
    rnd = random.Random(seed)
    for _ in range(300):
        ipd = sorted(items(rnd, rnd.randrange(1, 300), blk=rnd.randrange(1 << 20)))
        buf = bytearray(b"".join(ginCompressPostingList(ipd[k::3] or ipd)[0] for k in range(rnd.randrange(1, 4))))
        for _ in range(rnd.choice([0, 0, 1, 4])):  # corrupt: lengths, long varbytes, 7th bytes
            buf[rnd.randrange(len(buf))] = rnd.randrange(256)
        if rnd.random() < 0.2:
            buf = buf[: rnd.randrange(len(buf) + 1)]
        length = rnd.choice([len(buf), rnd.randrange(len(buf) + 9)])
        want = outcome(decode_ref, bytes(buf), 0, length)
        assert outcome(ginPostingListDecodeAllSegments, bytes(buf), 0, length) == want
        assert outcome(ginPostingListDecodeAllSegments, buf, 0, length) == want


@pytest.mark.parametrize("seed", range(4))
def test_additems_shortcut_gives_merge_then_compress(seed: int) -> None:
    rnd = random.Random(seed)
    used = 0
    for _ in range(400):
        old = sorted(items(rnd, rnd.randrange(1, 300), blk=rnd.randrange(1 << 16), wild=rnd.random() < 0.2))
        seg = bytearray(ginCompressPostingList(old)[0])
        if rnd.random() < 0.2:
            seg[rnd.randrange(len(seg))] = rnd.randrange(256)
        buf = bytes(rnd.randrange(256) for _ in range(rnd.choice([0, 5]))) + bytes(seg) + b"\x9c\x01"
        off = len(buf) - len(seg) - 2
        last_blk, last_pos = old[-1]
        new = items(rnd, rnd.randrange(0, 30), blk=last_blk + rnd.choice([0, 1, 9]),
                    pos=last_pos + rnd.choice([1, 0, -1]))
        if rnd.random() < 0.5:
            new = sorted(ip for ip in set(new) if ip > old[-1])
        got = ginappend.ginRecompressAppended(buf, off, new)
        if got is not None:
            used += 1
            merged = merge_ref(new, decode_ref(buf, off, len(seg)))
            assert got == compress_ref(merged, 8192)[0]
    assert used > 100  # the shortcut is taken, not only refused


@pytest.mark.parametrize("seed", range(4))
def test_additems_shortcut_of_one_item_among_the_old_ones(seed: int) -> None:
    """One new item before, among or equal to the segment's items: the old bytes with
    the integer around it re-encoded, as C's merge then compress gives them."""
    rnd = random.Random(seed)
    used = 0
    for _ in range(400):
        old = sorted(set(items(rnd, rnd.randrange(1, 300), blk=rnd.randrange(1 << 16), wild=rnd.random() < 0.2)))
        seg = bytearray(ginCompressPostingList(old)[0])
        if rnd.random() < 0.1:
            seg[rnd.randrange(len(seg))] = rnd.randrange(256)
        buf = bytes(rnd.randrange(256) for _ in range(rnd.choice([0, 5]))) + bytes(seg) + b"\x9c\x01"
        off = len(buf) - len(seg) - 2
        blk, pos = rnd.choice(old)
        new = rnd.choice([(blk, pos), (blk, pos + rnd.choice([-1, 1, 2])), (max(blk - 1, 0), pos),
                          (blk, rnd.randrange(1 << 16)), (rnd.randrange(1 << 16), rnd.randrange(1, 300))])
        new = (new[0], new[1] & 0xFFFF)
        got = ginappend.ginRecompressAppended(buf, off, [new])
        if got is not None:
            used += 1
            assert got == compress_ref(merge_ref([new], decode_ref(buf, off, len(seg))), 8192)[0]
    assert used > 100


@pytest.mark.parametrize("seed", range(4))
def test_additems_shortcut_on_the_segment_it_wrote(seed: int) -> None:
    """A page's ADDITEMS records go to the segment the previous one wrote: the values the
    shortcut remembers of what it wrote (``_SEGMENT_VALUES``) must be what decoding gives,
    and each step what C's merge then compress gives."""
    rnd = random.Random(seed)
    for _ in range(40):
        seg = ginCompressPostingList(sorted(set(items(rnd, rnd.randrange(1, 40), blk=rnd.randrange(1 << 16),
                                                      wild=False))))[0]
        for _ in range(60):
            old = decode_ref(seg, 0, len(seg))
            blk, pos = old[-1] if rnd.random() < 0.7 else rnd.choice(old)
            new = sorted(set(items(rnd, rnd.choice([1, 1, 2, 5]), blk=blk, pos=pos + 1, wild=False)))
            got = ginappend.ginRecompressAppended(seg, 0, new)
            want = compress_ref(merge_ref(new, old), 8192)[0]
            if got is None:
                got = want
            assert got == want
            if len(got) > 300:
                break
            seg = got
    for known, vals in ginappend._SEGMENT_VALUES.items():
        assert [(v >> 11, v & 0x7FF) for v in vals] == decode_ref(known, 0, len(known))


def test_additems_shortcut_refuses_what_would_not_round_trip() -> None:
    seg = ginCompressPostingList([(5, 1), (5, 2), (6, 1)])[0]
    assert ginappend.ginRecompressAppended(seg, 0, [(6, 2), (7, 1)]) is not None
    assert ginappend.ginRecompressAppended(seg, 0, [(5, 3), (5, 4)]) is None  # several, not after the last item
    assert ginappend.ginRecompressAppended(seg, 0, []) is None
    # one item among the old ones, but an old delta of 0 (a duplicate): C's merge loop keeps it
    dup = pack_itemptr((5, 1)) + b"\x02\x00\x00\x05"
    assert ginappend.ginRecompressAppended(dup, 0, [(5, 3)]) is None
    # delta 1 written in two bytes (0x81 0x00): C would re-encode it in one
    overlong = pack_itemptr((5, 1)) + b"\x02\x00\x81\x00"
    assert ginPostingListDecode(overlong, 0) == [(5, 1), (5, 2)]
    assert ginappend.ginRecompressAppended(overlong, 0, [(6, 1)]) is None
    # a first item with an offset past 11 bits: its uint64 overlaps the block number
    wide = ginCompressPostingList([(5, 3000), (6, 1)])[0]
    got = ginappend.ginRecompressAppended(wide, 0, [(7, 1)])
    assert got is None or got == compress_ref(merge_ref([(7, 1)], decode_ref(wide, 0, len(wide))), 8192)[0]


# -- bufpage: the line-pointer loops ---------------------------------------------------------
def test_line_pointer_moves_match_the_per_item_loop() -> None:
    rnd = random.Random(7)
    for _ in range(500):
        page = bytearray(8192)
        PageInit(page)
        n = rnd.randrange(1, 300)
        for i in range(1, n + 1):
            PageSetItemId(page, i, rnd.randrange(1 << 15), rnd.randrange(4), rnd.choice([0, rnd.randrange(1 << 15)]))
        set_pd_lower(page, 24 + 4 * n)
        offset, delta = rnd.randrange(1 << 15), rnd.choice([8, 64, -16, -8000, 30000])
        storage_only = rnd.random() < 0.5
        want = bytearray(page)
        for i in range(1, n + 1):
            off, flags, length = PageGetItemId(want, i)
            if (length != 0 or not storage_only) and off <= offset:
                PageSetItemId(want, i, off + delta, flags, length)  # 15-bit lp_off wraps
        bufpage._move_line_pointers(page, n, offset, delta, storage_only)
        assert page == want


# -- pglz -------------------------------------------------------------------------------------
def pglz_ref(src: bytes, rawsize: int, check_complete: bool) -> bytes:
    """pglz_decompress (pg_lzcompress.c), one control bit at a time."""
    dest = bytearray()
    sp = 0
    while sp < len(src) and len(dest) < rawsize:
        ctrl = src[sp]
        sp += 1
        for _ in range(8):
            if sp >= len(src) or len(dest) >= rawsize:
                break
            if ctrl & 1:
                if sp + 2 > len(src):
                    raise PglzError(f"match tag truncated at input offset {sp}")
                length, off = (src[sp] & 0x0F) + 3, ((src[sp] & 0xF0) << 4) | src[sp + 1]
                sp += 2
                if length == 18:
                    if sp >= len(src):
                        raise PglzError(f"extended match length truncated at input offset {sp}")
                    length += src[sp]
                    sp += 1
                if off == 0 or off > len(dest):
                    raise PglzError(f"match offset {off} invalid at output offset {len(dest)}")
                for _ in range(min(length, rawsize - len(dest))):
                    dest.append(dest[-off])
            else:
                dest.append(src[sp])
                sp += 1
            ctrl >>= 1
    if check_complete and (len(dest) != rawsize or sp != len(src)):
        raise PglzError(f"decompressed {len(dest)} of {rawsize} bytes using {sp} of {len(src)} input bytes")
    return bytes(dest)


def test_pglz_literal_runs_and_whole_control_bytes_match_the_bit_by_bit_loop() -> None:
    """Literal runs, and a control byte's 8 items at once where they are sure to fit
    (a page's first 6 KB or so): the bytes and errors of C's loop."""
    rnd = random.Random(11)
    for _ in range(300):
        n = rnd.randrange(0, 9000)
        if rnd.random() < 0.5:
            data = bytes(rnd.choice(b"ab\x00") if rnd.random() < 0.5 else rnd.randrange(256) for _ in range(n))
        else:  # tuple-like rows: long matches, overlapping ones too
            row = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 60)))
            data = bytes(b if rnd.random() > 0.03 else rnd.randrange(256) for b in (row * (n // len(row) + 1))[:n])
        comp = bytearray(pglz_compress(data))
        if comp and rnd.random() < 0.3:
            comp[rnd.randrange(len(comp))] = rnd.randrange(256)
        if rnd.random() < 0.1:
            comp = comp[: rnd.randrange(len(comp) + 1)]
        rawsize = rnd.choice([n, n, max(0, n + rnd.randrange(-9, 9))])
        check = rnd.random() < 0.8
        assert outcome(pglz_decompress, bytes(comp), rawsize, check) == \
            outcome(pglz_ref, bytes(comp), rawsize, check)


# -- the reader locates a decoding error it no longer locates in advance ---------------------
def test_reader_names_file_and_offset_of_a_record_that_does_not_decode(tmp_path: Path) -> None:
    b = WalBuilder(seg_size=1 << 20)
    b.add(10, 0x00, xid=1)
    rec = bytearray(encode_record(10, 0x00, prev=b.records[-1][0],
                                  blocks=[BlockSpec(0, RelFileNode(1663, 5, 1), 0, 1, data=b"x")]))
    rec[24] = 40  # block id 40: past XLR_MAX_BLOCK_ID (the CRC is recomputed below)
    rec[20:24] = crc32c.crc32c(bytes(rec[:20]), crc32c.crc32c(bytes(rec[24:]))).to_bytes(4, "little")
    lsn = b.add_raw(bytes(rec))
    b.add(10, 0x00, xid=2)
    (path,) = b.write(tmp_path)
    with pytest.raises(InvalidRecord, match="invalid block_id 40") as ei:
        list(WalReader(tmp_path))
    assert ei.value.lsn == lsn and ei.value.segment == path.name and ei.value.offset == lsn % (1 << 20)
    assert path.name in str(ei.value) and path.name in ei.value.args[0]
