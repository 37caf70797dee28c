"""Relation-shape rules (issue 16): partitioned tables whose UPDATEs move rows across
partitions, upserts at a steady rate, multixacts from concurrent share locks,
large objects, TOAST-heavy rows and temp tables. Each builds what it needs under a
fresh name, so it never depends on what the random tables hold, and leaves it for
the iteration's DROP SCHEMA: a relation dropped inside the range has no page left
for the primary to witness."""

from __future__ import annotations

from generators.choose import Chooser
from generators.rules.model import Model, StepList, _step

# a value of ~{n} KB that pglz cannot shrink much (md5 hex of distinct inputs)
_BIG = "(SELECT string_agg(md5(({g} * 7919 + i)::text), '') FROM generate_series(1, {n} * 32) i)"


def partition_move(m: Model, ch: Chooser) -> StepList:
    """A partitioned table (RANGE, LIST or HASH on k) filled across its partitions,
    then UPDATEs of k that move rows to another partition: the old version is
    deleted with XLH_DELETE_IS_PARTITION_MOVE (Heap/DELETE), the new one inserted
    into the other partition."""
    name = m.name("pt")
    kind = ch.choice(("RANGE", "LIST", "HASH"))
    if kind == "RANGE":
        bounds = [f"FROM ({i * 100}) TO ({(i + 1) * 100})" for i in range(3)]
    elif kind == "LIST":
        bounds = [f"IN ({', '.join(str(v) for v in range(i, 300, 3))})" for i in range(3)]
    else:
        bounds = [f"WITH (MODULUS 3, REMAINDER {i})" for i in range(3)]
    steps = [_step(0, f"CREATE TABLE {name} (id int8 NOT NULL, k int4 NOT NULL, c0 text) PARTITION BY {kind} (k)",
                   "create_table")]
    steps += [_step(0, f"CREATE TABLE {name}_p{i} PARTITION OF {name} FOR VALUES {b}", "create_table")
              for i, b in enumerate(bounds)]
    if ch.boolean(0.5):
        steps.append(_step(0, f"CREATE INDEX {name}_k ON {name} (k)", "create_index"))
    n = ch.choice((300, 2000))
    steps.append(_step(0, f"INSERT INTO {name} SELECT g, g % 300, md5(g::text) FROM generate_series(1, {n}) g",
                       "insert"))
    for _ in range(ch.integer(1, 3)):
        shift = ch.choice((100, 101, 200))
        steps.append(_step(ch.integer(0, len(m.sessions) - 1),
                           f"UPDATE {name} SET k = (k + {shift}) % 300 WHERE id % {ch.choice((2, 3, 7))} = 0",
                           "update_partition_move"))
    if ch.boolean(0.5):
        steps.append(_step(0, f"VACUUM {name}", "vacuum"))
    return steps


def upsert_workout(m: Model, ch: Chooser) -> StepList:
    """INSERT ... ON CONFLICT over a key range half present: every new key is a
    speculative insertion confirmed (Heap/CONFIRM), every present one skipped (DO
    NOTHING) or updated (DO UPDATE: Heap/UPDATE or HOT_UPDATE). A unique index on
    a second column makes the arbiter an explicit index of two."""
    name = m.name("k")
    n = ch.choice((50, 400))
    steps = [
        _step(0, f"CREATE TABLE {name} (id int8 PRIMARY KEY, u int8 NOT NULL, v int4)", "create_table"),
        _step(0, f"CREATE UNIQUE INDEX {name}_u ON {name} (u)", "create_index"),
        _step(0, f"INSERT INTO {name} SELECT g, g * 2, 0 FROM generate_series(1, {n}) g", "insert"),
    ]
    lo = 1
    for _ in range(ch.integer(2, 4)):
        lo += n // 2
        action = ch.choice(("DO NOTHING", "DO UPDATE SET v = x.v + 1", "DO UPDATE SET v = EXCLUDED.v"))
        target = ch.choice(("(id)", "(u)", ""))
        if not target and action != "DO NOTHING":
            target = "(id)"  # DO UPDATE needs a conflict target
        sql = (f"INSERT INTO {name} AS x SELECT g, g * 2, 1 FROM generate_series({lo}, {lo + n - 1}) g "
               f"ON CONFLICT {target} {action}")
        steps.append(_step(ch.integer(0, len(m.sessions) - 1), sql, "upsert"))
    return steps


