"""PostgreSQL's regression suite as a workload: schedule parsing and the steps built
from a suite directory (generators.regress), without a PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from generators import generate
from generators.choose import RandomChooser
from generators.regress import (
    REGRESS_DB,
    RULE,
    SETUP_RULE,
    parse_schedule,
    regress_steps,
    regress_workload,
    schedule_files,
    unfit,
)
from generators.workload import Settings, Workload

SCHEDULE = """\
# ----------
# src/test/regress/parallel_schedule
# ----------

# required setup steps
test: test_setup

test: boolean char   name # a comment after the names
ignore: random
test: random
test: boolean create_index
"""


def _suite(tmp_path: Path) -> Path:
    (tmp_path / "sql").mkdir(parents=True)
    (tmp_path / "parallel_schedule").write_text(SCHEDULE)
    for name in ("test_setup", "boolean", "char", "name", "random", "create_index"):
        (tmp_path / "sql" / f"{name}.sql").write_text(f"-- {name}\n\\set x 1\nSELECT :x AS {name};\n")
    return tmp_path


def test_schedule_groups_in_order_comments_and_ignore_lines_skipped() -> None:
    assert parse_schedule(SCHEDULE) == [["test_setup"], ["boolean", "char", "name"], ["random"],
                                        ["boolean", "create_index"]]


@pytest.mark.parametrize("bad", ["tset: boolean", "test:", "boolean char"])
def test_a_line_that_is_not_a_schedule_line_is_an_error_naming_it(bad: str) -> None:
    with pytest.raises(ValueError, match="schedule line 2"):
        parse_schedule(f"test: a\n{bad}\n")


def test_groups_are_serialised_and_each_file_runs_once(tmp_path: Path) -> None:
    assert schedule_files(_suite(tmp_path)) == ["test_setup", "boolean", "char", "name", "random", "create_index"]


def test_a_step_per_file_run_by_psql_in_the_regression_database(tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    steps = regress_steps(suite)
    assert [s.script for s in steps] == schedule_files(suite)
    assert {(s.rule, s.database, s.session) for s in steps} == {(RULE, REGRESS_DB, 0)}
    assert steps[1].sql == (suite / "sql" / "boolean.sql").read_text()  # the file whole, meta-commands too
    assert [s.script for s in regress_steps(suite, ["char", "boolean"])] == ["char", "boolean"]
    with pytest.raises(ValueError, match="nosuch"):
        regress_steps(suite, ["nosuch"])


def test_the_workload_creates_the_database_first_and_round_trips_through_json(tmp_path: Path) -> None:
    wl = regress_workload(_suite(tmp_path), Settings(full_page_writes=False), seed=5)
    setup = [s for s in wl.steps if s.rule == SETUP_RULE]
    assert wl.steps[: len(setup)] == tuple(setup)
    assert setup[0].sql.startswith(f"DROP DATABASE IF EXISTS {REGRESS_DB}")
    assert setup[2].sql.startswith(f"CREATE DATABASE {REGRESS_DB} TEMPLATE=template0")
    back = Workload.loads(wl.dumps())
    assert back == wl and back.steps[-1].script == "create_index"
    assert "script" not in generate(1).steps[0].to_json()  # generated steps' JSON is unchanged


def test_interleaving_keeps_both_orders_and_the_generated_settings(tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    gen = generate(3)
    wl = regress_workload(suite, Settings(), seed=9, generated=gen, chooser=RandomChooser(1))
    assert wl.settings == gen.settings and wl.sessions == gen.sessions and wl.seed == 9
    assert [s for s in wl.steps if s.rule not in (RULE, SETUP_RULE)] == list(gen.steps)
    assert [s.script for s in wl.steps if s.rule == RULE] == schedule_files(suite)
    assert wl.steps[0].rule == SETUP_RULE  # the database exists before the first file
    mixed = [s.rule == RULE for s in wl.steps if s.rule != SETUP_RULE]
    assert mixed != sorted(mixed) and mixed != sorted(mixed, reverse=True)  # really interleaved
    with pytest.raises(ValueError, match="chooser"):
        regress_workload(suite, Settings(), generated=gen)


def test_a_file_that_cannot_run_on_a_major_is_left_out_there_only(tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    (suite / "sql" / "sqljson.sql").write_text("SELECT 1;\n")
    assert unfit("sqljson", 16) and unfit("sqljson", 15) is None and unfit("boolean", 16) is None
    assert [s.script for s in regress_steps(suite, ["boolean", "sqljson"], 16)] == ["boolean"]
    assert [s.script for s in regress_steps(suite, ["boolean", "sqljson"], 18)] == ["boolean", "sqljson"]


def test_errors_expected_by_the_closest_expected_output(tmp_path: Path) -> None:
    from harness.campaign.regress import ScriptResult, expected_errors

    (tmp_path / "expected").mkdir()
    (tmp_path / "expected" / "boolean.out").write_text("SELECT 'x'::bool;\nERROR:  invalid input\nLINE 1\n" * 3)
    (tmp_path / "expected" / "boolean_1.out").write_text("ERROR:  invalid input\n")
    (tmp_path / "expected" / "booleanx.out").write_text("ERROR:  a\n" * 9)  # another test's output
    assert expected_errors(tmp_path, "boolean", 3) == 3 and expected_errors(tmp_path, "boolean", 0) == 1
    assert expected_errors(tmp_path, "boolean", 9) == 3 and expected_errors(tmp_path, "nosuch", 2) is None
    assert ScriptResult(errors=3, expected_errors=3).as_expected
    assert not ScriptResult(errors=4, expected_errors=3).as_expected
    assert not ScriptResult(errors=3, expected_errors=3, returncode=2).as_expected


def test_the_suite_is_copied_into_the_cache_once(tmp_path: Path) -> None:
    from harness.campaign.regress import regress_dir
    from oracles.pgbin import SetupError

    tree = tmp_path / "postgresql-15.9"
    suite = _suite(tree / "src" / "test" / "regress")
    (suite / "data").mkdir()
    (suite / "data" / "onek.data").write_text("1\t2\n")
    (suite / "regress.c").write_text("int regress_answer(void) { return 42; }\n")
    cache = tmp_path / "cache"
    got = regress_dir(15, tree, cache=cache)
    assert got == cache / "15" and (got / "data" / "onek.data").read_text() == "1\t2\n"
    assert schedule_files(got) == schedule_files(suite) and (got / "regress.c").exists()  # regress.so's source
    (suite / "sql" / "boolean.sql").write_text("changed\n")
    assert regress_dir(15, cache=cache) == got and "changed" not in (got / "sql" / "boolean.sql").read_text()
    with pytest.raises(SetupError, match="not a PostgreSQL regression suite"):
        regress_dir(15, tmp_path / "cache", cache=tmp_path / "other")


def test_regress_so_is_built_once_from_the_suites_source_and_a_failed_build_is_not_fatal(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import shutil
    from types import SimpleNamespace

    from harness.campaign.regress import regress_library

    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    pg = SimpleNamespace(includedir_server=tmp_path, version="15.20")
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "regress.c").write_text("int regress_answer(void) { return 42; }\n")
    lib = regress_library(suite, pg)
    so = lib / "regress.so"
    assert lib == suite / "lib" and so.read_bytes()[:4] == b"\x7fELF"
    stamp = so.stat().st_mtime_ns
    assert regress_library(suite, pg) == lib and so.stat().st_mtime_ns == stamp  # built once
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "regress.c").write_text("this is not C\n")
    assert not (regress_library(broken, pg) / "regress.so").exists()
    assert "could not build regress.so for PostgreSQL 15.20" in caplog.text
    assert not list((broken / "lib").glob(".regress.so.*"))  # no half-written library left


SCRIPT = """\
--
-- a header comment
--
\\getenv abs_srcdir PG_ABS_SRCDIR
\\set filename :abs_srcdir '/data/onek.data'
CREATE TABLE t (a int, b text);  -- trailing comment
INSERT INTO t VALUES (1, 'a;b'), (2, $$x;y$$);
CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$
BEGIN
  RETURN 1; /* a ; in a comment */
