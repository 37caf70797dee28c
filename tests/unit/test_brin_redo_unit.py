"""BRIN redo routines, page helpers, desc and brin_mask on hand-built records (no PostgreSQL)."""

from __future__ import annotations

import struct
from collections.abc import Callable

import factories
import pytest

from oracles.masks.brin import brin_mask
from pyredo import BLCKSZ
from pyredo.engine import RedoEngine
from pyredo.errors import RedoError
from pyredo.page import bufpage
from pyredo.page.brin import (
    BRIN_EVACUATE_PAGE,
    BRIN_META_MAGIC,
    BRIN_PAGETYPE_META,
    BRIN_PAGETYPE_REGULAR,
    BRIN_PAGETYPE_REVMAP,
    REVMAP_PAGE_MAXITEMS,
    BrinPageFlags,
    BrinPageType,
    SetBrinPageFlags,
    brin_page_init,
    brinGetHeapBlockItemptr,
)
from pyredo.rmgr import RM_BRIN_ID
from pyredo.rmgr.brin import (
    XLOG_BRIN_CREATE_INDEX,
    XLOG_BRIN_DESUMMARIZE,
    XLOG_BRIN_INIT_PAGE,
    XLOG_BRIN_INSERT,
    XLOG_BRIN_REVMAP_EXTEND,
    XLOG_BRIN_SAMEPAGE_UPDATE,
    XLOG_BRIN_UPDATE,
    desc,
)
from pyredo.rmgrlist import PG15
from pyredo.wal.record import (
    BufferTag,
    DecodedXLogRecord,
    RelFileNode,
)

RNODE = RelFileNode(1663, 5, 16400)
META, REVMAP, REG, REG2 = 0, 1, 2, 3


def tag(blk: int) -> BufferTag:
    return BufferTag(*RNODE, 0, blk)


class Wal(factories.Wal):
    rmid, xid, rnode = RM_BRIN_ID, 700, RNODE


def brin_tuple(heap_blk: int, payload: bytes) -> bytes:
    """A BrinTuple-shaped item: bt_blkno, bt_info, then opaque bytes, MAXALIGNed."""
    raw = struct.pack("<IB", heap_blk, 8) + b"\0\0\0" + payload
    return raw + bytes(bufpage.MAXALIGN(len(raw)) - len(raw))


def createidx(w: Wal, ppr: int = 1) -> DecodedXLogRecord:
    return w.rec(XLOG_BRIN_CREATE_INDEX, struct.pack("<IH", ppr, 1), [(0, META, True, b"")])


def revmap_extend(w: Wal, target: int = REVMAP) -> DecodedXLogRecord:
    return w.rec(XLOG_BRIN_REVMAP_EXTEND, struct.pack("<I", target),
                 [(0, META, False, b""), (1, target, True, b"")])


def insert(w: Wal, heap_blk: int, offnum: int, tup: bytes, *, init: bool = False,
           regblk: int = REG, ppr: int = 1) -> DecodedXLogRecord:
    info = XLOG_BRIN_INSERT | (XLOG_BRIN_INIT_PAGE if init else 0)
    return w.rec(info, struct.pack("<IIH", heap_blk, ppr, offnum),
                 [(0, regblk, init, tup), (1, REVMAP, False, b"")])


def redo(blk: int, records: list[DecodedXLogRecord], base: bytes | None = None) -> bytes:
    return RedoEngine().reconstruct(tag(blk), base, records)


def test_createidx_builds_the_metapage() -> None:
    w = Wal()
    rec = createidx(w, ppr=4)
    page = redo(META, [rec])
    assert struct.unpack_from("<IIII", page, 24) == (BRIN_META_MAGIC, 1, 4, 0)
    assert (bufpage.pd_lower(page), bufpage.pd_upper(page), bufpage.pd_special(page)) == (40, 8184, 8184)
    assert BrinPageType(page) == BRIN_PAGETYPE_META
    assert bufpage.PageGetLSN(page) == rec.end_lsn
    assert page[40:8184] == bytes(8144)
    assert PG15.record_type(rec) == "BRIN/CREATE_INDEX"


def test_revmap_extend_updates_meta_and_inits_the_revmap_page() -> None:
    w = Wal()
    recs = [createidx(w), revmap_extend(w)]
    meta = redo(META, recs)
    assert struct.unpack_from("<I", meta, 36)[0] == REVMAP
    rm = redo(REVMAP, recs)
    assert BrinPageType(rm) == BRIN_PAGETYPE_REVMAP
    assert (bufpage.pd_lower(rm), bufpage.pd_upper(rm)) == (24, 8184)
    assert rm[24:8184] == bytes(8160)  # every entry invalid: PageInit zeroes them
    assert bufpage.PageGetLSN(rm) == recs[1].end_lsn
    assert REVMAP_PAGE_MAXITEMS == 1360


