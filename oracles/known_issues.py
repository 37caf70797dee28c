"""Known PostgreSQL issues: signatures of divergences PostgreSQL itself causes.

When every engine agrees and the primary differs, the WAL does not carry what
the primary has. Some such cases are known PostgreSQL behaviours (a WAL-logging
bug reported upstream); ``known_issues.toml`` next to this module lists them,
with the record, fork, page kind and bytes that make up their signature, the
releases affected and the reference. ``KnownIssues.match`` names the entry a
divergence matches, or None: a new signature is always a finding.

Pure apart from reading the data file once (``KnownIssues.load``).
"""

from __future__ import annotations

import operator
import re
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyredo.rmgrlist import PG15
from pyredo.wal.record import (
    FORK_NAMES,
    FSM_FORKNUM,
    VISIBILITYMAP_FORKNUM,
    BufferTag,
    DecodedXLogRecord,
)

DATA_FILE = Path(__file__).with_name("known_issues.toml")
_KEYS = {"id", "title", "kind", "record", "fork", "page", "bytes", "versions", "where", "reference"}
_OPS: dict[str, Callable[[int, int], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
_COMPARISON = re.compile(r"\s*(>=|<=|>|<|==)\s*(\d+)(?:\.(\d+))?\s*$")


class KnownIssuesError(ValueError):
    """The data file is malformed: names the entry and the key."""


def version_num(major: int, minor: int) -> int:
    """PG_VERSION_NUM of a release (15.18 -> 150018)."""
    return major * 10000 + minor


def page_kind(tag: BufferTag, owner: str | None) -> str:
    """What a signature's ``page`` names: the map forks by name, else the owning rmgr."""
    if tag.fork == VISIBILITYMAP_FORKNUM:
        return "visibility map"
    if tag.fork == FSM_FORKNUM:
        return "free space map"
    return owner or "unknown"


def _parse_versions(spec: str, where: str) -> list[tuple[Callable[[int, int], bool], int]]:
    out = []
    for part in spec.split(","):
        m = _COMPARISON.match(part)
        if not m:
            raise KnownIssuesError(f"{where}: versions {spec!r}: expected comparisons like '>=15.0,<16'")
        out.append((_OPS[m.group(1)], version_num(int(m.group(2)), int(m.group(3) or 0))))
    return out


@dataclass(frozen=True)
class KnownIssue:
    """One entry of known_issues.toml (see its header for the keys)."""

    id: str
    title: str
    kind: str
    reference: str
    where: str = ""
    record: str | None = None
    fork: str | None = None
    page: str | None = None
    bytes: str | tuple[int, int] | None = None
    versions: str | None = None

    @classmethod
    def from_toml(cls, d: dict[str, Any], n: int) -> KnownIssue:
        where = f"{DATA_FILE.name} issue {n + 1} ({d.get('id', 'no id')})"
        unknown = set(d) - _KEYS
        if unknown:
            raise KnownIssuesError(f"{where}: unknown keys {sorted(unknown)}")
        for key in ("id", "title", "kind", "reference"):
            if not isinstance(d.get(key), str) or not d[key]:
                raise KnownIssuesError(f"{where}: {key} is required")
        if d.get("fork") is not None and d["fork"] not in FORK_NAMES:
            raise KnownIssuesError(f"{where}: fork {d['fork']!r} is none of {', '.join(FORK_NAMES)}")
        span = d.get("bytes")
        if isinstance(span, list):
            if len(span) != 2 or not all(isinstance(x, int) for x in span) or span[0] >= span[1]:
                raise KnownIssuesError(f"{where}: bytes must be \"image hole\" or [first, end)")
            span = (span[0], span[1])
        elif span is not None and span != "image hole":
            raise KnownIssuesError(f"{where}: bytes must be \"image hole\" or [first, end)")
        if span == "image hole" and not d.get("record"):
            raise KnownIssuesError(f"{where}: bytes = \"image hole\" needs the record whose image it is")
        if d.get("versions") is not None:
            _parse_versions(d["versions"], where)
        return cls(d["id"], d["title"], d["kind"], d["reference"], d.get("where", ""), d.get("record"),
                   d.get("fork"), d.get("page"), span, d.get("versions"))

    def affects(self, server_version_num: int | None) -> bool:
        """Does it affect this release? An unknown release counts as affected."""
        if self.versions is None or server_version_num is None:
            return True
        return all(op(server_version_num, v) for op, v in _parse_versions(self.versions, self.id))

    def matches(self, kind: str, tag: BufferTag, owner: str | None,
                records: Sequence[DecodedXLogRecord], offsets: Iterable[int],
                server_version_num: int | None = None) -> bool:
        """Does a divergence of ``kind`` on ``tag`` (page owned by ``owner``, changed
        by ``records``; ``offsets``: the bytes that differ after masking) carry this signature?"""
        diff = set(offsets)
        if kind != self.kind or not diff or not self.affects(server_version_num):
            return False
        if self.fork is not None and FORK_NAMES[tag.fork] != self.fork:
            return False
        if self.page is not None and page_kind(tag, owner) != self.page:
            return False
        if self.record is not None and not any(PG15.record_type(r) == self.record for r in records):
            return False
        if self.bytes == "image hole":
            hole = self._image_hole(tag, records)
            return hole is not None and all(hole[0] <= i < hole[1] for i in diff)
        if isinstance(self.bytes, tuple):
            return all(self.bytes[0] <= i < self.bytes[1] for i in diff)
        return True

    def _image_hole(self, tag: BufferTag, records: Sequence[DecodedXLogRecord]) -> tuple[int, int] | None:
        """[first, end) of the hole of the last ``record`` image that restored the page."""
        hole = None
        for r in records:
            blk = next((b for b in r.blocks.values() if b.tag == tag), None)
            if blk is None or not blk.apply_image:
                continue
            if PG15.record_type(r) == self.record and blk.hole_length > 0:
                hole = (blk.hole_offset, blk.hole_offset + blk.hole_length)
            else:
                hole = None  # a later image of the page replaced the one with the hole
        return hole


@dataclass(frozen=True)
class KnownIssues:
    """The known issues, for one PostgreSQL release (None: any)."""

    issues: tuple[KnownIssue, ...]
    server_version_num: int | None = None

    @classmethod
    def load(cls, server_version_num: int | None = None, path: Path = DATA_FILE) -> KnownIssues:
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise KnownIssuesError(f"cannot read {path}: {e}") from e
        issues = tuple(KnownIssue.from_toml(d, n) for n, d in enumerate(data.get("issue", [])))
        ids = [i.id for i in issues]
        if len(set(ids)) != len(ids):
            raise KnownIssuesError(f"{path}: duplicate ids in {ids}")
        return cls(issues, server_version_num)

    def get(self, issue_id: str) -> KnownIssue | None:
        return next((i for i in self.issues if i.id == issue_id), None)

    def match(self, kind: str, tag: BufferTag, owner: str | None, records: Sequence[DecodedXLogRecord],
              offsets: Iterable[int]) -> KnownIssue | None:
        """The first known issue whose signature the divergence carries, or None."""
        diff = set(offsets)
        for issue in self.issues:
            if issue.matches(kind, tag, owner, records, diff, self.server_version_num):
                return issue
        return None