END $body$;
COPY t FROM stdin;
3\tc;d
\\.
COPY t FROM :'filename';
SELECT a FROM t WHERE a = 1 \\gset
\\echo :a
"""


def test_a_script_is_cut_into_its_statements_and_meta_commands() -> None:
    from generators.regress import script_statements

    pieces = script_statements(SCRIPT)
    assert [p.split()[0] for p in pieces] == ["\\getenv", "\\set", "CREATE", "INSERT", "CREATE", "COPY", "COPY",
                                              "SELECT", "\\echo"]
    assert pieces[3] == "INSERT INTO t VALUES (1, 'a;b'), (2, $$x;y$$);\n"
    assert pieces[4].endswith("END $body$;\n") and "RETURN 1;" in pieces[4]
    assert pieces[5] == "COPY t FROM stdin;\n3\tc;d\n\\.\n"  # the data lines go with their COPY
    assert pieces[7] == "SELECT a FROM t WHERE a = 1 \\gset\n"


def test_split_steps_keep_the_variables_they_read(tmp_path: Path) -> None:
    from generators.regress import split_script

    (tmp_path / "sql").mkdir()
    (tmp_path / "parallel_schedule").write_text("test: s\n")
    (tmp_path / "sql" / "s.sql").write_text(SCRIPT)
    step = regress_steps(tmp_path)[0]
    pieces = split_script(step)
    assert [p.script for p in pieces] == [f"s#{n}" for n in range(9)]
    copy_file = pieces[6].sql
    assert copy_file.startswith("\\getenv abs_srcdir PG_ABS_SRCDIR\n\\set filename") and copy_file.endswith(
        "COPY t FROM :'filename';\n")
    assert {p.database for p in pieces} == {REGRESS_DB}
    assert split_script(regress_workload(tmp_path, Settings()).steps[0]) == [
        regress_workload(tmp_path, Settings()).steps[0]]  # not a script: unchanged
