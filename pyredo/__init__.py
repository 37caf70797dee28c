"""pyredo — a PostgreSQL 15 WAL redo engine in Python.

Importable on its own (no PostgreSQL needed): ``pyredo.wal`` reads and decodes
WAL, ``pyredo.rmgr`` holds one module per resource manager, and
``pyredo.engine.RedoEngine`` rebuilds one page from a base image and records.
"""

BLCKSZ = 8192
