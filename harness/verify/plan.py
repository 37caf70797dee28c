"""Plan: group a WAL range's records by the block they change.

Step 3 of the data flow: for every BufferTag the range touches, the records
that touch it in LSN order, whether a base page is needed (not when the first
record restores an image or re-initializes the page), and which resource
manager owns the page (to choose its mask).

A record that restores a full-page image of the page or re-initializes it
(``DecodedXLogRecord.resets``) erases whatever the page held: the records before it cannot reach
the page that is compared, so the plan starts the page there and counts the
records it leaves out (``BlockPlan.superseded``). Such a page is redone from
``RESET_BASE``, a page of garbage that a correct redo overwrites whole: an
engine that keeps a byte of the page it should replace (an image's hole not
zeroed, a page not zeroed before its initialization) shows it.

Records that change a page without naming it (heap records clearing
visibility-map bits) are routed through the rmgr table's ``implicit_tags``. What
cannot be rebuilt from block references (blocks cut off by a relation
truncation) is marked, never dropped silently.
"""

from __future__ import annotations

import contextlib
import gc
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from pyredo import BLCKSZ
from pyredo.page.visibilitymap import HEAPBLK_TO_MAPBLOCK
from pyredo.rmgr import RM_DBASE_ID, RM_SMGR_ID, RM_XLOG_ID
from pyredo.rmgrlist import PG15
from pyredo.wal.record import (
    BKPBLOCK_WILL_INIT,
    FSM_FORKNUM,
    INIT_FORKNUM,
    MAIN_FORKNUM,
    VISIBILITYMAP_FORKNUM,
    XLR_RMGR_INFO_MASK,
    BufferTag,
    DecodedXLogRecord,
    RelFileNode,
)

XLOG_SMGR_CREATE = 0x10
XLOG_SMGR_TRUNCATE = 0x20
SMGR_TRUNCATE_HEAP = 0x0001
SMGR_TRUNCATE_VM = 0x0002
SMGR_TRUNCATE_FSM = 0x0004
_SMGR_TRUNCATE = struct.Struct("<I III I")  # blkno, rnode, flags
_SMGR_CREATE = struct.Struct("<III i")  # xl_smgr_create: rnode, forkNum
XLOG_DBASE_CREATE_FILE_COPY = 0x00
_DBASE_FILE_COPY = struct.Struct("<II")  # xl_dbase_create_file_copy_rec: db_id, tablespace_id (then the source's)


# what a page whose first record resets it is redone from: every byte nonzero, pd_lsn past
# any LSN and pd_lower/pd_upper beyond the page, so nothing of it can pass for a real page
RESET_BASE = b"\xa5" * BLCKSZ


@dataclass
class BlockPlan:
    """What it takes to rebuild one block: its records and whether a base page is needed."""

    tag: BufferTag
    records: list[DecodedXLogRecord] = field(default_factory=list)
    owner: str | None = None  # rmgr whose records own the page (chooses the mask)
    unverifiable: str | None = None  # why this page cannot be rebuilt, if so
    base_absent: bool = False  # the block did not exist when these records began (truncated)
    superseded: int = 0  # records of the page left out: a later record of it resets the page

    @property
    def self_contained(self) -> bool:
        """The first record restores an image or re-initializes the page: no base needed."""
        return bool(self.records) and self.records[0].resets(self.tag)

    def reset(self, rec: DecodedXLogRecord) -> None:
        """Start the page afresh at ``rec``, which resets it (``DecodedXLogRecord.resets``):
        the records before are superseded, and what was unverifiable (an edit the WAL
        does not name) is erased with them."""
        self.superseded += len(self.records)
        self.records = [rec]
        self.unverifiable = None

    @property
    def needs_base(self) -> bool:
        return not (self.self_contained or self.base_absent)

    @property
    def first_lsn(self) -> int:
        return self.records[0].lsn

    @property
    def last_lsn(self) -> int:
        return self.records[-1].lsn

    def record_types(self) -> list[str]:
        return [PG15.record_type(r) for r in self.records]


@dataclass
class Plan:
    blocks: dict[BufferTag, BlockPlan]
    records: int
    start: int | None
    end: int | None
    retired: list[BlockPlan] = field(default_factory=list)  # pages a truncation cut off
    # unlogged relations: those whose init fork the range creates (Storage/CREATE of INIT_FORKNUM)
    # or writes; crash recovery ends by copying it over their main fork (ResetUnloggedRelations)
    unlogged: set[RelFileNode] = field(default_factory=set)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.blocks.values())

    def __len__(self) -> int:
        return len(self.blocks)


