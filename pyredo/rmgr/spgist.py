"""SPGist resource manager: redo of its page-modifying records.

Mirrors spg_redo (spgxlog.c), spg_identify and spg_desc (spgdesc.c), and the
helpers redo calls from spgutils.c / spgdoinsert.c (SpGistInitBuffer,
spgFormDeadTuple, spgUpdateNodeLink, spgPageIndexMultiDelete). One routine per
record type, named after its C twin; the dispatch table is at the bottom.

Byte-exactness notes:

* Tuples arrive unaligned in the main data; C copies only ``size`` bytes of
  each to the page (PageAddItem), so the page keeps its own bytes in any
  MAXALIGN padding, as here.
* Dead tuples come from ``state->deadTupleStorage``, palloc0'd per record and
  fully written by spgFormDeadTuple: they depend only on their arguments.
* Nothing is built on a temp page: every change is made in place by bufpage.c
  operations (pyredo.page.bufpage mirrors the stale bytes they leave behind).
* The uint16 counters nRedirection / nPlaceholder wrap as C's do (production
  builds have no Asserts).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from pyredo import BLCKSZ
from pyredo.page.bufpage import (
    ItemIdOffset,
    MaxIndexTuplesPerPage,
    PageAddItem,
    PageGetItemId,
    PageGetMaxOffsetNumber,
    PageIndexMultiDelete,
    PageIndexTupleDelete,
    SizeOfItemIdData,
    get_u16,
)
from pyredo.page.spgist import (
    DEAD_XID,
    INDEX_SIZE_MASK,
    NODE_T_INFO,
    SGITHDRSZ,
    SGLT_SET_NEXTOFFSET,
    SGNTHDRSZ,
    SPGIST_DEAD,
    SPGIST_LEAF,
    SPGIST_NULLS,
    SPGIST_PLACEHOLDER,
    SPGIST_REDIRECT,
    TUP_POINTER,
    TUP_T_INFO,
    InvalidBlockNumber,
    InvalidOffsetNumber,
    ItemPointerSet,
    ItemPointerSetInvalid,
    SizeOfSpGistInnerTupleData,
    SizeOfSpGistLeafTupleData,
    SpGistInitPage,
    SpGistPageAdjustCounts,
    inner_tuple_header,
    leaf_tuple_size,
    set_tupstate,
    spgFormDeadTuple,
    tupstate,
)
from pyredo.wal.record import XLR_RMGR_INFO_MASK
from pyredo.xlogutils import BlkAction, RecordCursor, RedoContext

if TYPE_CHECKING:
    from pyredo.wal.record import DecodedXLogRecord
    from pyredo.xlogutils import RedoFn

AdjustCounts = Callable[..., None]  # SpGistPageAdjustCounts(page, *, nRedirection, nPlaceholder)
DeleteItem = Callable[[RedoContext, bytearray, int, int], None]  # _delete_item

# xl_info values (C header names)
XLOG_SPGIST_ADD_LEAF = 0x10
XLOG_SPGIST_MOVE_LEAFS = 0x20
XLOG_SPGIST_ADD_NODE = 0x30
XLOG_SPGIST_SPLIT_TUPLE = 0x40
XLOG_SPGIST_PICKSPLIT = 0x50
XLOG_SPGIST_VACUUM_LEAF = 0x60
XLOG_SPGIST_VACUUM_ROOT = 0x70
XLOG_SPGIST_VACUUM_REDIRECT = 0x80

_NAMES = {
    XLOG_SPGIST_ADD_LEAF: "ADD_LEAF",
    XLOG_SPGIST_MOVE_LEAFS: "MOVE_LEAFS",
    XLOG_SPGIST_ADD_NODE: "ADD_NODE",
    XLOG_SPGIST_SPLIT_TUPLE: "SPLIT_TUPLE",
    XLOG_SPGIST_PICKSPLIT: "PICKSPLIT",
    XLOG_SPGIST_VACUUM_LEAF: "VACUUM_LEAF",
    XLOG_SPGIST_VACUUM_ROOT: "VACUUM_ROOT",
    XLOG_SPGIST_VACUUM_REDIRECT: "VACUUM_REDIRECT",
}


def identify(info: int) -> str | None:
    return _NAMES.get(info & XLR_RMGR_INFO_MASK)

# record types whose redo changes a relation page (coverage counts these)
PAGE_MODIFYING: tuple[int, ...] = (
    XLOG_SPGIST_ADD_LEAF,
    XLOG_SPGIST_MOVE_LEAFS,
    XLOG_SPGIST_ADD_NODE,
    XLOG_SPGIST_SPLIT_TUPLE,
    XLOG_SPGIST_PICKSPLIT,
    XLOG_SPGIST_VACUUM_LEAF,
    XLOG_SPGIST_VACUUM_ROOT,
    XLOG_SPGIST_VACUUM_REDIRECT,
)


# -- spgxlog.h structs (little-endian, gcc's x86-64 padding spelled out) --------------
class spgxlogAddLeaf(NamedTuple):
    newPage: int
    storesNulls: int
    offnumLeaf: int
    offnumHeadLeaf: int
    offnumParent: int
    nodeI: int


class spgxlogMoveLeafs(NamedTuple):
    nMoves: int
    newPage: int
    replaceDead: int
    storesNulls: int
    offnumParent: int
    nodeI: int
    myXid: int  # stateSrc.myXid
    isBuild: int  # stateSrc.isBuild


class spgxlogAddNode(NamedTuple):
    offnum: int
    offnumNew: int
    newPage: int
    parentBlk: int  # int8: 0, 1, 2 = which block holds the parent; -1 = not updated
    offnumParent: int
    nodeI: int
    myXid: int
    isBuild: int


class spgxlogSplitTuple(NamedTuple):
    offnumPrefix: int
    offnumPostfix: int
    newPage: int
    postfixBlkSame: int


class spgxlogPickSplit(NamedTuple):
    isRootSplit: int
    nDelete: int
    nInsert: int
    initSrc: int
    initDest: int
    offnumInner: int
    initInner: int
    storesNulls: int
    innerIsParent: int
    offnumParent: int
    nodeI: int
    myXid: int
    isBuild: int


class spgxlogVacuumLeaf(NamedTuple):
    nDead: int
    nPlaceholder: int
    nMove: int
    nChain: int
    myXid: int
    isBuild: int


class spgxlogVacuumRoot(NamedTuple):
    nDelete: int
    myXid: int
    isBuild: int


class spgxlogVacuumRedirect(NamedTuple):
    nToPlaceholder: int
    firstPlaceholder: int
    newestRedirectXid: int


SPGXLOG_ADD_LEAF = struct.Struct("<BBHHHH")  # sizeof(spgxlogAddLeaf) = 10
SPGXLOG_MOVE_LEAFS = struct.Struct("<HBBBxHH2xIB3x")  # SizeOfSpgxlogMoveLeafs = 20
SPGXLOG_ADD_NODE = struct.Struct("<HHBbHH2xIB3x")  # sizeof(spgxlogAddNode) = 20
SPGXLOG_SPLIT_TUPLE = struct.Struct("<HHBB")  # sizeof(spgxlogSplitTuple) = 6
SPGXLOG_PICKSPLIT = struct.Struct("<BxHHBBHBBBxHH2xIB3x")  # SizeOfSpgxlogPickSplit = 28
SPGXLOG_VACUUM_LEAF = struct.Struct("<HHHHIB3x")  # SizeOfSpgxlogVacuumLeaf = 16
SPGXLOG_VACUUM_ROOT = struct.Struct("<H2xIB3x")  # SizeOfSpgxlogVacuumRoot = 12
SPGXLOG_VACUUM_REDIRECT = struct.Struct("<HHI")  # SizeOfSpgxlogVacuumRedirect = 8


# -- reading the main data -------------------------------------------------------------
def _leaf_tuple(md: RecordCursor) -> bytes:
    """An unaligned leaf tuple: C copies its header to read ``size``."""
    md.need(SizeOfSpGistLeafTupleData, "leaf tuple header")
    return md.take(leaf_tuple_size(md.data, md.pos), "leaf tuple")


def _inner_tuple(md: RecordCursor) -> bytes:
    """An unaligned inner tuple: C copies its header to read ``size``."""
    md.need(SizeOfSpGistInnerTupleData, "inner tuple header")
    return md.take(inner_tuple_header(md.data, md.pos).size, "inner tuple")


# -- page helpers redo shares ------------------------------------------------------------
def _init_buffer(ctx: RedoContext, block_id: int, flags: int, *,
                 SpGistInitPage: Callable[[bytearray, int], None] = SpGistInitPage,
                 ) -> bytearray | None:
    """``XLogInitBufferForRedo`` + ``SpGistInitBuffer(buffer, flags)``.

    The C callers go on with ``action = BLK_NEEDS_REDO`` whatever
    XLogInitBufferForRedo returned, so even a restored image would be
    re-initialized and redone (PostgreSQL never logs one: REGBUF_WILL_INIT
    implies REGBUF_NO_IMAGE); we do the same.
    """
    page = ctx.init_buffer_for_redo(block_id)
    if page is None and ctx.actions.get(block_id) is BlkAction.BLK_RESTORED:
        page = ctx.page
        ctx.actions[block_id] = BlkAction.BLK_NEEDS_REDO
    if page is not None:
        SpGistInitPage(page, flags)
    return page


def _adjust_counts(ctx: RedoContext, page: bytearray, block_id: int, *,
                   nRedirection: int = 0, nPlaceholder: int = 0,
                   SpGistPageAdjustCounts: AdjustCounts = SpGistPageAdjustCounts) -> None:
    """``opaque->nRedirection / nPlaceholder += ...`` (uint16, wrapping as in C)."""
    SpGistPageAdjustCounts(page, nRedirection=nRedirection, nPlaceholder=nPlaceholder)


def _leaf_flags(storesNulls: int) -> int:
    return SPGIST_LEAF | (SPGIST_NULLS if storesNulls else 0)


def _item(ctx: RedoContext, page: bytearray, offnum: int, need: int, block_id: int) -> int:
    """``PageGetItem(page, PageGetItemId(page, offnum))`` as a byte offset. C trusts
    the record; we stop with an error where it would read a stale line pointer
    (no such item) or a tuple running past the page."""
    maxoff = PageGetMaxOffsetNumber(page)
    if not 1 <= offnum <= maxoff:
        raise ctx.error(f"offset {offnum} is not an item of a page with {maxoff} items",
                        block_id=block_id)
    off = PageGetItemId(page, offnum)[0]
    if off + need > BLCKSZ:
        raise ctx.error(f"item {offnum} at byte {off} runs past the page", block_id=block_id)
    return off


def _add_item(ctx: RedoContext, page: bytearray, item: bytes, offnum: int, block_id: int) -> None:
    """``PageAddItem(page, item, size, offnum, false, false) != offnum`` → elog(ERROR)."""
    got = PageAddItem(page, item, offnum)
    if got != offnum:
        raise ctx.error(f"failed to add item of size {len(item)} to SPGiST index page",
                        block_id=block_id)


def _delete_item(ctx: RedoContext, page: bytearray, offnum: int, block_id: int) -> None:
    PageIndexTupleDelete(page, offnum)


def addOrReplaceTuple(ctx: RedoContext, page: bytearray, tuple_: bytes, offset: int,
                      block_id: int, *,
                      SpGistPageAdjustCounts: AdjustCounts = SpGistPageAdjustCounts,
                      _delete_item: DeleteItem = _delete_item) -> None:
    """Mirrors addOrReplaceTuple (spgxlog.c): replay of SpGistPageAddNewItem —
    add at ``offset``, replacing the placeholder that is there, if any."""
    if offset <= PageGetMaxOffsetNumber(page):
        dt = _item(ctx, page, offset, 4, block_id)
        if tupstate(page, dt) != SPGIST_PLACEHOLDER:
            raise ctx.error("SPGiST tuple to be replaced is not a placeholder", block_id=block_id)
        _adjust_counts(ctx, page, block_id, nPlaceholder=-1,
                       SpGistPageAdjustCounts=SpGistPageAdjustCounts)
        _delete_item(ctx, page, offset, block_id)
    _add_item(ctx, page, tuple_, offset, block_id)


def spgUpdateNodeLink(ctx: RedoContext, page: bytearray, offnum: int, nodeN: int,
                      blkno: int, offset: int, block_id: int) -> None:
    """Mirrors spgUpdateNodeLink (spgdoinsert.c) on the inner tuple at ``offnum``:
    point its node ``nodeN`` (SGITITERATE order) at (blkno, offset)."""
    tup = _item(ctx, page, offnum, SizeOfSpGistInnerTupleData, block_id)
    hdr = inner_tuple_header(page, tup)
    node = tup + SGITHDRSZ + hdr.prefixSize
    for i in range(hdr.nNodes):
        if node + SGNTHDRSZ > BLCKSZ:
            raise ctx.error(f"node {i} of the inner tuple at offset {offnum} runs past the page",
                            block_id=block_id)
        if i == nodeN:
            ItemPointerSet(page, node, blkno, offset)
            return
        node += get_u16(page, node + NODE_T_INFO) & INDEX_SIZE_MASK
    raise ctx.error(f"failed to find requested node {nodeN} in SPGiST inner tuple",
                    block_id=block_id)


def spgPageIndexMultiDelete(ctx: RedoContext, page: bytearray, itemnos: Sequence[int],
                            firststate: int, reststate: int, blkno: int, offnum: int,
                            myXid: int, block_id: int, *,
                            SpGistPageAdjustCounts: AdjustCounts = SpGistPageAdjustCounts) -> None:
    """Mirrors spgPageIndexMultiDelete (spgdoinsert.c): delete ``itemnos`` and put
    dead tuples in their places — ``firststate`` for ``itemnos[0]``, ``reststate``
    for the others — counting redirects and placeholders in the opaque."""
    if not itemnos:
        return
    if len(itemnos) > MaxIndexTuplesPerPage:
        raise ctx.error(f"{len(itemnos)} items to delete exceed MaxIndexTuplesPerPage",
                        block_id=block_id)
    sortednos = sorted(itemnos)
    PageIndexMultiDelete(page, sortednos)
    firstItem = itemnos[0]
    for itemno in sortednos:
        state = firststate if itemno == firstItem else reststate
        _add_item(ctx, page, spgFormDeadTuple(state, blkno, offnum, myXid), itemno, block_id)
        if state == SPGIST_REDIRECT:
            _adjust_counts(ctx, page, block_id, nRedirection=1,
                           SpGistPageAdjustCounts=SpGistPageAdjustCounts)
        elif state == SPGIST_PLACEHOLDER:
            _adjust_counts(ctx, page, block_id, nPlaceholder=1,
                           SpGistPageAdjustCounts=SpGistPageAdjustCounts)


# -- redo routines ---------------------------------------------------------------------------
def spgRedoAddLeaf(ctx: RedoContext, *,
                   SGLT_SET_NEXTOFFSET: Callable[[bytearray, int, int], None] = SGLT_SET_NEXTOFFSET,
                   ) -> None:
    """Mirrors spgRedoAddLeaf (spgxlog.c)."""
    md = ctx.main_data()
    xl = spgxlogAddLeaf._make(md.unpack(SPGXLOG_ADD_LEAF, "spgxlogAddLeaf"))
    leafTuple = _leaf_tuple(md)

    if xl.newPage:
        page = _init_buffer(ctx, 0, _leaf_flags(xl.storesNulls))
    else:
        page = ctx.read_buffer_for_redo(0)
    if page is not None:
        if xl.offnumLeaf != xl.offnumHeadLeaf:
            # normal cases, tuple was added by SpGistPageAddNewItem
            addOrReplaceTuple(ctx, page, leafTuple, xl.offnumLeaf, 0)
            if xl.offnumHeadLeaf != InvalidOffsetNumber:
                head = _item(ctx, page, xl.offnumHeadLeaf, TUP_T_INFO + 2, 0)
                SGLT_SET_NEXTOFFSET(page, head, xl.offnumLeaf)
        else:
            # replacing a DEAD tuple
            _delete_item(ctx, page, xl.offnumLeaf, 0)
            _add_item(ctx, page, leafTuple, xl.offnumLeaf, 0)

    if xl.offnumParent != InvalidOffsetNumber:
        page = ctx.read_buffer_for_redo(1)
        if page is not None:
            spgUpdateNodeLink(ctx, page, xl.offnumParent, xl.nodeI,
                              ctx.block_tag(0).blk, xl.offnumLeaf, 1)


def spgRedoMoveLeafs(ctx: RedoContext, *,
                     SpGistPageAdjustCounts: AdjustCounts = SpGistPageAdjustCounts) -> None:
    """Mirrors spgRedoMoveLeafs (spgxlog.c)."""
    blknoDst = ctx.block_tag(1).blk
    md = ctx.main_data()
    xl = spgxlogMoveLeafs._make(md.unpack(SPGXLOG_MOVE_LEAFS, "spgxlogMoveLeafs"))
    nInsert = 1 if xl.replaceDead else xl.nMoves + 1
    toDelete = md.u16_array(xl.nMoves, "toDelete")
    toInsert = md.u16_array(nInsert, "toInsert")
    # md now points to the list of leaf tuples

    # insert tuples on the dest page first, so the redirect is valid
    if xl.newPage:
        page = _init_buffer(ctx, 1, _leaf_flags(xl.storesNulls))
    else:
        page = ctx.read_buffer_for_redo(1)
    if page is not None:
        for offnum in toInsert:
            addOrReplaceTuple(ctx, page, _leaf_tuple(md), offnum, 1,
                              SpGistPageAdjustCounts=SpGistPageAdjustCounts)

    # delete tuples from the source page, inserting a redirection pointer
    page = ctx.read_buffer_for_redo(0)
    if page is not None:
        spgPageIndexMultiDelete(ctx, page, toDelete,
                                SPGIST_PLACEHOLDER if xl.isBuild else SPGIST_REDIRECT,
                                SPGIST_PLACEHOLDER, blknoDst, toInsert[-1], xl.myXid, 0,
                                SpGistPageAdjustCounts=SpGistPageAdjustCounts)

    # and update the parent downlink
    page = ctx.read_buffer_for_redo(2)
    if page is not None:
        spgUpdateNodeLink(ctx, page, xl.offnumParent, xl.nodeI, blknoDst, toInsert[-1], 2)


def spgRedoAddNode(ctx: RedoContext, *, _delete_item: DeleteItem = _delete_item) -> None:
    """Mirrors spgRedoAddNode (spgxlog.c)."""
    md = ctx.main_data()
    xl = spgxlogAddNode._make(md.unpack(SPGXLOG_ADD_NODE, "spgxlogAddNode"))
    innerTuple = _inner_tuple(md)

    if not ctx.record.has_block_ref(1):
        # update in place
        page = ctx.read_buffer_for_redo(0)
        if page is not None:
            _delete_item(ctx, page, xl.offnum, 0)
            _add_item(ctx, page, innerTuple, xl.offnum, 0)
        return

    blknoNew = ctx.block_tag(1).blk

    # install the new tuple first, so the redirect is valid
    if xl.newPage:
        page = _init_buffer(ctx, 1, 0)  # AddNode is not used for nulls pages
    else:
        page = ctx.read_buffer_for_redo(1)
    if page is not None:
        addOrReplaceTuple(ctx, page, innerTuple, xl.offnumNew, 1, _delete_item=_delete_item)
        if xl.parentBlk == 1:
            spgUpdateNodeLink(ctx, page, xl.offnumParent, xl.nodeI, blknoNew, xl.offnumNew, 1)

    # delete the old tuple, replacing it with a redirect or placeholder tuple
    page = ctx.read_buffer_for_redo(0)
    if page is not None:
        if xl.isBuild:
            dt = spgFormDeadTuple(SPGIST_PLACEHOLDER, InvalidBlockNumber, InvalidOffsetNumber,
                                  xl.myXid)
        else:
            dt = spgFormDeadTuple(SPGIST_REDIRECT, blknoNew, xl.offnumNew, xl.myXid)
        _delete_item(ctx, page, xl.offnum, 0)
        _add_item(ctx, page, dt, xl.offnum, 0)
        if xl.isBuild:
            _adjust_counts(ctx, page, 0, nPlaceholder=1)
        else:
            _adjust_counts(ctx, page, 0, nRedirection=1)
        if xl.parentBlk == 0:
            spgUpdateNodeLink(ctx, page, xl.offnumParent, xl.nodeI, blknoNew, xl.offnumNew, 0)

    # update the parent downlink, unless done above
    if xl.parentBlk == 2:
        page = ctx.read_buffer_for_redo(2)
        if page is not None:
            spgUpdateNodeLink(ctx, page, xl.offnumParent, xl.nodeI, blknoNew, xl.offnumNew, 2)


def spgRedoSplitTuple(ctx: RedoContext) -> None:
    """Mirrors spgRedoSplitTuple (spgxlog.c)."""
    md = ctx.main_data()
    xl = spgxlogSplitTuple._make(md.unpack(SPGXLOG_SPLIT_TUPLE, "spgxlogSplitTuple"))
    prefixTuple = _inner_tuple(md)
    postfixTuple = _inner_tuple(md)

    # insert the postfix tuple first, to avoid a dangling link
    if not xl.postfixBlkSame:
        if xl.newPage:
            page = _init_buffer(ctx, 1, 0)  # SplitTuple is not used for nulls pages
        else:
            page = ctx.read_buffer_for_redo(1)
        if page is not None:
            addOrReplaceTuple(ctx, page, postfixTuple, xl.offnumPostfix, 1)

    # now handle the original page
    page = ctx.read_buffer_for_redo(0)
    if page is not None:
        _delete_item(ctx, page, xl.offnumPrefix, 0)
        _add_item(ctx, page, prefixTuple, xl.offnumPrefix, 0)
        if xl.postfixBlkSame:
            addOrReplaceTuple(ctx, page, postfixTuple, xl.offnumPostfix, 0)


def spgRedoPickSplit(ctx: RedoContext, *,
                     SpGistInitPage: Callable[[bytearray, int], None] = SpGistInitPage) -> None:
    """Mirrors spgRedoPickSplit (spgxlog.c)."""
    blknoInner = ctx.block_tag(2).blk
    md = ctx.main_data()
    xl = spgxlogPickSplit._make(md.unpack(SPGXLOG_PICKSPLIT, "spgxlogPickSplit"))
    toDelete = md.u16_array(xl.nDelete, "toDelete")
    toInsert = md.u16_array(xl.nInsert, "toInsert")
    leafPageSelect = md.take(xl.nInsert, "leafPageSelect")
    innerTuple = _inner_tuple(md)
    # md now points to the list of leaf tuples

    srcPage: bytearray | None = None
    if xl.isRootSplit:
        pass  # when splitting the root, it is touched only as the new inner page
    elif xl.initSrc:
        srcPage = _init_buffer(ctx, 0, _leaf_flags(xl.storesNulls), SpGistInitPage=SpGistInitPage)
    else:
        srcPage = ctx.read_buffer_for_redo(0)
        if srcPage is not None:
            # the inner tuple's place is known, so the redirect can be right now
            if not xl.isBuild:
                spgPageIndexMultiDelete(ctx, srcPage, toDelete, SPGIST_REDIRECT,
                                        SPGIST_PLACEHOLDER, blknoInner, xl.offnumInner,
                                        xl.myXid, 0)
            else:
                spgPageIndexMultiDelete(ctx, srcPage, toDelete, SPGIST_PLACEHOLDER,
                                        SPGIST_PLACEHOLDER, InvalidBlockNumber,
                                        InvalidOffsetNumber, xl.myXid, 0)

    destPage: bytearray | None = None
    if not ctx.record.has_block_ref(1):
        pass
    elif xl.initDest:
        destPage = _init_buffer(ctx, 1, _leaf_flags(xl.storesNulls), SpGistInitPage=SpGistInitPage)
    else:
        destPage = ctx.read_buffer_for_redo(1)

    # restore leaf tuples to the src and/or dest page (C reads every one)
    for i in range(xl.nInsert):
        leafTuple = _leaf_tuple(md)
        page = destPage if leafPageSelect[i] else srcPage
        if page is not None:
            addOrReplaceTuple(ctx, page, leafTuple, toInsert[i], 1 if leafPageSelect[i] else 0)

    # restore the new inner tuple
    if xl.initInner:
        page = _init_buffer(ctx, 2, SPGIST_NULLS if xl.storesNulls else 0, SpGistInitPage=SpGistInitPage)
    else:
        page = ctx.read_buffer_for_redo(2)
    if page is not None:
        addOrReplaceTuple(ctx, page, innerTuple, xl.offnumInner, 2)
        if xl.innerIsParent:
            spgUpdateNodeLink(ctx, page, xl.offnumParent, xl.nodeI, blknoInner,
                              xl.offnumInner, 2)

    # update the parent downlink, unless done above
    if ctx.record.has_block_ref(3):
        page = ctx.read_buffer_for_redo(3)
        if page is not None:
            spgUpdateNodeLink(ctx, page, xl.offnumParent, xl.nodeI, blknoInner,
                              xl.offnumInner, 3)


def _swap_item_ids(ctx: RedoContext, page: bytearray, a: int, b: int) -> None:
    """Swap two line pointers whole (``tmp = *idSrc; *idSrc = *idDest; *idDest = tmp``)."""
    maxoff = PageGetMaxOffsetNumber(page)
    for off in (a, b):
        if not 1 <= off <= maxoff:
            raise ctx.error(f"offset {off} to move is not an item of a page with {maxoff} items",
                            block_id=0)
    pa, pb = ItemIdOffset(a), ItemIdOffset(b)
    ida = bytes(page[pa : pa + SizeOfItemIdData])
    page[pa : pa + SizeOfItemIdData] = page[pb : pb + SizeOfItemIdData]
    page[pb : pb + SizeOfItemIdData] = ida


def spgRedoVacuumLeaf(ctx: RedoContext) -> None:
    """Mirrors spgRedoVacuumLeaf (spgxlog.c)."""
    md = ctx.main_data()
    xl = spgxlogVacuumLeaf._make(md.unpack(SPGXLOG_VACUUM_LEAF, "spgxlogVacuumLeaf"))
    toDead = md.u16_array(xl.nDead, "toDead")
    toPlaceholder = md.u16_array(xl.nPlaceholder, "toPlaceholder")
    moveSrc = md.u16_array(xl.nMove, "moveSrc")
    moveDest = md.u16_array(xl.nMove, "moveDest")
    chainSrc = md.u16_array(xl.nChain, "chainSrc")
    chainDest = md.u16_array(xl.nChain, "chainDest")

    page = ctx.read_buffer_for_redo(0)
    if page is None:
        return
    spgPageIndexMultiDelete(ctx, page, toDead, SPGIST_DEAD, SPGIST_DEAD,
                            InvalidBlockNumber, InvalidOffsetNumber, xl.myXid, 0)
    spgPageIndexMultiDelete(ctx, page, toPlaceholder, SPGIST_PLACEHOLDER, SPGIST_PLACEHOLDER,
                            InvalidBlockNumber, InvalidOffsetNumber, xl.myXid, 0)
    # see vacuumLeafPage(): swap the line pointers, then placeholder the sources
    for src, dst in zip(moveSrc, moveDest, strict=True):
        _swap_item_ids(ctx, page, src, dst)
    spgPageIndexMultiDelete(ctx, page, moveSrc, SPGIST_PLACEHOLDER, SPGIST_PLACEHOLDER,
                            InvalidBlockNumber, InvalidOffsetNumber, xl.myXid, 0)
    for src, dst in zip(chainSrc, chainDest, strict=True):
        lt = _item(ctx, page, src, TUP_T_INFO + 2, 0)
        SGLT_SET_NEXTOFFSET(page, lt, dst)


def spgRedoVacuumRoot(ctx: RedoContext) -> None:
    """Mirrors spgRedoVacuumRoot (spgxlog.c)."""
    md = ctx.main_data()
    xl = spgxlogVacuumRoot._make(md.unpack(SPGXLOG_VACUUM_ROOT, "spgxlogVacuumRoot"))
    toDelete = md.u16_array(xl.nDelete, "offsets")

    page = ctx.read_buffer_for_redo(0)
    if page is not None:
        # the tuple numbers are in order (passed on as logged, unsorted, as in C)
        PageIndexMultiDelete(page, toDelete)


def spgRedoVacuumRedirect(ctx: RedoContext) -> None:
    """Mirrors spgRedoVacuumRedirect (spgxlog.c) of 15. The Hot Standby conflict it
    resolves first does not change the page."""
    md = ctx.main_data()
    xl = spgxlogVacuumRedirect._make(md.unpack(SPGXLOG_VACUUM_REDIRECT, "spgxlogVacuumRedirect"))
    _vacuum_redirect(ctx, xl, md.u16_array(xl.nToPlaceholder, "offsets"))


# 16: nToPlaceholder, firstPlaceholder, snapshotConflictHorizon, isCatalogRel, then
# offsets[] at offsetof(spgxlogVacuumRedirect, offsets) = 10
SPGXLOG_VACUUM_REDIRECT_16 = struct.Struct("<HHI?x")


def spgRedoVacuumRedirect_16(ctx: RedoContext) -> None:
    """Mirrors spgRedoVacuumRedirect (spgxlog.c) of 16, 17 and 18: the record gains
    isCatalogRel after the conflict horizon, so the offsets start at byte 10."""
    md = ctx.main_data()
    nToPlaceholder, firstPlaceholder, horizon, _catalog = md.unpack(
        SPGXLOG_VACUUM_REDIRECT_16, "spgxlogVacuumRedirect")
    xl = spgxlogVacuumRedirect(nToPlaceholder, firstPlaceholder, horizon)
    _vacuum_redirect(ctx, xl, md.u16_array(nToPlaceholder, "offsets"))


def _vacuum_redirect(ctx: RedoContext, xl: spgxlogVacuumRedirect, itemToPlaceholder: list[int]) -> None:
    """The page change of spgRedoVacuumRedirect, alike in 15-18."""
    page = ctx.read_buffer_for_redo(0)
    if page is None:
        return
    # convert redirect pointers to plain placeholders (the xid stays)
    for offnum in itemToPlaceholder:
        dt = _item(ctx, page, offnum, DEAD_XID, 0)
        set_tupstate(page, dt, SPGIST_PLACEHOLDER)
        ItemPointerSetInvalid(page, dt + TUP_POINTER)
    _adjust_counts(ctx, page, 0, nRedirection=-xl.nToPlaceholder, nPlaceholder=xl.nToPlaceholder)

    # remove placeholder tuples at the end of the page
    if xl.firstPlaceholder != InvalidOffsetNumber:
        maxoff = PageGetMaxOffsetNumber(page)
        n = maxoff - xl.firstPlaceholder + 1  # may be <= 0: C then deletes nothing
        _adjust_counts(ctx, page, 0, nPlaceholder=-n)
        if n > 0:
            PageIndexMultiDelete(page, range(xl.firstPlaceholder, maxoff + 1))


# -- pg_waldump's description (spgdesc.c) ------------------------------------------------------
def desc(rec: DecodedXLogRecord) -> str:
    """Mirrors spg_desc (spgdesc.c)."""
    data = rec.main_data
    op = rec.info & XLR_RMGR_INFO_MASK
    try:
        if op == XLOG_SPGIST_ADD_LEAF:
            a = spgxlogAddLeaf._make(SPGXLOG_ADD_LEAF.unpack_from(data))
            return (f"off: {a.offnumLeaf}, headoff: {a.offnumHeadLeaf}, "
                    f"parentoff: {a.offnumParent}, nodeI: {a.nodeI}"
                    + (" (newpage)" if a.newPage else "") + (" (nulls)" if a.storesNulls else ""))
        if op == XLOG_SPGIST_MOVE_LEAFS:
            m = spgxlogMoveLeafs._make(SPGXLOG_MOVE_LEAFS.unpack_from(data))
            return (f"nmoves: {m.nMoves}, parentoff: {m.offnumParent}, nodeI: {m.nodeI}"
                    + (" (newpage)" if m.newPage else "")
                    + (" (replacedead)" if m.replaceDead else "")
                    + (" (nulls)" if m.storesNulls else ""))
        if op == XLOG_SPGIST_ADD_NODE:
            n = spgxlogAddNode._make(SPGXLOG_ADD_NODE.unpack_from(data))
            return (f"off: {n.offnum}, newoff: {n.offnumNew}, parentBlk: {n.parentBlk}, "
                    f"parentoff: {n.offnumParent}, nodeI: {n.nodeI}"
                    + (" (newpage)" if n.newPage else ""))
        if op == XLOG_SPGIST_SPLIT_TUPLE:
            s = spgxlogSplitTuple._make(SPGXLOG_SPLIT_TUPLE.unpack_from(data))
            return (f"prefixoff: {s.offnumPrefix}, postfixoff: {s.offnumPostfix}"
                    + (" (newpage)" if s.newPage else "") + (" (same)" if s.postfixBlkSame else ""))
        if op == XLOG_SPGIST_PICKSPLIT:
            p = spgxlogPickSplit._make(SPGXLOG_PICKSPLIT.unpack_from(data))
            return (f"ndelete: {p.nDelete}, ninsert: {p.nInsert}, inneroff: {p.offnumInner}, "
                    f"parentoff: {p.offnumParent}, nodeI: {p.nodeI}"
                    + (" (innerIsParent)" if p.innerIsParent else "")
                    + (" (nulls)" if p.storesNulls else "")
                    + (" (isRootSplit)" if p.isRootSplit else ""))
        if op == XLOG_SPGIST_VACUUM_LEAF:
            v = spgxlogVacuumLeaf._make(SPGXLOG_VACUUM_LEAF.unpack_from(data))
            return (f"ndead: {v.nDead}, nplaceholder: {v.nPlaceholder}, "
                    f"nmove: {v.nMove}, nchain: {v.nChain}")
        if op == XLOG_SPGIST_VACUUM_ROOT:
            return f"ndelete: {spgxlogVacuumRoot._make(SPGXLOG_VACUUM_ROOT.unpack_from(data)).nDelete}"
        if op == XLOG_SPGIST_VACUUM_REDIRECT:
            r = spgxlogVacuumRedirect._make(SPGXLOG_VACUUM_REDIRECT.unpack_from(data))
            return (f"ntoplaceholder: {r.nToPlaceholder}, firstplaceholder: {r.firstPlaceholder}, "
                    f"newestredirectxid: {r.newestRedirectXid}")
    except struct.error:
        return f"<malformed: {len(data)} bytes of main data>"
    return ""


REDO: dict[int, RedoFn] = {
    XLOG_SPGIST_ADD_LEAF: spgRedoAddLeaf,
    XLOG_SPGIST_MOVE_LEAFS: spgRedoMoveLeafs,
    XLOG_SPGIST_ADD_NODE: spgRedoAddNode,
    XLOG_SPGIST_SPLIT_TUPLE: spgRedoSplitTuple,
    XLOG_SPGIST_PICKSPLIT: spgRedoPickSplit,
    XLOG_SPGIST_VACUUM_LEAF: spgRedoVacuumLeaf,
    XLOG_SPGIST_VACUUM_ROOT: spgRedoVacuumRoot,
    XLOG_SPGIST_VACUUM_REDIRECT: spgRedoVacuumRedirect,
}

# spgxlog.c of 16 lays spgxlogVacuumRedirect out anew (isCatalogRel); 17 renames
# spgxlogState.myXid to redirectXid (same field, same use by spgFormDeadTuple); spg_mask
# and the helpers redo calls (SpGistInitPage/Buffer, spgUpdateNodeLink) are the same in 15-18
MAJORS: tuple[int, ...] = (15, 16, 17, 18)
REDO_SINCE: dict[int, dict[int, RedoFn | None]] = {
    16: {XLOG_SPGIST_VACUUM_REDIRECT: spgRedoVacuumRedirect_16},
}


def _desc_16(rec: DecodedXLogRecord, is_catalog_rel: bool) -> str:
    """spg_desc of 16 and on: VACUUM_REDIRECT has 16's layout (and from 17 prints
    isCatalogRel); every other record prints as in 15."""
    if rec.info & XLR_RMGR_INFO_MASK != XLOG_SPGIST_VACUUM_REDIRECT:
        return desc(rec)
    if len(rec.main_data) < SPGXLOG_VACUUM_REDIRECT_16.size:
        return f"<malformed: {len(rec.main_data)} bytes of main data>"
    n, first, horizon, catalog = SPGXLOG_VACUUM_REDIRECT_16.unpack_from(rec.main_data)
    out = f"ntoplaceholder: {n}, firstplaceholder: {first}, snapshotConflictHorizon: {horizon}"
    return out + (f", isCatalogRel: {'T' if catalog else 'F'}" if is_catalog_rel else "")


def desc_16(rec: DecodedXLogRecord) -> str:
    """Mirrors spg_desc (spgdesc.c) of 16."""
    return _desc_16(rec, False)


def desc_17(rec: DecodedXLogRecord) -> str:
    """Mirrors spg_desc (spgdesc.c) of 17 and 18."""
    return _desc_16(rec, True)


DESC_SINCE: dict[int, Callable[[DecodedXLogRecord], str] | None] = {16: desc_16, 17: desc_17}
