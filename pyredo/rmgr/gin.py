"""Gin resource manager: redo of its page-modifying records.

Mirrors gin_redo (ginxlog.c), gin_identify and gin_desc (gindesc.c). One
routine per record type, named after its C twin; the page layout and the
posting-list coder live in ``pyredo.page.gin``.

Byte placement follows C: PageAddItem copies only a tuple's own bytes (the
MAXALIGN padding keeps what the page had there), and ginRedoRecompress writes
the new segment sequence from the start of the posting-list area, leaving any
bytes past the new pd_lower as they were. C ``Assert``s are not errors in a
production server, so they are not checked here either; where C would read or
write outside the page (or loop over garbage) on malformed input, a RedoError
is raised instead.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pyredo import BLCKSZ
from pyredo.page import gin as gin_page
from pyredo.page.bufpage import (
    SHORTALIGN,
    FirstOffsetNumber,
    InvalidOffsetNumber,
    PageAddItem,
    PageGetItemId,
    PageGetMaxOffsetNumber,
    PageIndexTupleDelete,
    PageIsEmpty,
    pd_special,
)
from pyredo.page.gin import (
    GIN_COMPRESSED,
    GIN_DATA,
    GIN_DATA_OFF,
    GIN_DELETED,
    GIN_INCOMPLETE_SPLIT,
    GIN_LEAF,
    GIN_LIST,
    ITEM_POINTER,
    POSTING_ITEM,
    GinDataLeafPageGetPostingListSize,
    GinDataPageAddPostingItem,
    GinDataPageGetPostingItemOffset,
    GinDataPageSetDataSize,
    GinFormatError,
    GinInitMetabuffer,
    GinInitPage,
    GinPageDeletePostingItem,
    GinPageGetFlags,
    GinPageGetMaxoff,
    GinPageIsCompressed,
    GinPageSetCompressed,
    GinPageSetDeleted,
    GinPageSetDeleteXid,
    GinPageSetFlags,
    GinPageSetFullRow,
    GinPageSetMaxoff,
    GinPageSetMeta,
    GinPageSetRightlink,
    GinPostingListHeaderSize,
    InvalidBlockNumber,
    PostingItemSetBlockNumber,
    SizeOfGinMetaPageData,
    SizeOfGinPostingList,
    SizeOfItemPointerData,
    ginCompressPostingList,
    ginMergeItemPointers,
    ginPostingListDecode,
    unpack_itemptrs,
)
from pyredo.page.ginappend import ginRecompressAppended
from pyredo.wal.record import XLR_RMGR_INFO_MASK, DecodedXLogRecord
from pyredo.xlogutils import BlkAction, RecordCursor

if TYPE_CHECKING:
    from pyredo.xlogutils import RedoContext, RedoFn

CompressPostingList = Callable[[Sequence[tuple[int, int]], int], tuple[bytes, int]]

# xl_info values (C header names)
XLOG_GIN_CREATE_PTREE = 0x10
XLOG_GIN_INSERT = 0x20
XLOG_GIN_SPLIT = 0x30
XLOG_GIN_VACUUM_PAGE = 0x40
XLOG_GIN_DELETE_PAGE = 0x50
XLOG_GIN_UPDATE_META_PAGE = 0x60
XLOG_GIN_INSERT_LISTPAGE = 0x70
XLOG_GIN_DELETE_LISTPAGE = 0x80
XLOG_GIN_VACUUM_DATA_LEAF_PAGE = 0x90

_NAMES = {
    XLOG_GIN_CREATE_PTREE: "CREATE_PTREE",
    XLOG_GIN_INSERT: "INSERT",
    XLOG_GIN_SPLIT: "SPLIT",
    XLOG_GIN_VACUUM_PAGE: "VACUUM_PAGE",
    XLOG_GIN_DELETE_PAGE: "DELETE_PAGE",
    XLOG_GIN_UPDATE_META_PAGE: "UPDATE_META_PAGE",
    XLOG_GIN_INSERT_LISTPAGE: "INSERT_LISTPAGE",
    XLOG_GIN_DELETE_LISTPAGE: "DELETE_LISTPAGE",
    XLOG_GIN_VACUUM_DATA_LEAF_PAGE: "VACUUM_DATA_LEAF_PAGE",
}


def identify(info: int) -> str | None:
    return _NAMES.get(info & XLR_RMGR_INFO_MASK)

# record types whose redo changes a relation page (coverage counts these)
PAGE_MODIFYING: tuple[int, ...] = (
    XLOG_GIN_CREATE_PTREE,
    XLOG_GIN_INSERT,
    XLOG_GIN_SPLIT,
    XLOG_GIN_VACUUM_PAGE,
    XLOG_GIN_DELETE_PAGE,
    XLOG_GIN_UPDATE_META_PAGE,
    XLOG_GIN_INSERT_LISTPAGE,
    XLOG_GIN_DELETE_LISTPAGE,
    XLOG_GIN_VACUUM_DATA_LEAF_PAGE,
)

# ginxlog.h flags of ginxlogInsert / ginxlogSplit
GIN_INSERT_ISDATA = 0x01
GIN_INSERT_ISLEAF = 0x02
GIN_SPLIT_ROOT = 0x04

# ginxlogSegmentAction types
GIN_SEGMENT_UNMODIFIED = 0
GIN_SEGMENT_DELETE = 1
GIN_SEGMENT_INSERT = 2
GIN_SEGMENT_REPLACE = 3
GIN_SEGMENT_ADDITEMS = 4

INDEX_SIZE_MASK = 0x1FFF

# ginxlog.h structs (little-endian, C padding spelled out)
GINXLOG_CREATE_POSTING_TREE = struct.Struct("<I")  # size; the posting list follows
GINXLOG_INSERT = struct.Struct("<H")  # flags; non-leaf: BlockIdData left, right child
BLOCK_ID_PAIR = struct.Struct("<HHHH")  # (bi_hi, bi_lo) of left and right child
GINXLOG_INSERT_ENTRY = struct.Struct("<HBx")  # offset, isDelete; IndexTupleData at 4
GINXLOG_INSERT_DATA_INTERNAL = struct.Struct("<H10s")  # offset, PostingItem newitem
GINXLOG_RECOMPRESS = struct.Struct("<H")  # nactions; actions follow
GINXLOG_SPLIT = struct.Struct("<IIIIIIH")  # node, rrlink, leftChild, rightChild, flags
GINXLOG_DELETE_PAGE = struct.Struct("<HxxII")  # parentOffset, rightLink, deleteXid
# node (12), pad (4), GinMetaPageData (56), prevTail, newRightlink, ntuples
GINXLOG_UPDATE_META = struct.Struct(f"<12x4x{SizeOfGinMetaPageData}sIIi")
GINXLOG_INSERT_LISTPAGE = struct.Struct("<Ii")  # rightlink, ntuples
GINXLOG_DELETE_LISTPAGES = struct.Struct(f"<{SizeOfGinMetaPageData}si")  # metadata, ndeleted
_U16 = struct.Struct("<H")


def IndexTupleSize(ctx: RedoContext, buf: bytes, off: int, block_id: int) -> int:
    """t_info & INDEX_SIZE_MASK of the tuple at ``off``; the tuple must be all there."""
    if off + 8 > len(buf):
        raise ctx.error(f"index tuple header at {off} runs past {len(buf)} bytes of data",
                        block_id=block_id)
    size = _U16.unpack_from(buf, off + 6)[0] & INDEX_SIZE_MASK
    if off + size > len(buf):
        raise ctx.error(f"index tuple of {size} bytes at {off} runs past {len(buf)} bytes of data",
                        block_id=block_id)
    return int(size)


# -- shared steps ------------------------------------------------------------------
def ginRedoClearIncompleteSplit(ctx: RedoContext, block_id: int) -> None:
    """Mirrors ginRedoClearIncompleteSplit (ginxlog.c): the child whose split
    this record finishes loses its GIN_INCOMPLETE_SPLIT flag."""
    page = ctx.read_buffer_for_redo(block_id)
    if page is not None:
        GinPageSetFlags(page, GinPageGetFlags(page) & ~GIN_INCOMPLETE_SPLIT)


def _add_tuples(ctx: RedoContext, page: bytearray, payload: RecordCursor, ntuples: int,
                off: int, block_id: int) -> None:
    """PageAddItem ``ntuples`` concatenated index tuples at ``off``, ``off + 1`` ..."""
    for _ in range(ntuples):
        tupsize = IndexTupleSize(ctx, payload.data, payload.pos, block_id)
        if PageAddItem(page, payload.take(tupsize, "index tuple"), off & 0xFFFF) == InvalidOffsetNumber:
            raise ctx.error("failed to add item to index page", block_id=block_id)
        off += 1


def _require_restored(ctx: RedoContext, block_id: int, message: str) -> None:
    """XLogReadBufferForRedo must restore the image (blocks of other pages are skipped)."""
    ctx.read_buffer_for_redo(block_id)
    if ctx.actions[block_id] not in (BlkAction.BLK_RESTORED, BlkAction.NOT_TARGET):
        raise ctx.error(message, block_id=block_id)


# -- CREATE_PTREE --------------------------------------------------------------------
def ginRedoCreatePTree(ctx: RedoContext) -> None:
    """Mirrors ginRedoCreatePTree (ginxlog.c): a new posting-tree leaf holding
    the record's compressed posting list."""
    main = ctx.main_data()
    (size,) = main.unpack(GINXLOG_CREATE_POSTING_TREE, "ginxlogCreatePostingTree")
    page = ctx.init_buffer_for_redo(0)
    if page is None:
        return
    GinInitPage(page, GIN_DATA | GIN_LEAF | GIN_COMPRESSED)
    if size > main.remaining:
        raise ctx.error(f"posting list of {size} bytes runs past the record's main data")
    if GIN_DATA_OFF + size > pd_special(page):
        raise ctx.error(f"posting list of {size} bytes does not fit on a data page", block_id=0)
    page[GIN_DATA_OFF : GIN_DATA_OFF + size] = main.take(size, "posting list")
    GinDataPageSetDataSize(page, size)


