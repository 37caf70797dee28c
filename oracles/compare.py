"""Compare pages and explain differences in PostgreSQL's terms.

``explain_diff`` names each differing field — ``pd_lower``, ``lp[7].lp_off``,
``item 3 t_infomask``, ``btpo_flags`` — with its page offset and both values,
so a divergence report reads like a page inspection, not a hex dump.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pyredo import BLCKSZ
from pyredo.page.bufpage import (
    PageGetItemId,
    PageGetMaxOffsetNumber,
    SizeOfItemIdData,
    SizeOfPageHeaderData,
    pd_lower,
    pd_special,
    pd_upper,
)

# (name, offset, size) of PageHeaderData fields
_HEADER_FIELDS = (
    ("pd_lsn", 0, 8),
    ("pd_checksum", 8, 2),
    ("pd_flags", 10, 2),
    ("pd_lower", 12, 2),
    ("pd_upper", 14, 2),
    ("pd_special", 16, 2),
    ("pd_pagesize_version", 18, 2),
    ("pd_prune_xid", 20, 4),
)

# HeapTupleHeaderData fields
_HEAP_TUPLE_FIELDS = (
    ("t_xmin", 0, 4),
    ("t_xmax", 4, 4),
    ("t_cid", 8, 4),
    ("t_ctid", 12, 6),
    ("t_infomask2", 18, 2),
    ("t_infomask", 20, 2),
    ("t_hoff", 22, 1),
)

# IndexTupleData fields
_INDEX_TUPLE_FIELDS = (("t_tid", 0, 6), ("t_info", 6, 2))

# special-space layouts by owner rmgr
_SPECIAL_FIELDS: dict[str, tuple[tuple[str, int, int], ...]] = {
    "Btree": (("btpo_prev", 0, 4), ("btpo_next", 4, 4), ("btpo_level", 8, 4),
              ("btpo_flags", 12, 2), ("btpo_cycleid", 14, 2)),
    "Hash": (("hasho_prevblkno", 0, 4), ("hasho_nextblkno", 4, 4), ("hasho_bucket", 8, 4),
             ("hasho_flag", 12, 2), ("hasho_page_id", 14, 2)),
    "Gist": (("nsn", 0, 8), ("rightlink", 8, 4), ("flags", 12, 2), ("gist_page_id", 14, 2)),
    "Gin": (("rightlink", 0, 4), ("maxoff", 4, 2), ("flags", 6, 2)),
    "SPGist": (("flags", 0, 2), ("nRedirection", 2, 2), ("nPlaceholder", 4, 2), ("spgist_page_id", 6, 2)),
    "BRIN": (("vector", 0, 6), ("type", 6, 2)),
    "Sequence": (("magic", 0, 4),),
}

_INDEX_OWNERS = {"Btree", "Hash", "Gist", "SPGist"}


@dataclass(frozen=True)
class FieldDiff:
    """One differing field: where it is, what it is called, the values on both sides."""

    offset: int
    size: int
    field: str
    left: str
    right: str

    def __str__(self) -> str:
        return f"offset {self.offset:#06x} ({self.offset}): {self.field}: {self.left} != {self.right}"


def _value(page: bytes, off: int, size: int) -> str:
    raw = page[off : off + size]
    if size == 8 and off == 0:  # pd_lsn: xlogid, xrecoff
        hi, lo = struct.unpack_from("<II", raw)
        return f"{hi:X}/{lo:X}"
    if size in (1, 2, 4):
        v = int.from_bytes(raw, "little")
        return f"{v} (0x{v:0{size * 2}X})"
    if size == 6:  # ItemPointerData: bi_hi, bi_lo, ip_posid
        hi, lo, pos = struct.unpack_from("<HHH", raw)
        return f"({(hi << 16) | lo},{pos})"
    return raw.hex()


def _lp_diff(a: bytes, b: bytes, offnum: int) -> list[tuple[str, str, str]]:
    la, lb = PageGetItemId(a, offnum), PageGetItemId(b, offnum)
    out = []
    for i, name in enumerate(("lp_off", "lp_flags", "lp_len")):
        if la[i] != lb[i]:
            out.append((f"lp[{offnum}].{name}", str(la[i]), str(lb[i])))
    return out


def _item_at(page: bytes, off: int) -> tuple[int, int] | None:
    """(offnum, item start) of the item whose storage covers ``off`` on ``page``."""
    for offnum in range(1, PageGetMaxOffsetNumber(page) + 1):
        start, _flags, length = PageGetItemId(page, offnum)
        if length and start <= off < start + length:
            return offnum, start
    return None


def _name_byte(a: bytes, b: bytes, off: int, owner: str | None) -> tuple[str, int, int]:
    """(field name, field start, field size) for byte ``off``."""
    if off < SizeOfPageHeaderData:
        for name, start, size in _HEADER_FIELDS:
            if start <= off < start + size:
                return name, start, size
    nline = max(PageGetMaxOffsetNumber(a), PageGetMaxOffsetNumber(b))
    lp_end = SizeOfPageHeaderData + nline * SizeOfItemIdData
    if off < lp_end:
        offnum = (off - SizeOfPageHeaderData) // SizeOfItemIdData + 1
        return f"lp[{offnum}]", SizeOfPageHeaderData + (offnum - 1) * SizeOfItemIdData, SizeOfItemIdData
    special = min(pd_special(a), pd_special(b))
    if special <= off < BLCKSZ and owner in _SPECIAL_FIELDS:
        rel = off - special
        for name, start, size in _SPECIAL_FIELDS[owner]:
            if start <= rel < start + size:
                return f"special.{name}", special + start, size
        return "special", off, 1
    for page in (a, b):
        hit = _item_at(page, off)
        if hit is not None:
            offnum, start = hit
            rel = off - start
            fields = _HEAP_TUPLE_FIELDS if owner in ("Heap", "Heap2", None) else (
                _INDEX_TUPLE_FIELDS if owner in _INDEX_OWNERS else ())
            for name, fstart, size in fields:
                if fstart <= rel < fstart + size:
                    return f"item {offnum} {name}", start + fstart, size
            return f"item {offnum} data+{rel}", off, 1
    lower, upper = min(pd_lower(a), pd_lower(b)), max(pd_upper(a), pd_upper(b))
    if lower <= off < upper:
        return "free space", off, 1
    return "unused tuple space", off, 1


def explain_diff(a: bytes, b: bytes, owner: str | None = None, limit: int = 50) -> list[FieldDiff]:
    """The fields that differ between pages ``a`` and ``b`` (at most ``limit``)."""
    if len(a) != BLCKSZ or len(b) != BLCKSZ:
        return [FieldDiff(0, 0, "page size", str(len(a)), str(len(b)))]
    out: list[FieldDiff] = []
    off = 0
    seen_lp: set[int] = set()
    while off < BLCKSZ and len(out) < limit:
        if a[off] == b[off]:
            off += 1
            continue
        name, start, size = _name_byte(a, b, off, owner)
        if name.startswith("lp[") and "." not in name:
            offnum = int(name[3:-1])
            if offnum not in seen_lp:
                seen_lp.add(offnum)
                for fname, va, vb in _lp_diff(a, b, offnum):
                    out.append(FieldDiff(start, size, fname, va, vb))
            off = start + size
            continue
        if size > 1 and not name.startswith(("free", "unused")):
            out.append(FieldDiff(start, size, name, _value(a, start, size), _value(b, start, size)))
            off = start + size
            continue
        # a run of differing bytes in one region
        end = off
        while end < BLCKSZ and a[end] != b[end] and _name_byte(a, b, end, owner)[0] == name:
            end += 1
        out.append(FieldDiff(off, end - off, name if end - off == 1 else f"{name} ({end - off} bytes)",
                             a[off:end].hex(), b[off:end].hex()))
        off = end
    return out


def first_difference(a: bytes, b: bytes) -> int | None:
    if a == b:
        return None
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))
