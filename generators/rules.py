"""The workload rules: a model of the schema and sessions, and rules that turn
choices into valid SQL steps.

Each rule has a precondition on the model and returns the steps it adds; the
model tracks tables, columns (incl. dropped ones), indexes, sequences, open
transactions, savepoints and prepared transactions, so every step is valid SQL
by construction (a step can still fail at run time — a lock timeout between
sessions — and is then recorded, not fatal). All values come from deterministic
SQL expressions of row ids, so a workload replays to the same data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from generators.choose import Chooser
from generators.workload import WAL_COMPRESSION, Settings, Step, Workload

# -- column types ----------------------------------------------------------------------


@dataclass(frozen=True)
class ColType:
    """A column type: how to compute a value from row id ``{g}`` and which index
    AMs (with which opclass, '' for the default) can index it."""

    name: str
    expr: str
    ams: dict[str, str]
    toastable: bool = False

    @property
    def scan_all(self) -> str:
        """An index qual matching every non-NULL value (``{c}`` is the column)."""
        return _SCAN_ALL.get(self.name, "{c} IS NOT NULL")


# quals that gist/spgist opclasses can answer from the index (plain index scans
# kill dead tuples: LP_DEAD, later cleaned by DELETE / VACUUM_ONE_PAGE records)
_SCAN_ALL = {
    "point": "{c} <@ box '((-1000,-1000),(1000,1000))'",
    "box": "{c} && box '((-1000,-1000),(1000,1000))'",
    "inet": "{c} <<= '0.0.0.0/0'::inet",
    "int4range": "{c} && int4range(NULL, NULL)",
    "text": "{c} >= ''",
    "tsvector": "{c} @@ 'w1 | t1 | u1'::tsquery",
}


def _t(name: str, expr: str, toastable: bool = False, **ams: str) -> ColType:
    return ColType(name, expr, dict(ams), toastable)


TYPES: dict[str, ColType] = {
    "int4": _t("int4", "(({g} * 37) % 1000)::int4", btree="", hash="", brin="", bloom=""),
    "int8": _t("int8", "({g}::int8 * 7919)", btree="", hash="", brin=""),
    "lowcard": _t("int4", "({g} % 7)::int4", btree="", hash="", brin="", bloom=""),
    "text": _t("text", "md5({g}::text)", btree="", hash="", spgist="text_ops", brin="", bloom=""),
    "prefixtext": _t("text", "'customer/' || ({g} % 13) || '/order/' || {g}", btree="", spgist="text_ops"),
    "longtext": _t("text", "(SELECT string_agg(md5(({g} * 131 + i)::text), '') FROM generate_series(1, 40 + {g} % 200) i)",
                   toastable=True, btree=""),
    "numeric": _t("numeric", "({g} * 1.25)::numeric", btree="", brin=""),
    "bool": _t("bool", "({g} % 3 = 0)", btree=""),
    "ts": _t("timestamptz", "('2024-01-01'::timestamptz + {g} * interval '7 minutes')", btree="", brin=""),
    "float8": _t("float8", "({g} / 7.0)::float8", btree="", hash=""),
    "jsonb": _t("jsonb", "jsonb_build_object('k', {g} % 13, 'v', {g}, 'tag', 't' || ({g} % 5))",
                gin="jsonb_ops", btree=""),
    "jsonbpath": _t("jsonb", "jsonb_build_object('a', {g} % 29)", gin="jsonb_path_ops"),
    "intarr": _t("int4[]", "ARRAY[{g} % 10, {g} % 17, ({g} * 7) % 23]", gin=""),
    "tsv": _t("tsvector", "to_tsvector('simple', 'w' || ({g} % 50) || ' t' || ({g} % 7) || ' u' || ({g} % 3))",
              gin="", gist=""),
    "point": _t("point", "point(({g} * 17) % 100, ({g} * 31) % 97)", gist="", spgist=""),
    "kdpoint": _t("point", "point({g} % 50, ({g} * 13) % 61)", spgist="kd_point_ops"),
    "box": _t("box", "box(point({g} % 50, {g} % 30), point({g} % 50 + 1 + {g} % 4, {g} % 30 + 2))",
              gist="", spgist="box_ops", brin="box_inclusion_ops"),
    "inet": _t("inet", "('10.' || ({g} / 256 % 256) || '.' || ({g} % 256) || '.' || ({g} % 7 + 1))::inet",
               gist="inet_ops", spgist="inet_ops", brin="inet_inclusion_ops", btree="", hash=""),
    "range": _t("int4range", "int4range({g}, {g} + 1 + {g} % 20)", gist="", spgist="", brin="range_inclusion_ops"),
    "uuid": _t("uuid", "md5({g}::text)::uuid", btree="", hash="", brin=""),
    "bytea": _t("bytea", "decode(md5({g}::text), 'hex')", btree="", hash=""),
}
# the kinds random tables draw their columns from
TYPE_NAMES = tuple(TYPES)
# kinds only the index workouts use (kept out of TYPE_NAMES: adding one must not
# reshuffle the columns of every seed's workload)
TYPES.update({
    # 64 first characters: an SP-GiST radix tree's first inner tuple lacks some, so
    # later keys add nodes to it (SPGist/ADD_NODE)
    "b64text": _t("text", "encode(sha256({g}::text::bytea), 'base64')", btree="", spgist="text_ops"),
})
INDEX_AMS = ("btree", "hash", "gin", "gist", "spgist", "brin", "bloom")

# -- the model ---------------------------------------------------------------------------


@dataclass
class Column:
    name: str
    kind: str  # key into TYPES
    nulls: bool  # every 5th row NULL

    @property
    def type(self) -> ColType:
        return TYPES[self.kind]

    def value(self, g: str) -> str:
        if not g.isidentifier():
            g = f"({g})"
        v = self.type.expr.format(g=g)
        return f"CASE WHEN {g} % 5 = 0 THEN NULL ELSE {v} END" if self.nulls else v


@dataclass
class Index:
    name: str
    am: str
    columns: list[str]


@dataclass
class Table:
    name: str
    columns: list[Column]
    indexes: list[Index] = field(default_factory=list)
    next_id: int = 1
    fillfactor: int = 100

    def indexed(self) -> set[str]:
        return {c for ix in self.indexes for c in ix.columns}

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


@dataclass
class Session:
    in_txn: bool = False
    savepoints: int = 0


@dataclass
class Model:
    sessions: list[Session]
    tables: list[Table] = field(default_factory=list)
    sequences: list[str] = field(default_factory=list)
    prepared: list[str] = field(default_factory=list)
    extensions: set[str] = field(default_factory=set)
    counter: int = 0
    max_rows: int = 2000
    default_fillfactor: int = 100

    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    @property
    def quiet(self) -> bool:
        """No open transaction anywhere: DDL and VACUUM won't wait on locks."""
        return not any(s.in_txn for s in self.sessions) and not self.prepared

    def idle_sessions(self) -> list[int]:
        return [i for i, s in enumerate(self.sessions) if not s.in_txn]

    def txn_sessions(self) -> list[int]:
        return [i for i, s in enumerate(self.sessions) if s.in_txn]