# -- INSERT ----------------------------------------------------------------------------
def ginRedoInsertEntry(ctx: RedoContext, page: bytearray, rightblkno: int,
                       data: RecordCursor) -> None:
    """Mirrors ginRedoInsertEntry (ginxlog.c): fix the downlink of a split child,
    replace (delete + add) or add the entry tuple at its offset."""
    offset, isDelete = data.unpack(GINXLOG_INSERT_ENTRY, "ginxlogInsertEntry")
    maxoff = PageGetMaxOffsetNumber(page)
    if (rightblkno != InvalidBlockNumber or isDelete) and not FirstOffsetNumber <= offset <= maxoff:
        raise ctx.error(f"entry offset {offset} out of range 1..{maxoff}", block_id=0)
    if rightblkno != InvalidBlockNumber:
        # GinSetDownlink: t_tid = (rightblkno, InvalidOffsetNumber)
        lp_off = PageGetItemId(page, offset)[0]
        if lp_off + SizeOfItemPointerData > BLCKSZ:
            raise ctx.error(f"entry tuple {offset} at {lp_off} runs past the page", block_id=0)
        ITEM_POINTER.pack_into(page, lp_off, rightblkno >> 16, rightblkno & 0xFFFF,
                               InvalidOffsetNumber)
    if isDelete:
        PageIndexTupleDelete(page, offset)
    size = IndexTupleSize(ctx, data.data, data.pos, 0)
    if PageAddItem(page, data.take(size, "entry tuple"), offset) == InvalidOffsetNumber:
        t = ctx.tag
        raise ctx.error(f"failed to add item to index page in {t.spc}/{t.db}/{t.rel}", block_id=0)


