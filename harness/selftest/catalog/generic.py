"""Mutants of Generic redo (pyredo.rmgr.generic), in catalog order."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from harness.selftest.mutants import Mutant, helper, mutant
from pyredo import BLCKSZ

MUTANTS: list[Mutant] = []


def _fragments_shifted(orig: Callable[..., None]) -> Callable[..., None]:
    def applyPageRedo(ctx: Any, page: bytearray, delta: bytes, block_id: int) -> None:
        out = bytearray()
        ptr = 0
        while ptr + 4 <= len(delta):
            offset, length = struct.unpack_from("<HH", delta, ptr)
            shifted = offset + 1 if offset + 1 + length <= BLCKSZ else offset
            out += struct.pack("<HH", shifted, length) + delta[ptr + 4 : ptr + 4 + length]
            ptr += 4 + length
        orig(ctx, page, bytes(out) + delta[ptr:], block_id)

    return applyPageRedo


MUTANTS.append(mutant(
    "generic_fragment_off_by_one", "generic", 0x00, "offset",
    "generic_redo (applyPageRedo) copies each delta fragment one byte past its logged offset",
    helper("applyPageRedo", _fragments_shifted),
    majors=(15, 16, 17, 18),
))
