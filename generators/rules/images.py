"""Image-form rules (issue 16): the record types a campaign reaches in their data form but
seldom with a page image. A block's first change after a checkpoint's redo pointer carries
a full-page image (``image-applied``); under ``wal_consistency_checking`` every record of
the named rmgrs carries one that redo must not apply (``image-not-applied``). Each rule
builds fresh relations of a shape where the record in question is, by construction, the
first change to a page after a CHECKPOINT step (or runs it with the rmgr's consistency
checking on for the session), and leaves them for the iteration's DROP SCHEMA (their
shapes -- fixed-size wide rows, one row to a heap page, an index on a column 16 times --
are no column kind the model knows, so they stay out of it).

Two heap cells of the issue's list are out of a sequential workload's reach on 15 and
left out: Heap/UPDATE+INIT's old page is always changed first by the Heap/LOCK that
heap_update logs before it looks for the new page (an image there needs a checkpoint
between the two records, i.e. a concurrent one), and Heap2/MULTI_INSERT+INIT clearing a
VM bit needs an all-visible page with no line pointer at all, which VACUUM never leaves
(PageTruncateLinePointerArray keeps one): only a bulk-extended page (RelationAddExtraBlocks,
under extension-lock contention) can become one."""

from __future__ import annotations

from generators.choose import Chooser
from generators.rules.model import (
    Column,
    Index,
    Model,
    StepList,
    Table,
    _step,
    checkpoint_step,
    with_consistency_checking,
)
from generators.rules.workouts import _kill_scans, spgist_radix_labels

# -- heap --------------------------------------------------------------------------------


def _wide_table(name: str) -> str:
    """A table for rows that are all the same size (``_wide_rows``), packed full (fillfactor
    100, whatever the workload's default): rows per page is a known number."""
    return f"CREATE TABLE {name} (id int8 NOT NULL, v int4 NOT NULL DEFAULT 0, c0 text) WITH (fillfactor = 100)"


def _wide_rows(name: str, lo: int, hi: int, width: int) -> str:
    """Rows ``lo``..``hi`` whose c0 is ``width`` characters of md5 hex (below TOAST's
    threshold: stored inline, uncompressed)."""
    reps = width // 32
    return (f"INSERT INTO {name} (id, c0) SELECT g, repeat(md5(g::text), {reps}) "
            f"FROM generate_series({lo}, {hi}) g")


def heap_lock_updated(m: Model, ch: Chooser) -> StepList:
    """Heap2/LOCK_UPDATED, its page's image: session a updates rows (no key column: a NO
    KEY UPDATE) and keeps its transaction open; a CHECKPOINT; session b locks the same
    rows FOR KEY SHARE, which does not conflict, so it follows each update chain and locks
    the new versions first (heap_lock_tuple -> heap_lock_updated_tuple, before the old
    version's Heap/LOCK): the new version's page gets its image from LOCK_UPDATED."""
    idle = m.idle_sessions()
    a, b = idle[0], idle[1]
    name = m.name("lu")
    n = ch.choice((20, 300))
    where = ch.choice(("id % 3 = 0", f"id <= {n // 2}", "id = 1"))
    return [
        _step(0, f"CREATE TABLE {name} (id int8 NOT NULL, v int4 NOT NULL)", "create_table"),
        _step(0, f"INSERT INTO {name} SELECT g, 0 FROM generate_series(1, {n}) g", "insert"),
        _step(a, "BEGIN", "begin"),
        _step(a, f"UPDATE {name} SET v = v + 1 WHERE {where}", "update_hot"),
        checkpoint_step(b),
        _step(b, f"SELECT id FROM {name} WHERE {where} FOR KEY SHARE", "select_for"),
        _step(a, ch.choice(("COMMIT", "ROLLBACK")), "commit"),
    ]


