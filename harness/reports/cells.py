"""The coverage grid: a cell is ``record type|fork|block form``, counted once per
block of a verified page that a record changes.

Forms (of the record's reference to the block; the first that holds):

* ``image-applied``: a full-page image redo restores (BKPIMAGE_APPLY);
* ``will-init``: redo re-initializes the page (BKPBLOCK_WILL_INIT);
* ``image-not-applied``: an image for wal_consistency_checking only, redo applies
  the record's data (BKPIMAGE_APPLY off);
* ``metapage``: as ``data``, on block 0 of an index whose AM keeps its metapage there;
* ``data``: redo applies the record's data to the page as it was;
* ``implicit``: no block reference: a heap record clearing visibility-map bits
  (``implicit_tags`` of the rmgr table).

``reachable_cells`` is the universe of a major (the cells its WAL can hold), derived
block by block from where the backend registers buffers: ``BLOCKS`` names, per record
type, the C function that logs it and every block it registers with its
XLogRegisterBuffer flags (PostgreSQL 15's sources; what changed since: VM_NAMED_SINCE,
VM_LEFT_OUT_SINCE). A form reached only under a setting counts as reachable
(image-not-applied: wal_consistency_checking; data: full_page_writes off). A form
whose only way in is a checkpoint beginning between two records of one operation is
``race_cells``: shown when reached, never counted. docs/coverage-cells.md is rendered
from these tables (``python -m harness.reports.cells docs/coverage-cells.md``).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from pyredo.rmgrlist import RmgrTable
from pyredo.wal.record import BKPBLOCK_WILL_INIT, FORK_NAMES, BufferTag, DecodedXLogRecord

FORMS = ("image-applied", "will-init", "image-not-applied", "metapage", "data", "implicit")
# AMs whose block 0 is the metapage (GiST's block 0 is its root; bloom's is Generic WAL)
METAPAGE_RMGRS = ("Btree/", "Hash/", "Gin/", "BRIN/", "SPGist/")

# -- a block's registration and the forms it can take ---------------------------------------
# XLogRecordAssemble: REGBUF_FORCE_IMAGE always takes an image, applied; REGBUF_NO_IMAGE
# (REGBUF_WILL_INIT includes it) never takes one to apply; any other block takes one, applied,
# when full_page_writes is on and the page's LSN is at or before the redo pointer (its first
# change after a checkpoint began). wal_consistency_checking adds an image, not applied, to
# every block that takes none to apply (a WILL_INIT block stays will-init).
REGISTRATIONS: dict[str, tuple[str, tuple[str, ...]]] = {  # name: (flags, forms)
    "standard": ("REGBUF_STANDARD or 0", ("image-applied", "image-not-applied", "data")),
    "metapage": ("REGBUF_STANDARD, block 0", ("image-applied", "image-not-applied", "metapage")),
    "no-image": ("REGBUF_NO_IMAGE", ("image-not-applied", "data")),
    "force-image": ("REGBUF_FORCE_IMAGE", ("image-applied",)),
    "will-init": ("REGBUF_WILL_INIT", ("will-init",)),
    "either": ("REGBUF_WILL_INIT on a new page, else REGBUF_STANDARD",
               ("image-applied", "image-not-applied", "data", "will-init")),
}


class Block(NamedTuple):
    """One XLogRegisterBuffer call of a record type."""

    role: str  # which page ("old bucket page", "metapage")
    reg: str  # a REGISTRATIONS key
    race: str = ""  # a RACES key: its image needs a checkpoint to begin inside one operation
    fork: str = "main"
    superseded: str = ""  # a SUPERSEDED key: its will-init form is always reset again in the operation


# one letter per registration keeps the BLOCKS table readable
def S(role: str, race: str = "") -> Block:
    return Block(role, "standard", race)


def M(role: str = "metapage", race: str = "") -> Block:
    return Block(role, "metapage", race)


def N(role: str) -> Block:
    return Block(role, "no-image")


def F(role: str) -> Block:
    return Block(role, "force-image")


def I(role: str, superseded: str = "") -> Block:  # noqa: E743
    return Block(role, "will-init", superseded=superseded)


def E(role: str) -> Block:
    return Block(role, "either")


# Why an image of a block is race-only: the two records, and why no SQL can put a checkpoint
# between them (the block's previous change is always the first record, and nothing but the
# second one's own operation runs in between).
RACES = {
    "btree-newroot": "Btree/SPLIT_L or SPLIT_R of the root, then Btree/NEWROOT: _bt_insertonpg keeps the left half "
                     "locked from _bt_split through _bt_insert_parent -> _bt_newroot. (Otherwise only a root split "
                     "left incomplete by a crash between the two, finished by _bt_finish_split after a checkpoint.)",
    "gist-split": "Gist/PAGE_SPLIT of the child, then the parent's Gist/PAGE_SPLIT that takes its downlinks: "
                  "gistfinishsplit keeps the left child locked while it updates the parent. (Otherwise only a split "
                  "left F_FOLLOW_RIGHT by a crash, finished by gistfixsplit after a checkpoint.)",
    "hash-init": "Hash/INIT_META_PAGE, one XLOG/FPI per bucket page, then Hash/INIT_BITMAP_PAGE, all in one _hash_init "
                 "of an index being built: nobody else reaches its metapage, no SQL runs in between.",
    "hash-split": "Hash/SPLIT_ALLOCATE_PAGE, the new bucket's SPLIT_PAGE / ADD_OVFL_PAGE records, then "
                  "Hash/SPLIT_COMPLETE, all in one _hash_expandtable -> _hash_splitbucket, which pins both primary "
                  "bucket pages throughout (concurrent inserts only make them newer). (Otherwise only a split "
                  "interrupted by an error or a crash, finished by _hash_finish_split after a checkpoint.)",
    "hash-split-cleanup": "Hash/SPLIT_COMPLETE (or the cleanup's Hash/DELETE of the moved tuples), then "
                          "Hash/SPLIT_CLEANUP: _hash_splitbucket cleans the old bucket at once, its primary page "
                          "locked since SPLIT_COMPLETE; the cleanup is left to VACUUM or the next split only when "
                          "another backend pins that page at that moment (a scan or insert begun during the split).",
    "heap-update": "Heap/LOCK of the old tuple, then Heap/UPDATE(+INIT) to another page: heap_update WAL-logs the "
                   "old tuple as locked "
                   "before it lets go of the page to toast the new tuple and extend the relation "
                   "(RelationGetBufferForTuple); nothing but the toaster and the extension runs in between.",
}

# Why a block's will-init form never reaches a compared page: the record of the same operation
# that always resets the page again, so the plan supersedes it (harness.verify.plan)
SUPERSEDED = {
    "btree-unlink": "Btree/MARK_PAGE_HALFDEAD re-initializes the leaf, then _bt_pagedel goes on at once to "
                    "_bt_unlink_halfdead_page, whose Btree/UNLINK_PAGE(_META) re-initializes it again (block 0, "
                    "or block 3 when the page unlinked is the leaf's parent). (Otherwise only a deletion cut off "
                    "by an error or a crash between the two.)",
    "hash-split-page": "Hash/SPLIT_ALLOCATE_PAGE initializes the new bucket's primary page, then _hash_splitbucket "
                       "logs that page with a forced image (log_split_page: Hash/SPLIT_PAGE) when it fills or when "
                       "the split ends. (Otherwise only a split cut off by an error or a crash.)",
}

_HEAP = (S("heap page"),)
# Every page-modifying record type: (the C function that registers its blocks, its blocks).
# Heap and Heap2: heapam.c, pruneheap.c, vacuumlazy.c; the VM page a heap record clears is
# VM_IMPLICIT below (a block of its own from 18).
BLOCKS: dict[str, tuple[str, tuple[Block, ...]]] = {
    "Heap/INSERT": ("heap_insert", _HEAP),
    "Heap/INSERT+INIT": ("heap_insert", (I("heap page"),)),
    "Heap/DELETE": ("heap_delete, heap_abort_speculative", _HEAP),
    "Heap/UPDATE": ("log_heap_update", (S("new page"), S("old page (if another)", "heap-update"))),
    "Heap/UPDATE+INIT": ("log_heap_update", (I("new page"), S("old page", "heap-update"))),
    "Heap/HOT_UPDATE": ("log_heap_update", _HEAP),
    "Heap/LOCK": ("heap_lock_tuple, heap_update", _HEAP),
    "Heap/INPLACE": ("heap_inplace_update", _HEAP),
    "Heap/HEAP_CONFIRM": ("heap_finish_speculative", _HEAP),
    "Heap2/PRUNE": ("heap_page_prune", _HEAP),
    "Heap2/VACUUM": ("lazy_vacuum_heap_page", _HEAP),
    "Heap2/FREEZE_PAGE": ("log_heap_freeze", _HEAP),
    "Heap2/PRUNE_ON_ACCESS": ("log_heap_prune_and_freeze (17+)", _HEAP),
    "Heap2/PRUNE_VACUUM_SCAN": ("log_heap_prune_and_freeze (17+)", _HEAP),
    "Heap2/PRUNE_VACUUM_CLEANUP": ("log_heap_prune_and_freeze (17+)", _HEAP),
    # the heap page is REGBUF_NO_IMAGE unless XLogHintBitIsNeeded (checksums, wal_log_hints)
    "Heap2/VISIBLE": ("log_heap_visible", (Block("visibility-map page", "standard", fork="vm"),
                                           S("heap page (no-image without hint-bit WAL)"))),
    "Heap2/MULTI_INSERT": ("heap_multi_insert", _HEAP),
    "Heap2/MULTI_INSERT+INIT": ("heap_multi_insert", (I("heap page"),)),
    "Heap2/LOCK_UPDATED": ("heap_lock_updated_tuple_rec", _HEAP),
    # nbtinsert.c, nbtpage.c, nbtdedup.c: every metapage registration is REGBUF_WILL_INIT
    "Btree/INSERT_LEAF": ("_bt_insertonpg", (S("leaf"),)),
    "Btree/INSERT_POST": ("_bt_insertonpg", (S("leaf"),)),
    "Btree/INSERT_UPPER": ("_bt_insertonpg", (S("parent"), S("left child (split finished)"))),
    "Btree/INSERT_META": ("_bt_insertonpg", (S("parent (the new fast root)"), S("left child (split finished)"),
                                             I("metapage"))),
    "Btree/SPLIT_L": ("_bt_split", (S("left half (the page split)"), I("new right half"), S("right sibling"),
                                    S("left child (split finished)"))),
    "Btree/SPLIT_R": ("_bt_split", (S("left half (the page split)"), I("new right half"), S("right sibling"),
                                    S("left child (split finished)"))),
    "Btree/NEWROOT": ("_bt_newroot, _bt_getroot", (I("new root"), S("left child", "btree-newroot"), I("metapage"))),
    "Btree/VACUUM": ("_bt_delitems_vacuum", (S("leaf"),)),
    "Btree/DELETE": ("_bt_delitems_delete", (S("leaf"),)),
    "Btree/DEDUP": ("_bt_dedup_pass", (S("leaf"),)),
    "Btree/MARK_PAGE_HALFDEAD": ("_bt_mark_page_halfdead", (I("leaf", "btree-unlink"), S("subtree parent"))),
    "Btree/UNLINK_PAGE": ("_bt_unlink_halfdead_page", (I("target"), S("left sibling"), S("right sibling"),
                                                       I("leaf (target internal)"))),
    "Btree/UNLINK_PAGE_META": ("_bt_unlink_halfdead_page", (I("target"), S("left sibling"), S("right sibling"),
                                                            I("leaf (target internal)"), I("metapage"))),
    "Btree/META_CLEANUP": ("_bt_set_cleanup_info", (I("metapage"),)),
    # hashpage.c, hashinsert.c, hashovfl.c, hash.c
    "Hash/INIT_META_PAGE": ("_hash_init", (I("metapage"),)),
    "Hash/INIT_BITMAP_PAGE": ("_hash_init", (I("bitmap page"), M(race="hash-init"))),
    "Hash/INSERT": ("_hash_doinsert", (S("bucket page"), M())),
    "Hash/ADD_OVFL_PAGE": ("_hash_addovflpage", (I("overflow page"), S("last page of the chain"), S("bitmap page"),
                                                 I("new bitmap page"), M())),
    "Hash/SPLIT_ALLOCATE_PAGE": ("_hash_expandtable", (S("old bucket"), I("new bucket", "hash-split-page"), M())),
    "Hash/SPLIT_PAGE": ("log_split_page", (F("new bucket page"),)),
    "Hash/SPLIT_COMPLETE": ("_hash_splitbucket", (S("old bucket", "hash-split"), S("new bucket", "hash-split"))),
    "Hash/MOVE_PAGE_CONTENTS": ("_hash_squeezebucket", (N("primary bucket page"), S("write page"), S("read page"))),
    "Hash/SQUEEZE_PAGE": ("_hash_freeovflpage", (N("primary bucket page"), S("write page"), S("freed page"),
                                                 S("previous page"), S("next page"), S("bitmap page"), M())),
    "Hash/DELETE": ("hashbucketcleanup", (N("primary bucket page"), S("bucket page"))),
    "Hash/SPLIT_CLEANUP": ("hashbucketcleanup", (S("primary bucket page", "hash-split-cleanup"),)),
    "Hash/UPDATE_META_PAGE": ("hashbulkdelete", (M(),)),
    "Hash/VACUUM_ONE_PAGE": ("_hash_vacuum_one_page", (S("bucket page"), M())),
    # ginbtree.c, gindatapage.c, ginfast.c, ginvacuum.c, ginutil.c
    "Gin/CREATE_PTREE": ("createPostingTree", (I("posting tree root"),)),
    "Gin/INSERT": ("ginPlaceToPage", (S("page"), S("left child (split finished)"))),
    "Gin/SPLIT": ("ginPlaceToPage", (F("left half"), F("right half"), F("root (root split)"),
                                     S("left child (split finished: an internal page splits)"))),
    "Gin/VACUUM_PAGE": ("xlogVacuumPage", (F("entry leaf"),)),
    "Gin/VACUUM_DATA_LEAF_PAGE": ("ginVacuumPostingTreeLeaf", (S("posting tree leaf"),)),
    "Gin/DELETE_PAGE": ("ginDeletePage", (S("deleted page"), S("parent"), S("left sibling"))),
    "Gin/UPDATE_META_PAGE": ("ginHeapTupleFastInsert, ginUpdateStats", (I("metapage"), S("pending list tail"))),
    "Gin/INSERT_LISTPAGE": ("writeListPage", (I("pending list page"),)),
    "Gin/DELETE_LISTPAGE": ("shiftList", (I("metapage"), I("deleted pending list pages"))),
    # gistxlog.c (gistXLog* called from gist.c, gistvacuum.c)
    "Gist/PAGE_UPDATE": ("gistXLogUpdate", (S("page"), S("left child (split finished)"))),
    "Gist/DELETE": ("gistXLogDelete (gistprunepage)", (S("leaf"),)),
    "Gist/PAGE_SPLIT": ("gistXLogSplit", (S("left child (split finished)", "gist-split"), I("split pages"))),
    "Gist/PAGE_DELETE": ("gistXLogPageDelete", (S("deleted leaf"), S("parent"))),
    # spgdoinsert.c, spgvacuum.c: the metapage (block 0) is never WAL-logged
    "SPGist/ADD_LEAF": ("addLeafTuple", (E("leaf page"), S("parent"))),
    "SPGist/MOVE_LEAFS": ("moveLeafs", (S("source leaf"), E("destination leaf"), S("parent"))),
    "SPGist/ADD_NODE": ("spgAddNodeAction", (S("inner page"), E("new inner page"), S("parent"))),
    "SPGist/SPLIT_TUPLE": ("spgSplitNodeAction", (S("inner page"), E("new inner page"))),
    "SPGist/PICKSPLIT": ("doPickSplit", (E("source page"), E("new leaf page"), E("inner page"), S("parent"))),
    "SPGist/VACUUM_LEAF": ("vacuumLeafPage", (S("leaf"),)),
    "SPGist/VACUUM_ROOT": ("vacuumLeafRoot", (S("root leaf"),)),
    "SPGist/VACUUM_REDIRECT": ("vacuumRedirectAndPlaceholder", (S("page"),)),
    # brin.c, brin_pageops.c, brin_revmap.c: revmap pages start at block 1
    "BRIN/CREATE_INDEX": ("brinbuild", (I("metapage"),)),
    "BRIN/INSERT": ("brin_doinsert", (S("regular page"), S("revmap page"))),
    "BRIN/INSERT+INIT": ("brin_doinsert", (I("new regular page"), S("revmap page"))),
    "BRIN/UPDATE": ("brin_doupdate", (S("new page"), S("revmap page"), S("old page"))),
    "BRIN/UPDATE+INIT": ("brin_doupdate", (I("new page"), S("revmap page"), S("old page"))),
    "BRIN/SAMEPAGE_UPDATE": ("brin_doupdate", (S("page"),)),
    "BRIN/REVMAP_EXTEND": ("revmap_physical_extend", (M(), I("new revmap page"))),
    "BRIN/DESUMMARIZE": ("brinRevmapDesummarizeRange", (S("revmap page"), S("regular page"))),
    # generic_xlog.c: bloom's metapage is Generic WAL too (data form, not metapage)
    "Generic/Generic": ("GenericXLogFinish", (S("page"), F("page (GENERIC_XLOG_FULL_IMAGE)"))),
    "Sequence/LOG": ("fill_seq_fork_with_data, nextval_internal, do_setval", (I("sequence page"),)),
}
# ... whose blocks can be in the init fork too: hashbuildempty -> _hash_init(INIT_FORKNUM);
# an unlogged sequence's init fork (fill_seq_fork_with_data). Other AMs' ambuildempty log
# their init-fork pages as XLOG/FPI.
INIT_FORK_TOO = ("Hash/INIT_META_PAGE", "Hash/INIT_BITMAP_PAGE", "Sequence/LOG")
# XLOG/FPI (log_newpage*, REGBUF_FORCE_IMAGE) and FPI_FOR_HINT (XLogSaveBufferForHint) by fork
IMAGE_ONLY = {"XLOG/FPI": ("main", "init", "vm", "fsm"),  # init: ambuildempty; vm/fsm: CREATE DATABASE WAL_LOG
              "XLOG/FPI_FOR_HINT": ("main", "fsm")}  # MarkBufferDirtyHint: heap pages, FSM pages
# ... XLOG/FPI_FOR_HINT also without its image: full_page_writes off leaves it out, and
# xlog_redo skips a block without an image (measured: with checksums and fpw off)
IMAGELESS = ("XLOG/FPI_FOR_HINT",)
# visibility map: these heap records clear VM bits without naming the VM page -- until 18
# (and 17.11), where they register it as a block of their own (heap_insert & co.:
# XLogRegisterBuffer of the vmbuffer, flags 0; the universe of 17 is 17.10's, the build
# installed here: a 17.11 run shows its VM cells as "unexpected")
VM_NAMED_SINCE = 18
VM_IMPLICIT = ("Heap/INSERT", "Heap/INSERT+INIT", "Heap/DELETE", "Heap/UPDATE", "Heap/UPDATE+INIT",
               "Heap/HOT_UPDATE", "Heap/LOCK", "Heap2/LOCK_UPDATED", "Heap2/MULTI_INSERT",
               "Heap2/MULTI_INSERT+INIT")
# ... but heap_lock_updated_tuple_rec clears ALL_FROZEN only on a page holding a tuple newer
# than the one its locker's snapshot sees: that tuple's xmin is not older than the locker's
# xmin, so no VACUUM froze it -- unless old_snapshot_threshold let VACUUM's horizon pass the
# locker's snapshot (15, 16; the setting is gone in 17)
VM_LEFT_OUT_SINCE = {"Heap2/LOCK_UPDATED": 17}
VM_LEFT_OUT_REASON = ("Heap2/LOCK_UPDATED locks versions newer than its snapshot's, which no VACUUM can have frozen "
                      "since old_snapshot_threshold is gone (17)")


def cell(type_name: str, fork: str, form: str) -> str:
    return f"{type_name}|{fork}|{form}"


def block_form(rec: DecodedXLogRecord, tag: BufferTag) -> str:
    """The form of ``rec``'s change to ``tag`` (see the module docstring)."""
    for blk in rec.blocks.values():  # a loop, not next(genexpr): this runs once per verified record
        if blk.tag == tag:
            if blk.apply_image:
                return "image-applied"
            if blk.flags & BKPBLOCK_WILL_INIT:
                return "will-init"
            return "image-not-applied" if blk.has_image else "data"
    return "implicit"


