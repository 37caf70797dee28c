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
_ZEROS = memoryview(bytes(BLCKSZ))  # the hole of an image, as a view


def _decompress(blk: DecodedBkpBlock, rawsize: int) -> bytes:
    info = blk.bimg_info
    src = blk.bkp_image
    if info & BKPIMAGE_COMPRESS_PGLZ:
        return pglz_decompress(src, rawsize, check_complete=True)
    if info & BKPIMAGE_COMPRESS_LZ4:
        return lz4.block.decompress(src, uncompressed_size=rawsize)
    if info & BKPIMAGE_COMPRESS_ZSTD:
        # decompress() allocates what the frame header claims, whatever
        # max_output_size says: check the claim first (max_output_size bounds
        # a frame that does not state its size)
        claimed = zstandard.frame_content_size(src)
        if claimed not in (zstandard.CONTENTSIZE_UNKNOWN, rawsize):
            raise ImageError(f"zstd frame of block {blk.block_id} claims {claimed} bytes, "
                             f"expected {rawsize}")
        out = _zstd.decompress(src, max_output_size=rawsize)
        # ZSTD_decompress (PostgreSQL) rejects bytes after the frame; decompress()
        # ignores them. The first frame is known to be small, so this pass is cheap.
        tail = _zstd.decompressobj()
        tail.decompress(src)
        if tail.unused_data:
            raise ImageError(f"zstd image of block {blk.block_id} has {len(tail.unused_data)} "
                             "bytes after its frame")
        return out
    raise ImageError(f"image compressed with unknown method (bimg_info 0x{info:02X})")


def restore_block_image(
    blk: DecodedBkpBlock, lsn: int | None = None, *, segment: str | None = None,
    offset: int | None = None,
) -> bytes:
    """The 8192-byte page that ``blk``'s image stands for: decompressed, hole zero-filled.

    ``lsn``, ``segment`` and ``offset`` (of the record) only locate an ImageError.
    """

    def bad(message: str) -> ImageError:
        return ImageError(message, lsn=lsn, segment=segment, offset=offset)

    if not blk.has_image:
        raise bad(f"block {blk.block_id} has no image")
    # the decoder checks these; a block built by hand must not get past them either
    if not (0 <= blk.hole_length <= BLCKSZ and 0 <= blk.hole_offset <= BLCKSZ - blk.hole_length):
        raise bad(f"image of block {blk.block_id} has a hole {blk.hole_offset}+"
                  f"{blk.hole_length} outside the page")
    rawsize = BLCKSZ - blk.hole_length
    if blk.bimg_info & BKPIMAGE_COMPRESSED_MASK:
        try:
            ptr = _decompress(blk, rawsize)
        except ImageError as e:
            e.lsn, e.segment, e.offset = lsn, segment, offset
            raise
        except (PglzError, lz4.block.LZ4BlockError, zstandard.ZstdError) as e:
            raise bad(f"could not decompress image of block {blk.block_id}: {e}") from e
    else:
        ptr = blk.bkp_image
    if len(ptr) != rawsize:
        raise bad(f"image of block {blk.block_id} is {len(ptr)} bytes, expected {rawsize}")
    if blk.hole_length == 0:
        return bytes(ptr)
    off = blk.hole_offset
    view = memoryview(ptr)  # one copy: the page is joined from views
    return b"".join((view[:off], _ZEROS[: blk.hole_length], view[off:]))