def ginRedoRecompress(ctx: RedoContext, page: bytearray, data: RecordCursor, block_id: int, *,
                      ginCompressPostingList: CompressPostingList = ginCompressPostingList,
                      ) -> None:
    """Mirrors ginRedoRecompress (ginxlog.c): apply segment actions to a
    posting-tree leaf.

    C walks the old segments with ``oldseg`` while writing the new sequence at
    ``writePtr``; before the first action that touches an existing segment it
    copies the unprocessed tail to a palloc'd buffer and reads from there on.
    Until then nothing is written, so unmodified leading segments stay in
    place. ``src`` is the page or that tail copy; offsets are into ``src``.
    """
    if not GinPageIsCompressed(page):
        _convert_uncompressed_leaf(ctx, page, block_id, ginCompressPostingList=ginCompressPostingList)

    size = GinDataLeafPageGetPostingListSize(page)
    if size < 0 or GIN_DATA_OFF + size > pd_special(page):
        raise ctx.error(f"GIN leaf posting-list size {size} is inconsistent with the page",
                        block_id=block_id)
    special = pd_special(page)
    src: bytes | bytearray = page
    seg = GIN_DATA_OFF
    segend = GIN_DATA_OFF + size
    tail_copied = False
    write = GIN_DATA_OFF
    segno = 0

    def seg_size(at: int) -> int:
        n = SizeOfGinPostingList(src, at)
        if at + n > segend:
            raise ctx.error(f"posting-list segment at {at} runs past the end of the segments",
                            block_id=block_id)
        return n

    def put(chunk: bytes | bytearray) -> None:
        nonlocal write
        if write + len(chunk) > special:
            raise ctx.error("recompressed posting list overflows the page", block_id=block_id)
        page[write : write + len(chunk)] = chunk
        write += len(chunk)

    (nactions,) = data.unpack(GINXLOG_RECOMPRESS, "ginxlogRecompressDataLeaf")
    for _ in range(nactions):
        a_segno, a_action = data.take(2, "segment action")
        newseg = b""
        if a_action in (GIN_SEGMENT_INSERT, GIN_SEGMENT_REPLACE):
            start = data.pos
            newsegsize = SizeOfGinPostingList(data.data, start)
            newseg = data.take(newsegsize, "new segment")
            data.seek(start + SHORTALIGN(newsegsize))
        items: list[tuple[int, int]] = []
        if a_action == GIN_SEGMENT_ADDITEMS:
            nitems = data.u16("ADDITEMS count")
            items = unpack_itemptrs(data.data, data.pos, nitems)
            data.seek(data.pos + nitems * SizeOfItemPointerData)

        # skip to the segment this action concerns, copying once the tail is copied
        srclen = len(src)
        while segno < a_segno:
            if seg >= segend:
                raise ctx.error(f"segment {a_segno} does not exist", block_id=block_id)
            # seg_size(seg), inline (SHORTALIGN too): this loop walks most of the page on every record
            if seg + GinPostingListHeaderSize > srclen:
                seg_size(seg)  # raises: the header runs past the data
            n = GinPostingListHeaderSize + ((_U16.unpack_from(src, seg + 6)[0] + 1) & ~1)
            if seg + n > segend:
                seg_size(seg)  # raises: the segment runs past the end of the segments
            if tail_copied:
                put(src[seg : seg + n])
            else:
                write += n
            seg += n
            segno += 1

        if a_action == GIN_SEGMENT_ADDITEMS:
            # a REPLACE whose new segment is the old one merged with the new items
            if seg >= segend:
                raise ctx.error(f"ADDITEMS to nonexistent segment {a_segno}", block_id=block_id)
            seg_size(seg)
            # the same bytes without decoding and re-encoding the old items, when
            # the new ones go after them (unless a mutant replaced the coder)
            appended = (ginRecompressAppended(src, seg, items)
                        if ginCompressPostingList is gin_page.ginCompressPostingList else None)
            if appended is not None:
                newseg = appended
            else:
                merged = ginMergeItemPointers(items, ginPostingListDecode(src, seg))
                newseg, _npacked = ginCompressPostingList(merged, BLCKSZ)
            a_action = GIN_SEGMENT_REPLACE

        segptr = seg
        segsize = seg_size(segptr) if segptr != segend else 0  # past the end: INSERTs only
        if not tail_copied and segptr != segend:
            src = bytes(page[segptr:segend])
            segend -= segptr
            segptr = 0
            tail_copied = True

        if a_action == GIN_SEGMENT_DELETE:
            segptr += segsize
            segno += 1
        elif a_action == GIN_SEGMENT_INSERT:
            put(newseg)
        elif a_action == GIN_SEGMENT_REPLACE:
            put(newseg)
            segptr += segsize
            segno += 1
        else:
            raise ctx.error(f"unexpected GIN leaf action: {a_action}", block_id=block_id)
        seg = segptr

    # the rest of the unmodified segments (in place already if nothing was copied)
    if seg != segend and tail_copied:
        put(src[seg:segend])
    GinDataPageSetDataSize(page, write - GIN_DATA_OFF)


