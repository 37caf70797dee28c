"""``python -m harness.robustness.hostile make-fixture DIR``: (re)make the small test fixture."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from harness.robustness.hostile.corpus import FIXTURE_STEPS, make_real_wal


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m harness.robustness.hostile make-fixture DIR``: (re)make the small test fixture."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 2 and args[0] == "make-fixture":
        make_real_wal(Path(args[1]), FIXTURE_STEPS, single_segment=True)
        return
    raise SystemExit("usage: python -m harness.robustness.hostile make-fixture DIR")


if __name__ == "__main__":
    main()
