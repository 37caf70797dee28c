"""Index rules: CREATE INDEX for every AM, BRIN and GIN maintenance functions, plain
index scans that kill dead items, and composite rules that reach rare index records
(btree fast root moves and splits, GIN posting-tree and GiST page deletion, BRIN
summaries that grow and move)."""

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
    _table,
    checkpoint_step,
    with_consistency_checking,
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

def _fresh_table(m: Model, prefix: str, kind: str, am: str, key: str = "c0") -> tuple[Table, Index, StepList]:
    """A new table (id int8, c0 ``kind``) with an ``am`` index on ``key``, both created empty."""
    t = Table(m.name(prefix), [Column("c0", kind, False)], fillfactor=m.default_fillfactor)
    m.tables.append(t)
    ix = Index(m.name(f"{t.name}_{am}"), am, [key])
    t.indexes.append(ix)
    with_ff = f" WITH (fillfactor = {t.fillfactor})" if t.fillfactor != 100 else ""
    return t, ix, [_step(0, f"CREATE TABLE {t.name} (id int8 NOT NULL, c0 {TYPES[kind].name}){with_ff}",
                         "create_table")]


def _index_sql(t: Table, ix: Index, with_: str = "") -> str:
    using = "" if ix.am == "btree" else f" USING {ix.am}"
    return f"CREATE INDEX {ix.name} ON {t.name}{using} ({ix.columns[0]}){with_}"


# (rows, rows deleted from the start, rows added) of btree_fastroot's two shapes: int8 keys
# (~366 to the first leaf of a rightmost split, a root over two leaves) and 500-byte keys
# (~14 to a leaf, ~10 downlinks to an internal page after a rightmost split: 250 rows are
# a root over two internal pages, the first of which covers fewer than 170 rows)
_FASTROOT_SHAPES = {"int8": (600, 400, 400), "padtext": (250, 170, 350)}


def btree_fastroot(m: Model, ch: Chooser) -> StepList:
    """A btree whose root has two children (a root over two leaves, int8 keys; or over two
    internal pages, 500-byte keys), filled in key order; the rows under the first child
    deleted and VACUUMed: deleting the level's leftmost page, whose right sibling is the
    level's last, moves the fast root down to that sibling (Btree/UNLINK_PAGE_META,
    _bt_unlink_halfdead_page); inserting past it then splits the fast root, and the
    downlink goes to its parent, alone on its level above the fast level, which becomes
    the fast root (Btree/INSERT_META, _bt_insertonpg with split_only_page). CHECKPOINTs
    before the VACUUM or the inserts give those records page images (image-applied);
    under wal_consistency_checking = btree their images are not applied."""
    kind = ch.choice(("int8", "int8", "padtext"))  # int8: the page UNLINK_PAGE_META deletes is a leaf
    n, dead, more = _FASTROOT_SHAPES[kind]
    t, ix, steps = _fresh_table(m, "bf", "padtext" if kind == "padtext" else "int4", "btree",
                                "c0" if kind == "padtext" else "id")
    t.next_id = n + more + 1
    steps += [_step(0, _index_sql(t, ix), "create_index"), _step(0, _insert_sql(t, 1, n, "asc"), "insert"),
              _step(0, f"DELETE FROM {t.name} WHERE id <= {dead}", "delete_most")]
    where = ch.choice(("", "vacuum", "insert", "both"))
    tail: StepList = []
    if where in ("vacuum", "both"):
        tail.append(checkpoint_step())
    tail.append(_step(0, f"VACUUM (INDEX_CLEANUP ON) {t.name}", "vacuum"))
    if where in ("insert", "both"):
        tail.append(checkpoint_step())
    tail.append(_step(0, _insert_sql(t, n + 1, n + more, "asc"), "insert"))
    return steps + (with_consistency_checking(0, "btree", tail) if ch.boolean(0.3) else tail)


