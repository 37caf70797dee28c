"""Build ``oracles/pg_walredo`` and prepare a stock PostgreSQL (15 to 18) to serve
the wal-redo protocol with it.

* ``ensure_built()`` runs ``make`` (PGXS) in the source directory when the
  library is missing or older than its sources, and returns the ``.so``; for
  another installation than the default (``pg=``, an ``oracles.pgbin.PgInstall``)
  it builds a copy of the sources in ``build/pg<VERSION_NUM>-<id>/`` against
  that major's PGXS and headers.
* ``StockWalRedoServer`` owns a scratch data directory (initdb'd once per
  Python process into a template, then copied: checksums off, wal_log_hints
  off, owned by the server user) and returns the command line that
  ``WalRedoProcess`` spawns::

      postgres --single -D <scratch>/data
          -c session_preload_libraries=<scratch>/pg_walredo.so
          -c pg_walredo.serve=on -c shared_buffers=2MB -c fsync=off postgres
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from oracles.pgbin import (
    SUPPORTED_MAJORS,
    PgInstall,
    SetupError,
    as_server_user,
    bindir,
    cache_dir,
    default_install,
    install_hint,
    program,
    server_user,
)

__all__ = [
    "SOURCE_DIR",
    "StockWalRedoServer",
    "ensure_built",
    "find_pg_config",
]

SOURCE_DIR = Path(__file__).resolve().parent / "pg_walredo"
LIBRARY_NAME = "pg_walredo.so"
_SOURCES = ("pg_walredo.c", "Makefile")
SERVER_DEV_PACKAGE = "postgresql-server-dev-15"
SUPPORTED_MAJOR = 15  # of the default installation (Debian 12's); others: SUPPORTED_MAJORS
TEMPLATE_FORMAT = 1  # of the kept scratch templates: a change to _initdb must bump it

# Settings of the scratch cluster. Checksums are off by initdb's default;
# wal_log_hints must stay off (the library refuses to serve otherwise).
SCRATCH_CONF = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "wal_log_hints": "off",
    "autovacuum": "off",
    "log_checkpoints": "off",
    "log_min_messages": "warning",
    "logging_collector": "off",
}


def find_pg_config() -> str:
    """$PG_CONFIG, else pg_config next to the server binaries, else PATH."""
    env = os.environ.get("PG_CONFIG")
    if env:
        return env
    try:
        cand = bindir() / "pg_config"
        if cand.exists():
            return str(cand)
    except SetupError:
        pass
    found = shutil.which("pg_config")
    if found:
        return found
    raise SetupError(
        "pg_config not found: set PG_CONFIG or install the PostgreSQL 15 server "
        f"development files (Debian/Ubuntu: apt-get install {SERVER_DEV_PACKAGE})"
    )


def _pg_config(pg_config: str, flag: str) -> str:
    res = subprocess.run([pg_config, flag], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SetupError(f"{pg_config} {flag} failed: {res.stderr.strip()}")
    return res.stdout.strip()


def _needs_build(so: Path, src_dir: Path) -> bool:
    if not so.exists():
        return True
    so_mtime = so.stat().st_mtime
    return any((src_dir / s).stat().st_mtime > so_mtime for s in _SOURCES)


_build_lock = threading.Lock()


def _build_dir(pg: PgInstall, source_dir: Path) -> Path:
    """Where the library for ``pg`` is built: a copy of the sources per installation."""
    ident = hashlib.sha256(str(pg.bindir).encode()).hexdigest()[:8]
    d = source_dir / "build" / f"pg{pg.version_num}-{ident}"
    d.mkdir(parents=True, exist_ok=True)
    for s in _SOURCES:
        src, dst = source_dir / s, d / s
        if not dst.exists() or dst.stat().st_mtime < src.stat().st_mtime:
            shutil.copy2(src, dst)
    return d


def ensure_built(*, pg_config: str | None = None, source_dir: Path = SOURCE_DIR,
                 pg: PgInstall | None = None) -> Path:
    """Build the library if it is missing or older than a source; return its path.
    ``pg``: build against that installation (its pg_config and PGXS, its
    ``includedir_server`` when the headers come from elsewhere).

    Raises SetupError (naming the package to install) when the server headers
    or the build tools are missing, or when the build fails.
    """
    make_vars: list[str] = []
    if pg is not None and pg_config is None and pg.bindir != _default_bindir():
        source_dir = _build_dir(pg, source_dir)
        pg_config = pg.program("pg_config")
        if pg.includedir_server is not None:
            make_vars.append(f"includedir_server={pg.includedir_server}")
    so = source_dir / LIBRARY_NAME
    if not _needs_build(so, source_dir):
        return so
    with _build_lock:
        pg_config = pg_config or find_pg_config()
        version = _pg_config(pg_config, "--version")
        m = re.search(r"(\d+)", version)
        if not m or int(m.group(1)) < min(SUPPORTED_MAJORS):
            raise SetupError(
                f"pg_walredo is written for PostgreSQL {min(SUPPORTED_MAJORS)} to {max(SUPPORTED_MAJORS)}; "
                f"{pg_config} is {version!r}"
            )
        major = int(m.group(1))
        incdir = (pg.includedir_server if pg is not None and pg.includedir_server is not None
                  else Path(_pg_config(pg_config, "--includedir-server")))
        pgxs = Path(_pg_config(pg_config, "--pgxs"))
        if not (incdir / "postgres.h").exists() or not pgxs.exists():
            how = (f"apt-get install {SERVER_DEV_PACKAGE}" if major == SUPPORTED_MAJOR
                   else f"{install_hint(major)} --force")
            raise SetupError(
                f"PostgreSQL {major} server headers not found ({incdir}/postgres.h, {pgxs}): "
                f"install them ({how})"
            )
        for tool in ("make", "cc"):
            if shutil.which(tool) is None:
                raise SetupError(f"'{tool}' not found: building pg_walredo needs make and a C compiler")
        # another process may be building the same tree
        with open(source_dir / ".build.lock", "w") as lockf:
            fcntl.flock(lockf, fcntl.LOCK_EX)
            try:
                if _needs_build(so, source_dir):
                    res = subprocess.run(
                        ["make", "-C", str(source_dir), f"PG_CONFIG={pg_config}", *make_vars],
                        capture_output=True, text=True, check=False,
                    )
                    if res.returncode != 0:
                        raise SetupError(
                            f"building pg_walredo failed (make exit {res.returncode}):\n"
                            f"{res.stdout[-3000:]}{res.stderr[-3000:]}"
                        )
            finally:
                fcntl.flock(lockf, fcntl.LOCK_UN)
    if not so.exists():
        raise SetupError(f"make succeeded but {so} is missing")
    return so


def _default_bindir() -> Path | None:
    try:
        return default_install().bindir
    except SetupError:
        return None


# -- scratch data directories -------------------------------------------------------
# One initdb per installation makes a template, kept in the cache (else one per
# Python process, in the temporary directory); each server gets a copy
# (``cp -a``: a few MB with 1 MB WAL segments). A stopped server's directory
# goes back to a small pool for the next one (the library wipes its private
# databases at start-up), and everything is deleted at exit.
_dirs_lock = threading.Lock()
_templates: dict[Path, Path] = {}  # per installation (its bindir): the template's root
_spares: list[tuple[Path, Path]] = []  # (bindir, root)
_MAX_SPARES = 4
_exiting = False


@atexit.register
def _remove_scratch_dirs() -> None:
    global _exiting
    with _dirs_lock:
        _exiting = True
        for root in [*(r for _, r in _spares), *_templates.values()]:
            shutil.rmtree(root, ignore_errors=True)
        _spares.clear()


def _after_fork_in_child() -> None:
    """A forked child (``check --workers``) takes none of its parent's spare directories
    (two servers on one data directory collide), and, as it ends without atexit,
    removes each directory of its own when its server stops. The parent's template
    is shared: it is only copied."""
    global _exiting
    _spares.clear()
    _exiting = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def _chown_tree(path: Path) -> None:
    user = server_user()
    if user is None:
        return
    pw = pwd.getpwnam(user)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            os.lchown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)


def _initdb(datadir: Path, pg: PgInstall | None = None) -> None:
    argv = [
        pg.program("initdb") if pg is not None else program("initdb"), "-D", str(datadir), "-U", "postgres",
        "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C", "--wal-segsize=1",
    ]
    if pg is not None and pg.major >= 18:
        argv.append("--no-data-checksums")  # on by default from 18; the library refuses them
    argv = as_server_user(argv)
    res = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    if res.returncode != 0:
        raise SetupError(f"initdb of the wal-redo scratch cluster failed (exit {res.returncode}):\n"
                         f"{res.stdout[-2000:]}{res.stderr[-2000:]}")
    with open(datadir / "postgresql.conf", "a") as f:
        f.write("\n# redodiff wal-redo scratch cluster\n")
        for k, v in SCRATCH_CONF.items():
            f.write(f"{k} = '{v}'\n")


def _new_root(prefix: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    _chown_tree(root)
    return root


def _template_datadir(pg: PgInstall) -> Path:
    """A freshly initdb'd scratch data directory for ``pg``: the one kept in the cache
    (``_kept_template``), else one made once per Python process. Call with
    ``_dirs_lock`` held."""
    with contextlib.suppress(OSError, SetupError):
        return _kept_template(pg) / "data"
    root = _templates.get(pg.bindir)
    if root is None or not (root / "data" / "PG_VERSION").exists():
        root = _new_root("redodiff-walredo-template-")
        try:
            _initdb(root / "data", pg)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        _templates[pg.bindir] = root
    return root / "data"


def _kept_template(pg: PgInstall) -> Path:
    """The scratch cluster's template for ``pg`` kept in the cache (next to the
    installations of ``oracles.pgbin.cache_dir()``), initdb'd once per installation,
    settings and server user, so that no process -- fuzz and check workers, a test
    session -- waits for an initdb of its own (seconds on a busy machine). Made
    under a file lock into a temporary directory renamed into place: a half-made
    template is never used."""
    key = hashlib.sha256(json.dumps([TEMPLATE_FORMAT, str(pg.bindir), pg.version_num, SCRATCH_CONF,
                                     server_user()]).encode()).hexdigest()[:16]
    base = cache_dir().parent / "walredo-templates"
    root = base / f"pg{pg.version_num}-{key}"
    if (root / "data" / "PG_VERSION").exists():
        return root
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        try:
            if not (root / "data" / "PG_VERSION").exists():
                shutil.rmtree(root, ignore_errors=True)  # a root without PG_VERSION is no template
                tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=base))
                try:
                    tmp.chmod(0o755)
                    _chown_tree(tmp)
                    _initdb(tmp / "data", pg)
                    os.rename(tmp, root)
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
        finally:
            fcntl.flock(lockf, fcntl.LOCK_UN)
    return root


def _take_root(pg: PgInstall) -> Path:
    """A scratch root with an initialized ``data/``: a spare one, or a new copy."""
    with _dirs_lock:
        for i in range(len(_spares) - 1, -1, -1):
            if _spares[i][0] != pg.bindir:
                continue
            _, root = _spares.pop(i)
            if (root / "data" / "PG_VERSION").exists():
                return root
            shutil.rmtree(root, ignore_errors=True)
        template = _template_datadir(pg)
    root = _new_root("redodiff-walredo-")
    try:
        res = subprocess.run(["cp", "-a", str(template), str(root / "data")],
                             capture_output=True, text=True, check=False)
    except BaseException:  # a stop (Ctrl-C) mid-copy: the directory is no server's yet
        shutil.rmtree(root, ignore_errors=True)
        raise
    if res.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise SetupError(f"could not copy the wal-redo scratch cluster: {res.stderr.strip()}")
    return root


def _give_back_root(pg: PgInstall, root: Path) -> None:
    with _dirs_lock:
        if not _exiting and len(_spares) < _MAX_SPARES and all(r != root for _, r in _spares):
            _spares.append((pg.bindir, root))
            return
    shutil.rmtree(root, ignore_errors=True)


class StockWalRedoServer:
    """A scratch data directory + the built library = a wal-redo server command.

    ``root`` holds ``data/`` (the cluster) and a private copy of the library
    (so a rebuild never pulls the file from under a running server, and the
    server user can always read it). Made on ``prepare()``; ``cleanup()``
    deletes it unless it was given by the caller or ``keep`` is set.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        shared_buffers: str = "2MB",
        extra_gucs: dict[str, str] | None = None,
        keep: bool = False,
        pg: PgInstall | None = None,
    ) -> None:
        self._pg = pg  # which PostgreSQL serves (None: the default installation)
        self._given_root = Path(root) if root is not None else None
        self.root: Path | None = self._given_root
        self.shared_buffers = shared_buffers
        self.extra_gucs = dict(extra_gucs or {})
        self.keep = keep or root is not None
        self.library: Path | None = None

    @property
    def datadir(self) -> Path:
        if self.root is None:
            raise SetupError("StockWalRedoServer.prepare() was not called")
        return self.root / "data"

    @property
    def pg(self) -> PgInstall:
        """The installation whose postgres serves (the default one unless given)."""
        return self._pg if self._pg is not None else default_install()

    @property
    def user(self) -> str | None:
        """The user the server must run as (None: as ourselves)."""
        return server_user()

    def prepare(self) -> None:
        """Build the library, make/reuse the data directory, copy the library in."""
        built = ensure_built(pg=self._pg)
        if self.root is None:
            self.root = _take_root(self.pg)
        self.root.mkdir(parents=True, exist_ok=True)
        data = self.root / "data"
        if not (data / "PG_VERSION").exists():
            _chown_tree(self.root)
            _initdb(data, self.pg)
        lib = self.root / LIBRARY_NAME
        if not lib.exists() or lib.stat().st_mtime < built.stat().st_mtime:
            tmp = self.root / (LIBRARY_NAME + ".tmp")
            shutil.copy2(built, tmp)
            tmp.chmod(0o644)
            os.replace(tmp, lib)  # atomic: a running server keeps its old mapping
            _chown_tree(lib)
        self.library = lib

    def argv(self) -> list[str]:
        """The command line of a server on this data directory (prepare()s first)."""
        if self.library is None:
            self.prepare()
        assert self.library is not None
        gucs = {
            "session_preload_libraries": str(self.library),
            "pg_walredo.serve": "on",
            "shared_buffers": self.shared_buffers,
            "fsync": "off",
            **self.extra_gucs,
        }
        argv = [self.pg.program("postgres"), "--single", "-D", str(self.datadir)]
        for k, v in gucs.items():
            argv += ["-c", f"{k}={v}"]
        argv.append("postgres")
        return argv

    def cleanup(self) -> None:
        """Give up the scratch directory (not one the caller gave, nor with keep).
        Call it only once no server runs on it any more."""
        if self.root is not None and not self.keep:
            _give_back_root(self.pg, self.root)
            self.root = None
            self.library = None

    def __repr__(self) -> str:
        return f"<StockWalRedoServer root={self.root}>"

