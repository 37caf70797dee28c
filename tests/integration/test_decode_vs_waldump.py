"""The decoder agrees with pg_waldump (and pg_walinspect) on real WAL, of every major.

A mixed workload (heap insert/update/delete/HOT, TOAST, COPY, btree, hash,
gin, gist, spgist, brin and bloom indexes, sequences, VACUUM, TRUNCATE and a
30 kB record) runs with 1 MB WAL segments, so records cross page and segment
boundaries often, under each wal_compression setting the build has, on
PostgreSQL 15, 16, 17 and 18 (a major that is not installed is skipped, naming
``redodiff pg install``). Every record that major's pg_waldump lists must come
out of ``redodiff decode --format jsonl`` with the same LSN, rmgr, record type
(the high bits of xl_info — pg_waldump does not print the low ones), xid, prev,
lengths and block references, and no extra records, and for Heap, Heap2 and Btree
records the same description; end LSN and main-data length
are checked against pg_walinspect where the build has it (not the 16 wheel).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from typing import Any

import pytest
from click.testing import CliRunner
from majors import MAJORS, pg_of

from generators.capabilities import fit_steps
from harness.campaign.demo import DEMO_STEPS
from harness.cli import main
from harness.clusters.local import LocalCluster
from harness.verify.capture import capture
from pyredo.wal.lsn import format_lsn, parse_lsn, segment_file_name

COMPRESSIONS = ("off", "pglz", "lz4", "zstd")
# rmgrs whose description (pg_waldump's rm_desc) must match too, in every major
DESC_COMPARED = ("Heap", "Heap2", "Btree")

MAIN = re.compile(
    r"^rmgr: (\S+)\s+len \(rec/tot\):\s*(\d+)/\s*(\d+), tx:\s*(\d+), lsn: (\S+), prev (\S+), desc: (\S+) ?(.*)$"
)
BLOCK = re.compile(
    r"^\tblkref #(\d+): rel (\d+)/(\d+)/(\d+) fork (\w+) blk (\d+)"
    r"(?: \(FPW( for WAL verification)?\); hole: offset: (\d+), length: (\d+)"
    r"(?:, compression saved: \d+, method: (\w+))?)?$"
)


def waldump(pg_waldump: str, pg: LocalCluster, start: int, end: int) -> list[dict[str, Any]]:
    # name the segments: without them pg_waldump takes the segment size from whichever
    # file it lists first, and a preallocated, still zero-filled one says 0 bytes
    seg = pg.settings.wal_segsize_mb << 20
    first, last = (segment_file_name(1, lsn // seg, seg) for lsn in (start, end - 1))
    res = subprocess.run(
        [pg_waldump, "-b", "-p", str(pg.waldir), "-s", format_lsn(start), "-e", format_lsn(end), first, last],
        capture_output=True, text=True, check=False,
    )
    assert res.returncode == 0, res.stderr
    recs: list[dict[str, Any]] = []
    for line in res.stdout.splitlines():
        if not line.strip():
            continue
        m = MAIN.match(line)
        if m:
            rmgr, rec_len, tot, xid, lsn, prev, ident, desc = m.groups()
            recs.append({"rmgr": rmgr, "rec_len": int(rec_len), "total_len": int(tot), "xid": int(xid),
                         "lsn": parse_lsn(lsn), "prev": parse_lsn(prev), "type": ident, "desc": desc,
                         "blocks": []})
            continue
        b = BLOCK.match(line)
        assert b, f"unparsed pg_waldump line: {line!r}"
        bid, spc, db, rel, fork, blk, verif, hoff, hlen, method = b.groups()
        block = {"id": int(bid), "spc": int(spc), "db": int(db), "rel": int(rel), "fork": fork,
                 "blk": int(blk), "has_image": hoff is not None, "apply_image": hoff is not None and not verif}
        if hoff is not None:
            block["image"] = (int(hoff), int(hlen), method)
        recs[-1]["blocks"].append(block)
    return recs


def ours(pg: LocalCluster, start: int, end: int) -> list[dict[str, Any]]:
    result = CliRunner().invoke(
        main, ["decode", str(pg.waldir), "--start", format_lsn(start), "--end", format_lsn(end), "--format", "jsonl"]
    )
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.parametrize(("major", "compression"), [(m, c) for m in MAJORS for c in COMPRESSIONS])
def test_decode_agrees_with_pg_waldump(major_cluster, major: int, compression: str) -> None:  # type: ignore[no-untyped-def]
    inst = pg_of(major)
    if compression in ("lz4", "zstd") and not inst.has(compression):
        pytest.skip(f"PostgreSQL {inst.version} ({inst.source}) is built without {compression}")
    pg: LocalCluster = major_cluster(major, wal_segsize_mb=1)
    inspect_wal = inst.has("pg_walinspect")
    if inspect_wal:
        pg.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
    pg_waldump = inst.program("pg_waldump")
    pg.execute(f"ALTER SYSTEM SET wal_compression = '{compression}'")
    pg.execute("SELECT pg_reload_conf()")
    assert pg.scalar("SHOW wal_compression") == compression
    cap = capture(pg, fit_steps(DEMO_STEPS, inst.capabilities))
    cap.cleanup()  # only its LSN range is used here
    assert not cap.errors, cap.errors

    theirs = waldump(pg_waldump, pg, cap.start, cap.end)
    mine = ours(pg, cap.start, cap.end)
    assert len(theirs) > 10_000
    assert [r["lsn"] for r in theirs] == [parse_lsn(r["lsn"]) for r in mine], "records listed differ"

    methods: Counter[str | None] = Counter()
    for t, o in zip(theirs, mine, strict=True):
        where = f"record at {format_lsn(t['lsn'])}"
        assert o["rmgr"] == t["rmgr"], where
        assert o["desc"].split(" ")[0] == t["type"], where
        if t["rmgr"] in DESC_COMPARED:
            assert o["desc"].rstrip() == f"{t['type']} {t['desc']}".rstrip(), where
        assert (o["xid"], parse_lsn(o["prev"]), o["total_len"], o["rec_len"]) == (
            t["xid"], t["prev"], t["total_len"], t["rec_len"]), where
        assert len(o["blocks"]) == len(t["blocks"]), where
        for ob, tb in zip(o["blocks"], t["blocks"], strict=True):
            for key in ("id", "spc", "db", "rel", "fork", "blk", "has_image", "apply_image"):
                assert ob[key] == tb[key], f"{where} block {tb['id']} {key}"
            if tb["has_image"]:
                img = ob["image"]
                assert (img["hole_offset"], img["hole_length"], img["compression"]) == tb["image"], where
                methods[img["compression"]] += 1

    # end LSN and main data length from the server's own decoder
    if inspect_wal:
        rows = pg.execute(
            "SELECT start_lsn::text, end_lsn::text, main_data_length FROM pg_get_wal_records_info(%s, %s)",
            (format_lsn(cap.start), format_lsn(cap.end)),
        )
        inspect = {parse_lsn(s): (parse_lsn(e), n) for s, e, n in rows}
        for o in mine:
            lsn = parse_lsn(o["lsn"])
            if lsn in inspect:
                assert (parse_lsn(o["end_lsn"]), o["main_data_len"]) == inspect[lsn], o["lsn"]
        assert len(inspect) >= len(mine) - 1

    # the workload reached what the test claims to cover
    assert max(r["total_len"] for r in mine) > 16384, "a record larger than two WAL pages"
    assert cap.end // (1 << 20) - cap.start // (1 << 20) >= 3, "several 1 MB segment boundaries crossed"
    types = Counter(f"{r['rmgr']}/{r['desc'].split(' ')[0]}" for r in mine)
    expected = ["Heap/INSERT", "Heap/HOT_UPDATE", "Heap/UPDATE", "Heap/DELETE", "Heap2/MULTI_INSERT",
                "Btree/INSERT_LEAF", "Hash/INSERT", "Gin/INSERT", "Gist/PAGE_UPDATE", "SPGist/ADD_LEAF",
                "BRIN/INSERT", "Sequence/LOG", "Heap2/VISIBLE", "LogicalMessage/MESSAGE", "Storage/CREATE",
                # 17 split Heap2/PRUNE by who prunes (heapdesc.c)
                "Heap2/PRUNE_ON_ACCESS" if major >= 17 else "Heap2/PRUNE"]
    if inst.has("bloom"):  # generic WAL comes from the bloom index
        expected.append("Generic/Generic")
    for t in expected:
        assert types[t] > 0, f"{t} not produced"
    if compression == "off":
        assert set(methods) == {None}
    else:
        # PostgreSQL keeps an image uncompressed when compressing would not save space
        assert methods[compression] > 0 and set(methods) <= {compression, None}