def _convert_uncompressed_leaf(ctx: RedoContext, page: bytearray, block_id: int, *,
                               ginCompressPostingList: CompressPostingList = ginCompressPostingList,
                               ) -> None:
    """The pre-9.4 branch of ginRedoRecompress: pack the page's ItemPointer
    array into one compressed segment in place."""
    nuncompressed = GinPageGetMaxoff(page)
    totalsize = 0
    if nuncompressed > 0:
        try:
            uncompressed = unpack_itemptrs(page, GIN_DATA_OFF, nuncompressed)
        except GinFormatError as e:
            raise ctx.error(f"uncompressed GIN leaf: {e.message}", block_id=block_id) from e
        plist, _npacked = ginCompressPostingList(uncompressed, BLCKSZ)
        totalsize = len(plist)
        if GIN_DATA_OFF + totalsize > pd_special(page):
            raise ctx.error("compressed pre-9.4 leaf does not fit on the page", block_id=block_id)
        page[GIN_DATA_OFF : GIN_DATA_OFF + totalsize] = plist
    GinDataPageSetDataSize(page, totalsize)
    GinPageSetCompressed(page)
    GinPageSetMaxoff(page, InvalidOffsetNumber)


def ginRedoInsertData(ctx: RedoContext, page: bytearray, isLeaf: bool, rightblkno: int,
                      data: RecordCursor, *,
                      ginCompressPostingList: CompressPostingList = ginCompressPostingList) -> None:
    """Mirrors ginRedoInsertData (ginxlog.c): recompress a leaf, or on an
    internal page point the split child's item at its new right sibling and
    add the new PostingItem."""
    if isLeaf:
        ginRedoRecompress(ctx, page, data, 0, ginCompressPostingList=ginCompressPostingList)
        return
    offset, newitem = data.unpack(GINXLOG_INSERT_DATA_INTERNAL, "ginxlogInsertDataInternal")
    maxoff = GinPageGetMaxoff(page)
    if offset > maxoff + 1:
        raise ctx.error(f"posting item offset {offset} past maxoff {maxoff}", block_id=0)
    # offset 0 (Invalid) appends; C then updates "item 0", just before the data area
    PostingItemSetBlockNumber(page, GinDataPageGetPostingItemOffset(offset), rightblkno)
    GinDataPageAddPostingItem(page, newitem, offset)


