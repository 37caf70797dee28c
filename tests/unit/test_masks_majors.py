"""Masks per major: ``mask_page`` takes the mask the checked WAL's table names (its
``MASK_SINCE`` column), not PostgreSQL 15's; the checker and the HTML report pass theirs."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import pytest

from harness.reports.html import _table_of
from harness.verify.check import Checker
from harness.verify.unlogged import end_of_recovery
from oracles.masks import NoMask, mask_page
from oracles.masks.btree import btree_mask
from pyredo import BLCKSZ
from pyredo.engine import RedoEngine
from pyredo.page import bufpage
from pyredo.rmgr import RM_HEAP_ID
from pyredo.rmgrlist import PG15, PG17, PG18, RmgrTable
from pyredo.wal.record import INIT_FORKNUM, MAIN_FORKNUM, BufferTag, RelFileNode


def _with_heap_mask(table: RmgrTable, mask: str | None) -> RmgrTable:
    rows = {**table.rows, RM_HEAP_ID: replace(table.rows[RM_HEAP_ID], mask=mask)}
    return replace(table, rows=MappingProxyType(rows))


def _page() -> bytes:
    page = bytearray(BLCKSZ)
    bufpage.PageInit(page, BLCKSZ, 16)
    bufpage.PageSetLSN(page, 0x1234)
    return bytes(page)


def test_mask_page_uses_the_mask_of_the_table_it_is_given() -> None:
    page = _page()
    assert mask_page(page, "Heap", 0, table=PG17) == mask_page(page, "Heap", 0)  # heap_mask in both
    with pytest.raises(NoMask, match="Heap"):
        mask_page(page, "Heap", 0, table=_with_heap_mask(PG17, None))
    as_btree = bytearray(page)
    btree_mask(as_btree, 0)
    assert mask_page(page, "Heap", 0, table=_with_heap_mask(PG18, "btree_mask")) == bytes(as_btree)


def test_the_checker_masks_with_its_engines_table() -> None:
    assert Checker([RedoEngine(PG17)], None).table is PG17


def test_end_of_recovery_compares_main_forks_under_the_tables_mask() -> None:
    """Two pages that differ only in their LSN: heap_mask (PG17's) makes them the same; a
    table with no Heap mask leaves the raw comparison, and they differ."""
    init, main = _page(), bytearray(_page())
    bufpage.PageSetLSN(main, 0x9999)
    tag = BufferTag(*RelFileNode(1663, 5, 16400), INIT_FORKNUM, 0)
    pages = {tag: (init, "Heap")}

    def primary(t: BufferTag) -> bytes | None:
        return bytes(main) if t == tag._replace(fork=MAIN_FORKNUM) else None

    masked = end_of_recovery([tag.rnode], pages, primary, PG17)
    assert masked is not None and masked["main_fork_witnessed"] == 1
    raw = end_of_recovery([tag.rnode], pages, primary, _with_heap_mask(PG17, None))
    assert raw is not None and raw["main_fork_differs"] == 1


@pytest.mark.parametrize(("pg_version", "table"), [("17.10", PG17), ("18.6 (Debian)", PG18), (None, PG15),
                                                   ("postgres (PostgreSQL) 15.18", PG15), ("9", PG15)])
def test_a_bundle_report_masks_with_its_majors_table(pg_version: str | None, table: RmgrTable) -> None:
    assert _table_of(pg_version) is table
