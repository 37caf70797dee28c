"""SP-GiST redo routines, page helpers, desc and spg_mask on hand-built records (no PostgreSQL).

The integration tests cover what PostgreSQL 15 emits; these cover the paths it
cannot be made to emit on demand (isBuild records, MOVE_LEAFS replacing a
DEAD tuple, ADD_NODE with the parent on the new page, VACUUM_REDIRECT with a
first placeholder past the end) and the error paths for malformed records.
"""

from __future__ import annotations

import struct

import factories
import pytest
from factories import tag

from oracles.masks.spgist import spg_mask
from pyredo import BLCKSZ
from pyredo.engine import RedoEngine
from pyredo.errors import RedoError
from pyredo.page import bufpage
from pyredo.page.spgist import (
    SGDTSIZE,
    SGLT_GET_NEXTOFFSET,
    SPGIST_DEAD,
    SPGIST_LEAF,
    SPGIST_LIVE,
    SPGIST_MAGIC_NUMBER,
    SPGIST_META,
    SPGIST_NULLS,
    SPGIST_PAGE_ID,
    SPGIST_PLACEHOLDER,
    SPGIST_REDIRECT,
    SpGistInitMetapage,
    SpGistInitPage,
    SpGistPageGetOpaque,
    inner_tuple_header,
    spgFormDeadTuple,
    tupstate,
)
from pyredo.rmgr import RM_SPGIST_ID
from pyredo.rmgr import spgist as S
from pyredo.rmgrlist import PG15, PG16, PG17, PG18, RmgrTable
from pyredo.wal.record import (
    BufferTag,
    DecodedXLogRecord,
)

XID = 731


class Wal(factories.Wal):
    rmid, xid, start = RM_SPGIST_ID, XID, 0x2000000


def leaf(x: int, nextoff: int = 0, heap: tuple[int, int] = (0, 1)) -> bytes:
    """A live leaf tuple holding an 8-byte datum (SGLTHDRSZ + 8 = 24 bytes)."""
    size = 24
    return struct.pack("<IHHHH4xq", SPGIST_LIVE | size << 2, nextoff, heap[0] >> 16,
                       heap[0] & 0xFFFF, heap[1], x)


def inner(nnodes: int, prefix: bytes = b"", links: list[tuple[int, int]] | None = None) -> bytes:
    """A live inner tuple with ``nnodes`` label-less (8-byte) node tuples."""
    links = links or [(0xFFFFFFFF, 0)] * nnodes
    nodes = b"".join(struct.pack("<HHHH", b >> 16, b & 0xFFFF, o, 8 | 0x8000) for b, o in links)
    size = 8 + len(prefix) + len(nodes)
    word = SPGIST_LIVE | nnodes << 3 | len(prefix) << 16
    return struct.pack("<IHxx", word, size) + prefix + nodes


def leaf_page(*items: bytes, flags: int = SPGIST_LEAF) -> bytearray:
    page = bytearray(BLCKSZ)
    SpGistInitPage(page, flags)
    for it in items:
        assert bufpage.PageAddItem(page, it, bufpage.InvalidOffsetNumber) != 0
    return page


def item(page: bytes | bytearray, offnum: int) -> bytes:
    off, _f, length = bufpage.PageGetItemId(page, offnum)
    return bytes(page[off : off + length])


def redo(t: BufferTag, base: bytes | None, *recs: DecodedXLogRecord) -> bytearray:
    return bytearray(RedoEngine().reconstruct(t, base, recs))


# -- layouts ------------------------------------------------------------------------------------
def test_struct_sizes_match_gcc_layout() -> None:
    assert S.SPGXLOG_ADD_LEAF.size == 10
    assert S.SPGXLOG_MOVE_LEAFS.size == 20
    assert S.SPGXLOG_ADD_NODE.size == 20
    assert S.SPGXLOG_SPLIT_TUPLE.size == 6
    assert S.SPGXLOG_PICKSPLIT.size == 28
    assert S.SPGXLOG_VACUUM_LEAF.size == 16
    assert S.SPGXLOG_VACUUM_ROOT.size == 12
    assert S.SPGXLOG_VACUUM_REDIRECT.size == 8


