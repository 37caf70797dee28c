"""A built-in mixed workload: every access method, TOAST, COPY, sequences,
VACUUM, TRUNCATE and a record larger than a WAL page. Used by ``redodiff demo``,
the decoder benchmark and the decoder's pg_waldump agreement test."""

from __future__ import annotations

DEMO_STEPS: tuple[str, ...] = (
    "CREATE EXTENSION IF NOT EXISTS bloom",
    "DROP TABLE IF EXISTS demo_t, demo_docs, demo_geo, demo_copy CASCADE",
    "DROP SEQUENCE IF EXISTS demo_seq",
    "CREATE SEQUENCE demo_seq",
    "CREATE TABLE demo_t (id int PRIMARY KEY, k int, v text, pad text) WITH (fillfactor = 70)",
    "CREATE INDEX demo_t_k_hash ON demo_t USING hash (k)",
    "CREATE INDEX demo_t_k_brin ON demo_t USING brin (k) WITH (pages_per_range = 2)",
    "CREATE INDEX demo_t_bloom ON demo_t USING bloom (id, k)",
    "INSERT INTO demo_t SELECT g, g % 97, md5(g::text), repeat('p', g % 300) FROM generate_series(1, 6000) g",
    # HOT updates (non-indexed column) and non-HOT updates (indexed column)
    "UPDATE demo_t SET pad = pad || 'x' WHERE id % 5 = 0",
    "UPDATE demo_t SET k = k + 1 WHERE id % 11 = 0",
    "DELETE FROM demo_t WHERE id % 7 = 0",
    # TOAST: values far over the 2 kB threshold, uncompressible
    "INSERT INTO demo_t SELECT 100000 + g, g, string_agg(md5((g * 1000 + i)::text), '') , NULL "
    "FROM generate_series(1, 20) g, generate_series(1, 200) i GROUP BY g",
    "CREATE TABLE demo_docs (id int, tags int[], doc tsvector, j jsonb)",
    "CREATE INDEX demo_docs_gin ON demo_docs USING gin (tags) WITH (fastupdate = off)",
    "CREATE INDEX demo_docs_gin_fast ON demo_docs USING gin (doc)",
    "INSERT INTO demo_docs SELECT g, ARRAY[g % 10, g % 17, g % 31], "
    "to_tsvector('simple', 'word' || (g % 50) || ' term' || (g % 7)), "
    "jsonb_build_object('a', g % 13) FROM generate_series(1, 3000) g",
    "CREATE TABLE demo_geo (id int, p point, b box, r int4range, addr inet, name text)",
    "CREATE INDEX demo_geo_gist ON demo_geo USING gist (b)",
    "CREATE INDEX demo_geo_spgist_p ON demo_geo USING spgist (p)",
    "CREATE INDEX demo_geo_spgist_t ON demo_geo USING spgist (name)",
    "INSERT INTO demo_geo SELECT g, point(g % 100, g / 100), box(point(g % 50, g % 30), point(g % 50 + 3, g % 30 + 2)), "
    "int4range(g, g + 10), ('10.0.' || (g % 255) || '.' || (g % 7))::inet, 'name-' || (g % 400) "
    "FROM generate_series(1, 4000) g",
    "CREATE TABLE demo_copy (a int, b text)",
    "COPY demo_copy (a) FROM PROGRAM 'seq 1 5000'",
    "SELECT nextval('demo_seq') FROM generate_series(1, 200)",
    "DELETE FROM demo_geo WHERE id % 3 = 0",
    "VACUUM demo_t",
    "VACUUM demo_geo",
    "VACUUM FREEZE demo_copy",
    # a record much larger than one 8 kB WAL page
    "SELECT pg_logical_emit_message(false, 'redodiff', repeat('m', 30000))",
    "TRUNCATE demo_copy",
)