def block_cells(tag: BufferTag, records: Iterable[DecodedXLogRecord], table: RmgrTable) -> Counter[str]:
    """The cells a verified page's records reach."""
    fork = FORK_NAMES[tag.fork] if 0 <= tag.fork < len(FORK_NAMES) else str(tag.fork)
    # counted by (rmid, info, form) and named once each: a page has many records, few cells
    keys: Counter[tuple[int, int, str]] = Counter((r.rmid, r.info, block_form(r, tag)) for r in records)
    out: Counter[str] = Counter()
    for (rmid, info, form), n in keys.items():
        t = table.type_name_of(rmid, info)
        if form == "data" and tag.blk == 0 and t.startswith(METAPAGE_RMGRS):
            form = "metapage"
        out[cell(t, fork, form)] += n
    return out


def type_cells(type_name: str) -> tuple[set[str], dict[str, str]]:
    """The cells of a ``BLOCKS`` type: those its blocks reach, and those not counted (cell ->
    RACES or SUPERSEDED key): an image of a block marked ``race``, the will-init form of one
    marked ``superseded``, when no other block gives it."""
    reach: set[str] = set()
    uncounted: dict[str, str] = {}  # cell -> the RACES or SUPERSEDED key that keeps it out
    for b in BLOCKS[type_name][1]:
        forks = (b.fork, "init") if type_name in INIT_FORK_TOO and b.fork == "main" else (b.fork,)
        for fork in forks:
            for form in REGISTRATIONS[b.reg][1]:
                c = cell(type_name, fork, form)
                if b.race and form == "image-applied":
                    uncounted.setdefault(c, b.race)
                elif b.superseded and form == "will-init":
                    uncounted.setdefault(c, b.superseded)
                else:
                    reach.add(c)
    return reach, {c: k for c, k in uncounted.items() if c not in reach}


