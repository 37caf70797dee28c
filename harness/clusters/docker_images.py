"""Local Docker images made from the host's PostgreSQL 15, with no registry.

``ensure_hostpg_image()`` imports (``docker import``) a small, self-contained
root filesystem laid out like the official ``postgres`` image: the host's
PostgreSQL 15 programs and libraries under ``/usr/lib/postgresql/15``, its
share directory, the zoneinfo database, a shell and a few coreutils, every
shared library these need (their ``ldd`` closure), and a ``postgres`` user
with uid/gid 999, as in the official image. Nothing is bind-mounted from the
host at run time: a container of this image is an ordinary PostgreSQL image
to ``DockerCluster`` and ``DockerWalRedo``.

It is what the tests use (``docker pull`` is impossible there), and it is a
quick way to get an image whose PostgreSQL is exactly the host's minor release
(the one pyredo mirrors). Building takes a few seconds (~90 MB, most of it
ICU); the image is labelled with a digest of what went in, and an image whose
label matches is reused.

    python -m harness.clusters.docker_images          # build (if need be), print the tag
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from oracles.pgbin import SetupError, bindir

__all__ = ["HOSTPG_REPOSITORY", "PG_UID", "ensure_hostpg_image", "hostpg_tag"]

HOSTPG_REPOSITORY = "redodiff/hostpg"
SOURCE_LABEL = "redodiff.image-source"
PG_UID = PG_GID = 999  # as in the official postgres image (Debian variants)
_RECIPE_VERSION = "1"  # bump when the recipe below changes

# Programs besides PostgreSQL's: what a probe, an entrypoint or a user at a
# shell in the container needs.
_TOOLS = ("/bin/sh", "/usr/bin/id", "/usr/bin/cat", "/usr/bin/ls", "/usr/bin/rm", "/usr/bin/mkdir",
          "/usr/bin/env", "/usr/bin/sleep", "/usr/bin/true")
# Shared libraries of PostgreSQL's library directory that are left out:
# llvmjit pulls in libLLVM (~100 MB); without it the server simply has no JIT.
_SKIP_LIBS = re.compile(r"^llvmjit.*|.*\.a$|.*\.bc$")
# Every file costs container creation time with the vfs storage driver (~3 ms
# each), so the image carries only what initdb and the server need: of the
# share directory no man pages and only plpgsql's extension files (initdb
# installs it), of the zoneinfo database only UTC (what initdb picks in a
# container without /etc/localtime).
_SKIP_SHARE_DIRS = {"man", "contrib"}
_ZONES = ("UTC", "Etc/UTC", "GMT", "Etc/GMT", "UCT", "Etc/UCT", "Universal", "Etc/Universal",
          "Zulu", "Etc/Zulu")
# Debian merges /bin, /lib, /lib64 and /sbin into /usr: the image does the same.
_MERGED = {"bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64", "sbin": "usr/sbin"}
_PATH = "/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _image_path(p: str) -> str:
    """Where ``p`` lives in the image (merged /usr), relative, without a leading slash."""
    rel = p.lstrip("/")
    top, _, rest = rel.partition("/")
    if top in _MERGED and rest:
        return f"{_MERGED[top]}/{rest}"
    return rel


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


_LDD_LINE = re.compile(r"^\s*(?:\S+\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)\s*$")


def _ldd(paths: Iterable[str]) -> set[str]:
    """The shared libraries (and the loader) the ELF files need, as the loader names them."""
    paths = list(paths)
    if not paths:
        return set()
    if shutil.which("ldd") is None:
        raise SetupError("building the test image needs 'ldd' (Debian: libc-bin)")
    res = subprocess.run(["ldd", *paths], capture_output=True, text=True, check=False)
    out: set[str] = set()
    for line in res.stdout.splitlines():
        if "not found" in line:
            raise SetupError(f"ldd: a library is missing on the host: {line.strip()}")
        m = _LDD_LINE.match(line)
        if m:
            out.add(m.group(1))
    return out


def _pg_dirs() -> tuple[Path, Path, Path]:
    """(bindir, pkglibdir, sharedir) of the host's PostgreSQL 15, Debian layout."""
    bdir = bindir()
    root = bdir.parent  # /usr/lib/postgresql/15
    if root.name != "15" or not (root / "lib").is_dir():
        raise SetupError(f"the test image needs Debian's layout of PostgreSQL 15 (/usr/lib/postgresql/15); "
                         f"found the programs in {bdir}")
    share = Path("/usr/share/postgresql/15")
    if not (share / "postgres.bki").exists():
        raise SetupError(f"{share}/postgres.bki not found: is postgresql-15 installed?")
    return bdir, root / "lib", share


