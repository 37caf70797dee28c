"""Table and row rules: CREATE TABLE, inserts (plain, duplicate keys, COPY, upsert),
HOT and non-HOT updates, deletes, row locks, columns added and dropped."""

from __future__ import annotations

from generators.choose import Chooser
from generators.rules.model import (
    TYPE_NAMES,
    Column,
    Index,
    Model,
    StepList,
    Table,
    _any_session,
    _id_filter,
    _step,
    _table,
)


def create_table(m: Model, ch: Chooser) -> StepList:
    name = m.name("t")
    ncols = ch.integer(1, 5)
    cols = [Column(f"c{i}", ch.choice(TYPE_NAMES), ch.boolean(0.2)) for i in range(ncols)]
    ff = ch.choice((m.default_fillfactor, m.default_fillfactor, 90, 70, 50, 20))
    t = Table(name, cols, fillfactor=ff)
    m.tables.append(t)
    coldefs = ", ".join(f"{c.name} {c.type.name}" for c in cols)
    with_ = f" WITH (fillfactor = {ff})" if ff != 100 else ""
    steps = [_step(0, f"CREATE TABLE {name} (id int8 NOT NULL, {coldefs}){with_}", "create_table")]
    if ch.boolean(0.5):
        ix = Index(f"{name}_pkey", "btree", ["id"])
        t.indexes.append(ix)
        steps.append(_step(0, f"ALTER TABLE {name} ADD CONSTRAINT {ix.name} PRIMARY KEY (id)", "create_index"))
    return steps


def _insert_sql(t: Table, lo: int, hi: int, order: str = "") -> str:
    cols = ", ".join(["id", *(c.name for c in t.columns)])
    vals = ", ".join(["g", *(c.value("g") for c in t.columns)])
    step = " , -1" if order == "desc" else ""
    src = f"generate_series({hi}, {lo}{step})" if order == "desc" else f"generate_series({lo}, {hi})"
    tail = " ORDER BY md5(g::text)" if order == "shuffled" else ""
    return f"INSERT INTO {t.name} ({cols}) SELECT {vals} FROM {src} g{tail}"


def insert_rows(m: Model, ch: Chooser) -> StepList:
    t = _table(m, ch)
    n = ch.choice((1, 1, 5, 50, 300, m.max_rows))
    lo, hi = t.next_id, t.next_id + n - 1
    t.next_id = hi + 1
    order = ch.choice(("asc", "asc", "desc", "shuffled"))
    return [_step(_any_session(m, ch), _insert_sql(t, lo, hi, order), "insert")]


def insert_duplicates(m: Model, ch: Chooser) -> StepList:
    """Many rows sharing few key values: btree deduplication, posting lists, hash overflow."""
    t = _table(m, ch)
    n = ch.choice((200, m.max_rows))
    lo, hi = t.next_id, t.next_id + n - 1
    t.next_id = hi + 1
    k = ch.choice((1, 3, 10))
    cols = ", ".join(["id", *(c.name for c in t.columns)])
    vals = ", ".join(["g", *(c.value(f"(g % {k})") for c in t.columns)])
    return [_step(_any_session(m, ch), f"INSERT INTO {t.name} ({cols}) SELECT {vals} FROM generate_series({lo}, {hi}) g",
                  "insert_duplicates")]


def copy_rows(m: Model, ch: Chooser) -> StepList:
    """COPY FROM STDIN (heap multi-insert). Values computed here, as text."""
    t = _table(m, ch)
    n = ch.choice((10, 100, 1000))
    lo = t.next_id
    t.next_id += n
    simple = [c for c in t.columns if c.kind in ("int4", "int8", "lowcard", "text", "float8", "bool")]
    rows = []
    for g in range(lo, lo + n):
        row: list[str | None] = [str(g)]
        for c in simple:
            row.append(None if c.nulls and g % 5 == 0 else _py_value(c.kind, g))
        rows.append(tuple(row))
    cols = ", ".join(["id", *(c.name for c in simple)])
    return [_step(_any_session(m, ch), f"COPY {t.name} ({cols}) FROM STDIN", "copy", tuple(rows))]