def _truncation(rec: DecodedXLogRecord) -> tuple[RelFileNode, int, int] | None:
    if rec.rmid != RM_SMGR_ID or rec.info & XLR_RMGR_INFO_MASK != XLOG_SMGR_TRUNCATE:
        return None
    if len(rec.main_data) < _SMGR_TRUNCATE.size:
        return None
    blkno, spc, db, rel, flags = _SMGR_TRUNCATE.unpack_from(rec.main_data)
    return RelFileNode(spc, db, rel), blkno, flags


def _init_fork_created(rec: DecodedXLogRecord) -> RelFileNode | None:
    """The relation of a Storage/CREATE record that creates an init fork."""
    if rec.rmid != RM_SMGR_ID or rec.info & XLR_RMGR_INFO_MASK != XLOG_SMGR_CREATE:
        return None
    if len(rec.main_data) < _SMGR_CREATE.size:
        return None
    spc, db, rel, fork = _SMGR_CREATE.unpack_from(rec.main_data)
    return RelFileNode(spc, db, rel) if fork == INIT_FORKNUM else None


def decode_all(records: Iterable[DecodedXLogRecord]) -> list[DecodedXLogRecord]:
    """The range decoded once, in memory: the plan, the commit-log check, coverage
    and bundles share the list (a list passes through). The cyclic collector is
    paused meanwhile: records make no reference cycles, and with hundreds of
    thousands of them alive each full collection would walk them all again.

    The records leave the collector's generations before it resumes (gc.freeze, as
    ``records_frozen`` does; its unfreeze gives them back): else its next young
    collection walks every one of them, then the next older one again (measured:
    3.6 % of a fuzz iteration's time, right after its decode)."""
    if isinstance(records, list):
        return records
    enabled = gc.isenabled()
    gc.disable()
    try:
        out = list(records)
        gc.freeze()
        return out
    finally:
        if enabled:
            gc.enable()


def _file_copied(rec: DecodedXLogRecord) -> tuple[int, int] | None:
    """(tablespace, database) of the directory a Database/CREATE_FILE_COPY record
    copies at redo (CREATE DATABASE STRATEGY FILE_COPY, ALTER DATABASE SET TABLESPACE)."""
    if rec.rmid != RM_DBASE_ID or rec.info & XLR_RMGR_INFO_MASK != XLOG_DBASE_CREATE_FILE_COPY:
        return None
    if len(rec.main_data) < _DBASE_FILE_COPY.size:
        return None
    db, spc = _DBASE_FILE_COPY.unpack_from(rec.main_data)
    return spc, db


def _mark_file_copied(blocks: dict[BufferTag, BlockPlan], copied: dict[tuple[int, int], int],
                      created: set[RelFileNode]) -> None:
    """Pages of relations a Database/CREATE_FILE_COPY copied (not made afresh after
    it) whose records need a base: the copy put their content there at redo and the
    WAL holds none of it (with full_page_writes on, the first change after the copy's
    checkpoint brings an image and the page is rebuilt)."""
    for tag, bp in blocks.items():
        lsn = copied.get((tag.spc, tag.db))
        if lsn is None or tag.rnode in created or not bp.records or bp.unverifiable or not bp.needs_base:
            continue
        bp.unverifiable = (f"its relation was copied by Database/CREATE_FILE_COPY at LSN {lsn:X} "
                           "(the directory is copied at redo, the page is not in the WAL)")


