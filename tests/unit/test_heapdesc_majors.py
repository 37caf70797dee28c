"""Heap descriptions per major (heapdesc.c): 15's words, 16's ``key: value`` pairs (17
the same), 18's INPLACE with its invalidation messages. Checked against pg_waldump of
16, 17 and 18 on real WAL by hand (INSERT, UPDATE, HOT_UPDATE, DELETE, LOCK, CONFIRM,
INPLACE: 0 differences); the records below pin what real WAL rarely holds."""

from __future__ import annotations

import struct

import pytest
from factories import record

from pyredo.rmgr import RM_HEAP_ID
from pyredo.rmgr import heap as h
from pyredo.rmgr.heapdesc import XL_HEAP_INPLACE_18, heap_desc, heap_desc_16, heap_desc_18
from pyredo.rmgrlist import PG15, PG16, PG17, PG18


def _desc(table, info: int, main: bytes) -> str:  # type: ignore[no-untyped-def]
    return table.by_name("Heap").describe(record(RM_HEAP_ID, info, main))


def test_each_major_has_its_heap_desc() -> None:
    assert [t.by_name("Heap").desc for t in (PG15, PG16, PG17, PG18)] == [heap_desc, heap_desc_16,
                                                                            heap_desc_16, heap_desc_18]


@pytest.mark.parametrize(("info", "main", "v15", "v16"), [
    (h.XLOG_HEAP_LOCK, h.XL_HEAP_LOCK.pack(731, 4, h.XLHL_XMAX_LOCK_ONLY | h.XLHL_XMAX_KEYSHR_LOCK, 0),
     "off 4: xid 731: flags 0x00 LOCK_ONLY KEYSHR_LOCK ",
     "xmax: 731, off: 4, infobits: [LOCK_ONLY, KEYSHR_LOCK], flags: 0x00"),
    (h.XLOG_HEAP_DELETE, h.XL_HEAP_DELETE.pack(9, 2, 0, 1), "off 2 flags 0x01 ",
     "xmax: 9, off: 2, infobits: [], flags: 0x01"),
    (h.XLOG_HEAP_HOT_UPDATE, h.XL_HEAP_UPDATE.pack(7, 1, h.XLHL_KEYS_UPDATED, 0x10, 0, 5),
     "off 1 xmax 7 flags 0x10 KEYS_UPDATED ; new off 5 xmax 0",
     "old_xmax: 7, old_off: 1, old_infobits: [KEYS_UPDATED], flags: 0x10, new_xmax: 0, new_off: 5"),
    (h.XLOG_HEAP_TRUNCATE, h.XL_HEAP_TRUNCATE.pack(5, 2, 3) + b"\0\0\0" + struct.pack("<2I", 16400, 16410),
     "cascade restart_seqs nrelids 2 relids 16400 16410",
     "flags: [CASCADE, RESTART_SEQS], nrelids: 2, relids: [16400, 16410]"),
    (h.XLOG_HEAP_TRUNCATE, h.XL_HEAP_TRUNCATE.pack(5, 0, 0) + b"\0\0\0", "nrelids 0 relids",
     "flags: [], nrelids: 0, relids: []"),
    (h.XLOG_HEAP_INSERT | h.XLOG_HEAP_INIT_PAGE, h.XL_HEAP_INSERT.pack(1, 8), "off 1 flags 0x08",
     "off: 1, flags: 0x08"),
])
def test_15_and_16_describe_alike_records_in_their_own_words(info: int, main: bytes, v15: str, v16: str) -> None:
    assert _desc(PG15, info, main) == v15
    assert _desc(PG16, info, main) == _desc(PG17, info, main) == v16


def test_18_inplace_describes_its_invalidation_messages() -> None:
    msgs = (struct.pack("<bxxxII4x", 35, 5, 0xABCD) + struct.pack("<bxxxII4x", -2, 5, 16400)
            + struct.pack("<bxxxII4x", -1, 5, 1259) + struct.pack("<bxxxII4x", -9, 0, 0))
    main = XL_HEAP_INPLACE_18.pack(3, 5, 1663, 1, 4) + msgs
    assert _desc(PG18, h.XLOG_HEAP_INPLACE, main) == (
        "off: 3; relcache init file inval dbid 5 tsid 1663; inval msgs: catcache 35 relcache 16400 "
        "catalog 1259 unrecognized id -9")
    assert _desc(PG18, h.XLOG_HEAP_INPLACE, XL_HEAP_INPLACE_18.pack(3, 5, 1663, 1, 0)) == "off: 3"
    assert _desc(PG17, h.XLOG_HEAP_INPLACE, main) == "off: 3"


def test_a_record_too_short_to_describe_says_so() -> None:
    assert _desc(PG18, h.XLOG_HEAP_INPLACE, XL_HEAP_INPLACE_18.pack(3, 5, 1663, 0, 2)) == \
        "<malformed: 20 bytes of main data>"
    assert _desc(PG16, h.XLOG_HEAP_LOCK, b"\1\2") == "<malformed: 2 bytes of main data>"