def test_init_page_and_metapage() -> None:
    page = bytearray(b"\xaa" * BLCKSZ)
    SpGistInitPage(page, SPGIST_LEAF | SPGIST_NULLS)
    assert bufpage.pd_special(page) == BLCKSZ - 8
    assert SpGistPageGetOpaque(page) == (SPGIST_LEAF | SPGIST_NULLS, 0, 0, SPGIST_PAGE_ID)
    assert page[24 : BLCKSZ - 8] == bytes(BLCKSZ - 32)  # PageInit zeroes the page
    SpGistInitMetapage(page)
    assert SpGistPageGetOpaque(page).flags == SPGIST_META
    assert struct.unpack_from("<I", page, 24)[0] == SPGIST_MAGIC_NUMBER
    assert struct.unpack_from("<I", page, 28)[0] == 0xFFFFFFFF
    assert bufpage.pd_lower(page) == 24 + 4 + 8 * 8


def test_dead_tuples() -> None:
    r = spgFormDeadTuple(SPGIST_REDIRECT, 0x12345, 7, 99)
    assert len(r) == SGDTSIZE
    assert r == struct.pack("<IHHHHI", SPGIST_REDIRECT | 16 << 2, 0, 0x1, 0x2345, 7, 99)
    p = spgFormDeadTuple(SPGIST_PLACEHOLDER, 0x12345, 7, 99)
    assert p == struct.pack("<IHHHHI", SPGIST_PLACEHOLDER | 16 << 2, 0, 0xFFFF, 0xFFFF, 0, 0)
    assert spgFormDeadTuple(SPGIST_DEAD, 1, 2, 3)[:4] == struct.pack("<I", SPGIST_DEAD | 64)


def test_identify_and_record_type() -> None:
    assert [S.identify(i) for i in S.PAGE_MODIFYING] == [
        "ADD_LEAF", "MOVE_LEAFS", "ADD_NODE", "SPLIT_TUPLE", "PICKSPLIT",
        "VACUUM_LEAF", "VACUUM_ROOT", "VACUUM_REDIRECT"]
    rec = Wal().rec(S.XLOG_SPGIST_VACUUM_ROOT, b"", [])
    assert PG15.record_type(rec) == "SPGist/VACUUM_ROOT"
    assert set(S.REDO) == set(S.PAGE_MODIFYING)


# -- ADD_LEAF -----------------------------------------------------------------------------------
def add_leaf(newPage: int, offLeaf: int, offHead: int, offParent: int = 0, nodeI: int = 0,
             tup: bytes | None = None, nulls: int = 0) -> bytes:
    return S.SPGXLOG_ADD_LEAF.pack(newPage, nulls, offLeaf, offHead, offParent, nodeI) + (
        tup if tup is not None else leaf(5))


def test_add_leaf_new_page_and_chain() -> None:
    w = Wal()
    r1 = w.rec(S.XLOG_SPGIST_ADD_LEAF, add_leaf(1, 1, 0, nulls=1), [(0, 3, True)])
    r2 = w.rec(S.XLOG_SPGIST_ADD_LEAF, add_leaf(0, 2, 1, tup=leaf(6)), [(0, 3, False)])
    page = redo(tag(3), None, r1, r2)
    assert SpGistPageGetOpaque(page).flags == SPGIST_LEAF | SPGIST_NULLS
    assert item(page, 1)[:4] == leaf(5)[:4] and item(page, 2) == leaf(6)
    assert SGLT_GET_NEXTOFFSET(page, bufpage.PageGetItemOffset(page, 1)) == 2
    assert bufpage.PageGetLSN(page) == r2.end_lsn


