"""The ADDITEMS shortcut of ginRedoRecompress (ginxlog.c): the segment C's merge then
compress (ginMergeItemPointers, ginCompressPostingList) writes for new items, built from
the old segment's bytes in time linear in the new items, where it is sure to give the
same bytes; None where it is not, and the caller takes C's way (pyredo.page.gin).
"""

from __future__ import annotations

import bisect
import itertools
import struct
from collections.abc import Sequence

from pyredo import BLCKSZ
from pyredo.page.gin import (
    CONTINUED_BYTE,
    FINAL_BYTE,
    GinFormatError,
    GinPostingListHeaderSize,
    ItemPointer,
    MaxHeapTuplesPerPageBits,
    decode_deltas,
    decode_varbyte,
    encode_ascending,
    ginCompareItemPointers,
    itemptr_to_uint64,
    pack_itemptr,
    uint64_to_itemptr,
    unpack_itemptr,
)
from pyredo.page.ginvarbyte import VARBYTES as _VARBYTES
from pyredo.page.ginvarbyte import canonical_sum, short_ints

_U16 = struct.Struct("<H")

# What the shortcuts learn of a segment (its bytes, header included, without padding):
# the sorted values of its items when they came from encode_varbyte and are below 2^43.
# A page's ADDITEMS records go to the segment the previous one wrote, so the values
# the shortcut knows of what it wrote spare decoding it again. A memo of a pure
# function (bytes -> values); bounded, and cleared whole when full.
_SEGMENT_VALUES: dict[bytes, list[int]] = {}
_MAX_SEGMENTS = 1024


def _remember(segment: bytes, vals: list[int]) -> None:
    if len(_SEGMENT_VALUES) >= _MAX_SEGMENTS:
        _SEGMENT_VALUES.clear()
    _SEGMENT_VALUES[segment] = vals


def _canonical_values(buf: bytes | bytearray | memoryview, off: int, nbytes: int,
                      first: ItemPointer) -> list[int] | None:
    """The values of the segment at ``off`` (``first``'s included) when each varbyte
    integer is in the form encode_varbyte gives it, none runs past the segment and
    every value is below 2^43 (an item pointer then maps back to it); else None."""
    start = off + GinPostingListHeaderSize
    seg = bytes(buf[off : start + nbytes])
    vals = _SEGMENT_VALUES.get(seg)
    if vals is not None:
        return vals
    v0 = itemptr_to_uint64(first)
    if _last_value_if_shortest(buf, start, start + nbytes, v0) is None:
        return None
    vals = [v0, *decode_deltas(buf, start, start + nbytes, v0)]
    if vals[-1] >> (MaxHeapTuplesPerPageBits + 32):
        return None
    _remember(seg, vals)
    return vals


def ginRecompressAppended(buf: bytes | bytearray | memoryview, off: int,
                          items: Sequence[ItemPointer]) -> bytes | None:
    """``ginCompressPostingList(ginMergeItemPointers(items, ginPostingListDecode(buf, off)),
    BLCKSZ)`` (what ginRedoRecompress does for ADDITEMS) in time linear in
    ``items`` when ``items`` come after the segment's last item, as new heap
    tuples usually do; None when that shortcut does not apply.

    Then C's merge puts ``items`` after the old ones unchanged, and its coder
    re-encodes the old items into the bytes they came from, provided they
    came from that coder: every varbyte integer in its shortest form, none
    running past the segment, every value below 2^43 (so that an item pointer
    maps back to it). The segment is checked for exactly that, a run of
    one-byte integers at a time, and the new items are encoded after it.
    """
    if not items or off + GinPostingListHeaderSize > len(buf):
        return None
    nbytes = _U16.unpack_from(buf, off + 6)[0]
    start = off + GinPostingListHeaderSize
    first = unpack_itemptr(buf, off)
    vals = _canonical_values(buf, off, nbytes, first)
    if vals is None:
        return None
    old_last = uint64_to_itemptr(vals[-1]) if nbytes else first
    # ginMergeItemPointers(items, old): its first shortcut puts ``items`` first
    if ginCompareItemPointers(items[-1], first) < 0 or ginCompareItemPointers(old_last, items[0]) >= 0:
        return _insert_one(buf, off, nbytes, first, items[0], vals) if len(items) == 1 else None
    maxbytes = (BLCKSZ & ~1) - GinPostingListHeaderSize
    tail = encode_ascending([old_last, *items], maxbytes - nbytes)
    if tail is None:
        return None
    total = nbytes + len(tail)
    segment = b"".join((bytes(buf[off : off + 6]), _U16.pack(total), bytes(buf[start : start + nbytes]), tail))
    # the values encode_ascending encoded the deltas of: decoding ``segment`` gives them
    _remember(segment, [*vals, *((b << MaxHeapTuplesPerPageBits) | p for b, p in items)])
    return segment + bytes(total & 1)


