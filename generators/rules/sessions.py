"""Transaction rules over the sessions: BEGIN, savepoints, COMMIT/ROLLBACK, two-phase
commit, a row lock that follows another session's update chain; ``finish`` closes all."""

from __future__ import annotations

from generators.choose import Chooser
from generators.rules.model import (
    Model,
    Session,
    StepList,
    _id_filter,
    _step,
    _table,
)


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

def finish(m: Model) -> StepList:
    """Close every open transaction and prepared transaction: a workload leaves nothing open."""
    steps = [_step(i, "COMMIT", "commit") for i in m.txn_sessions()]
    m.sessions[:] = [Session() for _ in m.sessions]
    steps += [_step(0, f"ROLLBACK PREPARED '{gid}'", "finish_prepared") for gid in m.prepared]
    m.prepared.clear()
    return steps
