"""Hash redo routines, page helpers, desc and hash_mask on hand-built records (no PostgreSQL).

Covers what real WAL cannot reach cheaply (ADD_OVFL_PAGE with a new bitmap
page, SQUEEZE_PAGE naming a next page, split records on restored images whose
special space differs) and malformed input, which must raise RedoError.
"""

from __future__ import annotations

import struct

import factories
import pytest
from factories import tag

from oracles.masks.bufmask import MaskError
from oracles.masks.hash import hash_mask
from pyredo import BLCKSZ
from pyredo.engine import RedoEngine
from pyredo.errors import RedoError
from pyredo.page import bufpage
from pyredo.page.hash import (
    HASH_MAGIC,
    HASH_MAX_SPLITPOINTS,
    HASHO_PAGE_ID,
    ISSET,
    LH_BITMAP_PAGE,
    LH_BUCKET_BEING_POPULATED,
    LH_BUCKET_BEING_SPLIT,
    LH_BUCKET_NEEDS_SPLIT_CLEANUP,
    LH_BUCKET_PAGE,
    LH_META_PAGE,
    LH_OVERFLOW_PAGE,
    LH_PAGE_HAS_DEAD_TUPLES,
    LH_UNUSED_PAGE,
    HashPageGetMeta,
    HashPageGetOpaque,
    SizeOfHashMetaPageData,
    _hash_get_totalbuckets,
    _hash_init_metabuffer,
    _hash_initbitmapbuffer,
    _hash_initbuf,
    _hash_pageinit,
    _hash_spareindex,
)
from pyredo.rmgr import RM_HASH_ID
from pyredo.rmgr import hash as hrm
from pyredo.rmgrlist import PG15, PG16, PG17, PG18
from pyredo.wal.record import (
    DecodedXLogRecord,
)

META, BUCKET, OVFL1, BITMAP, OVFL2 = 0, 1, 10, 3, 11


class Wal(factories.Wal):
    rmid, xid = RM_HASH_ID, 700


def redo(blk: int, base: bytes | None, *recs: DecodedXLogRecord) -> bytearray:
    return bytearray(RedoEngine().reconstruct(tag(blk), base, recs))


def itup(heap_blk: int, off: int, hashkey: int) -> bytes:
    """A hash IndexTuple: t_tid, t_info (size 16), then the uint32 hash key, padded."""
    return struct.pack("<HHHHI", heap_blk >> 16, heap_blk & 0xFFFF, off, 16, hashkey) + bytes(4)


def bucket_page(bucket: int, ntups: int, flag: int = LH_BUCKET_PAGE, lsn: int = 0x100) -> bytearray:
    page = bytearray(BLCKSZ)
    _hash_initbuf(page, 3, bucket, flag, True)
    for i in range(ntups):
        assert bufpage.PageAddItem(page, itup(0, i + 1, 1000 + i), bufpage.InvalidOffsetNumber)
    bufpage.PageSetLSN(page, lsn)
    return page


def meta_page(lsn: int = 0x100) -> bytearray:
    page = bytearray(BLCKSZ)
    _hash_init_metabuffer(page, 0.0, 450, 307, True)
    bufpage.PageSetLSN(page, lsn)
    return page


# -- page helpers --------------------------------------------------------------------------
def test_splitpoint_arithmetic_matches_c_comments() -> None:
    # hashutil.c: phases 0-9 double the bucket count; later groups have 4 phases
    assert [_hash_spareindex(n) for n in (1, 2, 3, 4, 5, 512, 513, 640, 641, 1024)] == \
        [0, 1, 2, 2, 3, 9, 10, 10, 11, 13]
    assert [_hash_get_totalbuckets(p) for p in (0, 1, 9, 10, 11, 13, 14)] == \
        [1, 2, 512, 640, 768, 1024, 1280]
    for n in range(2, 5000):
        p = _hash_spareindex(n)
        assert _hash_get_totalbuckets(p) >= n > _hash_get_totalbuckets(p - 1)


