"""Page edits the catalog's mutations share: line pointers, tuples, little-endian fields."""

from __future__ import annotations

import struct
from collections.abc import Callable

from pyredo import BLCKSZ
from pyredo.page import bufpage

U16 = struct.Struct("<H")


def u16(data: bytes | bytearray, off: int) -> int:
    return int(U16.unpack_from(data, off)[0])


def swap_item_ids(page: bytearray, a: int, b: int) -> None:
    pa, pb = bufpage.ItemIdOffset(a), bufpage.ItemIdOffset(b)
    ida = bytes(page[pa : pa + 4])
    page[pa : pa + 4] = page[pb : pb + 4]
    page[pb : pb + 4] = ida


def swap_with_neighbour(page: bytearray, offnum: int, lowest: int = 1) -> None:
    """Item ``offnum`` and its next (or, at the end, previous) item trade line pointers:
    as if the item had gone in one slot off."""
    maxoff = bufpage.PageGetMaxOffsetNumber(page)
    if lowest <= offnum < maxoff:
        swap_item_ids(page, offnum, offnum + 1)
    elif offnum == maxoff and offnum - 1 >= lowest:
        swap_item_ids(page, offnum - 1, offnum)


def tuple_off(page: bytearray, offnum: int, need: int = 24) -> int | None:
    """Byte offset of a normal item at ``offnum`` holding ``need`` bytes, else None."""
    if not 0 < offnum <= bufpage.PageGetMaxOffsetNumber(page):
        return None
    off, flags, length = bufpage.PageGetItemId(page, offnum)
    if flags != bufpage.LP_NORMAL or length < need or off + length > BLCKSZ:
        return None
    return int(off)


def init_without(flag: int) -> Callable[[Callable[[bytearray, int], None]], Callable[[bytearray, int], None]]:
    """A page-init helper (GISTInitBuffer, SpGistInitPage ...) that drops ``flag`` from
    the flags it is given: pages come out without it."""
    def make(orig: Callable[[bytearray, int], None]) -> Callable[[bytearray, int], None]:
        def init(page: bytearray, f: int) -> None:
            orig(page, f & ~flag)

        return init

    return make
