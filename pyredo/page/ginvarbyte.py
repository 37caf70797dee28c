"""Varbyte integers of GIN posting lists (ginpostinglist.c's decode_varbyte), a list
at a time: which bytes of a run of integers are how deep in their integer, so that
sums and running sums are taken by C-level byte and iterator operations instead of
an integer at a time. ``continued`` is a run's bytes translated to 1 where the
continuation bit is set, 0 elsewhere (pyredo.page.gin's ``_CONTINUED``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from operator import add, mul


def encode_varbyte(val: int) -> bytes:
    """7 data bits per byte, little-endian, high bit = more bytes follow."""
    out = bytearray()
    while val > 0x7F:
        out.append(0x80 | (val & 0x7F))
        val >>= 7
    out.append(val)
    return bytes(out)


class _VarbyteCache(dict[int, bytes]):
    """encode_varbyte(delta) by delta; deltas below 2^14 (one or two bytes:
    within a heap page, or to a nearby one) are kept once computed."""

    def __missing__(self, delta: int) -> bytes:
        enc = encode_varbyte(delta)
        if delta < 1 << 14:
            self[delta] = enc
        return enc


VARBYTES = _VarbyteCache()
FINAL = bytes(int(b == 0) for b in range(256))  # translates _CONTINUED's 0/1 to 1/0
LOW7 = bytes(b & 0x7F for b in range(256))
_SIX_CONTINUED = b"\x01" * 6


def short_ints(continued: bytes) -> bool:
    """The varbyte integers whose bytes ``continued`` flags (1: continuation bit set) are of
    at most six bytes (none of seven, whose 7th byte C reads whole) and the last one ends."""
    return not continued.endswith(b"\x01") and _SIX_CONTINUED not in continued


def deep_bytes(continued: bytes) -> Iterator[bytes]:
    """For depth 1, 2, ...: a 0/1 byte per byte, 1 for those with at least ``depth``
    continued bytes of their integer before them. A byte ``depth`` deep is worth its 7 low
    bits times 128**depth = 1 + the sum of 127 * 128**(d - 1) for d = 1 .. depth."""
    n = len(continued)
    conts = int.from_bytes(continued, "little")
    deep = (conts << 8) & ((1 << 8 * n) - 1)
    depth = 1
    while deep:
        yield deep.to_bytes(n, "little")
        depth += 1
        deep &= conts << (8 * depth)


def running_sums(data: bytes, continued: bytes, val: int) -> list[int]:
    """The running sums from ``val`` of the integers in ``data`` (``short_ints`` of them)."""
    low = data.translate(LOW7)
    worth: Iterable[int] = low
    for depth, deep in enumerate(deep_bytes(continued), 1):
        worth = list(map(add, worth, map(mul, map(mul, low, deep), itertools.repeat(127 << 7 * (depth - 1)))))
    sums = itertools.accumulate(worth, initial=val)
    next(sums)
    return list(itertools.compress(sums, continued.translate(FINAL)))


def canonical_sum(data: bytes, continued: bytes, val: int) -> int | None:
    """``val`` plus the integers in ``data`` (``short_ints`` of them); None unless each
    is in the form encode_varbyte gives it: an integer of two bytes or more does not end
    in a zero byte."""
    low = data.translate(LOW7)
    total = sum(low)
    for depth, deep in enumerate(deep_bytes(continued), 1):
        if depth == 1 and 0 in bytes(itertools.compress(data, deep)):
            return None
        total += (127 << 7 * (depth - 1)) * sum(itertools.compress(low, deep))
    return val + total