def test_init_metabuffer_layout() -> None:
    page = meta_page()
    m = HashPageGetMeta(page)
    assert (m.hashm_magic, m.hashm_version, m.hashm_ntuples) == (HASH_MAGIC, 4, 0.0)
    assert (m.hashm_ffactor, m.hashm_bsize, m.hashm_bmsize, m.hashm_bmshift) == (307, 8152, 4096, 15)
    assert (m.hashm_maxbucket, m.hashm_highmask, m.hashm_lowmask) == (1, 3, 1)
    assert (m.hashm_ovflpoint, m.get_spare(1), m.hashm_nmaps, m.hashm_procid) == (1, 1, 0, 450)
    assert bufpage.pd_lower(page) == 24 + SizeOfHashMetaPageData == 4568
    op = HashPageGetOpaque(page)
    assert (op.hasho_flag, op.hasho_page_id, op.hasho_bucket) == (LH_META_PAGE, HASHO_PAGE_ID, 0xFFFFFFFF)
    # an estimate of 2 260 tuples at 307 a bucket: 8 buckets, as CREATE INDEX on a fresh table
    _hash_init_metabuffer(page, 2260.0, 450, 307, True)
    assert (m.hashm_maxbucket, m.hashm_highmask, m.hashm_lowmask, m.hashm_ovflpoint) == (7, 15, 7, 3)
    with pytest.raises(RedoError):
        _hash_init_metabuffer(page, 0.0, 450, 0, True)  # 0/0: C converts NaN to uint32


def test_initbitmapbuffer() -> None:
    page = bytearray(BLCKSZ)
    _hash_initbitmapbuffer(page, 4096, True)
    assert page[24:24 + 4096] == b"\xff" * 4096 and not any(page[24 + 4096:8176])
    assert bufpage.pd_lower(page) == 24 + 4096
    assert HashPageGetOpaque(page).hasho_flag == LH_BITMAP_PAGE
    with pytest.raises(RedoError):
        _hash_initbitmapbuffer(page, 8153, True)


# -- routines ------------------------------------------------------------------------------
def test_init_meta_and_bitmap_pages() -> None:
    wal = Wal()
    r1 = wal.rec(hrm.XLOG_HASH_INIT_META_PAGE, struct.pack("<dIH", 0.0, 450, 307),
                 [(0, META, True, b"")])
    r2 = wal.rec(hrm.XLOG_HASH_INIT_BITMAP_PAGE, struct.pack("<H", 4096),
                 [(0, BITMAP, True, b""), (1, META, False, b"")])
    meta = redo(META, None, r1, r2)
    m = HashPageGetMeta(meta)
    assert (m.hashm_nmaps, m.get_mapp(0)) == (1, 3)  # num_buckets + 1
    assert bufpage.PageGetLSN(meta) == r2.end_lsn
    bm = redo(BITMAP, None, r1, r2)
    assert HashPageGetOpaque(bm).hasho_flag == LH_BITMAP_PAGE
    assert bufpage.PageGetLSN(bm) == r2.end_lsn


def test_add_ovfl_page_with_new_bitmap_page() -> None:
    """Block 3 (a new bitmap page) only comes after 32 768 overflow pages."""
    wal = Wal()
    base_meta = meta_page()
    HashPageGetMeta(base_meta).hashm_nmaps = 1
    rec = wal.rec(hrm.XLOG_HASH_ADD_OVFL_PAGE, struct.pack("<HB", 4096, 0), [
        (0, 40, True, struct.pack("<I", 1)),
        (1, BUCKET, False, b""),
        (3, 39, True, b""),
        (4, META, False, struct.pack("<I", 77)),
    ])
    meta = HashPageGetMeta(redo(META, bytes(base_meta), rec))
    assert (meta.hashm_firstfree, meta.hashm_nmaps, meta.get_mapp(1), meta.get_spare(1)) == (77, 2, 39, 3)
    newmap = redo(39, None, rec)
    assert HashPageGetOpaque(newmap).hasho_flag == LH_BITMAP_PAGE and ISSET(newmap, 32767)
    ovfl = redo(40, None, rec)
    op = HashPageGetOpaque(ovfl)
    assert (op.hasho_prevblkno, op.hasho_nextblkno, op.hasho_bucket, op.hasho_flag) == \
        (BUCKET, 0xFFFFFFFF, 1, LH_OVERFLOW_PAGE)
    left = redo(BUCKET, bytes(bucket_page(1, 2)), rec)
    assert HashPageGetOpaque(left).hasho_nextblkno == 40


