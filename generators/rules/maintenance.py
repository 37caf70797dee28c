"""Maintenance rules: VACUUM (FREEZE, FULL), ANALYZE, TRUNCATE, CLUSTER, REINDEX,
sequences, CHECKPOINT."""

from __future__ import annotations

from generators.choose import Chooser
from generators.rules.indexes import _index, create_index
from generators.rules.model import (
    Model,
    StepList,
    _any_session,
    _step,
    _table,
    checkpoint_step,
)


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
    return [checkpoint_step(ch.choice(m.idle_sessions()))]
