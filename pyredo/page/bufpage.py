"""Page layout and the page operations redo uses (bufpage.h / bufpage.c).

Pages are ``bytearray`` of BLCKSZ bytes, changed in place. Every operation
mirrors its C counterpart byte for byte, including the bytes it leaves
behind: ``memmove`` does not clear its source, so stale tuple and line
pointer bytes stay where the C code leaves them. Names are the C names, so a
PostgreSQL hacker can read them side by side.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from pyredo import BLCKSZ
from pyredo.errors import RedoError

# -- bufpage.h ------------------------------------------------------------------
SizeOfPageHeaderData = 24
PG_PAGE_LAYOUT_VERSION = 4
PD_HAS_FREE_LINES = 0x0001
PD_PAGE_FULL = 0x0002
PD_ALL_VISIBLE = 0x0004
PD_VALID_FLAG_BITS = 0x0007
PAI_OVERWRITE = 1 << 0
PAI_IS_HEAP = 1 << 1

# -- itemid.h --------------------------------------------------------------------
LP_UNUSED = 0
LP_NORMAL = 1
LP_REDIRECT = 2
LP_DEAD = 3
SizeOfItemIdData = 4

# -- off.h / htup_details.h / itup.h --------------------------------------------
InvalidOffsetNumber = 0
FirstOffsetNumber = 1
MAXIMUM_ALIGNOF = 8
MaxOffsetNumber = BLCKSZ // SizeOfItemIdData


def OffsetNumberIsValid(offsetNumber: int) -> bool:
    """off.h: Invalid (0) and numbers past MaxOffsetNumber are not valid offsets."""
    return InvalidOffsetNumber < offsetNumber <= MaxOffsetNumber


MaxHeapTuplesPerPage = (BLCKSZ - SizeOfPageHeaderData) // (((23 + 7) & ~7) + SizeOfItemIdData)
MaxIndexTuplesPerPage = (BLCKSZ - SizeOfPageHeaderData) // (((8 + 7) & ~7) + SizeOfItemIdData)

# pd_lsn (xlogid, xrecoff), pd_checksum, pd_flags, pd_lower, pd_upper,
# pd_special, pd_pagesize_version, pd_prune_xid
PAGE_HEADER = struct.Struct("<IIHHHHHHI")
_LSN = struct.Struct("<II")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_ITEMID = struct.Struct("<I")
_LOWER_UPPER_SPECIAL = struct.Struct("<HHH")  # at OFF_LOWER: three consecutive uint16
_U16_PAIR = struct.Struct("<HH")  # pd_lower, pd_upper
_LP_ARRAYS: dict[int, struct.Struct] = {}  # "<nI": the first n line pointers, by n

OFF_LSN = 0
OFF_CHECKSUM = 8
OFF_FLAGS = 10
OFF_LOWER = 12
OFF_UPPER = 14
OFF_SPECIAL = 16
OFF_PAGESIZE_VERSION = 18
OFF_PRUNE_XID = 20

Page = bytearray


class PageCorrupted(RedoError):
    """A page's pointers or line pointers are inconsistent (ERRCODE_DATA_CORRUPTED)."""


def MAXALIGN(n: int) -> int:
    return (n + 7) & ~7


def SHORTALIGN(n: int) -> int:
    return (n + 1) & ~1


def INTALIGN(n: int) -> int:
    return (n + 3) & ~3


# -- header fields -------------------------------------------------------------------
def PageGetLSN(page: bytes | bytearray | memoryview) -> int:
    hi, lo = _LSN.unpack_from(page, OFF_LSN)
    return (hi << 32) | lo


def PageSetLSN(page: bytearray, lsn: int) -> None:
    _LSN.pack_into(page, OFF_LSN, lsn >> 32, lsn & 0xFFFFFFFF)


def get_u16(page: bytes | bytearray | memoryview, off: int) -> int:
    return _U16.unpack_from(page, off)[0]


def set_u16(page: bytearray, off: int, value: int) -> None:
    _U16.pack_into(page, off, value)


def get_u32(page: bytes | bytearray | memoryview, off: int) -> int:
    return _U32.unpack_from(page, off)[0]


def set_u32(page: bytearray, off: int, value: int) -> None:
    _U32.pack_into(page, off, value)


def pd_lower(page: bytes | bytearray | memoryview) -> int:
    return get_u16(page, OFF_LOWER)


