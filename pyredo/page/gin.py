"""GIN page layout (ginblock.h) and posting-list coding (ginpostinglist.c).

Pages are ``bytearray``; helpers take byte offsets where C takes pointers.
Item pointers are ``(block, offset)`` tuples: ItemPointerData is three
uint16 (bi_hi, bi_lo, ip_posid), and the tuple holds both fields unchanged,
so packing one back gives the same six bytes C copies around.

The posting-list coder mirrors ginpostinglist.c exactly, including its
arithmetic on malformed input (64-bit wraparound of deltas, block numbers
truncated to 32 bits), because ginRedoRecompress re-encodes segments and the
bytes it writes must be the bytes C writes. Reads past the end of a buffer,
where C would read garbage, raise ``GinFormatError`` instead.
"""

from __future__ import annotations

import bisect
import itertools
import struct
from collections.abc import Sequence
from operator import and_, lshift, lt, or_, rshift, sub

from pyredo import BLCKSZ
from pyredo.errors import RedoError
from pyredo.page.bufpage import (
    MAXALIGN,
    SHORTALIGN,
    PageInit,
    SizeOfPageHeaderData,
    pd_lower,
    pd_special,
    set_pd_lower,
)
from pyredo.page.ginvarbyte import VARBYTES as _VARBYTES
from pyredo.page.ginvarbyte import encode_varbyte, running_sums, short_ints

ItemPointer = tuple[int, int]  # (block number, offset number)


class GinFormatError(RedoError):
    """A GIN page or posting list is inconsistent (C would read or write out of bounds)."""


# -- GinPageOpaqueData: rightlink u32, maxoff u16, flags u16 ------------------------
GIN_OPAQUE = struct.Struct("<IHH")
SizeOfGinPageOpaqueData = GIN_OPAQUE.size

GIN_DATA = 1 << 0
GIN_LEAF = 1 << 1
GIN_DELETED = 1 << 2
GIN_META = 1 << 3
GIN_LIST = 1 << 4
GIN_LIST_FULLROW = 1 << 5
GIN_INCOMPLETE_SPLIT = 1 << 6
GIN_COMPRESSED = 1 << 7

GIN_METAPAGE_BLKNO = 0
GIN_ROOT_BLKNO = 1
InvalidBlockNumber = 0xFFFFFFFF
InvalidOffsetNumber = 0

_OPAQUE_RIGHTLINK = 0
_OPAQUE_MAXOFF = 4
_OPAQUE_FLAGS = 6

# -- GinMetaPageData (8-aligned: int64 members) ------------------------------------
# head, tail, tailFreeSize, nPendingPages, nPendingHeapTuples, nTotalPages,
# nEntryPages, nDataPages, (pad), nEntries, ginVersion, (pad)
GIN_META_PAGE_DATA = struct.Struct("<IIIIqIII4xqi4x")
SizeOfGinMetaPageData = GIN_META_PAGE_DATA.size  # 56
GIN_CURRENT_VERSION = 2

# -- ItemPointerData / PostingItem / GinPostingList -----------------------------------
ITEM_POINTER = struct.Struct("<HHH")  # bi_hi, bi_lo, ip_posid
SizeOfItemPointerData = ITEM_POINTER.size  # 6
POSTING_ITEM = struct.Struct("<HHHHH")  # child_blkno (bi_hi, bi_lo), key
SizeOfPostingItem = POSTING_ITEM.size  # 10
_U16 = struct.Struct("<H")
GinPostingListHeaderSize = 8  # offsetof(GinPostingList, bytes): first (6) + nbytes (2)

MaxHeapTuplesPerPageBits = 11
MaxBytesPerInteger = 7
_U64 = (1 << 64) - 1

