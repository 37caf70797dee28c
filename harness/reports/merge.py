"""Merge fuzz report files (shards of one nightly run) into one report.

The merge itself is ``FuzzReport.merged`` (harness.reports.schema); this module
reads the files."""

from __future__ import annotations

import json
from pathlib import Path

from harness.reports.schema import FuzzReport, MergedReport, load_run_report


def read_run_report(path: Path) -> FuzzReport | MergedReport:
    """A fuzz report file, or an earlier merge of them."""
    return load_run_report(json.loads(Path(path).read_text()))


def merge_files(paths: list[Path]) -> MergedReport:
    """The reports in ``paths`` merged, in that order; the result names them."""
    return FuzzReport.merged([read_run_report(p) for p in paths], [str(p) for p in paths])
