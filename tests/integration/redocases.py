"""What the per-access-method redo tests (test_<am>_redo.py) share: the cluster modes
they run in, the image-compression bits of each method, how each picks its own
divergences out of a check report, and how a synthetic record is redone by both engines.
The C-redo fixture is in conftest.py."""

from __future__ import annotations

from collections.abc import Iterable

from harness.verify.check import CheckReport, Engine
from oracles.compare import explain_diff
from pyredo.engine import RedoEngine
from pyredo.page.bufpage import PageGetLSN
from pyredo.wal.record import (
    BKPIMAGE_COMPRESS_LZ4,
    BKPIMAGE_COMPRESS_PGLZ,
    BKPIMAGE_COMPRESS_ZSTD,
    BufferTag,
    DecodedXLogRecord,
)

# mode -> (full_page_writes, wal_compression); "nofpw-snapshot" rebuilds every page
# by redo routines from a snapshot of the relation files taken at the start
MODES: dict[str, tuple[bool, str | None]] = {
    "fpw": (True, None),
    "nofpw-snapshot": (False, None),
    "fpw-pglz": (True, "pglz"),
    "fpw-lz4": (True, "lz4"),
    "fpw-zstd": (True, "zstd"),
}
COMPRESSED_MODES = [m for m, (_fpw, method) in MODES.items() if method]

COMPRESS_BITS = {"pglz": BKPIMAGE_COMPRESS_PGLZ, "lz4": BKPIMAGE_COMPRESS_LZ4, "zstd": BKPIMAGE_COMPRESS_ZSTD}


def divergences_of(report: CheckReport, rmgr: str, diff_lines: int = 6) -> list[str]:
    """The report's divergences on pages of ``rmgr`` or at its records, one line each."""
    return [f"{d.kind} {d.tag} {d.record_type} {d.engines}: {d.error or ''} {d.diff[:diff_lines]}"
            for d in report.divergences
            if d.owner == rmgr or d.record_type.startswith(f"{rmgr}/")]


def compressed_images(records: Iterable[DecodedXLogRecord], method: str) -> int:
    """How many block images of ``records`` wal_compression ``method`` compressed."""
    bit = COMPRESS_BITS[method]
    return sum(1 for rec in records for blk in rec.blocks.values() if blk.has_image and blk.bimg_info & bit)


def redo_both(c_redo: Engine, tag: BufferTag, base: bytes | None, rec: DecodedXLogRecord,
              rmgr: str) -> bytearray:
    """``rec`` redone on ``base`` by pyredo and by PostgreSQL's C redo: equal byte for byte
    (else the page diff of the first differences), stamped with the record's end LSN."""
    got = RedoEngine().reconstruct(tag, base, [rec])
    want = c_redo.reconstruct(tag, base, [rec])
    assert got == want, [str(d) for d in explain_diff(got, want, rmgr)[:8]]
    assert PageGetLSN(got) == rec.end_lsn
    return bytearray(got)
