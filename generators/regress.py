"""PostgreSQL's own regression suite as a workload source (``fuzz --workload pg-regress``).

The suite is ``src/test/regress`` of the server's own major: ``parallel_schedule`` lists
the ``sql/*.sql`` files in groups that pg_regress runs side by side; here the groups are
serialised (each group's files one after the other, in the schedule's order), so a run
is deterministic. Each file is one workload step (``Step.script``: psql runs the step's
SQL as a script, meta-commands and variables included, errors tolerated as pg_regress
tolerates them), so ``minimize`` shrinks a divergence to the files that cause it, and
then (``split_script``) to their statements.

The suite runs in its own database, as pg_regress runs it: the workload starts by
dropping and creating ``regression`` from template0 (``CREATE DATABASE`` with its
default strategy, WAL_LOG from 15 on) with the settings pg_regress gives it, and a
replication slot that keeps the pass's WAL in pg_wal until it is read. Nothing
here touches a cluster: the harness (``harness.campaign.regress``) finds the files of a
major and the executor runs the scripts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from generators.choose import Chooser
from generators.workload import Settings, Step, Workload

__all__ = ["REGRESS_DB", "RULE", "SETUP_RULE", "SLOT", "UNFIT", "parse_schedule", "regress_steps",
           "regress_workload", "schedule_files", "script_statements", "setup_steps", "split_script", "unfit"]

SCHEDULE = "parallel_schedule"
REGRESS_DB = "regression"
RULE = "pg-regress"  # the rule name of a regress file's step
SETUP_RULE = "pg-regress-setup"
SLOT = "redodiff_regress"  # the physical replication slot that keeps a pass's WAL

# Files that cannot run here: name -> (the majors, why). Nothing else is left out: the
# tablespace test uses in-place tablespaces from 15 on, no test needs a second session
# (the parallel groups are serialised), and regress.so, the suite's C library, is built
# against the server's headers (harness.campaign.regress.regress_library).
# 16 and 17: the suites are of 16.15 and 17.11 (no Debian suite serves the installed
# 16.14's and 17.10's source), and one statement of each of these files -- not in 15's
# suite -- kills the installed 16.14 and 17.10 servers (SIGSEGV, crash recovery).
_CRASHES = "kills the installed 16.14 and 17.10 servers with SIGSEGV (the suite is 16.15's / 17.11's): "
UNFIT: dict[str, tuple[tuple[int, ...], str]] = {
    "sqljson": ((16, 17), _CRASHES + "SELECT '{\"a\":1}'::sqljson_mystr IS JSON"),
    "hash_part": ((16, 17), _CRASHES + "SELECT satisfies_hash_partition('mchash'::regclass, 4, 0, "
                  "VARIADIC NULL::int[])"),
}


def unfit(name: str, major: int | None) -> str | None:
    """Why file ``name`` cannot run on ``major`` (None: it can)."""
    majors, why = UNFIT.get(name, ((), ""))
    return why if major in majors else None


_TEST_LINE = re.compile(r"^test:\s*(.*)$")


def parse_schedule(text: str) -> list[list[str]]:
    """The groups of a pg_regress schedule (``test: a b c`` lines; ``#`` comments, blank
    lines and ``ignore:`` lines skipped), in order. ValueError on any other line."""
    groups: list[list[str]] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("ignore:"):  # pg_regress: a failure of that test is not reported
            continue
        m = _TEST_LINE.match(line)
        if m is None:
            raise ValueError(f"schedule line {n}: expected 'test: NAME ...' or 'ignore: NAME', got {raw!r}")
        names = m.group(1).split()
        if not names:
            raise ValueError(f"schedule line {n}: 'test:' names no test")
        groups.append(names)
    return groups


def schedule_files(regress_dir: Path, schedule: str = SCHEDULE) -> list[str]:
    """The test names of ``regress_dir``'s schedule, groups serialised, each once."""
    seen: dict[str, None] = {}
    for group in parse_schedule((regress_dir / schedule).read_text()):
        for name in group:
            seen.setdefault(name, None)
    return list(seen)


def setup_steps() -> list[Step]:
    """A fresh ``regression`` database, as pg_regress's create_database() makes it (a
    cluster reused for another pass keeps nothing of the last one's database)."""
    db = REGRESS_DB
    # a previous pass's database, and the in-place tablespaces its test_setup left (16 on)
    sql = [f"DROP DATABASE IF EXISTS {db} WITH (FORCE)",
           "DO $$DECLARE s name; BEGIN FOR s IN SELECT spcname FROM pg_tablespace WHERE spcname LIKE "
           "'regress\\_%' LOOP EXECUTE format('DROP TABLESPACE %I', s); END LOOP; END $$",
           f"CREATE DATABASE {db} TEMPLATE=template0",
           # a pass writes GBs of WAL (more with full-page writes and consistency checking):
           # a slot keeps the pass's WAL from the last checkpoint on in pg_wal until the next
           # pass, whatever wal_keep_size says, so the whole range can be read back
           f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{SLOT}'",
           f"SELECT pg_create_physical_replication_slot('{SLOT}', true)"]
    sql += [f"ALTER DATABASE {db} SET {guc} TO '{value}'"
            for guc, value in (("lc_messages", "C"), ("lc_monetary", "C"), ("lc_numeric", "C"),
                               ("lc_time", "C"), ("bytea_output", "hex"),
                               ("timezone_abbreviations", "Default"))]
    return [Step(0, s, SETUP_RULE) for s in sql]