def super_delete(m: Model, ch: Chooser) -> StepList:
    """Speculative insertions aborted (Heap/DELETE with XLH_DELETE_IS_SUPER, "super-delete")
    in one session, deterministically. ON CONFLICT first checks the arbiter index, then
    inserts the tuple and its index entries, and backs the tuple out when the index
    insertion meets a conflicting key that the check did not see (heap_abort_speculative);
    usually a concurrent inserter's doing. Here the arbiter is a unique index on an
    expression whose function (declared IMMUTABLE, and lying) returns id - 1 on every
    fourth call while armed: the check (call 1) sees id, the insertion (call 2) sees
    id - 1, an existing key, so the tuple is super-deleted; the retry (calls 3 and 4)
    inserts it. One super-delete per row, then a confirmed one (Heap/CONFIRM)."""
    name = m.name("sd")
    n = ch.choice((20, 200))
    guc = "redodiff.twist"
    fn = (f"CREATE FUNCTION {name}_twist(int8) RETURNS int8 IMMUTABLE LANGUAGE plpgsql AS $$ "
          f"DECLARE n int; BEGIN "
          f"IF coalesce(current_setting('{guc}', true), '') <> 'on' THEN RETURN $1; END IF; "
          f"n := coalesce(nullif(current_setting('{guc}_n', true), ''), '0')::int + 1; "
          f"PERFORM set_config('{guc}_n', n::text, false); "
          f"IF n % 4 = 2 THEN RETURN $1 - 1; END IF; RETURN $1; END $$")
    steps = [
        _step(0, fn, "create_function"),
        _step(0, f"CREATE TABLE {name} (id int8 NOT NULL, v int4)", "create_table"),
        _step(0, f"CREATE UNIQUE INDEX {name}_u ON {name} ({name}_twist(id))", "create_index"),
        _step(0, f"INSERT INTO {name} SELECT g * 2, 0 FROM generate_series(1, {n}) g", "insert"),
    ]
    for _ in range(ch.integer(1, 2)):
        lo = ch.integer(1, n // 2)
        hi = min(n - 1, lo + ch.choice((1, 10, 50)))
        arm = f"SELECT set_config('{guc}', 'on', false), set_config('{guc}_n', '0', false)"
        steps.append(_step(0, f"{arm}; INSERT INTO {name} SELECT g * 2 + 1, 1 FROM generate_series({lo}, {hi}) g "
                              f"ON CONFLICT DO NOTHING; SELECT set_config('{guc}', 'off', false)", "super_delete"))
    return steps


def multixact_locks(m: Model, ch: Chooser) -> StepList:
    """Two (or three) sessions share-lock the same rows (FOR SHARE / FOR KEY SHARE):
    the second locker turns xmax into a MultiXactId (MultiXact/CREATE_ID, Heap/LOCK
    with a multi); an update by one of them under the other's KEY SHARE keeps a
    multi with an updater. Committed in a drawn order."""
    idle = m.idle_sessions()
    who = [idle[i] for i in range(min(len(idle), ch.choice((2, 3))))]
    name = m.name("mx")
    steps = [
        _step(0, f"CREATE TABLE {name} (id int8 PRIMARY KEY, v int4)", "create_table"),
        _step(0, f"INSERT INTO {name} SELECT g, 0 FROM generate_series(1, {ch.choice((20, 500))}) g", "insert"),
    ]
    where = ch.choice(("id % 2 = 0", "id <= 100", "true"))
    modes = [ch.choice(("SHARE", "KEY SHARE")) for _ in who]
    for s, mode in zip(who, modes, strict=True):
        steps.append(_step(s, "BEGIN", "begin"))
        steps.append(_step(s, f"SELECT id FROM {name} WHERE {where} FOR {mode}", "select_for"))
    if all(md == "KEY SHARE" for md in modes[1:]) and ch.boolean(0.7):
        # NO KEY UPDATE coexists with the others' KEY SHARE: a multi with an updater
        steps.append(_step(who[0], f"UPDATE {name} SET v = v + 1 WHERE {where}", "update_hot"))
    order = list(who) if ch.boolean(0.5) else list(reversed(who))
    steps += [_step(s, ch.choice(("COMMIT", "COMMIT", "ROLLBACK")), "commit") for s in order]
    return steps


def large_objects(m: Model, ch: Chooser) -> StepList:
    """Large objects (pg_largeobject rows and its btree), written, overwritten in
    the middle, partly unlinked; all unlinked at the end (they outlive the schema)."""
    name = m.name("lob")
    n = ch.choice((3, 20))
    kb = ch.choice((2, 20))
    data = f"convert_to({_BIG.format(g='g', n=kb)}, 'UTF8')"
    return [
        _step(0, f"CREATE TABLE {name} (id int4, o oid)", "create_table"),
        _step(0, f"INSERT INTO {name} SELECT g, lo_from_bytea(0, {data}) FROM generate_series(1, {n}) g",
              "lo_create"),
        _step(0, f"SELECT lo_put(o, {ch.choice((100, 3000))}, convert_to(repeat(md5(id::text), 100), 'UTF8')) "
                 f"FROM {name} WHERE id % 2 = 0", "lo_put"),
        _step(0, f"SELECT lo_unlink(o) FROM {name} WHERE id % 3 = 0", "lo_unlink"),
        _step(0, f"SELECT lo_unlink(o) FROM {name} WHERE id % 3 <> 0", "lo_unlink"),
    ]


def toast_heavy(m: Model, ch: Chooser) -> StepList:
    """Rows of several KB to tens of KB, stored out of line (TOAST table and its
    index), updated (old chunks deleted, new inserted), partly deleted, vacuumed."""
    name = m.name("tst")
    storage = ch.choice(("EXTERNAL", "EXTENDED", "MAIN"))
    n = ch.choice((20, 200))
    steps = [
        _step(0, f"CREATE TABLE {name} (id int8 PRIMARY KEY, doc text, blob bytea)", "create_table"),
        _step(0, f"ALTER TABLE {name} ALTER COLUMN doc SET STORAGE {storage}", "alter_columns"),
        _step(0, f"INSERT INTO {name} SELECT g, {_BIG.format(g='g', n=ch.choice((3, 12)))}, "
                 f"decode({_BIG.format(g='g + 1', n=2)}, 'hex') FROM generate_series(1, {n}) g", "insert"),
        _step(0, f"UPDATE {name} SET doc = {_BIG.format(g='id * 3', n=ch.choice((2, 20)))} "
                 f"WHERE id % {ch.choice((2, 5))} = 0", "update_indexed"),
        _step(0, f"DELETE FROM {name} WHERE id % 3 = 0", "delete"),
    ]
    if ch.boolean(0.7):
        steps.append(_step(0, f"VACUUM {name}", "vacuum"))
    return steps


def temp_tables(m: Model, ch: Chooser) -> StepList:
    """A temp table with an index, filled, updated and dropped by one session: its
    pages have no WAL (only the catalog rows do), so the plan must not look for them."""
    s = ch.choice(m.idle_sessions())
    name = m.name("tmp")
    return [
        _step(s, f"CREATE TEMP TABLE {name} (id int8 PRIMARY KEY, v text)", "create_temp_table"),
        _step(s, f"INSERT INTO {name} SELECT g, md5(g::text) FROM generate_series(1, {ch.choice((100, 3000))}) g",
              "insert"),
        _step(s, f"UPDATE {name} SET v = v || 'x' WHERE id % 2 = 0", "update_hot"),
        _step(s, f"DROP TABLE {name}", "drop_table"),
    ]