StepList = list[Step]


def _step(session: int, sql: str, rule: str, rows: tuple[tuple[str | None, ...], ...] | None = None) -> Step:
    return Step(session, sql, rule, rows)


def _table(m: Model, ch: Chooser) -> Table:
    return ch.choice(m.tables)


def _any_session(m: Model, ch: Chooser) -> int:
    return ch.integer(0, len(m.sessions) - 1)


def _id_filter(t: Table, ch: Chooser) -> str:
    """A deterministic subset of rows."""
    hi = max(t.next_id, 2)
    kind = ch.integer(0, 2)
    if kind == 0:
        k = ch.integer(2, 10)
        return f"id % {k} = {ch.integer(0, k - 1)}"
    if kind == 1:
        a = ch.integer(1, hi)
        return f"id BETWEEN {a} AND {a + ch.integer(0, max(1, hi // 3))}"
    return f"id = {ch.integer(1, hi)}"


# -- rules -------------------------------------------------------------------------------------
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


def begin(m: Model, ch: Chooser) -> StepList:
    s = ch.choice(m.idle_sessions())
    m.sessions[s].in_txn = True
    m.sessions[s].savepoints = 0
    iso = ch.choice(("", "", " ISOLATION LEVEL REPEATABLE READ"))
    return [_step(s, f"BEGIN{iso}", "begin")]


def savepoint(m: Model, ch: Chooser) -> StepList:
    s = ch.choice(m.txn_sessions())
    m.sessions[s].savepoints += 1
    return [_step(s, f"SAVEPOINT sp{m.sessions[s].savepoints}", "savepoint")]


def rollback_to_savepoint(m: Model, ch: Chooser) -> StepList:
    cands = [i for i in m.txn_sessions() if m.sessions[i].savepoints]
    s = ch.choice(cands)
    k = ch.integer(1, m.sessions[s].savepoints)
    m.sessions[s].savepoints = k
    return [_step(s, f"ROLLBACK TO SAVEPOINT sp{k}", "rollback_to_savepoint")]


def end_txn(m: Model, ch: Chooser) -> StepList:
    s = ch.choice(m.txn_sessions())
    m.sessions[s] = Session()
    verb = ch.choice(("COMMIT", "COMMIT", "ROLLBACK"))
    return [_step(s, verb, "commit" if verb == "COMMIT" else "rollback")]


