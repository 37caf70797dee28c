"""The C mutant catalog (harness.selftest.c_mutants) and the build plan (harness.clusters.pgbuild).

Metadata is checked always; that every patch applies to PostgreSQL 15's source, and
changes the function it names, is checked when the source is unpacked
(``redodiff pg build`` or ``harness.clusters.pgsource.source_tree(15)`` put it there).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from generators import generate
from generators.rules import PROFILES, RULE_NAMES, profile_named
from generators.workload import Workload
from harness.clusters import pgbuild
from harness.clusters.pgsource import cache_root, source_version
from harness.selftest.c_mutants import CATALOG, MUTANTS, PATCHES, get
from harness.selftest.mutants import CATEGORIES
from oracles.pgbin import SetupError
from pyredo.rmgrlist import table_for

SOURCE = cache_root() / "15" / "postgresql-15"
needs_source = pytest.mark.skipif(source_version(SOURCE) is None,
                                  reason=f"PostgreSQL 15 source not unpacked at {SOURCE} (redodiff pg build)")
HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@", re.M)


def test_catalog_size_history_and_reach() -> None:
    assert len(MUTANTS) >= 20
    assert sum(1 for m in MUTANTS if m.history) >= 8
    files = {m.file for m in MUTANTS}
    for f in ("heapam.c", "nbtxlog.c", "hash_xlog.c", "ginxlog.c", "gistxlog.c", "spgxlog.c", "brin_xlog.c",
              "sequence.c", "xlogreader.c", "generic_xlog.c"):
        assert any(x.endswith("/" + f) for x in files), f"no C mutant of {f}"


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_metadata_complete(name: str) -> None:
    m = get(name)
    assert m.category in CATEGORIES
    assert len(m.description) > 30 and m.function and m.record_types
    known = set(table_for(15).page_modifying_types())
    assert set(m.record_types) <= known, f"{name}: {set(m.record_types) - known} are not record types of 15"
    text = m.patch.read_text()
    assert text.startswith(f"--- a/{m.file}\n+++ b/{m.file}\n"), f"{name}: the patch does not change {m.file} alone"
    changed = [line for line in text.splitlines()[2:] if line[:1] in "+-"]
    assert 0 < len(changed) <= 6, f"{name}: a mutant is a few lines, not {len(changed)}"
    if m.history:
        assert re.search(r"commit [0-9a-f]{7,}|release notes|PostgreSQL \d|20\d\d", m.history)
    rules = tuple(a for a in m.aim if "=" not in a)
    assert set(rules) <= set(RULE_NAMES), f"{name}: aims at rules that do not exist: {set(rules) - set(RULE_NAMES)}"
    assert profile_named("ci" + m.profile_aim).aim == rules  # and its settings exist (else ValueError)


def _lock_chains(wl: Workload) -> int:
    """How many times ``lock_chain`` ran in ``wl``: a FOR KEY SHARE right after another
    session's UPDATE in an open transaction (the rule's signature; multixact_locks has none)."""
    s = wl.steps
    return sum(1 for i in range(1, len(s) - 1) if s[i].sql.endswith("FOR KEY SHARE") and s[i - 1].sql.startswith(
        "UPDATE") and s[i - 1].session != s[i].session and s[i + 1].sql in ("COMMIT", "ROLLBACK"))


def test_an_aimed_profile_draws_its_rules_more_often_and_the_plain_one_is_unchanged() -> None:
    assert profile_named("ci") is PROFILES["ci"]
    aimed = profile_named("ci@lock_chain,multixact_locks")
    assert aimed.aim == ("lock_chain", "multixact_locks") and aimed.max_steps == PROFILES["ci"].max_steps
    with pytest.raises(ValueError, match="unknown rules"):
        profile_named("ci@no_such_rule")
    with pytest.raises(ValueError, match="unknown profile"):
        profile_named("huge")
    seeds = range(1000, 1120)
    plain = sum(_lock_chains(generate(s, "ci")) for s in seeds)
    more = sum(_lock_chains(generate(s, "ci@lock_chain")) for s in seeds)
    assert more >= 3 * max(plain, 1), (plain, more)
    assert [generate(s, "ci") for s in seeds[:5]] == [generate(s, "ci@") for s in seeds[:5]]
    fixed = [generate(s, "ci@checkpoint,wal_log_hints=on,full_page_writes=on").settings for s in seeds]
    assert all(st.wal_log_hints and st.full_page_writes for st in fixed)
    assert not all(generate(s, "ci").settings.wal_log_hints for s in seeds)
    with pytest.raises(ValueError, match="no workload setting"):
        profile_named("ci@wal_log_hintz=on")
    with pytest.raises(ValueError, match="on or off"):
        profile_named("ci@wal_log_hints=yes")


def test_no_orphan_patches() -> None:
    assert {p.stem for p in PATCHES.glob("*.patch")} == set(CATALOG)


def _function_span(source: str, function: str) -> tuple[int, int]:
    """1-based first and last line of a C function definition (name at the line start)."""
    lines = source.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"{re.escape(function)}\(", line))
    end = next(i for i in range(start, len(lines)) if lines[i] == "}")
    return start + 1, end + 1


@needs_source
@pytest.mark.parametrize("name", sorted(CATALOG))
def test_patch_applies_inside_its_function(name: str) -> None:
    m = get(name)
    res = subprocess.run(["patch", "-p1", "--dry-run", "--fuzz=0", "-i", str(m.patch)], cwd=SOURCE,
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    first, last = _function_span((SOURCE / m.file).read_text(), m.function)
    for hunk in HUNK.finditer(m.patch.read_text()):
        start, length = int(hunk.group(1)), int(hunk.group(2) or 1)
        assert first <= start and start + length - 1 <= last, \
            f"{name}: hunk at {start} is outside {m.function} ({first}-{last})"


# -- the build plan ------------------------------------------------------------------------------


def test_plan_unpatched_and_patched(tmp_path: Path) -> None:
    base = pgbuild.plan(15, root=tmp_path, jobs=3)
    assert base.name == "15" and base.prefix == tmp_path / "15" / "install" and base.base is None
    argv = base.configure_argv()
    assert {"--with-lz4", "--with-zstd"} <= set(argv) and f"--prefix={base.prefix}" in argv
    assert not any(a.startswith(("--with-blocksize", "--with-segsize", "--with-wal-blocksize")) for a in argv)
    p1 = get("heap_delete_no_xmax").patch
    p2 = get("btree_newroot_leaf_flag_lost").patch
    a = pgbuild.plan(15, patches=[p1, p2], root=tmp_path)
    b = pgbuild.plan(15, patches=[p2, p1], root=tmp_path)
    assert a.name.startswith("15-") and a.name != b.name  # the patch set, in order, names the build
    assert a.base == tmp_path / "15" and a.key()["patches"] != base.key()["patches"]
    custom = pgbuild.plan(15, prefix=tmp_path / "pfx", root=tmp_path)
    assert custom.prefix == (tmp_path / "pfx").resolve() and custom.key() != base.key()
    with pytest.raises(SetupError, match="not found"):
        pgbuild.plan(15, patches=[tmp_path / "missing.patch"], root=tmp_path)


def test_make_commands_rebuild_only_the_server_for_backend_patches(tmp_path: Path) -> None:
    p = pgbuild.plan(15, root=tmp_path, jobs=2)
    server = pgbuild.make_commands(p, ["src/backend/access/heap/heapam.c"])
    dirs = [f"prefix={p.prefix}", f"libdir={p.prefix}/lib/postgresql"]  # never Debian's /usr/lib/postgresql
    assert [argv for _, argv in server] == [["make", "-j2", "-C", "src/backend", *dirs, "install-bin"]]
    full = pgbuild.make_commands(p, ["src/include/access/nbtxlog.h"])
    assert full[0][1] == ["make", "-j2", *dirs, "install"]
    assert {argv[3] for _, argv in full[1:]} == {f"contrib/{c}" for c in pgbuild.CONTRIB}
    assert f"--libdir={p.prefix}/lib/postgresql" in p.configure_argv()


def test_same_key_ignores_the_version_label(tmp_path: Path) -> None:
    p = pgbuild.plan(15, root=tmp_path)
    old = dict(p.key(), configure=[*p.key()["configure"][:-2], "--with-extra-version= (redodiff 15)",  # type: ignore[index]
                                   p.key()["configure"][-1]])  # type: ignore[index]
    assert pgbuild._same_key(old, p.key())
    assert not pgbuild._same_key(dict(p.key(), contrib=[]), p.key())
    assert not pgbuild._same_key(None, p.key())


@pytest.mark.skipif(shutil.which("patch") is None, reason="no patch program")
def test_apply_patch_forward_reverse_and_no_fuzz(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    f = tmp_path / "src" / "x.c"
    f.write_text("a\nb\nc\n")
    patch = tmp_path / "m.patch"
    patch.write_text("--- a/src/x.c\n+++ b/src/x.c\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n")
    assert pgbuild.apply_patch(tmp_path, patch) == ["src/x.c"]
    assert f.read_text() == "a\nB\nc\n"
    with pytest.raises(SetupError, match="does not apply"):
        pgbuild.apply_patch(tmp_path, patch)  # already applied: refused, not reversed
    pgbuild.apply_patch(tmp_path, patch, reverse=True)
    assert f.read_text() == "a\nb\nc\n"
    f.write_text("a\nb2\nc\n")  # context changed: no fuzzy application
    with pytest.raises(SetupError, match="does not apply"):
        pgbuild.apply_patch(tmp_path, patch)
    assert f.read_text() == "a\nb2\nc\n"


def test_html_renders_a_c_selftest_report(tmp_path: Path) -> None:
    from harness.reports.html import render
    from harness.selftest.runner import MutantResult, SelftestReport

    m = get("heap_delete_no_xmax")
    caught = MutantResult(m.name, m.rmgr, m.record_type, m.category, m.masked, m.description, m.history, 1,
                          caught=True, seconds=3.5, iterations=2, function=m.function, rebuild_seconds=12.5,
                          divergence={"kind": "engine_mismatch", "record_type": "Heap/DELETE"})
    lost = MutantResult("gin_delete_page_left_rightlink", "Gin", "Gin/DELETE_PAGE", "link", False, "d", "h", 2,
                        function="ginRedoDeletePage", rebuild_seconds=9.0, survivor_reason="not reached: no Gin")
    rep = SelftestReport(["pyredo", "walredo"], 60, 0, "ci", 0, results=[caught, lost], kind="c",
                         build={"version": "15.18", "bindir": "/b/bin", "work_tree": "/w"})
    (tmp_path / "selftest-c.json").write_text(json.dumps(rep.to_json()))
    page = render(tmp_path)
    assert "C mutants" in page and "1/2 = 50%" in page
    assert "heap_xlog_delete" in page and "12.5" in page and "not reached: no Gin" in page
    assert rep.to_json()["kind"] == "c" and rep.to_json()["mutants"][0]["rebuild_seconds"] == 12.5


def test_pgsource_deb_src_lines_use_the_machines_debian_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.clusters import pgsource

    monkeypatch.setattr(pgsource, "machine_mirrors", lambda: {"bookworm": "http://mirror.example/debian",
                                                             "bookworm-security": "http://sec.example/debian-security"})
    lines = pgsource._deb_src_lines(pgsource.SUITES[15])
    assert lines == [f"deb-src [signed-by={pgsource.DEBIAN_KEYRING}] http://mirror.example/debian bookworm main\n"]
    assert "trixie main" in pgsource._deb_src_lines(("trixie",))[0]
    monkeypatch.setattr(pgsource, "machine_mirrors", lambda: {"nodistro": "https://deb.nodesource.com/node_20.x"})
    with pytest.raises(SetupError, match="no Debian"):
        pgsource._deb_src_lines(("bookworm",))
    with pytest.raises(SetupError, match="no Debian source for PostgreSQL 16"):
        pgsource.source_tree(16)


def test_source_version_reads_only_our_marker(tmp_path: Path) -> None:
    assert source_version(tmp_path) is None
    (tmp_path / "redodiff-source.json").write_text(json.dumps({"version": "15.18-0+deb12u1"}))
    assert source_version(tmp_path) == "15.18-0+deb12u1"


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_check_install_dirs_refuses_to_write_outside_the_prefix(tmp_path: Path) -> None:
    p = pgbuild.plan(15, root=tmp_path)
    port = p.worktree / "src" / "port"
    port.mkdir(parents=True)

    def makefile(pkglibdir: str) -> None:
        lines = [f"{d} = $(prefix)/{d}" for d in pgbuild.INSTALL_DIRS if d != "pkglibdir"]
        (port / "Makefile").write_text("\n".join([*lines, f"pkglibdir = {pkglibdir}", ""]))

    makefile("$(libdir)")
    assert pgbuild.check_install_dirs(p)["pkglibdir"] == str(p.libdir)
    makefile("/usr/lib/postgresql/15/lib")  # what Debian's 50-per-version-dirs.patch does to other libdirs
    with pytest.raises(SetupError, match="outside"):
        pgbuild.check_install_dirs(p)


def test_an_aimed_profile_is_a_valid_cli_profile_and_a_wrong_one_is_refused() -> None:
    """A selftest campaign's aimed profile replays by seed: ``--profile`` takes what
    ``profile_named`` takes and names the unknown rule otherwise."""
    from click.testing import CliRunner

    from harness.cli import main
    from harness.cli.common import PROFILE

    assert PROFILE.convert("ci@lock_chain,wal_log_hints=on", None, None) == "ci@lock_chain,wal_log_hints=on"
    res = CliRunner().invoke(main, ["replay", "--seed", "1", "--profile", "ci@no_such_rule"])
    assert res.exit_code == 2 and "unknown rules ['no_such_rule']" in res.output
    res = CliRunner().invoke(main, ["fuzz", "--profile", "weekly"])
    assert res.exit_code == 2 and "unknown profile 'weekly'" in res.output
