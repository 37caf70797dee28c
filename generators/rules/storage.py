"""Storage rules: unlogged relations, whose init fork is the only part WAL-logged.

An UNLOGGED table's heap has an empty init fork (Storage/CREATE of INIT_FORKNUM);
each of its indexes has its AM's empty index in the init fork (``ambuildempty``:
metapages, roots, written through log_newpage or the AM's own records), an
UNLOGGED sequence its first tuple (Sequence/LOG on the init fork). TRUNCATE gives
the relations new relfilenodes and so new init forks; ALTER TABLE SET LOGGED
rewrites the table with WAL (its pages logged as images) and drops the init
forks, SET UNLOGGED rewrites it back with new init forks.
"""

from __future__ import annotations

from generators.choose import Chooser
from generators.rules.model import (
    INDEX_AMS,
    TYPES,
    Column,
    Index,
    Model,
    StepList,
    Table,
    _step,
)
from generators.rules.tables import _insert_sql

# one column kind per index AM on it (opclass from TYPES): every AM gets its init fork
_UNLOGGED_COLUMNS: dict[str, tuple[str, ...]] = {
    "btree": ("int4", "text", "uuid"),
    "hash": ("int4", "text"),
    "gin": ("jsonb", "intarr", "tsv"),
    "gist": ("point", "box", "range", "inet"),
    "spgist": ("text", "point", "inet", "range"),
    "brin": ("int8", "ts", "inet"),
    "bloom": ("int4", "lowcard"),
}


def unlogged_workout(m: Model, ch: Chooser) -> StepList:
    """A fresh UNLOGGED table with one index of every AM (bloom where the build has
    it) and an UNLOGGED sequence; filled (no WAL but the index builds' init forks),
    then some of: TRUNCATE (new init forks), ALTER TABLE SET LOGGED (a logged
    rewrite) and back to SET UNLOGGED, ALTER SEQUENCE SET LOGGED/UNLOGGED."""
    name = m.name("u")
    cols = [Column(f"c{i}", ch.choice(_UNLOGGED_COLUMNS[am]), ch.boolean(0.2)) for i, am in enumerate(INDEX_AMS)]
    t = Table(name, cols, fillfactor=m.default_fillfactor, unlogged=True)
    m.tables.append(t)
    coldefs = ", ".join(f"{c.name} {c.type.name}" for c in cols)
    steps = [_step(0, f"CREATE UNLOGGED TABLE {name} (id int8 NOT NULL, {coldefs})", "create_unlogged_table")]
    if ch.boolean(0.5):  # populated before the index builds, or after (ambuild vs. inserts)
        steps += _fill(t, ch)
    pkey = Index(f"{name}_pkey", "btree", ["id"])
    t.indexes.append(pkey)
    steps.append(_step(0, f"ALTER TABLE {name} ADD CONSTRAINT {pkey.name} PRIMARY KEY (id)", "create_index"))
    if "bloom" not in m.extensions:
        m.extensions.add("bloom")
        steps.append(_step(0, "CREATE EXTENSION IF NOT EXISTS bloom", "create_extension"))
    for am, c in zip(INDEX_AMS, cols, strict=True):
        ix = Index(m.name(f"{name}_{am}"), am, [c.name])
        t.indexes.append(ix)
        key = f"{c.name} {TYPES[c.kind].ams[am]}".strip()
        steps.append(_step(0, f"CREATE INDEX {ix.name} ON {name} USING {am} ({key})", "create_index"))
    seq = m.name("useq")
    m.sequences.append(seq)
    steps.append(_step(0, f"CREATE UNLOGGED SEQUENCE {seq}", "create_unlogged_sequence"))
    steps.append(_step(0, f"SELECT nextval('{seq}') FROM generate_series(1, {ch.choice((1, 40))})", "nextval"))
    if t.next_id == 1 or ch.boolean(0.5):
        steps += _fill(t, ch)
    if ch.boolean(0.5):
        steps.append(_step(0, f"TRUNCATE {name}", "truncate"))
        steps += _fill(t, ch)
    if ch.boolean(0.6):
        steps += set_persistence(t, ch)
    if ch.boolean(0.5):
        steps.append(_step(0, f"ALTER SEQUENCE {seq} SET {ch.choice(('LOGGED', 'UNLOGGED'))}", "alter_sequence"))
    return steps


def _fill(t: Table, ch: Chooser) -> StepList:
    n = ch.choice((200, 1500))
    lo, t.next_id = t.next_id, t.next_id + n
    return [_step(0, _insert_sql(t, lo, lo + n - 1, ch.choice(("asc", "shuffled"))), "insert")]


def set_persistence(t: Table, ch: Chooser) -> StepList:
    """ALTER TABLE SET LOGGED / SET UNLOGGED, and sometimes back again: each is a
    rewrite (new relfilenodes; init forks made or dropped)."""
    steps: StepList = []
    for _ in range(ch.choice((1, 2))):
        t.unlogged = not t.unlogged
        verb = "UNLOGGED" if t.unlogged else "LOGGED"
        steps.append(_step(0, f"ALTER TABLE {t.name} SET {verb}", f"set_{verb.lower()}"))
    return steps


def toggle_logged(m: Model, ch: Chooser) -> StepList:
    """An existing table (logged or not) changes persistence."""
    return set_persistence(ch.choice(m.tables), ch)