def _collect() -> tuple[dict[str, str], dict[str, str]]:
    """Files of the image: {image path: host path} and symlinks {image path: target}."""
    bdir, libdir, share = _pg_dirs()
    files: dict[str, str] = {}
    links: dict[str, str] = dict(_MERGED)
    elves: list[str] = []
    for p in sorted(bdir.iterdir()):
        if p.is_symlink():
            links[_image_path(str(p))] = os.readlink(p)
        elif p.is_file():
            files[_image_path(str(p))] = str(p)
            elves.append(str(p))
    for p in sorted(libdir.iterdir()):
        if p.is_file() and not _SKIP_LIBS.match(p.name):
            files[_image_path(str(p))] = str(p)
            if _is_elf(str(p)):
                elves.append(str(p))
    for tool in _TOOLS:
        real = shutil.which(tool) if not tool.startswith("/") else tool
        if real is None or not os.path.exists(real):
            raise SetupError(f"building the test image needs {tool} on the host")
        files[_image_path(tool)] = os.path.realpath(real)
        elves.append(os.path.realpath(real))
    for lib in _ldd(elves):
        files.setdefault(_image_path(lib), os.path.realpath(lib))
    for dirpath, dirs, names in os.walk(share):
        dirs[:] = [d for d in dirs if d not in _SKIP_SHARE_DIRS]
        for n in names:
            path = os.path.join(dirpath, n)
            if os.path.basename(dirpath) == "extension" and not n.startswith("plpgsql"):
                continue
            if os.path.islink(path):
                links[_image_path(path)] = os.readlink(path)
            elif os.path.isfile(path):
                files[_image_path(path)] = path
    zoneinfo = Path("/usr/share/zoneinfo")
    for name in _ZONES:
        zone = zoneinfo / name
        if not zone.exists():
            raise SetupError(f"building the test image needs {zone} (Debian: tzdata)")
        files[_image_path(str(zone))] = os.path.realpath(zone)
    return files, links


