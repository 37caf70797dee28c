"""LSN helpers: parse and print ``X/X``, and segment-file arithmetic (xlog_internal.h)."""

from __future__ import annotations

from pyredo.errors import format_lsn

__all__ = [
    "format_lsn",
    "parse_lsn",
    "parse_segment_file_name",
    "segment_file_name",
    "segment_number",
    "segment_start",
]

XLOG_BLCKSZ = 8192


def parse_lsn(text: str) -> int:
    """Parse ``16/B374D848`` (or a plain integer) into an int; ValueError if bad."""
    text = text.strip()
    if "/" in text:
        hi, lo = text.split("/", 1)
        hi_v, lo_v = int(hi, 16), int(lo, 16)
        if not (0 <= hi_v <= 0xFFFFFFFF and 0 <= lo_v <= 0xFFFFFFFF):
            raise ValueError(f"LSN out of range: {text!r}")
        return (hi_v << 32) | lo_v
    value = int(text, 0)
    if not 0 <= value < 1 << 64:
        raise ValueError(f"LSN out of range: {text!r}")
    return value


def segments_per_xlogid(seg_size: int) -> int:
    return 0x100000000 // seg_size


def segment_number(lsn: int, seg_size: int) -> int:
    """XLByteToSeg."""
    return lsn // seg_size


def segment_start(segno: int, seg_size: int) -> int:
    """XLogSegNoOffsetToRecPtr(segno, 0)."""
    return segno * seg_size


def segment_file_name(tli: int, segno: int, seg_size: int) -> str:
    """XLogFileName: 24 hex digits, timeline + log + seg."""
    per = segments_per_xlogid(seg_size)
    return f"{tli:08X}{segno // per:08X}{segno % per:08X}"


def parse_segment_file_name(name: str, seg_size: int) -> tuple[int, int]:
    """XLogFromFileName: (timeline, segno); ValueError if not a segment name."""
    if len(name) != 24 or any(c not in "0123456789ABCDEF" for c in name):
        raise ValueError(f"not a WAL segment file name: {name!r}")
    tli = int(name[0:8], 16)
    log = int(name[8:16], 16)
    seg = int(name[16:24], 16)
    return tli, log * segments_per_xlogid(seg_size) + seg
