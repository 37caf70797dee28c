"""The mutant catalog: one module per resource manager, assembled in one order.

Each module (``xlog``, ``heap``, ``heap2``, ``btree``, ``hash``, ``gin``,
``gist``, ``spgist``, ``brin``, ``seq``, ``generic``) lists its mutants in
``MUTANTS``; ``CATALOG`` is all of them by name, in that order (the order
``redodiff selftest`` runs and lists them in). The framework — what a mutant
is, how it is built into a table — is ``harness.selftest.mutants``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.selftest.catalog import (
    brin,
    btree,
    generic,
    gin,
    gist,
    hash,
    heap,
    heap2,
    seq,
    spgist,
    xlog,
)
from harness.selftest.mutants import Mutant

MODULES = (xlog, heap, heap2, btree, hash, gin, gist, spgist, brin, seq, generic)


def _assemble() -> dict[str, Mutant]:
    out: dict[str, Mutant] = {}
    for mod in MODULES:
        for m in mod.MUTANTS:
            if m.name in out:
                raise ValueError(f"mutant {m.name} is in the catalog twice")
            out[m.name] = m
    return out


CATALOG: dict[str, Mutant] = _assemble()


def get(name: str) -> Mutant:
    """The mutant ``name``; KeyError naming the known ones otherwise."""
    try:
        return CATALOG[name]
    except KeyError:
        raise KeyError(f"unknown mutant {name!r}; known: {', '.join(sorted(CATALOG))}") from None


@dataclass
class CatalogSummary:
    """Counts by rmgr and category (for ``selftest --list`` and tests)."""

    by_rmgr: dict[str, int] = field(default_factory=dict)
    by_category: dict[str, int] = field(default_factory=dict)


def summary() -> CatalogSummary:
    s = CatalogSummary()
    for m in CATALOG.values():
        s.by_rmgr[m.rmgr] = s.by_rmgr.get(m.rmgr, 0) + 1
        s.by_category[m.category] = s.by_category.get(m.category, 0) + 1
    return s
