"""Which engines a run uses, built once and shared across iterations."""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from generators.workload import Settings
from harness.reports.schema import EngineErrorKind
from pyredo.engine import RedoEngine
from pyredo.rmgrlist import PG15, RmgrTable, table_for
from pyredo.wal.record import BufferTag, DecodedXLogRecord

if TYPE_CHECKING:
    from harness.selftest.mutants import MutantStats
    from oracles.pgbin import PgInstall

ENGINE_NAMES = ("pyredo", "walredo")


class Engine(Protocol):
    """What every redo engine offers: pyredo's RedoEngine and the wal-redo client."""

    name: str

    def reconstruct(self, tag: BufferTag, base_page: bytes | None,
                    records: Iterable[DecodedXLogRecord]) -> bytes: ...


@dataclass
class EngineSet:
    """Engine names plus how to reach an external wal-redo server, and the
    pyredo mutant to run with (a testing aid, by name: a worker or a fresh
    process rebuilds the mutated table from it; see harness.selftest.mutants)."""

    names: tuple[str, ...] = ("pyredo",)
    walredo_cmd: str | None = None
    walredo_docker: str | None = None  # run the wal-redo server (or walredo_cmd) in this image
    tag_layout: str = "neon"
    walredo_timeout: float = 20.0
    _walredo: Any = field(default=None, repr=False)
    mutant: str | None = None  # pyredo runs with this mutant's table (None: the clean PG15 table)
    pg: PgInstall | None = None  # the PostgreSQL the engines mirror and the wal-redo server runs (None: default)
    _table: RmgrTable | None = field(default=None, init=False, repr=False, compare=False)
    _mutant_stats: MutantStats | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for n in self.names:
            if n not in ENGINE_NAMES:
                raise ValueError(f"unknown engine {n!r} (choose from {', '.join(ENGINE_NAMES)})")
        if not self.names:
            raise ValueError("at least one engine is needed")
        if self.mutant is not None and self.pg is not None and self.pg.major != PG15.major:
            raise ValueError(f"mutants are PostgreSQL 15 redo tables; this run is PostgreSQL {self.pg.major}")
        if self.mutant is not None:
            from harness.selftest.catalog import get

            try:
                get(self.mutant)
            except KeyError as e:
                raise ValueError(e.args[0]) from None

    def __getstate__(self) -> dict[str, Any]:
        """Pickled for worker processes without what lives in this process: the
        wal-redo server and the built (mutated) table; the worker rebuilds them."""
        state = dict(self.__dict__)
        state.update(_walredo=None, _table=None, _mutant_stats=None)
        return state

    def pyredo_table(self) -> RmgrTable:
        """The table pyredo redoes with: PG15, or PG15 with the mutant's routine
        (built once per EngineSet; its probe counts into ``mutant_stats``)."""
        if self.mutant is None:
            return PG15 if self.pg is None else table_for(self.pg.major)
        if self._table is None:
            from harness.selftest.catalog import get
            from harness.selftest.mutants import MutantStats

            stats = MutantStats(self.mutant)
            self._table = get(self.mutant).table(PG15, stats)
            self._mutant_stats = stats
        return self._table

    @property
    def mutant_stats(self) -> MutantStats | None:
        """The mutant's probe counts, None without a mutant."""
        if self.mutant is None:
            return None
        self.pyredo_table()
        return self._mutant_stats

    @property
    def uses_walredo(self) -> bool:
        return "walredo" in self.names

    def walredo(self) -> Any:
        if self._walredo is None:
            from oracles.walredo import WalRedoProcess

            kwargs: dict[str, Any] = {"tag_layout": self.tag_layout, "timeout": self.walredo_timeout}
            if self.walredo_cmd:
                kwargs["cmd"] = shlex.split(self.walredo_cmd)
            elif self.pg is not None and not self.walredo_docker:
                kwargs["pg"] = self.pg
            if self.walredo_docker:
                from harness.clusters.docker_walredo import DockerWalRedo

                self._walredo = DockerWalRedo(self.walredo_docker, **kwargs)
            else:
                self._walredo = WalRedoProcess(**kwargs)
        return self._walredo

    def for_settings(self, settings: Settings) -> list[Engine]:
        """Engines for a workload. pyredo mirrors XLogHintBitIsNeeded() of the
        server it must agree with: the primary alone, or the wal-redo server
        (whose scratch cluster never logs hint bits) when both run."""
        from oracles.pgbin import server_version_num

        hints = settings.hint_bits_logged and not self.uses_walredo
        version = self.pg.version_num if self.pg is not None else server_version_num()
        out: list[Engine] = []
        for n in self.names:
            out.append(RedoEngine(self.pyredo_table(), hint_bits_logged=hints, server_version_num=version)
                       if n == "pyredo" else self.walredo())
        return out

    def close(self) -> None:
        if self._walredo is not None:
            with contextlib.suppress(Exception):
                self._walredo.close()
            self._walredo = None


def is_infrastructure(exc: BaseException) -> bool:
    """A dead, hung or unstartable wal-redo server is infrastructure, not a finding.
    A server that exited with an error while redoing a record IS a finding.
    (``harness.reports.schema.EngineErrorKind.of`` classifies.)"""
    return EngineErrorKind.of(exc) is EngineErrorKind.INFRASTRUCTURE


def is_refusal(exc: BaseException) -> bool:
    """The engine declined a request it cannot answer (e.g. no base page)."""
    return EngineErrorKind.of(exc) is EngineErrorKind.REFUSAL
