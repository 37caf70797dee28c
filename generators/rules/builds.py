"""Index builds over existing data (issue 16): every AM, with the opclasses whose
pages differ (BRIN minmax-multi and bloom, GiST/SP-GiST on geometric, range, inet
and text types, GIN on jsonb/arrays/tsvector and pg_trgm, contrib bloom), built
plainly or CONCURRENTLY, then rebuilt (REINDEX [CONCURRENTLY], CLUSTER, VACUUM FULL).

A build over rows writes its pages through the AM's build path (sorted btree and
GiST builds log XLOG/FPI pages, BRIN summarizes ranges, GIN flushes its
accumulator), not the insert path the empty-table workouts exercise.
"""

from __future__ import annotations

from generators.choose import Chooser
from generators.rules.model import Column, Index, Model, StepList, Table, _step
from generators.rules.tables import _insert_sql

# (column kind, AM, opclass): the kinds' expressions are in model.TYPES
OPCLASS_BUILDS: tuple[tuple[str, str, str], ...] = (
    ("int8", "brin", "int8_minmax_multi_ops"), ("ts", "brin", "timestamptz_minmax_multi_ops"),
    ("numeric", "brin", "numeric_minmax_multi_ops"), ("inet", "brin", "inet_minmax_multi_ops"),
    ("int4", "brin", "int4_bloom_ops"), ("text", "brin", "text_bloom_ops"), ("uuid", "brin", "uuid_bloom_ops"),
    ("range", "brin", "range_inclusion_ops"), ("box", "brin", "box_inclusion_ops"),
    ("point", "gist", "point_ops"), ("box", "gist", "box_ops"), ("range", "gist", "range_ops"),
    ("inet", "gist", "inet_ops"), ("tsv", "gist", "tsvector_ops"),
    ("point", "spgist", "quad_point_ops"), ("kdpoint", "spgist", "kd_point_ops"), ("box", "spgist", "box_ops"),
    ("range", "spgist", "range_ops"), ("inet", "spgist", "inet_ops"), ("prefixtext", "spgist", "text_ops"),
    ("jsonb", "gin", "jsonb_ops"), ("jsonbpath", "gin", "jsonb_path_ops"), ("intarr", "gin", "array_ops"),
    ("tsv", "gin", "tsvector_ops"), ("text", "gin", "gin_trgm_ops"), ("prefixtext", "gist", "gist_trgm_ops"),
    ("int4", "bloom", "int4_ops"), ("text", "bloom", "text_ops"),
    ("lowcard", "hash", "int4_ops"), ("text", "btree", "text_ops"), ("int8", "btree", "int8_ops"),
)
# the contrib module an opclass comes from (generators.capabilities fits it away without it)
OPCLASS_EXTENSION = {"gin_trgm_ops": "pg_trgm", "gist_trgm_ops": "pg_trgm"}


def _extension(am: str, opclass: str) -> str | None:
    if am == "bloom":
        return "bloom"
    return OPCLASS_EXTENSION.get(opclass)


def index_build(m: Model, ch: Chooser) -> StepList:
    """A fresh table filled first, then indexed (plainly or CONCURRENTLY) with one
    opclass, then changed and rebuilt: REINDEX [CONCURRENTLY], CLUSTER (btree) or
    VACUUM FULL."""
    kind, am, opclass = ch.choice(OPCLASS_BUILDS)
    name = m.name("b")
    col = Column("c0", kind, ch.boolean(0.2))
    t = Table(name, [col], fillfactor=m.default_fillfactor)
    m.tables.append(t)
    n = ch.choice((500, 3000, 8000))
    t.next_id = n + 1
    steps = [_step(0, f"CREATE TABLE {name} (id int8 NOT NULL, c0 {col.type.name})", "create_table"),
             _step(0, _insert_sql(t, 1, n, ch.choice(("asc", "shuffled"))), "insert")]
    ext = _extension(am, opclass)
    if ext is not None and ext not in m.extensions:
        m.extensions.add(ext)
        steps.append(_step(0, f"CREATE EXTENSION IF NOT EXISTS {ext}", "create_extension"))
    ix = Index(m.name(f"{name}_{am}"), am, ["c0"])
    t.indexes.append(ix)
    conc = " CONCURRENTLY" if ch.boolean(0.4) else ""
    with_ = {"brin": f" WITH (pages_per_range = {ch.choice((1, 4, 16))})",
             # buffering is GiST's own (a pg_trgm index fitted to btree keeps fillfactor only)
             "gist": ch.choice(("", " WITH (fillfactor = 70)") if ext else
                               ("", " WITH (buffering = on)", " WITH (fillfactor = 70)"))}.get(am, "")
    steps.append(_step(0, f"CREATE INDEX{conc} {ix.name} ON {name} USING {am} (c0 {opclass}){with_}",
                       "create_index_concurrently" if conc else "create_index"))
    if ch.boolean(0.6):
        lo, hi = t.next_id, t.next_id + n // 4
        t.next_id = hi + 1
        steps += [_step(0, _insert_sql(t, lo, hi, "asc"), "insert"),
                  _step(0, f"DELETE FROM {name} WHERE id % {ch.choice((3, 5))} = 0", "delete")]
    how = ch.choice(("reindex", "reindex_concurrently", "vacuum_full", "cluster"))
    if how == "cluster" and am != "btree":
        how = "vacuum_full"
    sql = {"reindex": f"REINDEX INDEX {ix.name}", "reindex_concurrently": f"REINDEX INDEX CONCURRENTLY {ix.name}",
           "vacuum_full": f"VACUUM FULL {name}", "cluster": f"CLUSTER {name} USING {ix.name}"}[how]
    steps.append(_step(0, sql, how))
    return steps
