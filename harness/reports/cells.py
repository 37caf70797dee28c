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
from where the backend registers buffers (XLogRegisterBuffer flags, PostgreSQL 15
sources, and what changed since: VM_NAMED_SINCE) — see the comments on each set. A
form reached only under a setting counts as reachable (image-not-applied:
wal_consistency_checking).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pyredo.rmgrlist import RmgrTable
from pyredo.wal.record import FORK_NAMES, BufferTag, DecodedXLogRecord

FORMS = ("image-applied", "will-init", "image-not-applied", "metapage", "data", "implicit")
# AMs whose block 0 is the metapage (GiST's block 0 is its root; bloom's is Generic WAL)
METAPAGE_RMGRS = ("Btree/", "Hash/", "Gin/", "BRIN/", "SPGist/")
# records that change a metapage in place (XLogRegisterBuffer of the metabuffer without
# REGBUF_WILL_INIT): hash's insert, overflow, split and cleanup paths, BRIN's revmap extension
METAPAGE_DATA = ("Hash/INSERT", "Hash/ADD_OVFL_PAGE", "Hash/SPLIT_ALLOCATE_PAGE", "Hash/SQUEEZE_PAGE",
                 "Hash/VACUUM_ONE_PAGE", "Hash/UPDATE_META_PAGE", "Hash/INIT_BITMAP_PAGE", "BRIN/REVMAP_EXTEND")
# ... and no other block: their data form is the metapage form
METAPAGE_ONLY = ("Hash/UPDATE_META_PAGE",)
IMAGE_ONLY = {"XLOG/FPI": ("main", "init", "vm", "fsm"),  # init: ambuildempty; vm/fsm: CREATE DATABASE WAL_LOG
              "XLOG/FPI_FOR_HINT": ("main", "fsm")}  # MarkBufferDirtyHint: heap pages, FSM pages
# ... XLOG/FPI_FOR_HINT also without its image: full_page_writes off leaves it out, and
# xlog_redo skips a block without an image (measured: with checksums and fpw off)
IMAGELESS = ("XLOG/FPI_FOR_HINT",)
# every block the record names is re-initialized (REGBUF_WILL_INIT on all of them)
ONLY_INIT = {"Heap/INSERT+INIT", "Heap2/MULTI_INSERT+INIT", "BRIN/CREATE_INDEX", "Hash/INIT_META_PAGE",
             "Gin/CREATE_PTREE", "Gin/INSERT_LISTPAGE", "Sequence/LOG", "Btree/META_CLEANUP"}
# some blocks re-initialized (new pages, rewritten metapages), others changed in place
SOME_INIT = {"Heap/UPDATE+INIT", "BRIN/INSERT+INIT", "BRIN/UPDATE+INIT", "BRIN/REVMAP_EXTEND",
             "SPGist/ADD_LEAF", "SPGist/MOVE_LEAFS", "SPGist/PICKSPLIT", "SPGist/ADD_NODE", "SPGist/SPLIT_TUPLE",
             "Hash/ADD_OVFL_PAGE", "Hash/INIT_BITMAP_PAGE", "Hash/SPLIT_ALLOCATE_PAGE",
             "Btree/INSERT_META", "Btree/SPLIT_L", "Btree/SPLIT_R", "Btree/NEWROOT", "Btree/MARK_PAGE_HALFDEAD",
             "Btree/UNLINK_PAGE", "Btree/UNLINK_PAGE_META", "Gist/PAGE_SPLIT", "Gin/UPDATE_META_PAGE",
             "Gin/DELETE_LISTPAGE"}
# init forks: ambuildempty logs metapages as XLOG/FPI (btree, gist, gin, spgist, brin, bloom) or
# through hash's own records; an unlogged sequence's first tuple is Sequence/LOG on its init fork
INIT_FORK = {"Hash/INIT_META_PAGE|init|will-init", "Hash/INIT_BITMAP_PAGE|init|will-init",
             "Hash/INIT_BITMAP_PAGE|init|metapage", "Hash/INIT_BITMAP_PAGE|init|image-not-applied",
             "Sequence/LOG|init|will-init"}
