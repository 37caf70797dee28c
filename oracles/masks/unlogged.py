"""State the primary changes WITHOUT WAL after the last record touching a page.

PostgreSQL's masks (bufmask.c and each AM's ``*_mask``) are made for
wal_consistency_checking, which compares a replayed page with the primary's
image *at the time of each record*. redodiff's witness compares with the
primary's page *at the end of the range*, read from disk after a CHECKPOINT;
between the two, a few things change on the primary without WAL, by design.
This module masks exactly those, each with the code that does it; nothing
else. Engines are still compared byte for byte, unmasked, on these bytes.

* Sequence pages: ``nextval_internal`` (sequence.c) logs the state ``log``
  fetches ahead, then sets ``last_value``, ``log_cnt`` and ``is_called`` on the
  page to the real values without WAL.
* SP-GiST metapage (block 0): ``SpGistUpdateMetaPage`` (spgutils.c) writes the
  ``lastUsedPages`` cache into the metapage without WAL.
"""

from __future__ import annotations

from pyredo.page.bufpage import (
    MAXALIGN,
    PageGetItemId,
    PageGetMaxOffsetNumber,
    SizeOfPageHeaderData,
)

SPGIST_METAPAGE_BLKNO = 0
_SPGIST_LUP_OFFSET = MAXALIGN(SizeOfPageHeaderData) + 4  # after magicNumber
_SPGIST_LUP_SIZE = 8 * 8  # SPGIST_CACHED_PAGES x (blkno, freeSpace)
_SEQ_DATA_SIZE = 8 + 8 + 1  # last_value, log_cnt, is_called


def mask_sequence_state(page: bytearray) -> None:
    if PageGetMaxOffsetNumber(page) < 1:
        return
    off, _flags, length = PageGetItemId(page, 1)
    if length < 24 or off + length > len(page):
        return
    t_hoff = page[off + 22]
    start = off + t_hoff
    end = min(start + _SEQ_DATA_SIZE, off + length)
    page[start:end] = bytes(end - start)


def mask_spgist_lup_cache(page: bytearray, blkno: int) -> None:
    if blkno == SPGIST_METAPAGE_BLKNO:
        page[_SPGIST_LUP_OFFSET : _SPGIST_LUP_OFFSET + _SPGIST_LUP_SIZE] = bytes(_SPGIST_LUP_SIZE)


def mask_unlogged(page: bytearray, owner: str, blkno: int) -> None:
    """Mask what the primary changed without WAL after the page's last record."""
    if owner == "Sequence":
        mask_sequence_state(page)
    elif owner == "SPGist":
        mask_spgist_lup_cache(page, blkno)
