"""The decoder target (``mode="wal"``): a scratch copy of the corpus' segment
files that each case patches and undoes, and the WAL mutation categories."""

from __future__ import annotations

import dataclasses
import os
import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.robustness.hostile.corpus import WalCorpus
from harness.robustness.hostile.edits import PACK, edge_value, edit_bytes, flip_bits
from harness.robustness.hostile.layout import (
    Field,
    fix_crc,
    record_chunks,
    record_layout,
    record_pages,
)
from harness.robustness.hostile.outcome import Action, BadResult
from pyredo import BLCKSZ
from pyredo.wal.assembler import XLOG_BLCKSZ, SizeOfXLogLongPHD, SizeOfXLogShortPHD
from pyredo.wal.decoder import decode_record
from pyredo.wal.image import restore_block_image
from pyredo.wal.lsn import format_lsn
from pyredo.wal.reader import WalReader
from pyredo.wal.record import (
    BKPIMAGE_COMPRESS_LZ4,
    BKPIMAGE_COMPRESS_PGLZ,
    BKPIMAGE_COMPRESS_ZSTD,
    BKPIMAGE_COMPRESSED_MASK,
    BKPIMAGE_HAS_HOLE,
    SizeOfXLogRecord,
)


# -- the scratch WAL directory cases patch --------------------------------------------
class ScratchWal:
    """A writable copy of the corpus' segment files. A case patches it; ``restore``
    puts the original bytes back, so 100,000 cases cost no file copies."""

    def __init__(self, corpus: WalCorpus, root: Path) -> None:
        self.corpus = corpus
        self.dir = root
        root.mkdir(parents=True, exist_ok=True)
        for segno, data in corpus.segments.items():
            (root / corpus.seg_name(segno)).write_bytes(data)
        self._undo: list[Callable[[], None]] = []

    def path(self, segno: int) -> Path:
        return self.dir / self.corpus.seg_name(segno)

    def original(self, lsn: int, n: int) -> bytes:
        segno, off = divmod(lsn, self.corpus.seg_size)
        return self.corpus.segments.get(segno, b"")[off : off + n]

    def write(self, lsn: int, data: bytes) -> None:
        """Overwrite file bytes at WAL position ``lsn`` (within one segment)."""
        segno, off = divmod(lsn, self.corpus.seg_size)
        p = self.path(segno)
        orig = self.original(lsn, len(data))
        fd = os.open(p, os.O_WRONLY)
        try:
            os.pwrite(fd, data, off)
        finally:
            os.close(fd)

        def undo() -> None:
            fd = os.open(p, os.O_WRONLY)
            try:
                os.pwrite(fd, orig, off)
                size = len(self.corpus.segments[segno])
                if off + len(data) > size:
                    os.ftruncate(fd, size)
            finally:
                os.close(fd)
        self._undo.append(undo)

    def write_record(self, lsn: int, raw: bytes) -> None:
        """Write a record of the original length back where it lies, across pages."""
        done = 0
        for pos, n in record_chunks(lsn, len(raw), self.corpus.seg_size):
            self.write(pos, raw[done : done + n])
            done += n

    def truncate(self, segno: int, size: int) -> None:
        p = self.path(segno)
        os.truncate(p, size)

        def undo() -> None:
            p.write_bytes(self.corpus.segments[segno])
        self._undo.append(undo)

    def rename(self, segno: int, new_name: str) -> None:
        p = self.path(segno)
        q = self.dir / new_name
        os.rename(p, q)
        self._undo.append(lambda: os.rename(q, p))

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()


