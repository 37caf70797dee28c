"""Which engines a run uses, built once and shared across iterations."""

from __future__ import annotations

import contextlib
import logging
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from generators.workload import Settings
from harness.reports.schema import EngineErrorKind
from pyredo.engine import RedoEngine
from pyredo.rmgrlist import PG15, RmgrTable, table_for
from pyredo.wal.record import BufferTag, DecodedXLogRecord

if TYPE_CHECKING:
    from harness.selftest.mutants import MutantStats
    from oracles.neon import NeonConfig
    from oracles.pgbin import PgInstall

log = logging.getLogger("redodiff.engines")

ENGINE_NAMES = ("pyredo", "walredo", "neon")


class Engine(Protocol):
    """What every redo engine offers: pyredo's RedoEngine and the wal-redo client."""

    name: str

    def reconstruct(self, tag: BufferTag, base_page: bytes | None,
                    records: Iterable[DecodedXLogRecord]) -> bytes: ...


@runtime_checkable
class SendsAhead(Protocol):
    """An engine that takes requests before their answers are needed (a wal-redo
    server: ``oracles.walredo.WalRedoProcess.submit``, then ``flush``)."""

    name: str

    def submit(self, tag: BufferTag, base_page: bytes | None,
               records: Iterable[DecodedXLogRecord]) -> Any: ...

    def flush(self) -> None: ...


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
    mutant: str | None = None  # pyredo runs with this mutant's table (None: the clean table of the major)
    pg: PgInstall | None = None  # the PostgreSQL the engines mirror and the wal-redo server runs (None: default)
    neon: NeonConfig | None = None  # Neon's postgres --wal-redo (engine "neon"; oracles.neon)
    _neon: Any = field(default=None, init=False, repr=False, compare=False)
    _table: RmgrTable | None = field(default=None, init=False, repr=False, compare=False)
    _mutant_stats: MutantStats | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for n in self.names:
            if n not in ENGINE_NAMES:
                raise ValueError(f"unknown engine {n!r} (choose from {', '.join(ENGINE_NAMES)})")
        if not self.names:
            raise ValueError("at least one engine is needed")
        if self.mutant is not None:
            from harness.selftest.catalog import get

            try:
                m = get(self.mutant)
            except KeyError as e:
                raise ValueError(e.args[0]) from None
            if not m.applies_to(self.wal_major):
                raise ValueError(f"mutant {m.name} mutates the PostgreSQL {', '.join(map(str, m.majors))} "
                                 f"redo; this run is PostgreSQL {self.wal_major}")
        if "neon" in self.names and self.neon is None:
            from oracles.neon import NeonConfig

            self.neon = NeonConfig.default()  # the shared reference binary, when present
            if self.neon is None:
                raise ValueError("--engine neon needs Neon's postgres binary: --neon-postgres PATH")
        self.check_versions()

    @property
    def wal_major(self) -> int:
        """The major whose WAL the run replays (its PostgreSQL's)."""
        return self.pg.major if self.pg is not None else PG15.major

    def check_versions(self) -> None:
        """Refuse an external wal-redo server of another major than the WAL's: each
        major has its own WAL format (e.g. Heap2/PRUNE in 17), and a server fed
        another's answers wrong pages or dies."""
        servers: list[tuple[str, int | None]] = []
        if "neon" in self.names and self.neon is not None:
            servers.append((f"Neon's {self.neon.postgres}", self.neon.major()))
        if self.uses_walredo and self.walredo_cmd and not self.walredo_docker:
            from oracles.walredo_probe import binary_major

            servers.append((f"--walredo-cmd {self.walredo_cmd!r}", binary_major(shlex.split(self.walredo_cmd))))
        for what, major in servers:
            if major is None:
                log.warning("cannot tell which PostgreSQL major %s replays: not checked against the "
                            "WAL's (PostgreSQL %d)", what, self.wal_major)
            elif major != self.wal_major:
                raise ValueError(f"{what} replays PostgreSQL {major} WAL; this run's WAL is PostgreSQL "
                                 f"{self.wal_major}'s (choose --pg {major}, or a server built for "
                                 f"{self.wal_major})")

    def __getstate__(self) -> dict[str, Any]:
        """Pickled for worker processes without what lives in this process: the
        wal-redo server and the built (mutated) table; the worker rebuilds them."""
        state = dict(self.__dict__)
        state.update(_walredo=None, _neon=None, _table=None, _mutant_stats=None)
        return state

    def pyredo_table(self) -> RmgrTable:
        """The table pyredo redoes with: the WAL's major's, with the mutant's routine
        if any (built once per EngineSet; its probe counts into ``mutant_stats``)."""
        if self.mutant is None:
            return table_for(self.wal_major)
        if self._table is None:
            from harness.selftest.catalog import get
            from harness.selftest.mutants import MutantStats

            stats = MutantStats(self.mutant)
            self._table = get(self.mutant).table(table_for(self.wal_major), stats)
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

    def neon_engine(self) -> Any:
        """Neon's wal-redo process (oracles.neon), started on first use."""
        if self._neon is None:
            from oracles.neon import neon_walredo

            assert self.neon is not None
            self._neon = neon_walredo(self.neon, timeout=self.walredo_timeout)
        return self._neon

    def fresh(self, names: tuple[str, ...] | None = None) -> EngineSet:
        """A new set of the same configuration (wal-redo command, Docker image, tag layout,
        timeout, mutant, PostgreSQL, Neon binary) with no server started yet; ``names``
        replaces the engine names."""
        return EngineSet(names=names or self.names, walredo_cmd=self.walredo_cmd,
                         walredo_docker=self.walredo_docker, tag_layout=self.tag_layout,
                         walredo_timeout=self.walredo_timeout, mutant=self.mutant, pg=self.pg, neon=self.neon)

    def for_settings(self, settings: Settings) -> list[Engine]:
        """Engines for a workload. pyredo mirrors XLogHintBitIsNeeded() of the
        server it must agree with: the primary alone, or the wal-redo server
        (whose scratch cluster never logs hint bits) when both run."""
        from oracles.pgbin import server_version_num

        hints = settings.hint_bits_logged and not (self.uses_walredo or "neon" in self.names)
        version = self.pg.version_num if self.pg is not None else server_version_num()
        out: list[Engine] = []
        for n in self.names:
            out.append(RedoEngine(self.pyredo_table(), hint_bits_logged=hints, server_version_num=version)
                       if n == "pyredo" else self.neon_engine() if n == "neon" else self.walredo())
        return out

    def close(self) -> None:
        for proc in (self._walredo, self._neon):
            if proc is not None:
                with contextlib.suppress(Exception):
                    proc.close()
        self._walredo = self._neon = None


def is_infrastructure(exc: BaseException) -> bool:
    """A dead, hung or unstartable wal-redo server is infrastructure, not a finding.
    A server that exited with an error while redoing a record IS a finding.
    (``harness.reports.schema.EngineErrorKind.of`` classifies.)"""
    return EngineErrorKind.of(exc) is EngineErrorKind.INFRASTRUCTURE


def is_refusal(exc: BaseException) -> bool:
    """The engine declined a request it cannot answer (e.g. no base page)."""
    return EngineErrorKind.of(exc) is EngineErrorKind.REFUSAL
