"""The issue-16 rules (init forks, databases and tablespaces, row paths): what they
emit, what they record in the model, and that a seed still draws one workload. The
SQL itself runs on PostgreSQL in tests/integration/test_breadth_rules.py."""

from __future__ import annotations

import struct

from generators import generate
from generators.choose import RandomChooser
from generators.rules import RULES, Model, Session, create_table
from generators.rules.databases import DATABASE_SLOTS, create_database, create_tablespace
from generators.rules.model import INDEX_AMS
from generators.rules.storage import toggle_logged, unlogged_workout
from generators.workload import Step, Workload
from harness.verify.plan import build_plan
from pyredo.rmgr import RM_DBASE_ID, RM_HEAP_ID, RM_SMGR_ID
from pyredo.wal.record import BKPBLOCK_WILL_INIT, DecodedBkpBlock, DecodedXLogRecord, RelFileNode

NEW_RULES = ("unlogged_workout", "toggle_logged", "partition_move", "upsert_workout", "super_delete",
             "multixact_locks",
             "large_objects", "toast_heavy", "temp_tables", "create_tablespace", "set_tablespace", "create_database")


def test_new_rules_are_drawn() -> None:
    names = {r.name for r in RULES}
    assert set(NEW_RULES) <= names
    seen: set[str] = set()
    for seed in range(300):
        seen.update(generate(seed, "nightly").rules_used())
    assert {"create_unlogged_table", "create_unlogged_sequence", "set_logged", "set_unlogged",
            "update_partition_move", "lo_create", "create_temp_table", "create_tablespace", "set_tablespace",
            "create_database_wal_log", "create_database_file_copy"} <= seen


def test_unlogged_workout_indexes_every_am_and_toggles() -> None:
    toggled = truncated = 0
    for seed in range(40):
        m = Model([Session()])
        steps = unlogged_workout(m, RandomChooser(seed))
        sql = [s.sql for s in steps]
        assert sql[0].startswith("CREATE UNLOGGED TABLE u1 ")
        for am in INDEX_AMS:
            assert any(f" USING {am} (" in s for s in sql), am
        assert any(s.startswith("CREATE UNLOGGED SEQUENCE") for s in sql)
        sets = [s for s in sql if s.startswith("ALTER TABLE u1 SET ")]
        toggled += bool(sets)
        truncated += "TRUNCATE u1" in sql
        # the model follows the last SET LOGGED / SET UNLOGGED
        assert m.tables[0].unlogged == (not sets or sets[-1].endswith("UNLOGGED"))
    assert toggled and truncated


def test_toggle_logged_flips_the_model() -> None:
    m = Model([Session()])
    create_table(m, RandomChooser(1))
    before = m.tables[0].unlogged
    steps = toggle_logged(m, RandomChooser(2))
    assert m.tables[0].unlogged == (before if len(steps) == 2 else not before)


def test_databases_use_each_slot_once_and_sessions_connect_to_them() -> None:
    m = Model([Session(), Session()])
    create_table(m, RandomChooser(0))
    ch = RandomChooser(5)
    steps = create_tablespace(m, ch) + create_database(m, ch) + create_database(m, ch)
    assert m.databases_used == set(DATABASE_SLOTS) and m.tablespaces == ["rdw_spc_a"]
    creates = [s.sql.split()[2] for s in steps if s.sql.startswith("CREATE DATABASE")]
    assert creates == list(DATABASE_SLOTS)
    for db in DATABASE_SLOTS:
        first = next(i for i, s in enumerate(steps) if s.database == db)
        assert any(s.sql.startswith(f"CREATE DATABASE {db} ") for s in steps[:first])
    assert "CREATE TABLESPACE rdw_spc_a LOCATION ''" in [s.sql for s in steps]


def test_step_database_round_trips() -> None:
    st = Step(1, "SELECT 1", "x", database="rdw_db_a")
    assert Step.from_json(st.to_json()) == st
    assert "database" not in Step(0, "SELECT 1", "x").to_json()  # old workloads' JSON unchanged
    wl = Workload(generate(3).settings, (st,), 3, 2)
    assert Workload.loads(wl.dumps()) == wl


def _rec(lsn: int, rmid: int, info: int, main: bytes = b"", blocks: dict[int, DecodedBkpBlock] | None = None
         ) -> DecodedXLogRecord:
    return DecodedXLogRecord(lsn, lsn + 8, 0, 0, 0, info, rmid, 0, b"", main_data=main, blocks=blocks or {})


def _blk(rel: int, flags: int = 0) -> dict[int, DecodedBkpBlock]:
    return {0: DecodedBkpBlock(0, RelFileNode(1663, 5000, rel), 0, 0, flags)}


def test_pages_copied_by_create_database_file_copy_are_unverifiable() -> None:
    """A relation copied at redo (Database/CREATE_FILE_COPY) has no page in the WAL: a
    record needing its page as a base cannot be rebuilt; a relation made afterwards
    (Storage/CREATE), or a page whose record re-initializes it, can."""
    copy = _rec(100, RM_DBASE_ID, 0x00, struct.pack("<IIII", 5000, 1663, 1, 1663))
    made = _rec(200, RM_SMGR_ID, 0x10, struct.pack("<IIIi", 1663, 5000, 7001, 0))
    plan = build_plan([
        copy, made,
        _rec(300, RM_HEAP_ID, 0x00, b"", _blk(2619)),  # Heap/INSERT on a copied catalog page
        _rec(400, RM_HEAP_ID, 0x00, b"", _blk(7001)),  # ... on the new relation
        _rec(500, RM_HEAP_ID, 0x80, b"", _blk(2608, BKPBLOCK_WILL_INIT)),  # INSERT+INIT
    ])
    why = {tag.rel: bp.unverifiable for tag, bp in plan.blocks.items()}
    assert why[2619] is not None and "Database/CREATE_FILE_COPY at LSN 64" in why[2619]
    assert why[7001] is None and why[2608] is None