def test_add_leaf_replaces_placeholder_and_updates_parent() -> None:
    w = Wal()
    ph = spgFormDeadTuple(SPGIST_PLACEHOLDER, 0, 0, 0)
    base = leaf_page(leaf(1), ph)
    struct.pack_into("<H", base, BLCKSZ - 4, 1)  # nPlaceholder = 1
    parent = leaf_page(inner(3), flags=0)
    rec = w.rec(S.XLOG_SPGIST_ADD_LEAF, add_leaf(0, 2, 0, offParent=1, nodeI=2),
                [(0, 7, False), (1, 4, False)])
    page = redo(tag(7), bytes(base), rec)
    assert item(page, 2) == leaf(5) and SpGistPageGetOpaque(page).nPlaceholder == 0
    ppage = redo(tag(4), bytes(parent), rec)
    assert item(ppage, 1) == inner(3, links=[(0xFFFFFFFF, 0)] * 2 + [(7, 2)])


def test_add_leaf_replaces_dead_tuple() -> None:
    dead = spgFormDeadTuple(SPGIST_DEAD, 0xFFFFFFFF, 0, 0)
    base = leaf_page(leaf(1), dead, leaf(3))
    rec = Wal().rec(S.XLOG_SPGIST_ADD_LEAF, add_leaf(0, 2, 2), [(0, 7, False)])
    page = redo(tag(7), bytes(base), rec)
    assert [item(page, i) for i in (1, 2, 3)] == [leaf(1), leaf(5), leaf(3)]


def test_add_leaf_over_live_tuple_is_an_error() -> None:
    rec = Wal().rec(S.XLOG_SPGIST_ADD_LEAF, add_leaf(0, 1, 0), [(0, 7, False)])
    with pytest.raises(RedoError, match="not a placeholder"):
        redo(tag(7), bytes(leaf_page(leaf(1))), rec)


def test_will_init_block_with_applied_image_is_reinitialized_as_in_c() -> None:
    image = bytes(leaf_page(leaf(1), leaf(2)))
    rec = Wal().rec(S.XLOG_SPGIST_ADD_LEAF, add_leaf(1, 1, 0), [(0, 3, True)], images={0: image})
    page = redo(tag(3), None, rec)
    assert bufpage.PageGetMaxOffsetNumber(page) == 1 and item(page, 1) == leaf(5)
    assert bufpage.PageGetLSN(page) == rec.end_lsn


# -- MOVE_LEAFS ---------------------------------------------------------------------------------
def test_move_leafs_replacing_a_dead_tuple() -> None:
    """replaceDead: only the new tuple moves; the DEAD head becomes the redirect."""
    w = Wal()
    dead = spgFormDeadTuple(SPGIST_DEAD, 0xFFFFFFFF, 0, 0)
    src = leaf_page(leaf(1), dead, leaf(3))
    dst = leaf_page(leaf(9))
    par = leaf_page(inner(4), flags=0)
    main = (S.SPGXLOG_MOVE_LEAFS.pack(1, 0, 1, 0, 1, 3, XID, 0)
            + struct.pack("<H", 2) + struct.pack("<H", 2) + leaf(5))
    rec = w.rec(S.XLOG_SPGIST_MOVE_LEAFS, main, [(0, 5, False), (1, 6, False), (2, 4, False)])
    d = redo(tag(6), bytes(dst), rec)
    assert [item(d, 1), item(d, 2)] == [leaf(9), leaf(5)]
    s = redo(tag(5), bytes(src), rec)
    assert item(s, 2) == spgFormDeadTuple(SPGIST_REDIRECT, 6, 2, XID)
    assert SpGistPageGetOpaque(s).nRedirection == 1
    p = redo(tag(4), bytes(par), rec)
    assert item(p, 1) == inner(4, links=[(0xFFFFFFFF, 0)] * 3 + [(6, 2)])