def heap_vacuum_images(m: Model, ch: Chooser) -> StepList:
    """Heap2/VACUUM with its page's image, then Heap2/FREEZE_PAGE under consistency checking.
    Rows deleted over every page and a sequential scan: each full page is pruned on access
    (heap_page_prune_opt), its dead tuples left LP_DEAD; after a CHECKPOINT, VACUUM's first
    pass has nothing to prune, so the second pass (lazy_vacuum_heap_page) is each page's
    first change. Then fresh rows and VACUUM (FREEZE) with wal_consistency_checking=heap2:
    the freeze plans (Heap2/FREEZE_PAGE) change pages the inserts changed since the last
    checkpoint, so their images are for checking only."""
    name = m.name("iv")
    n = ch.choice((400, 1200))
    k = ch.choice((2, 3, 5))
    steps = [
        _step(0, _wide_table(name), "create_table"),
        _step(0, f"CREATE INDEX {name}_id ON {name} (id)", "create_index"),
        _step(0, _wide_rows(name, 1, n, 160), "insert"),
        _step(0, f"DELETE FROM {name} WHERE id % {k} = 0", "delete"),
        _step(0, f"SELECT count(*) FROM {name}", "seqscan"),
        checkpoint_step(),
        _step(0, f"VACUUM (INDEX_CLEANUP on) {name}", "vacuum"),
    ]
    frz = m.name("if")
    steps += [
        _step(0, f"CREATE TABLE {frz} (id int8 NOT NULL, v int4)", "create_table"),
        _step(0, f"INSERT INTO {frz} SELECT g, g FROM generate_series(1, {ch.choice((200, 2000))}) g", "insert"),
    ]
    steps += with_consistency_checking(0, ch.choice(("heap2", "heap,heap2")),
                                       [_step(0, f"VACUUM (FREEZE) {frz}", "vacuum_freeze")])
    return steps


# -- hash --------------------------------------------------------------------------------