def ginRedoInsert(ctx: RedoContext, *,
                  ginCompressPostingList: CompressPostingList = ginCompressPostingList) -> None:
    """Mirrors ginRedoInsert (ginxlog.c)."""
    main = ctx.main_data()
    (flags,) = main.unpack(GINXLOG_INSERT, "ginxlogInsert")
    isLeaf = bool(flags & GIN_INSERT_ISLEAF)
    rightChildBlkno = InvalidBlockNumber
    if not isLeaf:
        _lhi, _llo, rhi, rlo = main.unpack(BLOCK_ID_PAIR, "child block numbers")
        rightChildBlkno = (rhi << 16) | rlo
        ginRedoClearIncompleteSplit(ctx, 1)
    page = ctx.read_buffer_for_redo(0)
    if page is None:
        return
    payload = ctx.block_data(0)
    if flags & GIN_INSERT_ISDATA:
        ginRedoInsertData(ctx, page, isLeaf, rightChildBlkno, payload,
                          ginCompressPostingList=ginCompressPostingList)
    else:
        ginRedoInsertEntry(ctx, page, rightChildBlkno, payload)


# -- SPLIT / VACUUM ------------------------------------------------------------------------
def ginRedoSplit(ctx: RedoContext) -> None:
    """Mirrors ginRedoSplit (ginxlog.c): the split pages come as full-page
    images; only the child whose split this finishes is changed by redo."""
    fields = ctx.main_struct(GINXLOG_SPLIT, "ginxlogSplit")
    flags = fields[6]
    if not flags & GIN_INSERT_ISLEAF:
        ginRedoClearIncompleteSplit(ctx, 3)
    _require_restored(ctx, 0, "GIN split record did not contain a full-page image of left page")
    _require_restored(ctx, 1, "GIN split record did not contain a full-page image of right page")
    if flags & GIN_SPLIT_ROOT:
        _require_restored(ctx, 2, "GIN split record did not contain a full-page image of root page")


