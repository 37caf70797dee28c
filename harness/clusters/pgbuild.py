"""Build PostgreSQL from Debian's source, optionally patched: ``redodiff pg build``.

The subject of a redo gate can be the user's own PostgreSQL: a tree with a patch to
``nbtxlog.c`` or ``heapam.c``, built and installed into a prefix, then named with
``--pg-bindir``. This module makes such builds from the distribution's source
(``harness.clusters.pgsource.source_tree``) and keeps them in
``<cache>/build/<name>/`` (``build_root()``; /var/cache/redodiff/build as root):

* ``src/``      a copy of the source tree, configured and built in place;
* ``install/``  ``make install`` of the server, the client programs and the contrib
  modules the workloads use (pageinspect, pg_walinspect, bloom, pg_trgm), readable
  and executable by the server user (or ``--prefix DIR``);
* ``redodiff-build.json``  what was built (source version, configure options, patches).

A build whose manifest matches is reused as is. A patched build (``--patch FILE``) does
not start from scratch: it copies the unpatched build's ``src/`` with its objects and
their times (``cp -a``), applies the patches with ``patch -p1`` and runs ``make
install``, so only what the patches touch is recompiled and the server relinked
(ccache, when installed, makes recompiling a reverted file a cache hit). The self-test
of C mutants uses the same steps on one work tree: ``apply_patch`` + ``make_install``,
then ``apply_patch(reverse=True)``.

Configure options: what Debian's build (postgresql-common's ``postgresql.mk``) uses
where it matters for WAL and redo — ``--with-lz4 --with-zstd`` (wal_compression),
``--enable-debug``, ``-O2`` with frame pointers, the default block, WAL block and
segment sizes (8 kB, 8 kB, 16 MB, as Debian), ``--with-system-tzdata`` (no time zone
data to compile) and ``--with-pgport=5432``. Left out, because no redo routine depends
on them and each costs build dependencies and minutes: Tcl/Perl/Python, PAM, OpenSSL,
GSSAPI, LDAP, libxml/libxslt, ICU, LLVM JIT, NLS, systemd, SELinux, dtrace, uuid,
TAP tests. ``--disable-rpath`` is left out too: a prefix outside the system's library
path needs the run path to find its own libpq.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.clusters.pginstall import _chmod_tree, _locked, _open_up, _read_manifest, _run
from harness.clusters.pgsource import source_tree, source_version
from oracles.pgbin import PgInstall, SetupError, cache_dir, from_bindir, probe_capabilities

__all__ = ["CONFIGURE_OPTIONS", "CONTRIB", "BuildPlan", "Built", "apply_patch", "build", "build_root",
           "check_install_dirs", "make_commands", "make_install", "patched", "plan", "work_tree"]

Log = Callable[[str], None]

CONFIGURE_OPTIONS = ("--with-lz4", "--with-zstd", "--enable-debug", "--with-system-tzdata=/usr/share/zoneinfo",
                     "--with-pgport=5432")
CFLAGS = "-g -O2 -fno-omit-frame-pointer"
CONTRIB = ("pageinspect", "pg_walinspect", "bloom", "pg_trgm")
MANIFEST = "redodiff-build.json"
BUILD_TIMEOUT = 7200.0  # seconds for one configure/make step (a from-scratch make takes minutes)
APT_BUILD_DEPS = ("gcc", "make", "bison", "flex", "liblz4-dev", "libzstd-dev", "libreadline-dev", "zlib1g-dev",
                  "pkg-config", "patch", "dpkg-dev")


def _quiet(msg: str) -> None:
    pass


def build_root() -> Path:
    """``<cache>/build``, next to ``redodiff pg install``'s cache."""
    return cache_dir().parent / "build"


def patch_digest(patches: Sequence[Path]) -> str:
    """What names a patch set: the hash of the patches' contents, in order."""
    h = hashlib.sha256()
    for p in patches:
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:12]


