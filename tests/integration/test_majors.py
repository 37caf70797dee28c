"""PostgreSQL 16, 17 and 18 under the harness (and 15, the default, alike): throwaway
clusters of each major, the stock wal-redo server built against each major's PGXS,
``redodiff pg list``, ``demo``, ``check`` and ``fuzz`` with ``--pg``. A major that is
not installed is skipped with the command that installs it; ``./dev setup`` installs
them all, so CI runs every test here."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from factories import RNODE, encoded
from majors import MAJORS, pg_of

from harness.cli import main
from oracles.walredo import WalRedoProcess
from oracles.walredo_server import SOURCE_DIR
from pyredo.page.bufpage import PageInit, PageSetLSN
from pyredo.wal.builder import BlockSpec
from pyredo.wal.lsn import format_lsn
from pyredo.wal.record import MAIN_FORKNUM, BufferTag

LATER = (16, 17, 18)


@pytest.mark.parametrize("major", MAJORS)
def test_a_cluster_of_each_major(major_cluster, major: int) -> None:  # type: ignore[no-untyped-def]
    inst = pg_of(major)
    pg = major_cluster(major)
    assert int(pg.scalar("SHOW server_version_num")) == inst.version_num
    assert pg.pg.version == inst.version
    # 18's initdb turns checksums on by default: the harness asks for what the settings say
    assert pg.scalar("SHOW data_checksums") == "off"


@pytest.mark.parametrize("major", MAJORS)
def test_the_wal_redo_server_of_each_major_restores_a_full_page_image(major: int) -> None:
    """oracles/pg_walredo built against the major's PGXS (#if PG_VERSION_NUM where the
    server's internals differ) serves the protocol: an FPI-only request."""
    inst = pg_of(major)
    page = bytearray(8192)
    PageInit(page, 8192, 0)
    page[200:216] = b"redodiff/%d-page" % major
    rec = encoded(0, 0xB0, b"", [BlockSpec(0, RNODE, MAIN_FORKNUM, 5, image=bytes(page))], lsn=0x0300_0000)
    with WalRedoProcess(pg=inst) as wr:
        got = wr.reconstruct(BufferTag(*RNODE, MAIN_FORKNUM, 5), None, [rec])
        argv = wr.argv
    want = bytearray(page)
    PageSetLSN(want, rec.end_lsn)
    assert got == bytes(want)
    assert argv[0] == str(inst.bindir / "postgres")
    if major in LATER:
        built = list((SOURCE_DIR / "build").glob(f"pg{inst.version_num}-*/pg_walredo.so"))
        assert built, f"no pg_walredo.so built for {inst.version}"