_ETC = {
    "etc/passwd": ("root:x:0:0:root:/root:/bin/sh\n"
                   f"postgres:x:{PG_UID}:{PG_GID}:PostgreSQL:/var/lib/postgresql:/bin/sh\n"
                   "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
    "etc/group": f"root:x:0:\npostgres:x:{PG_GID}:\nnogroup:x:65534:\n",
    "etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
}
# (path, mode, uid, gid)
_DIRS = [("tmp", 0o1777, 0, 0), ("root", 0o700, 0, 0), ("etc", 0o755, 0, 0),
         ("var/lib/postgresql", 0o755, PG_UID, PG_GID),
         ("var/run/postgresql", 0o2775, PG_UID, PG_GID), ("run", 0o755, 0, 0),
         ("dev", 0o755, 0, 0), ("proc", 0o755, 0, 0), ("sys", 0o755, 0, 0)]


def _source_digest(files: dict[str, str], links: dict[str, str]) -> str:
    h = hashlib.sha256(_RECIPE_VERSION.encode())
    for name in sorted(files):
        st = os.stat(files[name])
        h.update(f"{name}\0{st.st_size}\0{int(st.st_mtime)}\0{st.st_mode & 0o777}\n".encode())
    for name in sorted(links):
        h.update(f"{name}\0->{links[name]}\n".encode())
    for name, text in sorted(_ETC.items()):
        h.update(f"{name}\0{text}".encode())
    return h.hexdigest()[:24]


def _write_rootfs(tar_path: Path, files: dict[str, str], links: dict[str, str]) -> None:
    parents: set[str] = set()
    for name in [*files, *links, *_ETC]:
        d = os.path.dirname(name)
        while d and d not in parents and d not in links:
            parents.add(d)
            d = os.path.dirname(d)
    with tarfile.open(tar_path, "w") as tar:
        def add_dir(name: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.uid, ti.gid = tarfile.DIRTYPE, mode, uid, gid
            tar.addfile(ti)

        special = {d[0] for d in _DIRS}
        for d in sorted(parents - special):
            add_dir(d)
        for name, mode, uid, gid in _DIRS:
            add_dir(name, mode, uid, gid)
        for name, target in sorted(links.items()):
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, target, 0o777
            tar.addfile(ti)
        for name, src in sorted(files.items()):
            st = os.stat(src)
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = st.st_size, stat.S_IMODE(st.st_mode), int(st.st_mtime)
            with open(src, "rb") as f:
                tar.addfile(ti, f)
        for name, text in sorted(_ETC.items()):
            data = text.encode()
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode = len(data), 0o644
            tar.addfile(ti, io.BytesIO(data))


def hostpg_tag() -> str:
    """The tag of the image made from the host's PostgreSQL: redodiff/hostpg:15.<minor>."""
    from oracles.pgbin import server_version

    m = re.search(r"(\d+\.\d+)", server_version())
    return f"{HOSTPG_REPOSITORY}:{m.group(1) if m else '15'}"


def ensure_hostpg_image(client: Any = None, *, tag: str | None = None, force: bool = False) -> str:
    """Build (or reuse) the image made from the host's PostgreSQL 15; return its tag."""
    from harness.clusters.docker_common import docker_client

    client = client or docker_client()
    tag = tag or hostpg_tag()
    files, links = _collect()
    digest = _source_digest(files, links)
    old = None
    try:
        old = client.images.get(tag)
    except Exception as e:  # ImageNotFound: build it
        if type(e).__name__ != "ImageNotFound":
            raise
    if old is not None and not force and (old.labels or {}).get(SOURCE_LABEL) == digest:
        return tag
    repo, _, version = tag.rpartition(":")
    with tempfile.TemporaryDirectory(prefix="redodiff-image-") as tmp:
        tar_path = Path(tmp) / "rootfs.tar"
        _write_rootfs(tar_path, files, links)
        changes = [
            f"ENV PATH={_PATH}",
            "ENV PGDATA=/var/lib/postgresql/data",
            f"LABEL {SOURCE_LABEL}={digest}",
            'LABEL org.opencontainers.image.description="PostgreSQL 15 from the redodiff host, for tests"',
            'CMD ["postgres", "--version"]',
        ]
        try:
            client.api.import_image(src=str(tar_path), repository=repo, tag=version, changes=changes)
        except Exception as e:
            raise SetupError(f"docker import of the test image {tag} failed: {e}") from e
    img = client.images.get(tag)
    if (img.labels or {}).get(SOURCE_LABEL) != digest:
        raise SetupError(f"the imported image {tag} does not carry the expected label {SOURCE_LABEL}={digest}")
    if old is not None and old.id != img.id:  # the previous build, now untagged
        with contextlib.suppress(Exception):  # still used by a container: leave it
            client.images.remove(old.id)
    return tag


def main() -> None:  # pragma: no cover - a convenience for users
    print(ensure_hostpg_image())


if __name__ == "__main__":  # pragma: no cover
    main()
