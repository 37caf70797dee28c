"""Neon's comparison profile (oracles.neon_profile) and the tag-layout probe: pure.

The VISIBLE allowance lets Neon's page differ in pd_lsn alone, and only where
the last change to the heap page is a Heap2/VISIBLE record naming it as block 1;
every other difference is left for the vote. Each application is named in the
page's verdict label, so the report counts it.
"""

from __future__ import annotations

from factories import RNODE, encoded, spec, tag

from harness.verify.verdict import Witnessed, judge, reconcile
from oracles.neon_profile import NEON_PROFILE, OTHER_BLOCKS_DONE, VISIBLE_SETS_LSN
from oracles.walredo_probe import PROBE_TAG, layout_probe
from oracles.walredo_protocol import parse_request
from pyredo.page.bufpage import PageGetLSN, PageInit, PageSetLSN
from pyredo.wal.builder import BlockSpec
from pyredo.wal.record import VISIBILITYMAP_FORKNUM

RM_HEAP2_ID, XLOG_HEAP2_VISIBLE = 9, 0x40
HEAP = tag(3)


class _Neon:
    name = "neon"
    profile = NEON_PROFILE


def _visible(lsn: int):  # type: ignore[no-untyped-def]
    """Heap2/VISIBLE: block 0 the VM page, block 1 the heap page (PostgreSQL 17)."""
    return encoded(RM_HEAP2_ID, XLOG_HEAP2_VISIBLE, b"\0" * 5,
                   [BlockSpec(0, RNODE, VISIBILITYMAP_FORKNUM, 0), spec(1, HEAP.blk)], lsn=lsn)


def _page(lsn: int, fill: int = 0) -> bytes:
    page = bytearray(8192)
    PageInit(page, 8192, 0)
    page[100] = fill
    PageSetLSN(page, lsn)
    return bytes(page)


def test_visible_sets_lsn_is_allowed_only_for_pd_lsn_after_a_visible_record() -> None:
    rec = _visible(0x0300_0000)
    stock = _page(0x0200_0000)
    pages = {"walredo": stock, "neon": _page(rec.end_lsn)}
    allowed = reconcile([_Neon()], HEAP, [rec], pages)
    assert VISIBLE_SETS_LSN.name in allowed and pages["neon"] == stock
    w = Witnessed("no primary")
    assert VISIBLE_SETS_LSN.name in judge(pages, {}, w, (), allowed).label


def test_any_other_difference_is_left_to_the_vote() -> None:
    rec = _visible(0x0300_0000)
    stock = _page(0x0200_0000)
    for neon in (_page(rec.end_lsn, fill=1),  # a byte besides pd_lsn
                 _page(0x0400_0000)):  # pd_lsn not the VISIBLE record's
        pages = {"walredo": stock, "neon": neon}
        assert VISIBLE_SETS_LSN.name not in reconcile([_Neon()], HEAP, [rec], pages)
        assert pages["neon"] == neon and PageGetLSN(pages["neon"]) != PageGetLSN(stock)
    # the same page through a VISIBLE record that names another heap block
    pages = {"walredo": stock, "neon": _page(rec.end_lsn)}
    assert VISIBLE_SETS_LSN.name not in reconcile([_Neon()], tag(4), [rec], pages)


def test_other_blocks_done_masks_nothing_and_is_counted() -> None:
    rec = _visible(0x0300_0000)
    page = _page(rec.end_lsn)
    pages = {"walredo": page, "neon": page}
    assert reconcile([_Neon()], HEAP, [rec], pages) == [OTHER_BLOCKS_DONE.name]
    single = encoded(RM_HEAP2_ID, XLOG_HEAP2_VISIBLE, b"", [spec(0, HEAP.blk, rnode=RNODE)])
    assert reconcile([_Neon()], HEAP, [single], pages) == []


def test_the_layout_probe_is_one_fpi_and_its_answer_is_the_image_at_the_end_lsn() -> None:
    for layout in ("neon", "old"):
        request, want = layout_probe(layout)
        req = parse_request(request, layout)
        assert req.tag == PROBE_TAG and req.base_page is None and len(req.records) == 1
        end_lsn = req.records[0][0]
        assert PageGetLSN(want) == end_lsn and len(want) == 8192
    assert layout_probe("neon")[0] != layout_probe("old")[0]