def _vm_cells(table: RmgrTable, types: set[str]) -> set[str]:
    """VM cells of the heap records that clear VM bits (VM_IMPLICIT)."""
    named = table.major >= VM_NAMED_SINCE
    forms = ("data", "image-applied", "image-not-applied") if named else ("implicit",)
    return {cell(t, "vm", f) for t in VM_IMPLICIT
            if t in types and table.major < VM_LEFT_OUT_SINCE.get(t, table.major + 1) for f in forms}


def reachable_cells(table: RmgrTable) -> set[str]:
    """The cells the WAL of ``table``'s major can hold (of its page-modifying types), race-only
    ones left out (``race_cells``). KeyError for a page-modifying type ``BLOCKS`` lacks."""
    types = set(table.page_modifying_types())
    out: set[str] = set()
    for t in types:
        if t in IMAGE_ONLY:
            out.update(cell(t, f, "image-applied") for f in IMAGE_ONLY[t])
            if t in IMAGELESS:
                out.update(cell(t, f, "data") for f in IMAGE_ONLY[t])
        else:
            out |= type_cells(t)[0]
    return out | _vm_cells(table, types)


def race_cells(table: RmgrTable) -> dict[str, str]:
    """Cells of ``table``'s major that only a checkpoint beginning between two records of one
    operation reaches (cell -> RACES key), or that a later record of the operation always
    supersedes (cell -> SUPERSEDED key): shown when reached, not counted."""
    out: dict[str, str] = {}
    for t in table.page_modifying_types():
        if t not in IMAGE_ONLY:
            out.update(type_cells(t)[1])
    return out