def test_revmap_extend_without_block_1_is_an_error() -> None:
    w = Wal()
    rec = w.rec(XLOG_BRIN_REVMAP_EXTEND, struct.pack("<I", 1), [(0, META, False, b"")])
    with pytest.raises(RedoError, match="backup block with ID 1"):
        redo(META, [createidx(w), rec])


def test_insert_init_update_and_revmap() -> None:
    w = Wal()
    t0, t1 = brin_tuple(0, b"a" * 8), brin_tuple(1, b"b" * 16)
    recs = [createidx(w), revmap_extend(w), insert(w, 0, 1, t0, init=True), insert(w, 1, 2, t1)]
    reg = redo(REG, recs)
    assert BrinPageType(reg) == BRIN_PAGETYPE_REGULAR
    assert bytes(bufpage.PageGetItem(bytearray(reg), 1)) == t0
    assert bytes(bufpage.PageGetItem(bytearray(reg), 2)) == t1
    rm = redo(REVMAP, recs)
    assert brinGetHeapBlockItemptr(rm, 1, 0) == (REG, 1)
    assert brinGetHeapBlockItemptr(rm, 1, 1) == (REG, 2)
    assert PG15.record_type(recs[2]) == "BRIN/INSERT+INIT"


def test_cross_page_update_leaves_an_unused_line_pointer() -> None:
    w = Wal()
    t0, t1 = brin_tuple(0, b"a" * 8), brin_tuple(1, b"b" * 16)
    big = brin_tuple(0, b"c" * 40)
    recs = [createidx(w), revmap_extend(w), insert(w, 0, 1, t0, init=True), insert(w, 1, 2, t1)]
    upd = w.rec(XLOG_BRIN_UPDATE | XLOG_BRIN_INIT_PAGE, struct.pack("<H2xIIH", 1, 0, 1, 1),
                [(0, REG2, True, big), (1, REVMAP, False, b""), (2, REG, False, b"")])
    recs.append(upd)
    old = redo(REG, recs)
    assert bufpage.PageGetItemId(old, 1) == (0, bufpage.LP_UNUSED, 0)
    assert bufpage.PageGetMaxOffsetNumber(old) == 2
    assert bytes(bufpage.PageGetItem(bytearray(old), 2)) == t1
    assert bufpage.PageGetLSN(old) == upd.end_lsn
    new = redo(REG2, recs)
    assert bytes(bufpage.PageGetItem(bytearray(new), 1)) == big
    assert brinGetHeapBlockItemptr(redo(REVMAP, recs), 1, 0) == (REG2, 1)
    assert desc(upd) == "heapBlk 0 pagesPerRange 1 old offnum 1, new offnum 1"


def test_samepage_update_and_desummarize() -> None:
    w = Wal()
    t0, t1 = brin_tuple(0, b"a" * 8), brin_tuple(1, b"b" * 16)
    shrunk = brin_tuple(1, b"d" * 8)
    recs = [createidx(w), revmap_extend(w), insert(w, 0, 1, t0, init=True), insert(w, 1, 2, t1)]
    same = w.rec(XLOG_BRIN_SAMEPAGE_UPDATE, struct.pack("<H", 2), [(0, REG, False, shrunk)])
    desum = w.rec(XLOG_BRIN_DESUMMARIZE, struct.pack("<IIH", 1, 0, 1),
                  [(0, REVMAP, False, b""), (1, REG, False, b"")])
    recs += [same, desum]
    reg = bytearray(redo(REG, recs))
    assert bytes(bufpage.PageGetItem(reg, 2)) == shrunk
    assert bufpage.PageGetItemId(reg, 1) == (0, bufpage.LP_UNUSED, 0)
    assert bufpage.pd_upper(reg) == bufpage.pd_special(reg) - len(shrunk)
    rm = redo(REVMAP, recs)
    assert brinGetHeapBlockItemptr(rm, 1, 0) == (0xFFFFFFFF, 0)
    assert brinGetHeapBlockItemptr(rm, 1, 1) == (REG, 2)
    assert desc(desum) == "pagesPerRange 1, heapBlk 0, page offset 1"


def test_revmap_index_wraps_per_page_and_range() -> None:
    w = Wal()
    heap_blk = 4 * (REVMAP_PAGE_MAXITEMS + 3) + 2  # ppr 4: entry 3 of the second revmap page
    recs = [createidx(w, 4), revmap_extend(w), insert(w, 0, 1, brin_tuple(0, b"x"), init=True, ppr=4),
            insert(w, heap_blk, 2, brin_tuple(heap_blk, b"y"), ppr=4)]
    rm = redo(REVMAP, recs)
    assert rm[24 + 3 * 6 : 24 + 4 * 6] == struct.pack("<HHH", 0, REG, 2)