def test_split_allocate_page_reapplies_flags_on_restored_image() -> None:
    wal = Wal()
    image = bucket_page(1, 3, LH_BUCKET_PAGE)  # an image without the split flags
    rec = wal.rec(hrm.XLOG_HASH_SPLIT_ALLOCATE_PAGE,
                  struct.pack("<IHHB", 3, LH_BUCKET_PAGE | LH_BUCKET_BEING_SPLIT,
                              LH_BUCKET_PAGE | LH_BUCKET_BEING_POPULATED, 3),
                  [(0, BUCKET, False, b""), (1, 4, True, b""),
                   (2, META, False, struct.pack("<IIII", 3, 7, 2, 5))],
                  images={0: bytes(image)})
    old = redo(BUCKET, None, rec)
    op = HashPageGetOpaque(old)
    assert (op.hasho_flag, op.hasho_prevblkno) == (LH_BUCKET_PAGE | LH_BUCKET_BEING_SPLIT, 3)
    assert bufpage.PageGetLSN(old) == rec.end_lsn
    new = HashPageGetOpaque(redo(4, None, rec))
    assert (new.hasho_prevblkno, new.hasho_bucket, new.hasho_flag) == \
        (3, 3, LH_BUCKET_PAGE | LH_BUCKET_BEING_POPULATED)
    m = HashPageGetMeta(redo(META, bytes(meta_page()), rec))
    assert (m.hashm_maxbucket, m.hashm_lowmask, m.hashm_highmask, m.hashm_ovflpoint, m.get_spare(2)) == \
        (3, 3, 7, 2, 5)


def test_split_complete_on_restored_images() -> None:
    wal = Wal()
    rec = wal.rec(hrm.XLOG_HASH_SPLIT_COMPLETE,
                  struct.pack("<HH", LH_BUCKET_PAGE | LH_BUCKET_NEEDS_SPLIT_CLEANUP, LH_BUCKET_PAGE),
                  [(0, BUCKET, False, b""), (1, 4, False, b"")],
                  images={0: bytes(bucket_page(1, 1, LH_BUCKET_PAGE | LH_BUCKET_BEING_SPLIT)),
                          1: bytes(bucket_page(3, 1, LH_BUCKET_PAGE | LH_BUCKET_BEING_POPULATED))})
    assert HashPageGetOpaque(redo(BUCKET, None, rec)).hasho_flag == \
        LH_BUCKET_PAGE | LH_BUCKET_NEEDS_SPLIT_CLEANUP
    assert HashPageGetOpaque(redo(4, None, rec)).hasho_flag == LH_BUCKET_PAGE


def test_split_page_needs_an_image() -> None:
    wal = Wal()
    rec = wal.rec(hrm.XLOG_HASH_SPLIT_PAGE, b"", [(0, 4, False, b"")])
    with pytest.raises(RedoError, match="full-page image"):
        redo(4, bytes(bucket_page(3, 1)), rec)


def test_cleanup_lock_only_block_keeps_its_lsn() -> None:
    """DELETE on an overflow page names the bucket page (block 0) only to lock it."""
    wal = Wal()
    rec = wal.rec(hrm.XLOG_HASH_DELETE, bytes([1, 0]),
                  [(0, BUCKET, False, b""), (1, OVFL1, False, struct.pack("<HHH", 1, 3, 4))])
    base = bucket_page(1, 3)
    assert redo(BUCKET, bytes(base), rec) == base
    ovfl = bucket_page(1, 5, LH_OVERFLOW_PAGE | LH_PAGE_HAS_DEAD_TUPLES)
    got = redo(OVFL1, bytes(ovfl), rec)
    assert bufpage.PageGetMaxOffsetNumber(got) == 2
    assert HashPageGetOpaque(got).hasho_flag == LH_OVERFLOW_PAGE  # clear_dead_marking
    assert bufpage.PageGetLSN(got) == rec.end_lsn