def hash_image_forms(m: Model, ch: Chooser) -> StepList:
    """Hash records with page images: a hash index on 7 distinct keys (overflow chains of
    a known shape), filled in id order.
    CHECKPOINT; rows deleted on the chains' later pages and VACUUM: squeezes that move
    tuples of the untouched last page into the room the deletions made on the one before
    (Hash/MOVE_PAGE_CONTENTS, the read page's first change), or free a last page all dead.
    (Hash/SPLIT_CLEANUP with an image is a race: the splitting backend cleans the old
    bucket itself right after the split unless another backend pins it meanwhile.)
    CHECKPOINT; more rows: overflow pages reused from the bitmap (Hash/ADD_OVFL_PAGE, the
    bitmap page's and the metapage's first change). Then deletes, index scans that kill
    the dead tuples (LP_DEAD), CHECKPOINT, and inserts that clean a full bucket page
    first (_hash_vacuum_one_page: Hash/VACUUM_ONE_PAGE, that page's and the metapage's
    first change)."""
    name = m.name("ih")
    # 7 keys: a chain of three pages per key (407 int4 index tuples to a page: ids up to
    # 2,849 on the first, to 5,704 on the second), whichever bucket the key ends up in
    n = ch.choice((6000, 7000))
    ix = f"{name}_hash"
    key = "(g % 7)::int4"
    ins = f"INSERT INTO {name} (id, c0) SELECT g, {key} FROM generate_series({{}}, {{}}) g"
    steps = [
        _step(0, f"CREATE TABLE {name} (id int8 NOT NULL, c0 int4)", "create_table"),
        _step(0, f"CREATE INDEX {ix} ON {name} USING hash (c0)", "create_index"),
        _step(0, ins.format(1, n), "insert"),
        checkpoint_step(),
        # keys 0-3: a band of 20 tuples a key on the chain's second page, so the squeeze
        # moves 20 of the third page's (43 or 186) there and no more (a move that empties the
        # read page is logged as SQUEEZE_PAGE instead); keys 4-6: their chain's third page
        # (ids from 5,705) and the second page's tail, so the squeeze frees the third
        _step(0, f"DELETE FROM {name} WHERE (c0 < 4 AND id BETWEEN {n // 2 + 1} AND {n // 2 + 140}) "
                 f"OR (c0 >= 4 AND id > 5600)", "delete"),
        _step(0, f"VACUUM {name}", "vacuum"),
        checkpoint_step(),
        _step(0, ins.format(n + 1, n + n // 4), "insert"),
        _step(0, f"DELETE FROM {name} WHERE id % {ch.choice((2, 3))} = 0", "delete"),
    ]
    steps += _kill_scans(m, Table(name, [Column("c0", "lowcard", False)]), "hash")
    steps += [checkpoint_step(), _step(0, ins.format(n + n // 4 + 1, n + n // 2), "insert_duplicates")]
    return steps


# -- BRIN --------------------------------------------------------------------------------


def brin_image_forms(m: Model, ch: Chooser) -> StepList:
    """BRIN records with page images: a BRIN index (one heap page per range; CREATE INDEX on
    the empty table makes the revmap page and range 0's summary) over rows of 800 bytes at
    fillfactor 10, one to a heap page, so ranges are cheap. CHECKPOINT, summarization;
    CHECKPOINT, then UPDATEs that widen numeric values: a summary that grows on a full page
    moves (brin_doupdate: BRIN/UPDATE, to a page with room or a new one, +INIT) and is the
    old page's and the revmap page's first change. Sometimes 1,400 ranges: more than a
    revmap page maps (REVMAP_PAGE_MAXITEMS, 1,360), so the summarization after the first
    CHECKPOINT adds a revmap page (BRIN/REVMAP_EXTEND, the metapage's first change). Then
    a second index whose first regular page is full at a CHECKPOINT (BRIN/INSERT+INIT or
    UPDATE+INIT with images: ``_brin_full_last_page``)."""
    name = m.name("ib")
    ix = f"{name}_brin"
    n = ch.choice((300, 500, 1400))
    pad = "repeat(md5(g::text), 25)"
    ins = f"INSERT INTO {name} SELECT g, (g * 1.25)::numeric, {pad} FROM generate_series({{}}, {{}}) g"
    return [
        _step(0, f"CREATE TABLE {name} (id int8 NOT NULL, c0 numeric, pad text) WITH (fillfactor = 10)",
              "create_table"),
        _step(0, f"CREATE INDEX {ix} ON {name} USING brin (c0) WITH (pages_per_range = 1, autosummarize = off)",
              "create_index"),
        _step(0, ins.format(1, n), "insert"),
        checkpoint_step(),
        _step(0, f"SELECT brin_summarize_new_values('{ix}')", "brin_summarize_new"),
        checkpoint_step(),
        _step(0, f"UPDATE {name} SET c0 = c0 * 1000003.0001 + 0.000123 WHERE id % {ch.choice((2, 3))} = 0",
              "update_indexed"),
        *_brin_full_last_page(m, ch, pad),
    ]


# int4 minmax summaries are 16 bytes, 20 with their line pointer (an all-NULL range's, 8 and
# 12): 408 fill a regular page's 8,160 bytes to the last byte, so not even a placeholder tuple
# (8 bytes and a line pointer) fits any more (int8's 28 would leave 12: the placeholder fits).
# So do 405 ranges and 5 all-NULL ones. Measured on 15; BRIN's page layout is the same in 16-18.
_BRIN_FULL_PAGE = {"insert": (408, 0), "grow": (410, 5)}


def _brin_full_last_page(m: Model, ch: Chooser, pad: str) -> StepList:
    """A BRIN index whose first regular page is exactly full of int4 summaries (range 0's,
    made by CREATE INDEX, and the first summarization's), then a CHECKPOINT. Either more
    ranges summarized: the first one's placeholder tuple (summarize_range -> brin_doinsert)
    fits on no page, so it goes to a new one (BRIN/INSERT+INIT, the revmap page's first
    change since the checkpoint); or an all-NULL range (heap rows 2-6) gets a value: its
    summary grows by 8 bytes and must leave the full page for a new one (brin_doupdate:
    BRIN/UPDATE+INIT, the old page's and the revmap page's first change)."""
    name = m.name("ib")
    ix = f"{name}_brin"
    how = ch.choice(("insert", "grow"))
    n, nulls = _BRIN_FULL_PAGE[how]
    val = f"CASE WHEN g BETWEEN 2 AND {1 + nulls} THEN NULL ELSE g END" if nulls else "g"
    ins = f"INSERT INTO {name} SELECT g, {val}, {pad} FROM generate_series({{}}, {{}}) g"
    steps = [
        _step(0, f"CREATE TABLE {name} (id int8 NOT NULL, c0 int4, pad text) WITH (fillfactor = 10)", "create_table"),
        _step(0, f"CREATE INDEX {ix} ON {name} USING brin (c0) WITH (pages_per_range = 1, autosummarize = off)",
              "create_index"),
        _step(0, ins.format(1, n), "insert"),
        _step(0, f"SELECT brin_summarize_new_values('{ix}')", "brin_summarize_new"),
        checkpoint_step(),
    ]
    if how == "insert":
        return [*steps, _step(0, ins.format(n + 1, n + 3), "insert"),
                _step(0, f"SELECT brin_summarize_new_values('{ix}')", "brin_summarize_new")]
    # heap_update keeps the new version on its page (room there): the range stays the same
    return [*steps, _step(0, f"UPDATE {name} SET c0 = id::int4 WHERE id BETWEEN 2 AND {1 + nulls}",
                          "update_indexed")]


# -- SP-GiST and GiST --------------------------------------------------------------------


def spgist_vacuum_images(m: Model, ch: Chooser) -> StepList:
    """SP-GiST VACUUM records with page images. A root-only index (a few rows, all on the
    root leaf page), some deleted, CHECKPOINT, VACUUM (vacuumLeafRoot: SPGist/VACUUM_ROOT).
    Sometimes also the radix-label workout (inner tuples moved, redirects left) with a
    CHECKPOINT before its VACUUM, which turns the redirects into placeholders
    (vacuumRedirectAndPlaceholder: SPGist/VACUUM_REDIRECT, the pages' first change)."""
    name = m.name("is")
    kind = ch.choice(("point", "text"))
    expr = "point(g % 17, g % 23)" if kind == "point" else "md5(g::text)"
    steps = [
        _step(0, f"CREATE TABLE {name} (id int8 NOT NULL, c0 {kind})", "create_table"),
        _step(0, f"CREATE INDEX {name}_spgist ON {name} USING spgist (c0)", "create_index"),
        _step(0, f"INSERT INTO {name} SELECT g, {expr} FROM generate_series(1, {ch.choice((20, 60))}) g", "insert"),
        _step(0, f"DELETE FROM {name} WHERE id % {ch.choice((2, 3))} = 0", "delete"),
        checkpoint_step(),
        _step(0, f"VACUUM {name}", "vacuum"),
    ]
    if ch.boolean(0.5) and len(m.tables) < 5:
        radix = spgist_radix_labels(m, ch)
        steps += [*radix[:-1], checkpoint_step(), radix[-1]]
    return steps


def gist_delete_images(m: Model, ch: Chooser) -> StepList:
    """Gist/DELETE with an image: a GiST index filled, a share of its rows deleted and
    killed by index scans (LP_DEAD); then the same keys again, so inserts that find a leaf
    full drop its dead tuples first (gistprunepage). Either a CHECKPOINT comes before the
    refill or the refill runs with wal_consistency_checking=gist (an image for checking
    only). After the CHECKPOINT the DELETE is the first change only to a leaf that was
    full already (on the others an insert comes first): so that variant indexes the key
    16 times over (index tuples of 520 bytes, 15 to a leaf), and a leaf is full at any
    moment with a fair chance, not one in a hundred (measured: 10-15 such leaves a run)."""
    checkpoint = ch.boolean(0.5)
    kind = "box" if checkpoint else ch.choice(("point", "box", "range"))
    col = Column("c0", kind, False)
    name = m.name("ig")
    t = Table(name, [col])
    n = ch.choice((3000, 6000))
    k = ch.choice((2, 3))
    keys = ", ".join(["c0"] * (16 if checkpoint else 1))
    steps = [
        _step(0, f"CREATE TABLE {name} (id int8 NOT NULL, c0 {col.type.name})", "create_table"),
        _step(0, f"CREATE INDEX {name}_gist ON {name} USING gist ({keys})", "create_index"),
        _step(0, f"INSERT INTO {name} (id, c0) SELECT g, {col.value('g')} FROM generate_series(1, {n}) g", "insert"),
        _step(0, f"DELETE FROM {name} WHERE id % {k} = 0", "delete"),
    ]
    t.indexes.append(Index(f"{name}_gist", "gist", ["c0"]))
    steps += _kill_scans(m, t, "gist")
    refill = [_step(0, f"INSERT INTO {name} (id, c0) SELECT g, {col.value(f'g - {n}')} "
                       f"FROM generate_series({n + 1}, {n + n // k}) g", "insert_duplicates")]
    if checkpoint:
        return [*steps, checkpoint_step(), *refill]
    return [*steps, *with_consistency_checking(0, "gist", refill)]