@dataclass(frozen=True)
class BuildPlan:
    """Everything one build does, decided before anything runs (``redodiff pg build
    --dry-run`` prints it)."""

    major: int
    name: str
    root: Path  # <build_root>/<name>
    prefix: Path
    patches: tuple[Path, ...] = ()
    base: Path | None = None  # the unpatched build whose src/ a patched build starts from
    jobs: int = 1
    ccache: str | None = None
    configure_options: tuple[str, ...] = CONFIGURE_OPTIONS
    contrib: tuple[str, ...] = CONTRIB
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def worktree(self) -> Path:
        return self.root / "src"

    @property
    def bindir(self) -> Path:
        return self.prefix / "bin"

    @property
    def libdir(self) -> Path:
        """Libraries and server modules. Its name must contain "postgres": Debian's
        50-per-version-dirs.patch otherwise puts server modules and PGXS into
        /usr/lib/postgresql/<major>/lib, the system's own PostgreSQL."""
        return self.prefix / "lib" / "postgresql"

    def install_vars(self) -> list[str]:
        """make variables that send ``make install`` into this plan's prefix (a copied work
        tree was configured with its base's)."""
        return [f"prefix={self.prefix}", f"libdir={self.libdir}"]

    def configure_argv(self) -> list[str]:
        return ["./configure", f"--prefix={self.prefix}", f"--libdir={self.libdir}", *self.configure_options,
                "--with-extra-version= (redodiff pg build)", f"CFLAGS={CFLAGS}"]

    def make_env(self) -> dict[str, str]:
        env = dict(os.environ, LC_ALL="C")
        if self.ccache:
            env["CC"] = f"{self.ccache} gcc"
        return env

    def key(self) -> dict[str, object]:
        """What makes two builds the same: a manifest with this key is reused."""
        return {"major": self.major, "prefix": str(self.prefix), "configure": self.configure_argv(),
                "ccache": bool(self.ccache), "contrib": list(self.contrib),
                "patches": patch_digest(self.patches) if self.patches else None}

    def describe(self) -> dict[str, object]:
        return {**self.key(), "name": self.name, "root": str(self.root), "worktree": str(self.worktree),
                "patch_files": [str(p) for p in self.patches], "base": str(self.base) if self.base else None,
                "jobs": self.jobs}


def plan(major: int = 15, *, patches: Sequence[Path] = (), prefix: Path | None = None, name: str | None = None,
         jobs: int | None = None, root: Path | None = None) -> BuildPlan:
    """The build of ``major`` with ``patches``: unpatched it is ``<major>``; patched it is
    ``<major>-<digest of the patches>``, made from a copy of the unpatched build."""
    patches = tuple(Path(p).resolve() for p in patches)
    for p in patches:
        if not p.is_file():
            raise SetupError(f"patch {p} not found")
    broot = root or build_root()
    name = name or (f"{major}-{patch_digest(patches)}" if patches else str(major))
    where = broot / name
    base = broot / str(major) if patches else None
    return BuildPlan(major=major, name=name, root=where, prefix=Path(prefix).resolve() if prefix else where / "install",
                     patches=patches, base=base, jobs=jobs or os.cpu_count() or 1, ccache=shutil.which("ccache"))


@dataclass(frozen=True)
class Built:
    """A finished build: the installation, and what it cost."""

    install: PgInstall
    plan: BuildPlan
    seconds: float
    reused: bool
    steps: dict[str, float] = field(default_factory=dict)

    def describe(self) -> dict[str, object]:
        return {**self.install.describe(), "build": self.plan.describe(), "seconds": round(self.seconds, 1),
                "reused": self.reused, "steps": {k: round(v, 1) for k, v in self.steps.items()}}


def apply_patch(worktree: Path, patch: Path, *, reverse: bool = False, dry_run: bool = False) -> list[str]:
    """``patch -p1`` (``-R`` to revert) in ``worktree``; the files it touched. Refuses
    fuzz: a mutant that no longer applies exactly must be updated, not guessed at."""
    argv = ["patch", "-p1", "--forward", "--fuzz=0", "--no-backup-if-mismatch", "-i", str(patch)]
    if reverse:
        argv[2:3] = ["-R"]
    if dry_run:
        argv.append("--dry-run")
    res = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=worktree)
    if res.returncode != 0:
        raise SetupError(f"patch {'-R ' if reverse else ''}{patch.name} does not apply to {worktree}:\n"
                         f"{res.stdout[-2000:]}{res.stderr[-2000:]}")
    return [line.split(" ", 2)[-1].strip() for line in res.stdout.splitlines() if line.startswith("patching file ")]


def make_commands(p: BuildPlan, touched: Sequence[str] = ()) -> list[tuple[str, list[str]]]:
    """The ``make`` runs that compile what changed and install it: (what, argv) in order.
    When every touched file is server code (src/backend), only the server is rebuilt and
    installed; otherwise everything, with the contrib modules."""
    jobs = f"-j{p.jobs}"
    dirs = p.install_vars()
    if touched and all(t.startswith("src/backend/") for t in touched):
        return [("make (server)", ["make", jobs, "-C", "src/backend", *dirs, "install-bin"])]
    return [("make install", ["make", jobs, *dirs, "install"]),
            *((f"make contrib/{c}", ["make", jobs, "-C", f"contrib/{c}", *dirs, "install"]) for c in p.contrib)]