@pytest.mark.parametrize("rec_fn, match", [
    (lambda w: w.rec(XLOG_BRIN_INSERT, b"\0" * 4, [(0, REG, False, b"x")]), "xl_brin_insert is 4 bytes"),
    (lambda w: insert(w, 0, 1, b""), "no BrinTuple"),
    (lambda w: insert(w, 0, 9, brin_tuple(0, b"x")), "invalid max offset number"),
    (lambda w: insert(w, 0, 1, brin_tuple(0, b"x"), ppr=0, regblk=REG2), "pagesPerRange is 0"),
    (lambda w: w.rec(XLOG_BRIN_SAMEPAGE_UPDATE, struct.pack("<H", 1),
                     [(0, REG, False, brin_tuple(0, b"z" * 8200))]), "failed to replace tuple"),
    (lambda w: w.rec(XLOG_BRIN_SAMEPAGE_UPDATE, struct.pack("<H", 7),
                     [(0, REG, False, brin_tuple(0, b"z"))]), "invalid index offnum"),
])
def test_malformed_records_raise_redo_errors(
        rec_fn: Callable[[Wal], DecodedXLogRecord], match: str) -> None:
    w = Wal()
    base = [createidx(w), revmap_extend(w), insert(w, 0, 1, brin_tuple(0, b"a"), init=True)]
    rec = rec_fn(w)
    target = REVMAP if "pagesPerRange" in match else REG
    with pytest.raises(RedoError, match=match):
        redo(target, [*base, rec])


def test_desc_matches_brindesc() -> None:
    w = Wal()
    assert desc(createidx(w, 32)) == "v1 pagesPerRange 32"
    assert desc(insert(w, 7, 3, b"x", init=True)) == "heapBlk 7 pagesPerRange 1 offnum 3"
    assert desc(revmap_extend(w, 2)) == "targetBlk 2"


def _regular_page_with_garbage() -> bytearray:
    page = bytearray(BLCKSZ)
    brin_page_init(page, BRIN_PAGETYPE_REGULAR)
    bufpage.PageAddItem(page, brin_tuple(0, b"q" * 8), 1)
    lower, upper = bufpage.pd_lower(page), bufpage.pd_upper(page)
    page[lower:upper] = b"\xaa" * (upper - lower)
    return page


def test_brin_mask_regular_page() -> None:
    page = _regular_page_with_garbage()
    bufpage.PageSetLSN(page, 0x12345678)
    SetBrinPageFlags(page, BRIN_EVACUATE_PAGE)
    brin_mask(page, 2)
    assert bufpage.PageGetLSN(page) == 0
    assert page[bufpage.pd_lower(page) : bufpage.pd_upper(page)] == bytes(
        bufpage.pd_upper(page) - bufpage.pd_lower(page))
    assert BrinPageFlags(page) == 0
    assert BrinPageType(page) == BRIN_PAGETYPE_REGULAR


def test_brin_mask_keeps_revmap_contents_and_old_style_metapage() -> None:
    rm = bytearray(BLCKSZ)
    brin_page_init(rm, BRIN_PAGETYPE_REVMAP)
    rm[24:30] = struct.pack("<HHH", 0, 5, 1)
    brin_mask(rm, 1)
    assert rm[24:30] == struct.pack("<HHH", 0, 5, 1)
    meta = bytearray(BLCKSZ)
    brin_page_init(meta, BRIN_PAGETYPE_META)  # pd_lower left at the header: pre-v11 style
    meta[24:40] = struct.pack("<IIII", BRIN_META_MAGIC, 1, 1, 1)
    meta[100] = 7
    brin_mask(meta, 0)
    assert meta[100] == 7


def test_samepage_shrink_leaves_stale_bytes_like_c() -> None:
    """PageIndexTupleOverwrite shifts the tuple start by the size change and does
    not clear what it leaves behind: the old first bytes stay in free space."""
    w = Wal()
    t0, t1 = brin_tuple(0, b"a" * 8), brin_tuple(1, b"b" * 16)
    recs = [createidx(w), revmap_extend(w), insert(w, 0, 1, t0, init=True), insert(w, 1, 2, t1)]
    old_upper = bufpage.pd_upper(redo(REG, recs))
    recs.append(w.rec(XLOG_BRIN_SAMEPAGE_UPDATE, struct.pack("<H", 2),
                      [(0, REG, False, brin_tuple(1, b"d" * 8))]))
    reg = redo(REG, recs)
    assert bufpage.pd_upper(reg) == old_upper + 8
    assert reg[old_upper : old_upper + 8] == t1[:8]
