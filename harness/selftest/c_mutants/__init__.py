"""C mutants: named, documented bugs in PostgreSQL 15's own redo routines.

Where ``harness.selftest.catalog`` breaks pyredo, these break the code a PostgreSQL
hacker edits: each is a unified diff in ``patches/<name>.patch`` (a few lines, applies
with ``patch -p1 --fuzz=0`` to the Debian source of PostgreSQL 15 that
``harness.clusters.pgsource.source_tree(15)`` unpacks). ``redodiff selftest --c``
builds PostgreSQL once (``harness.clusters.pgbuild``), then per mutant applies the
patch, rebuilds incrementally, and fuzzes with the mutated build as the subject —
its cluster and its wal-redo server — while pyredo and the primary's page are the
witnesses (``harness.selftest.c_runner``).

Each mutant says which C function it breaks, which record types reach it (as pyredo's
coverage names them), what it breaks, its category (``harness.selftest.mutants.CATEGORIES``),
whether PostgreSQL's consistency masks hide it (then only the engine comparison,
pyredo against the mutated wal-redo server, can see it), and for the ones that
re-introduce a real PostgreSQL redo bug, the fix (commit or release-note entry, version).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.selftest.mutants import CATEGORIES

PATCHES = Path(__file__).resolve().parent / "patches"
MAJOR = 15  # the PostgreSQL major the patches are written against


@dataclass(frozen=True)
class CMutant:
    name: str
    file: str  # the source file the patch changes, relative to the tree's root
    function: str  # the C function it breaks
    record_types: tuple[str, ...]  # the record types whose redo runs the broken code ("Heap/LOCK")
    category: str
    description: str
    masked: bool = False
    history: str = ""  # the upstream fix it undoes (commit / release note, version), if any
    # what its campaign aims at (generators.rules.profile_named): the workload rules that produce its
    # rare record types, and settings ("wal_log_hints=on") without which redo never meets the state it breaks
    aim: tuple[str, ...] = ()

    @property
    def profile_aim(self) -> str:
        """What ``generators.rules.profile_named`` appends to the campaign's profile: ``@rule,rule``."""
        return f"@{','.join(self.aim)}" if self.aim else ""

    @property
    def patch(self) -> Path:
        return PATCHES / f"{self.name}.patch"

    @property
    def rmgr(self) -> str:
        return self.record_types[0].split("/", 1)[0]

    @property
    def record_type(self) -> str:
        return " | ".join(self.record_types)

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "file": self.file, "function": self.function,
                "record_types": list(self.record_types), "category": self.category, "masked": self.masked,
                "description": self.description, "history": self.history, "aim": list(self.aim),
                "patch": str(self.patch)}


H, B, HS = "src/backend/access/heap/heapam.c", "src/backend/access/nbtree/nbtxlog.c", "src/backend/access/hash/hash_xlog.c"
G, GI, SP = "src/backend/access/gin/ginxlog.c", "src/backend/access/gist/gistxlog.c", "src/backend/access/spgist/spgxlog.c"
BR, SQ = "src/backend/access/brin/brin_xlog.c", "src/backend/commands/sequence.c"
XR, GX = "src/backend/access/transam/xlogreader.c", "src/backend/access/transam/generic_xlog.c"

A4D357BF = ("PostgreSQL commit a4d357bf (2016, Andres Freund) \"Make HEAP_LOCK/HEAP2_LOCK_UPDATED replay reset "
            "HEAP_XMAX_INVALID\", backpatched to 9.3: since 0ac5ad5 (9.3) the lock replay routines did not "
            "clear the old xmax bits before applying the record's infobits, so after crash recovery or "
            "promotion row locks of prepared transactions could be ignored. The patch removes the two lines "
            "that fix added")