INSTALL_DIRS = ("bindir", "libdir", "pkglibdir", "pkgincludedir", "includedir_server", "datadir", "pgxsdir",
                "docdir", "mandir", "sysconfdir")


def check_install_dirs(p: BuildPlan) -> dict[str, str]:
    """Where ``make install`` would put files, as the tree's makefiles resolve it; a
    SetupError when any of it lies outside the prefix (never write into the system's
    PostgreSQL)."""
    rule = "show-installdirs:\n\t@echo " + " ".join(f"$({d})" for d in INSTALL_DIRS) + "\n"
    res = subprocess.run(["make", "-s", "-C", "src/port", "-f", "Makefile", "-f", "-", *p.install_vars(),
                          "show-installdirs"], input=rule, capture_output=True, text=True, check=False,
                         cwd=p.worktree)
    found = dict(zip(INSTALL_DIRS, res.stdout.split(), strict=False))
    if res.returncode != 0 or len(found) != len(INSTALL_DIRS):
        raise SetupError(f"cannot read the install directories of {p.worktree}: {res.stderr[-1000:]}")
    outside = {k: v for k, v in found.items() if not Path(v).is_relative_to(p.prefix)}
    if outside:
        raise SetupError(f"make install in {p.worktree} would write outside {p.prefix}: {outside}")
    return found


def make_install(p: BuildPlan, touched: Sequence[str] = (), log: Log = _quiet) -> float:
    """Run ``make_commands`` once ``check_install_dirs`` agrees; the seconds taken."""
    t0 = time.monotonic()
    check_install_dirs(p)
    env = p.make_env()
    for what, argv in make_commands(p, touched):
        log(" ".join(argv[:1] + argv[2:]))
        _run(argv, what, BUILD_TIMEOUT, cwd=p.worktree, env=env)
    return time.monotonic() - t0


def _same_key(a: object, b: dict[str, object]) -> bool:
    """Two build keys name the same build (the version label configure got does not count)."""
    def norm(k: dict[str, object]) -> dict[str, object]:
        conf = k.get("configure")
        return {**k, "configure": [c for c in conf if not str(c).startswith("--with-extra-version")]
                if isinstance(conf, list) else conf}

    return isinstance(a, dict) and norm(a) == norm(b)


def _installed(p: BuildPlan, source: str) -> PgInstall:
    _chmod_tree(p.prefix)
    _open_up(p.prefix)
    inst = from_bindir(p.bindir, source)
    return PgInstall(bindir=inst.bindir, version=inst.version, source=source,
                     capabilities=probe_capabilities(p.bindir))


