"""Render decoded records: pg_waldump-style text lines and JSON objects.

Names come from a major's rmgr table (``table``, default PG15): ``redodiff decode``
passes the one of the WAL it reads (``pyredo.rmgrlist.table_for(reader.major)``)."""

from __future__ import annotations

from typing import Any

from pyredo.rmgrlist import PG15, RmgrTable
from pyredo.wal.lsn import format_lsn
from pyredo.wal.record import (
    BKPIMAGE_COMPRESS_LZ4,
    BKPIMAGE_COMPRESS_PGLZ,
    BKPIMAGE_COMPRESS_ZSTD,
    BKPIMAGE_COMPRESSED_MASK,
    FORK_NAMES,
    XLR_RMGR_INFO_MASK,
    DecodedBkpBlock,
    DecodedXLogRecord,
)


def fpi_len(rec: DecodedXLogRecord) -> int:
    return sum(b.bimg_len for b in rec.blocks.values() if b.has_image)


def identify(rec: DecodedXLogRecord, table: RmgrTable = PG15) -> str:
    r = table.get(rec.rmid)
    ident = r.identify(rec.info) if r is not None else None
    return ident if ident is not None else f"UNKNOWN ({rec.info & XLR_RMGR_INFO_MASK:x})"


def describe(rec: DecodedXLogRecord, table: RmgrTable = PG15) -> str | None:
    """The rmgr's description (pg_waldump's rm_desc) where pyredo has one."""
    r = table.get(rec.rmid)
    if r is None:
        return None
    try:
        return r.describe(rec)
    except Exception:  # a description must never stop a dump
        return None


def compression_method(blk: DecodedBkpBlock) -> str | None:
    info = blk.bimg_info
    if not info & BKPIMAGE_COMPRESSED_MASK:
        return None
    if info & BKPIMAGE_COMPRESS_PGLZ:
        return "pglz"
    if info & BKPIMAGE_COMPRESS_LZ4:
        return "lz4"
    if info & BKPIMAGE_COMPRESS_ZSTD:
        return "zstd"
    return "unknown"


def block_json(blk: DecodedBkpBlock) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": blk.block_id,
        "spc": blk.rnode.spc,
        "db": blk.rnode.db,
        "rel": blk.rnode.rel,
        "fork": FORK_NAMES[blk.forknum] if blk.forknum < len(FORK_NAMES) else blk.forknum,
        "blk": blk.blkno,
        "has_image": blk.has_image,
        "apply_image": blk.apply_image,
        "will_init": blk.will_init,
        "data_len": blk.data_len,
    }
    if blk.has_image:
        out["image"] = {
            "bimg_len": blk.bimg_len,
            "hole_offset": blk.hole_offset,
            "hole_length": blk.hole_length,
            "compression": compression_method(blk),
        }
    return out


def record_json(rec: DecodedXLogRecord, table: RmgrTable = PG15) -> dict[str, Any]:
    ident = identify(rec, table)
    extra = describe(rec, table)
    return {
        "lsn": format_lsn(rec.lsn),
        "end_lsn": format_lsn(rec.end_lsn),
        "prev": format_lsn(rec.prev),
        "rmgr": table.rmgr_name(rec.rmid),
        "info": rec.info,
        "xid": rec.xid,
        "total_len": rec.tot_len,
        "rec_len": rec.tot_len - fpi_len(rec),
        "main_data_len": len(rec.main_data),
        "blocks": [block_json(b) for b in rec.blocks.values()],
        "desc": f"{ident} {extra}" if extra else ident,
    }


def _lsn08(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:08X}"


def record_text(rec: DecodedXLogRecord, details: bool = False, table: RmgrTable = PG15) -> str:
    """One line in pg_waldump's format (block references in its short form,
    or one per line with image details when ``details``)."""
    tot = rec.tot_len
    line = (
        f"rmgr: {table.rmgr_name(rec.rmid):<11} len (rec/tot): {tot - fpi_len(rec):6d}/{tot:6d}, "
        f"tx: {rec.xid:10d}, lsn: {_lsn08(rec.lsn)}, prev {_lsn08(rec.prev)}, "
        f"desc: {identify(rec, table)} {describe(rec, table) or ''}"
    )
    parts = [line]
    for blk in rec.blocks.values():
        r = blk.rnode
        fork = FORK_NAMES[blk.forknum] if blk.forknum < len(FORK_NAMES) else str(blk.forknum)
        if details:
            s = f"\n\tblkref #{blk.block_id}: rel {r.spc}/{r.db}/{r.rel} fork {fork} blk {blk.blkno}"
            if blk.has_image:
                verif = "" if blk.apply_image else " for WAL verification"
                s += f" (FPW{verif}); hole: offset: {blk.hole_offset}, length: {blk.hole_length}"
                method = compression_method(blk)
                if method:
                    saved = 8192 - blk.hole_length - blk.bimg_len
                    s += f", compression saved: {saved}, method: {method}"
            parts.append(s)
        else:
            forkpart = f" fork {fork}" if blk.forknum != 0 else ""
            s = f", blkref #{blk.block_id}: rel {r.spc}/{r.db}/{r.rel}{forkpart} blk {blk.blkno}"
            if blk.has_image:
                s += " FPW" if blk.apply_image else " FPW for WAL verification"
            parts.append(s)
    return "".join(parts)
