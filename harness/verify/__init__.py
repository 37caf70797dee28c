"""Verify a WAL range: capture it, plan it by block, redo every block with every engine, witness with the primary, check the commit log."""