def test_move_leafs_during_build_leaves_placeholders() -> None:
    src = leaf_page(leaf(1), leaf(2), leaf(3))
    main = (S.SPGXLOG_MOVE_LEAFS.pack(2, 1, 0, 0, 1, 0, 0, 1)
            + struct.pack("<HH", 3, 1) + struct.pack("<HHH", 1, 2, 3) + leaf(3) + leaf(1) + leaf(7))
    rec = Wal().rec(S.XLOG_SPGIST_MOVE_LEAFS, main, [(0, 5, False), (1, 6, True), (2, 4, False)])
    s = redo(tag(5), bytes(src), rec)
    ph = spgFormDeadTuple(SPGIST_PLACEHOLDER, 0, 0, 0)
    assert [item(s, i) for i in (1, 2, 3)] == [ph, leaf(2), ph]
    assert SpGistPageGetOpaque(s)[1:3] == (0, 2)
    d = redo(tag(6), None, rec)
    assert [item(d, i) for i in (1, 2, 3)] == [leaf(3), leaf(1), leaf(7)]


# -- ADD_NODE ------------------------------------------------------------------------------------
def add_node(offnum: int, offnumNew: int, newPage: int, parentBlk: int, offParent: int,
             nodeI: int, isBuild: int, tup: bytes) -> bytes:
    return S.SPGXLOG_ADD_NODE.pack(offnum, offnumNew, newPage, parentBlk, offParent, nodeI,
                                   XID, isBuild) + tup


def test_add_node_in_place() -> None:
    base = leaf_page(inner(2), inner(3), flags=0)
    rec = Wal().rec(S.XLOG_SPGIST_ADD_NODE, add_node(1, 0, 0, -1, 0, 0, 0, inner(5)),
                    [(0, 4, False)])
    page = redo(tag(4), bytes(base), rec)
    assert [item(page, 1), item(page, 2)] == [inner(5), inner(3)]


def test_add_node_parent_on_new_page() -> None:
    """parentBlk 1: the parent tuple lives on the page the grown tuple moves to."""
    w = Wal()
    old = leaf_page(inner(2), flags=0)
    new = leaf_page(inner(3), flags=0)
    rec = w.rec(S.XLOG_SPGIST_ADD_NODE, add_node(1, 2, 0, 1, 1, 1, 0, inner(4)),
                [(0, 4, False), (1, 7, False)])
    n = redo(tag(7), bytes(new), rec)
    assert item(n, 2) == inner(4)
    assert item(n, 1) == inner(3, links=[(0xFFFFFFFF, 0), (7, 2), (0xFFFFFFFF, 0)])
    o = redo(tag(4), bytes(old), rec)
    assert item(o, 1) == spgFormDeadTuple(SPGIST_REDIRECT, 7, 2, XID)
    assert SpGistPageGetOpaque(o).nRedirection == 1


def test_add_node_during_build_leaves_a_placeholder() -> None:
    old = leaf_page(inner(2), inner(1), flags=0)
    rec = Wal().rec(S.XLOG_SPGIST_ADD_NODE, add_node(2, 1, 1, 0, 1, 0, 1, inner(2)),
                    [(0, 4, False), (1, 7, True)])
    o = redo(tag(4), bytes(old), rec)
    assert item(o, 2) == spgFormDeadTuple(SPGIST_PLACEHOLDER, 0, 0, 0)
    assert SpGistPageGetOpaque(o)[1:3] == (0, 1)
    assert item(o, 1) == inner(2, links=[(7, 1), (0xFFFFFFFF, 0)])
    n = redo(tag(7), None, rec)
    assert SpGistPageGetOpaque(n).flags == 0 and item(n, 1) == inner(2)