# -- the decoder target -----------------------------------------------------------------
@dataclass
class WalTarget:
    """The corpus, the scratch directory, and the records worth aiming at."""

    corpus: WalCorpus
    scratch: ScratchWal
    by_comp: dict[str, list[int]] = field(default_factory=dict)
    with_image: list[int] = field(default_factory=list)
    with_blocks: list[int] = field(default_factory=list)
    multi_page: list[int] = field(default_factory=list)
    seg_crossing: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        seg = self.corpus.seg_size
        for i, r in enumerate(self.corpus.records):
            for c in r.compressions:
                self.by_comp.setdefault(c, []).append(i)
            if r.images:
                self.with_image.append(i)
            if r.nblocks or r.main_len:
                self.with_blocks.append(i)
            if r.lsn // XLOG_BLCKSZ != (r.lsn + r.tot_len) // XLOG_BLCKSZ:
                self.multi_page.append(i)
            if r.lsn // seg != (r.end_lsn - 1) // seg and (r.end_lsn - 1) // seg in self.corpus.segments:
                self.seg_crossing.append(i)

    def pick(self, rng: random.Random, pool: Sequence[int] | None = None) -> int:
        if pool:
            return rng.choice(pool)
        return rng.randrange(len(self.corpus.records))

    def window(self, rng: random.Random, idx: int) -> tuple[int, int]:
        """Read from a record 0-3 before the target to two records after it."""
        recs = self.corpus.records
        start = recs[max(0, idx - rng.randint(0, 3))].lsn
        stop = recs[idx + 2].lsn if idx + 2 < len(recs) else self.corpus.end
        return start, stop

    def read(self, start: int, stop: int, end: int | None = None) -> int:
        """WalReader from ``start``: decode every record and restore every image,
        until a record begins at ``stop``. Returns the number of records."""
        n = 0
        it = iter(WalReader(self.scratch.dir, start, end))
        try:
            for rec in it:
                seg, off = self.corpus.where(rec.lsn)
                for blk in rec.blocks.values():
                    if blk.has_image:
                        page = restore_block_image(blk, rec.lsn, segment=seg, offset=off)
                        if len(page) != BLCKSZ:
                            raise BadResult(f"restored image is {len(page)} bytes")
                n += 1
                if rec.lsn >= stop:
                    break
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
        return n


WalCategory = Callable[[random.Random, WalTarget], tuple[str, Action]]


def _reader_action(t: WalTarget, start: int, stop: int, end: int | None = None) -> Action:
    return lambda: t.read(start, stop, end)


def cat_bitflip(rng: random.Random, t: WalTarget) -> tuple[str, Action]:
    """Flip 1-8 bits of a record as it lies in the file (or of a page header it spans)."""
    idx = t.pick(rng)
    r = t.corpus.records[idx]
    flips: dict[int, int] = {}
    if rng.random() < 0.2:
        page = rng.choice(record_pages(r))
        hsize = SizeOfXLogLongPHD if page % t.corpus.seg_size == 0 else SizeOfXLogShortPHD
        for _ in range(rng.randint(1, 4)):
            p = page + rng.randrange(hsize)
            flips[p] = flips.get(p, 0) ^ (1 << rng.randrange(8))
        where = f"page header {format_lsn(page)}"
    else:
        chunks = record_chunks(r.lsn, r.tot_len, t.corpus.seg_size)
        for _ in range(rng.randint(1, 8)):
            k = rng.randrange(r.tot_len)
            for pos, n in chunks:
                if k < n:
                    flips[pos + k] = flips.get(pos + k, 0) ^ (1 << rng.randrange(8))
                    break
                k -= n
        where = f"record {format_lsn(r.lsn)}"
    for p, mask in flips.items():
        if p // t.corpus.seg_size in t.corpus.segments:
            t.scratch.write(p, bytes([t.scratch.original(p, 1)[0] ^ mask]))
    return f"{len(flips)} bytes flipped in {where}", _reader_action(t, *t.window(rng, idx))


def cat_bitflip_crc(rng: random.Random, t: WalTarget) -> tuple[str, Action]:
    """Flip bits inside a record, then fix its CRC so the decoder sees the damage."""
    idx = t.pick(rng, t.with_blocks)
    r = t.corpus.records[idx]
    raw = t.corpus.raws[r.lsn]
    _fields, regions = record_layout(raw)
    hdr_end = regions[0].pos if regions else len(raw)
    if rng.random() < 0.6:  # aim at the headers: xl_info/xl_rmid and block headers
        raw2 = flip_bits(rng, raw, rng.randint(1, 3), 16, hdr_end)
        raw2 = raw2[:20] + raw[20:24] + raw2[24:]
    else:
        raw2 = flip_bits(rng, raw, lo=SizeOfXLogRecord)
    t.scratch.write_record(r.lsn, fix_crc(raw2))
    return f"bits flipped in {format_lsn(r.lsn)}, CRC fixed", _reader_action(t, *t.window(rng, idx))


