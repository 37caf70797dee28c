"""Synthetic WAL records, block references and pages for the tests: one set of builders.

Importable as ``from factories import ...`` from tests/unit and tests/integration
(tests/ has a conftest.py and no __init__.py, so pytest puts tests/ on sys.path, the
same way tests/integration/redocases.py is found).

Two kinds of record:

- ``record`` / ``Wal.rec``: a DecodedXLogRecord assembled field by field, as the
  decoder would return it; ``raw`` is empty, so it is for pyredo only.
- ``encoded`` / ``Wal.encoded``: encoded with pyredo.wal.builder into a real
  XLogRecord and decoded again, so the same bytes can go to a wal-redo server.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from pyredo import BLCKSZ
from pyredo.page.bufpage import MAXALIGN, PageAddItem, PageGetMaxOffsetNumber, PageSetLSN
from pyredo.page.nbtree import (
    BTP_LEAF,
    BTPageGetOpaque,
    BTreeTupleSetNAtts,
    _bt_form_posting,
    _bt_pageinit,
)
from pyredo.wal.builder import BlockSpec, encode_record
from pyredo.wal.decoder import decode_record
from pyredo.wal.record import (
    BKPBLOCK_HAS_DATA,
    BKPBLOCK_HAS_IMAGE,
    BKPBLOCK_WILL_INIT,
    BKPIMAGE_APPLY,
    MAIN_FORKNUM,
    BufferTag,
    DecodedBkpBlock,
    DecodedXLogRecord,
    RelFileNode,
)

RNODE = RelFileNode(1663, 5, 16500)
LSN0 = 0x0100_0000


def tag(blkno: int, rnode: RelFileNode = RNODE, fork: int = MAIN_FORKNUM) -> BufferTag:
    return BufferTag(*rnode, fork, blkno)


# -- block references --------------------------------------------------------------------
def block(block_id: int, blkno: int, data: bytes = b"", *, rnode: RelFileNode = RNODE,
          fork: int = MAIN_FORKNUM, will_init: bool = False, flags: int = 0,
          image: bytes | None = None, apply_image: bool | None = None,
          bimg_info: int | None = None, hole: tuple[int, int] = (0, 0)) -> DecodedBkpBlock:
    """A decoded block reference. The fork_flags byte carries the fork number, HAS_DATA
    when ``data``, WILL_INIT, HAS_IMAGE when ``image`` (the image as stored in WAL:
    without its ``hole`` (offset, length), compressed when ``bimg_info`` says so), and
    any other ``flags``. ``apply_image`` defaults to whether there is an image, and
    ``bimg_info`` to BKPIMAGE_APPLY when it is applied."""
    flags |= fork | (BKPBLOCK_HAS_DATA if data else 0) | (BKPBLOCK_WILL_INIT if will_init else 0)
    if image is not None:
        flags |= BKPBLOCK_HAS_IMAGE
    has_image = bool(flags & BKPBLOCK_HAS_IMAGE)
    apply = has_image if apply_image is None else apply_image
    b = DecodedBkpBlock(block_id, rnode, fork, blkno, flags, has_image=has_image, apply_image=apply,
                        has_data=bool(data), data=data)
    if image is not None:
        b.bkp_image, b.bimg_len = image, len(image)
        b.hole_offset, b.hole_length = hole
        b.bimg_info = (BKPIMAGE_APPLY if apply else 0) if bimg_info is None else bimg_info
    return b


def spec(block_id: int, blkno: int, data: bytes = b"", *, rnode: RelFileNode = RNODE,
         **kw: object) -> BlockSpec:
    """A block reference to encode (pyredo.wal.builder.BlockSpec) on the main fork of ``rnode``."""
    return BlockSpec(block_id, rnode, MAIN_FORKNUM, blkno, data=data, **kw)  # type: ignore[arg-type]


# -- records -----------------------------------------------------------------------------
def record(rmid: int, info: int, main: bytes = b"", *blocks: DecodedBkpBlock, lsn: int = LSN0,
           size: int = 0x80, xid: int = 0) -> DecodedXLogRecord:
    """A decoded record of ``size`` bytes at ``lsn`` (redo stamps ``lsn + size``)."""
    return DecodedXLogRecord(lsn=lsn, end_lsn=lsn + size, tot_len=size, xid=xid, prev=0, info=info,
                             rmid=rmid, crc=0, raw=b"", main_data=main,
                             blocks={b.block_id: b for b in blocks})


def encoded(rmid: int, info: int, main: bytes = b"", blocks: Sequence[BlockSpec] = (), *,
            lsn: int = LSN0, xid: int = 0) -> DecodedXLogRecord:
    """A real XLogRecord at ``lsn``, encoded and decoded again; it ends MAXALIGNed."""
    raw = encode_record(rmid, info, xid=xid, blocks=list(blocks), main_data=main)
    return decode_record(raw, lsn, lsn + MAXALIGN(len(raw)))


BlockRef = DecodedBkpBlock | tuple[int, int, bool] | tuple[int, int, bool, bytes]


class Wal:
    """Hands out increasing LSNs to the records it builds, ``step`` apart from ``start``.
    A test file sets its resource manager, xid and relation once::

        class Wal(factories.Wal):
            rmid, xid = RM_HASH_ID, 700
    """

    rmid = 0
    xid = 0
    rnode = RNODE
    start = 0x100_0000
    step = 0x100

    def __init__(self, start: int | None = None) -> None:
        self.lsn = self.start if start is None else start

    def _next(self) -> int:
        lsn = self.lsn
        self.lsn += self.step
        return lsn

    def record(self, rmid: int, info: int, main: bytes = b"", *blocks: DecodedBkpBlock) -> DecodedXLogRecord:
        """``record`` of any resource manager, at the next LSN."""
        return record(rmid, info, main, *blocks, lsn=self._next(), xid=self.xid)

    def rec(self, info: int, main: bytes = b"", blocks: Iterable[BlockRef] = (),
            images: dict[int, bytes] | None = None) -> DecodedXLogRecord:
        """A record of ``rmid`` at the next LSN. ``blocks``: DecodedBkpBlock, or
        (block_id, blkno, will_init[, data]) on ``rnode``; ``images``: block_id -> page
        to restore."""
        images = images or {}
        refs = [b if isinstance(b, DecodedBkpBlock)
                else block(b[0], b[1], *b[3:], rnode=self.rnode, will_init=b[2], image=images.get(b[0]))
                for b in blocks]
        return self.record(self.rmid, info, main, *refs)

    def encoded(self, info: int, main: bytes = b"", blocks: Sequence[BlockSpec] = ()) -> DecodedXLogRecord:
        """``encoded`` of ``rmid`` at the next LSN."""
        return encoded(self.rmid, info, main, blocks, lsn=self._next(), xid=self.xid)


# -- pages -------------------------------------------------------------------------------
def tid(blk: int, off: int) -> bytes:
    """An ItemPointerData: bi_hi, bi_lo, ip_posid."""
    return struct.pack("<HHH", blk >> 16, blk & 0xFFFF, off)


def int4_tuple(key: int, blk: int, off: int) -> bytes:
    """A non-pivot int4 btree index tuple: t_tid, t_info (size 16), key, padding."""
    return tid(blk, off) + struct.pack("<Hi4x", 16, key)


def bt_pivot(key: int, downlink: int = 0) -> bytes:
    """An int4 btree pivot tuple with one key attribute, pointing at ``downlink``."""
    tup = bytearray(int4_tuple(key, downlink, 0))
    BTreeTupleSetNAtts(tup, 0, 1, False)
    return bytes(tup)


def bt_posting(key: int, tids: list[tuple[int, int]]) -> bytes:
    """An int4 btree posting-list tuple over ``tids``."""
    return bytes(_bt_form_posting(int4_tuple(key, *tids[0]), b"".join(tid(*t) for t in tids), len(tids)))


def bt_page(items: list[bytes], *, hikey: bytes | None = None, prev: int = 0, next_: int = 0,
            level: int = 0, flags: int = BTP_LEAF, lsn: int = LSN0 - 0x100) -> bytearray:
    """A btree page holding ``hikey`` (when given) then ``items``, at ``lsn``."""
    page = bytearray(BLCKSZ)
    _bt_pageinit(page)
    op = BTPageGetOpaque(page)
    op.btpo_prev, op.btpo_next, op.btpo_level, op.btpo_flags = prev, next_, level, flags
    for item in ([hikey] if hikey is not None else []) + items:
        assert PageAddItem(page, item, PageGetMaxOffsetNumber(page) + 1)
    PageSetLSN(page, lsn)
    return page