def test_missing_node_is_an_error() -> None:
    base = leaf_page(inner(2), flags=0)
    rec = Wal().rec(S.XLOG_SPGIST_ADD_LEAF, add_leaf(0, 1, 0, offParent=1, nodeI=5),
                    [(0, 9, False), (1, 4, False)])
    with pytest.raises(RedoError, match="failed to find requested node 5"):
        redo(tag(4), bytes(base), rec)


# -- SPLIT_TUPLE / PICKSPLIT --------------------------------------------------------------------
def test_split_tuple_same_page() -> None:
    base = leaf_page(inner(2, prefix=bytes(8)), flags=0)
    main = S.SPGXLOG_SPLIT_TUPLE.pack(1, 2, 0, 1) + inner(1, prefix=b"p" * 8) + inner(2)
    page = redo(tag(4), bytes(base), Wal().rec(S.XLOG_SPGIST_SPLIT_TUPLE, main, [(0, 4, False)]))
    assert [item(page, 1), item(page, 2)] == [inner(1, prefix=b"p" * 8), inner(2)]
    assert inner_tuple_header(page, bufpage.PageGetItemOffset(page, 1)).prefixSize == 8


def test_picksplit_during_build() -> None:
    """isBuild: the source keeps placeholders, no redirect."""
    w = Wal()
    src = leaf_page(leaf(1), leaf(2), leaf(3))
    main = (S.SPGXLOG_PICKSPLIT.pack(0, 2, 2, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1)
            + struct.pack("<HH", 1, 3) + struct.pack("<HH", 1, 1) + bytes([0, 1])
            + inner(2) + leaf(11) + leaf(12))
    rec = w.rec(S.XLOG_SPGIST_PICKSPLIT, main, [(0, 5, False), (1, 6, True), (2, 8, True)])
    s = redo(tag(5), bytes(src), rec)
    ph = spgFormDeadTuple(SPGIST_PLACEHOLDER, 0, 0, 0)
    assert [item(s, i) for i in (1, 2, 3)] == [leaf(11), leaf(2), ph]
    assert SpGistPageGetOpaque(s).nPlaceholder == 1  # two placed, one reused
    assert item(redo(tag(6), None, rec), 1) == leaf(12)
    assert item(redo(tag(8), None, rec), 1) == inner(2)


def test_truncated_picksplit_is_a_redo_error() -> None:
    main = S.SPGXLOG_PICKSPLIT.pack(1, 0, 3, 0, 1, 1, 1, 0, 0, 0, 0, XID, 0) + b"\x01\x00"
    rec = Wal().rec(S.XLOG_SPGIST_PICKSPLIT, main, [(1, 6, True), (2, 1, True)])
    with pytest.raises(RedoError, match="toInsert"):
        redo(tag(6), None, rec)


def test_absurd_tuple_size_is_a_redo_error() -> None:
    main = S.SPGXLOG_ADD_LEAF.pack(1, 0, 1, 0, 0, 0) + struct.pack("<I", 4000 << 2) + bytes(12)
    rec = Wal().rec(S.XLOG_SPGIST_ADD_LEAF, main, [(0, 3, True)])
    with pytest.raises(RedoError, match="leaf tuple needs 4000 bytes"):
        redo(tag(3), None, rec)


# -- VACUUM -----------------------------------------------------------------------------------------
def test_vacuum_leaf_moves_and_rechains() -> None:
    base = leaf_page(leaf(1, 2), leaf(2, 3), leaf(3), leaf(4, 5), leaf(5))
    main = (S.SPGXLOG_VACUUM_LEAF.pack(0, 1, 1, 1, XID, 0)
            + struct.pack("<H", 3) + struct.pack("<HH", 2, 1)  # placeholder 3; move 2 -> 1
            + struct.pack("<HH", 4, 0))  # chain 4 -> end
    page = redo(tag(5), bytes(base), Wal().rec(S.XLOG_SPGIST_VACUUM_LEAF, main, [(0, 5, False)]))
    ph = spgFormDeadTuple(SPGIST_PLACEHOLDER, 0, 0, 0)
    assert item(page, 1) == leaf(2, 3)
    assert item(page, 2) == ph and item(page, 3) == ph
    assert item(page, 4) == leaf(4, 0) and SpGistPageGetOpaque(page).nPlaceholder == 2