def build(p: BuildPlan, *, force: bool = False, log: Log = _quiet) -> Built:
    """Carry out ``p``: reuse the build when its manifest matches, else fetch the
    source, copy it (or the base build), patch, configure, make, install."""
    t0 = time.monotonic()
    missing = [t for t in ("make", "gcc", "patch") if shutil.which(t) is None]
    if missing:
        raise SetupError(f"{', '.join(missing)} not found: building PostgreSQL needs apt-get install "
                         f"{' '.join(APT_BUILD_DEPS)}")
    p.root.mkdir(parents=True, exist_ok=True)
    with _locked(p.root):
        done = _read_manifest(p.root, MANIFEST)
        source = f"redodiff pg build {p.name}"
        if not force and done is not None and _same_key(done.get("key"), p.key()) and (p.bindir / "postgres").exists():
            return Built(_installed(p, source), p, time.monotonic() - t0, reused=True)
        steps: dict[str, float] = {}
        if p.patches:
            base = build(plan(p.major, jobs=p.jobs, root=p.root.parent), log=log)
            assert p.base is not None
            t = time.monotonic()
            shutil.rmtree(p.worktree, ignore_errors=True)
            log(f"cp -a {p.base / 'src'} {p.worktree} (objects kept: an incremental build)")
            _run(["cp", "-a", str(p.base / "src"), str(p.worktree)], "copy the base work tree", cwd=p.root)
            steps["copy"] = time.monotonic() - t
            touched: list[str] = []
            for patch in p.patches:
                touched += apply_patch(p.worktree, patch)
            log(f"patched: {', '.join(touched)}")
            if p.prefix != base.plan.prefix and not (p.bindir / "postgres").exists():
                t = time.monotonic()
                p.prefix.mkdir(parents=True, exist_ok=True)
                _run(["cp", "-a", f"{base.plan.prefix}/.", str(p.prefix)], "copy the base install", cwd=p.root)
                steps["copy"] += time.monotonic() - t
            steps["make"] = make_install(p, touched, log)
        else:
            tree = source_tree(p.major, log=log)
            t = time.monotonic()
            shutil.rmtree(p.worktree, ignore_errors=True)
            shutil.copytree(tree, p.worktree, symlinks=True)
            steps["copy"] = time.monotonic() - t
            t = time.monotonic()
            log(" ".join(p.configure_argv()))
            _run(p.configure_argv(), "configure", BUILD_TIMEOUT, cwd=p.worktree, env=p.make_env())
            steps["configure"] = time.monotonic() - t
            t = time.monotonic()
            log(f"make -j{p.jobs} (ccache: {p.ccache or 'not installed'})")
            _run(["make", f"-j{p.jobs}"], "make", BUILD_TIMEOUT, cwd=p.worktree, env=p.make_env())
            for c in p.contrib:
                _run(["make", f"-j{p.jobs}", "-C", f"contrib/{c}"], f"make contrib/{c}", BUILD_TIMEOUT, cwd=p.worktree,
                     env=p.make_env())
            steps["make"] = time.monotonic() - t
            t = time.monotonic()
            if p.prefix.is_relative_to(p.root):  # ours: start empty (a user's --prefix is left as it is)
                shutil.rmtree(p.prefix, ignore_errors=True)
            make_install(p, log=log)
            steps["install"] = time.monotonic() - t
        inst = _installed(p, source)
        manifest = {"key": p.key(), "plan": p.describe(), "source_version": source_version(source_tree(p.major)),
                    "install": inst.to_json(), "steps": steps,
                    "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (p.root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        return Built(inst, p, time.monotonic() - t0, reused=False, steps=steps)


# -- a work tree for applying patches one at a time (the C mutants of redodiff selftest --c) --------

APPLIED = "redodiff-applied.json"  # the patch applied to a work tree right now, if any


def work_tree(base: Built, name: str | None = None, log: Log = _quiet) -> BuildPlan:
    """A copy of ``base``'s built tree and install, made once (``cp -a``: objects and
    their times kept) and reused while ``base`` is not rebuilt. A patch left applied by
    a run that died is reverted and the server rebuilt, so the tree starts clean."""
    root = base.plan.root.parent / (name or f"{base.plan.name}-work")
    p = dataclasses.replace(base.plan, name=root.name, root=root, prefix=root / "install", patches=(),
                            base=base.plan.root)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        stamp = (_read_manifest(base.plan.root, MANIFEST) or {}).get("built_at")
        mine = _read_manifest(root, MANIFEST) or {}
        if mine.get("base_built_at") != stamp or not (p.bindir / "postgres").exists():
            log(f"copying {base.plan.root} to the work tree {root}")
            for sub in ("src", "install"):
                shutil.rmtree(root / sub, ignore_errors=True)
                _run(["cp", "-a", str(base.plan.root / sub), str(root / sub)], f"copy {sub}", cwd=root)
            (root / APPLIED).unlink(missing_ok=True)
            (root / MANIFEST).write_text(json.dumps({"base_built_at": stamp, "base": str(base.plan.root)}) + "\n")
        left = root / APPLIED
        if left.exists():
            stale = Path(json.loads(left.read_text())["patch"])
            log(f"reverting {stale.name}, left applied by an earlier run")
            touched = apply_patch(p.worktree, stale, reverse=True)
            make_install(p, touched, log)
            left.unlink()
    _chmod_tree(p.prefix)
    return p


@contextlib.contextmanager
def patched(p: BuildPlan, patch: Path, log: Log = _quiet) -> Iterator[float]:
    """``patch`` applied to the work tree ``p`` and installed for the duration; yields the
    seconds the incremental rebuild took. Reverted and rebuilt on the way out (a cache hit
    with ccache), also on errors and Ctrl-C."""
    t0 = time.monotonic()
    touched = apply_patch(p.worktree, patch)
    (p.root / APPLIED).write_text(json.dumps({"patch": str(patch), "touched": touched}) + "\n")
    try:
        make_install(p, touched, log)
        _chmod_tree(p.bindir)
        yield time.monotonic() - t0
    finally:
        apply_patch(p.worktree, patch, reverse=True)
        make_install(p, touched, log)
        (p.root / APPLIED).unlink(missing_ok=True)