def ginRedoVacuumPage(ctx: RedoContext) -> None:
    """Mirrors ginRedoVacuumPage (ginxlog.c): a full-page image of an entry leaf."""
    _require_restored(ctx, 0, "replay of gin entry tree page vacuum did not restore the page")


def ginRedoVacuumDataLeafPage(ctx: RedoContext) -> None:
    """Mirrors ginRedoVacuumDataLeafPage (ginxlog.c): recompress a posting-tree leaf."""
    page = ctx.read_buffer_for_redo(0)
    if page is not None:
        ginRedoRecompress(ctx, page, ctx.block_data(0), 0)


def ginRedoDeletePage(ctx: RedoContext, *,
                      GinPageSetDeleteXid: Callable[[bytearray, int], None] = GinPageSetDeleteXid,
                      ) -> None:
    """Mirrors ginRedoDeletePage (ginxlog.c): unlink a posting-tree page from its
    left sibling, mark it deleted, and remove its downlink from the parent.
    The deleted page keeps its contents and right link, as in C."""
    parentOffset, rightLink, deleteXid = ctx.main_struct(GINXLOG_DELETE_PAGE, "ginxlogDeletePage")
    lpage = ctx.read_buffer_for_redo(2)
    if lpage is not None:
        GinPageSetRightlink(lpage, rightLink)
    dpage = ctx.read_buffer_for_redo(0)
    if dpage is not None:
        GinPageSetDeleted(dpage)
        GinPageSetDeleteXid(dpage, deleteXid)
    ppage = ctx.read_buffer_for_redo(1)
    if ppage is not None:
        GinPageDeletePostingItem(ppage, parentOffset)


# -- fast-update pending list (ginfast.c) ---------------------------------------------------
def ginRedoUpdateMetapage(ctx: RedoContext, *,
                          GinPageSetMaxoff: Callable[[bytearray, int], None] = GinPageSetMaxoff,
                          ) -> None:
    """Mirrors ginRedoUpdateMetapage (ginxlog.c): rebuild the metapage from the
    record (unconditionally, like an image), then append tuples to the tail
    list page or link a new sublist after it."""
    metadata, prevTail, newRightlink, ntuples = ctx.main_struct(GINXLOG_UPDATE_META, "ginxlogUpdateMeta")
    metapage = ctx.init_buffer_for_redo(0)
    if metapage is not None:
        GinInitMetabuffer(metapage)
        GinPageSetMeta(metapage, metadata)
    if ntuples > 0:
        page = ctx.read_buffer_for_redo(1)
        if page is not None:
            off = FirstOffsetNumber if PageIsEmpty(page) else PageGetMaxOffsetNumber(page) + 1
            _add_tuples(ctx, page, ctx.block_data(1), ntuples, off, 1)
            GinPageSetMaxoff(page, GinPageGetMaxoff(page) + 1)  # one more heap tuple
    elif prevTail != InvalidBlockNumber:
        page = ctx.read_buffer_for_redo(1)
        if page is not None:
            GinPageSetRightlink(page, newRightlink)