# Offsets of the data area (PageGetContents + MAXALIGN(sizeof(ItemPointerData)))
_CONTENTS = MAXALIGN(SizeOfPageHeaderData)
GIN_DATA_OFF = _CONTENTS + MAXALIGN(SizeOfItemPointerData)  # GinDataPageGetData: 32
GinDataPageMaxDataSize = (
    BLCKSZ - MAXALIGN(SizeOfPageHeaderData) - MAXALIGN(SizeOfItemPointerData)
    - MAXALIGN(SizeOfGinPageOpaqueData)
)


# -- opaque accessors ---------------------------------------------------------------
def _opaque(page: bytes | bytearray | memoryview) -> int:
    """Offset of GinPageGetOpaque(page); checked, because C would read off the page."""
    sp = pd_special(page)
    if sp + SizeOfGinPageOpaqueData > BLCKSZ:
        raise GinFormatError(f"GIN special space at {sp} runs past the page")
    return sp


def GinPageGetRightlink(page: bytes | bytearray | memoryview) -> int:
    return int(struct.unpack_from("<I", page, _opaque(page) + _OPAQUE_RIGHTLINK)[0])


def GinPageSetRightlink(page: bytearray, blkno: int) -> None:
    struct.pack_into("<I", page, _opaque(page) + _OPAQUE_RIGHTLINK, blkno & 0xFFFFFFFF)


def GinPageGetMaxoff(page: bytes | bytearray | memoryview) -> int:
    return int(_U16.unpack_from(page, _opaque(page) + _OPAQUE_MAXOFF)[0])


def GinPageSetMaxoff(page: bytearray, maxoff: int) -> None:
    _U16.pack_into(page, _opaque(page) + _OPAQUE_MAXOFF, maxoff & 0xFFFF)


def GinPageGetFlags(page: bytes | bytearray | memoryview) -> int:
    return int(_U16.unpack_from(page, _opaque(page) + _OPAQUE_FLAGS)[0])


def GinPageSetFlags(page: bytearray, flags: int) -> None:
    _U16.pack_into(page, _opaque(page) + _OPAQUE_FLAGS, flags & 0xFFFF)


def GinPageIsLeaf(page: bytes | bytearray | memoryview) -> bool:
    return bool(GinPageGetFlags(page) & GIN_LEAF)


def GinPageIsData(page: bytes | bytearray | memoryview) -> bool:
    return bool(GinPageGetFlags(page) & GIN_DATA)


def GinPageIsCompressed(page: bytes | bytearray | memoryview) -> bool:
    return bool(GinPageGetFlags(page) & GIN_COMPRESSED)


def GinPageIsDeleted(page: bytes | bytearray | memoryview) -> bool:
    return bool(GinPageGetFlags(page) & GIN_DELETED)


def GinPageSetCompressed(page: bytearray) -> None:
    GinPageSetFlags(page, GinPageGetFlags(page) | GIN_COMPRESSED)


def GinPageSetDeleted(page: bytearray) -> None:
    GinPageSetFlags(page, GinPageGetFlags(page) | GIN_DELETED)


def GinPageSetFullRow(page: bytearray) -> None:
    GinPageSetFlags(page, GinPageGetFlags(page) | GIN_LIST_FULLROW)


def GinPageSetDeleteXid(page: bytearray, xid: int) -> None:
    """The delete xid lives in pd_prune_xid."""
    struct.pack_into("<I", page, 20, xid & 0xFFFFFFFF)


# -- page init (ginutil.c) -------------------------------------------------------------
def GinInitPage(page: bytearray, f: int, pageSize: int = BLCKSZ) -> None:
    """Mirrors GinInitPage (ginutil.c): PageInit with GIN opaque, flags, no right link."""
    PageInit(page, pageSize, SizeOfGinPageOpaqueData)
    GinPageSetFlags(page, f)
    GinPageSetRightlink(page, InvalidBlockNumber)