def cat_truncate(rng: random.Random, t: WalTarget) -> tuple[str, Action]:
    """Cut the segment file holding a record somewhere around it."""
    idx = t.pick(rng, t.multi_page if rng.random() < 0.5 else None)
    r = t.corpus.records[idx]
    segno, off = divmod(r.lsn, t.corpus.seg_size)
    full = len(t.corpus.segments[segno])
    x = rng.random()
    if x < 0.1:
        size = rng.randint(0, SizeOfXLogLongPHD)
    else:
        size = rng.randint(max(0, off - 64), min(full, off + r.tot_len + 256))
        if x < 0.4:
            size -= size % XLOG_BLCKSZ
    t.scratch.truncate(segno, size)
    end = t.corpus.end if rng.random() < 0.5 else None
    start, stop = t.window(rng, idx)
    return f"segment {t.corpus.seg_name(segno)} cut to {size} bytes, end={end}", \
        _reader_action(t, start, stop, end)


def cat_missing_segment(rng: random.Random, t: WalTarget) -> tuple[str, Action]:
    """A segment the reader needs is not there (removed, or under another name)."""
    seg = t.corpus.seg_size
    end = t.corpus.end if rng.random() < 0.5 else None
    if t.seg_crossing and rng.random() < 0.6:
        idx = rng.choice(t.seg_crossing)
        r = t.corpus.records[idx]
        nxt = (r.end_lsn - 1) // seg
        t.scratch.rename(nxt, t.corpus.seg_name(nxt) + ".gone")
        start, _ = t.window(rng, idx)
        return f"segment {t.corpus.seg_name(nxt)} removed, end={end}", \
            _reader_action(t, start, nxt * seg + seg, end)
    idx = t.pick(rng)
    r = t.corpus.records[idx]
    segno = r.lsn // seg
    other = segno + rng.choice((1, -1, 2))
    name = t.corpus.seg_name(other) if other not in t.corpus.segments else t.corpus.seg_name(segno) + ".gone"
    t.scratch.rename(segno, name)
    return f"segment {t.corpus.seg_name(segno)} renamed to {name}, end={end}", \
        _reader_action(t, *t.window(rng, idx), end)


def _page_at(t: WalTarget, page: int) -> bytes:
    return t.scratch.original(page, XLOG_BLCKSZ)


def _with_pageaddr(page: bytes, addr: int) -> bytes:
    return page[:8] + struct.pack("<Q", addr) + page[16:]


def cat_splice(rng: random.Random, t: WalTarget) -> tuple[str, Action]:
    """Another page where a record's page should be: copied raw, with its pageaddr
    made to fit, the previous page again, two pages swapped, or zeros."""
    idx = t.pick(rng, t.multi_page if rng.random() < 0.5 else None)
    r = t.corpus.records[idx]
    seg = t.corpus.seg_size
    pages = [p for p in record_pages(r) if len(_page_at(t, p)) == XLOG_BLCKSZ]
    if not pages:
        return "no page to splice", _reader_action(t, *t.window(rng, idx))
    p = rng.choice(pages)
    segno = rng.choice(list(t.corpus.segments))
    npages = len(t.corpus.segments[segno]) // XLOG_BLCKSZ
    q = segno * seg + rng.randrange(npages) * XLOG_BLCKSZ
    kind = rng.choice(("raw", "fit", "fit", "previous", "swap", "zeros"))
    if kind == "raw":
        t.scratch.write(p, _page_at(t, q))
    elif kind == "fit":
        t.scratch.write(p, _with_pageaddr(_page_at(t, q), p))
    elif kind == "previous" and p % seg:
        t.scratch.write(p, _with_pageaddr(_page_at(t, p - XLOG_BLCKSZ), p))
    elif kind == "swap" and len(_page_at(t, p + XLOG_BLCKSZ)) == XLOG_BLCKSZ and (p + XLOG_BLCKSZ) % seg:
        a, b = _page_at(t, p), _page_at(t, p + XLOG_BLCKSZ)
        t.scratch.write(p, _with_pageaddr(b, p))
        t.scratch.write(p + XLOG_BLCKSZ, _with_pageaddr(a, p + XLOG_BLCKSZ))
    else:
        kind = "zeros"
        t.scratch.write(p, bytes(XLOG_BLCKSZ))
    return f"page {format_lsn(p)} <- {kind} {format_lsn(q)}", _reader_action(t, *t.window(rng, idx))


