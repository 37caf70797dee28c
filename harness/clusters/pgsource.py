"""PostgreSQL's C source, as the distribution ships it: ``source_tree(major)``.

The source package ``postgresql-<major>`` comes from Debian with Debian's own tools —
``apt-get source --download-only`` through a private apt configuration (a ``deb-src``
line for the suite that carries the major, under the cache; the machine's apt sources
and package lists are never touched) and ``dpkg-source -x``, which unpacks the upstream
tarball and applies Debian's patches. The tree is what Debian builds its packages
from, so a build of it (``harness.clusters.pgbuild``) matches the system's PostgreSQL
15 where redo is concerned.

Suites: 15 from bookworm (15.18 there today, while the installed binary package is the
security update 15.20: the security mirror serves no source here), 17 from trixie, 18 from
forky — all from the Debian mirror the machine's own apt uses. On the reference machine 15
and 18 unpack; trixie's postgresql-17 source answers 404 from the mirror (a SetupError
naming the failed fetch). 16 is in no Debian suite the mirror carries.

Trees live in ``<cache>/source/<major>/postgresql-<major>`` (``cache_root()``), unpacked
once (an unpack goes to a temporary directory and is renamed into place, under a lock)
and then only read: builds copy them, mutants are applied to the copies.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness.clusters.pginstall import (
    DEBIAN_KEYRING,
    _apt_options,
    _chmod_tree,
    _locked,
    _open_up,
    _run,
    machine_mirrors,
)
from oracles.pgbin import SetupError, cache_dir

__all__ = ["SUITES", "cache_root", "source_tree", "source_version"]

Log = Callable[[str], None]

# major -> the Debian suites whose deb-src lines the private apt gets (apt takes the newest)
SUITES: dict[int, tuple[str, ...]] = {
    15: ("bookworm",),
    17: ("trixie",),
    18: ("forky",),
}
MARKER = "redodiff-source.json"


def _quiet(msg: str) -> None:
    pass


def cache_root() -> Path:
    """``<cache>/source``: next to ``redodiff pg install``'s cache (/var/cache/redodiff as root)."""
    return cache_dir().parent / "source"


def _deb_src_lines(suites: tuple[str, ...]) -> list[str]:
    """One deb-src line per suite, from the mirror the machine uses for Debian (its
    security suites from the security mirror)."""
    mirrors = machine_mirrors()
    main = next((u for s, u in mirrors.items() if s.startswith("bookworm") and "security" not in s), None)
    security = next((u for s, u in mirrors.items() if s.endswith("-security")), None)
    if main is None:
        raise SetupError("no Debian (bookworm) mirror in the machine's apt sources to fetch PostgreSQL's source from")
    lines = []
    for suite in suites:
        uri = (security or main) if suite.endswith("-security") else main
        if suite.endswith("-security") and security is None:
            continue
        lines.append(f"deb-src [signed-by={DEBIAN_KEYRING}] {uri} {suite} main\n")
    return lines


def _apt_source(major: int, dest: Path, apt: Path, log: Log) -> Path:
    """``apt-get source --download-only postgresql-<major>`` into ``dest``; the .dsc."""
    for d in ("sources.list.d", "preferences.d", "state/lists/partial", "cache/archives/partial"):
        (apt / d).mkdir(parents=True, exist_ok=True)
    (apt / "sources.list").write_text("".join(_deb_src_lines(SUITES[major])))
    opts = _apt_options(apt)
    lists = apt / "state" / "lists"
    stale = not any(lists.glob("*Sources*")) or \
        time.time() - max(p.stat().st_mtime for p in lists.glob("*")) > 3600
    if stale:
        log(f"apt-get update (private: deb-src {' '.join(SUITES[major])})")
        _run(["apt-get", "-q", *opts, "update"], "apt-get update (private deb-src)")
    log(f"apt-get source --download-only postgresql-{major}")
    _run(["apt-get", "-q", *opts, "source", "--download-only", f"postgresql-{major}"],
         f"apt-get source postgresql-{major}", cwd=dest)
    dscs = sorted(dest.glob(f"postgresql-{major}_*.dsc"))
    if len(dscs) != 1:
        raise SetupError(f"apt-get source postgresql-{major} gave {[p.name for p in dest.iterdir()]}")
    return dscs[0]


def source_version(tree: Path) -> str | None:
    """The Debian version of an unpacked tree (``15.20-0+deb12u1``), or None when it is not one of ours."""
    try:
        d = json.loads((tree / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return str(d.get("version")) if isinstance(d, dict) else None


def source_tree(major: int, *, cache: Path | None = None, log: Log = _quiet) -> Path:
    """The unpacked source of PostgreSQL ``major`` (Debian's ``postgresql-<major>``
    source package with its patches applied), fetched and unpacked on the first call,
    then returned as is. Read it, or copy it: it is shared."""
    if major not in SUITES:
        raise SetupError(f"no Debian source for PostgreSQL {major} (have: {', '.join(map(str, sorted(SUITES)))})")
    root = (cache or cache_root()) / str(major)
    tree = root / f"postgresql-{major}"
    if source_version(tree) is not None:
        return tree
    with _locked(root):
        if source_version(tree) is not None:
            return tree
        work = Path(tempfile.mkdtemp(prefix=".tmp-src-", dir=root))
        try:
            dsc = _apt_source(major, work, root / ".apt", log)
            version = dsc.stem.split("_", 1)[1]
            log(f"dpkg-source -x {dsc.name}")
            unpacked = work / "tree"
            if shutil.which("dpkg-source") is None:
                raise SetupError("dpkg-source not found: apt-get install dpkg-dev")
            _run(["dpkg-source", "--no-check", "-x", str(dsc), str(unpacked)], "dpkg-source -x", cwd=work)
            if not (unpacked / "src" / "include" / "access" / "xlogrecord.h").exists():
                raise SetupError(f"{dsc.name} unpacked without src/include/access/xlogrecord.h")
            (unpacked / MARKER).write_text(json.dumps(
                {"package": f"postgresql-{major}", "version": version, "suites": list(SUITES[major]),
                 "unpacked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2) + "\n")
            _chmod_tree(unpacked)
            if tree.exists():
                shutil.rmtree(tree)
            os.replace(unpacked, tree)
            _open_up(tree)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    log(f"PostgreSQL {major} source: {tree} ({source_version(tree)})")
    return tree