def prepare_txn(m: Model, ch: Chooser) -> StepList:
    s = ch.choice(m.txn_sessions())
    m.sessions[s] = Session()
    gid = m.name("gx")
    m.prepared.append(gid)
    return [_step(s, f"PREPARE TRANSACTION '{gid}'", "prepare")]


def finish_prepared(m: Model, ch: Chooser) -> StepList:
    gid = ch.choice(m.prepared)
    m.prepared.remove(gid)
    verb = ch.choice(("COMMIT PREPARED", "ROLLBACK PREPARED"))
    return [_step(ch.choice(m.idle_sessions()), f"{verb} '{gid}'", "finish_prepared")]


def create_index(m: Model, ch: Chooser) -> StepList:
    t = _table(m, ch)
    am = ch.choice(INDEX_AMS)
    cols = [c for c in t.columns if am in c.type.ams]
    if not cols:
        am, cols = "btree", []
    steps: StepList = []
    name = m.name(f"{t.name}_{am}")
    if am == "btree":
        keys = [c.name for c in cols[: ch.integer(1, 2)]] or ["id"]
        include = ""
        rest = [c for c in t.columns if c.name not in keys and "btree" in c.type.ams]
        if rest and ch.boolean(0.3):
            include = f" INCLUDE ({rest[0].name})"
        with_ = " WITH (deduplicate_items = off)" if ch.boolean(0.2) else ""
        sql = f"CREATE INDEX {name} ON {t.name} ({', '.join(keys)}){include}{with_}"
        t.indexes.append(Index(name, am, keys))
    elif am == "bloom":
        if "bloom" not in m.extensions:
            m.extensions.add("bloom")
            steps.append(_step(0, "CREATE EXTENSION IF NOT EXISTS bloom", "create_extension"))
        keys = [c.name for c in cols[:3]]
        sql = f"CREATE INDEX {name} ON {t.name} USING bloom ({', '.join(keys)})"
        t.indexes.append(Index(name, am, keys))
    else:
        c = ch.choice(cols)
        opclass = c.type.ams[am]
        key = f"{c.name} {opclass}".strip()
        with_ = ""
        if am == "gin":
            with_ = ch.choice((" WITH (fastupdate = off)", " WITH (fastupdate = on, gin_pending_list_limit = 64)", ""))
        elif am == "brin":
            with_ = f" WITH (pages_per_range = {ch.choice((1, 2, 4, 32))}, autosummarize = off)"
        elif am == "hash" and ch.boolean(0.5):
            with_ = " WITH (fillfactor = 50)"
        sql = f"CREATE INDEX {name} ON {t.name} USING {am} ({key}){with_}"
        t.indexes.append(Index(name, am, [c.name]))
    steps.append(_step(0, sql, "create_index"))
    return steps


def _index(m: Model, ch: Chooser, am: str | None = None) -> Index | None:
    ixs = [ix for t in m.tables for ix in t.indexes if am is None or ix.am == am]
    return ch.choice(ixs) if ixs else None


def brin_maintenance(m: Model, ch: Chooser) -> StepList:
    ix = _index(m, ch, "brin")
    if ix is None:
        return create_index(m, ch)
    what = ch.choice(("summarize_new", "summarize_range", "desummarize"))
    if what == "summarize_new":
        sql = f"SELECT brin_summarize_new_values('{ix.name}')"
    elif what == "summarize_range":
        sql = f"SELECT brin_summarize_range('{ix.name}', {ch.integer(0, 20)})"
    else:
        sql = f"SELECT brin_desummarize_range('{ix.name}', {ch.integer(0, 20)})"
    return [_step(0, sql, f"brin_{what}")]


def gin_clean(m: Model, ch: Chooser) -> StepList:
    ix = _index(m, ch, "gin")
    if ix is None:
        return create_index(m, ch)
    return [_step(0, f"SELECT gin_clean_pending_list('{ix.name}')", "gin_clean_pending_list")]


def _scan_sql(t: Table, ix: Index) -> str | None:
    """A statement that walks ``ix`` with plain index scans."""
    col = ix.columns[0]
    kind = "int8" if col == "id" else t.column(col).kind
    if ix.am in ("gin", "brin", "bloom"):
        return None  # no kill_prior_tuple there
    if ix.am == "hash":  # equality only: probe every key value of the table
        expr = TYPES[kind].expr.format(g="i")
        return (f"DO $$ BEGIN FOR i IN 1..{max(1, t.next_id)} LOOP "
                f"PERFORM 1 FROM {t.name} WHERE {col} = {expr}; END LOOP; END $$")
    qual = TYPES[kind].scan_all.format(c=col)
    return f"SELECT count(*) FROM {t.name} WHERE {qual}"