def test_vacuum_redirect_first_placeholder_past_the_end() -> None:
    """firstPlaceholder beyond maxoff: C deletes nothing, yet adds the negative count."""
    red = spgFormDeadTuple(SPGIST_REDIRECT, 9, 4, 600)
    base = leaf_page(leaf(1), red, flags=SPGIST_LEAF)
    struct.pack_into("<H", base, BLCKSZ - 6, 1)  # nRedirection
    main = S.SPGXLOG_VACUUM_REDIRECT.pack(1, 4, 600) + struct.pack("<H", 2)
    page = redo(tag(5), bytes(base), Wal().rec(S.XLOG_SPGIST_VACUUM_REDIRECT, main, [(0, 5, False)]))
    assert tupstate(page, bufpage.PageGetItemOffset(page, 2)) == SPGIST_PLACEHOLDER
    assert item(page, 2) == struct.pack("<IHHHHI", SPGIST_PLACEHOLDER | 64, 0, 0xFFFF, 0xFFFF, 0, 600)
    assert SpGistPageGetOpaque(page)[1:3] == (0, 2)  # 1 - (2 - 4 + 1)


def test_vacuum_redirect_trims_trailing_placeholders() -> None:
    ph = spgFormDeadTuple(SPGIST_PLACEHOLDER, 0, 0, 0)
    base = leaf_page(leaf(1), ph, ph, ph)
    struct.pack_into("<H", base, BLCKSZ - 4, 3)
    main = S.SPGXLOG_VACUUM_REDIRECT.pack(0, 2, 0)
    page = redo(tag(5), bytes(base), Wal().rec(S.XLOG_SPGIST_VACUUM_REDIRECT, main, [(0, 5, False)]))
    assert bufpage.PageGetMaxOffsetNumber(page) == 1 and SpGistPageGetOpaque(page).nPlaceholder == 0


@pytest.mark.parametrize("table", [PG16, PG17, PG18])
def test_vacuum_redirect_16_layout(table: RmgrTable) -> None:
    """16 adds isCatalogRel after the horizon: the offsets start at byte 10, not 8."""
    red = spgFormDeadTuple(SPGIST_REDIRECT, 9, 4, 600)
    base = leaf_page(leaf(1), red, flags=SPGIST_LEAF)
    struct.pack_into("<H", base, BLCKSZ - 6, 1)  # nRedirection
    main = S.SPGXLOG_VACUUM_REDIRECT_16.pack(1, 0, 600, True) + struct.pack("<H", 2)
    assert S.SPGXLOG_VACUUM_REDIRECT_16.size == 10
    rec = Wal().rec(S.XLOG_SPGIST_VACUUM_REDIRECT, main, [(0, 5, False)])
    page = bytearray(RedoEngine(table).reconstruct(tag(5), bytes(base), [rec]))
    assert item(page, 2) == struct.pack("<IHHHHI", SPGIST_PLACEHOLDER | 64, 0, 0xFFFF, 0xFFFF, 0, 600)
    assert SpGistPageGetOpaque(page)[1:3] == (0, 1)
    # 15's routine reads isCatalogRel and its padding as the offset: item 1, not 2
    assert item(redo(tag(5), bytes(base), rec), 2) == red