def ginRedoInsertListPage(ctx: RedoContext, *,
                          GinPageSetFullRow: Callable[[bytearray], None] = GinPageSetFullRow,
                          ) -> None:
    """Mirrors ginRedoInsertListPage (ginxlog.c): a new pending-list page with
    the record's tuples; the tail of a sublist holds whole rows."""
    rightlink, ntuples = ctx.main_struct(GINXLOG_INSERT_LISTPAGE, "ginxlogInsertListPage")
    page = ctx.init_buffer_for_redo(0)
    if page is None:
        return
    GinInitPage(page, GIN_LIST)
    GinPageSetRightlink(page, rightlink)
    if rightlink == InvalidBlockNumber:
        GinPageSetFullRow(page)
        GinPageSetMaxoff(page, 1)
    else:
        GinPageSetMaxoff(page, 0)
    _add_tuples(ctx, page, ctx.block_data(0), ntuples, FirstOffsetNumber, 0)


def ginRedoDeleteListPages(ctx: RedoContext) -> None:
    """Mirrors ginRedoDeleteListPages (ginxlog.c): rebuild the metapage; the
    pending-list pages removed from the head become empty GIN_DELETED pages."""
    metadata, ndeleted = ctx.main_struct(GINXLOG_DELETE_LISTPAGES, "ginxlogDeleteListPages")
    metapage = ctx.init_buffer_for_redo(0)
    if metapage is not None:
        GinInitMetabuffer(metapage)
        GinPageSetMeta(metapage, metadata)
    for i in range(ndeleted):
        page = ctx.init_buffer_for_redo(i + 1)  # a missing block ends this with an error
        if page is not None:
            GinInitPage(page, GIN_DELETED)


# -- gin_desc (gindesc.c) -------------------------------------------------------------------
def _desc_recompress_leaf(data: bytes) -> str:
    if len(data) < 2:
        return " <malformed>"
    (nactions,) = _U16.unpack_from(data)
    out = [f" {nactions} segments:"]
    pos = 2
    for _ in range(nactions):
        if pos + 2 > len(data):
            out.append(" <truncated>")
            break
        a_segno, a_action = data[pos], data[pos + 1]
        pos += 2
        nitems = 0
        try:
            if a_action in (GIN_SEGMENT_INSERT, GIN_SEGMENT_REPLACE):
                pos += SHORTALIGN(SizeOfGinPostingList(data, pos))
            if a_action == GIN_SEGMENT_ADDITEMS:
                nitems = _U16.unpack_from(data, pos)[0]
                pos += 2 + nitems * SizeOfItemPointerData
        except (GinFormatError, struct.error):
            out.append(" <truncated>")
            break
        if a_action == GIN_SEGMENT_ADDITEMS:
            out.append(f" {a_segno} (add {nitems} items)")
        elif a_action == GIN_SEGMENT_DELETE:
            out.append(f" {a_segno} (delete)")
        elif a_action == GIN_SEGMENT_INSERT:
            out.append(f" {a_segno} (insert)")
        elif a_action == GIN_SEGMENT_REPLACE:
            out.append(f" {a_segno} (replace)")
        else:
            out.append(f" {a_segno} unknown action {a_action} ???")
            break
    return "".join(out)


def _desc_image(rec: DecodedXLogRecord, block_id: int) -> str | None:
    blk = rec.block(block_id)
    if blk is None or not blk.has_image:
        return None
    return " (full page image)" if blk.apply_image else " (full page image, for WAL verification)"