@contextlib.contextmanager
def records_frozen() -> Iterator[None]:
    """While a decoded range is planned and checked: what is alive now (the records,
    acyclic, kept until the check ends) leaves the collector's generations
    (gc.freeze), so its full collections stop walking them again and again (plan and
    redo take about 2.5x as long otherwise); given back at the end (gc.unfreeze)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def build_plan(records: Iterable[DecodedXLogRecord], start: int | None = None,
               end: int | None = None, *, check: Callable[[], None] | None = None,
               supersede: bool = True) -> Plan:
    """Group records by block in LSN order (records must come in LSN order);
    ``check`` (CHECK_FOR_INTERRUPTS: it may raise) is called every 1024 records.
    ``supersede``: a page starts at its last reset (False: every record of the
    page is redone, also those a later reset erases, e.g. to run every routine)."""
    blocks: dict[BufferTag, BlockPlan] = {}
    retired: list[BlockPlan] = []
    unlogged: set[RelFileNode] = set()
    truncations: list[tuple[RelFileNode, int, int, int]] = []  # rnode, blkno, flags, lsn
    copied: dict[tuple[int, int], int] = {}  # (spc, db) -> LSN of its Database/CREATE_FILE_COPY
    made: set[RelFileNode] = set()  # relations a Storage/CREATE made after such a copy
    n = 0
    rows = PG15.rows
    implicit = {rmid: row.implicit_tags for rmid, row in rows.items() if row.implicit_tags is not None}
    owners: dict[int, str] = {}  # rmgr name by rmid, looked up once each
    for rec in records:
        n += 1
        if check is not None and not n & 1023:
            check()
        rmid = rec.rmid
        if rmid in (RM_DBASE_ID, RM_SMGR_ID):
            fc = _file_copied(rec)
            if fc is not None:
                copied[fc] = rec.lsn
            elif copied and rmid == RM_SMGR_ID and rec.info & XLR_RMGR_INFO_MASK == XLOG_SMGR_CREATE \
                    and len(rec.main_data) >= _SMGR_CREATE.size:
                made.add(RelFileNode(*_SMGR_CREATE.unpack_from(rec.main_data)[:3]))
        tags = []
        reset_tags = []  # rec.resets(tag) of each, inline: a record registers a buffer once (XLogRegisterBuffer)
        for blk in rec.blocks.values():
            tags.append(blk.tag)
            if supersede and (blk.apply_image or blk.flags & BKPBLOCK_WILL_INIT):
                reset_tags.append(blk.tag)
        implicit_tags = implicit.get(rmid)
        if implicit_tags is not None:
            extra = implicit_tags(rec)
            if extra:
                tags.extend(t for t in extra if t not in tags)
        owner = None
        if rmid != RM_XLOG_ID:
            owner = owners.get(rmid)
            if owner is None:
                owner = owners[rmid] = PG15.rmgr_name(rmid)
        for tag in tags:
            if tag.fork == INIT_FORKNUM:
                unlogged.add(tag.rnode)
            bp = blocks.get(tag)
            if bp is None:
                bp = blocks[tag] = _new_plan(tag, truncations)
            if reset_tags and tag in reset_tags:
                bp.reset(rec)
            else:
                bp.records.append(rec)
            if owner is not None:
                bp.owner = owner
        if rmid == RM_SMGR_ID:
            created = _init_fork_created(rec)
            if created is not None:
                unlogged.add(created)
            trunc = _truncation(rec)
            if trunc is not None:
                _apply_truncation(blocks, retired, rec, *trunc)
                truncations.append((*trunc, rec.lsn))
    if copied:
        _mark_file_copied(blocks, copied, made)
    return Plan(blocks, n, start, end, retired, unlogged)


def _new_plan(tag: BufferTag, truncations: list[tuple[RelFileNode, int, int, int]]) -> BlockPlan:
    """A plan for a block first seen now; earlier truncations of its relation decide
    whether the block is known not to exist or cannot be rebuilt at all."""
    bp = BlockPlan(tag)
    for rnode, blkno, flags, lsn in truncations:
        if (tag.spc, tag.db, tag.rel) != rnode:
            continue
        if tag.fork == MAIN_FORKNUM and flags & SMGR_TRUNCATE_HEAP and tag.blk >= blkno:
            bp.base_absent = True
        elif tag.fork == VISIBILITYMAP_FORKNUM and flags & SMGR_TRUNCATE_VM and tag.blk >= HEAPBLK_TO_MAPBLOCK(blkno):
            bp.unverifiable = f"Storage/TRUNCATE at LSN {lsn:X} edited this page without a block reference"
    return bp


def _apply_truncation(blocks: dict[BufferTag, BlockPlan], retired: list[BlockPlan],
                      rec: DecodedXLogRecord, rnode: RelFileNode, blkno: int, flags: int) -> None:
    """smgr_redo truncation: main-fork blocks past ``blkno`` cease to exist (a later
    record starts them afresh); the VM and FSM pages it edits without a block
    reference cannot be rebuilt from WAL and are marked so."""
    why = f"Storage/TRUNCATE to {blkno} blocks at LSN {rec.lsn:X} edits this page without a block reference"
    for tag, bp in list(blocks.items()):
        if (tag.spc, tag.db, tag.rel) != rnode:
            continue
        if tag.fork == MAIN_FORKNUM and flags & SMGR_TRUNCATE_HEAP and tag.blk >= blkno:
            bp.unverifiable = f"cut off by Storage/TRUNCATE at LSN {rec.lsn:X}"
            retired.append(bp)
            blocks[tag] = BlockPlan(tag, owner=bp.owner, base_absent=True)
        elif (
            (tag.fork == VISIBILITYMAP_FORKNUM and flags & SMGR_TRUNCATE_VM
             and tag.blk >= HEAPBLK_TO_MAPBLOCK(blkno))
            or (tag.fork == FSM_FORKNUM and flags & SMGR_TRUNCATE_FSM)
        ) and not bp.unverifiable:
            bp.unverifiable = why
