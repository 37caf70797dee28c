"""Fit a workload to a PostgreSQL build that lacks something the generator may draw.

The generator draws from everything PostgreSQL 15 on Debian has: ``wal_compression``
lz4 and zstd, and the ``bloom`` contrib module. Some builds of other majors lack them
(``oracles.pgbin.PgInstall.capabilities``: the PostgreSQL 16 wheel has neither, the
18 wheel no lz4/zstd). Until the generator draws per major (issue 19, part 6), a
workload is fitted to the build it runs on, deterministically and visibly:

* ``wal_compression`` lz4 / zstd without the library -> pglz (still a compressed FPI);
* without bloom: no ``CREATE EXTENSION bloom``, and its indexes are btree indexes on the
  same columns (so later steps naming the index still find it);
* without pg_trgm: likewise, its trigram GIN/GiST indexes become btree indexes.

``wal_consistency_checking`` (Settings) takes the same rmgr names in every major 15-18,
so it needs no fitting.

A build that has everything gets the workload unchanged (the same object), so the
workloads of the default PostgreSQL 15 are byte for byte what the seed makes. The
fitted workload is the one that runs and that bundles save, so replay runs it as is.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import replace

from generators.workload import Step, Workload

__all__ = ["fit_sql", "fit_steps", "fit_workload"]

_CREATE_BLOOM = "CREATE EXTENSION IF NOT EXISTS bloom"
_CREATE_TRGM = "CREATE EXTENSION IF NOT EXISTS pg_trgm"
_TRGM_INDEX = re.compile(r" USING gi(?:n|st) \((\w+) gi(?:n|st)_trgm_ops\)")


def fit_sql(sql: str, capabilities: Collection[str]) -> str | None:
    """``sql`` as the build can run it; None when the statement is to be left out."""
    if "bloom" not in capabilities:
        if sql.strip() == _CREATE_BLOOM:
            return None
        sql = sql.replace(" USING bloom (", " USING btree (")
    if "pg_trgm" not in capabilities:
        if sql.strip() == _CREATE_TRGM:
            return None
        sql = _TRGM_INDEX.sub(r" USING btree (\1)", sql)
    return sql


def fit_steps(steps: Sequence[str], capabilities: Collection[str]) -> tuple[str, ...]:
    """SQL steps (the demo's) fitted to the build."""
    return tuple(s for s in (fit_sql(x, capabilities) for x in steps) if s is not None)


def fit_workload(wl: Workload, capabilities: Collection[str]) -> Workload:
    """``wl`` fitted to a build with ``capabilities``; ``wl`` itself when nothing changes.
    What was changed is listed in ``meta["fitted"]``."""
    changes: list[str] = []
    settings = wl.settings
    comp = settings.wal_compression
    if comp in ("lz4", "zstd") and comp not in capabilities:
        settings = replace(settings, wal_compression="pglz")
        changes.append(f"wal_compression {comp} -> pglz (the build has no {comp})")
    steps: list[Step] = []
    for st in wl.steps:
        sql = fit_sql(st.sql, capabilities)
        if sql is None:
            changes.append(f"left out: {st.sql}")
        elif sql != st.sql:
            changes.append(f"{st.sql} -> {sql}")
            steps.append(replace(st, sql=sql))
        else:
            steps.append(st)
    if not changes:
        return wl
    return replace(wl, settings=settings, steps=tuple(steps), meta={**wl.meta, "fitted": changes})
