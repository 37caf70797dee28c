"""Page layout primitives (bufpage.c), visibility-map pages and per-AM page helpers."""
