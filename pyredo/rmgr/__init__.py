"""One module per resource manager, and the rmgr ids (rmgrlist.h order).

Each module mirrors one C file and provides:

* ``identify(info) -> str | None`` — the record type name, as pg_waldump's
  ``rm_identify`` prints it (``INSERT+INIT``, ``SPLIT_L`` ...);
* ``REDO`` — ``{info & OPMASK: routine}``, one routine per record type, each
  mirroring (and naming in its docstring) a C redo function;
* ``OPMASK`` — which xl_info bits choose the routine (default
  XLR_RMGR_INFO_MASK);
* ``PAGE_MODIFYING`` — the ``info & XLR_RMGR_INFO_MASK`` values whose redo
  changes a relation page: the universe that coverage is measured against;
* optionally ``desc(record) -> str`` (pg_waldump's description) and
  ``implicit_tags(record) -> list[BufferTag]`` (pages a record changes without
  naming them as a block reference: the visibility-map trap).

The table of all of them — id, name, redo, identify, mask — is
``pyredo.rmgrlist`` (it imports these modules; they never import it). This
package's ``__init__`` is a leaf: the ids below are the one definition of
RmgrId, importable from anywhere in pyredo without a cycle.
"""

from __future__ import annotations

# rmgr.h RmgrIds (rmgrlist.h order)
RM_XLOG_ID = 0
RM_XACT_ID = 1
RM_SMGR_ID = 2
RM_CLOG_ID = 3
RM_DBASE_ID = 4
RM_TBLSPC_ID = 5
RM_MULTIXACT_ID = 6
RM_RELMAP_ID = 7
RM_STANDBY_ID = 8
RM_HEAP2_ID = 9
RM_HEAP_ID = 10
RM_BTREE_ID = 11
RM_HASH_ID = 12
RM_GIN_ID = 13
RM_GIST_ID = 14
RM_SEQ_ID = 15
RM_SPGIST_ID = 16
RM_BRIN_ID = 17
RM_COMMIT_TS_ID = 18
RM_REPLORIGIN_ID = 19
RM_GENERIC_ID = 20
RM_LOGICALMSG_ID = 21