def pd_upper(page: bytes | bytearray | memoryview) -> int:
    return get_u16(page, OFF_UPPER)


def pd_special(page: bytes | bytearray | memoryview) -> int:
    return get_u16(page, OFF_SPECIAL)


def pd_flags(page: bytes | bytearray | memoryview) -> int:
    return get_u16(page, OFF_FLAGS)


def set_pd_lower(page: bytearray, v: int) -> None:
    _U16.pack_into(page, OFF_LOWER, v)


def set_pd_upper(page: bytearray, v: int) -> None:
    _U16.pack_into(page, OFF_UPPER, v)


def set_pd_special(page: bytearray, v: int) -> None:
    _U16.pack_into(page, OFF_SPECIAL, v)


def set_pd_flags(page: bytearray, v: int) -> None:
    _U16.pack_into(page, OFF_FLAGS, v)


def PageGetPruneXid(page: bytes | bytearray | memoryview) -> int:
    return get_u32(page, OFF_PRUNE_XID)


def PageSetPruneXid(page: bytearray, xid: int) -> None:
    _U32.pack_into(page, OFF_PRUNE_XID, xid)


def PageIsNew(page: bytes | bytearray | memoryview) -> bool:
    """An all-zero, never-initialized page has pd_upper == 0."""
    return not (page[OFF_UPPER] or page[OFF_UPPER + 1])


def PageIsEmpty(page: bytes | bytearray | memoryview) -> bool:
    return get_u16(page, OFF_LOWER) <= SizeOfPageHeaderData


def PageGetMaxOffsetNumber(page: bytes | bytearray | memoryview) -> int:
    lower = _U16.unpack_from(page, OFF_LOWER)[0]
    return 0 if lower <= SizeOfPageHeaderData else (lower - SizeOfPageHeaderData) // SizeOfItemIdData


def PageGetSpecialSize(page: bytes | bytearray | memoryview) -> int:
    return BLCKSZ - get_u16(page, OFF_SPECIAL)


def PageGetSpecialPointer(page: bytes | bytearray | memoryview) -> int:
    """Offset of the special space (C returns a pointer; we return the offset)."""
    return get_u16(page, OFF_SPECIAL)


def PageGetContents(page: bytes | bytearray | memoryview) -> int:
    """Offset of the contents after the header, MAXALIGNed."""
    return MAXALIGN(SizeOfPageHeaderData)


def _flag_setter(bit: int, on: bool):  # type: ignore[no-untyped-def]
    def fn(page: bytearray) -> None:
        f = get_u16(page, OFF_FLAGS)
        _U16.pack_into(page, OFF_FLAGS, (f | bit) if on else (f & ~bit & 0xFFFF))

    return fn


def PageHasFreeLinePointers(page: bytes | bytearray | memoryview) -> bool:
    return bool(get_u16(page, OFF_FLAGS) & PD_HAS_FREE_LINES)


def PageIsFull(page: bytes | bytearray | memoryview) -> bool:
    return bool(get_u16(page, OFF_FLAGS) & PD_PAGE_FULL)


def PageIsAllVisible(page: bytes | bytearray | memoryview) -> bool:
    return bool(get_u16(page, OFF_FLAGS) & PD_ALL_VISIBLE)


PageSetHasFreeLinePointers = _flag_setter(PD_HAS_FREE_LINES, True)
PageClearHasFreeLinePointers = _flag_setter(PD_HAS_FREE_LINES, False)
PageSetFull = _flag_setter(PD_PAGE_FULL, True)
PageClearFull = _flag_setter(PD_PAGE_FULL, False)
PageSetAllVisible = _flag_setter(PD_ALL_VISIBLE, True)
PageClearAllVisible = _flag_setter(PD_ALL_VISIBLE, False)


# -- line pointers (ItemIdData: lp_off:15, lp_flags:2, lp_len:15) ------------------
def ItemIdOffset(offnum: int) -> int:
    """Byte offset of line pointer ``offnum`` (1-based) in the page."""
    return SizeOfPageHeaderData + (offnum - 1) * SizeOfItemIdData


def PageGetItemId(page: bytes | bytearray | memoryview, offnum: int) -> tuple[int, int, int]:
    """(lp_off, lp_flags, lp_len) of line pointer ``offnum``."""
    w = _ITEMID.unpack_from(page, SizeOfPageHeaderData - SizeOfItemIdData + offnum * SizeOfItemIdData)[0]
    return w & 0x7FFF, (w >> 15) & 0x3, w >> 17