def _py_value(kind: str, g: int) -> str:
    import hashlib

    if kind == "int4":
        return str((g * 37) % 1000)
    if kind == "int8":
        return str(g * 7919)
    if kind == "lowcard":
        return str(g % 7)
    if kind == "text":
        return hashlib.md5(str(g).encode()).hexdigest()
    if kind == "float8":
        return repr(g / 7.0)
    return "true" if g % 3 == 0 else "false"


def update_hot(m: Model, ch: Chooser) -> StepList:
    """Update a column no index covers: HOT when the page has room."""
    t = _table(m, ch)
    free = [c for c in t.columns if c.name not in t.indexed()]
    if not free:
        return update_indexed(m, ch)
    c = ch.choice(free)
    return [_step(_any_session(m, ch), f"UPDATE {t.name} SET {c.name} = {c.value('id + 1')} WHERE {_id_filter(t, ch)}",
                  "update_hot")]


def update_indexed(m: Model, ch: Chooser) -> StepList:
    """Update an indexed column (or the id): never HOT."""
    t = _table(m, ch)
    cols = [c for c in t.columns if c.name in t.indexed()]
    if cols:
        c = ch.choice(cols)
        sets = f"{c.name} = {c.value('id + 3')}"
    else:
        sets = "id = id"  # still a new tuple version, and with no index: HOT-able
    return [_step(_any_session(m, ch), f"UPDATE {t.name} SET {sets} WHERE {_id_filter(t, ch)}", "update_indexed")]


def delete_rows(m: Model, ch: Chooser) -> StepList:
    t = _table(m, ch)
    return [_step(_any_session(m, ch), f"DELETE FROM {t.name} WHERE {_id_filter(t, ch)}", "delete")]


def delete_most(m: Model, ch: Chooser) -> StepList:
    """Empty most pages, then VACUUM: index page deletion, heap truncation."""
    t = _table(m, ch)
    k = ch.choice((10, 50, 1000))
    steps = [_step(0, f"DELETE FROM {t.name} WHERE id % {k} <> 0", "delete_most")]
    if m.quiet:
        steps.append(_step(0, f"VACUUM {t.name}", "vacuum"))
    return steps


def select_for(m: Model, ch: Chooser) -> StepList:
    """Row locks (heap LOCK; several sessions sharing rows make multixacts)."""
    t = _table(m, ch)
    mode = ch.choice(("UPDATE", "NO KEY UPDATE", "SHARE", "KEY SHARE"))
    s = _any_session(m, ch)
    return [_step(s, f"SELECT id FROM {t.name} WHERE {_id_filter(t, ch)} FOR {mode}", "select_for")]

def alter_columns(m: Model, ch: Chooser) -> StepList:
    t = _table(m, ch)
    droppable = [c for c in t.columns if c.name not in t.indexed()]
    if droppable and ch.boolean(0.5) and len(t.columns) > 1:
        c = ch.choice(droppable)
        t.columns.remove(c)
        return [_step(0, f"ALTER TABLE {t.name} DROP COLUMN {c.name}", "drop_column")]
    c = Column(m.name("c"), ch.choice(TYPE_NAMES), ch.boolean(0.3))
    t.columns.append(c)
    return [_step(0, f"ALTER TABLE {t.name} ADD COLUMN {c.name} {c.type.name}", "add_column")]

def upsert(m: Model, ch: Chooser) -> StepList:
    """INSERT ... ON CONFLICT: speculative insertion (HEAP_CONFIRM, super-delete)."""
    t = next((t for t in m.tables if any(ix.name.endswith("_pkey") for ix in t.indexes)), None)
    if t is None:
        return insert_rows(m, ch)
    lo = ch.integer(1, max(1, t.next_id))
    hi = lo + ch.choice((1, 20, 200))
    t.next_id = max(t.next_id, hi + 1)
    cols = ", ".join(["id", *(c.name for c in t.columns)])
    vals = ", ".join(["g", *(c.value("g") for c in t.columns)])
    action = ch.choice(("DO NOTHING", "DO UPDATE SET id = EXCLUDED.id"))
    return [_step(_any_session(m, ch), f"INSERT INTO {t.name} ({cols}) SELECT {vals} FROM generate_series({lo}, {hi}) g "
                  f"ON CONFLICT (id) {action}", "upsert")]
