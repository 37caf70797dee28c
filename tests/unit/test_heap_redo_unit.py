"""Heap / Heap2 / XLOG FPI / Sequence redo without PostgreSQL: hand-built records.

Real-WAL coverage lives in tests/integration/test_heap_redo.py; these tests pin
the paths real WAL rarely takes (a VM page that does not exist yet, the heap
LSN rule of VISIBLE with and without wal_log_hints, VM pages a record clears
without naming) and the promise that malformed input raises a typed RedoError
from the routine itself, never an IndexError or struct.error.
"""

from __future__ import annotations

import contextlib
import struct
from functools import partial

import factories
import pytest
from factories import block
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyredo import BLCKSZ
from pyredo.engine import RedoEngine
from pyredo.errors import RedoError
from pyredo.page import bufpage
from pyredo.page.htup import HEAP_XMAX_INVALID, T_CTID, T_INFOMASK, T_XMAX, T_XMIN
from pyredo.page.visibilitymap import (
    HEAPBLOCKS_PER_PAGE,
    VISIBILITYMAP_ALL_FROZEN,
    VISIBILITYMAP_ALL_VISIBLE,
    visibilitymap_get_status,
)
from pyredo.rmgr import RM_HEAP2_ID, RM_HEAP_ID, RM_SEQ_ID, RM_XLOG_ID, seq, xlog
from pyredo.rmgr import heap as h
from pyredo.rmgr import heap2 as h2
from pyredo.rmgrlist import PG15
from pyredo.wal.record import (
    MAIN_FORKNUM,
    VISIBILITYMAP_FORKNUM,
    BufferTag,
    DecodedXLogRecord,
    RelFileNode,
)
from pyredo.xlogutils import RedoContext

RNODE = RelFileNode(1663, 5, 16384)
XID = 1000
_blk = partial(block, rnode=RNODE)


class _Wal(factories.Wal):
    xid, rnode, start = XID, RNODE, 0x1000100


record = _Wal().record  # (rmid, info, main, *blocks): a decoded record at the next LSN


def heap_tag(blkno: int = 0) -> BufferTag:
    return BufferTag(*RNODE, MAIN_FORKNUM, blkno)


def vm_tag(mapblock: int = 0) -> BufferTag:
    return BufferTag(*RNODE, VISIBILITYMAP_FORKNUM, mapblock)


def tuple_data(payload: bytes, natts: int = 1) -> bytes:
    """xl_heap_header + bitmap/padding (t_hoff 24) + payload, as heap_insert logs it."""
    return h.XL_HEAP_HEADER.pack(natts, HEAP_XMAX_INVALID, 24) + b"\0" + payload


def insert(offnum: int, payload: bytes, *, init: bool = False, flags: int = 0,
           blkno: int = 0) -> DecodedXLogRecord:
    info = h.XLOG_HEAP_INSERT | (h.XLOG_HEAP_INIT_PAGE if init else 0)
    return record(RM_HEAP_ID, info, h.XL_HEAP_INSERT.pack(offnum, flags),
                  _blk(0, blkno, tuple_data(payload), will_init=init))


def heap_page(n: int = 3) -> tuple[bytes, list[DecodedXLogRecord]]:
    """A heap page with ``n`` tuples built by INSERT+INIT and INSERTs."""
    recs = [insert(i + 1, f"tuple {i}".encode(), init=(i == 0)) for i in range(n)]
    return RedoEngine().reconstruct(heap_tag(), None, recs), recs


def call_routine(rec: DecodedXLogRecord, tag: BufferTag, page: bytes | None,
                 engine: RedoEngine | None = None) -> bytearray:
    """Run the record's routine directly (not through engine.apply, which would
    wrap any exception into a RedoError): only RedoError may come out."""
    buf = bytearray(page) if page is not None else bytearray(BLCKSZ)
    routine = PG15.routine(rec.rmid, rec.info)
    routine(RedoContext(engine or RedoEngine(), rec, tag, buf))
    return buf