@dataclass(frozen=True)
class CellGrid:
    """Cells reached (with counts) against the reachable ones."""

    counts: Mapping[str, int]
    reachable: frozenset[str]
    race: frozenset[str] = field(default=frozenset())  # race-only cells (race_cells): not counted

    @property
    def covered(self) -> int:
        return sum(1 for c in self.reachable if self.counts.get(c))

    @property
    def total(self) -> int:
        return len(self.reachable)

    @property
    def missing(self) -> list[str]:
        return sorted(c for c in self.reachable if not self.counts.get(c))

    @property
    def race_reached(self) -> list[str]:
        """Race-only cells a run reached anyway (a checkpoint began at the right moment)."""
        return sorted(c for c in self.race if self.counts.get(c))

    @property
    def unexpected(self) -> list[str]:
        """Cells reached that the universe leaves out (a gap in ``reachable_cells``)."""
        return sorted(c for c, n in self.counts.items() if n and c not in self.reachable and c not in self.race)

    def to_json(self) -> dict[str, Any]:
        return {"covered": self.covered, "total": self.total, "cells": dict(sorted(self.counts.items()))}


def compute_cells(counts: Mapping[str, int], table: RmgrTable) -> CellGrid:
    return CellGrid(dict(counts), frozenset(reachable_cells(table)), frozenset(race_cells(table)))


