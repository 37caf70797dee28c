"""Restore a full-page image from a block reference (xlogreader.c RestoreBlockImage)."""

from __future__ import annotations

import lz4.block
import zstandard

from pyredo import BLCKSZ
from pyredo.errors import ImageError
from pyredo.wal.pglz import PglzError, pglz_decompress
from pyredo.wal.record import (
    BKPIMAGE_COMPRESS_LZ4,
    BKPIMAGE_COMPRESS_PGLZ,
    BKPIMAGE_COMPRESS_ZSTD,
    BKPIMAGE_COMPRESSED_MASK,
    DecodedBkpBlock,
)

_zstd = zstandard.ZstdDecompressor()


def _decompress(blk: DecodedBkpBlock, rawsize: int) -> bytes:
    info = blk.bimg_info
    src = blk.bkp_image
    if info & BKPIMAGE_COMPRESS_PGLZ:
        return pglz_decompress(src, rawsize, check_complete=True)
    if info & BKPIMAGE_COMPRESS_LZ4:
        return lz4.block.decompress(src, uncompressed_size=rawsize)
    if info & BKPIMAGE_COMPRESS_ZSTD:
        # max_output_size bounds memory whatever the frame header claims
        return _zstd.decompress(src, max_output_size=rawsize)
    raise ImageError(f"image compressed with unknown method (bimg_info 0x{info:02X})")


def restore_block_image(blk: DecodedBkpBlock, lsn: int | None = None) -> bytes:
    """The 8192-byte page that ``blk``'s image stands for: decompressed, hole zero-filled."""
    if not blk.has_image:
        raise ImageError(f"block {blk.block_id} has no image", lsn=lsn)
    rawsize = BLCKSZ - blk.hole_length
    if blk.bimg_info & BKPIMAGE_COMPRESSED_MASK:
        try:
            ptr = _decompress(blk, rawsize)
        except ImageError as e:
            e.lsn = lsn
            raise
        except (PglzError, lz4.block.LZ4BlockError, zstandard.ZstdError) as e:
            raise ImageError(f"could not decompress image of block {blk.block_id}: {e}", lsn=lsn) from e
    else:
        ptr = blk.bkp_image
    if len(ptr) != rawsize:
        raise ImageError(
            f"image of block {blk.block_id} is {len(ptr)} bytes, expected {rawsize}", lsn=lsn
        )
    if blk.hole_length == 0:
        return bytes(ptr)
    off = blk.hole_offset
    return bytes(ptr[:off]) + bytes(blk.hole_length) + bytes(ptr[off:])
