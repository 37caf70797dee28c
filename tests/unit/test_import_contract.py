"""The project's structure, checked: which package may import which, how long a module
may grow, and no process-wide state changed behind the caller's back.

The arrows point one way: harness -> generators -> pyredo, harness -> oracles -> pyredo.
pyredo (the engine) imports no other package of the project, oracles imports only
pyredo, generators imports neither oracles nor harness. Every import counts: at module
level, inside a function, under ``if TYPE_CHECKING:``, relative or absolute.
"""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("pyredo", "oracles", "harness", "generators")

# package -> the project packages it must not import
FORBIDDEN: dict[str, frozenset[str]] = {
    "pyredo": frozenset({"oracles", "harness", "generators"}),
    "oracles": frozenset({"harness", "generators"}),
    "generators": frozenset({"oracles", "harness"}),
    "harness": frozenset(),
}
MAX_LINES = 600


def modules(root: Path, package: str) -> Iterator[Path]:
    yield from sorted((root / package).rglob("*.py"))


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(root: Path, path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, wherever it stands;
    ``from p import n`` yields ``p.n`` (n may be a module), relative imports are resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(root, path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in sorted(ast.walk(tree), key=lambda n: getattr(n, "lineno", 0)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            prefix = ".".join([*base, node.module] if node.module else base)
            for alias in node.names:
                yield node.lineno, f"{prefix}.{alias.name}" if prefix else alias.name


def contract_violations(root: Path, forbidden: dict[str, frozenset[str]] = FORBIDDEN) -> list[str]:
    """Every import of a package that ``forbidden`` does not allow, as ``file:line imports x``."""
    out = []
    for package, banned in forbidden.items():
        for path in modules(root, package):
            for line, name in imported_modules(root, path):
                if name.split(".")[0] in banned:
                    out.append(f"{path.relative_to(root)}:{line} imports {name}")
    return out


def test_the_packages_import_each_other_one_way_only() -> None:
    bad = contract_violations(ROOT)
    assert not bad, "\n".join(bad)


def test_the_checker_sees_a_back_arrow_anywhere_in_a_module(tmp_path: Path) -> None:
    (tmp_path / "pyredo" / "wal").mkdir(parents=True)
    (tmp_path / "oracles").mkdir()
    (tmp_path / "generators").mkdir()
    (tmp_path / "harness").mkdir()
    (tmp_path / "pyredo" / "__init__.py").write_text("from pyredo.wal import reader\n")
    (tmp_path / "pyredo" / "wal" / "__init__.py").write_text("")
    (tmp_path / "pyredo" / "wal" / "reader.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import record\n"
        "if TYPE_CHECKING:\n"
        "    from oracles.walredo import WalRedoProcess\n"
        "def f():\n"
        "    import harness.cli as cli\n"
        "    from ...generators import rules\n"
        "    return cli, rules\n")
    (tmp_path / "oracles" / "compare.py").write_text("import pyredo\nfrom harness import pgbin\n")
    (tmp_path / "generators" / "rules.py").write_text("from pyredo import engine\nimport oracles\n")
    (tmp_path / "harness" / "cli.py").write_text("import oracles, generators, pyredo\n")
    assert contract_violations(tmp_path) == [
        "pyredo/wal/reader.py:4 imports oracles.walredo.WalRedoProcess",
        "pyredo/wal/reader.py:6 imports harness.cli",
        "pyredo/wal/reader.py:7 imports generators.rules",
        "oracles/compare.py:2 imports harness.pgbin",
        "generators/rules.py:2 imports oracles",
    ]


def test_the_contract_fails_when_pyredo_gets_a_back_arrow(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.o"))
    assert contract_violations(tmp_path) == contract_violations(ROOT)
    engine = tmp_path / "pyredo" / "engine.py"
    engine.write_text(engine.read_text() + "\n\ndef _late() -> None:\n    import harness.x  # noqa\n")
    added = len(engine.read_text().splitlines())
    assert f"pyredo/engine.py:{added} imports harness.x" in contract_violations(tmp_path)


# -- module size --------------------------------------------------------------------------
def oversized(root: Path, limit: int = MAX_LINES) -> list[str]:
    """Modules longer than ``limit`` lines; pyredo/rmgr/*.py are exempt (each mirrors one C file)."""
    out = []
    for package in PACKAGES:
        for path in modules(root, package):
            rel = path.relative_to(root)
            if rel.parent == Path("pyredo/rmgr"):
                continue
            n = len(path.read_text().splitlines())
            if n > limit:
                out.append(f"{rel}: {n} lines")
    return out


def test_no_module_is_longer_than_600_lines() -> None:
    big = oversized(ROOT)
    assert not big, "split these modules:\n" + "\n".join(big)


def test_the_size_check_counts_lines(tmp_path: Path) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "pyredo" / "rmgr").mkdir()
    (tmp_path / "pyredo" / "rmgr" / "btree.py").write_text("x = 1\n" * 1200)
    (tmp_path / "harness" / "ok.py").write_text("x = 1\n" * MAX_LINES)
    (tmp_path / "harness" / "big.py").write_text("x = 1\n" * (MAX_LINES + 1))
    assert oversized(tmp_path) == ["harness/big.py: 601 lines"]


# -- process-wide state --------------------------------------------------------------------
_ENV_MUTATORS = frozenset({"update", "setdefault", "pop", "popitem", "clear", "__setitem__",
                           "__delitem__"})
_MODULE_FACTORIES = frozenset({"import_module", "reload"})


def _is_environ(node: ast.expr, environ_names: set[str]) -> bool:
    """``os.environ`` or a name bound to it by ``from os import environ``."""
    if isinstance(node, ast.Attribute):
        return node.attr == "environ" and isinstance(node.value, ast.Name) and node.value.id == "os"
    return isinstance(node, ast.Name) and node.id in environ_names


def _module_valued(node: ast.expr, module_names: set[str]) -> bool:
    """Whether ``node`` is (statically) a module: an imported name, a name annotated or
    assigned as one, ``sys.modules[...]``, ``importlib.import_module(...)``."""
    if isinstance(node, ast.Name):
        return node.id in module_names
    if isinstance(node, ast.Subscript):
        v = node.value
        return isinstance(v, ast.Attribute) and v.attr == "modules" and isinstance(v.value, ast.Name) \
            and v.value.id == "sys"
    if isinstance(node, ast.Call):
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        return name in _MODULE_FACTORIES
    return False


def _is_module_annotation(ann: ast.expr | None) -> bool:
    return ann is not None and "ModuleType" in ast.unparse(ann)


def global_state_writes(path: Path, root: Path) -> list[str]:
    """``setattr(<module>, ...)`` and writes to the process environment in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    modules_here: set[str] = set()
    environ_names: set[str] = set()
    putenv_names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules_here.update(a.asname or a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                bound = a.asname or a.name
                if node.module == "os" and a.name == "environ":
                    environ_names.add(bound)
                elif node.module == "os" and a.name in ("putenv", "unsetenv"):
                    putenv_names.add(bound)
                elif node.module and node.level == 0:
                    sub = root.joinpath(*node.module.split("."), a.name)
                    if sub.with_suffix(".py").exists() or (sub / "__init__.py").exists():
                        modules_here.add(bound)
        elif isinstance(node, ast.arg) and _is_module_annotation(node.annotation):
            modules_here.add(node.arg)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                and _is_module_annotation(node.annotation):
            modules_here.add(node.target.id)
    for node in ast.walk(tree):  # names assigned a module: m = importlib.import_module(...)
        if isinstance(node, ast.Assign) and _module_valued(node.value, modules_here):
            modules_here.update(t.id for t in node.targets if isinstance(t, ast.Name))

    rel = path.relative_to(root)
    out = []
    for node in sorted(ast.walk(tree), key=lambda n: getattr(n, "lineno", 0)):
        where = f"{rel}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id == "setattr" and node.args \
                    and _module_valued(node.args[0], modules_here):
                out.append(f"{where} setattr({ast.unparse(node.args[0])}, ...)")
            elif isinstance(f, ast.Attribute) and f.attr in _ENV_MUTATORS \
                    and _is_environ(f.value, environ_names):
                out.append(f"{where} os.environ.{f.attr}(...)")
            elif (isinstance(f, ast.Attribute) and f.attr in ("putenv", "unsetenv")
                  and isinstance(f.value, ast.Name) and f.value.id == "os") \
                    or (isinstance(f, ast.Name) and f.id in putenv_names):
                out.append(f"{where} {ast.unparse(f)}(...)")
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign | ast.Delete):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for t in targets:
            if _is_environ(t, environ_names) or (isinstance(t, ast.Subscript)
                                                 and _is_environ(t.value, environ_names)):
                out.append(f"{where} {ast.unparse(t)} written")
    return out


def all_global_state_writes(root: Path) -> list[str]:
    return [w for package in PACKAGES for path in modules(root, package)
            for w in global_state_writes(path, root)]


def test_no_module_patches_modules_or_the_environment() -> None:
    writes = all_global_state_writes(ROOT)
    assert not writes, "\n".join(writes)


def test_the_global_state_check_sees_each_kind_of_write(tmp_path: Path) -> None:
    (tmp_path / "pyredo").mkdir()
    (tmp_path / "pyredo" / "page.py").write_text("")
    (tmp_path / "harness").mkdir()
    (tmp_path / "harness" / "bad.py").write_text(
        "import importlib, os, sys\n"
        "from os import environ, putenv\n"
        "from types import ModuleType\n"
        "from pyredo import page\n"
        "def f(m: ModuleType, cls: type) -> None:\n"
        "    setattr(m, 'x', 1)\n"
        "    setattr(page, 'x', 1)\n"
        "    setattr(sys.modules['a'], 'x', 1)\n"
        "    mod = importlib.import_module('a')\n"
        "    setattr(mod, 'x', 1)\n"
        "    setattr(cls, 'x', 1)\n"  # a class: allowed
        "    os.environ['A'] = '1'\n"
        "    environ['B'] = '1'\n"
        "    os.environ.update(C='1')\n"
        "    os.environ.setdefault('D', '1')\n"
        "    del os.environ['E']\n"
        "    os.putenv('F', '1')\n"
        "    putenv('G', '1')\n"
        "    env = {**os.environ, 'H': '1'}\n"  # a copy: allowed
        "    print(os.environ.get('I'), env)\n")
    assert [w.split(" ", 1)[0] for w in all_global_state_writes(tmp_path)] == [
        f"harness/bad.py:{n}" for n in (6, 7, 8, 10, 12, 13, 14, 15, 16, 17, 18)]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_has_modules(package: str) -> None:
    assert any(modules(ROOT, package)), package