def PageSetItemId(page: bytearray, offnum: int, lp_off: int, lp_flags: int, lp_len: int) -> None:
    _ITEMID.pack_into(page, ItemIdOffset(offnum), (lp_off & 0x7FFF) | (lp_flags << 15) | (lp_len << 17))


def ItemIdSetUnused(page: bytearray, offnum: int) -> None:
    PageSetItemId(page, offnum, 0, LP_UNUSED, 0)


def ItemIdSetNormal(page: bytearray, offnum: int, off: int, length: int) -> None:
    PageSetItemId(page, offnum, off, LP_NORMAL, length)


def ItemIdSetRedirect(page: bytearray, offnum: int, link: int) -> None:
    PageSetItemId(page, offnum, link, LP_REDIRECT, 0)


def ItemIdSetDead(page: bytearray, offnum: int) -> None:
    PageSetItemId(page, offnum, 0, LP_DEAD, 0)


def ItemIdMarkDead(page: bytearray, offnum: int) -> None:
    """Keep the storage, set the flags to LP_DEAD."""
    off, _flags, length = PageGetItemId(page, offnum)
    PageSetItemId(page, offnum, off, LP_DEAD, length)


def ItemIdIsUsed(lp: tuple[int, int, int]) -> bool:
    return lp[1] != LP_UNUSED


def ItemIdIsNormal(lp: tuple[int, int, int]) -> bool:
    return lp[1] == LP_NORMAL


def ItemIdHasStorage(lp: tuple[int, int, int]) -> bool:
    return lp[2] != 0


def PageGetItem(page: bytearray, offnum: int) -> memoryview:
    """The item's bytes (a view into the page: writes go to the page)."""
    off, _flags, length = PageGetItemId(page, offnum)
    return memoryview(page)[off : off + length]


def PageGetItemOffset(page: bytes | bytearray | memoryview, offnum: int) -> int:
    return PageGetItemId(page, offnum)[0]


# -- page init / add ---------------------------------------------------------------
def PageInit(page: bytearray, pageSize: int = BLCKSZ, specialSize: int = 0) -> None:
    """Zero the page and set an empty header with ``specialSize`` bytes of special space."""
    specialSize = MAXALIGN(specialSize)
    page[:] = bytes(BLCKSZ)
    set_pd_lower(page, SizeOfPageHeaderData)
    set_pd_upper(page, pageSize - specialSize)
    set_pd_special(page, pageSize - specialSize)
    set_u16(page, OFF_PAGESIZE_VERSION, pageSize | PG_PAGE_LAYOUT_VERSION)


def _check_pointers(page: bytes | bytearray | memoryview, *, special_aligned: bool = True) -> tuple[int, int, int]:
    lower, upper, special = _LOWER_UPPER_SPECIAL.unpack_from(page, OFF_LOWER)
    if (
        lower < SizeOfPageHeaderData
        or lower > upper
        or upper > special
        or special > BLCKSZ
        or (special_aligned and special != MAXALIGN(special))
    ):
        raise PageCorrupted(f"corrupted page pointers: lower = {lower}, upper = {upper}, special = {special}")
    return lower, upper, special


