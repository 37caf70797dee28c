"""SLRU redo: pg_xact (the commit log), rebuilt from CLOG and Transaction records.

A page server's C redo never replays SLRUs, so this part of pyredo has no
second engine to agree with: the primary's own pg_xact is the witness
(``harness.verify.clogcheck``).

* ``pyredo.slru.clog`` — the pure engine: ``replay_clog(records, base)``
  mirrors clog_redo and the pg_xact half of xact_redo; bit layout helpers;
  ParseCommitRecord / ParseAbortRecord.
* ``pyredo.slru.files`` — segment files: read, write, snapshot pg_xact.
"""

from __future__ import annotations

from pyredo.slru.clog import (
    CLOG_XACTS_PER_PAGE,
    SLRU_PAGES_PER_SEGMENT,
    TRANSACTION_STATUS_ABORTED,
    TRANSACTION_STATUS_COMMITTED,
    TRANSACTION_STATUS_IN_PROGRESS,
    TRANSACTION_STATUS_SUB_COMMITTED,
    ClogError,
    ClogResult,
    ClogStateError,
    MissingPage,
    NoBasePage,
    ParseAbortRecord,
    ParseCommitRecord,
    TransactionIdToPage,
    XactParsed,
    XidChange,
    get_xid_status,
    replay_clog,
    set_xid_status,
)
from pyredo.slru.files import (
    SlruFileError,
    load_base_pages,
    read_slru_pages,
    snapshot_pg_xact,
    write_slru_pages,
)

__all__ = [
    "CLOG_XACTS_PER_PAGE",
    "SLRU_PAGES_PER_SEGMENT",
    "TRANSACTION_STATUS_ABORTED",
    "TRANSACTION_STATUS_COMMITTED",
    "TRANSACTION_STATUS_IN_PROGRESS",
    "TRANSACTION_STATUS_SUB_COMMITTED",
    "ClogError",
    "ClogResult",
    "ClogStateError",
    "MissingPage",
    "NoBasePage",
    "ParseAbortRecord",
    "ParseCommitRecord",
    "SlruFileError",
    "TransactionIdToPage",
    "XactParsed",
    "XidChange",
    "get_xid_status",
    "load_base_pages",
    "read_slru_pages",
    "replay_clog",
    "set_xid_status",
    "snapshot_pg_xact",
    "write_slru_pages",
]
