"""The wal-redo protocol codec, byte for byte, and the client's request checks (no PostgreSQL)."""

from __future__ import annotations

import os
import shutil
import struct
import time
from pathlib import Path

import pytest
from factories import block, record

from oracles.pgbin import SetupError
from oracles.walredo import WalRedoError, WalRedoProcess, WalRedoRequestError, describe_returncode
from oracles.walredo_protocol import (
    BLCKSZ,
    PING_PAYLOAD,
    TAG_LAYOUTS,
    MessageReader,
    ProtocolError,
    TagLayout,
    apply_msg,
    begin_msg,
    build_request,
    decode_tag,
    encode_tag,
    get_page_msg,
    parse_request,
    ping_msg,
    push_page_msg,
    tag_size,
)
from oracles.walredo_routing import first_record_problem, records_by_block
from oracles.walredo_server import SOURCE_DIR, ensure_built
from pyredo.wal.record import (
    BKPBLOCK_HAS_IMAGE,
    BKPBLOCK_WILL_INIT,
    BufferTag,
    DecodedXLogRecord,
)

TAG = BufferTag(1663, 5, 16384, 0, 7)
VM_TAG = BufferTag(1663, 5, 16384, 2, 0)


# -- BufferTag layouts --------------------------------------------------------------
def test_neon_tag_layout() -> None:
    # forknum u8, then spc, db, rel, blkno as u32 BE
    assert encode_tag(BufferTag(0x01020304, 0x05060708, 0x090A0B0C, 2, 0x0D0E0F10), "neon") == bytes.fromhex(
        "02" "01020304" "05060708" "090a0b0c" "0d0e0f10")
    assert tag_size("neon") == 17


def test_old_tag_layout_matches_the_seed_client() -> None:
    # build_begin_redo_for_block_msg in the seed: spcnode, dbnode, relnode, forknum, blknum as u32
    assert encode_tag(BufferTag(0x01020304, 0x05060708, 0x090A0B0C, 2, 0x0D0E0F10), "old") == bytes.fromhex(
        "01020304" "05060708" "090a0b0c" "00000002" "0d0e0f10")
    assert tag_size("old") == 20


@pytest.mark.parametrize("layout", TAG_LAYOUTS)
def test_tag_roundtrip(layout: TagLayout) -> None:
    for tag in (TAG, VM_TAG, BufferTag(0, 0, 0, 3, 0), BufferTag(2**32 - 1, 2**32 - 1, 2**32 - 1, 1, 2**32 - 2)):
        assert decode_tag(encode_tag(tag, layout), layout) == tag


def test_tag_errors() -> None:
    with pytest.raises(ProtocolError, match="32 bits"):
        encode_tag(BufferTag(2**32, 0, 0, 0, 0))
    with pytest.raises(ProtocolError, match="one byte"):
        encode_tag(BufferTag(1, 1, 1, 256, 0), "neon")
    assert encode_tag(BufferTag(1, 1, 1, 256, 0), "old")[12:16] == b"\x00\x00\x01\x00"
    with pytest.raises(ProtocolError, match="layout"):
        encode_tag(TAG, "bogus")  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="17 bytes"):
        decode_tag(b"\x00" * 16, "neon")


# -- messages, byte for byte ----------------------------------------------------------
def test_begin_message_bytes() -> None:
    tag_bytes = bytes.fromhex("00" "0000067f" "00000005" "00004000" "00000007")
    # neon: length 4 + 1 + 4*4 = 21, as Neon writes it
    assert begin_msg(TAG) == b"B" + bytes.fromhex("00000015") + tag_bytes
    # old: length 4 + 5*4 = 24, as the seed writes it
    assert begin_msg(TAG, "old") == b"B" + bytes.fromhex("00000018") + bytes.fromhex(
        "0000067f" "00000005" "00004000" "00000000" "00000007")


def test_get_page_message_bytes() -> None:
    assert get_page_msg(TAG) == b"G\x00\x00\x00\x15" + encode_tag(TAG)
    assert get_page_msg(TAG, "old") == b"G\x00\x00\x00\x18" + encode_tag(TAG, "old")


def test_push_page_message_bytes() -> None:
    page = bytes(range(256)) * 32
    msg = push_page_msg(TAG, page)
    assert msg[:1] == b"P"
    assert struct.unpack(">I", msg[1:5])[0] == 4 + 17 + BLCKSZ == len(msg) - 1
    assert msg[5:22] == encode_tag(TAG)
    assert msg[22:] == page
    old = push_page_msg(TAG, page, "old")
    assert struct.unpack(">I", old[1:5])[0] == 4 + 20 + BLCKSZ
    with pytest.raises(ProtocolError, match="8192"):
        push_page_msg(TAG, b"\x00" * 100)


