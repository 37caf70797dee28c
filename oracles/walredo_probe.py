"""What a wal-redo server is, asked before it gets real work.

* ``layout_probe(layout)``: a request whose answer is known -- one ``XLOG_FPI``
  record carrying a full image of the target -- and that answer (the image
  with ``pd_lsn`` set to the record's end LSN, as ``XLogReadBufferForRedoExtended``
  sets it after ``RestoreBlockImage``). A server that reads our BufferTags
  with another layout looks for another block and answers something else (or
  fails), instead of rebuilding every later page silently wrong.
* ``binary_major(argv)``: the PostgreSQL major a server command replays, from
  ``postgres --version`` of the binary its argv runs (through ``runuser``,
  ``env`` and the like), or None when the argv names no postgres binary.

Pure except ``binary_major``, which runs ``--version`` once.
"""

from __future__ import annotations

import functools
import os
import re
import struct
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from oracles.walredo_protocol import TagLayout, apply_msg, begin_msg, get_page_msg
from pyredo.page.bufpage import PageSetLSN
from pyredo.wal.builder import BlockSpec, encode_record
from pyredo.wal.record import BufferTag

__all__ = ["PROBE_TAG", "binary_major", "layout_probe", "version_major"]

BLCKSZ = 8192
RM_XLOG_ID = 0
XLOG_FPI = 0xB0  # pg_control.h
# every field distinct, so a server reading the other layout names another block
PROBE_TAG = BufferTag(1663, 4242, 24242, 0, 7)
PROBE_START_LSN = 0x1_0000_0028  # after a WAL page header; any LSN past the page's works
_PAGE_HEADER = struct.Struct("<QHHHHHHI")  # pd_lsn, checksum, flags, lower, upper, special, version, prune_xid
_PATTERN = b"redodiff tag-layout probe "


def _probe_page() -> bytes:
    """An empty page (pd_lower = pd_upper: nothing for a restore to mask) with a
    pattern in its free space, so a zero or foreign page can never pass."""
    body = (_PATTERN * (BLCKSZ // len(_PATTERN) + 1))[: BLCKSZ - _PAGE_HEADER.size]
    return _PAGE_HEADER.pack(0, 0, 0, BLCKSZ, BLCKSZ, BLCKSZ, BLCKSZ | 4, 0) + body


@functools.cache
def layout_probe(layout: TagLayout) -> tuple[bytes, bytes]:
    """(request, expected answer) for the tag-layout check in ``layout``."""
    page = _probe_page()
    rec = encode_record(RM_XLOG_ID, XLOG_FPI, prev=PROBE_START_LSN - 0x100, blocks=[
        BlockSpec(0, PROBE_TAG.rnode, PROBE_TAG.fork, PROBE_TAG.blk, image=page)])
    end_lsn = PROBE_START_LSN + len(rec)
    request = begin_msg(PROBE_TAG, layout) + apply_msg(end_lsn, rec) + get_page_msg(PROBE_TAG, layout)
    want = bytearray(page)
    PageSetLSN(want, end_lsn)
    return request, bytes(want)


_VERSION = re.compile(rb"\(PostgreSQL\) (\d+)")


def version_major(postgres: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> int:
    """The major of ``postgres --version`` (``postgres (PostgreSQL) 17.8`` -> 17)."""
    res = subprocess.run([os.fspath(postgres), "--version"], capture_output=True, timeout=30,
                         env=dict(env) if env is not None else None, check=False)
    m = _VERSION.search(res.stdout)
    if res.returncode != 0 or m is None:
        raise ValueError(f"`{postgres} --version` did not say which PostgreSQL it is "
                         f"(exit {res.returncode}: {(res.stdout + res.stderr).decode(errors='replace')[:200]!r})")
    return int(m.group(1))


def binary_major(argv: Sequence[str], env: Mapping[str, str] | None = None) -> int | None:
    """The major of the first ``postgres`` binary ``argv`` runs (None: it names none)."""
    for arg in argv:
        p = Path(arg)
        if p.name == "postgres" and p.is_file() and os.access(p, os.X_OK):
            return version_major(p, env)
    return None
