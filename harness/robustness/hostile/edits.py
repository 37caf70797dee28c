"""Hostile byte and value edits: edge values for a field, bit flips, and one
random edit of a byte string (resizing it when its length field allows)."""

from __future__ import annotations

import random
import struct

# -- byte and value edits -------------------------------------------------------------
EDGE_U8 = (0, 1, 0x7F, 0x80, 0xFE, 0xFF)
EDGE_U16 = (0, 1, 2, 3, 8, 23, 24, 0xFF, 0x100, 0x7FFF, 0x8000, 8191, 8192, 8193, 0xFFFE, 0xFFFF)
EDGE_U32 = (*EDGE_U16, 0x10000, 0x3FFFFFFF, 0x40000000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)
PACK = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}


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
        b[i : i + size] = struct.pack(PACK[size], v)
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
