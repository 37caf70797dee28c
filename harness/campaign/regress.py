"""PostgreSQL's regression suite on a cluster: where its files come from, and how one
file runs (``generators.regress`` builds the workload; ``execute`` runs its scripts here).

The files are those of the server's own major: ``sql/``, ``data/``, ``expected/`` (and
``input/``, ``output/`` where a major has them) and the schedules of ``src/test/regress``,
copied from the major's source tree (``harness.clusters.pgsource``: Debian's source
package) or from a directory the user names (``--regress-dir``) into
``/var/cache/redodiff/regress/<major>`` as root (readable by the server user, whose
server-side ``COPY`` reads the data files) or ``~/.cache/redodiff/regress/<major>`` (next
to ``redodiff pg install``'s cache) -- once: the copy is renamed into place when whole.

A file runs as pg_regress runs it: ``psql -X -q`` reading it from stdin, errors not
stopping it, with pg_regress's environment (``PG_ABS_SRCDIR``, ``PG_ABS_BUILDDIR``,
``PG_LIBDIR``, ``PG_DLSUFFIX``, ``PGTZ``, ``PGDATESTYLE``). Its C library, regress.so,
is compiled once from the suite's ``regress.c`` against the server's headers (as
``make check`` builds it); where it cannot be (no compiler or headers, a suite copied
without it), the statements that load it fail one by one, and are counted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generators import generate
from generators.choose import RandomChooser
from generators.regress import regress_workload
from generators.rules import draw_settings
from generators.workload import Settings, Step, Workload
from harness.interrupts import Interrupts
from oracles.pgbin import SetupError, as_server_user, cache_dir, give_to_server_user

log = logging.getLogger(__name__)

__all__ = ["ScriptResult", "cache_root", "pg_regress_workload", "regress_dir", "regress_library", "run_script"]

_PARTS = ("sql", "data", "expected", "input", "output")
_FILES = ("parallel_schedule", "serial_schedule", "resultmap", "regress.c")
_LIBRARY = "regress.so"  # built from regress.c into <suite>/lib: PG_LIBDIR of the suite's files
_COMPLETE = ".complete"  # written last: the copy is whole
SCRIPT_TIMEOUT = 900.0  # seconds one file may take (the slowest take a few tens)
# an error as psql prints it (reading a file: "psql:FILE:LINE: " first; reading stdin, as
# pg_regress runs it and as the expected output shows it: not)
_ERROR = re.compile(r"^(?:psql:[^:\n]*:\d+: )?(ERROR|FATAL|PANIC):  (.*)$", re.M)


def cache_root() -> Path:
    """``<cache>/regress``: next to ``redodiff pg install``'s cache (/var/cache/redodiff as root)."""
    return cache_dir().parent / "regress"


def _is_suite(d: Path) -> bool:
    return (d / "parallel_schedule").is_file() and (d / "sql").is_dir()


def regress_dir(major: int, source: Path | None = None, *, cache: Path | None = None) -> Path:
    """The regression files of ``major`` in the cache, copied there the first time from
    ``source`` (a ``src/test/regress`` directory, or a source tree holding one) or from
    the major's source package. A SetupError says what is missing and what to give."""
    dest = (cache or cache_root()) / str(major)
    if source is None and (dest / _COMPLETE).exists():
        return dest
    src = _suite_in(source) if source is not None else _suite_in(_source_tree(major))
    if (dest / _COMPLETE).exists():
        shutil.rmtree(dest)  # a new --regress-dir replaces the cached copy
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{major}.", dir=dest.parent))
    try:
        for part in _PARTS:
            if (src / part).is_dir():
                shutil.copytree(src / part, tmp / part)
        for name in _FILES:
            if (src / name).is_file():
                shutil.copy2(src / name, tmp / name)
        (tmp / _COMPLETE).write_text(f"{src}\n")
        for p in [tmp, *tmp.rglob("*")]:  # the server user reads the data files (COPY FROM a file)
            p.chmod(0o755 if p.is_dir() else 0o644)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _suite_in(source: Path) -> Path:
    for d in (source, source / "src" / "test" / "regress"):
        if _is_suite(d):
            return d
    raise SetupError(f"{source} is not a PostgreSQL regression suite: no parallel_schedule and sql/ "
                     "in it or in its src/test/regress")