# (name, offset in the page, size); the last three only on a segment's first page
_PAGE_FIELDS = (("xlp_magic", 0, 2), ("xlp_info", 2, 2), ("xlp_tli", 4, 4), ("xlp_pageaddr", 8, 8),
                ("xlp_rem_len", 16, 4), ("xlp_sysid", 24, 8), ("xlp_seg_size", 32, 4),
                ("xlp_xlog_blcksz", 36, 4))


def cat_page_header(rng: random.Random, t: WalTarget) -> tuple[str, Action]:
    """One field of a WAL page header the reader crosses gets a bad value."""
    idx = t.pick(rng, t.multi_page if rng.random() < 0.6 else None)
    r = t.corpus.records[idx]
    seg = t.corpus.seg_size
    if rng.random() < 0.15:
        page = r.lsn - r.lsn % seg
    else:
        page = rng.choice(record_pages(r))
    if len(_page_at(t, page)) < SizeOfXLogLongPHD:
        page = r.lsn - r.lsn % XLOG_BLCKSZ
    fields = _PAGE_FIELDS if page % seg == 0 else _PAGE_FIELDS[:5]
    name, off, size = rng.choice(fields)
    cur = int.from_bytes(_page_at(t, page)[off : off + size], "little")
    if name == "xlp_info" and rng.random() < 0.6:
        new = cur ^ (1 << rng.randrange(5))
    elif name == "xlp_pageaddr" and rng.random() < 0.6:
        new = (cur + rng.choice((-XLOG_BLCKSZ, XLOG_BLCKSZ, seg, -seg, 1))) & (2**64 - 1)
    elif name == "xlp_tli" and rng.random() < 0.6:
        new = (cur + rng.choice((-1, 1))) & 0xFFFFFFFF
    elif name == "xlp_seg_size" and rng.random() < 0.5:
        new = rng.choice((1 << 20, 1 << 24, 1 << 30, 1 << 31, 0, 8192))
    else:
        new = edge_value(rng, size, cur)
    t.scratch.write(page + off, struct.pack(PACK[size], new))
    return f"{name} of page {format_lsn(page)}: {cur:#x} -> {new:#x}", \
        _reader_action(t, *t.window(rng, idx))


def cat_tot_len(rng: random.Random, t: WalTarget) -> tuple[str, Action]:
    """xl_tot_len says something else: 0, too short, off by a few, a page, 1 GB, 4 GB."""
    idx = t.pick(rng, t.multi_page if rng.random() < 0.3 else None)
    r = t.corpus.records[idx]
    raw = t.corpus.raws[r.lsn]
    new = rng.choice((0, 1, 23, 24, 25, r.tot_len - 1, r.tot_len + 1, r.tot_len - 8, r.tot_len + 8,
                      r.tot_len * 2, 8192, 8193, 0x3FFFFFFF, 0x40000000, 0xFFFFFFFF,
                      rng.randint(0, 0xFFFFFFFF))) & 0xFFFFFFFF
    raw2 = struct.pack("<I", new) + raw[4:]
    fixed = rng.random() < 0.5
    t.scratch.write_record(r.lsn, fix_crc(raw2) if fixed else raw2)
    return f"xl_tot_len of {format_lsn(r.lsn)}: {r.tot_len} -> {new} (crc {'fixed' if fixed else 'stale'})", \
        _reader_action(t, *t.window(rng, idx))


