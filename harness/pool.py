"""Clusters for fuzzing, reused across iterations.

Settings that need initdb or a restart (data checksums, wal_log_hints) pick the
cluster; the rest (full_page_writes, wal_compression) are set per iteration
with ALTER SYSTEM and a reload. Clusters are recycled after a number of
iterations so WAL and catalogs do not grow without bound.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from generators.workload import Settings
from harness.cluster import ClusterSettings, LocalCluster
from harness.pgbin import SetupError

FUZZ_WAL_SEGSIZE_MB = 1  # small segments: bundles copy only a few MB of WAL


@dataclass
class _Slot:
    cluster: LocalCluster
    uses: int = 0
    applied: tuple[bool, str] | None = None


@dataclass
class ClusterPool:
    base_dir: Path | None = None
    recycle_after: int = 150
    keep: bool = False
    slots: dict[tuple[bool, bool], _Slot] = field(default_factory=dict)

    def get(self, settings: Settings) -> LocalCluster:
        key = settings.initdb_key
        slot = self.slots.get(key)
        if slot is not None and (slot.uses >= self.recycle_after or not slot.cluster.running):
            slot.cluster.destroy()
            slot = None
        if slot is None:
            cs = ClusterSettings(
                wal_segsize_mb=FUZZ_WAL_SEGSIZE_MB,
                data_checksums=settings.data_checksums,
                gucs={"wal_log_hints": settings.wal_log_hints},
            )
            cluster = LocalCluster(cs, base_dir=self.base_dir, keep=self.keep)
            cluster.__enter__()
            slot = self.slots[key] = _Slot(cluster)
        slot.uses += 1
        self._apply(slot, settings)
        return slot.cluster

    def _apply(self, slot: _Slot, settings: Settings) -> None:
        want = (settings.full_page_writes, settings.wal_compression)
        if slot.applied == want:
            return
        c = slot.cluster
        c.execute(f"ALTER SYSTEM SET full_page_writes = {'on' if settings.full_page_writes else 'off'}")
        c.execute(f"ALTER SYSTEM SET wal_compression = '{settings.wal_compression}'")
        c.execute("SELECT pg_reload_conf()")
        expect = ("on" if settings.full_page_writes else "off", settings.wal_compression)
        deadline = time.monotonic() + 10
        while (c.scalar("SHOW full_page_writes"), c.scalar("SHOW wal_compression")) != expect:
            if time.monotonic() > deadline:
                raise SetupError(f"cluster did not take settings {expect} after a reload")
            time.sleep(0.05)
        slot.applied = want

    def discard(self, settings: Settings) -> None:
        """Drop the cluster for these settings (after it crashed or misbehaved)."""
        slot = self.slots.pop(settings.initdb_key, None)
        if slot is not None:
            slot.cluster.destroy()

    def close(self) -> None:
        for slot in self.slots.values():
            slot.cluster.destroy()
        self.slots.clear()

    def __enter__(self) -> ClusterPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
