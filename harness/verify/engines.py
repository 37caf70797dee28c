"""Which engines a run uses, built once and shared across iterations."""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from generators.workload import Settings
from pyredo.engine import RedoEngine
from pyredo.wal.record import BufferTag, DecodedXLogRecord

ENGINE_NAMES = ("pyredo", "walredo")


class Engine(Protocol):
    """What every redo engine offers: pyredo's RedoEngine and the wal-redo client."""

    name: str

    def reconstruct(self, tag: BufferTag, base_page: bytes | None,
                    records: Iterable[DecodedXLogRecord]) -> bytes: ...


@dataclass
class EngineSet:
    """Engine names plus how to reach an external wal-redo server."""

    names: tuple[str, ...] = ("pyredo",)
    walredo_cmd: str | None = None
    walredo_docker: str | None = None  # run the wal-redo server (or walredo_cmd) in this image
    tag_layout: str = "neon"
    walredo_timeout: float = 20.0
    _walredo: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for n in self.names:
            if n not in ENGINE_NAMES:
                raise ValueError(f"unknown engine {n!r} (choose from {', '.join(ENGINE_NAMES)})")
        if not self.names:
            raise ValueError("at least one engine is needed")

    @property
    def uses_walredo(self) -> bool:
        return "walredo" in self.names

    def walredo(self) -> Any:
        if self._walredo is None:
            from oracles.walredo import WalRedoProcess

            kwargs: dict[str, Any] = {"tag_layout": self.tag_layout, "timeout": self.walredo_timeout}
            if self.walredo_cmd:
                kwargs["cmd"] = shlex.split(self.walredo_cmd)
            if self.walredo_docker:
                from harness.clusters.docker import DockerWalRedo

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
        version = server_version_num()
        out: list[Engine] = []
        for n in self.names:
            out.append(RedoEngine(hint_bits_logged=hints, server_version_num=version) if n == "pyredo"
                       else self.walredo())
        return out

    def close(self) -> None:
        if self._walredo is not None:
            with contextlib.suppress(Exception):
                self._walredo.close()
            self._walredo = None


def is_infrastructure(exc: BaseException) -> bool:
    """A dead, hung or unstartable wal-redo server is infrastructure, not a finding.
    A server that exited with an error while redoing a record IS a finding."""
    kind = getattr(exc, "kind", None)
    if kind in ("timeout", "spawn"):
        return True
    rc = getattr(exc, "returncode", None)
    return kind == "crash" and rc is not None and rc < 0


def is_refusal(exc: BaseException) -> bool:
    """The engine declined a request it cannot answer (e.g. no base page)."""
    return getattr(exc, "kind", None) == "refused"