def PageAddItemExtended(page: bytearray, item: bytes | bytearray | memoryview, offsetNumber: int, flags: int = 0) -> int:
    """Add ``item`` at ``offsetNumber`` (or the first free slot when Invalid).

    Returns the offset used, or InvalidOffsetNumber where C returns it
    (after its WARNING) — redo callers turn that into an error.
    """
    lower, upper, special = _LOWER_UPPER_SPECIAL.unpack_from(page, OFF_LOWER)
    if lower < SizeOfPageHeaderData or lower > upper or upper > special or special > BLCKSZ:
        raise PageCorrupted(f"corrupted page pointers: lower = {lower}, upper = {upper}, special = {special}")
    size = len(item)
    limit = (lower - SizeOfPageHeaderData) // SizeOfItemIdData + 1  # PageGetMaxOffsetNumber + 1
    needshuffle = False
    if InvalidOffsetNumber < offsetNumber <= MaxOffsetNumber:  # OffsetNumberIsValid
        if flags & PAI_OVERWRITE:
            if offsetNumber < limit:
                w = _ITEMID.unpack_from(page, SizeOfPageHeaderData + (offsetNumber - 1) * SizeOfItemIdData)[0]
                if (w >> 15) & 0x3 != LP_UNUSED or w >> 17 != 0:  # ItemIdIsUsed || ItemIdHasStorage
                    return InvalidOffsetNumber  # "will not overwrite a used ItemId"
        elif offsetNumber < limit:
            needshuffle = True
    elif PageHasFreeLinePointers(page):
        offsetNumber = FirstOffsetNumber
        while offsetNumber < limit:
            lp = PageGetItemId(page, offsetNumber)
            if not ItemIdIsUsed(lp) and not ItemIdHasStorage(lp):
                break
            offsetNumber += 1
        if offsetNumber >= limit:
            PageClearHasFreeLinePointers(page)
    else:
        offsetNumber = limit

    if offsetNumber > limit:
        return InvalidOffsetNumber  # "specified item offset is too large"
    if flags & PAI_IS_HEAP and offsetNumber > MaxHeapTuplesPerPage:
        return InvalidOffsetNumber

    new_lower = lower + SizeOfItemIdData if (offsetNumber == limit or needshuffle) else lower
    new_upper = upper - ((size + 7) & ~7)  # MAXALIGN
    if new_lower > new_upper:
        return InvalidOffsetNumber

    lp_at = SizeOfPageHeaderData + (offsetNumber - 1) * SizeOfItemIdData  # ItemIdOffset
    if needshuffle:
        n = (limit - offsetNumber) * SizeOfItemIdData
        page[lp_at + SizeOfItemIdData : lp_at + SizeOfItemIdData + n] = page[lp_at : lp_at + n]
    _ITEMID.pack_into(page, lp_at, (new_upper & 0x7FFF) | (LP_NORMAL << 15) | (size << 17))  # ItemIdSetNormal
    page[new_upper : new_upper + size] = item
    _U16_PAIR.pack_into(page, OFF_LOWER, new_lower, new_upper)
    return offsetNumber


def PageAddItem(
    page: bytearray,
    item: bytes | bytearray | memoryview,
    offsetNumber: int,
    overwrite: bool = False,
    is_heap: bool = False,
) -> int:
    """The PageAddItem macro."""
    flags = (PAI_OVERWRITE if overwrite else 0) | (PAI_IS_HEAP if is_heap else 0)
    return PageAddItemExtended(page, item, offsetNumber, flags)


def PageGetTempPageCopySpecial(page: bytes | bytearray) -> bytearray:
    """A fresh page with the same special-space size and contents."""
    temp = bytearray(BLCKSZ)
    PageInit(temp, BLCKSZ, PageGetSpecialSize(page))
    sp = pd_special(page)
    temp[sp:] = page[sp:]
    return temp


def PageRestoreTempPage(tempPage: bytes | bytearray, oldPage: bytearray) -> None:
    oldPage[:] = tempPage


# -- compaction ---------------------------------------------------------------------
def _compactify_tuples(page: bytearray, items: Sequence[tuple[int, int, int]]) -> None:
    """compactify_tuples: pack items (offsetindex, itemoff, alignedlen), in the
    given order, downward from pd_special; lp_off follows each item.

    Both C paths (presorted memmove and scratch copy) leave the same bytes:
    each item's ``alignedlen`` bytes from its old place land at its new place,
    and nothing below the new pd_upper is touched.
    """
    old = bytes(page)
    upper = pd_special(page)
    for offsetindex, itemoff, alignedlen in items:
        upper -= alignedlen
        if upper != itemoff:
            page[upper : upper + alignedlen] = old[itemoff : itemoff + alignedlen]
        lpo = ItemIdOffset(offsetindex + 1)
        w = _ITEMID.unpack_from(page, lpo)[0]
        _ITEMID.pack_into(page, lpo, (w & ~0x7FFF) | upper)
    set_pd_upper(page, upper)