def _patch_field(rng: random.Random, t: WalTarget, kinds: tuple[str, ...], pool: Sequence[int]) -> tuple[str, Action]:
    idx = t.pick(rng, pool)
    r = t.corpus.records[idx]
    raw = t.corpus.raws[r.lsn]
    fields = [f for f in record_layout(raw)[0] if f.kind in kinds]
    if not fields:
        return "no such field", _reader_action(t, *t.window(rng, idx))
    f = rng.choice(fields)
    cur = int.from_bytes(raw[f.pos : f.pos + f.size], "little")
    if f.kind == "block_id":
        new = rng.choice((rng.randrange(256), rng.randint(33, 251), rng.randint(252, 255),
                          max(0, cur - 1), 0, 32))
    elif f.kind in ("fork_flags", "bimg_info") and rng.random() < 0.7:
        new = cur ^ (1 << rng.randrange(8))
    elif f.size > 4:  # rnode: change one of its three u32s
        k = rng.randrange(3) * 4
        cur = int.from_bytes(raw[f.pos + k : f.pos + k + 4], "little")
        f = Field(f.kind, f.pos + k, 4, f.block_id)
        new = edge_value(rng, 4, cur)
    else:
        new = edge_value(rng, f.size, cur)
    raw2 = raw[: f.pos] + new.to_bytes(f.size, "little") + raw[f.pos + f.size :]
    fixed = rng.random() < 0.9
    t.scratch.write_record(r.lsn, fix_crc(raw2) if fixed else raw2)
    return (f"{f.kind} (block {f.block_id}) of {format_lsn(r.lsn)}: {cur} -> {new}"
            f"{'' if fixed else ' crc stale'}"), _reader_action(t, *t.window(rng, idx))


def cat_block_header(rng: random.Random, t: WalTarget) -> tuple[str, Action]:
    """Bogus block ids, fork flags, relfilenodes, block numbers, origin and xid headers."""
    return _patch_field(rng, t, ("block_id", "fork_flags", "rnode", "blkno", "origin", "toplevel_xid"),
                        t.with_blocks)


def cat_lengths(rng: random.Random, t: WalTarget) -> tuple[str, Action]:
    """Length fields with huge or off-by-a-few values: block data, image, hole, main data."""
    pool = t.with_image if rng.random() < 0.5 else t.with_blocks
    return _patch_field(rng, t, ("data_len", "bimg_len", "hole_offset", "hole_length", "main_len",
                                 "bimg_info"), pool)


def _cat_image(method: str) -> WalCategory:
    def cat(rng: random.Random, t: WalTarget) -> tuple[str, Action]:
        pool = t.by_comp.get(method)
        if not pool:
            return f"no {method} image in the corpus", lambda: None
        idx = rng.choice(pool)
        r = t.corpus.records[idx]
        raw = t.corpus.raws[r.lsn]
        fields, regions = record_layout(raw)
        images = [g for g in regions if g.kind == "image" and g.bimg_info & BKPIMAGE_COMPRESSED_MASK]
        g = rng.choice(images)
        b = bytearray(raw)
        if rng.random() < 0.75:
            payload, what = edit_bytes(rng, bytes(raw[g.pos : g.pos + g.size]), resize=False)
            b[g.pos : g.pos + g.size] = payload
        else:
            mine = [f for f in fields if f.block_id == g.block_id and f.kind in ("bimg_info", "hole_length", "hole_offset")]
            f = rng.choice(mine)
            cur = int.from_bytes(raw[f.pos : f.pos + f.size], "little")
            if f.kind == "bimg_info":
                others = [m for m in (BKPIMAGE_COMPRESS_PGLZ, BKPIMAGE_COMPRESS_LZ4, BKPIMAGE_COMPRESS_ZSTD)
                          if not cur & m]
                new = rng.choice(((cur & ~BKPIMAGE_COMPRESSED_MASK) | rng.choice(others),
                                  cur ^ BKPIMAGE_HAS_HOLE, cur | BKPIMAGE_COMPRESSED_MASK,
                                  cur ^ (1 << rng.randrange(8))))
            else:
                new = edge_value(rng, f.size, cur)
            b[f.pos : f.pos + f.size] = new.to_bytes(f.size, "little")
            what = f"{f.kind} {cur:#x}->{new:#x}"
        t.scratch.write_record(r.lsn, fix_crc(b))
        return f"{method} image of block {g.block_id} at {format_lsn(r.lsn)}: {what}", \
            _reader_action(t, *t.window(rng, idx))
    cat.__doc__ = f"A {method}-compressed full-page image with a broken payload or header (CRC fixed)."
    return cat


