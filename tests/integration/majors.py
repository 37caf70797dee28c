"""The PostgreSQL majors the integration tests run on (``from majors import ...``, as
``redocases``): 15 is the system's, 16-18 come from ``redodiff pg install``."""

from __future__ import annotations

import pytest

from oracles.pgbin import PgInstall, SetupError, installed

MAJORS = (15, 16, 17, 18)


def pg_of(major: int) -> PgInstall:
    """PostgreSQL ``major``; a test of a major that is not installed skips, naming the
    command that installs it (``./dev setup`` installs them all, so CI runs them)."""
    try:
        return installed(major)
    except SetupError as e:
        pytest.skip(str(e))