# -- heap -------------------------------------------------------------------------------
def test_insert_builds_header_like_heap_xlog_insert() -> None:
    page, recs = heap_page(2)
    lp_off, lp_flags, lp_len = bufpage.PageGetItemId(page, 2)
    assert lp_flags == bufpage.LP_NORMAL and lp_len == 24 + len(b"tuple 1")
    tup = page[lp_off : lp_off + lp_len]
    assert struct.unpack_from("<I", tup, T_XMIN)[0] == XID
    assert struct.unpack_from("<I", tup, T_XMAX)[0] == 0
    assert struct.unpack_from("<HHH", tup, T_CTID) == (0, 0, 2)  # t_ctid = own TID
    assert tup[24:] == b"tuple 1"
    assert bufpage.PageGetLSN(page) == recs[-1].end_lsn


def test_delete_sets_xmax_prune_xid_and_ctid() -> None:
    page, _ = heap_page(3)
    rec = record(RM_HEAP_ID, h.XLOG_HEAP_DELETE, h.XL_HEAP_DELETE.pack(4242, 2, h.XLHL_KEYS_UPDATED, 0),
                 _blk(0, 0))
    out = RedoEngine().reconstruct(heap_tag(), page, [rec])
    lp_off = bufpage.PageGetItemId(out, 2)[0]
    assert struct.unpack_from("<I", out, lp_off + T_XMAX)[0] == 4242
    assert struct.unpack_from("<H", out, lp_off + T_INFOMASK)[0] & HEAP_XMAX_INVALID == 0
    assert bufpage.PageGetPruneXid(out) == XID


def test_super_delete_clears_xmin() -> None:
    page, _ = heap_page(2)
    rec = record(RM_HEAP_ID, h.XLOG_HEAP_DELETE,
                 h.XL_HEAP_DELETE.pack(0, 1, 0, h.XLH_DELETE_IS_SUPER), _blk(0, 0))
    out = RedoEngine().reconstruct(heap_tag(), page, [rec])
    assert struct.unpack_from("<I", out, bufpage.PageGetItemId(out, 1)[0] + T_XMIN)[0] == 0


def test_hot_update_rebuilds_prefix_and_suffix_from_old_tuple() -> None:
    page, _ = heap_page(1)  # tuple 1 data: b"tuple 0"
    # new data = prefix "tu" from old + "XY" from WAL + suffix "e 0" from old
    data = struct.pack("<HH", 2, 3) + h.XL_HEAP_HEADER.pack(1, HEAP_XMAX_INVALID, 24) + b"\0" + b"XY"
    main = h.XL_HEAP_UPDATE.pack(XID, 1, 0, h.XLH_UPDATE_PREFIX_FROM_OLD | h.XLH_UPDATE_SUFFIX_FROM_OLD, 0, 2)
    rec = record(RM_HEAP_ID, h.XLOG_HEAP_HOT_UPDATE, main, _blk(0, 0, data))
    out = RedoEngine().reconstruct(heap_tag(), page, [rec])
    lp_off, _f, lp_len = bufpage.PageGetItemId(out, 2)
    assert out[lp_off + 24 : lp_off + lp_len] == b"tuXYe 0"
    old_off = bufpage.PageGetItemId(out, 1)[0]
    assert struct.unpack_from("<HHH", out, old_off + T_CTID) == (0, 0, 2)  # forward link