def PageRepairFragmentation(page: bytearray) -> None:
    """Compact the tuples of a heap page, free unused line pointers at the end."""
    lower, upper, special = _check_pointers(page)
    nline = PageGetMaxOffsetNumber(page)
    items: list[tuple[int, int, int]] = []
    nunused = totallen = 0
    finalusedlp = InvalidOffsetNumber
    for i in range(FirstOffsetNumber, nline + 1):
        lp = PageGetItemId(page, i)
        if ItemIdIsUsed(lp):
            if ItemIdHasStorage(lp):
                itemoff = lp[0]
                if itemoff < upper or itemoff >= special:
                    raise PageCorrupted(f"corrupted line pointer: {itemoff}")
                alignedlen = MAXALIGN(lp[2])
                totallen += alignedlen
                items.append((i - 1, itemoff, alignedlen))
            finalusedlp = i
        else:
            ItemIdSetUnused(page, i)
            nunused += 1
    if not items:
        set_pd_upper(page, special)
    else:
        if totallen > special - lower:
            raise PageCorrupted(
                f"corrupted item lengths: total {totallen}, available space {special - lower}"
            )
        _compactify_tuples(page, items)
    if finalusedlp != nline:
        nunusedend = nline - finalusedlp
        nunused -= nunusedend
        set_pd_lower(page, pd_lower(page) - SizeOfItemIdData * nunusedend)
    if nunused > 0:
        PageSetHasFreeLinePointers(page)
    else:
        PageClearHasFreeLinePointers(page)


def PageTruncateLinePointerArray(page: bytearray) -> None:
    """Remove LP_UNUSED line pointers at the end of a heap page (keeps at least one)."""
    countdone = sethint = False
    nunusedend = 0
    for i in range(PageGetMaxOffsetNumber(page), FirstOffsetNumber - 1, -1):
        lp = PageGetItemId(page, i)
        if not countdone and i > FirstOffsetNumber:
            if not ItemIdIsUsed(lp):
                nunusedend += 1
            else:
                countdone = True
        elif not ItemIdIsUsed(lp):
            sethint = True
            break
    if nunusedend > 0:
        set_pd_lower(page, pd_lower(page) - SizeOfItemIdData * nunusedend)
    if sethint:
        PageSetHasFreeLinePointers(page)
    else:
        PageClearHasFreeLinePointers(page)


# -- free space --------------------------------------------------------------------
def PageGetFreeSpace(page: bytes | bytearray | memoryview) -> int:
    space = pd_upper(page) - pd_lower(page)
    return 0 if space < SizeOfItemIdData else space - SizeOfItemIdData


def PageGetFreeSpaceForMultipleTuples(page: bytes | bytearray | memoryview, ntups: int) -> int:
    space = pd_upper(page) - pd_lower(page)
    return 0 if space < ntups * SizeOfItemIdData else space - ntups * SizeOfItemIdData


def PageGetExactFreeSpace(page: bytes | bytearray | memoryview) -> int:
    return max(0, pd_upper(page) - pd_lower(page))


def PageGetHeapFreeSpace(page: bytes | bytearray | memoryview) -> int:
    space = PageGetFreeSpace(page)
    if space > 0:
        nline = PageGetMaxOffsetNumber(page)
        if nline >= MaxHeapTuplesPerPage:
            if PageHasFreeLinePointers(page):
                for offnum in range(FirstOffsetNumber, nline + 1):
                    if not ItemIdIsUsed(PageGetItemId(page, offnum)):
                        break
                else:
                    space = 0
            else:
                space = 0
    return space


# -- index page item removal ---------------------------------------------------------
def _checked_item(page: bytes | bytearray, offnum: int, upper: int, special: int) -> tuple[int, int]:
    off, _flags, size = PageGetItemId(page, offnum)
    if off < upper or off + size > special or off != MAXALIGN(off):
        raise PageCorrupted(f"corrupted line pointer: offset = {off}, size = {size}")
    return off, size


def _move_line_pointers(page: bytearray, n: int, offset: int, delta: int, storage_only: bool) -> None:
    """C's loop after moving tuples, on the whole line-pointer array at once:
    ``lp_off += delta`` (a 15-bit bitfield: the sum wraps) for each of the first
    ``n`` with lp_off <= ``offset`` (and lp_len != 0 if ``storage_only``)."""
    st = _LP_ARRAYS.get(n) or _LP_ARRAYS.setdefault(n, struct.Struct(f"<{n}I"))
    any_len = 0 if storage_only else 1 << 17
    st.pack_into(page, SizeOfPageHeaderData, *[
        (w & 0xFFFF8000) | ((w + delta) & 0x7FFF) if (w | any_len) >> 17 and w & 0x7FFF <= offset else w
        for w in st.unpack_from(page, SizeOfPageHeaderData)])