def regress_steps(regress_dir: Path, files: Sequence[str] | None = None, major: int | None = None) -> list[Step]:
    """One step per test file (the schedule's order, or ``files``' order), the files that
    cannot run on ``major`` (``UNFIT``) left out. A name without a ``sql/NAME.sql`` file is a
    ValueError naming it."""
    names = list(files) if files is not None else schedule_files(regress_dir)
    steps = []
    for name in names:
        if unfit(name, major) is not None:
            continue
        path = regress_dir / "sql" / f"{name}.sql"
        if not path.is_file():
            raise ValueError(f"regression test {name!r}: no {path}")
        # a file that is not UTF-8 keeps its bytes (surrogateescape; run_script writes them back)
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        steps.append(Step(0, text, RULE, database=REGRESS_DB, script=name))
    return steps


def regress_workload(regress_dir: Path, settings: Settings, *, seed: int | None = None,
                     files: Sequence[str] | None = None, generated: Workload | None = None,
                     chooser: Chooser | None = None, major: int | None = None) -> Workload:
    """The suite (or ``files`` of it) of ``major`` as a workload under ``settings``. With ``generated``
    (and a ``chooser``): the suite's files interleaved with that workload's steps, each
    file after a drawn number of generated steps, the generated steps' order kept, under
    the generated workload's settings and sessions."""
    suite = setup_steps() + regress_steps(regress_dir, files, major)
    if generated is None:
        return Workload(settings, tuple(suite), seed, 1)
    if chooser is None:
        raise ValueError("interleaving needs a chooser")
    steps = interleave(suite, list(generated.steps), chooser)
    return replace(generated, steps=tuple(steps), seed=seed if seed is not None else generated.seed)


def interleave(suite: list[Step], generated: list[Step], chooser: Chooser) -> list[Step]:
    """Both step lists merged, each keeping its own order: at each turn a drawn choice
    takes the next step of one of them (the suite's setup steps stay together)."""
    out: list[Step] = []
    i = j = 0
    while i < len(suite) or j < len(generated):
        take_suite = j >= len(generated) or (i < len(suite) and (
            suite[i].rule == SETUP_RULE or chooser.integer(0, len(suite) + len(generated)) < len(suite)))
        if take_suite:
            out.append(suite[i])
            i += 1
        else:
            out.append(generated[j])
            j += 1
    return out


# -- statement-level steps, for minimize -----------------------------------------------------
_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")
_VARIABLE_COMMANDS = ("\\set", "\\getenv", "\\unset", "\\pset", "\\encoding")
_COPY_FROM_STDIN = re.compile(r"\bCOPY\b.*\bFROM\s+STDIN\b", re.I | re.S)


def script_statements(text: str) -> list[str]:
    """A psql script cut into its statements and meta-commands, in order: an SQL statement
    ends at a ``;`` outside quotes, dollar quotes and comments (with the data lines up to
    ``\\.`` after a ``COPY ... FROM STDIN``); a backslash command at a line's start is one
    piece, or ends the statement before it (``\\gset``, ``\\gexec``). Close enough to psql's
    own lexer for minimizing: a misjudged cut only makes a piece fail."""
    pieces: list[str] = []
    buf: list[str] = []
    quote: str | None = None  # "'", '"', a dollar tag, or "/*"
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if quote is None and line.lstrip().startswith("\\"):
            buf.append(line)
            pieces.append("".join(buf))
            buf = []
            continue
        buf.append(line)
        pos = 0
        while pos < len(line):
            c = line[pos]
            if quote is None:
                if line.startswith("--", pos):
                    break
                if line.startswith("/*", pos):
                    quote, pos = "/*", pos + 2
                    continue
                m = _DOLLAR.match(line, pos)
                if c in "'\"":
                    quote = c
                elif m is not None:
                    quote, pos = m.group(0), m.end()
                    continue
                elif c == "\\":  # a meta-command (\gset, \gexec ...) ends the statement, with the line
                    pieces.append("".join(buf))
                    buf = []
                    break
                elif c == ";":
                    stmt = "".join(buf)
                    if _COPY_FROM_STDIN.search(stmt):  # its data lines, up to \.
                        while i < len(lines):
                            buf.append(lines[i])
                            i += 1
                            if lines[i - 1].rstrip("\r\n") == "\\.":
                                break
                    pieces.append("".join(buf))
                    buf = []
                    break  # the rest of the line (a trailing comment, rarely more) is dropped
            elif quote == "/*" and line.startswith("*/", pos):
                quote, pos = None, pos + 2
                continue
            elif quote in ("'", '"') and c == quote:
                quote = None
            elif len(quote) > 1 and quote != "/*" and line.startswith(quote, pos):
                pos += len(quote)
                quote = None
                continue
            pos += 1
    pieces.append("".join(buf))
    return [p for p in map(_without_leading_comments, pieces) if p]


def _without_leading_comments(piece: str) -> str:
    lines = piece.splitlines(keepends=True)
    while lines and (not lines[0].strip() or lines[0].lstrip().startswith("--")):
        lines.pop(0)
    return "".join(lines)


def split_script(step: Step) -> list[Step]:
    """A script step as one step per statement (``script`` NAME#N), each after the
    variable-setting meta-commands (``\\set``, ``\\getenv`` ...) that came before it in the
    file, so the pieces still read the variables they use; other steps unchanged."""
    if step.script is None:
        return [step]
    out: list[Step] = []
    prelude: list[str] = []
    for n, piece in enumerate(script_statements(step.sql)):
        out.append(replace(step, sql="".join(prelude) + piece, script=f"{step.script}#{n}"))
        if piece.lstrip().startswith(_VARIABLE_COMMANDS):
            prelude.append(piece)
    return out