def test_squeeze_page_with_next_page_and_prev_page() -> None:
    """Block 4 (a page after the freed one) never occurs in PostgreSQL 15 WAL."""
    wal = Wal()
    rec = wal.rec(hrm.XLOG_HASH_SQUEEZE_PAGE, struct.pack("<IIHBB", 20, 22, 1, 1, 0), [
        (1, BUCKET, False, struct.pack("<H", 1) + itup(0, 9, 5)),
        (2, 21, False, b""),
        (3, 20, False, b""),
        (4, 22, False, b""),
        (5, BITMAP, False, struct.pack("<I", 33)),
        (6, META, False, struct.pack("<I", 2)),
    ])
    w = redo(BUCKET, bytes(bucket_page(1, 2)), rec)
    assert bytes(bufpage.PageGetItem(w, 1)) == itup(0, 9, 5)
    freed = redo(21, bytes(bucket_page(1, 4, LH_OVERFLOW_PAGE)), rec)
    assert HashPageGetOpaque(freed).hasho_flag == LH_UNUSED_PAGE and bufpage.PageIsEmpty(freed)
    assert HashPageGetOpaque(redo(20, bytes(bucket_page(1, 1, LH_OVERFLOW_PAGE)), rec)).hasho_nextblkno == 22
    assert HashPageGetOpaque(redo(22, bytes(bucket_page(1, 1, LH_OVERFLOW_PAGE)), rec)).hasho_prevblkno == 20
    bm = bytearray(BLCKSZ)
    _hash_initbitmapbuffer(bm, 4096, True)
    bufpage.PageSetLSN(bm, 0x100)
    got = redo(BITMAP, bytes(bm), rec)
    assert not ISSET(got, 33) and ISSET(got, 32) and ISSET(got, 34)
    assert HashPageGetMeta(redo(META, bytes(meta_page()), rec)).hashm_firstfree == 2


def test_vacuum_one_page_and_meta_count() -> None:
    wal = Wal()
    base_meta = meta_page()
    HashPageGetMeta(base_meta).hashm_ntuples = 10.0
    rec = wal.rec(hrm.XLOG_HASH_VACUUM_ONE_PAGE, struct.pack("<IiHHH", 0, 3, 1, 2, 5),
                  [(0, BUCKET, False, b""), (1, META, False, b"")])
    page = redo(BUCKET, bytes(bucket_page(1, 6, LH_BUCKET_PAGE | LH_PAGE_HAS_DEAD_TUPLES)), rec)
    assert bufpage.PageGetMaxOffsetNumber(page) == 3
    assert HashPageGetOpaque(page).hasho_flag == LH_BUCKET_PAGE
    assert HashPageGetMeta(redo(META, bytes(base_meta), rec)).hashm_ntuples == 7.0


def test_update_meta_page_keeps_double_bits() -> None:
    wal = Wal()
    raw = bytes.fromhex("0100000000f8ff7f")  # a NaN with payload, kept bit for bit
    rec = wal.rec(hrm.XLOG_HASH_UPDATE_META_PAGE, raw, [(0, META, False, b"")])
    assert redo(META, bytes(meta_page()), rec)[24 + 8:24 + 16] == raw


# -- malformed input -------------------------------------------------------------------------
def _move(ntups: int, data: bytes) -> DecodedXLogRecord:
    return Wal().rec(hrm.XLOG_HASH_MOVE_PAGE_CONTENTS, struct.pack("<HB", ntups, 1),
                     [(1, BUCKET, False, data), (2, OVFL1, False, struct.pack("<H", 1))])


