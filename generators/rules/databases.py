"""Database and tablespace rules (issue 16): the workload spans more than one database
and more than one tablespace.

``CREATE DATABASE ... STRATEGY WAL_LOG`` logs every page of the template (XLOG/FPI
of each fork, Database/CREATE_WAL_LOG for the directory); ``STRATEGY FILE_COPY``
copies the directory at redo (Database/CREATE_FILE_COPY, no page in the WAL) between
two checkpoints. Sessions then work in the new database (``Step.database``).
Tablespaces are in place (``allow_in_place_tablespaces``: a directory under the
cluster's pg_tblspc, so under its temporary directory); ALTER TABLE/INDEX SET
TABLESPACE copies the relation page by page as XLOG/FPI, ALTER DATABASE SET
TABLESPACE copies the database's directory (Database/CREATE_FILE_COPY + DROP).

Database and tablespace names come from fixed slots, dropped if a previous workload
on the same cluster left them (a workload may leave them for the witness to read);
within one workload a slot is used once, so no session holds a connection to a
database dropped and made again.
"""

from __future__ import annotations

from generators.choose import Chooser
from generators.rules.model import Model, StepList, _step

DATABASE_SLOTS = ("rdw_db_a", "rdw_db_b")
TABLESPACE_SLOTS = ("rdw_spc_a", "rdw_spc_b")


def free_database(m: Model) -> str | None:
    return next((d for d in DATABASE_SLOTS if d not in m.databases_used), None)


def free_tablespace(m: Model) -> str | None:
    return next((s for s in TABLESPACE_SLOTS if s not in m.tablespaces_used), None)


def create_tablespace(m: Model, ch: Chooser) -> StepList:
    """An in-place tablespace; a table and an index of the model moved into it, a new
    table created in it."""
    spc = free_tablespace(m)
    assert spc is not None, "precondition: a free tablespace slot"
    m.tablespaces_used.add(spc)
    m.tablespaces.append(spc)
    # a database an earlier workload left may live in the tablespace: gone first
    steps = [_step(0, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)", "drop_database")
             for db in DATABASE_SLOTS if db not in m.databases_used]
    steps += [
        _step(0, f"DROP TABLESPACE IF EXISTS {spc}", "drop_tablespace"),
        _step(0, "SET allow_in_place_tablespaces = on", "create_tablespace"),
        _step(0, f"CREATE TABLESPACE {spc} LOCATION ''", "create_tablespace"),
        _step(0, "RESET allow_in_place_tablespaces", "create_tablespace"),
    ]
    return steps + set_tablespace(m, ch)


def set_tablespace(m: Model, ch: Chooser) -> StepList:
    """ALTER TABLE / ALTER INDEX ... SET TABLESPACE (a copy logged page by page), to a
    workload tablespace or back to pg_default."""
    t = ch.choice(m.tables)
    spc = ch.choice([*m.tablespaces, "pg_default"])
    steps = [_step(0, f"ALTER TABLE {t.name} SET TABLESPACE {spc}", "set_tablespace")]
    if t.indexes and ch.boolean(0.7):
        ix = ch.choice(t.indexes)
        steps.append(_step(0, f"ALTER INDEX {ix.name} SET TABLESPACE {ch.choice([*m.tablespaces, 'pg_default'])}",
                           "set_tablespace"))
    return steps


def create_database(m: Model, ch: Chooser) -> StepList:
    """CREATE DATABASE with either strategy (in a workload tablespace, sometimes);
    sometimes moved to a tablespace (ALTER DATABASE SET TABLESPACE, before anyone
    connects: it needs the database idle); then sessions connected to it create,
    fill, update and vacuum a table there; sometimes dropped (WITH (FORCE): the
    sessions' connections to it go)."""
    db = free_database(m)
    assert db is not None, "precondition: a free database slot"
    m.databases_used.add(db)
    strategy = ch.choice(("WAL_LOG", "WAL_LOG", "FILE_COPY"))
    where = f" TABLESPACE {ch.choice(m.tablespaces)}" if m.tablespaces and ch.boolean(0.3) else ""
    steps = [
        _step(0, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)", "drop_database"),
        _step(0, f"CREATE DATABASE {db} STRATEGY {strategy}{where}", f"create_database_{strategy.lower()}"),
    ]
    if m.tablespaces and not where and ch.boolean(0.3):
        steps.append(_step(0, f"ALTER DATABASE {db} SET TABLESPACE {ch.choice(m.tablespaces)}", "alter_database"))
    s = ch.integer(0, len(m.sessions) - 1)
    n = ch.choice((100, 1500))
    steps += [_step(s, sql, rule, database=db) for sql, rule in (
        ("CREATE TABLE d (id int8 PRIMARY KEY, v text, j jsonb)", "create_table"),
        (f"INSERT INTO d SELECT g, md5(g::text), jsonb_build_object('k', g % 7) FROM generate_series(1, {n}) g",
         "insert"),
        (f"UPDATE d SET v = v || 'x' WHERE id % {ch.choice((2, 5))} = 0", "update_hot"),
        ("CREATE INDEX d_j ON d USING gin (j)", "create_index"),
        (f"DELETE FROM d WHERE id % {ch.choice((3, 4))} = 0", "delete"),
        ("VACUUM d", "vacuum"),
    )]
    if ch.boolean(0.3):
        steps.append(_step(0, f"DROP DATABASE {db} WITH (FORCE)", "drop_database"))
    return steps
