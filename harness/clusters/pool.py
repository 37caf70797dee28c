"""Clusters for fuzzing, reused across iterations.

Settings that need initdb or a restart (data checksums, wal_log_hints) pick the
cluster; the rest (full_page_writes, wal_compression) are set per iteration
with ALTER SYSTEM and a reload. Clusters are recycled after a number of
iterations so WAL and catalogs do not grow without bound.

Where the clusters run is a spec: ``local`` (initdb + pg_ctl here, the
default) or ``docker:IMAGE`` (the server in a container, PGDATA bind-mounted:
``harness.clusters.docker_cluster``). The spec is passed in (``ClusterPool.cluster_spec``,
``FuzzConfig.cluster``); nothing here reads the environment (the CLI reads
$REDODIFF_CLUSTER as the default of its ``--cluster`` option).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from generators.workload import Settings
from harness.clusters.local import ClusterSettings, LocalCluster
from harness.interrupts import Interrupts
from oracles.pgbin import PgInstall, SetupError

FUZZ_WAL_SEGSIZE_MB = 1  # small segments: bundles copy only a few MB of WAL


def parse_cluster_spec(spec: str) -> tuple[str, str | None]:
    """``local`` -> ("local", None); ``docker:IMAGE`` -> ("docker", IMAGE). ValueError otherwise."""
    spec = spec.strip()
    if spec in ("", "local"):
        return "local", None
    kind, sep, image = spec.partition(":")
    if kind == "docker" and sep and image.strip():
        return "docker", image.strip()
    raise ValueError(f"cluster {spec!r}: expected 'local' or 'docker:IMAGE' (e.g. docker:postgres:15.19-bookworm)")


def new_cluster(spec: str | None, settings: ClusterSettings, *, base_dir: Path | None = None,
                keep: bool = False) -> LocalCluster:
    """A (not yet started) cluster of the kind ``spec`` names (None: local)."""
    kind, image = parse_cluster_spec(spec or "local")
    if kind == "docker":
        from harness.clusters.docker_cluster import DockerCluster

        assert image is not None
        return DockerCluster(image, settings, base_dir=base_dir, keep=keep)
    return LocalCluster(settings, base_dir=base_dir, keep=keep)


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
    cluster_spec: str | None = None  # local | docker:IMAGE (None: local)
    pg: PgInstall | None = None  # which PostgreSQL local clusters run (None: the default installation)
    slots: dict[tuple[bool, bool], _Slot] = field(default_factory=dict)
    # the run's stop request: no cluster is started once it is pending, and close()
    # shuts the clusters down in its mode (fast, or immediate after a second signal)
    interrupts: Interrupts = field(default_factory=Interrupts)

    def get(self, settings: Settings) -> LocalCluster:
        self.interrupts.check()
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
                pg=self.pg,
            )
            cluster = new_cluster(self.cluster_spec, cs, base_dir=self.base_dir, keep=self.keep)
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
        """Destroy every cluster, side by side: each destroy mostly waits (pg_ctl, a
        container's removal), so after Ctrl-C the pool is gone in the time of its slowest
        cluster, not of all of them in turn. The first error is raised once all are done."""
        with self.interrupts.holding():
            clusters = [slot.cluster for slot in self.slots.values()]
            self.slots.clear()
            mode = self.interrupts.shutdown_mode
            if len(clusters) <= 1:
                for c in clusters:
                    c.destroy(mode)
                return
            with ThreadPoolExecutor(max_workers=len(clusters), thread_name_prefix="pool-close") as ex:
                futures = [ex.submit(c.destroy, mode) for c in clusters]
            errors = [e for f in futures if (e := f.exception()) is not None]
            if errors:
                raise errors[0]

    def __enter__(self) -> ClusterPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
