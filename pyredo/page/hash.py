"""Hash index page layout (hash.h) and the page initializers redo calls
(hashpage.c ``_hash_pageinit`` / ``_hash_initbuf`` / ``_hash_init_metabuffer``,
hashovfl.c ``_hash_initbitmapbuffer``), plus the bucket arithmetic they need
(hashutil.c ``_hash_spareindex`` / ``_hash_get_totalbuckets``).

Pages are ``bytearray``; where C takes a pointer into the page, the views here
(``HashPageOpaque``, ``HashMetaPage``) hold the page and a byte offset, and
their attributes read and write the C fields in place. Where C would read or
write past the page or past a fixed-size array (a corrupt pd_special, an
out-of-range ``hashm_spares`` index), ``HashPageError`` is raised instead.

Every hash page is 8-byte aligned and initialized by PageInit, which zeroes the
whole page first, so the struct padding bytes are always zero, as in C.
"""

from __future__ import annotations

import math
import struct

from pyredo import BLCKSZ
from pyredo.errors import RedoError
from pyredo.page.bufpage import MAXALIGN, PageInit, SizeOfPageHeaderData, pd_special, set_pd_lower

InvalidBlockNumber = 0xFFFFFFFF
_U32 = 0xFFFFFFFF


class HashPageError(RedoError):
    """A hash page cannot hold what a record asks for (C would go out of bounds)."""


# -- hash.h: page types and flags in hasho_flag ----------------------------------------
LH_UNUSED_PAGE = 0
LH_OVERFLOW_PAGE = 1 << 0
LH_BUCKET_PAGE = 1 << 1
LH_BITMAP_PAGE = 1 << 2
LH_META_PAGE = 1 << 3
LH_BUCKET_BEING_POPULATED = 1 << 4
LH_BUCKET_BEING_SPLIT = 1 << 5
LH_BUCKET_NEEDS_SPLIT_CLEANUP = 1 << 6
LH_PAGE_HAS_DEAD_TUPLES = 1 << 7
LH_PAGE_TYPE = LH_OVERFLOW_PAGE | LH_BUCKET_PAGE | LH_BITMAP_PAGE | LH_META_PAGE

HASHO_PAGE_ID = 0xFF80
InvalidBucket = 0xFFFFFFFF
HASH_METAPAGE = 0
HASH_MAGIC = 0x6440640
HASH_VERSION = 4