def index_scans(m: Model, ch: Chooser) -> StepList:
    """Plain index scans over deleted rows mark items LP_DEAD (kill_prior_tuple):
    later inserts into full pages clean them (btree/hash/gist DELETE,
    Hash/VACUUM_ONE_PAGE)."""
    t = _table(m, ch)
    scans = [sql for ix in t.indexes if (sql := _scan_sql(t, ix)) is not None]
    if not scans:
        return delete_rows(m, ch)
    return [
        _step(0, "SET enable_seqscan = off", "index_scan"),
        _step(0, "SET enable_bitmapscan = off", "index_scan"),
        *[_step(0, sql, "index_scan") for sql in scans],
        _step(0, "RESET enable_bitmapscan", "index_scan"),
        _step(0, "RESET enable_seqscan", "index_scan"),
    ]


def kill_and_refill(m: Model, ch: Chooser) -> StepList:
    """Delete rows, kill them with index scans, then insert the same keys again:
    full index pages clean out LP_DEAD items instead of splitting."""
    t = ch.choice([t for t in m.tables if t.indexes] or m.tables)
    k = ch.choice((2, 3, 4))
    steps = [_step(0, f"DELETE FROM {t.name} WHERE id % {k} = 0", "delete")]
    steps += index_scans_for(m, t)
    lo = t.next_id
    n = ch.choice((300, m.max_rows))
    t.next_id += n
    cols = ", ".join(["id", *(c.name for c in t.columns)])
    vals = ", ".join(["g", *(c.value(f"(g % {max(lo, 2)})") for c in t.columns)])
    steps.append(_step(0, f"INSERT INTO {t.name} ({cols}) SELECT {vals} FROM generate_series({lo}, {lo + n - 1}) g",
                       "insert_duplicates"))
    return steps


def index_scans_for(m: Model, t: Table) -> StepList:
    scans = [sql for ix in t.indexes if (sql := _scan_sql(t, ix)) is not None]
    if not scans:
        return []
    return [_step(0, "SET enable_seqscan = off", "index_scan"), _step(0, "SET enable_bitmapscan = off", "index_scan"),
            *[_step(0, sql, "index_scan") for sql in scans],
            _step(0, "RESET enable_bitmapscan", "index_scan"), _step(0, "RESET enable_seqscan", "index_scan")]


def lock_chain(m: Model, ch: Chooser) -> StepList:
    """A row lock that must follow an update chain (Heap2/LOCK_UPDATED): one session
    updates rows without committing, another locks them FOR KEY SHARE."""
    t = _table(m, ch)
    a, b = ch.choice([(i, j) for i in m.idle_sessions() for j in m.idle_sessions() if i != j])
    free = [c for c in t.columns if c.name not in t.indexed()] or t.columns
    c = ch.choice(free)
    where = _id_filter(t, ch)
    return [
        _step(a, "BEGIN", "begin"),
        _step(a, f"UPDATE {t.name} SET {c.name} = {c.value('id + 5')} WHERE {where}", "update_hot"),
        _step(b, f"SELECT id FROM {t.name} WHERE {where} FOR KEY SHARE", "select_for"),
        _step(a, ch.choice(("COMMIT", "ROLLBACK")), "commit"),
    ]


def btree_fastroot(m: Model, ch: Chooser) -> StepList:
    """Empty all but the last leaves and regrow: page deletion moves the fast root
    (UNLINK_PAGE_META); the fast-root leaf then splits (INSERT_META)."""
    t = ch.choice([t for t in m.tables if any(ix.am == "btree" for ix in t.indexes)] or m.tables)
    keep = ch.choice((20, 60))
    lo = t.next_id
    n = ch.choice((800, m.max_rows))
    t.next_id += n
    return [
        _step(0, f"DELETE FROM {t.name} WHERE id < (SELECT max(id) FROM {t.name}) - {keep}", "delete_most"),
        _step(0, f"VACUUM {t.name}", "vacuum"),
        _step(0, _insert_sql(t, lo, lo + n - 1, "asc"), "insert"),
    ]


def gin_posting_tree(m: Model, ch: Chooser) -> StepList:
    """One key shared by thousands of rows grows a GIN posting tree (CREATE_PTREE);
    deleting a contiguous range and VACUUM empties its leaves (DELETE_PAGE)."""
    gins = [t for t in m.tables if any(ix.am == "gin" for ix in t.indexes)]
    if not gins:
        return create_index(m, ch)
    t = ch.choice(gins)
    lo = t.next_id
    n = ch.choice((6000, 15000))  # 15000 TIDs of one key: a posting tree of several leaves
    t.next_id += n
    cols = ", ".join(["id", *(c.name for c in t.columns)])
    vals = ", ".join(["g", *(c.value("1") for c in t.columns)])
    a = lo + n // 5
    return [
        _step(0, f"INSERT INTO {t.name} ({cols}) SELECT {vals} FROM generate_series({lo}, {lo + n - 1}) g",
              "insert_duplicates"),
        # a contiguous middle range: a whole leaf of the posting tree empties
        _step(0, f"DELETE FROM {t.name} WHERE id BETWEEN {a} AND {a + 3 * n // 5}", "delete"),
        _step(0, f"VACUUM {t.name}", "vacuum"),
    ]