def _source_tree(major: int) -> Path:
    """The major's source tree (harness.clusters.pgsource), or a SetupError naming --regress-dir."""
    from harness.clusters.pgsource import source_tree

    try:
        return source_tree(major)
    except SetupError as e:
        why = str(e)
    raise SetupError(f"no regression suite of PostgreSQL {major}: {why}; give --regress-dir DIR "
                     f"(the src/test/regress directory of a {major}.x source tree)")


@dataclass
class ScriptResult:
    """What psql said about one file: its statement errors (count and the first few), and
    how many its expected output has (``expected/NAME.out`` or the closest of its
    alternatives; None without one): the suite fails statements on purpose."""

    errors: int = 0
    first: tuple[str, ...] = ()
    returncode: int = 0
    timed_out: bool = False
    expected_errors: int | None = None

    @property
    def connection_lost(self) -> bool:
        """psql lost its server mid-file (psql exits 2 then): a crash, not a statement error."""
        return self.returncode == 2

    @property
    def as_expected(self) -> bool:
        """The file ran as pg_regress expects it to, as far as errors tell."""
        return not (self.timed_out or self.returncode) and self.errors == (self.expected_errors or 0)

    def summary(self) -> str:
        if self.timed_out:
            return f"psql timed out after {SCRIPT_TIMEOUT:.0f}s"
        head = f"{self.errors} statement error(s)" + (f", psql exit {self.returncode}" if self.returncode else "")
        if self.expected_errors is not None:
            head += f" ({self.expected_errors} expected)"
        return f"{head}; first: {self.first[0]}" if self.first else head


def expected_errors(suite: Path, name: str, seen: int) -> int | None:
    """The number of errors the expected output of test ``name`` shows: of ``NAME.out``
    and its alternatives ``NAME_N.out``, the one closest to ``seen``."""
    outs = [p for p in sorted((suite / "expected").glob(f"{name}*.out"))
            if re.fullmatch(rf"{re.escape(name)}(_\d+)?\.out", p.name)]
    counts = [len(_ERROR.findall(p.read_text(errors="replace"))) for p in outs]
    return min(counts, key=lambda n: abs(n - seen)) if counts else None


_UNBUILDABLE: set[Path] = set()  # suites whose regress.so could not be built (warned once)


def regress_library(suite: Path, pg: Any) -> Path:
    """``suite/lib``, where regress.so is (built now from the suite's regress.c against
    ``pg``'s server headers if it is not there yet). A library that cannot be built is
    logged, not fatal: the statements that need it fail and are counted."""
    lib = suite / "lib"
    if (lib / _LIBRARY).exists() or suite in _UNBUILDABLE:
        return lib
    _UNBUILDABLE.add(suite)  # said once per process; removed again when the build succeeds
    source = _library_source(suite)
    if source is None:
        log.warning("no regress.c with the regression suite in %s: regress.so is not built, the "
                    "statements that load it fail", suite)
        return lib
    tmp = lib / f".{_LIBRARY}.{os.getpid()}"
    try:
        incdir = pg.includedir_server or Path(subprocess.run(
            [pg.program("pg_config"), "--includedir-server"], capture_output=True, text=True,
            check=True).stdout.strip())
        lib.mkdir(exist_ok=True)
        lib.chmod(0o755)
        subprocess.run(["cc", "-O2", "-fPIC", "-shared", "-Werror=implicit-function-declaration", f"-I{incdir}",
                        str(source), "-o", str(tmp)],
                       capture_output=True, text=True, check=True)
        tmp.chmod(0o755)
        os.replace(tmp, lib / _LIBRARY)  # whole or not at all: workers may race to build it
        _UNBUILDABLE.discard(suite)
    except (OSError, SetupError, subprocess.CalledProcessError) as e:
        tmp.unlink(missing_ok=True)
        detail = getattr(e, "stderr", None) or e
        log.warning("could not build %s for PostgreSQL %s from %s: %s", _LIBRARY, pg.version, source,
                    str(detail).strip()[-500:])
    return lib


