"""Index rules: CREATE INDEX for every AM, BRIN and GIN maintenance functions, plain
index scans that kill dead items, and composite rules that reach rare index records
(btree fast root, GIN posting trees, BRIN summaries that grow and move)."""

from __future__ import annotations

from generators.choose import Chooser
from generators.rules.model import (
    INDEX_AMS,
    TYPES,
    Index,
    Model,
    StepList,
    Table,
    _step,
    _table,
)
from generators.rules.tables import _insert_sql, delete_rows


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