def PageIndexTupleDelete(page: bytearray, offnum: int) -> None:
    """Delete an index tuple and its line pointer, closing both gaps."""
    lower, upper, special = _check_pointers(page)
    nline = PageGetMaxOffsetNumber(page)
    if offnum <= 0 or offnum > nline:
        raise PageCorrupted(f"invalid index offnum: {offnum}")
    offset, size = _checked_item(page, offnum, upper, special)
    size = MAXALIGN(size)
    lp_next = ItemIdOffset(offnum + 1)
    nbytes = lower - lp_next
    if nbytes > 0:
        page[lp_next - SizeOfItemIdData : lower - SizeOfItemIdData] = page[lp_next:lower]
    if offset > upper:
        page[upper + size : offset + size] = page[upper:offset]
    set_pd_upper(page, upper + size)
    set_pd_lower(page, lower - SizeOfItemIdData)
    if not PageIsEmpty(page):
        _move_line_pointers(page, nline - 1, offset, size, storage_only=False)


def PageIndexMultiDelete(page: bytearray, itemnos: Sequence[int]) -> None:
    """Delete several index tuples (``itemnos`` sorted ascending) and compact."""
    nitems = len(itemnos)
    if nitems <= 2:
        for offnum in reversed(itemnos):
            PageIndexTupleDelete(page, offnum)
        return
    lower, upper, special = _check_pointers(page)
    nline = PageGetMaxOffsetNumber(page)
    items: list[tuple[int, int, int]] = []
    newitemids: list[bytes] = []
    totallen = nextitm = 0
    for offnum in range(FirstOffsetNumber, nline + 1):
        offset, size = _checked_item(page, offnum, upper, special)
        if nextitm < nitems and offnum == itemnos[nextitm]:
            nextitm += 1
        else:
            alignedlen = MAXALIGN(size)
            items.append((len(newitemids), offset, alignedlen))
            totallen += alignedlen
            at = ItemIdOffset(offnum)
            newitemids.append(bytes(page[at : at + SizeOfItemIdData]))
    if nextitm != nitems:
        raise PageCorrupted("incorrect index offsets supplied")
    if totallen > special - lower:
        raise PageCorrupted(f"corrupted item lengths: total {totallen}, available space {special - lower}")
    nused = len(newitemids)
    page[SizeOfPageHeaderData : SizeOfPageHeaderData + nused * SizeOfItemIdData] = b"".join(newitemids)
    set_pd_lower(page, SizeOfPageHeaderData + nused * SizeOfItemIdData)
    if nused > 0:
        _compactify_tuples(page, items)
    else:
        set_pd_upper(page, special)


def PageIndexTupleDeleteNoCompact(page: bytearray, offnum: int) -> None:
    """Delete an index tuple, leaving its line pointer LP_UNUSED (unless it is last)."""
    lower, upper, special = _check_pointers(page)
    nline = PageGetMaxOffsetNumber(page)
    if offnum <= 0 or offnum > nline:
        raise PageCorrupted(f"invalid index offnum: {offnum}")
    offset, size = _checked_item(page, offnum, upper, special)
    size = MAXALIGN(size)
    if offnum < nline:
        ItemIdSetUnused(page, offnum)
    else:
        set_pd_lower(page, lower - SizeOfItemIdData)
        nline -= 1
    if offset > upper:
        page[upper + size : offset + size] = page[upper:offset]
    set_pd_upper(page, upper + size)
    if not PageIsEmpty(page):
        _move_line_pointers(page, nline, offset, size, storage_only=True)


def PageIndexTupleOverwrite(page: bytearray, offnum: int, newtup: bytes | bytearray | memoryview) -> bool:
    """Replace an index tuple in place, shifting the tuples below it by the size change."""
    lower, upper, special = _check_pointers(page)
    itemcount = PageGetMaxOffsetNumber(page)
    if offnum <= 0 or offnum > itemcount:
        raise PageCorrupted(f"invalid index offnum: {offnum}")
    offset, oldsize = _checked_item(page, offnum, upper, special)
    oldsize = MAXALIGN(oldsize)
    newsize = len(newtup)
    alignednewsize = MAXALIGN(newsize)
    if alignednewsize > oldsize + (upper - lower):
        return False
    size_diff = oldsize - alignednewsize
    if size_diff != 0:
        page[upper + size_diff : offset + size_diff] = page[upper:offset]
        set_pd_upper(page, upper + size_diff)
        _move_line_pointers(page, itemcount, offset, size_diff, storage_only=True)
    _flags = PageGetItemId(page, offnum)[1]
    PageSetItemId(page, offnum, offset + size_diff, _flags, newsize)
    page[offset + size_diff : offset + size_diff + newsize] = newtup
    return True