def _library_source(suite: Path) -> Path | None:
    """The suite's regress.c: copied with it, or (a copy made before it was) in the tree
    the copy was made from, which ``.complete`` names."""
    if (suite / "regress.c").is_file():
        return suite / "regress.c"
    with contextlib.suppress(OSError):
        origin = Path((suite / _COMPLETE).read_text().strip()) / "regress.c"
        if origin.is_file():
            return origin
    return None


def run_script(cluster: Any, step: Step, settings: Settings, suite: Path,
               interrupts: Interrupts | None = None, timeout: float = SCRIPT_TIMEOUT) -> ScriptResult:
    """Run a script step with psql on ``cluster`` (its database, as its superuser), as
    pg_regress runs a test file; ``suite``: the major's regression files. A stop request
    ends psql (the cluster's shutdown ends its backend)."""
    interrupts = interrupts if interrupts is not None else Interrupts()
    build = Path(tempfile.mkdtemp(prefix="redodiff-regress-"))
    try:
        (build / "results").mkdir()
        for d in (build, build / "results"):
            d.chmod(0o755)
            give_to_server_user(d)
        env = {"PG_ABS_SRCDIR": str(suite), "PG_ABS_BUILDDIR": str(build), "PG_LIBDIR": str(regress_library(suite, cluster.pg)),
               "PG_DLSUFFIX": ".so", "PGTZ": "America/Los_Angeles", "PGDATESTYLE": "Postgres, MDY",
               "PGAPPNAME": "pg_regress", "LC_MESSAGES": "C", "LANG": "C", "HOME": str(build)}
        if settings.wal_consistency_checking:
            env["PGOPTIONS"] = f"-c wal_consistency_checking={settings.wal_consistency_checking}"
        argv = ["env", *[f"{k}={v}" for k, v in env.items()],
                cluster.pg.program("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=0",
                "-h", str(cluster.sockdir), "-p", str(cluster.port), "-U", "postgres",
                "-d", step.database or "postgres"]
        proc = subprocess.Popen(as_server_user(argv), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, cwd=build, start_new_session=True)
        res = ScriptResult()
        with interrupts.cancelling(lambda: _end(proc)):
            try:
                _, err = proc.communicate(step.sql.encode("utf-8", "surrogateescape"), timeout=timeout)
            except subprocess.TimeoutExpired:
                _end(proc)
                _, err = proc.communicate()
                res.timed_out = True
        interrupts.check()
        text = err.decode(errors="replace")
        found = _ERROR.findall(text)
        res.errors, res.returncode = len(found), proc.returncode
        res.first = tuple(f"{kind}: {msg}" for kind, msg in found[:3])
        if step.script is not None:
            res.expected_errors = expected_errors(suite, step.script, res.errors)
        return res
    finally:
        shutil.rmtree(build, ignore_errors=True)


def _end(proc: subprocess.Popen[bytes]) -> None:
    """psql and what it runs (its own process group) are told to stop."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)


def pg_regress_workload(major: int, seed: int, profile: str = "ci", *, interleave: bool = False) -> Workload:
    """The workload of iteration seed ``seed`` of ``fuzz --workload pg-regress``: the
    suite of ``major`` under settings drawn from the seed, or (``interleave``) its files
    interleaved with the generated workload of the seed, under that workload's settings."""
    suite = regress_dir(major)
    if interleave:
        gen = generate(seed, profile)
        return regress_workload(suite, gen.settings, seed=seed, generated=gen, chooser=RandomChooser(~seed),
                                major=major)
    return regress_workload(suite, draw_settings(RandomChooser(seed)), seed=seed, major=major)