def brin_cycle(m: Model, ch: Chooser) -> StepList:
    """Summarize, desummarize, widen the values and summarize again (BRIN
    DESUMMARIZE, SAMEPAGE_UPDATE and UPDATE as summaries grow and move)."""
    ix = _index(m, ch, "brin")
    if ix is None:
        return create_index(m, ch)
    t = next(t for t in m.tables if ix in t.indexes)
    c = ix.columns[0]
    col = t.column(c)
    lo = t.next_id
    t.next_id += 500
    wide = col.value(f"(g * {ch.choice((97, 1009))})")
    return [
        _step(0, f"SELECT brin_summarize_new_values('{ix.name}')", "brin_summarize_new"),
        _step(0, f"SELECT brin_desummarize_range('{ix.name}', 0)", "brin_desummarize"),
        _step(0, f"INSERT INTO {t.name} (id, {c}) SELECT g, {wide} FROM generate_series({lo}, {lo + 499}) g",
              "insert"),
        _step(0, f"UPDATE {t.name} SET {c} = {col.value('(id * 13 + 7)')} WHERE id % 3 = 0", "update_indexed"),
        _step(0, f"SELECT brin_summarize_range('{ix.name}', 0)", "brin_summarize_range"),
        _step(0, f"VACUUM {t.name}", "vacuum"),
    ]


def vacuum(m: Model, ch: Chooser) -> StepList:
    t = _table(m, ch)
    sql, rule = ch.choice((
        ("VACUUM", "vacuum"), ("VACUUM", "vacuum"), ("VACUUM (FREEZE)", "vacuum_freeze"),
        ("VACUUM FULL", "vacuum_full"), ("ANALYZE", "analyze"), ("VACUUM (INDEX_CLEANUP on)", "vacuum"),
    ))
    return [_step(0, f"{sql} {t.name}", rule)]


def truncate(m: Model, ch: Chooser) -> StepList:
    t = _table(m, ch)
    return [_step(0, f"TRUNCATE {t.name}", "truncate")]


def cluster(m: Model, ch: Chooser) -> StepList:
    t = _table(m, ch)
    bt = [ix for ix in t.indexes if ix.am == "btree"]
    if not bt:
        return vacuum(m, ch)
    return [_step(0, f"CLUSTER {t.name} USING {ch.choice(bt).name}", "cluster")]


def reindex(m: Model, ch: Chooser) -> StepList:
    ix = _index(m, ch)
    if ix is None:
        return create_index(m, ch)
    return [_step(0, f"REINDEX INDEX {ix.name}", "reindex")]


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


def sequence_ops(m: Model, ch: Chooser) -> StepList:
    if not m.sequences or ch.boolean(0.2):
        s = m.name("seq")
        m.sequences.append(s)
        cache = ch.choice(("", " CACHE 10"))
        return [_step(0, f"CREATE SEQUENCE {s}{cache}", "create_sequence")]
    s = ch.choice(m.sequences)
    what = ch.integer(0, 2)
    if what == 0:
        return [_step(_any_session(m, ch), f"SELECT nextval('{s}') FROM generate_series(1, {ch.choice((1, 5, 40))})", "nextval")]
    if what == 1:
        return [_step(_any_session(m, ch), f"SELECT setval('{s}', {ch.integer(1, 100000)})", "setval")]
    return [_step(0, f"ALTER SEQUENCE {s} RESTART WITH {ch.integer(1, 1000)}", "alter_sequence")]


def checkpoint(m: Model, ch: Chooser) -> StepList:
    """A CHECKPOINT mid-workload: the next change to each page logs a full-page image."""
    return [_step(ch.choice(m.idle_sessions()), "CHECKPOINT", "checkpoint")]


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


@dataclass(frozen=True)
class Rule:
    name: str
    weight: int
    fn: Callable[[Model, Chooser], StepList]
    pre: Callable[[Model], bool]


def _has_tables(m: Model) -> bool:
    return bool(m.tables)


def _ddl_ok(m: Model) -> bool:
    return bool(m.tables) and m.quiet