HASH_MAX_BITMAPS = min(BLCKSZ // 8, 1024)
HASH_SPLITPOINT_PHASE_BITS = 2
HASH_SPLITPOINT_PHASES_PER_GRP = 1 << HASH_SPLITPOINT_PHASE_BITS
HASH_SPLITPOINT_PHASE_MASK = HASH_SPLITPOINT_PHASES_PER_GRP - 1
HASH_SPLITPOINT_GROUPS_WITH_ONE_PHASE = 10
HASH_MAX_SPLITPOINT_GROUP = 32
HASH_MAX_SPLITPOINTS = (
    (HASH_MAX_SPLITPOINT_GROUP - HASH_SPLITPOINT_GROUPS_WITH_ONE_PHASE) * HASH_SPLITPOINT_PHASES_PER_GRP
    + HASH_SPLITPOINT_GROUPS_WITH_ONE_PHASE
)  # 98

BYTE_TO_BIT = 3
BITS_PER_MAP = 32
ALL_SET = 0xFFFFFFFF

# -- HashPageOpaqueData: prevblkno, nextblkno, bucket, flag, page_id -----------------------
HASH_PAGE_OPAQUE = struct.Struct("<IIIHH")
SizeOfHashPageOpaqueData = HASH_PAGE_OPAQUE.size  # 16
_OP_PREV, _OP_NEXT, _OP_BUCKET, _OP_FLAG, _OP_PAGE_ID = 0, 4, 8, 12, 14

# -- HashMetaPageData (8-aligned: hashm_ntuples is a double) ---------------------------
# magic, version, ntuples, ffactor, bsize, bmsize, bmshift, maxbucket, highmask,
# lowmask, ovflpoint, firstfree, nmaps, procid; then spares[98] and mapp[1024]
HASH_META_FIXED = struct.Struct("<IIdHHHHIIIIIII")
_M_SPARES = HASH_META_FIXED.size  # 52
_M_MAPP = _M_SPARES + 4 * HASH_MAX_SPLITPOINTS  # 444
SizeOfHashMetaPageData = MAXALIGN(_M_MAPP + 4 * HASH_MAX_BITMAPS)  # 4544

# PageGetContents: where HashPageGetMeta and HashPageGetBitmap point
HASH_CONTENTS = MAXALIGN(SizeOfPageHeaderData)
# HashGetMaxBitmapSize for a BLCKSZ page
HASH_MAX_BITMAP_SIZE = BLCKSZ - (MAXALIGN(SizeOfPageHeaderData) + MAXALIGN(SizeOfHashPageOpaqueData))

_U16S = struct.Struct("<H")
_U32S = struct.Struct("<I")
_F64S = struct.Struct("<d")


def _field(off: int, st: struct.Struct, doc: str) -> property:
    """A C struct member at ``off`` bytes into the view, read and written in place."""

    def get(self: _View) -> int:
        return int(st.unpack_from(self.page, self.off + off)[0])

    def set_(self: _View, value: int) -> None:
        st.pack_into(self.page, self.off + off, value & ((1 << (8 * st.size)) - 1))

    return property(get, set_, doc=doc)


class _View:
    __slots__ = ("off", "page")

    def __init__(self, page: bytearray, off: int) -> None:
        self.page = page
        self.off = off


class HashPageOpaque(_View):
    """HashPageOpaqueData in the special space of ``page``."""

    __slots__ = ()
    hasho_prevblkno = _field(_OP_PREV, _U32S, "previous page in chain, or maxbucket of a bucket page")
    hasho_nextblkno = _field(_OP_NEXT, _U32S, "next page in the bucket chain")
    hasho_bucket = _field(_OP_BUCKET, _U32S, "bucket number this page belongs to")
    hasho_flag = _field(_OP_FLAG, _U16S, "page type code + flag bits")
    hasho_page_id = _field(_OP_PAGE_ID, _U16S, "HASHO_PAGE_ID")


def HashPageGetOpaque(page: bytearray) -> HashPageOpaque:
    """The special space of ``page`` (checked: C would read past a bad pd_special)."""
    sp = pd_special(page)
    if sp + SizeOfHashPageOpaqueData > BLCKSZ:
        raise HashPageError(f"hash special space at {sp} runs past the page")
    return HashPageOpaque(page, sp)


class HashMetaPage(_View):
    """HashMetaPageData at PageGetContents of the metapage."""

    __slots__ = ()
    hashm_magic = _field(0, _U32S, "HASH_MAGIC")
    hashm_version = _field(4, _U32S, "HASH_VERSION")
    hashm_ffactor = _field(16, _U16S, "target fill factor (tuples/bucket)")
    hashm_bsize = _field(18, _U16S, "index page size (bytes)")
    hashm_bmsize = _field(20, _U16S, "bitmap array size (bytes)")
    hashm_bmshift = _field(22, _U16S, "log2(bitmap array size in bits)")
    hashm_maxbucket = _field(24, _U32S, "ID of maximum bucket in use")
    hashm_highmask = _field(28, _U32S, "mask to modulo into entire table")
    hashm_lowmask = _field(32, _U32S, "mask to modulo into lower half of table")
    hashm_ovflpoint = _field(36, _U32S, "splitpoint from which ovflpages are allocated")
    hashm_firstfree = _field(40, _U32S, "lowest-number free ovflpage (bit#)")
    hashm_nmaps = _field(44, _U32S, "number of bitmap pages")
    hashm_procid = _field(48, _U32S, "hash function id from pg_proc")

    @property
    def hashm_ntuples(self) -> float:
        return float(_F64S.unpack_from(self.page, self.off + 8)[0])

    @hashm_ntuples.setter
    def hashm_ntuples(self, value: float) -> None:
        _F64S.pack_into(self.page, self.off + 8, value)

    def set_ntuples_bytes(self, raw: bytes) -> None:
        """Store a double exactly as logged (C assigns the double: every bit kept)."""
        self.page[self.off + 8 : self.off + 16] = raw[:8]

    def get_spare(self, i: int) -> int:
        return int(_U32S.unpack_from(self.page, self.off + _M_SPARES + 4 * _check_index(i, HASH_MAX_SPLITPOINTS, "hashm_spares"))[0])

    def set_spare(self, i: int, value: int) -> None:
        _U32S.pack_into(self.page, self.off + _M_SPARES + 4 * _check_index(i, HASH_MAX_SPLITPOINTS, "hashm_spares"),
                        value & _U32)

    def get_mapp(self, i: int) -> int:
        return int(_U32S.unpack_from(self.page, self.off + _M_MAPP + 4 * _check_index(i, HASH_MAX_BITMAPS, "hashm_mapp"))[0])

    def set_mapp(self, i: int, value: int) -> None:
        _U32S.pack_into(self.page, self.off + _M_MAPP + 4 * _check_index(i, HASH_MAX_BITMAPS, "hashm_mapp"),
                        value & _U32)


def _check_index(i: int, n: int, name: str) -> int:
    if not 0 <= i < n:
        raise HashPageError(f"{name}[{i}] is out of range (the array has {n} entries)")
    return i


def HashPageGetMeta(page: bytearray) -> HashMetaPage:
    return HashMetaPage(page, HASH_CONTENTS)


# -- bitmap pages: HashPageGetBitmap + SETBIT / CLRBIT -------------------------------
def _bitmap_word(page: bytearray, n: int) -> int:
    """Offset of the uint32 word that holds bit ``n`` of the page's bitmap.

    C does not check ``n`` against hashm_bmsize: a bit past the bitmap but on
    the page is written as C writes it; only one past the page is an error."""
    off = HASH_CONTENTS + 4 * (n // BITS_PER_MAP)
    if n < 0 or off + 4 > BLCKSZ:
        raise HashPageError(f"bitmap bit {n} lies outside the bitmap page")
    return off


def SETBIT(page: bytearray, n: int) -> None:
    """``SETBIT(HashPageGetBitmap(page), n)``."""
    off = _bitmap_word(page, n)
    word = _U32S.unpack_from(page, off)[0]
    _U32S.pack_into(page, off, word | (1 << (n % BITS_PER_MAP)))


def CLRBIT(page: bytearray, n: int) -> None:
    """``CLRBIT(HashPageGetBitmap(page), n)``."""
    off = _bitmap_word(page, n)
    word = _U32S.unpack_from(page, off)[0]
    _U32S.pack_into(page, off, word & ~(1 << (n % BITS_PER_MAP)) & _U32)


def ISSET(page: bytes | bytearray, n: int) -> bool:
    off = HASH_CONTENTS + 4 * (n // BITS_PER_MAP)
    return bool(_U32S.unpack_from(page, off)[0] & (1 << (n % BITS_PER_MAP)))


# -- pg_bitutils.h --------------------------------------------------------------------
def pg_leftmost_one_pos32(word: int) -> int:
    return (word & _U32).bit_length() - 1


def pg_nextpower2_32(num: int) -> int:
    if num & (num - 1) == 0:
        return num
    return (1 << (pg_leftmost_one_pos32(num) + 1)) & _U32


def pg_ceil_log2_32(num: int) -> int:
    return 0 if num < 2 else pg_leftmost_one_pos32(num - 1) + 1


# -- hashutil.c ----------------------------------------------------------------------------
def _hash_spareindex(num_bucket: int) -> int:
    """Mirrors _hash_spareindex (hashutil.c): the splitpoint phase of a bucket count."""
    splitpoint_group = pg_ceil_log2_32(num_bucket)
    if splitpoint_group < HASH_SPLITPOINT_GROUPS_WITH_ONE_PHASE:
        return splitpoint_group
    phases = HASH_SPLITPOINT_GROUPS_WITH_ONE_PHASE
    phases += (splitpoint_group - HASH_SPLITPOINT_GROUPS_WITH_ONE_PHASE) << HASH_SPLITPOINT_PHASE_BITS
    phases += ((num_bucket - 1) >> (splitpoint_group - (HASH_SPLITPOINT_PHASE_BITS + 1))) & HASH_SPLITPOINT_PHASE_MASK
    return phases


def _hash_get_totalbuckets(splitpoint_phase: int) -> int:
    """Mirrors _hash_get_totalbuckets (hashutil.c): buckets allocated up to a phase."""
    if splitpoint_phase < HASH_SPLITPOINT_GROUPS_WITH_ONE_PHASE:
        return 1 << splitpoint_phase
    group = HASH_SPLITPOINT_GROUPS_WITH_ONE_PHASE + (
        (splitpoint_phase - HASH_SPLITPOINT_GROUPS_WITH_ONE_PHASE) >> HASH_SPLITPOINT_PHASE_BITS)
    total = 1 << (group - 1)
    phases_within = ((splitpoint_phase - HASH_SPLITPOINT_GROUPS_WITH_ONE_PHASE) & HASH_SPLITPOINT_PHASE_MASK) + 1
    total += ((1 << (group - 1)) >> HASH_SPLITPOINT_PHASE_BITS) * phases_within
    return total & _U32


# -- page initializers ----------------------------------------------------------------------
def _hash_pageinit(page: bytearray) -> None:
    """Mirrors _hash_pageinit (hashpage.c): PageInit with hash special space."""
    PageInit(page, BLCKSZ, SizeOfHashPageOpaqueData)


def _set_opaque(page: bytearray, prev: int, nxt: int, bucket: int, flag: int) -> None:
    op = HashPageGetOpaque(page)
    op.hasho_prevblkno = prev
    op.hasho_nextblkno = nxt
    op.hasho_bucket = bucket
    op.hasho_flag = flag
    op.hasho_page_id = HASHO_PAGE_ID


def _hash_initbuf(page: bytearray, max_bucket: int, num_bucket: int, flag: int, initpage: bool) -> None:
    """Mirrors _hash_initbuf (hashpage.c): a bucket (or overflow) page for ``num_bucket``."""
    if initpage:
        _hash_pageinit(page)
    _set_opaque(page, max_bucket, InvalidBlockNumber, num_bucket, flag)


def _initial_bucket_count(num_tuples: float, ffactor: int) -> int:
    """The bucket count _hash_init_metabuffer derives from the tuple estimate.

    C divides doubles: a zero ffactor gives ±inf (well defined, clamped below)
    or NaN for 0/0, whose conversion to uint32 is undefined: that is an error.
    """
    if ffactor == 0:
        if math.isnan(num_tuples) or num_tuples == 0:
            raise HashPageError(f"cannot size a hash index from {num_tuples} tuples at fill factor 0")
        dnumbuckets = math.copysign(math.inf, num_tuples)
    else:
        dnumbuckets = num_tuples / ffactor
    if math.isnan(dnumbuckets):
        raise HashPageError(f"cannot size a hash index from {num_tuples} tuples")
    if dnumbuckets <= 2.0:
        return 2
    if dnumbuckets >= float(0x40000000):
        return 0x40000000
    # _hash_spareindex takes a uint32: C truncates the double toward zero
    return _hash_get_totalbuckets(_hash_spareindex(int(dnumbuckets)))


def _hash_init_metabuffer(page: bytearray, num_tuples: float, procid: int, ffactor: int,
                          initpage: bool) -> None:
    """Mirrors _hash_init_metabuffer (hashpage.c)."""
    num_buckets = _initial_bucket_count(num_tuples, ffactor)
    spare_index = _hash_spareindex(num_buckets)
    if initpage:
        _hash_pageinit(page)
    _set_opaque(page, InvalidBlockNumber, InvalidBlockNumber, InvalidBucket, LH_META_PAGE)

    metap = HashPageGetMeta(page)
    metap.hashm_magic = HASH_MAGIC
    metap.hashm_version = HASH_VERSION
    metap.hashm_ntuples = 0.0
    metap.hashm_nmaps = 0
    metap.hashm_ffactor = ffactor
    metap.hashm_bsize = HASH_MAX_BITMAP_SIZE
    lshift = pg_leftmost_one_pos32(metap.hashm_bsize)
    metap.hashm_bmsize = 1 << lshift
    metap.hashm_bmshift = lshift + BYTE_TO_BIT
    metap.hashm_procid = procid
    metap.hashm_maxbucket = num_buckets - 1
    metap.hashm_highmask = pg_nextpower2_32(num_buckets + 1) - 1
    metap.hashm_lowmask = metap.hashm_highmask >> 1
    start = HASH_CONTENTS + _M_SPARES
    page[start : start + 4 * (HASH_MAX_SPLITPOINTS + HASH_MAX_BITMAPS)] = bytes(
        4 * (HASH_MAX_SPLITPOINTS + HASH_MAX_BITMAPS))
    metap.set_spare(spare_index, 1)
    metap.hashm_ovflpoint = spare_index
    metap.hashm_firstfree = 0
    # pd_lower just past the metadata, so a compressed FPI keeps it
    set_pd_lower(page, HASH_CONTENTS + SizeOfHashMetaPageData)


def _hash_initbitmapbuffer(page: bytearray, bmsize: int, initpage: bool) -> None:
    """Mirrors _hash_initbitmapbuffer (hashovfl.c): a bitmap page, all bits "in use"."""
    if bmsize > HASH_MAX_BITMAP_SIZE:
        raise HashPageError(f"bitmap size {bmsize} does not fit on a page "
                            f"(at most {HASH_MAX_BITMAP_SIZE} bytes)")
    if initpage:
        _hash_pageinit(page)
    _set_opaque(page, InvalidBlockNumber, InvalidBlockNumber, InvalidBucket, LH_BITMAP_PAGE)
    page[HASH_CONTENTS : HASH_CONTENTS + bmsize] = b"\xff" * bmsize
    set_pd_lower(page, HASH_CONTENTS + bmsize)