def _delete_middle_and_vacuum(ch: Chooser, t: Table, n: int, rmgr: str) -> StepList:
    """Rows n/5 to 4n/5 of ``t`` deleted and VACUUMed, sometimes after a CHECKPOINT (the
    pages the VACUUM changes first then log images), sometimes under wal_consistency_checking
    = ``rmgr``."""
    tail = [_step(0, f"DELETE FROM {t.name} WHERE id BETWEEN {n // 5} AND {4 * n // 5}", "delete")]
    if ch.boolean(0.4):
        tail.append(checkpoint_step())
    tail.append(_step(0, f"VACUUM {t.name}", "vacuum"))
    return with_consistency_checking(0, rmgr, tail) if ch.boolean(0.2) else tail


def gin_posting_tree(m: Model, ch: Chooser) -> StepList:
    """Three GIN posting trees (keys 1-3 in every row, fastupdate off) of several leaves:
    built by CREATE INDEX over 24,000 rows (~8,000 TIDs to a leaf: three leaves) or grown
    by inserting 15,000 rows into the empty index (Gin/INSERT, SPLIT, CREATE_PTREE). A
    contiguous middle range deleted and VACUUMed empties whole leaves that are neither the
    leftmost nor the rightmost: ginDeletePage (Gin/DELETE_PAGE), on pages redo rebuilds
    (the leaf's first change since the checkpoint is its VACUUM_DATA_LEAF_PAGE). A
    CHECKPOINT before the VACUUM gives the parent and left sibling images (image-applied);
    under wal_consistency_checking = gin the images are not applied."""
    build = ch.boolean(0.75)  # the build is the cheaper: no 45,000 GIN inserts to redo
    n = 24000 if build else 15000
    t, ix, steps = _fresh_table(m, "gp", "ptreearr", "gin")
    t.next_id = n + 1
    create = _step(0, _index_sql(t, ix, " WITH (fastupdate = off)"), "create_index")
    fill = _step(0, _insert_sql(t, 1, n, "asc"), "insert_duplicates")
    steps += [fill, create] if build else [create, fill]
    return steps + _delete_middle_and_vacuum(ch, t, n, "gin")


def gist_page_delete(m: Model, ch: Chooser) -> StepList:
    """A GiST index over points on a line (leaves hold contiguous row ranges), grown by
    3,000 or 4,500 inserts or built over them; the middle three fifths deleted and VACUUMed:
    gistvacuumscan collects the emptied leaves and gistvacuum_delete_empty_pages unlinks
    them from the root, all but its last downlink (Gist/PAGE_DELETE: the leaf and the
    root, rebuilt by redo since the inserts made them). A CHECKPOINT before the VACUUM
    gives the root an image at the first PAGE_DELETE (image-applied); under
    wal_consistency_checking = gist the images are not applied."""
    n = ch.choice((3000, 4500))
    t, ix, steps = _fresh_table(m, "gd", "linepoint", "gist")
    t.next_id = n + 1
    create, fill = _step(0, _index_sql(t, ix), "create_index"), _step(0, _insert_sql(t, 1, n, "asc"), "insert")
    steps += [fill, create] if ch.boolean(0.3) else [create, fill]
    return steps + _delete_middle_and_vacuum(ch, t, n, "gist")


def inner_split_workout(m: Model, ch: Chooser) -> StepList:
    """Inner pages that split because a child split: GIN entry trees of 960-byte keys
    (ginPlaceToPage on a non-leaf page: Gin/SPLIT carrying the child whose incomplete
    split it finishes) and GiST trees whose inner keys are 2,024-byte tsvector signatures
    (gistplacetopage with a left child to clear F_FOLLOW_RIGHT: Gist/PAGE_SPLIT); half the
    time under wal_consistency_checking for the AM, whose images redo must not apply."""
    am = ch.choice(("gin", "gist"))
    kind, n = ("widearr", ch.choice((300, 500))) if am == "gin" else ("sigtsv", ch.choice((3000, 4000)))
    t, ix, steps = _fresh_table(m, "is", kind, am)
    t.next_id = n + 1
    with_ = " WITH (fastupdate = off)" if am == "gin" else ""
    key = f"c0 {TYPES[kind].ams[am]}".strip()
    steps.append(_step(0, f"CREATE INDEX {ix.name} ON {t.name} USING {am} ({key}){with_}", "create_index"))
    fill = [_step(0, _insert_sql(t, 1, n, ch.choice(("asc", "shuffled"))), "insert")]
    return steps + (with_consistency_checking(0, am, fill) if ch.boolean(0.5) else fill)


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