# == selftest coverage rules (issue 9, mutation self-test) ==========================
# Rules that make one workload reach the redo paths the mutant catalog breaks:
# each index AM inserting, splitting, vacuuming and recycling pages the range
# itself creates (so redo routines run, not image restores), and btree
# posting-list splits. Registered at the end of RULES, in the matching block.
_AM_WORKOUT_KINDS: dict[str, tuple[str, ...]] = {
    "hash": ("lowcard", "lowcard", "int4", "text"),  # few keys: long overflow chains to squeeze
    "gin": ("jsonb", "jsonb", "jsonb", "tsv", "intarr"),  # jsonb_ops: every row shares 3 keys
    "gist": ("point", "box", "range", "tsv", "inet"),
    "spgist": ("prefixtext", "b64text", "b64text", "text", "kdpoint", "point", "inet", "range", "box"),
    # numeric summaries grow when widened: they move to another page (BRIN/UPDATE)
    "brin": ("numeric", "numeric", "numeric", "int8", "ts", "inet", "range"),
    "bloom": ("int4", "lowcard", "text"),
}


def index_am_workout(m: Model, ch: Chooser) -> StepList:
    """A fresh table with one column suited to one index AM, indexed while empty,
    filled (inserts, page splits, hash bucket splits and overflow pages), mostly
    deleted and vacuumed (index vacuum, page deletion, hash squeeze), sometimes
    refilled (page reuse). Every AM gets redo records on pages the range creates.
    GIN deletes a contiguous middle range (whole posting-tree leaves empty:
    DELETE_PAGE); BRIN summarizes, widens summaries in place or onto another
    page, and desummarizes (SAMEPAGE_UPDATE, UPDATE, DESUMMARIZE)."""
    # weighted by how many record types each AM's redo has (hash: 13)
    am = ch.choice(("hash", "hash", "hash", "gin", "gin", "gist", "gist", "spgist", "spgist", "brin", "brin",
                    "bloom"))
    col = Column("c0", ch.choice(_AM_WORKOUT_KINDS[am]), ch.boolean(0.2))
    name = m.name("w")
    # BRIN: sparse heap pages make many summaries, so BRIN pages fill up and a growing
    # summary must move to another page (BRIN/UPDATE)
    ff = 10 if am == "brin" else m.default_fillfactor
    t = Table(name, [col], fillfactor=ff)
    m.tables.append(t)
    with_ff = f" WITH (fillfactor = {ff})" if ff != 100 else ""
    steps = [_step(0, f"CREATE TABLE {name} (id int8 NOT NULL, c0 {col.type.name}){with_ff}", "create_table")]
    if am == "bloom" and "bloom" not in m.extensions:
        m.extensions.add("bloom")
        steps.append(_step(0, "CREATE EXTENSION IF NOT EXISTS bloom", "create_extension"))
    with_ = {
        "gin": ch.choice((" WITH (fastupdate = off)", " WITH (fastupdate = on, gin_pending_list_limit = 64)")),
        "brin": f" WITH (pages_per_range = {ch.choice((1, 1, 2))}, autosummarize = off)",
        "hash": ch.choice(("", " WITH (fillfactor = 50)")),
    }.get(am, "")
    ix = Index(m.name(f"{name}_{am}"), am, ["c0"])
    t.indexes.append(ix)
    key = f"c0 {col.type.ams[am]}".strip()
    steps.append(_step(0, f"CREATE INDEX {ix.name} ON {name} USING {am} ({key}){with_}", "create_index"))
    # GIN: 15000 rows sharing keys make posting trees of several leaves; BRIN: 550-700
    # summaries at one heap page per range fill BRIN pages, so a widened summary must
    # move (measured: 3,000 rows never gave BRIN/UPDATE, 12,000 numeric rows did);
    # hash: an index built on an empty table starts with buckets for ~2,500 tuples, so
    # it takes more than that to split buckets (SPLIT_ALLOCATE_PAGE/SPLIT_PAGE/SPLIT_COMPLETE)
    if am == "gin":
        n = 15000
    elif am == "brin":
        n = ch.choice((12000, 15000))
    elif am == "hash":
        n = ch.choice((4000, 6000))
    else:
        n = ch.choice((1000, 3000))
    t.next_id = n + 1
    steps.append(_step(0, _insert_sql(t, 1, n, ch.choice(("asc", "shuffled", "desc"))), "insert"))
    if am == "brin":
        steps += [
            _step(0, f"SELECT brin_summarize_new_values('{ix.name}')", "brin_summarize_new"),
            _step(0, f"UPDATE {name} SET c0 = {col.value('(id * 1009 + 7)')} WHERE id % {ch.choice((3, 7))} = 0",
                  "update_indexed"),
        ]
    if am == "gin" or ch.boolean(0.7):
        if am == "gin":
            where = f"id BETWEEN {n // 5} AND {n // 5 + 3 * n // 5}"
        else:
            where = f"id % {ch.choice((2, 10, 100))} <> 0"
        steps.append(_step(0, f"DELETE FROM {name} WHERE {where}", "delete_most"))
        steps.append(_step(0, f"VACUUM {name}", "vacuum"))
        if ch.boolean(0.6):
            lo, hi = t.next_id, t.next_id + n // 2
            t.next_id = hi + 1
            steps.append(_step(0, _insert_sql(t, lo, hi, "asc"), "insert"))
    if am == "brin":  # last: a VACUUM (brinvacuumcleanup) would summarize the range again
        steps.append(_step(0, f"SELECT brin_desummarize_range('{ix.name}', {ch.choice((0, 1, 2))})",
                           "brin_desummarize"))
    return steps