@pytest.mark.parametrize(("rec", "blk", "what"), [
    (Wal().rec(hrm.XLOG_HASH_INSERT, b"\x01", [(0, BUCKET, False, itup(0, 1, 1))]), BUCKET, "bytes"),
    (_move(1, struct.pack("<H", 1) + struct.pack("<HHHH", 0, 0, 1, 0)), BUCKET, "does not fit"),
    (_move(1, struct.pack("<H", 1) + itup(0, 1, 1)[:12]), BUCKET, "does not fit"),
    (_move(1, struct.pack("<H", 1) + itup(0, 1, 1) * 2), BUCKET, "more tuples"),
    (_move(2, struct.pack("<HH", 1, 2) + itup(0, 1, 1)), BUCKET, "announced"),
    (_move(3, struct.pack("<H", 1)), BUCKET, "offsets need"),
    (Wal().rec(hrm.XLOG_HASH_ADD_OVFL_PAGE, struct.pack("<HB", 4096, 1),
               [(0, 40, True, b""), (1, BUCKET, False, b""), (4, META, False, b"")]), 40, "bucket number"),
    (Wal().rec(hrm.XLOG_HASH_ADD_OVFL_PAGE, struct.pack("<HB", 4096, 1),
               [(0, 40, True, b"\0\0\0\0"), (1, BUCKET, False, b""),
                (2, BITMAP, False, struct.pack("<I", 70000)), (4, META, False, b"\0\0\0\0")]),
     BITMAP, "outside the bitmap"),
    (Wal().rec(hrm.XLOG_HASH_SPLIT_ALLOCATE_PAGE, struct.pack("<IHHB", 3, 2, 2, 2),
               [(0, BUCKET, False, b""), (1, 4, True, b""),
                (2, META, False, struct.pack("<II", HASH_MAX_SPLITPOINTS, 1))]), META, "out of range"),
    (Wal().rec(hrm.XLOG_HASH_SPLIT_ALLOCATE_PAGE, struct.pack("<IHHB", 3, 2, 2, 3),
               [(0, BUCKET, False, b""), (1, 4, True, b""), (2, META, False, b"\0" * 8)]), META, "need 16"),
    (Wal().rec(hrm.XLOG_HASH_VACUUM_ONE_PAGE, struct.pack("<IiH", 0, 4, 1),
               [(0, BUCKET, False, b""), (1, META, False, b"")]), BUCKET, "offsets need"),
    (Wal().rec(hrm.XLOG_HASH_DELETE, bytes([0, 1]),
               [(1, BUCKET, False, struct.pack("<HH", 2, 9))]), BUCKET, "index offsets|invalid index"),
])
def test_malformed_records_raise(rec: DecodedXLogRecord, blk: int, what: str) -> None:
    base = bytes(meta_page()) if blk == META else bytes(bucket_page(1, 3))
    if blk == BITMAP:
        bm = bytearray(BLCKSZ)
        _hash_initbitmapbuffer(bm, 4096, True)
        bufpage.PageSetLSN(bm, 0x100)
        base = bytes(bm)
    with pytest.raises(RedoError, match=what):
        redo(blk, None if rec.blocks[next(i for i, b in rec.blocks.items() if b.blkno == blk)].will_init
             else base, rec)


# -- desc, identify, mask --------------------------------------------------------------------
def test_identify_and_desc() -> None:
    wal = Wal()
    rec = wal.rec(hrm.XLOG_HASH_SQUEEZE_PAGE, struct.pack("<IIHBB", 20, 0xFFFFFFFF, 3, 1, 0),
                  [(1, BUCKET, False, b"")])
    assert PG15.record_type(rec) == "Hash/SQUEEZE_PAGE"
    assert hrm.desc(rec) == "prevblkno 20, nextblkno 4294967295, ntups 3, is_primary T"
    rec = wal.rec(hrm.XLOG_HASH_INIT_META_PAGE, struct.pack("<dIH", 2260.0, 450, 307), [])
    assert hrm.desc(rec) == "num_tuples 2260, fillfactor 307"
    assert "too short" in hrm.desc(wal.rec(hrm.XLOG_HASH_DELETE, b"", []))


def test_hash_mask() -> None:
    page = bucket_page(1, 3, LH_BUCKET_PAGE | LH_PAGE_HAS_DEAD_TUPLES)
    bufpage.ItemIdMarkDead(page, 2)
    page[bufpage.pd_lower(page)] = 0xAB  # stale free space
    hash_mask(page, BUCKET)
    assert bufpage.PageGetLSN(page) == 0
    assert all(bufpage.PageGetItemId(page, i)[1] == bufpage.LP_UNUSED for i in range(1, 4))
    assert HashPageGetOpaque(page).hasho_flag == LH_BUCKET_PAGE
    assert page[bufpage.pd_lower(page)] == 0

    unused = bytearray(BLCKSZ)
    _hash_pageinit(unused)
    unused[100] = 7
    hash_mask(unused, 5)
    assert not any(unused[24:]) and bufpage.pd_lower(unused) == 0

    meta = meta_page()
    hash_mask(meta, 0)  # LP flags of the metapage are left alone
    assert HashPageGetMeta(meta).hashm_magic == HASH_MAGIC

    bad = bytearray(BLCKSZ)
    bufpage.PageInit(bad, BLCKSZ, 0)
    with pytest.raises(MaskError):
        hash_mask(bad, 1)