def test_apply_message_bytes() -> None:
    raw = bytes.fromhex("2a000000") + b"record-bytes"
    msg = apply_msg(0x0000000101234568, raw)
    assert msg == b"A" + struct.pack(">I", 4 + 8 + len(raw)) + bytes.fromhex("0000000101234568") + raw
    with pytest.raises(ProtocolError):
        apply_msg(-1, raw)
    with pytest.raises(ProtocolError):
        apply_msg(2**64, raw)


def test_ping_message_bytes() -> None:
    assert ping_msg() == b"H" + struct.pack(">I", 4 + BLCKSZ) + bytes(BLCKSZ)
    assert bytes(BLCKSZ) == PING_PAYLOAD


class Rec:
    def __init__(self, end_lsn: int, raw: bytes) -> None:
        self.end_lsn = end_lsn
        self.raw = raw


def test_build_request_is_the_concatenation() -> None:
    recs = [Rec(0x100, b"one"), Rec(0x200, b"two-two")]
    page = b"\x07" * BLCKSZ
    for layout in TAG_LAYOUTS:
        req = build_request(TAG, page, recs, layout)
        assert req == (begin_msg(TAG, layout) + push_page_msg(TAG, page, layout)
                       + apply_msg(0x100, b"one") + apply_msg(0x200, b"two-two")
                       + get_page_msg(TAG, layout))
    # without a base page: no P
    assert build_request(TAG, None, recs) == (begin_msg(TAG) + apply_msg(0x100, b"one")
                                              + apply_msg(0x200, b"two-two") + get_page_msg(TAG))
    assert build_request(TAG, None, []) == begin_msg(TAG) + get_page_msg(TAG)


# -- decoding ----------------------------------------------------------------------------
@pytest.mark.parametrize("layout", TAG_LAYOUTS)
def test_parse_request_roundtrip(layout: TagLayout) -> None:
    recs = [Rec(0x100, b"one"), Rec(0xFFFF_FFFF_0000_0001, b"x" * 70000)]
    page = bytes(range(256)) * 32
    req = build_request(TAG, page, recs, layout)
    parsed = parse_request(req, layout)
    assert parsed.tag == TAG
    assert parsed.base_page == page
    assert parsed.records == [(0x100, b"one"), (0xFFFF_FFFF_0000_0001, b"x" * 70000)]
    assert parse_request(build_request(TAG, None, recs, layout), layout).base_page is None


def test_reader_is_incremental() -> None:
    req = build_request(TAG, None, [Rec(0x100, b"abc")]) + ping_msg()
    reader = MessageReader()
    got = []
    for i in range(len(req)):  # one byte at a time: None until a message is whole
        reader.feed(req[i : i + 1])
        while (m := reader.next_message()) is not None:
            got.append(m)
    assert [m.type for m in got] == ["B", "A", "G", "H"]
    assert got[0].tag == TAG and got[2].tag == TAG
    assert got[1].end_lsn == 0x100 and got[1].record == b"abc"
    assert got[3].page == bytes(BLCKSZ)
    assert reader.pending == 0


def test_reader_rejects_garbage() -> None:
    r = MessageReader()
    r.feed(b"Z\x00\x00\x00\x04")
    with pytest.raises(ProtocolError, match="unknown message type 0x5A"):
        r.next_message()
    r = MessageReader()
    r.feed(b"A\x00\x00\x00\x02")
    with pytest.raises(ProtocolError, match="invalid message length 2"):
        r.next_message()
    r = MessageReader()
    r.feed(begin_msg(TAG, "old"))  # a 20-byte tag where 17 are expected
    with pytest.raises(ProtocolError, match="17 bytes"):
        r.next_message()


def test_parse_request_rejects_malformed() -> None:
    with pytest.raises(ProtocolError, match="starts with 'B'"):
        parse_request(get_page_msg(TAG))
    with pytest.raises(ProtocolError, match="ends with 'G'"):
        parse_request(begin_msg(TAG) + apply_msg(1, b"x"))
    with pytest.raises(ProtocolError, match="trailing"):
        parse_request(begin_msg(TAG) + get_page_msg(TAG) + b"G")
    other = BufferTag(1663, 5, 16384, 0, 8)
    with pytest.raises(ProtocolError, match="names"):
        parse_request(begin_msg(TAG) + get_page_msg(other))


# -- the client's request checks ----------------------------------------------------------
def _rec(lsn: int, blocks: list[tuple[int, BufferTag, int, bool]], rmid: int = 10, info: int = 0,
         main_data: bytes = b"") -> DecodedXLogRecord:
    refs = [block(block_id, tag.blk, rnode=tag.rnode, fork=tag.fork, flags=flags, apply_image=apply)
            for block_id, tag, flags, apply in blocks]
    return record(rmid, info, main_data, *refs, lsn=lsn, size=64, xid=1)


