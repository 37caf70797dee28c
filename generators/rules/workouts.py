"""Selftest coverage rules (issue 9, mutation self-test).

Rules that make one workload reach the redo paths the mutant catalog breaks:
each index AM inserting, splitting, vacuuming and recycling pages the range
itself creates (so redo routines run, not image restores), btree posting-list
splits, and the cleanup an insert does on a full GiST leaf or hash bucket page
(with freeze plans and row locks on the same table). Registered at the end of
RULES, in the matching block."""

from __future__ import annotations

from generators.choose import Chooser
from generators.rules.indexes import index_scans_for
from generators.rules.model import (
    Column,
    Index,
    Model,
    StepList,
    Table,
    _step,
    checkpoint_step,
)
from generators.rules.tables import _insert_sql

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
    order = ch.choice(("asc", "shuffled", "desc"))
    # a CHECKPOINT half-way through the fill, and another before the vacuum phase: the
    # pages the workout made are then older than the redo pointer, so the next change to
    # each logs its image -- the image forms (coverage grid) of splits, vacuums, squeezes
    if ch.boolean(0.5):
        steps += [_step(0, _insert_sql(t, 1, n // 2, order), "insert"), checkpoint_step(),
                  _step(0, _insert_sql(t, n // 2 + 1, n, order), "insert")]
    else:
        steps.append(_step(0, _insert_sql(t, 1, n, order), "insert"))
    if ch.boolean(0.5):
        steps.append(checkpoint_step())
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
    Later steps insert base64 keys (64 first characters: more ADD_NODE at the root).
    A VACUUM last turns the redirects the moves left into placeholders."""
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
        # the moved inner tuples left redirects; their inserts are over: VACUUM turns them
        # into placeholders (SPGist/VACUUM_REDIRECT, a record 16 changed)
        _step(0, f"VACUUM {name}", "vacuum"),
    ]


# index AMs whose inserts clean LP_DEAD tuples out of a full page, and the key kinds
# used (hash: few keys make long bucket chains; gist: _SCAN_ALL quals walk every leaf)
_PRUNE_KINDS: dict[str, tuple[str, ...]] = {"gist": ("point", "box", "range"), "hash": ("lowcard", "int4")}


def _kill_scans(m: Model, t: Table, am: str) -> StepList:
    """Plain index scans over every key: index tuples of rows dead to everyone get LP_DEAD
    (kill_prior_tuple; gistkillitems, _hash_kill_items set F_HAS_GARBAGE and
    LH_PAGE_HAS_DEAD_TUPLES). Hash answers equality only: one probe per distinct key."""
    if am == "gist":
        return index_scans_for(m, t)
    loop = (f"DO $$ DECLARE v int4; BEGIN FOR v IN SELECT DISTINCT c0 FROM {t.name} LOOP "
            f"PERFORM 1 FROM {t.name} WHERE c0 = v; END LOOP; END $$")
    return [_step(0, "SET enable_seqscan = off", "index_scan"), _step(0, "SET enable_bitmapscan = off", "index_scan"),
            _step(0, loop, "index_scan"),
            _step(0, "RESET enable_bitmapscan", "index_scan"), _step(0, "RESET enable_seqscan", "index_scan")]


def index_prune_workout(m: Model, ch: Chooser) -> StepList:
    """A fresh table with a GiST or hash index, filled; sometimes VACUUM (FREEZE) (freeze
    plans: 16 Heap2/FREEZE_PAGE, 17+ Heap2/PRUNE_VACUUM_SCAN); a share of the rows
    deleted and plain index scans over every key, which mark their index tuples LP_DEAD;
    then as many rows again with the keys of the first ones: an insert that finds its
    GiST leaf or hash bucket page full first drops the page's LP_DEAD tuples
    (gistprunepage: Gist/DELETE; _hash_vacuum_one_page: Hash/VACUUM_ONE_PAGE). GiST then
    loses a few more rows to a VACUUM; hash does not (hashbulkdelete would reset the
    metapage's tuple count that VACUUM_ONE_PAGE redo lowers). Sometimes ends with row
    locks on rows nothing changes afterwards (Heap/LOCK as a tuple's last change: the
    lock a cross-page UPDATE or an ON CONFLICT DO UPDATE writes is followed by the
    UPDATE, whose redo resets the xmax bits again)."""
    am = ch.choice(("gist", "hash"))
    col = Column("c0", ch.choice(_PRUNE_KINDS[am]), False)
    name = m.name("kp")
    t = Table(name, [col], fillfactor=m.default_fillfactor)
    m.tables.append(t)
    ix = Index(m.name(f"{name}_{am}"), am, ["c0"])
    t.indexes.append(ix)
    # gist: 3000 rows fill ~20 leaves; hash: more than an empty index's ~2,500-tuple buckets
    n = 3000 if am == "gist" else ch.choice((4000, 6000))
    k = ch.choice((2, 3))
    steps = [
        _step(0, f"CREATE TABLE {name} (id int8 NOT NULL, c0 {col.type.name})", "create_table"),
        _step(0, f"CREATE INDEX {ix.name} ON {name} USING {am} (c0)", "create_index"),
        _step(0, _insert_sql(t, 1, n, ch.choice(("asc", "shuffled"))), "insert"),
    ]
    if ch.boolean(0.5):
        steps.append(_step(0, f"VACUUM (FREEZE) {name}", "vacuum_freeze"))
    steps.append(_step(0, f"DELETE FROM {name} WHERE id % {k} = 0", "delete"))
    steps += _kill_scans(m, t, am)
    lo, hi = n + 1, n + n // k
    t.next_id = hi + 1
    steps.append(_step(0, f"INSERT INTO {name} (id, c0) SELECT g, {col.value(f'g - {n}')} "
                          f"FROM generate_series({lo}, {hi}) g", "insert_duplicates"))
    if am == "gist":  # the primary's leaves get F_TUPLES_DELETED from gistvacuum too (redo
        # of 16-18 sets it at DELETE, gistprunepage does not): then the DELETE's pages verify
        steps.append(_step(0, f"DELETE FROM {name} WHERE id % 5 = 1", "delete"))
        steps.append(_step(0, f"VACUUM {name}", "vacuum"))
    if ch.boolean(0.5):
        mode = ch.choice(("UPDATE", "NO KEY UPDATE", "SHARE", "KEY SHARE"))
        steps.append(_step(0, f"SELECT id FROM {name} WHERE id % 7 = 1 FOR {mode}", "select_for"))
    return steps