# -- docs/coverage-cells.md ----------------------------------------------------------------

DOC_BEGIN = "<!-- generated by harness.reports.cells.render_universe: do not edit by hand -->"
DOC_END = "<!-- end of generated section -->"


def left_out(type_name: str) -> list[str]:
    """The main-fork forms no block of a ``BLOCKS`` type takes (race-only ones aside)."""
    reach, race = type_cells(type_name)
    has_meta = any(b.role == "metapage" for b in BLOCKS[type_name][1])  # else no metapage form to miss
    forms = [f for f in FORMS if f != "implicit" and (f != "metapage" or has_meta)]
    return [f for f in forms if cell(type_name, "main", f) not in reach | set(race)]


def _blocks_md(blocks: tuple[Block, ...]) -> str:
    return "; ".join(f"{b.role}{' (' + b.fork + ')' if b.fork != 'main' else ''}: {b.reg}"
                     + (f" (image: race `{b.race}`)" if b.race else "")
                     + (f" (superseded: `{b.superseded}`)" if b.superseded else "") for b in blocks)


def render_universe(tables: Iterable[RmgrTable]) -> str:
    """The generated section of docs/coverage-cells.md: per type its blocks, the main-fork
    forms left out and the race-only cells; the races; the totals per major."""
    tables = list(tables)
    lines = ["| record type | registered by | blocks: registration | left out (main fork) | race-only |",
             "|---|---|---|---|---|"]
    for t, (fn, blocks) in sorted(BLOCKS.items()):
        race = sorted(c.split("|", 1)[1].replace("|", " ") for c in type_cells(t)[1])
        lines.append(f"| {t} | `{fn}` | {_blocks_md(blocks)} | {', '.join(left_out(t)) or '-'} "
                     f"| {', '.join(race) or '-'} |")
    lines += ["", "Registrations: " + "; ".join(f"**{k}** = {flags}: {', '.join(forms)}"
                                                 for k, (flags, forms) in REGISTRATIONS.items()) + ".", "",
              "Races (the two records, and why no SQL puts a checkpoint between them):", ""]
    lines += [f"* `{k}`: {v}" for k, v in RACES.items()]
    lines += ["", "Superseded (the record of the same operation that always resets the page again):", ""]
    lines += [f"* `{k}`: {v}" for k, v in SUPERSEDED.items()]
    lines += ["", f"* VM cells left out from 17: {VM_LEFT_OUT_REASON}.", "",
              "| major | page-modifying types | reachable cells | race-only cells |", "|---|---|---|---|"]
    lines += [f"| {tb.major} | {len(tb.page_modifying_types())} | {len(reachable_cells(tb))} "
              f"| {len(race_cells(tb))} |" for tb in tables]
    return "\n".join([DOC_BEGIN, *lines, DOC_END])


def sync_doc(path: Path, tables: Iterable[RmgrTable]) -> bool:
    """Rewrite the generated section of ``path``; True if it changed."""
    text = path.read_text()
    head, _, rest = text.partition(DOC_BEGIN)
    _, _, tail = rest.partition(DOC_END)
    new = head + render_universe(tables) + tail
    path.write_text(new)
    return new != text


if __name__ == "__main__":  # python -m harness.reports.cells docs/coverage-cells.md
    from pyredo.rmgrlist import PG15, PG16, PG17, PG18

    print("changed" if sync_doc(Path(sys.argv[1]), (PG15, PG16, PG17, PG18)) else "unchanged")
