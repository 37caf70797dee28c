"""A Workload is plain data: cluster settings and SQL steps over sessions.

It round-trips through JSON, so it can be saved in a bundle or corpus,
replayed, and shrunk. SQL is produced by the rules in ``generators.rules``
from a model of the schema — never assembled by the executor.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

WAL_COMPRESSION = ("off", "pglz", "lz4", "zstd")
# wal_consistency_checking values drawn (resource manager names of every major 15-18): the
# records of these rmgrs carry an image of each page they change, BKPIMAGE_APPLY off unless
# it is a full-page write anyway; redo must apply the record, not the image
WAL_CONSISTENCY_CHECKING = ("", "heap,heap2", "btree", "hash,gin,gist,spgist", "brin,generic,sequence", "all")


@dataclass(frozen=True)
class Settings:
    """Cluster settings a workload runs under."""

    full_page_writes: bool = True
    wal_compression: str = "off"
    data_checksums: bool = False
    wal_log_hints: bool = False
    fillfactor: int = 100  # default heap fillfactor for tables the workload creates
    wal_consistency_checking: str = ""  # set by every session of the workload ("" off)

    @property
    def hint_bits_logged(self) -> bool:
        """XLogHintBitIsNeeded(): what pyredo must mirror for heap VISIBLE redo."""
        return self.data_checksums or self.wal_log_hints

    @property
    def initdb_key(self) -> tuple[bool, bool]:
        """What needs a different cluster (initdb / restart) rather than a reload."""
        return (self.data_checksums, self.wal_log_hints)

    def label(self) -> str:
        parts = ["fpw" if self.full_page_writes else "nofpw", f"comp={self.wal_compression}"]
        if self.data_checksums:
            parts.append("checksums")
        if self.wal_log_hints:
            parts.append("log_hints")
        if self.fillfactor != 100:
            parts.append(f"ff={self.fillfactor}")
        if self.wal_consistency_checking:
            parts.append(f"wcc={self.wal_consistency_checking.replace(',', '+')}")
        return ",".join(parts)


@dataclass(frozen=True)
class Step:
    """One SQL statement run by one session. ``copy_rows`` feeds COPY ... FROM STDIN.
    ``database``: run it connected to this database (the session's own connection
    to it) instead of the workload's default one; None for the default.
    ``script``: the step is a psql script by that name (a regression test file,
    ``generators.regress``): psql runs ``sql`` whole, meta-commands and variables
    included, a failing statement not stopping it; None for one statement."""

    session: int
    sql: str
    rule: str
    copy_rows: tuple[tuple[str | None, ...], ...] | None = None
    database: str | None = None
    script: str | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"session": self.session, "sql": self.sql, "rule": self.rule}
        if self.copy_rows is not None:
            d["copy_rows"] = [list(r) for r in self.copy_rows]
        if self.database is not None:
            d["database"] = self.database
        if self.script is not None:
            d["script"] = self.script
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Step:
        rows = d.get("copy_rows")
        db, script = d.get("database"), d.get("script")
        return cls(int(d["session"]), str(d["sql"]), str(d.get("rule", "sql")),
                   tuple(tuple(r) for r in rows) if rows is not None else None,
                   str(db) if db is not None else None, str(script) if script is not None else None)


@dataclass(frozen=True)
class Workload:
    settings: Settings
    steps: tuple[Step, ...]
    seed: int | None = None
    sessions: int = 1
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "sessions": self.sessions,
            "settings": asdict(self.settings),
            "steps": [s.to_json() for s in self.steps],
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Workload:
        return cls(
            settings=Settings(**d["settings"]),
            steps=tuple(Step.from_json(s) for s in d["steps"]),
            seed=d.get("seed"),
            sessions=int(d.get("sessions", 1)),
        )

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1)

    @classmethod
    def loads(cls, text: str) -> Workload:
        return cls.from_json(json.loads(text))

    def with_steps(self, steps: tuple[Step, ...] | list[Step]) -> Workload:
        return Workload(self.settings, tuple(steps), self.seed, self.sessions)

    def rules_used(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.steps:
            out[s.rule] = out.get(s.rule, 0) + 1
        return out