def _insert_one(buf: bytes | bytearray | memoryview, off: int, nbytes: int, first: ItemPointer,
                item: ItemPointer, vals: list[int]) -> bytes | None:
    """ginRecompressAppended for one item that goes before or among the segment's items
    (``vals``: their values, checked there to be encode_varbyte's, below 2^43): when they
    are strictly ascending (no zero byte: every delta > 0) and the offsets are below 2^11
    (an item pointer and its value then order alike), C's merge inserts ``item`` (or finds
    it there) and its coder gives the old bytes with the integer around ``item`` re-encoded
    as two."""
    body = bytes(buf[off + GinPostingListHeaderSize : off + GinPostingListHeaderSize + nbytes])
    if 0 in body or (first[1] | item[1]) >> MaxHeapTuplesPerPageBits:
        return None
    x = (item[0] << MaxHeapTuplesPerPageBits) | item[1]
    k = bisect.bisect_left(vals, x)
    head = bytes(buf[off : off + 6])
    if k == len(vals):
        return None
    if vals[k] == x:  # already there: the segment as it is
        pass
    elif k == 0:  # the new first item
        head, body = pack_itemptr(item), _VARBYTES[vals[0] - x] + body
    else:  # the integer from vals[k - 1] to vals[k] (bytes ends[k - 2] .. ends[k - 1]) becomes two
        ends = list(itertools.compress(range(1, nbytes + 1), body.translate(FINAL_BYTE)))
        at = ends[k - 2] if k >= 2 else 0
        body = body[:at] + _VARBYTES[x - vals[k - 1]] + _VARBYTES[vals[k] - x] + body[ends[k - 1] :]
    total = len(body)
    if total > (BLCKSZ & ~1) - GinPostingListHeaderSize:
        return None
    segment = b"".join((head, _U16.pack(total), body))
    if vals[k] != x:
        _remember(segment, [*vals[:k], x, *vals[k:]])
    return segment + bytes(total & 1)


def _last_value_if_shortest(buf: bytes | bytearray | memoryview, pos: int, endptr: int,
                            val: int) -> int | None:
    """The running sum of the varbyte integers in ``buf[pos:endptr]`` from
    ``val``, or None unless each is in the form encode_varbyte gives it and
    the last ends at ``endptr``."""
    if endptr > len(buf):
        return None
    data = bytes(buf[pos:endptr])
    continued = data.translate(CONTINUED_BYTE)
    if pos <= endptr and short_ints(continued):  # a list at a time
        return canonical_sum(data, continued, val)
    base = pos
    while pos < endptr:
        multi = continued.find(1, pos - base)
        run_end = endptr if multi < 0 else base + multi
        val += sum(buf[pos:run_end])  # one-byte integers are in their shortest form
        pos = run_end
        if pos < endptr:
            try:
                delta, end = decode_varbyte(buf, pos)
            except GinFormatError:
                return None
            if end > endptr or buf[pos:end] != _VARBYTES[delta]:
                return None
            val += delta
            pos = end
    return val