def test_pg_list_shows_every_installed_major() -> None:
    res = CliRunner().invoke(main, ["pg", "list", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    by_major = {e["major"]: e for e in data["majors"]}
    assert sorted(by_major) == list(MAJORS)
    for m in MAJORS:
        inst = pg_of(m)
        e = by_major[m]
        assert e["installed"] and e["version"] == inst.version and e["bindir"] == str(inst.bindir)
        assert set(e["capabilities"]) == {"lz4", "zstd", "pageinspect", "pg_walinspect", "bloom", "headers"}
        assert e["capabilities"]["headers"], f"{m}: the wal-redo server needs the server headers"


@pytest.mark.slow
@pytest.mark.parametrize("major", LATER)
def test_demo_on_a_later_major_is_verified_by_pyredo_and_its_wal_redo_server(tmp_path: Path, major: int) -> None:
    inst = pg_of(major)
    report = tmp_path / "demo.json"
    res = CliRunner().invoke(main, ["demo", "--pg", str(major), "--report", str(report)])
    assert res.exit_code == 0, res.output
    data = json.loads(report.read_text())
    assert data["pg_version"] == inst.server_version and data["engines"] == ["pyredo", "walredo"]
    assert data["divergences"] == [] and data["unsupported"] == {}
    assert data["pages_checked"] > 300 and data["records"] > 10_000


@pytest.mark.parametrize("major", LATER)
def test_check_pgdata_picks_the_cluster_s_major(major_cluster, tmp_path: Path, major: int) -> None:  # type: ignore[no-untyped-def]
    """`check --pgdata` reads PG_VERSION: the wal-redo server and pg_controldata are the cluster's major's."""
    inst = pg_of(major)
    pg = major_cluster(major, wal_segsize_mb=1)
    bench = [inst.program("pgbench"), "-h", str(pg.sockdir), "-p", str(pg.port), "-U", "postgres"]
    start = pg.checkpoint()
    subprocess.run([*bench, "-i", "-s", "1", "-q", "postgres"], check=True, capture_output=True)
    subprocess.run([*bench, "-c", "2", "-j", "2", "-t", "200", "postgres"], check=True, capture_output=True)
    end = pg.current_lsn()
    pg.checkpoint()
    report = tmp_path / "check.json"
    res = CliRunner().invoke(main, ["check", "--pgdata", str(pg.pgdata), "--start", format_lsn(start),
                                    "--end", format_lsn(end), "--report", str(report),
                                    "--engine", "pyredo", "--engine", "walredo"])
    assert res.exit_code == 0, res.output
    data = json.loads(report.read_text())
    assert data["pg_version"] == inst.server_version and data["engines"] == ["pyredo", "walredo"]
    assert data["unsupported"] == {}, data["unsupported"]  # pyredo knows every record of this major
    assert data["divergences"] == [] and data["pages_checked"] > 50, data


@pytest.mark.slow
@pytest.mark.parametrize("major", LATER)
def test_a_short_fuzz_campaign_per_major(tmp_path: Path, major: int) -> None:
    inst = pg_of(major)
    report = tmp_path / "fuzz.json"
    res = CliRunner().invoke(main, ["fuzz", "--pg", str(major), "--iterations", "2", "--seed", "3",
                                    "--engine", "walredo", "--report", str(report)])
    data = json.loads(report.read_text())
    assert data["pg_version"] == inst.server_version
    assert data["iterations"] == 2 and data["pages_checked"] > 0, data["infrastructure_errors"]
    assert data["infrastructure_errors"] == [] and [d for d in data["divergences"] if not d.get("known")] == [], res.output
    assert res.exit_code == 0, res.output


def test_a_missing_major_is_a_setup_error_naming_the_install_command(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDODIFF_PG_CACHE", str(tmp_path / "empty"))
    for m in LATER:
        if Path(f"/usr/lib/postgresql/{m}/bin/postgres").exists():
            continue
        res = CliRunner().invoke(main, ["demo", "--pg", str(m)])
        assert res.exit_code == 2 and f"redodiff pg install {m}" in res.output


@pytest.mark.slow
def test_fuzz_pg_all_runs_an_iteration_on_each_major(tmp_path: Path) -> None:
    """``fuzz --pg all``: iteration i on major MAJORS[i % 4], both engines by default on
    every major; one report with the merge and each major's own report."""
    for m in MAJORS:
        pg_of(m)  # skips, naming the install command, when one is missing
    report, junit = tmp_path / "fuzz.json", tmp_path / "fuzz.xml"
    res = CliRunner().invoke(main, ["fuzz", "--pg", "all", "--iterations", "4", "--seed", "3", "--workers", "1",
                                    "--report", str(report), "--junit", str(junit)])
    data = json.loads(report.read_text())
    assert res.exit_code == 0, res.output
    assert data["iterations"] == 4 and "pg_version" not in data  # several majors: none in the merge
    assert sorted(data["majors"]) == [str(m) for m in MAJORS]
    for k, m in enumerate(MAJORS):
        rep = data["majors"][str(m)]
        assert rep["pg_version"] == pg_of(m).server_version
        assert [r["index"] for r in rep["iteration_results"]] == [k]
        assert rep["engines"] == ["pyredo", "walredo"] and rep["pages_checked"] > 0, rep["infrastructure_errors"]
        assert [d for d in rep["divergences"] if not d.get("known")] == []
    assert data["pages_checked"] == sum(r["pages_checked"] for r in data["majors"].values())
    assert junit.read_text().count("<testsuite ") == 4
