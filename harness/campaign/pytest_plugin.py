"""pytest plugin: ``pytest --redodiff-corpus DIR`` adds one test per saved case
(bundle or seed) of a redodiff corpus, each passing when the case now agrees —
so a project can put the regression gate into its own test suite."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("redodiff")
    group.addoption("--redodiff-corpus", metavar="DIR", help="Run every saved case of this redodiff corpus as a test.")
    group.addoption("--redodiff-engine", action="append", default=[], choices=["pyredo", "walredo"],
                    help="Engine(s) for --redodiff-corpus (default: pyredo).")


class RedodiffCaseFailed(Exception):
    pass


class RedodiffCase(pytest.Item):
    def __init__(self, *, case: Any, engines: tuple[str, ...], **kw: Any) -> None:
        super().__init__(**kw)
        self.case = case
        self.engines = engines

    def runtest(self) -> None:
        from harness.campaign.gate import run_case
        from harness.verify.engines import EngineSet

        outcome = run_case(self.case, EngineSet(names=self.engines))
        if not outcome.passed:
            raise RedodiffCaseFailed(outcome.detail)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, RedodiffCaseFailed):
            return f"{self.case.name} still diverges: {excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, None, str]:
        return self.case.path, None, f"redodiff {self.case.name}"


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    corpus = config.getoption("--redodiff-corpus")
    if not corpus:
        return
    from harness.campaign.gate import saved_cases

    engines = tuple(config.getoption("--redodiff-engine") or ["pyredo"])
    cases: Iterable[Any] = saved_cases(Path(corpus))
    for case in cases:
        items.append(RedodiffCase.from_parent(session, name=f"redodiff[{case.name}]", case=case, engines=engines))