def test_first_record_needs_image_or_init_without_base() -> None:
    plain = _rec(100, [(0, TAG, 0, False)])
    image = _rec(100, [(0, TAG, BKPBLOCK_HAS_IMAGE, True)])
    check_only_image = _rec(100, [(0, TAG, BKPBLOCK_HAS_IMAGE, False)])  # wal_consistency_checking
    init = _rec(100, [(0, TAG, BKPBLOCK_WILL_INIT, False)])
    assert first_record_problem(TAG, None, [image, plain]) is None
    assert first_record_problem(TAG, None, [init, plain]) is None
    assert first_record_problem(TAG, bytes(BLCKSZ), [plain]) is None
    problem = first_record_problem(TAG, None, [plain, image])
    assert problem is not None and "neither restores a full-page image" in problem
    assert first_record_problem(TAG, None, [check_only_image]) is not None
    assert "no records" in (first_record_problem(TAG, None, []) or "")
    assert "not 8192" in (first_record_problem(TAG, b"x", [image]) or "")
    init_fork = BufferTag(1663, 5, 16384, 3, 0)  # init-fork targets are answered like any other
    assert first_record_problem(init_fork, bytes(BLCKSZ), []) is None


def test_heap2_visible_may_start_a_vm_page() -> None:
    heap = BufferTag(1663, 5, 16384, 0, 3)
    visible = _rec(100, [(0, VM_TAG, 0, False), (1, heap, 0, False)], rmid=9, info=0x40,
                   main_data=struct.pack("<IB", 700, 3))
    assert first_record_problem(VM_TAG, None, [visible]) is None
    # ... but not a heap page, and not a VM block named by anything else
    assert first_record_problem(heap, None, [visible]) is not None
    prune = _rec(100, [(0, VM_TAG, 0, False)], rmid=9, info=0x10)
    assert first_record_problem(VM_TAG, None, [prune]) is not None


def test_records_by_block_routes_vm_clearing_heap_records() -> None:
    heap = BufferTag(1663, 5, 16384, 0, 3)
    # xl_heap_delete: xmax, offnum, infobits, flags=ALL_VISIBLE_CLEARED
    delete = _rec(100, [(0, heap, 0, False)], rmid=10, info=0x10,
                  main_data=struct.pack("<IHBB", 700, 1, 0, 0x01))
    delete_plain = _rec(200, [(0, heap, 0, False)], rmid=10, info=0x10,
                        main_data=struct.pack("<IHBB", 701, 2, 0, 0x00))
    groups = records_by_block([delete, delete_plain])
    assert groups[heap] == [delete, delete_plain]
    assert groups[VM_TAG] == [delete]


def test_client_refuses_before_spawning() -> None:
    # a command that cannot start: the refusal must come first, without spawning anything
    wr = WalRedoProcess(cmd=["/nonexistent/wal-redo"], ping=False)
    plain = _rec(100, [(0, TAG, 0, False)])
    with pytest.raises(WalRedoRequestError) as ei:
        wr.reconstruct(TAG, None, [plain])
    assert ei.value.kind == "refused" and ei.value.tag == TAG
    assert wr.pid is None and wr.spawns == 0
    with pytest.raises(WalRedoError, match="could not start"):
        wr.reconstruct(TAG, bytes(BLCKSZ), [plain])
    wr.close()


def test_describe_returncode() -> None:
    assert describe_returncode(1) == "exited with status 1"
    assert describe_returncode(-9) == "killed by SIGKILL"
    assert describe_returncode(None) == "still running"


# -- the build step -------------------------------------------------------------------
def _fake_pg_config(tmp_path: Path, includedir: Path) -> str:
    script = tmp_path / "pg_config"
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        '  --version) echo "PostgreSQL 15.20";;\n'
        f'  --includedir-server) echo "{includedir}";;\n'
        f'  --pgxs) echo "{tmp_path}/pgxs.mk";;\n'
        "esac\n"
    )
    script.chmod(0o755)
    return str(script)


def test_ensure_built_names_the_package_when_headers_are_missing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pg_walredo.c", "Makefile"):
        shutil.copy(SOURCE_DIR / name, src / name)
    fake = _fake_pg_config(tmp_path, tmp_path / "no-headers-here")
    with pytest.raises(SetupError, match="postgresql-server-dev-15"):
        ensure_built(pg_config=fake, source_dir=src)


def test_ensure_built_skips_make_when_up_to_date(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pg_walredo.c", "Makefile"):
        shutil.copy(SOURCE_DIR / name, src / name)
    so = src / "pg_walredo.so"
    so.write_bytes(b"not really a library")
    later = time.time() + 10
    os.utime(so, (later, later))
    # a pg_config that would fail the build: not called at all when the .so is newer
    assert ensure_built(pg_config="/nonexistent/pg_config", source_dir=src) == so
    os.utime(src / "pg_walredo.c", (later + 10, later + 10))  # a newer source: rebuild needed
    with pytest.raises((SetupError, FileNotFoundError)):
        ensure_built(pg_config="/nonexistent/pg_config", source_dir=src)
