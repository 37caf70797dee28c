"""PostgreSQL clusters: local (initdb + pg_ctl), existing (by DSN), Docker, the pool that reuses them, reading their data directories."""