# visibility map: Heap2/VISIBLE names its VM page; these heap records clear VM bits without
# naming it -- until 18 (and 17.11), where they register the VM page as a block of their own
# (heap_insert & co.: XLogRegisterBuffer of the vmbuffer; the universe of 17 is 17.10's, the
# build installed here: a 17.11 run shows its VM cells as "unexpected")
VM_NAMED = ("Heap2/VISIBLE",)
VM_NAMED_SINCE = 18
VM_IMPLICIT = ("Heap/INSERT", "Heap/INSERT+INIT", "Heap/DELETE", "Heap/UPDATE", "Heap/UPDATE+INIT",
               "Heap/HOT_UPDATE", "Heap/LOCK", "Heap2/LOCK_UPDATED", "Heap2/MULTI_INSERT",
               "Heap2/MULTI_INSERT+INIT")


def cell(type_name: str, fork: str, form: str) -> str:
    return f"{type_name}|{fork}|{form}"


def block_form(rec: DecodedXLogRecord, tag: BufferTag) -> str:
    """The form of ``rec``'s change to ``tag`` (see the module docstring)."""
    blk = next((b for b in rec.blocks.values() if b.tag == tag), None)
    if blk is None:
        return "implicit"
    if blk.apply_image:
        return "image-applied"
    if blk.will_init:
        return "will-init"
    return "image-not-applied" if blk.has_image else "data"


def block_cells(tag: BufferTag, records: Iterable[DecodedXLogRecord], table: RmgrTable) -> Counter[str]:
    """The cells a verified page's records reach."""
    fork = FORK_NAMES[tag.fork] if 0 <= tag.fork < len(FORK_NAMES) else str(tag.fork)
    out: Counter[str] = Counter()
    for r in records:
        t, form = table.record_type(r), block_form(r, tag)
        if form == "data" and tag.blk == 0 and t.startswith(METAPAGE_RMGRS):
            form = "metapage"
        out[cell(t, fork, form)] += 1
    return out


def reachable_cells(table: RmgrTable) -> set[str]:
    """The cells the WAL of ``table``'s major can hold (of its page-modifying types)."""
    types = set(table.page_modifying_types())
    out: set[str] = set()
    for t in types:
        if t in IMAGE_ONLY:
            out.update(cell(t, f, "image-applied") for f in IMAGE_ONLY[t])
            if t in IMAGELESS:
                out.update(cell(t, f, "data") for f in IMAGE_ONLY[t])
        elif t in ONLY_INIT:
            out.add(cell(t, "main", "will-init"))
        else:
            forms = ["image-applied", "image-not-applied"] + ([] if t in METAPAGE_ONLY else ["data"])
            out.update(cell(t, "main", f) for f in forms)
            if t in SOME_INIT:
                out.add(cell(t, "main", "will-init"))
            if t in METAPAGE_DATA:
                out.add(cell(t, "main", "metapage"))
    out.update(c for c in INIT_FORK if c.split("|")[0] in types)
    named = VM_NAMED + (VM_IMPLICIT if table.major >= VM_NAMED_SINCE else ())
    out.update(cell(t, "vm", f) for t in named if t in types for f in ("data", "image-applied", "image-not-applied"))
    if table.major < VM_NAMED_SINCE:
        out.update(cell(t, "vm", "implicit") for t in VM_IMPLICIT if t in types)
    return out


@dataclass(frozen=True)
class CellGrid:
    """Cells reached (with counts) against the reachable ones."""

    counts: Mapping[str, int]
    reachable: frozenset[str]

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
    def unexpected(self) -> list[str]:
        """Cells reached that the universe leaves out (a gap in ``reachable_cells``)."""
        return sorted(c for c, n in self.counts.items() if n and c not in self.reachable)

    def to_json(self) -> dict[str, Any]:
        return {"covered": self.covered, "total": self.total, "cells": dict(sorted(self.counts.items()))}


def compute_cells(counts: Mapping[str, int], table: RmgrTable) -> CellGrid:
    return CellGrid(dict(counts), frozenset(reachable_cells(table)))