def test_visibility_map_bits_cleared_by_records_that_do_not_name_the_vm_page() -> None:
    """The VM trap: an UPDATE across VM pages clears bits on both, named by implicit_tags."""
    old_blk, new_blk = 5, HEAPBLOCKS_PER_PAGE + 7  # heap blocks on VM pages 0 and 1
    main = h.XL_HEAP_UPDATE.pack(XID, 1, 0, h.XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED
                                 | h.XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED, 0, 1)
    rec = record(RM_HEAP_ID, h.XLOG_HEAP_UPDATE | h.XLOG_HEAP_INIT_PAGE, main,
                 _blk(0, new_blk, tuple_data(b"new"), will_init=True), _blk(1, old_blk))
    assert h.implicit_tags(rec) == [vm_tag(0), vm_tag(1)]
    for mapblock, heap_blk in ((0, old_blk), (1, new_blk)):
        vm = bytearray(BLCKSZ)
        bufpage.PageInit(vm, BLCKSZ, 0)
        bufpage.PageSetLSN(vm, 0x7777)
        vm[24 + (heap_blk % HEAPBLOCKS_PER_PAGE) // 4] = 0xFF
        out = RedoEngine().reconstruct(vm_tag(mapblock), bytes(vm), [rec])
        assert visibilitymap_get_status(out, heap_blk) == 0
        assert bufpage.PageGetLSN(out) == 0x7777  # visibilitymap_clear stamps no LSN


def test_lock_clears_only_all_frozen() -> None:
    rec = record(RM_HEAP_ID, h.XLOG_HEAP_LOCK,
                 h.XL_HEAP_LOCK.pack(XID, 1, h.XLHL_XMAX_LOCK_ONLY, h.XLH_LOCK_ALL_FROZEN_CLEARED),
                 _blk(0, 3))
    assert h.implicit_tags(rec) == [vm_tag(0)]
    vm = bytearray(BLCKSZ)
    bufpage.PageInit(vm, BLCKSZ, 0)
    vm[24] = (VISIBILITYMAP_ALL_VISIBLE | VISIBILITYMAP_ALL_FROZEN) << 6  # heap block 3
    out = RedoEngine().reconstruct(vm_tag(0), bytes(vm), [rec])
    assert visibilitymap_get_status(out, 3) == VISIBILITYMAP_ALL_VISIBLE


# -- heap2 ------------------------------------------------------------------------------
def _visible(flags: int = VISIBILITYMAP_ALL_VISIBLE) -> DecodedXLogRecord:
    return record(RM_HEAP2_ID, h2.XLOG_HEAP2_VISIBLE, h2.XL_HEAP_VISIBLE.pack(XID, flags),
                  _blk(0, 0, fork=VISIBILITYMAP_FORKNUM), _blk(1, 0))


@pytest.mark.parametrize("hints", [False, True])
def test_visible_heap_page_lsn_follows_xloghintbitisneeded(hints: bool) -> None:
    page, _ = heap_page(2)
    rec = _visible()
    out = RedoEngine(hint_bits_logged=hints).reconstruct(heap_tag(), page, [rec])
    assert bufpage.PageIsAllVisible(out)
    assert bufpage.PageGetLSN(out) == (rec.end_lsn if hints else bufpage.PageGetLSN(page))


def test_visible_initializes_a_missing_vm_page_and_stamps_it_once() -> None:
    rec = _visible(VISIBILITYMAP_ALL_VISIBLE | VISIBILITYMAP_ALL_FROZEN)
    out = RedoEngine().reconstruct(vm_tag(0), None, [rec])  # the VM block did not exist
    assert bufpage.pd_upper(out) == BLCKSZ and bufpage.pd_lower(out) == 24
    assert visibilitymap_get_status(out, 0) == 3
    assert bufpage.PageGetLSN(out) == rec.end_lsn
    again = _visible(VISIBILITYMAP_ALL_VISIBLE | VISIBILITYMAP_ALL_FROZEN)
    out2 = RedoEngine().reconstruct(vm_tag(0), out, [again])
    assert out2 == out  # no bit changed: visibilitymap_set leaves the LSN alone


def test_prune_redirects_kills_frees_and_compacts() -> None:
    page, _ = heap_page(4)
    data = struct.pack("<HH", 1, 2) + struct.pack("<H", 3) + struct.pack("<H", 4)
    rec = record(RM_HEAP2_ID, h2.XLOG_HEAP2_PRUNE, h2.XL_HEAP_PRUNE.pack(0, 1, 1), _blk(0, 0, data))
    out = RedoEngine().reconstruct(heap_tag(), page, [rec])
    assert bufpage.PageGetItemId(out, 1) == (2, bufpage.LP_REDIRECT, 0)
    assert bufpage.PageGetItemId(out, 3) == (0, bufpage.LP_DEAD, 0)
    assert bufpage.PageGetMaxOffsetNumber(out) == 3  # trailing unused lp 4 truncated
    lp2 = bufpage.PageGetItemId(out, 2)
    assert lp2[0] + bufpage.MAXALIGN(lp2[2]) == BLCKSZ  # the survivor moved to the end
    assert bufpage.pd_upper(out) == lp2[0]


def test_multi_insert_init_tuples_are_short_aligned() -> None:
    tuples = b""
    for payload in (b"a", b"bcd", b"ef"):
        if len(tuples) % 2:
            tuples += b"\0"  # each xl_multi_insert_tuple starts SHORTALIGNed
        tuples += h2.XL_MULTI_INSERT_TUPLE.pack(1 + len(payload), 1, HEAP_XMAX_INVALID, 24)
        tuples += b"\0" + payload
    rec = record(RM_HEAP2_ID, h2.XLOG_HEAP2_MULTI_INSERT | h2.XLOG_HEAP_INIT_PAGE,
                 h2.XL_HEAP_MULTI_INSERT.pack(h.XLH_INSERT_ALL_FROZEN_SET, 3),
                 _blk(0, 0, tuples, will_init=True))
    out = RedoEngine().reconstruct(heap_tag(), None, [rec])
    assert bufpage.PageGetMaxOffsetNumber(out) == 3 and bufpage.PageIsAllVisible(out)
    off, _f, ln = bufpage.PageGetItemId(out, 2)
    assert out[off + 24 : off + ln] == b"bcd"


# -- XLOG and Sequence ------------------------------------------------------------------------
def test_fpi_without_image_is_an_error_but_fpi_for_hint_skips_it() -> None:
    fpi = record(RM_XLOG_ID, xlog.XLOG_FPI, b"", _blk(0, 0))
    with pytest.raises(RedoError, match="did not contain a full-page image"):
        call_routine(fpi, heap_tag(), None)
    hint = record(RM_XLOG_ID, xlog.XLOG_FPI_FOR_HINT, b"", _blk(0, 0))
    assert call_routine(hint, heap_tag(), None) == bytearray(BLCKSZ)


def test_seq_log_rebuilds_the_page_from_scratch() -> None:
    tup = b"\x01" * 24 + b"seqdata!"
    rec = record(RM_SEQ_ID, seq.XLOG_SEQ_LOG, struct.pack("<III", *RNODE) + tup,
                 _blk(0, 0, will_init=True))
    garbage = bytes([0xAB]) * BLCKSZ
    out = RedoEngine().reconstruct(heap_tag(), garbage, [rec])
    assert bufpage.pd_special(out) == BLCKSZ - 8
    assert struct.unpack_from("<I", out, BLCKSZ - 8)[0] == seq.SEQ_MAGIC
    off, _f, ln = bufpage.PageGetItemId(out, 1)
    assert out[off : off + ln] == tup
    assert out[bufpage.pd_lower(out) : off] == bytes(off - bufpage.pd_lower(out))  # no stale bytes
    assert bufpage.PageGetLSN(out) == rec.end_lsn
    assert seq.desc(rec) == "rel 1663/5/16384"


# -- malformed input: a typed error, from the routine itself ---------------------------------
def _valid_records() -> list[tuple[DecodedXLogRecord, BufferTag]]:
    upd = h.XL_HEAP_UPDATE.pack(XID, 1, 0, h.XLH_UPDATE_PREFIX_FROM_OLD, 0, 4)
    return [
        (insert(4, b"fourth"), heap_tag()),
        (record(RM_HEAP_ID, h.XLOG_HEAP_DELETE, h.XL_HEAP_DELETE.pack(1, 2, 0, 0), _blk(0, 0)), heap_tag()),
        (record(RM_HEAP_ID, h.XLOG_HEAP_UPDATE, upd,
                _blk(0, 0, struct.pack("<H", 2) + tuple_data(b"zz"))), heap_tag()),
        (record(RM_HEAP_ID, h.XLOG_HEAP_LOCK, h.XL_HEAP_LOCK.pack(1, 3, 0, 0), _blk(0, 0)), heap_tag()),
        (record(RM_HEAP_ID, h.XLOG_HEAP_INPLACE, struct.pack("<H", 1), _blk(0, 0, b"TUPLE 0")), heap_tag()),
        (record(RM_HEAP_ID, h.XLOG_HEAP_CONFIRM, struct.pack("<H", 2), _blk(0, 0)), heap_tag()),
        (record(RM_HEAP2_ID, h2.XLOG_HEAP2_PRUNE, h2.XL_HEAP_PRUNE.pack(0, 0, 1),
                _blk(0, 0, struct.pack("<HH", 2, 3))), heap_tag()),
        (record(RM_HEAP2_ID, h2.XLOG_HEAP2_VACUUM, struct.pack("<H", 1), _blk(0, 0, struct.pack("<H", 3))),
         heap_tag()),
        (record(RM_HEAP2_ID, h2.XLOG_HEAP2_FREEZE_PAGE, h2.XL_HEAP_FREEZE_PAGE.pack(5, 1),
                _blk(0, 0, h2.XL_HEAP_FREEZE_TUPLE.pack(0, 2, 1, 0x0B00, 0))), heap_tag()),
        (record(RM_HEAP2_ID, h2.XLOG_HEAP2_MULTI_INSERT, h2.XL_HEAP_MULTI_INSERT.pack(0, 1) + struct.pack("<H", 4),
                _blk(0, 0, h2.XL_MULTI_INSERT_TUPLE.pack(3, 1, 0, 24) + b"\0ab")), heap_tag()),
        (record(RM_HEAP2_ID, h2.XLOG_HEAP2_LOCK_UPDATED, h2.XL_HEAP_LOCK_UPDATED.pack(1, 1, 0, 0),
                _blk(0, 0)), heap_tag()),
        (_visible(), heap_tag()),
    ]


@pytest.mark.parametrize("idx", range(12))
def test_valid_records_replay(idx: int) -> None:
    page, _ = heap_page(3)
    rec, tag = _valid_records()[idx]
    call_routine(rec, tag, page)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(idx=st.integers(0, 11), where=st.sampled_from(["main", "block"]),
       cut=st.integers(0, 40), flips=st.lists(st.tuples(st.integers(0, 63), st.integers(1, 255)), max_size=4))
def test_malformed_records_raise_redo_error(idx: int, where: str, cut: int,
                                            flips: list[tuple[int, int]]) -> None:
    """Truncated or bit-flipped main data or block data: the routine either
    replays or raises RedoError — never IndexError, struct.error, ValueError..."""
    page, _ = heap_page(3)
    rec, tag = _valid_records()[idx]
    data = bytearray(rec.main_data if where == "main" else rec.block_data(0))
    for pos, x in flips:
        if data:
            data[pos % len(data)] ^= x
    data = data[: max(0, len(data) - cut)] if cut < 20 else data
    if where == "main":
        rec.main_data = bytes(data)
    else:
        blk = rec.blocks[0]
        blk.data, blk.has_data = bytes(data), bool(data)
    with contextlib.suppress(RedoError):
        call_routine(rec, tag, page)


def test_errors_name_the_record() -> None:
    page, _ = heap_page(2)
    rec = record(RM_HEAP_ID, h.XLOG_HEAP_DELETE, h.XL_HEAP_DELETE.pack(1, 9, 0, 0), _blk(0, 0))
    with pytest.raises(RedoError) as e:
        RedoEngine().reconstruct(heap_tag(), page, [rec])
    assert e.value.rmgr == "Heap" and e.value.lsn == rec.lsn and "invalid lp" in str(e.value)


def test_short_main_data_is_named_as_a_cursor_names_it() -> None:
    """main_struct (XLogRecGetData read as a struct, without a cursor) raises for a short
    record what main_data().unpack raises: what was read, the bytes it needs, the record."""
    rec = record(RM_HEAP_ID, h.XLOG_HEAP_DELETE, h.XL_HEAP_DELETE.pack(1, 9, 0, 0)[:5], _blk(0, 0))
    ctx = RedoContext(RedoEngine(), rec, heap_tag(), bytearray(BLCKSZ))
    with pytest.raises(RedoError) as a:
        ctx.main_struct(h.XL_HEAP_DELETE, "xl_heap_delete")
    with pytest.raises(RedoError) as b:
        ctx.main_data().unpack(h.XL_HEAP_DELETE, "xl_heap_delete")
    assert str(a.value) == str(b.value) and a.value.rmgr == "Heap" and a.value.lsn == rec.lsn
    assert "xl_heap_delete needs 8 bytes" in str(a.value)
    assert ctx.main_struct(h.XL_HEAP_INSERT, "xl_heap_insert") == h.XL_HEAP_INSERT.unpack_from(rec.main_data)


def test_desc_matches_pg_waldump() -> None:
    rec = record(RM_HEAP_ID, h.XLOG_HEAP_UPDATE, h.XL_HEAP_UPDATE.pack(7, 3, h.XLHL_XMAX_LOCK_ONLY, 1, 0, 4))
    assert h.desc(rec) == "off 3 xmax 7 flags 0x01 LOCK_ONLY ; new off 4 xmax 0"
    assert h2.desc(_visible(3)) == f"cutoff xid {XID} flags 0x03"