def test_vacuum_root_deletes_in_logged_order() -> None:
    base = leaf_page(*(leaf(i) for i in range(1, 6)))
    main = S.SPGXLOG_VACUUM_ROOT.pack(3, XID, 0) + struct.pack("<HHH", 1, 3, 5)
    page = redo(tag(1), bytes(base), Wal().rec(S.XLOG_SPGIST_VACUUM_ROOT, main, [(0, 1, False)]))
    assert [item(page, i) for i in (1, 2)] == [leaf(2), leaf(4)]
    bad = S.SPGXLOG_VACUUM_ROOT.pack(3, XID, 0) + struct.pack("<HHH", 5, 3, 1)
    with pytest.raises(RedoError, match="incorrect index offsets"):
        redo(tag(1), bytes(base), Wal().rec(S.XLOG_SPGIST_VACUUM_ROOT, bad, [(0, 1, False)]))


# -- desc and mask -------------------------------------------------------------------------------
def test_desc() -> None:
    w = Wal()
    assert S.desc(w.rec(S.XLOG_SPGIST_ADD_LEAF, add_leaf(1, 3, 2, 4, 1, nulls=1), [])) == (
        "off: 3, headoff: 2, parentoff: 4, nodeI: 1 (newpage) (nulls)")
    assert S.desc(w.rec(S.XLOG_SPGIST_ADD_NODE, add_node(1, 2, 0, -1, 0, 0, 0, b""), [])) == (
        "off: 1, newoff: 2, parentBlk: -1, parentoff: 0, nodeI: 0")
    assert S.desc(w.rec(S.XLOG_SPGIST_VACUUM_REDIRECT, S.SPGXLOG_VACUUM_REDIRECT.pack(2, 5, 77),
                        [])) == "ntoplaceholder: 2, firstplaceholder: 5, newestredirectxid: 77"
    assert S.desc(w.rec(S.XLOG_SPGIST_PICKSPLIT, b"\x01", [])).startswith("<malformed")


def test_spg_mask() -> None:
    page = leaf_page(leaf(1))
    bufpage.PageSetLSN(page, 0x1234)
    bufpage.set_pd_flags(page, bufpage.PD_PAGE_FULL)
    lo = bufpage.pd_lower(page)
    page[lo : lo + 8] = b"\xee" * 8
    spg_mask(page, 3)
    assert bufpage.PageGetLSN(page) == 0 and bufpage.pd_flags(page) == 0
    assert page[lo : bufpage.pd_upper(page)] == bytes(bufpage.pd_upper(page) - lo)
    assert item(page, 1) == leaf(1)
    new = bytearray(BLCKSZ)
    spg_mask(new, 0)  # a new page: pd_lower 0, unused space left alone
    assert new == bytes(BLCKSZ)


def test_page_without_spgist_special_space_is_a_redo_error() -> None:
    """A counter update on a page whose special space cannot hold the opaque."""
    base = bytearray(BLCKSZ)
    bufpage.PageInit(base, BLCKSZ, 0)
    assert bufpage.PageAddItem(base, leaf(1), 0) == 1
    main = S.SPGXLOG_VACUUM_REDIRECT.pack(0, 1, 0)
    with pytest.raises(RedoError, match="no room for SpGistPageOpaqueData"):
        redo(tag(5), bytes(base), Wal().rec(S.XLOG_SPGIST_VACUUM_REDIRECT, main, [(0, 5, False)]))