def desc(rec: DecodedXLogRecord) -> str:
    """Mirrors gin_desc (gindesc.c)."""
    info = rec.info & XLR_RMGR_INFO_MASK
    data = rec.main_data
    try:
        if info == XLOG_GIN_INSERT:
            return _desc_insert(rec)
        if info == XLOG_GIN_SPLIT:
            flags = GINXLOG_SPLIT.unpack_from(data)[6]
            return (f"isrootsplit: {'T' if flags & GIN_SPLIT_ROOT else 'F'}"
                    f" isdata: {'T' if flags & GIN_INSERT_ISDATA else 'F'}"
                    f" isleaf: {'T' if flags & GIN_INSERT_ISLEAF else 'F'}")
        if info == XLOG_GIN_VACUUM_DATA_LEAF_PAGE:
            img = _desc_image(rec, 0)
            return img if img is not None else _desc_recompress_leaf(rec.block_data(0))
        if info == XLOG_GIN_DELETE_LISTPAGE:
            return f"ndeleted: {GINXLOG_DELETE_LISTPAGES.unpack_from(data)[1]}"
    except (struct.error, IndexError, ValueError):
        return f"<malformed: {len(data)} bytes of main data>"
    return ""


def _desc_insert(rec: DecodedXLogRecord) -> str:
    data = rec.main_data
    (flags,) = GINXLOG_INSERT.unpack_from(data)
    out = (f"isdata: {'T' if flags & GIN_INSERT_ISDATA else 'F'}"
           f" isleaf: {'T' if flags & GIN_INSERT_ISLEAF else 'F'}")
    if not flags & GIN_INSERT_ISLEAF:
        lhi, llo, rhi, rlo = BLOCK_ID_PAIR.unpack_from(data, GINXLOG_INSERT.size)
        out += f" children: {(lhi << 16) | llo}/{(rhi << 16) | rlo}"
    img = _desc_image(rec, 0)
    if img is not None:
        return out + img
    payload = rec.block_data(0)
    if not flags & GIN_INSERT_ISDATA:
        return out + f" isdelete: {'T' if payload[2] else 'F'}"
    if flags & GIN_INSERT_ISLEAF:
        return out + _desc_recompress_leaf(payload)
    _off, item = GINXLOG_INSERT_DATA_INTERNAL.unpack_from(payload)
    chi, clo, khi, klo, kpos = POSTING_ITEM.unpack(item)
    return out + f" pitem: {(chi << 16) | clo}-{(khi << 16) | klo}/{kpos}"


REDO: dict[int, RedoFn] = {
    info: fn
    for info, fn in (
        (XLOG_GIN_CREATE_PTREE, ginRedoCreatePTree),
        (XLOG_GIN_INSERT, ginRedoInsert),
        (XLOG_GIN_SPLIT, ginRedoSplit),
        (XLOG_GIN_VACUUM_PAGE, ginRedoVacuumPage),
        (XLOG_GIN_VACUUM_DATA_LEAF_PAGE, ginRedoVacuumDataLeafPage),
        (XLOG_GIN_DELETE_PAGE, ginRedoDeletePage),
        (XLOG_GIN_UPDATE_META_PAGE, ginRedoUpdateMetapage),
        (XLOG_GIN_INSERT_LISTPAGE, ginRedoInsertListPage),
        (XLOG_GIN_DELETE_LISTPAGE, ginRedoDeleteListPages),
    )
}

# ginxlog.c, gindesc.c and gin_mask read the same records in 15, 16, 17 and 18 (16 renames
# RelFileNode to RelFileLocator, same 12 bytes); the posting-list code redo calls
# (ginpostinglist.c, GinInitPage/GinInitMetabuffer, GinDataPageAddPostingItem) is unchanged
MAJORS: tuple[int, ...] = (15, 16, 17, 18)
DESC_SINCE: dict[int, Callable[[DecodedXLogRecord], str] | None] = {16: desc}