def cat_record_direct(rng: random.Random, t: WalTarget) -> tuple[str, Action]:
    """decode_record on a record with bytes inserted, cut or changed (lengths the
    file layout cannot carry), then every image restored."""
    idx = t.pick(rng, t.with_blocks)
    r = t.corpus.records[idx]
    raw = t.corpus.raws[r.lsn]
    _fields, regions = record_layout(raw)
    hdr_end = regions[0].pos if regions else len(raw)
    if rng.random() < 0.5 and hdr_end > SizeOfXLogRecord:
        head, what = edit_bytes(rng, raw[SizeOfXLogRecord:hdr_end], resize=True)
        raw2 = raw[:SizeOfXLogRecord] + head + raw[hdr_end:]
    else:
        raw2, what = edit_bytes(rng, raw, resize=True)
    if len(raw2) >= 4 and rng.random() < 0.6:
        raw2 = struct.pack("<I", len(raw2)) + raw2[4:]
        what += ", xl_tot_len fixed"
    seg, off = t.corpus.where(r.lsn)

    def action() -> None:
        rec = decode_record(raw2, r.lsn, r.end_lsn, segment=seg, offset=off)
        for blk in rec.blocks.values():
            if blk.has_image and len(restore_block_image(blk, r.lsn, segment=seg, offset=off)) != BLCKSZ:
                raise BadResult("restored image is not a page")
    return f"{format_lsn(r.lsn)}: {what}", action


def cat_image_direct(rng: random.Random, t: WalTarget) -> tuple[str, Action]:
    """restore_block_image on a real block image with its payload, hole and
    bimg_info edited freely (sizes and values no decoder would let through)."""
    idx = t.pick(rng, t.with_image)
    r = t.corpus.records[idx]
    rec = decode_record(t.corpus.raws[r.lsn], r.lsn, r.end_lsn)
    blk = rng.choice([b for b in rec.blocks.values() if b.has_image])
    changes: dict[str, Any] = {}
    for _ in range(rng.randint(1, 2)):
        what = rng.choice(("payload", "payload", "hole_offset", "hole_length", "bimg_info", "bimg_len"))
        if what == "payload":
            changes["bkp_image"], op = edit_bytes(rng, blk.bkp_image, resize=True)
            changes["_op"] = op
        elif what == "bimg_info":
            changes[what] = rng.choice((blk.bimg_info ^ (1 << rng.randrange(8)), rng.randrange(256)))
        else:
            changes[what] = rng.choice((edge_value(rng, 2, getattr(blk, what)), -1, -BLCKSZ, BLCKSZ * 2))
    op = changes.pop("_op", "")
    blk2 = dataclasses.replace(blk, **changes)
    seg, off = t.corpus.where(r.lsn)

    def action() -> None:
        page = restore_block_image(blk2, r.lsn, segment=seg, offset=off)
        if len(page) != BLCKSZ:
            raise BadResult(f"restored image is {len(page)} bytes")
    desc = ", ".join(f"{k}={v if k != 'bkp_image' else op}" for k, v in changes.items())
    return f"block {blk.block_id} of {format_lsn(r.lsn)} (bimg_info {blk.bimg_info:#x}): {desc}", action


WAL_CATEGORIES: dict[str, WalCategory] = {
    "bitflip": cat_bitflip,
    "bitflip_crc": cat_bitflip_crc,
    "truncate": cat_truncate,
    "missing_segment": cat_missing_segment,
    "splice": cat_splice,
    "page_header": cat_page_header,
    "tot_len": cat_tot_len,
    "block_header": cat_block_header,
    "lengths": cat_lengths,
    "image_pglz": _cat_image("pglz"),
    "image_lz4": _cat_image("lz4"),
    "image_zstd": _cat_image("zstd"),
    "record_direct": cat_record_direct,
    "image_direct": cat_image_direct,
}
