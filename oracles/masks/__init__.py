"""PostgreSQL's consistency masks (bufmask.c and each AM's ``*_mask``).

``mask_page(page, rmgr_name, blkno, fork, table=PG17)`` returns a masked copy,
choosing the AM's mask by the resource manager whose records own the page.
Which mask an rmgr has is the ``mask`` column of the checked WAL's major's
rmgr table (rmgrlist.h's rm_mask; ``MASK_SINCE`` changes it per major): its
C name (``heap_mask``, ``spg_mask`` ...), found here in the module named
after the C file's prefix (``heap.py`` holds heap_mask, ``btree.py``
btree_mask, ``spgist.py`` spg_mask, ...), each built from the primitives in
``bufmask.py``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from oracles.masks.bufmask import MaskError, mask_page_lsn_and_checksum
from pyredo.rmgrlist import PG15, RmgrTable
from pyredo.wal.record import FSM_FORKNUM, VISIBILITYMAP_FORKNUM

MaskFn = Callable[[bytearray, int], None]

# the module of a mask whose C name's prefix is not its module's name
_MODULE_OF_PREFIX = {"spg": "spgist"}


class NoMask(MaskError):
    """No mask is known for this page's resource manager."""


def vm_mask(page: bytearray, blkno: int) -> None:
    """Visibility-map pages: every bit is WAL-logged; only LSN/checksum may differ."""
    mask_page_lsn_and_checksum(page)


def get_mask(rmgr_name: str, table: RmgrTable = PG15) -> MaskFn:
    """The mask function of resource manager ``rmgr_name`` (pg_waldump's name),
    as ``table``'s mask column names it."""
    row = table.by_name(rmgr_name)
    fn_name = row.mask if row is not None else None
    if fn_name is None:
        raise NoMask(f"no consistency mask for resource manager {rmgr_name}")
    prefix = fn_name.removesuffix("_mask")
    mod_name = _MODULE_OF_PREFIX.get(prefix, prefix)
    try:
        mod = importlib.import_module(f"oracles.masks.{mod_name}")
    except ModuleNotFoundError as e:
        raise NoMask(f"mask for {rmgr_name} ({fn_name}) is not implemented yet") from e
    fn: MaskFn = getattr(mod, fn_name)
    return fn


def mask_page(page: bytes, rmgr_name: str, blkno: int, fork: int = 0, *, final_state: bool = False,
              table: RmgrTable = PG15) -> bytes:
    """A masked copy of ``page``: VM pages by vm_mask, others by their AM's mask
    as ``table`` (the major of the WAL that wrote the page) names it.

    ``final_state``: the page is compared with the primary's page at the END of
    a range (not at one record's time, as wal_consistency_checking does), so
    also mask what the primary changes without WAL (see ``unlogged.py``).
    """
    buf = bytearray(page)
    if fork == VISIBILITYMAP_FORKNUM:
        vm_mask(buf, blkno)
    elif fork == FSM_FORKNUM:
        raise NoMask("free-space-map pages are not WAL-logged; they have no mask")
    else:
        get_mask(rmgr_name, table)(buf, blkno)
        if final_state:
            from oracles.masks.unlogged import mask_unlogged

            mask_unlogged(buf, rmgr_name, blkno)
    return bytes(buf)


# page-id words at the end of the special space (each AM's *_page.h)
_PAGE_IDS = {0xFF80: "Hash", 0xFF81: "Gist", 0xFF82: "SPGist", 0xFF83: "Generic",
             0xF091: "BRIN", 0xF092: "BRIN", 0xF093: "BRIN"}
SEQ_MAGIC = 0x1717


def guess_owner(page: bytes) -> str | None:
    """The rmgr that owns a page, judged from its special space, for pages only
    XLOG records (full-page images) touched. None for a new (all-zero) page."""
    special = int.from_bytes(page[16:18], "little")
    upper = int.from_bytes(page[14:16], "little")
    if upper == 0:
        return None
    size = len(page) - special
    if size == 0:
        return "Heap"
    tail = int.from_bytes(page[-2:], "little")
    if tail in _PAGE_IDS:
        return _PAGE_IDS[tail]
    if size == 8 and int.from_bytes(page[special : special + 4], "little") == SEQ_MAGIC:
        return "Sequence"
    if size == 16:
        return "Btree"
    if size == 8:
        return "Gin"
    return None
