"""Hostile input (corrupted WAL and records) and resource hygiene of the fuzz loop."""
