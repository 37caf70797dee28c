"""The workload rules: a model of the schema and sessions, and rules that turn
choices into valid SQL steps.

Each rule has a precondition on the model and returns the steps it adds; the
model tracks tables, columns (incl. dropped ones), indexes, sequences, open
transactions, savepoints and prepared transactions, so every step is valid SQL
by construction (a step can still fail at run time — a lock timeout between
sessions — and is then recorded, not fatal). All values come from deterministic
SQL expressions of row ids, so a workload replays to the same data.

The rules live by family: ``tables`` (tables and rows), ``sessions``
(transactions), ``indexes`` (index AMs), ``maintenance`` (VACUUM and the like),
``workouts`` (selftest coverage), and issue 16's breadth: ``storage`` (unlogged
relations, init forks), ``relations`` (partition moves, upserts, multixacts, large
objects, TOAST, temp tables), ``databases`` (databases and tablespaces), ``builds``
(index builds over rows, opclasses, rebuilds), ``images`` (records with their page image
applied or only checked: a CHECKPOINT right before them, or wal_consistency_checking);
``model`` holds the model they share. This
module is the registry: ``RULES`` (its order and weights fix what a seed
draws), ``pick_rule``, the profiles and ``build_workload``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

from generators.choose import Chooser
from generators.rules.builds import index_build
from generators.rules.databases import (
    create_database,
    create_tablespace,
    free_database,
    free_tablespace,
    set_tablespace,
)
from generators.rules.images import (
    brin_image_forms,
    gist_delete_images,
    hash_image_forms,
    heap_lock_updated,
    heap_vacuum_images,
    spgist_vacuum_images,
)
from generators.rules.indexes import (
    brin_cycle,
    brin_maintenance,
    btree_fastroot,
    create_index,
    gin_clean,
    gin_posting_tree,
    gist_page_delete,
    index_scans,
    inner_split_workout,
    kill_and_refill,
)
from generators.rules.maintenance import (
    checkpoint,
    cluster,
    reindex,
    sequence_ops,
    truncate,
    vacuum,
)
from generators.rules.model import Model, Session, StepList
from generators.rules.relations import (
    large_objects,
    multixact_locks,
    partition_move,
    super_delete,
    temp_tables,
    toast_heavy,
    upsert_workout,
)
from generators.rules.sessions import (
    begin,
    end_txn,
    finish,
    finish_prepared,
    lock_chain,
    prepare_txn,
    rollback_to_savepoint,
    savepoint,
)
from generators.rules.storage import toggle_logged, unlogged_workout
from generators.rules.tables import (
    alter_columns,
    copy_rows,
    create_table,
    delete_most,
    delete_rows,
    insert_duplicates,
    insert_rows,
    select_for,
    update_hot,
    update_indexed,
    upsert,
)
from generators.rules.workouts import (
    btree_posting_split,
    index_am_workout,
    index_prune_workout,
    spgist_radix_labels,
)
from generators.workload import WAL_COMPRESSION, WAL_CONSISTENCY_CHECKING, Settings, Workload

__all__ = [
    "HEAVY_MIN_ROWS",
    "PROFILES",
    "RULES",
    "RULE_NAMES",
    "Model",
    "Profile",
    "Rule",
    "Session",
    "build_workload",
    "create_table",
    "draw_settings",
    "finish",
    "index_am_workout",
    "pick_rule",
    "profile_named",
]


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


# the fixed-shape workouts (the selftest's AM workouts, a fast root, posting trees, inner
# splits, the image forms) write thousands of rows whatever the profile: left out of a
# profile of fewer rows (tiny: the hygiene runs, many short iterations of flat memory)
HEAVY_MIN_ROWS = 1000


def _sized(m: Model) -> bool:
    return m.max_rows >= HEAVY_MIN_ROWS


def _once(prefix: str) -> Callable[[Model], bool]:
    """Quiet, and no table named ``prefix<N>`` yet: a heavy workout (tens of thousands of
    rows) runs once a workload, however often an aimed profile draws it."""
    def pre(m: Model) -> bool:
        return m.quiet and _sized(m) and len(m.tables) < 5 and not any(
            t.name.startswith(prefix) and t.name[len(prefix):].isdigit() for t in m.tables)

    return pre


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
    # fresh tables of a known shape: fast-root moves and splits, GIN and GiST page deletion
    Rule("btree_fastroot", 2, btree_fastroot, lambda m: m.quiet and _sized(m) and len(m.tables) < 5),
    Rule("gin_posting_tree", 2, gin_posting_tree, _once("gp")),
    Rule("gist_page_delete", 2, gist_page_delete, _once("gd")),
    Rule("inner_split_workout", 2, inner_split_workout, lambda m: m.quiet and _sized(m) and len(m.tables) < 5),
    Rule("brin_cycle", 1, brin_cycle, _ddl_ok),
    # == selftest coverage rules (issue 9): each index AM's insert/split/vacuum redo, posting splits ==
    Rule("index_am_workout", 6, index_am_workout, lambda m: m.quiet and _sized(m) and len(m.tables) < 5),
    Rule("btree_posting_split", 1, btree_posting_split, lambda m: m.quiet and _sized(m) and len(m.tables) < 5),
    Rule("spgist_radix_labels", 2, spgist_radix_labels, lambda m: m.quiet and _sized(m) and len(m.tables) < 5),
    # issue 20: an insert's cleanup of a full GiST leaf / hash bucket page, freeze plans
    Rule("index_prune_workout", 4, index_prune_workout, lambda m: m.quiet and _sized(m) and len(m.tables) < 5),
    # == end of selftest coverage rules ==
    # == breadth (issue 16): image forms (a CHECKPOINT right before the record, or consistency checking) ==
    Rule("heap_lock_updated", 1, heap_lock_updated, lambda m: m.quiet and _sized(m) and len(m.sessions) >= 2),
    Rule("heap_vacuum_images", 1, heap_vacuum_images, lambda m: m.quiet and _sized(m)),
    Rule("hash_image_forms", 1, hash_image_forms, lambda m: m.quiet and _sized(m)),
    Rule("brin_image_forms", 1, brin_image_forms, lambda m: m.quiet and _sized(m)),
    Rule("spgist_vacuum_images", 1, spgist_vacuum_images, lambda m: m.quiet and _sized(m)),
    Rule("gist_delete_images", 1, gist_delete_images, lambda m: m.quiet and _sized(m)),
    # == breadth (issue 16): init forks ==
    Rule("unlogged_workout", 2, unlogged_workout, lambda m: m.quiet and len(m.tables) < 5),
    Rule("toggle_logged", 1, toggle_logged, _ddl_ok),
    # == breadth (issue 16): row paths ==
    Rule("partition_move", 2, partition_move, lambda m: m.quiet),
    Rule("upsert_workout", 3, upsert_workout, lambda m: m.quiet),
    Rule("super_delete", 1, super_delete, lambda m: m.quiet),
    Rule("multixact_locks", 2, multixact_locks, lambda m: m.quiet and len(m.sessions) >= 2),
    Rule("large_objects", 1, large_objects, lambda m: m.quiet),
    Rule("toast_heavy", 1, toast_heavy, lambda m: m.quiet),
    Rule("temp_tables", 1, temp_tables, lambda m: bool(m.idle_sessions())),
    # == breadth (issue 16): databases and tablespaces ==
    Rule("create_tablespace", 1, create_tablespace, lambda m: _ddl_ok(m) and free_tablespace(m) is not None),
    Rule("set_tablespace", 1, set_tablespace, lambda m: _ddl_ok(m) and bool(m.tablespaces)),
    Rule("create_database", 1, create_database, lambda m: m.quiet and free_database(m) is not None),
    # == breadth (issue 16): index builds over rows, opclasses, rebuilds ==
    Rule("index_build", 3, index_build, lambda m: m.quiet and len(m.tables) < 6),
)
RULE_NAMES = tuple(r.name for r in RULES)


AIM_FACTOR = 10  # how many times as often an aimed rule (Profile.aim) is drawn


def pick_rule(m: Model, ch: Chooser, aim: tuple[str, ...] = ()) -> Rule:
    """A rule whose precondition holds, drawn by weight; the rules in ``aim`` weigh
    AIM_FACTOR times as much (without ``aim`` the draws are exactly the unaimed ones)."""
    rules = [r for r in RULES if r.pre(m)]
    weights = [r.weight * (AIM_FACTOR if r.name in aim else 1) for r in rules]
    x = ch.integer(0, sum(weights) - 1)
    for r, w in zip(rules, weights, strict=True):
        if x < w:
            return r
        x -= w
    return rules[-1]

@dataclass(frozen=True)
class Profile:
    """How big workloads get."""

    name: str
    min_steps: int
    max_steps: int
    max_rows: int
    max_sessions: int = 4
    aim: tuple[str, ...] = ()  # rules drawn AIM_FACTOR times as often: a campaign aimed at their record types
    settings: tuple[tuple[str, bool | int | str], ...] = ()  # Settings fields fixed instead of drawn


PROFILES = {
    "ci": Profile("ci", 6, 18, 1500),
    "nightly": Profile("nightly", 12, 45, 4000),
    "tiny": Profile("tiny", 2, 5, 200, 2),  # resource-hygiene runs: many short iterations
}


def _setting(name: str, value: str) -> tuple[str, bool | int | str]:
    kind = {f.name: f.type for f in fields(Settings)}.get(name)
    if kind is None:
        raise ValueError(f"no workload setting {name!r} (settings: {', '.join(f.name for f in fields(Settings))})")
    if kind == "bool":
        if value not in ("on", "off"):
            raise ValueError(f"{name}={value}: on or off")
        return name, value == "on"
    return name, int(value) if kind == "int" else value


def profile_named(name: str) -> Profile:
    """``ci``, ``nightly``, ``tiny``, or one of them aimed: ``ci@lock_chain,multixact_locks``
    draws those rules AIM_FACTOR times as often, ``ci@kill_and_refill,wal_log_hints=on`` also
    fixes a setting (the self-test aims a mutant's campaign at the rules that produce its
    record types, under the settings that let redo's input carry the state it mishandles)."""
    base, _, aimed = name.partition("@")
    if base not in PROFILES:
        raise ValueError(f"unknown profile {base!r} (one of {', '.join(PROFILES)})")
    tokens = [a for a in aimed.split(",") if a]
    aim = tuple(a for a in tokens if "=" not in a)
    fixed = tuple(_setting(*a.split("=", 1)) for a in tokens if "=" in a)
    unknown = [a for a in aim if a not in RULE_NAMES]
    if unknown:
        raise ValueError(f"profile {name!r} aims at unknown rules {unknown} (rules: {', '.join(RULE_NAMES)})")
    return replace(PROFILES[base], name=name, aim=aim, settings=fixed) if tokens else PROFILES[base]


def draw_settings(ch: Chooser) -> Settings:
    return Settings(
        full_page_writes=ch.boolean(0.7),
        wal_compression=ch.choice(WAL_COMPRESSION),
        data_checksums=ch.boolean(0.2),
        wal_log_hints=ch.boolean(0.2),
        fillfactor=ch.choice((100, 100, 90, 70, 50)),
        # one workload in five: every record of these rmgrs then carries a page image (a
        # GIN workout's WAL grows several times), so drawn sparingly
        wal_consistency_checking=ch.choice(WAL_CONSISTENCY_CHECKING[1:]) if ch.boolean(0.2) else "",
    )


# the wal_consistency_checking name of each index AM's rmgr (bloom writes Generic WAL)
WCC_RMGR_OF_AM = {"btree": "btree", "hash": "hash", "gin": "gin", "gist": "gist", "spgist": "spgist",
                  "brin": "brin", "bloom": "generic"}


def build_workload(ch: Chooser, profile: Profile, seed: int | None = None,
                   settings: Settings | None = None) -> Workload:
    """Draw a whole workload: settings, sessions, steps."""
    drawn = settings is None
    fixed: dict[str, Any] = dict(profile.settings)
    settings = settings or replace(draw_settings(ch), **fixed)
    m = Model([Session() for _ in range(ch.integer(1, profile.max_sessions))], max_rows=profile.max_rows,
              default_fillfactor=settings.fillfactor)
    steps: StepList = create_table(m, ch)
    for _ in range(ch.integer(profile.min_steps, profile.max_steps)):
        steps += pick_rule(m, ch, profile.aim).fn(m, ch)
    steps += finish(m)
    if drawn and not settings.wal_consistency_checking and ch.boolean(0.15):
        # consistency-check images (BKPIMAGE_APPLY off) for the index AMs this workload
        # uses: the image-not-applied cells of their rarer records, which a setting drawn
        # blind (above) seldom pairs with the workout that writes them
        rmgrs = sorted({WCC_RMGR_OF_AM[ix.am] for t in m.tables for ix in t.indexes if ix.am in WCC_RMGR_OF_AM})
        if rmgrs:
            settings = replace(settings, wal_consistency_checking=",".join(rmgrs))
    return Workload(settings, tuple(steps), seed, len(m.sessions))