def GinInitMetabuffer(page: bytearray) -> None:
    """Mirrors GinInitMetabuffer (ginutil.c): an empty metapage, pd_lower past the metadata.

    The padding inside GinMetaPageData stays zero from PageInit, as C's
    member-by-member assignment leaves it.
    """
    GinInitPage(page, GIN_META)
    GIN_META_PAGE_DATA.pack_into(
        page, _CONTENTS, InvalidBlockNumber, InvalidBlockNumber, 0, 0, 0, 0, 0, 0, 0,
        GIN_CURRENT_VERSION,
    )
    set_pd_lower(page, _CONTENTS + SizeOfGinMetaPageData)


def GinPageSetMeta(page: bytearray, metadata: bytes) -> None:
    """memcpy(GinPageGetMeta(page), metadata, sizeof(GinMetaPageData))."""
    page[_CONTENTS : _CONTENTS + SizeOfGinMetaPageData] = metadata[:SizeOfGinMetaPageData]


# -- item pointers -------------------------------------------------------------------
def BlockIdGetBlockNumber(bi_hi: int, bi_lo: int) -> int:
    return (bi_hi << 16) | bi_lo


def unpack_itemptr(buf: bytes | bytearray | memoryview, off: int) -> ItemPointer:
    hi, lo, posid = ITEM_POINTER.unpack_from(buf, off)
    return (hi << 16) | lo, posid


def pack_itemptr(ip: ItemPointer) -> bytes:
    blk, posid = ip
    return ITEM_POINTER.pack((blk >> 16) & 0xFFFF, blk & 0xFFFF, posid & 0xFFFF)


def unpack_itemptrs(buf: bytes | bytearray | memoryview, off: int, n: int) -> list[ItemPointer]:
    if n < 0 or off + n * SizeOfItemPointerData > len(buf):
        raise GinFormatError(f"{n} item pointers at {off} run past {len(buf)} bytes")
    return [((hi << 16) | lo, posid)
            for hi, lo, posid in ITEM_POINTER.iter_unpack(buf[off : off + n * SizeOfItemPointerData])]


def ginCompareItemPointers(a: ItemPointer, b: ItemPointer) -> int:
    ia = (a[0] << 32) | a[1]
    ib = (b[0] << 32) | b[1]
    return 0 if ia == ib else (1 if ia > ib else -1)


def itemptr_to_uint64(ip: ItemPointer) -> int:
    """43-bit integer: block number above MaxHeapTuplesPerPageBits bits of offset."""
    return ((ip[0] << MaxHeapTuplesPerPageBits) | ip[1]) & _U64


def uint64_to_itemptr(val: int) -> ItemPointer:
    # BlockIdSet stores the block number in two uint16: the value is cut to 32 bits
    return (val >> MaxHeapTuplesPerPageBits) & 0xFFFFFFFF, val & ((1 << MaxHeapTuplesPerPageBits) - 1)


