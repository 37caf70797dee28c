"""pyredo — a PostgreSQL 15 WAL redo engine in Python.

Importable on its own (no PostgreSQL needed): ``pyredo.wal`` reads and decodes
WAL; ``pyredo.rmgr`` holds one module per resource manager (and the RM_*_ID
constants); ``pyredo.xlogutils`` what every routine shares (RedoContext,
XLogReadBufferForRedo, the bounds-checked RecordCursor); ``pyredo.rmgrlist``
the table of resource managers, one per PostgreSQL major (``PG15``); and
``pyredo.engine.RedoEngine(table)`` rebuilds one page from a base image and
records.
"""

BLCKSZ = 8192
