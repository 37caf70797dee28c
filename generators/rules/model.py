"""The model the rules keep: column types (how a value is computed from a row id,
which index AMs take it), tables, indexes, sessions; and the helpers every rule uses."""

from __future__ import annotations

from dataclasses import dataclass, field

from generators.choose import Chooser
from generators.workload import Step

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
    # 500-byte btree keys in row order: ~15 to a page, so 250 rows make a three-level btree
    "padtext": _t("text", "lpad({g}::text, 500, '0')", btree=""),
    # every row shares keys 1-3: three GIN posting trees of one TID per row
    "ptreearr": _t("int4[]", "ARRAY[1, 2, 3, {g} % 50]", gin=""),
    # points on a line in row order: GiST leaves hold contiguous row ranges
    "linepoint": _t("point", "point({g}, {g})", gist=""),
    # one 960-character GIN key a row, hex that pglz cannot shrink: ~8 entries to a page,
    # inner entry pages (they hold the keys too) split after a few dozen rows
    "widearr": _t("text[]", "ARRAY[(SELECT string_agg(md5(({g} * 131 + i)::text), '') FROM generate_series(1, 30) i)]",
                  gin=""),
    # GiST inner keys of 2,024-byte signatures: four to an inner page, which splits every few leaf splits
    "sigtsv": _t("tsvector", "to_tsvector('simple', 'w' || {g})", gist="tsvector_ops(siglen = 2024)"),
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
    unlogged: bool = False

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
    databases_used: set[str] = field(default_factory=set)  # database slots this workload made (once each)
    tablespaces: list[str] = field(default_factory=list)  # tablespaces this workload made
    tablespaces_used: set[str] = field(default_factory=set)
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


def _step(session: int, sql: str, rule: str, rows: tuple[tuple[str | None, ...], ...] | None = None,
          database: str | None = None) -> Step:
    return Step(session, sql, rule, rows, database)


def checkpoint_step(session: int = 0) -> Step:
    """A CHECKPOINT: the next change to each page carries its full-page image."""
    return _step(session, "CHECKPOINT", "checkpoint")


# the session variable that keeps a session's wal_consistency_checking while a rule
# changes it for a few steps (a RESET would go back to the server's value, not the
# workload's session setting)
_SAVED_WCC = "redodiff.saved_wcc"


def with_consistency_checking(session: int, rmgrs: str, steps: StepList) -> StepList:
    """``steps`` run with ``wal_consistency_checking`` set to ``rmgrs`` on ``session`` (every
    step must be that session's), the session's own value put back afterwards."""
    assert all(s.session == session for s in steps)
    save = (f"SELECT set_config('{_SAVED_WCC}', current_setting('wal_consistency_checking'), false); "
            f"SELECT set_config('wal_consistency_checking', '{rmgrs}', false)")
    # coalesce: a shrunk workload may have lost the saving step; the setting then stays
    restore = (f"SELECT set_config('wal_consistency_checking', coalesce(current_setting('{_SAVED_WCC}', true), "
               f"current_setting('wal_consistency_checking')), false)")
    return [_step(session, save, "set_wcc"), *steps, _step(session, restore, "set_wcc")]


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