# -- varbyte coding --------------------------------------------------------------------
def decode_varbyte(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """(value, next position). The 7th byte contributes all its bits, as in C."""
    val = 0
    shift = 0
    for i in range(MaxBytesPerInteger):
        if pos >= len(buf):
            raise GinFormatError("varbyte integer runs past the end of its buffer")
        c = buf[pos]
        pos += 1
        if i == MaxBytesPerInteger - 1:
            val |= c << 42
            break
        val |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            break
    return val, pos


# -- GinPostingList ----------------------------------------------------------------------
def SizeOfGinPostingList(buf: bytes | bytearray | memoryview, off: int) -> int:
    """offsetof(GinPostingList, bytes) + SHORTALIGN(nbytes) of the segment at ``off``."""
    if off + GinPostingListHeaderSize > len(buf):
        raise GinFormatError(f"posting list header at {off} runs past {len(buf)} bytes")
    return GinPostingListHeaderSize + SHORTALIGN(_U16.unpack_from(buf, off + 6)[0])


def ginCompressPostingList(
    ipd: Sequence[ItemPointer], maxsize: int = BLCKSZ
) -> tuple[bytes, int]:
    """Mirrors ginCompressPostingList: (segment bytes, number of items packed).

    The segment is SizeOfGinPostingList bytes, its odd padding byte zeroed,
    exactly what C's palloc'd result holds in the bytes a caller copies.

    The item-by-item loop of C runs here only when the items do not all fit
    or are not ascending; otherwise the deltas are computed and encoded a
    list at a time (one-byte deltas as one ``bytes``), which gives the same
    bytes: every item fits, so C's loop writes each delta's varbyte in turn.
    """
    if not ipd:
        raise GinFormatError("cannot compress an empty posting list")
    maxsize &= ~1  # SHORTALIGN_DOWN
    maxbytes = maxsize - GinPostingListHeaderSize
    body = encode_ascending(ipd, maxbytes)
    if body is None:
        return _compress_item_by_item(ipd, maxbytes)
    nbytes = len(body)
    return pack_itemptr(ipd[0]) + _U16.pack(nbytes) + body + bytes(nbytes & 1), len(ipd)


def encode_ascending(ipd: Sequence[ItemPointer], maxbytes: int) -> bytes | None:
    """The varbyte deltas of all of ``ipd`` when they are ascending (no 64-bit
    wraparound) and fit in ``maxbytes``; None otherwise."""
    if len(ipd) == 2:  # one delta (an item appended to a segment): the same, without the list machinery
        (b0, p0), (b1, p1) = ipd
        v0, v1 = (b0 << MaxHeapTuplesPerPageBits) | p0, (b1 << MaxHeapTuplesPerPageBits) | p1
        d = v1 - v0
        if max(v0, v1) > _U64 or d < 0:
            return None
        one = bytes((d,)) if d <= 0x7F else _VARBYTES[d]
        return one if len(one) <= maxbytes else None
    blks, posids = zip(*ipd, strict=True)
    vals = list(map(or_, map(lshift, blks, itertools.repeat(MaxHeapTuplesPerPageBits)), posids))
    deltas = list(map(sub, itertools.islice(vals, 1, None), vals))
    if max(vals) > _U64 or (deltas and min(deltas) < 0):
        return None
    body = bytes(deltas) if not deltas or max(deltas) <= 0x7F else b"".join(map(_VARBYTES.__getitem__, deltas))
    return body if len(body) <= maxbytes else None




def _compress_item_by_item(ipd: Sequence[ItemPointer], maxbytes: int) -> tuple[bytes, int]:
    """C's loop of ginCompressPostingList, item by item: stops when an item does
    not fit, and wraps descending deltas around 2^64 as C's uint64 does."""
    out = bytearray()
    prev = itemptr_to_uint64(ipd[0])
    totalpacked = 1
    for blk, posid in itertools.islice(ipd, 1, None):
        val = ((blk << MaxHeapTuplesPerPageBits) | posid) & _U64
        delta = (val - prev) & _U64
        room = maxbytes - len(out)
        enc = encode_varbyte(delta)
        # with fewer than MaxBytesPerInteger bytes left, C checks the item fits
        if room < MaxBytesPerInteger and len(enc) > room:
            break
        out += enc
        prev = val
        totalpacked += 1
    nbytes = len(out)
    if nbytes & 1:
        out.append(0)
    return pack_itemptr(ipd[0]) + _U16.pack(nbytes) + bytes(out), totalpacked


def ginPostingListDecodeAllSegments(
    buf: bytes | bytearray | memoryview, off: int, length: int
) -> list[ItemPointer]:
    """Mirrors ginPostingListDecodeAllSegments: the items of the segments in
    ``buf[off:off+length]``. Like C, a segment that straddles the end is
    decoded whole, and a varbyte integer may run on past its segment's
    ``nbytes``; reading past ``buf`` itself raises GinFormatError."""
    end = off + length
    result: list[ItemPointer] = []
    seg = off
    while seg < end:
        size = SizeOfGinPostingList(buf, seg)
        first = unpack_itemptr(buf, seg)
        result.append(first)
        start = seg + GinPostingListHeaderSize
        vals = decode_deltas(buf, start, start + _U16.unpack_from(buf, seg + 6)[0],
                              itemptr_to_uint64(first))
        if vals and vals[-1] > _U64:  # wrapped around: C's uint64 arithmetic, item by item
            vals = [v & _U64 for v in vals]
        # uint64_to_itemptr of each value, a list at a time
        blks = map(rshift, vals, itertools.repeat(MaxHeapTuplesPerPageBits))
        if vals and vals[-1] >> (MaxHeapTuplesPerPageBits + 32):
            blks = map(and_, blks, itertools.repeat(0xFFFFFFFF))
        result.extend(zip(blks, map(and_, vals, itertools.repeat(0x7FF)), strict=True))
        seg += size
    return result


# bytes with the varbyte continuation bit -> 1, others -> 0 (bytes.translate table)
CONTINUED_BYTE = bytes(int(b > 0x7F) for b in range(256))
FINAL_BYTE = bytes(int(b <= 0x7F) for b in range(256))  # 1 for the last byte of an integer


def decode_deltas(buf: bytes | bytearray | memoryview, pos: int, endptr: int, val: int) -> list[int]:
    """The running sums (not yet wrapped to 64 bits: the caller does) of the
    varbyte integers that start in ``buf[pos:endptr]``. Runs of one-byte
    integers are summed a run at a time; a longer integer may run past
    ``endptr``, as in C."""
    if endptr > len(buf):  # C would read past the buffer
        raise GinFormatError("varbyte integer runs past the end of its buffer")
    vals: list[int] = []
    data = bytes(buf[pos:endptr])
    continued = data.translate(CONTINUED_BYTE)
    if pos <= endptr and short_ints(continued):  # a list at a time
        return running_sums(data, continued, val)
    base = pos
    while pos < endptr:
        multi = continued.find(1, pos - base)
        run_end = endptr if multi < 0 else base + multi
        if run_end > pos:
            sums = itertools.accumulate(buf[pos:run_end], initial=val)
            next(sums)
            vals.extend(sums)
            val = vals[-1]
            pos = run_end
        if pos < endptr:
            delta, pos = decode_varbyte(buf, pos)
            val += delta
            vals.append(val)
    return vals


def ginPostingListDecode(buf: bytes | bytearray | memoryview, off: int) -> list[ItemPointer]:
    """Mirrors ginPostingListDecode: the items of the one segment at ``off``."""
    return ginPostingListDecodeAllSegments(buf, off, SizeOfGinPostingList(buf, off))


def ginMergeItemPointers(a: Sequence[ItemPointer], b: Sequence[ItemPointer]) -> list[ItemPointer]:
    """Mirrors ginMergeItemPointers: merge two sorted arrays, keeping one copy of duplicates
    (the copy from ``b``, as C does, though both are equal)."""
    na, nb = len(a), len(b)
    if na == 0 or nb == 0 or ginCompareItemPointers(a[-1], b[0]) < 0:
        return [*a, *b]
    if ginCompareItemPointers(b[-1], a[0]) < 0:
        return [*b, *a]
    if all(map(lt, a, itertools.islice(a, 1, None))) and all(map(lt, b, itertools.islice(b, 1, None))):
        return _union_ascending(a, b) if len(a) <= len(b) else _union_ascending(b, a)
    dst: list[ItemPointer] = []
    i = j = 0
    while i < na and j < nb:
        cmp = ginCompareItemPointers(a[i], b[j])
        if cmp > 0:
            dst.append(b[j])
            j += 1
        elif cmp == 0:
            dst.append(b[j])
            i += 1
            j += 1
        else:
            dst.append(a[i])
            i += 1
    dst.extend(a[i:])
    dst.extend(b[j:])
    return dst


def _union_ascending(small: Sequence[ItemPointer], big: Sequence[ItemPointer]) -> list[ItemPointer]:
    """C's merge of two strictly ascending lists: their union in order (tuples
    order as ginCompareItemPointers does). Each item of ``small`` is bisected
    into ``big``, whose runs in between are copied a slice at a time."""
    out: list[ItemPointer] = []
    j = 0
    for ip in small:
        k = bisect.bisect_left(big, ip, j)
        out.extend(big[j:k])
        out.append(ip)
        j = k + 1 if k < len(big) and big[k] == ip else k  # one copy of an item in both
    out.extend(big[j:])
    return out


# -- data pages ----------------------------------------------------------------------------
def GinDataLeafPageGetPostingListSize(page: bytes | bytearray | memoryview) -> int:
    """pd_lower minus the header and right bound; negative on a corrupt pd_lower."""
    return pd_lower(page) - GIN_DATA_OFF


def GinDataPageSetDataSize(page: bytearray, size: int) -> None:
    if size < 0 or size > GinDataPageMaxDataSize:
        raise GinFormatError(f"GIN data page size {size} out of range")
    set_pd_lower(page, size + GIN_DATA_OFF)


def GinDataPageGetPostingItemOffset(i: int) -> int:
    """Offset of PostingItem ``i`` (1-based) of a non-leaf data page."""
    return GIN_DATA_OFF + (i - 1) * SizeOfPostingItem


def PostingItemSetBlockNumber(page: bytearray, off: int, blkno: int) -> None:
    struct.pack_into("<HH", page, off, (blkno >> 16) & 0xFFFF, blkno & 0xFFFF)


def GinDataPageAddPostingItem(page: bytearray, item: bytes, offset: int) -> None:
    """Mirrors GinDataPageAddPostingItem (gindatapage.c): insert at ``offset``
    (append when Invalid), shifting the items after it; pd_lower follows."""
    maxoff = GinPageGetMaxoff(page)
    if offset == InvalidOffsetNumber:
        ptr = GinDataPageGetPostingItemOffset(maxoff + 1)
    else:
        if offset > maxoff + 1:
            raise GinFormatError(f"posting item offset {offset} past maxoff {maxoff}")
        ptr = GinDataPageGetPostingItemOffset(offset)
        if offset != maxoff + 1:
            n = (maxoff - offset + 1) * SizeOfPostingItem
            _check_span(page, ptr + SizeOfPostingItem, n)
            page[ptr + SizeOfPostingItem : ptr + SizeOfPostingItem + n] = page[ptr : ptr + n]
    _check_span(page, ptr, SizeOfPostingItem)
    page[ptr : ptr + SizeOfPostingItem] = item[:SizeOfPostingItem]
    maxoff += 1
    GinPageSetMaxoff(page, maxoff)
    GinDataPageSetDataSize(page, maxoff * SizeOfPostingItem)


def GinPageDeletePostingItem(page: bytearray, offset: int) -> None:
    """Mirrors GinPageDeletePostingItem (gindatapage.c)."""
    maxoff = GinPageGetMaxoff(page)
    if offset < 1 or offset > maxoff:
        raise GinFormatError(f"posting item offset {offset} out of range 1..{maxoff}")
    if offset != maxoff:
        dst = GinDataPageGetPostingItemOffset(offset)
        n = SizeOfPostingItem * (maxoff - offset)
        _check_span(page, dst + SizeOfPostingItem, n)
        page[dst : dst + n] = page[dst + SizeOfPostingItem : dst + SizeOfPostingItem + n]
    maxoff -= 1
    GinPageSetMaxoff(page, maxoff)
    GinDataPageSetDataSize(page, maxoff * SizeOfPostingItem)


def _check_span(page: bytes | bytearray, off: int, n: int) -> None:
    if off < 0 or off + n > pd_special(page):
        raise GinFormatError(f"GIN data page access {off}..{off + n} runs into the special space")
