"""The oracle votes, on real WAL: UNLOGGED tables, an index of every AM and a sequence
(created, filled, truncated), CREATE DATABASE with both strategies; both engines.

* init-fork pages are verified by pyredo, the wal-redo server and the primary;
* the visibility-map pages CREATE DATABASE ... STRATEGY WAL_LOG logs with a hole are
  ``primary_differs`` and the known PostgreSQL issue: ``redodiff check`` exits 0, and 1
  with ``--strict-known``;
* after a crash restart the primary's main forks of unlogged relations are their init
  forks (ResetUnloggedRelations), as the report's end_of_recovery says;
* a pyredo that fails on a page does not stop the wal-redo server: its verdict is shown.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.clusters.datadir import DataDirPages
from harness.clusters.local import LocalCluster
from harness.reports.schema import DivergenceKind
from harness.verify.check import Checker, CheckReport, Engine
from harness.verify.plan import Plan, build_plan
from harness.verify.verdict import VERIFIED
from oracles.masks import guess_owner
from pyredo.engine import RedoEngine
from pyredo.rmgr import RM_HASH_ID
from pyredo.rmgr.hash import XLOG_HASH_INIT_META_PAGE
from pyredo.rmgrlist import PG15
from pyredo.wal.lsn import format_lsn
from pyredo.wal.reader import WalReader
from pyredo.wal.record import INIT_FORKNUM
from pyredo.xlogutils import RedoContext

KNOWN_VM = "create-database-wal-log-vm-hole"
EVERY_AM = {"Btree", "Hash", "Gist", "SPGist", "Gin", "BRIN", "Sequence"}

# the template CREATE DATABASE copies: a vacuumed table (visibility-map bits) and an
# unlogged table with an index (init forks); made before the range
TEMPLATE = [
    "CREATE TABLE vt AS SELECT g AS id, repeat('x', 40) AS t FROM generate_series(1, 3000) g",
    "VACUUM (FREEZE) vt",
    "CREATE UNLOGGED TABLE tul (id int PRIMARY KEY, t text)",
    "INSERT INTO tul SELECT g, 'u' || g FROM generate_series(1, 200) g",
]
ROWS = ("SELECT nextval('ul_seq'), point(g % 97, g / 97), ARRAY[g % 10, g % 7], md5(g::text) "
        "FROM generate_series(1, {n}) g")
WORKLOAD = [
    "CREATE UNLOGGED TABLE ul (id int, p point, arr int[], t text)",
    "CREATE UNLOGGED SEQUENCE ul_seq OWNED BY ul.id",
    "INSERT INTO ul " + ROWS.format(n=2000),
    "CREATE INDEX ul_btree ON ul (id)",
    "CREATE INDEX ul_hash ON ul USING hash (id)",
    "CREATE INDEX ul_gist ON ul USING gist (p)",
    "CREATE INDEX ul_spgist ON ul USING spgist (p)",
    "CREATE INDEX ul_gin ON ul USING gin (arr)",
    "CREATE INDEX ul_brin ON ul USING brin (id)",
    "TRUNCATE ul RESTART IDENTITY",  # new relfilenodes: every init fork again, the sequence's too
    "INSERT INTO ul " + ROWS.format(n=300),
    "CREATE DATABASE d_wal TEMPLATE tmpl STRATEGY WAL_LOG",
    "CREATE DATABASE d_copy TEMPLATE tmpl STRATEGY FILE_COPY",
]


@dataclass
class Range:
    pg: LocalCluster
    start: int
    end: int
    plan: Plan


@pytest.fixture(scope="module")
def unlogged_range(cluster_factory) -> Range:  # type: ignore[no-untyped-def]
    pg: LocalCluster = cluster_factory(wal_segsize_mb=1, fresh=True)
    pg.execute("CREATE DATABASE tmpl")
    for sql in TEMPLATE:
        pg.execute(sql, dbname="tmpl")
    start = pg.checkpoint()
    for sql in WORKLOAD:
        pg.execute(sql)
    end = pg.current_lsn()
    pg.checkpoint()
    # a crash restart: recovery ends with ResetUnloggedRelations, so the primary's main
    # forks of unlogged relations are now copies of their init forks
    pg.stop("immediate")
    pg.start()
    return Range(pg, start, end, build_plan(WalReader(pg.waldir, start, end), start, end))


def test_init_fork_pages_are_verified_by_both_engines_and_the_primary(unlogged_range: Range,
                                                                      c_redo: Engine) -> None:
    r = unlogged_range
    primary = DataDirPages(r.pg.pgdata)
    checker = Checker([RedoEngine(), c_redo], primary, end_lsn=r.end)
    owners: Counter[str] = Counter()
    types: Counter[str] = Counter()
    for bp in r.plan:
        if bp.tag.fork != INIT_FORKNUM or primary(bp.tag) is None:
            continue  # the init forks TRUNCATE replaced are gone from the primary
        report = CheckReport()
        checker.check_block(bp, report)
        assert report.divergences == [] and report.verdicts == {VERIFIED: 1}, (str(bp.tag), report.verdicts)
        page = primary(bp.tag)
        assert page is not None
        owners[bp.owner or guess_owner(page) or "?"] += 1
        types.update(PG15.record_type(rec) for rec in bp.records)
    assert set(owners) >= EVERY_AM, owners
    for t in ("XLOG/FPI", "Hash/INIT_META_PAGE", "Hash/INIT_BITMAP_PAGE", "Sequence/LOG"):
        assert types[t] > 0, types


def _check(r: Range, tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    out = tmp_path / f"check{len(extra)}.json"
    res = CliRunner().invoke(main, ["check", "--pgdata", str(r.pg.pgdata), "--start", format_lsn(r.start),
                                    "--end", format_lsn(r.end), "--engine", "pyredo", "--engine", "walredo",
                                    "--report", str(out), *extra])
    return res.exit_code, json.loads(out.read_text()), res.output


def test_check_reports_the_create_database_vm_pages_as_known(unlogged_range: Range, c_redo: Engine,
                                                             tmp_path: Path) -> None:
    code, report, output = _check(unlogged_range, tmp_path)
    divs = report["divergences"]
    assert code == 0, (output, [(d["tag"], d["verdict"]) for d in divs if not d["known"]][:5])
    assert divs and all(d["kind"] == "primary_differs" and d["known"] == KNOWN_VM for d in divs), divs[:3]
    assert all(".vm blk" in d["tag"] and d["engines"] == ["pyredo", "walredo"] for d in divs)
    assert all(d["verdict"].startswith("pyredo and walredo agree; the primary differs: the WAL does not "
                                       "carry what the primary has") for d in divs)
    verdicts = report["verdicts"]
    assert verdicts[VERIFIED] > 100 and verdicts[f"primary_differs (known: {KNOWN_VM})"] == len(divs)
    assert not any(k.startswith(("engine_", "primary_differs)")) for k in verdicts), verdicts
    assert f"known PostgreSQL issue {KNOWN_VM} on {len(divs)} pages" in output, output
    assert f"every divergence ({len(divs)}) is a known PostgreSQL issue" in output, output
    # the end of recovery: every init-fork page still on the primary is its main fork now
    eor = report["end_of_recovery"]
    assert eor["unlogged_relations"] >= 2 * len(EVERY_AM) and eor["init_pages"] > len(EVERY_AM)
    assert eor["main_fork_differs"] == 0 and eor["main_fork_witnessed"] > len(EVERY_AM)
    assert eor["main_fork_witnessed"] + eor["main_fork_absent"] == eor["init_pages"]
    assert eor["empty_init_forks"] >= 2  # the heaps: ul (twice), tul in d_wal
    # --strict-known: a known issue fails the run too
    code, strict, _ = _check(unlogged_range, tmp_path, "--strict-known")
    assert code == 1 and len(strict["divergences"]) == len(divs)


def test_an_engine_that_fails_does_not_silence_the_other(unlogged_range: Range, c_redo: Engine) -> None:
    """pyredo with Hash/INIT_META_PAGE replaced by a routine that raises (a mutant):
    each such page is an engine_error naming pyredo, with the wal-redo server's verdict."""

    def raises(ctx: RedoContext) -> None:
        raise RuntimeError("injected: hash metapage redo fails")

    broken = RedoEngine(PG15.with_routine(RM_HASH_ID, XLOG_HASH_INIT_META_PAGE, raises))
    r = unlogged_range
    report = Checker([broken, c_redo], DataDirPages(r.pg.pgdata), end_lsn=r.end).check_plan(r.plan)
    hit = [d for d in report.divergences if any(PG15.record_type(rec) == "Hash/INIT_META_PAGE"
                                                for rec in d.records)]
    assert hit and all(d.kind is DivergenceKind.ENGINE_ERROR and d.engines == ["pyredo"] for d in hit)
    for d in hit:
        assert d.verdict is not None and "injected: hash metapage redo fails" in d.verdict
        assert "walredo" in d.pages, d.verdict
        # the server answered; the primary says whether it is right (gone: no witness)
        assert (d.verdict.endswith("where walredo answered; walredo matches the primary")
                or "where walredo answered; no witness for walredo" in d.verdict), d.verdict
    assert any(d.verdict and d.verdict.endswith("walredo matches the primary") for d in hit)
    assert {d.kind for d in report.divergences} <= {DivergenceKind.ENGINE_ERROR, DivergenceKind.PRIMARY_DIFFERS}