def _seed_cases() -> list[tuple[DecodedXLogRecord, BufferTag, bytes | None]]:
    """Valid records (and the page each applies to) to mutate."""
    w = Wal()
    ph = spgFormDeadTuple(SPGIST_PLACEHOLDER, 0, 0, 0)
    leafp = bytes(leaf_page(leaf(1, 2), leaf(2), ph, leaf(4)))
    innerp = bytes(leaf_page(inner(3), inner(2, prefix=bytes(8)), flags=0))
    return [
        (w.rec(S.XLOG_SPGIST_ADD_LEAF, add_leaf(0, 3, 1, 1, 2), [(0, 5, False), (1, 4, False)]),
         tag(5), leafp),
        (w.rec(S.XLOG_SPGIST_ADD_LEAF, add_leaf(0, 3, 1, 1, 2), [(0, 5, False), (1, 4, False)]),
         tag(4), innerp),
        (w.rec(S.XLOG_SPGIST_MOVE_LEAFS, S.SPGXLOG_MOVE_LEAFS.pack(2, 0, 0, 0, 1, 1, XID, 0)
               + struct.pack("<HH", 1, 2) + struct.pack("<HHH", 3, 5, 6) + leaf(1) * 3,
               [(0, 5, False), (1, 6, False), (2, 4, False)]), tag(5), leafp),
        (w.rec(S.XLOG_SPGIST_ADD_NODE, add_node(2, 3, 0, 0, 1, 1, 0, inner(3)),
               [(0, 4, False), (1, 7, False)]), tag(4), innerp),
        (w.rec(S.XLOG_SPGIST_SPLIT_TUPLE, S.SPGXLOG_SPLIT_TUPLE.pack(2, 3, 0, 1) + inner(1)
               + inner(2), [(0, 4, False)]), tag(4), innerp),
        (w.rec(S.XLOG_SPGIST_PICKSPLIT, S.SPGXLOG_PICKSPLIT.pack(0, 1, 2, 0, 0, 2, 0, 0, 1, 1, 0,
                                                                  XID, 0)
               + struct.pack("<HHH", 1, 3, 5) + bytes([0, 0]) + inner(2) + leaf(7) + leaf(8),
               [(0, 5, False), (2, 4, False)]), tag(5), leafp),
        (w.rec(S.XLOG_SPGIST_VACUUM_LEAF, S.SPGXLOG_VACUUM_LEAF.pack(1, 1, 1, 1, XID, 0)
               + struct.pack("<HHHHHH", 1, 4, 2, 1, 1, 0), [(0, 5, False)]), tag(5), leafp),
        (w.rec(S.XLOG_SPGIST_VACUUM_ROOT, S.SPGXLOG_VACUUM_ROOT.pack(2, XID, 0)
               + struct.pack("<HH", 1, 4), [(0, 5, False)]), tag(5), leafp),
        (w.rec(S.XLOG_SPGIST_VACUUM_REDIRECT, S.SPGXLOG_VACUUM_REDIRECT.pack(1, 3, 0)
               + struct.pack("<H", 3), [(0, 5, False)]), tag(5), leafp),
    ]


def test_mutated_records_fail_with_our_own_errors() -> None:
    """Truncated or scribbled main data never gets as far as an untyped exception
    (the engine's generic "redo routine ... failed" wrapper) and never hangs."""
    import random

    rnd = random.Random(15)
    for rec, t, base in _seed_cases():
        redo(t, base, rec)  # the seed itself is valid
        for _ in range(150):
            data = bytearray(rec.main_data)
            if rnd.random() < 0.3:
                del data[rnd.randrange(len(data)):]
            for _ in range(rnd.randrange(1, 4)):
                if data:
                    data[rnd.randrange(len(data))] = rnd.randrange(256)
            bad = DecodedXLogRecord(rec.lsn, rec.end_lsn, 0, XID, 0, rec.info, RM_SPGIST_ID, 0,
                                    b"", main_data=bytes(data), blocks=rec.blocks)
            try:
                redo(t, base, bad)
            except RedoError as e:
                assert not e.message.startswith("redo routine"), e.message


def test_vacuum_redirect_desc_per_major() -> None:
    rec = Wal().rec(S.XLOG_SPGIST_VACUUM_REDIRECT, S.SPGXLOG_VACUUM_REDIRECT_16.pack(2, 5, 77, False), [])
    assert PG16.rows[RM_SPGIST_ID].describe(rec) == \
        "ntoplaceholder: 2, firstplaceholder: 5, snapshotConflictHorizon: 77"
    assert PG18.rows[RM_SPGIST_ID].describe(rec) == \
        "ntoplaceholder: 2, firstplaceholder: 5, snapshotConflictHorizon: 77, isCatalogRel: F"