def btree_posting_split(m: Model, ch: Chooser) -> StepList:
    """Few key values in deduplicated posting lists; a third of the rows deleted and
    vacuumed; then the same keys again: new heap TIDs land in freed heap slots,
    inside posting lists' TID ranges (Btree/INSERT_POST, splits with postingoff)."""
    col = Column("c0", ch.choice(("lowcard", "bool", "int4")), False)
    name = m.name("p")
    t = Table(name, [col], fillfactor=m.default_fillfactor)
    m.tables.append(t)
    ix = Index(m.name(f"{name}_btree"), "btree", ["c0"])
    t.indexes.append(ix)
    n = ch.choice((2000, 4000))
    t.next_id = n + n // 2 + 1
    return [
        _step(0, f"CREATE TABLE {name} (id int8 NOT NULL, c0 {col.type.name})", "create_table"),
        _step(0, f"CREATE INDEX {ix.name} ON {name} (c0)", "create_index"),
        _step(0, _insert_sql(t, 1, n, "asc"), "insert_duplicates"),
        _step(0, f"DELETE FROM {name} WHERE id % {ch.choice((2, 3))} = 0", "delete"),
        _step(0, f"VACUUM {name}", "vacuum"),
        _step(0, _insert_sql(t, n + 1, n + n // 2, ch.choice(("asc", "shuffled"))), "insert_duplicates"),
    ]


def spgist_radix_labels(m: Model, ch: Chooser) -> StepList:
    """A three-level SP-GiST radix tree on text (4 x 4 x 3 labels), then keys with new
    labels at the third level, then at the second: inner tuples that share their page
    gain nodes (SPGist/ADD_NODE in place, and moved once the page is full). Random
    text rarely does this: its first inner tuple is the only item on its page.
    Later steps insert base64 keys (64 first characters: more ADD_NODE at the root)."""
    col = Column("c0", "b64text", False)
    name = m.name("r")
    t = Table(name, [col], fillfactor=m.default_fillfactor)
    m.tables.append(t)
    ix = Index(m.name(f"{name}_spgist"), "spgist", ["c0"])
    t.indexes.append(ix)
    n = ch.choice((1600, 2400))  # phase 1: how full the third-level leaves get
    t.next_id = n + 1500 + 1
    ab, cd = "chr(65 + g % 4)", "chr(97 + g / 4 % 4)"
    fill = f"INSERT INTO {name} (id, c0) SELECT g, {{}} FROM generate_series({{}}, {{}}) g"
    return [
        _step(0, f"CREATE TABLE {name} (id int8 NOT NULL, c0 text)", "create_table"),
        _step(0, f"CREATE INDEX {ix.name} ON {name} USING spgist (c0)", "create_index"),
        _step(0, fill.format(f"{ab} || {cd} || chr(48 + g / 16 % 3) || 'xyz' || g", 1, n), "insert"),
        _step(0, fill.format(f"{ab} || {cd} || chr(51 + g / 16 % 75)", n + 1, n + 1200), "insert"),
        _step(0, fill.format(f"{ab} || chr(51 + g / 4 % 75) || 'w'", n + 1201, n + 1500), "insert"),
    ]


# == end of selftest coverage rules ====================================================


RULES: tuple[Rule, ...] = (
    Rule("create_table", 3, create_table, lambda m: m.quiet and len(m.tables) < 4),
    Rule("insert", 14, insert_rows, _has_tables),
    Rule("insert_duplicates", 4, insert_duplicates, _has_tables),
    Rule("copy", 3, copy_rows, _has_tables),
    Rule("upsert", 2, upsert, _has_tables),
    Rule("update_hot", 8, update_hot, _has_tables),
    Rule("update_indexed", 6, update_indexed, _has_tables),
    Rule("delete", 6, delete_rows, _has_tables),
    Rule("delete_most", 2, delete_most, _ddl_ok),
    Rule("select_for", 4, select_for, _has_tables),
    Rule("begin", 4, begin, lambda m: bool(m.idle_sessions()) and bool(m.tables)),
    Rule("savepoint", 2, savepoint, lambda m: bool(m.txn_sessions())),
    Rule("rollback_to_savepoint", 2, rollback_to_savepoint,
         lambda m: any(m.sessions[i].savepoints for i in m.txn_sessions())),
    Rule("end_txn", 5, end_txn, lambda m: bool(m.txn_sessions())),
    Rule("prepare", 1, prepare_txn, lambda m: bool(m.txn_sessions()) and len(m.prepared) < 3),
    Rule("finish_prepared", 2, finish_prepared, lambda m: bool(m.prepared) and bool(m.idle_sessions())),
    Rule("create_index", 7, create_index, _ddl_ok),
    Rule("brin", 2, brin_maintenance, _ddl_ok),
    Rule("gin_clean", 1, gin_clean, _ddl_ok),
    Rule("index_scans", 2, index_scans, lambda m: bool(m.tables) and not m.sessions[0].in_txn),
    Rule("vacuum", 6, vacuum, _ddl_ok),
    Rule("truncate", 1, truncate, _ddl_ok),
    Rule("cluster", 1, cluster, _ddl_ok),
    Rule("reindex", 1, reindex, _ddl_ok),
    Rule("alter_columns", 1, alter_columns, _ddl_ok),
    Rule("sequence", 3, sequence_ops, lambda m: m.quiet),
    Rule("checkpoint", 2, checkpoint, lambda m: bool(m.idle_sessions())),
    # composite rules that reach rare record types
    Rule("kill_and_refill", 2, kill_and_refill, lambda m: _ddl_ok(m) and any(t.indexes for t in m.tables)),
    Rule("lock_chain", 2, lock_chain, lambda m: bool(m.tables) and len(m.idle_sessions()) >= 2),
    Rule("btree_fastroot", 1, btree_fastroot, lambda m: _ddl_ok(m) and any(
        ix.am == "btree" for t in m.tables for ix in t.indexes)),
    Rule("gin_posting_tree", 1, gin_posting_tree, _ddl_ok),
    Rule("brin_cycle", 1, brin_cycle, _ddl_ok),
    # == selftest coverage rules (issue 9): each index AM's insert/split/vacuum redo, posting splits ==
    Rule("index_am_workout", 6, index_am_workout, lambda m: m.quiet and len(m.tables) < 5),
    Rule("btree_posting_split", 1, btree_posting_split, lambda m: m.quiet and len(m.tables) < 5),
    Rule("spgist_radix_labels", 1, spgist_radix_labels, lambda m: m.quiet and len(m.tables) < 5),
    # == end of selftest coverage rules ==
)
RULE_NAMES = tuple(r.name for r in RULES)


def pick_rule(m: Model, ch: Chooser) -> Rule:
    rules = [r for r in RULES if r.pre(m)]
    total = sum(r.weight for r in rules)
    x = ch.integer(0, total - 1)
    for r in rules:
        if x < r.weight:
            return r
        x -= r.weight
    return rules[-1]


def finish(m: Model) -> StepList:
    """Close every open transaction and prepared transaction: a workload leaves nothing open."""
    steps = [_step(i, "COMMIT", "commit") for i in m.txn_sessions()]
    m.sessions[:] = [Session() for _ in m.sessions]
    steps += [_step(0, f"ROLLBACK PREPARED '{gid}'", "finish_prepared") for gid in m.prepared]
    m.prepared.clear()
    return steps


@dataclass(frozen=True)
class Profile:
    """How big workloads get."""

    name: str
    min_steps: int
    max_steps: int
    max_rows: int
    max_sessions: int = 4


PROFILES = {
    "ci": Profile("ci", 6, 18, 1500),
    "nightly": Profile("nightly", 12, 45, 4000),
    "tiny": Profile("tiny", 2, 5, 200, 2),  # resource-hygiene runs: many short iterations
}


def draw_settings(ch: Chooser) -> Settings:
    return Settings(
        full_page_writes=ch.boolean(0.7),
        wal_compression=ch.choice(WAL_COMPRESSION),
        data_checksums=ch.boolean(0.2),
        wal_log_hints=ch.boolean(0.2),
        fillfactor=ch.choice((100, 100, 90, 70, 50)),
    )


def build_workload(ch: Chooser, profile: Profile, seed: int | None = None,
                   settings: Settings | None = None) -> Workload:
    """Draw a whole workload: settings, sessions, steps."""
    settings = settings or draw_settings(ch)
    m = Model([Session() for _ in range(ch.integer(1, profile.max_sessions))], max_rows=profile.max_rows,
              default_fillfactor=settings.fillfactor)
    steps: StepList = create_table(m, ch)
    for _ in range(ch.integer(profile.min_steps, profile.max_steps)):
        steps += pick_rule(m, ch).fn(m, ch)
    steps += finish(m)
    return Workload(settings, tuple(steps), seed, len(m.sessions))
