#!/bin/sh
# Run once by the official postgres image's entrypoint, on a fresh data directory
# (docker-compose.yml mounts this directory at /docker-entrypoint-initdb.d).
#
# A least-privilege role for `redodiff slot create` / `redodiff check --dsn`:
#   REPLICATION              physical slots and pg_receivewal (the WAL, streamed)
#   pg_read_binary_file      the primary's pages (and pg_wal/ without a slot)
#   pg_checkpoint            CHECKPOINT, so the pages on disk are current
set -eu
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-${POSTGRES_USER:-postgres}}" <<'SQL'
CREATE ROLE checker LOGIN REPLICATION PASSWORD 'checker';
GRANT EXECUTE ON FUNCTION pg_read_binary_file(text, bigint, bigint, boolean) TO checker;
GRANT pg_checkpoint TO checker;
SQL
# `host all all all` does not cover replication connections: pg_receivewal needs its own line
echo "host replication checker all scram-sha-256" >> "$PGDATA/pg_hba.conf"
