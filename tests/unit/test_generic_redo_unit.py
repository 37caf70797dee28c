"""generic_redo and generic_mask on hand-built records (no PostgreSQL)."""

from __future__ import annotations

import struct

import pytest
from factories import RNODE, block, record, tag

from oracles.masks.generic import generic_mask
from pyredo import BLCKSZ
from pyredo.engine import RedoEngine
from pyredo.errors import RedoError
from pyredo.page import bufpage
from pyredo.rmgr import RM_GENERIC_ID
from pyredo.rmgrlist import PG15
from pyredo.wal.record import (
    DecodedXLogRecord,
)

LSN = 0x2000000


def frag(offset: int, data: bytes) -> bytes:
    return struct.pack("<HH", offset, len(data)) + data


def rec(deltas: dict[int, tuple[int, bytes]], lsn: int = LSN) -> DecodedXLogRecord:
    """deltas: block_id -> (blkno, delta bytes)."""
    blocks = [block(bid, blkno, d, rnode=RNODE) for bid, (blkno, d) in deltas.items()]
    return record(RM_GENERIC_ID, 0, b"", *blocks, lsn=lsn, size=0x40, xid=9)


def base_page() -> bytes:
    """A page whose hole (pd_lower..pd_upper) holds garbage, special space of 8."""
    page = bytearray(BLCKSZ)
    bufpage.PageInit(page, BLCKSZ, 8)
    bufpage.set_pd_lower(page, 100)
    bufpage.set_pd_upper(page, 8000)
    page[100:8000] = b"\xee" * 7900
    page[8000:8184] = b"\x11" * 184
    bufpage.PageSetLSN(page, 0x100)
    return bytes(page)


def test_fragments_are_applied_and_the_new_hole_zeroed() -> None:
    # lower grows to 200 (header fragment), a tuple lands at 120, upper moves to 7000
    delta = (frag(12, struct.pack("<HH", 200, 7000)) + frag(120, b"T" * 16)
             + frag(7000, b"U" * 1000))
    r = rec({0: (3, delta)})
    page = RedoEngine().reconstruct(tag(3), base_page(), [r])
    assert (bufpage.pd_lower(page), bufpage.pd_upper(page)) == (200, 7000)
    assert page[100:120] == b"\xee" * 20  # not in the hole: untouched
    assert page[120:136] == b"T" * 16
    assert page[200:7000] == bytes(6800)
    assert page[7000:8000] == b"U" * 1000
    assert page[8000:8184] == b"\x11" * 184
    assert bufpage.PageGetLSN(page) == r.end_lsn
    assert PG15.record_type(r) == "Generic/Generic"


def test_only_the_target_block_changes_and_lsn_skips() -> None:
    r = rec({0: (3, frag(500, b"A")), 1: (4, frag(8100, b"B"))})
    page = RedoEngine().reconstruct(tag(4), base_page(), [r])
    assert page[8100] == ord("B")
    assert page[500] == 0  # block 0's fragment, in block 4's hole (zeroed)
    # a page already past the record is left alone
    newer = bytearray(base_page())
    bufpage.PageSetLSN(newer, LSN + 0x1000)
    assert RedoEngine().reconstruct(tag(4), bytes(newer), [r]) == bytes(newer)


@pytest.mark.parametrize("delta, match", [
    (b"\x10", "truncated fragment header"),
    (struct.pack("<HH", 100, 10) + b"abc", "needs 10 bytes, 3 left"),
    (frag(8190, b"xyz"), "runs past the page"),
    (frag(12, struct.pack("<HH", 9000, 8000)), "bad hole"),
])
def test_malformed_deltas_raise_redo_errors(delta: bytes, match: str) -> None:
    with pytest.raises(RedoError, match=match):
        RedoEngine().reconstruct(tag(3), base_page(), [rec({0: (3, delta)})])


def test_too_many_blocks_is_an_error() -> None:
    r = rec({4: (3, frag(500, b"A"))})
    with pytest.raises(RedoError, match="at most 4 blocks"):
        RedoEngine().reconstruct(tag(3), base_page(), [r])


def test_generic_mask() -> None:
    page = bytearray(base_page())
    page[8:10] = b"\x01\x02"  # pd_checksum
    generic_mask(page, 3)
    assert bufpage.PageGetLSN(page) == 0 and page[8:10] == b"\0\0"
    assert page[100:8000] == bytes(7900)
    assert page[8000:8184] == b"\x11" * 184