# -- PostgreSQL 16, 17 and 18 ------------------------------------------------------------------
def test_vacuum_one_page_16_layout() -> None:
    """16's xl_hash_vacuum_one_page: uint16 ntuples, isCatalogRel, offsets from byte 8."""
    main = hrm.XL_HASH_VACUUM_ONE_PAGE_16.pack(0, 3, True) + struct.pack("<HHH", 1, 2, 5)
    assert hrm.XL_HASH_VACUUM_ONE_PAGE_16.size == 8
    base_meta = meta_page()
    HashPageGetMeta(base_meta).hashm_ntuples = 10.0
    for table in (PG16, PG17, PG18):
        rec = Wal().rec(hrm.XLOG_HASH_VACUUM_ONE_PAGE, main, [(0, BUCKET, False, b""), (1, META, False, b"")])
        eng = RedoEngine(table)
        page = eng.reconstruct(tag(BUCKET), bytes(bucket_page(1, 6, LH_BUCKET_PAGE | LH_PAGE_HAS_DEAD_TUPLES)), [rec])
        assert bufpage.PageGetMaxOffsetNumber(page) == 3
        assert HashPageGetOpaque(bytearray(page)).hasho_flag == LH_BUCKET_PAGE
        assert HashPageGetMeta(bytearray(eng.reconstruct(tag(META), bytes(base_meta), [rec]))).hashm_ntuples == 7.0
    # read as 15's int ntuples, isCatalogRel lands in its high bytes: 65539 offsets
    rec = Wal().rec(hrm.XLOG_HASH_VACUUM_ONE_PAGE, main, [(0, BUCKET, False, b""), (1, META, False, b"")])
    with pytest.raises(RedoError, match="deleted offsets"):
        redo(BUCKET, bytes(bucket_page(1, 6)), rec)


def _squeeze_no_tuples(is_prim: int, with_write_block: bool) -> DecodedXLogRecord:
    blocks: list[tuple[int, int, bool] | tuple[int, int, bool, bytes]] = [(0, BUCKET, False)] if not is_prim else []
    if with_write_block:
        blocks.append((1, BUCKET, False))
    blocks += [(2, OVFL1, False), (3, 20, False), (5, BITMAP, False, struct.pack("<I", 33))]
    return Wal().rec(hrm.XLOG_HASH_SQUEEZE_PAGE, struct.pack("<IIHBB", 20, 22, 0, is_prim, 0), blocks)


def test_squeeze_page_17_write_page_untouched_keeps_its_lsn() -> None:
    """17's hash_xlog_squeeze_page: no tuple moved and the write page is not the freed
    page's predecessor, so the primary bucket page is only locked: no PageSetLSN."""
    rec = _squeeze_no_tuples(is_prim=1, with_write_block=True)
    base = bucket_page(1, 2)
    assert RedoEngine(PG17).reconstruct(tag(BUCKET), bytes(base), [rec]) == base
    assert RedoEngine(PG18).reconstruct(tag(BUCKET), bytes(base), [rec]) == base
    got = RedoEngine(PG16).reconstruct(tag(BUCKET), bytes(base), [rec])  # 15/16 stamp it
    assert bufpage.PageGetLSN(bytearray(got)) == rec.end_lsn


def test_squeeze_page_17_without_write_block() -> None:
    """17's _hash_freeovflpage registers no block 1 when nothing is written to it."""
    rec = _squeeze_no_tuples(is_prim=0, with_write_block=False)
    freed = RedoEngine(PG17).reconstruct(tag(OVFL1), bytes(bucket_page(1, 4, LH_OVERFLOW_PAGE)), [rec])
    assert HashPageGetOpaque(bytearray(freed)).hasho_flag == LH_UNUSED_PAGE
    prev = RedoEngine(PG17).reconstruct(tag(20), bytes(bucket_page(1, 1, LH_OVERFLOW_PAGE)), [rec])
    assert HashPageGetOpaque(bytearray(prev)).hasho_nextblkno == 22
    with pytest.raises(RedoError):  # 16's routine reads block 1 unconditionally
        RedoEngine(PG16).reconstruct(tag(OVFL1), bytes(bucket_page(1, 4, LH_OVERFLOW_PAGE)), [rec])


def test_vacuum_one_page_desc_per_major() -> None:
    rec = Wal().rec(hrm.XLOG_HASH_VACUUM_ONE_PAGE, hrm.XL_HASH_VACUUM_ONE_PAGE_16.pack(812, 3, True), [])
    assert PG16.rows[RM_HASH_ID].describe(rec) == "ntuples 3, snapshotConflictHorizon 812"
    assert PG17.rows[RM_HASH_ID].describe(rec) == "ntuples 3, snapshotConflictHorizon 812, isCatalogRel T"
    assert PG18.rows[RM_HASH_ID].describe(rec) == PG17.rows[RM_HASH_ID].describe(rec)