MUTANTS: tuple[CMutant, ...] = (
    CMutant("heap_lock_keeps_xmax_bits", H, "heap_xlog_lock", ("Heap/LOCK",), "flag",
            "heap_xlog_lock no longer clears HEAP_XMAX_BITS/HEAP_MOVED and HEAP_KEYS_UPDATED before applying "
            "the record's infobits: a stale HEAP_XMAX_INVALID (a hint bit, masked) or lock-mode bit survives",
            masked=True, history=A4D357BF),
    CMutant("heap_lock_updated_keeps_xmax_bits", H, "heap_xlog_lock_updated", ("Heap2/LOCK_UPDATED",), "flag",
            "heap_xlog_lock_updated no longer clears the old xmax bits (as heap_lock_keeps_xmax_bits, for locks "
            "on a later version of an updated row)", masked=True, history=A4D357BF,
            aim=("lock_chain", "multixact_locks")),
    CMutant("heap_lock_breaks_update_chain", H, "heap_xlog_lock", ("Heap/LOCK",), "link",
            "heap_xlog_lock resets t_ctid to the tuple itself and clears HEAP_HOT_UPDATED even when the "
            "tuple's xmax is an update, not only a lock: the update chain is cut",
            history="PostgreSQL 9.3.4 release notes (2014-03-20), \"Fix WAL replay of locking an already-updated "
                    "tuple (Andres Freund, Álvaro Herrera)\": replay broke the update chain, so updated rows "
                    "were not found by index scans on standbys or after crash recovery; the fix made the "
                    "t_ctid reset conditional on HEAP_XMAX_IS_LOCKED_ONLY, which this patch undoes"),
    CMutant("heap_insert_keeps_all_visible", H, "heap_xlog_insert", ("Heap/INSERT", "Heap/INSERT+INIT"), "flag",
            "heap_xlog_insert forgets PageClearAllVisible when the record says the inserter cleared it",
            masked=True),
    CMutant("heap_insert_no_page_lsn", H, "heap_xlog_insert", ("Heap/INSERT", "Heap/INSERT+INIT"), "lsn",
            "heap_xlog_insert forgets PageSetLSN: the page keeps the previous record's LSN", masked=True),
    CMutant("heap_delete_no_xmax", H, "heap_xlog_delete", ("Heap/DELETE",), "data",
            "heap_xlog_delete stores InvalidTransactionId as the deleted tuple's xmax instead of the deleter's"),
    CMutant("heap_update_hot_flag_lost", H, "heap_xlog_update", ("Heap/HOT_UPDATE",), "flag",
            "heap_xlog_update clears HEAP_HOT_UPDATED on the old tuple of a HOT update instead of setting it "
            "(t_infomask2 is not masked)"),
    CMutant("heap_update_ctid_off_by_one", H, "heap_xlog_update", ("Heap/UPDATE", "Heap/HOT_UPDATE"), "offset",
            "heap_xlog_update points the old tuple's forward link t_ctid one line pointer past the new version"),
    CMutant("heap_visible_no_pd_all_visible", H, "heap_xlog_visible", ("Heap2/VISIBLE",), "vm",
            "heap_xlog_visible sets the visibility-map bit but not PD_ALL_VISIBLE on the heap page "
            "(PD_ALL_VISIBLE is masked)", masked=True,
            history="Modelled on PostgreSQL commit 95aa823e (2014, Heikki Linnakangas, 9.3 branch) \"Set the "
                    "all-visible flag on heap page before writing WAL record, not after\": a VM bit could end up "
                    "set without PD_ALL_VISIBLE on the heap page"),
    CMutant("heap_freeze_skips_last_tuple", H, "heap_xlog_freeze_page", ("Heap2/FREEZE_PAGE",), "data",
            "heap_xlog_freeze_page applies every freeze plan but the last tuple's (loop bound off by one)"),
    CMutant("btree_split_no_incomplete_flag", B, "btree_xlog_split", ("Btree/SPLIT_L", "Btree/SPLIT_R"), "flag",
            "btree_xlog_split leaves the left half without BTP_INCOMPLETE_SPLIT (and without BTP_LEAF)"),
    CMutant("btree_split_sibling_prev_unfixed", B, "btree_xlog_split", ("Btree/SPLIT_L", "Btree/SPLIT_R"), "link",
            "btree_xlog_split does not point the old right sibling's btpo_prev at the new right half"),
    CMutant("btree_unlink_leaf_flag_lost", B, "btree_xlog_unlink_page", ("Btree/UNLINK_PAGE",
            "Btree/UNLINK_PAGE_META"), "flag",
            "btree_xlog_unlink_page rebuilds a deleted leaf page without BTP_LEAF",
            history="The first inconsistency wal_consistency_checking reported while it was being written "
                    "(Kuntal Ghosh, pgsql-hackers \"WAL consistency check facility\", 2016-09): \"For "
                    "Btree/UNLINK_PAGE_META, btpo_flags are different\" — replay rebuilt the deleted page "
                    "without BTP_LEAF; fixed in PostgreSQL 10 with the facility (btree_xlog_unlink_page re-adds it)"),
    CMutant("btree_newroot_leaf_flag_lost", B, "btree_xlog_newroot", ("Btree/NEWROOT",), "flag",
            "btree_xlog_newroot builds a level-0 root without BTP_LEAF"),
    CMutant("btree_delete_keeps_garbage_flag", B, "btree_xlog_delete", ("Btree/DELETE",), "flag",
            "btree_xlog_delete leaves BTP_HAS_GARBAGE set after removing the LP_DEAD items (masked)", masked=True),
    CMutant("btree_vacuum_deletes_one_less", B, "btree_xlog_vacuum", ("Btree/VACUUM",), "compaction",
            "btree_xlog_vacuum removes all but the last of the items VACUUM deleted"),
    CMutant("hash_insert_ntuples_twice", HS, "hash_xlog_insert", ("Hash/INSERT",), "meta",
            "hash_xlog_insert counts each insertion twice in the metapage's hashm_ntuples"),
    CMutant("hash_vacuum_one_page_keeps_dead_flag", HS, "hash_xlog_vacuum_one_page", ("Hash/VACUUM_ONE_PAGE",),
            "flag", "hash_xlog_vacuum_one_page leaves LH_PAGE_HAS_DEAD_TUPLES set (masked)", masked=True,
            history="PostgreSQL commit 953477ca (2017, Robert Haas; patch by Ashutosh Sharma) \"Fixes for "
                    "single-page hash index vacuum\": clear LH_PAGE_HAS_DEAD_TUPLES during replay, as btree "
                    "does; an oversight of 6977b8b7, fixed before PostgreSQL 10.0",
            # the flag is set without WAL (_hash_kill_items): only a hint's full-page image (XLOG/FPI_FOR_HINT,
            # wal_log_hints or checksums, full_page_writes) taken after a checkpoint carries it into redo
            aim=("index_prune_workout", "kill_and_refill", "checkpoint", "index_scans", "wal_log_hints=on",
                 "full_page_writes=on")),
    CMutant("hash_split_cleanup_flag_kept", HS, "hash_xlog_split_cleanup", ("Hash/SPLIT_CLEANUP",), "flag",
            "hash_xlog_split_cleanup does not clear LH_BUCKET_NEEDS_SPLIT_CLEANUP on the old bucket"),
    CMutant("gin_incomplete_split_not_cleared", G, "ginRedoClearIncompleteSplit",
            ("Gin/INSERT", "Gin/SPLIT"), "flag",
            "ginRedoClearIncompleteSplit leaves GIN_INCOMPLETE_SPLIT set on the left child once the "
            "downlink is inserted"),
    CMutant("gin_delete_page_left_rightlink", G, "ginRedoDeletePage", ("Gin/DELETE_PAGE",), "link",
            "ginRedoDeletePage does not point the left sibling's rightlink past the deleted page",
            aim=("gin_posting_tree",),
            history="The GIN replay fix of 2007 (Teodor Sigaev, back-patched to 8.2): \"there was wrong test of "
                    "XLR_BKP_BLOCK_* for left page after deletion of page. That causes wrong rightlink field: "
                    "it pointed to deleted page\""),
    CMutant("gin_delete_page_no_delete_xid", G, "ginRedoDeletePage", ("Gin/DELETE_PAGE",), "data",
            "ginRedoDeletePage forgets to store deleteXid on the deleted page (gin_mask masks deleted pages)",
            masked=True, aim=("gin_posting_tree",),
            history="PostgreSQL commit 52ac6cd2d0 (2018, Alexander Korotkov) \"Prevent GIN deleted pages from "
                    "being reclaimed too early\" added deleteXid to ginxlogDeletePage so that replay stores it "
                    "on the deleted page"),
    CMutant("gin_pending_tail_maxoff_not_counted", G, "ginRedoUpdateMetapage", ("Gin/UPDATE_META_PAGE",), "meta",
            "ginRedoUpdateMetapage appends tuples to the pending list's tail page without counting them in "
            "its maxoff", aim=("index_am_workout", "full_page_writes=off")),
    CMutant("gist_follow_right_kept", GI, "gistRedoClearFollowRight", ("Gist/PAGE_UPDATE", "Gist/PAGE_SPLIT"),
            "flag", "gistRedoClearFollowRight sets the child's NSN but leaves F_FOLLOW_RIGHT set"),
    CMutant("gist_leaf_delete_no_tuples_deleted_flag", GI, "gistRedoPageUpdateRecord", ("Gist/PAGE_UPDATE",),
            "flag", "gistRedoPageUpdateRecord deletes leaf tuples without setting F_TUPLES_DELETED"),
    CMutant("spgist_placeholder_count_kept", SP, "addOrReplaceTuple", ("SPGist/ADD_LEAF", "SPGist/MOVE_LEAFS",
            "SPGist/PICKSPLIT"),
            "free-space", "addOrReplaceTuple replaces a placeholder without decrementing nPlaceholder"),
    CMutant("spgist_add_node_redirect_counted_as_placeholder", SP, "spgRedoAddNode", ("SPGist/ADD_NODE",),
            "meta", "spgRedoAddNode counts the redirect it leaves behind as a placeholder (nPlaceholder, "
            "not nRedirection)"),
    CMutant("brin_insert_revmap_not_updated", BR, "brin_xlog_insert_update", ("BRIN/INSERT", "BRIN/INSERT+INIT",
            "BRIN/UPDATE", "BRIN/UPDATE+INIT"), "data",
            "brin_xlog_insert_update adds the summary tuple but does not point the revmap entry at it"),
    CMutant("seq_redo_no_page_lsn", SQ, "seq_redo", ("Sequence/LOG",), "lsn",
            "seq_redo rebuilds the sequence page without PageSetLSN (masked)", masked=True),
    CMutant("fpi_hole_not_zeroed", XR, "RestoreBlockImage", ("XLOG/FPI", "XLOG/FPI_FOR_HINT"), "image",
            "RestoreBlockImage does not zero-fill the hole of a full-page image: whatever the buffer held "
            "stays between pd_lower and pd_upper (unused space is masked). Every record with a block image "
            "runs it, not only XLOG/FPI", masked=True),
    CMutant("fpi_tail_one_byte_short", XR, "RestoreBlockImage", ("XLOG/FPI", "XLOG/FPI_FOR_HINT"), "image",
            "RestoreBlockImage copies the part of a full-page image after the hole one byte short: the "
            "page's last byte (special space) keeps the buffer's old value"),
    CMutant("generic_fragment_last_byte_dropped", GX, "applyPageRedo", ("Generic/Generic",), "data",
            "applyPageRedo copies every fragment of a generic WAL delta but its last byte"),
)

CATALOG: dict[str, CMutant] = {m.name: m for m in MUTANTS}
assert len(CATALOG) == len(MUTANTS), "duplicate C mutant names"
assert all(m.category in CATEGORIES for m in MUTANTS)


def get(name: str) -> CMutant:
    try:
        return CATALOG[name]
    except KeyError:
        raise KeyError(f"no C mutant {name!r} (redodiff selftest --c --list)") from None
