"""PostgreSQL's LZ-family compression (common/pg_lzcompress.c), in Python.

``pglz_decompress`` mirrors the C decoder, including its corruption checks, so
wal_compression=pglz full-page images restore exactly. ``pglz_compress`` writes
the same format (a simpler match finder than the C one: output bytes may differ
from PostgreSQL's, but any pglz decoder reads them); it exists for round-trip tests.
"""

from __future__ import annotations


class PglzError(ValueError):
    """The compressed data is corrupt or does not decompress to the expected size."""


def pglz_decompress(source: bytes | memoryview, rawsize: int, check_complete: bool = True) -> bytes:
    """Decompress ``source`` into at most ``rawsize`` bytes (pglz_decompress).

    With ``check_complete`` the whole input must be consumed and exactly
    ``rawsize`` bytes produced, as RestoreBlockImage demands.

    C handles one control bit at a time; here a run of literal bytes (clear
    bits up to the next set one) is copied in one slice, stopping where C's
    loop would stop: at the end of the control byte, the input or the output.
    """
    if rawsize < 0:
        raise PglzError(f"negative raw size {rawsize}")
    src = memoryview(source).cast("B") if not isinstance(source, bytes) else source
    slen = len(src)
    # the output is written in place (matches are memmoves within it, no copies made)
    dest = memoryview(bytearray(rawsize))
    sp = dp = 0
    while sp < slen and dp < rawsize:
        ctrl = src[sp]
        sp += 1
        if sp + 24 <= slen and dp + 8 * _MAX_MATCH <= rawsize:
            # the usual control byte: its 8 items (3 input bytes, 273 output bytes at most
            # each) are all there, so C's per-item bounds checks cannot stop the loop
            for _ in range(8):
                if ctrl & 1:
                    b0 = src[sp]
                    length = (b0 & 0x0F) + 3
                    off = ((b0 & 0xF0) << 4) | src[sp + 1]
                    if length == 18:
                        length += src[sp + 2]
                        sp += 3
                    else:
                        sp += 2
                    if off == 0 or off > dp:
                        raise PglzError(f"match offset {off} invalid at output offset {dp}")
                    if off >= length:
                        dest[dp : dp + length] = dest[dp - off : dp - off + length]
                    else:
                        _repeat_period(dest, dp, off, length)
                    dp += length
                else:
                    dest[dp] = src[sp]
                    dp += 1
                    sp += 1
                ctrl >>= 1
            continue
        bit = 0
        while bit < 8 and sp < slen and dp < rawsize:
            if ctrl & 1:
                if sp + 2 > slen:
                    raise PglzError(f"match tag truncated at input offset {sp}")
                b0 = src[sp]
                length = (b0 & 0x0F) + 3
                off = ((b0 & 0xF0) << 4) | src[sp + 1]
                sp += 2
                if length == 18:
                    if sp >= slen:
                        raise PglzError(f"extended match length truncated at input offset {sp}")
                    length += src[sp]
                    sp += 1
                if off == 0 or off > dp:
                    raise PglzError(f"match offset {off} invalid at output offset {dp}")
                if length > rawsize - dp:
                    length = rawsize - dp
                if off >= length:
                    dest[dp : dp + length] = dest[dp - off : dp - off + length]
                else:
                    _repeat_period(dest, dp, off, length)
                dp += length
                ctrl >>= 1
                bit += 1
            else:
                # literals up to the next set control bit (trailing zeros of ctrl)
                run = (ctrl & -ctrl).bit_length() - 1 if ctrl else 8 - bit
                run = min(run, slen - sp, rawsize - dp)
                dest[dp : dp + run] = src[sp : sp + run]
                sp += run
                dp += run
                ctrl >>= run
                bit += run
    if check_complete and (dp != rawsize or sp != slen):
        raise PglzError(
            f"decompressed {dp} of {rawsize} bytes using {sp} of {slen} input bytes"
        )
    return dest[:dp].tobytes()


def _repeat_period(dest: memoryview, dp: int, off: int, length: int) -> None:
    """An overlapping match (``off`` < ``length``): it repeats the last ``off`` bytes,
    as C's byte-by-byte copy does."""
    chunk = bytes(dest[dp - off : dp])
    reps, rest = divmod(length, off)
    dest[dp : dp + length] = chunk * reps + chunk[:rest]


_MAX_OFFSET = 0x0FFF
_MAX_MATCH = 273  # 18 + 255


def pglz_compress(data: bytes) -> bytes:
    """Compress ``data`` into the pglz format (greedy matcher over 3-byte prefixes)."""
    out = bytearray()
    n = len(data)
    pos = 0
    last_seen: dict[bytes, int] = {}
    while pos < n:
        ctrl_at = len(out)
        out.append(0)
        ctrl = 0
        for bit in range(8):
            if pos >= n:
                break
            best_len = best_off = 0
            if pos + 3 <= n:
                key = data[pos : pos + 3]
                cand = last_seen.get(key)
                if cand is not None and 0 < pos - cand <= _MAX_OFFSET:
                    length = 0
                    limit = min(_MAX_MATCH, n - pos)
                    while length < limit and data[cand + length] == data[pos + length]:
                        length += 1
                    if length >= 3:
                        best_len, best_off = length, pos - cand
                last_seen[key] = pos
            if best_len:
                ctrl |= 1 << bit
                if best_len > 17:
                    out += bytes(((best_off >> 4) & 0xF0 | 0x0F, best_off & 0xFF, best_len - 18))
                else:
                    out += bytes(((best_off >> 4) & 0xF0 | (best_len - 3), best_off & 0xFF))
                for p in range(pos + 1, min(pos + best_len, n - 2)):
                    last_seen[data[p : p + 3]] = p
                pos += best_len
            else:
                out.append(data[pos])
                pos += 1
        out[ctrl_at] = ctrl
    return bytes(out)
