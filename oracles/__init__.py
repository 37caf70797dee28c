"""The oracles: the wal-redo protocol engine, PostgreSQL's consistency masks, page comparison."""
