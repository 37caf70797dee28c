"""Throughput machinery (issue 18): seconds by phase in every report, ``check --workers``
splitting the plan and merging to what one process finds, one counts dataclass."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable
from dataclasses import replace

from factories import RNODE, encoded

from harness.interrupts import Interrupts
from harness.reports.counts import ENGINE_PHASE, Seconds
from harness.reports.schema import DivergenceKind, FuzzReport, IterationSummary
from harness.verify.check import Checker, CheckReport
from harness.verify.parallel import check_range, split_plan
from harness.verify.plan import RESET_BASE, build_plan, decode_all
from pyredo import BLCKSZ
from pyredo.engine import RedoEngine
from pyredo.page.bufpage import PageInit
from pyredo.rmgr import RM_SMGR_ID, RM_XLOG_ID
from pyredo.wal.builder import BlockSpec
from pyredo.wal.record import (
    MAIN_FORKNUM,
    VISIBILITYMAP_FORKNUM,
    BufferTag,
    DecodedXLogRecord,
    RelFileNode,
)

XLOG_FPI = 0xB0
XLOG_FPI_FOR_HINT = 0xA0
XLOG_SMGR_TRUNCATE = 0x20
SMGR_TRUNCATE_ALL = 0x7
OTHER = RelFileNode(RNODE.spc, RNODE.db, RNODE.rel + 1)


class Named:
    """pyredo under another name: a second engine that agrees."""

    def __init__(self, name: str) -> None:
        self.name, self.engine = name, RedoEngine()

    def reconstruct(self, t: BufferTag, base: bytes | None, records: Iterable[DecodedXLogRecord]) -> bytes:
        return self.engine.reconstruct(t, base, records)


def _page(n: int) -> bytes:
    page = bytearray(BLCKSZ)
    PageInit(page, BLCKSZ, 0)
    page[100:104] = n.to_bytes(4, "little")
    return bytes(page)


def _records() -> list[DecodedXLogRecord]:
    """Full-page images of 6 blocks of one relation and 4 of another, then one record
    that images a block of each: it is verified on two pages (of two workers)."""
    lsn, out = 0x100_0000, []
    for rnode, n in ((RNODE, 6), (OTHER, 4)):
        for blk in range(n):
            out.append(encoded(RM_XLOG_ID, XLOG_FPI, b"", [BlockSpec(0, rnode, MAIN_FORKNUM, blk, image=_page(blk))],
                               lsn=lsn))
            lsn += 0x4000
    out.append(encoded(RM_XLOG_ID, XLOG_FPI, b"", [BlockSpec(0, RNODE, MAIN_FORKNUM, 0, image=_page(7)),
                                                   BlockSpec(1, OTHER, MAIN_FORKNUM, 0, image=_page(8))], lsn=lsn))
    return out


def _check(records: list[DecodedXLogRecord], workers: int) -> CheckReport:
    plan = build_plan(records)
    primary = {bp.tag: RedoEngine().reconstruct(bp.tag, None, bp.records) for bp in plan}

    def make() -> Checker:
        return Checker([RedoEngine(), Named("walredo")], primary.get, end_lsn=records[-1].end_lsn)

    return check_range(make, records, start=None, end=None, workers=workers, interrupts=Interrupts(),
                       engines=["pyredo", "walredo"], primary=primary.get)


def test_split_plan_gives_every_block_to_one_worker_and_keeps_plan_order() -> None:
    plan = build_plan(_records())
    shares = split_plan(plan, 2)
    assert sorted(t for s in shares for t in s) == sorted(plan.blocks)
    assert all(shares)
    order = list(plan.blocks)
    assert all(s == sorted(s, key=order.index) for s in shares)
    assert split_plan(plan, 1) == [order]


def test_workers_merge_to_the_counts_of_one_process() -> None:
    records = _records()
    one, two = _check(records, 1), _check(records, 2)
    assert one.pages_checked == 10 and not one.divergences
    # the two-block record counts once; its images supersede the first images of its two blocks
    assert one.replays_superseded == 2
    assert sum(one.record_types.values()) == len(records) - 2
    a, b = one.result().to_json(), two.result().to_json()
    a.pop("phases"), b.pop("phases")
    assert a == b


def test_a_check_says_where_its_time_went() -> None:
    records = _records()
    t0 = time.perf_counter()
    report = Checker([RedoEngine(), Named("walredo")], None).check_records(iter(records))
    wall = time.perf_counter() - t0
    assert {"decode", "plan", ENGINE_PHASE + "pyredo", ENGINE_PHASE + "walredo", "coverage", "judge"} <= set(report.phases)
    assert all(v >= 0 for v in report.phases.values())
    assert sum(report.phases.values()) <= wall  # phases do not overlap
    assert list(report.result().to_json()["phases"])[:3] == ["decode", "plan", ENGINE_PHASE + "pyredo"]


def test_decode_all_keeps_a_list_and_restores_the_collector() -> None:
    import gc

    records = _records()
    assert decode_all(records) is records
    assert gc.isenabled() and decode_all(iter(records)) == records and gc.isenabled()
    gc.unfreeze()


def test_decode_all_freezes_what_it_decoded() -> None:
    """The records leave the collector's generations before it resumes: its next collection
    does not walk them (records_frozen's unfreeze gives them back)."""
    import gc

    gc.unfreeze()
    decoded = decode_all(iter(_records()))
    try:
        assert gc.get_freeze_count() >= len(decoded) > 0
        assert all(not any(r is x for x in gc.get_objects(0)) for r in decoded[:5])
    finally:
        gc.unfreeze()


def test_phases_add_up_through_iterations_campaigns_and_merges() -> None:
    it = IterationSummary(0, 1, "fpw", 2.0, records=3, phases=Seconds(workload=1.0, decode=0.25))
    assert IterationSummary.from_json(it.to_json()) == it
    rep = FuzzReport(seed=0, shard="1/1")
    rep.add(it)
    rep.add(IterationSummary(1, 2, "fpw", 1.0, records=2, phases=Seconds(workload=0.5)))
    assert rep.records == 5 and rep.phases == {"workload": 1.5, "decode": 0.25}
    assert rep.results[0].phases == {"workload": 1.0, "decode": 0.25}
    back = FuzzReport.from_json(rep.to_json())
    assert back.phases == rep.phases and back.to_json() == rep.to_json()
    merged = FuzzReport.merged([rep, back])
    assert merged.phases == {"workload": 3.0, "decode": 0.5} and merged.records == 10
    assert "phases" not in IterationSummary(0, 1, "fpw").to_json()  # reports before phases read back unchanged


def test_bench_fuzz_figures_say_the_harness_share_and_the_slowest_iterations() -> None:
    from harness.bench.fuzz import fuzz_figures

    rep = FuzzReport(seed=0, shard="1/1", engines=["pyredo", "walredo"])
    rep.add(IterationSummary(0, 1, "fpw", 4.0, pages_checked=30, replays_superseded=7,
                             phases=Seconds(workload=1.0, checkpoint=0.5, decode=0.5, **{"engine walredo": 1.5})))
    rep.add(IterationSummary(1, 2, "fpw", 2.0, pages_checked=10, phases=Seconds(workload=1.5, plan=0.25)))
    rep.seconds = 30.0
    fig = fuzz_figures(rep, slowest=1)
    assert fig["pages_per_minute"] == 80.0 and fig["iteration_seconds"] == 6.0
    assert fig["harness_share"] == round(2.25 / 6, 3) and fig["workload_share"] == round(2.5 / 6, 3)
    assert fig["engine_seconds"] == {"walredo": 1.5}
    assert fig["replays_superseded"] == 7 and fig["unknown_divergences"] == 0
    assert [s["index"] for s in fig["slowest"]] == [0] and next(iter(fig["slowest"][0]["phases"])) == "workload"


# -- records a later image erases: left out of the page's redo ------------------------------
def _fpi(blk: int, n: int, lsn: int, *, hole: bool = False, apply: bool = True) -> DecodedXLogRecord:
    page = _page(n)
    lower, upper = int.from_bytes(page[12:14], "little"), int.from_bytes(page[14:16], "little")
    spec = BlockSpec(0, RNODE, MAIN_FORKNUM, blk, image=page, apply=apply,
                     hole=(lower, upper - lower) if hole else None)
    return encoded(RM_XLOG_ID, XLOG_FPI, b"", [spec], lsn=lsn)


def test_a_page_starts_at_its_last_image_and_says_what_it_left_out() -> None:
    first, second = _fpi(0, 1, 0x100_0000), _fpi(0, 2, 0x100_4000)
    plan = build_plan([first, second, _fpi(1, 4, 0x100_C000)])
    bp = plan.blocks[BufferTag(*RNODE, MAIN_FORKNUM, 0)]
    assert [r.lsn for r in bp.records] == [second.lsn] and bp.superseded == 1
    assert bp.self_contained and not bp.needs_base
    report = Checker([RedoEngine(), Named("walredo")], None).check_plan(plan)
    assert report.replays_superseded == 1 and report.result().to_json()["replays_superseded"] == 1
    assert report.record_types == {"XLOG/FPI": 2}  # the first image cannot reach the page: not verified


def test_an_image_kept_for_consistency_checking_does_not_reset_the_page() -> None:
    """wal_consistency_checking's image (BKPIMAGE_APPLY unset) is not restored at redo."""
    assert not _fpi(0, 1, 0x100_0000, apply=False).resets(BufferTag(*RNODE, MAIN_FORKNUM, 0))
    assert _fpi(0, 1, 0x100_0000).resets(BufferTag(*RNODE, MAIN_FORKNUM, 0))
    assert not _fpi(0, 1, 0x100_0000).resets(BufferTag(*RNODE, MAIN_FORKNUM, 1))


def test_an_image_erases_what_a_truncation_left_unverifiable() -> None:
    trunc = encoded(RM_SMGR_ID, XLOG_SMGR_TRUNCATE, struct.pack("<IIIII", 0, *RNODE, SMGR_TRUNCATE_ALL),
                    lsn=0x100_0000)
    vm = BufferTag(*RNODE, VISIBILITYMAP_FORKNUM, 0)
    spec = BlockSpec(0, RNODE, VISIBILITYMAP_FORKNUM, 0, image=_page(1))
    before = build_plan([trunc, encoded(RM_XLOG_ID, XLOG_FPI_FOR_HINT, b"", [replace(spec, apply=False)],
                                        lsn=0x100_4000)])
    assert before.blocks[vm].unverifiable
    after = build_plan([trunc, encoded(RM_XLOG_ID, XLOG_FPI_FOR_HINT, b"", [spec], lsn=0x100_4000)])
    assert after.blocks[vm].unverifiable is None and after.blocks[vm].self_contained


class _HoleKept:
    """pyredo, but restoring an image leaves the page's old bytes in the image's hole
    (RestoreBlockImage without its MemSet: the C mutant fpi_hole_not_zeroed)."""

    name = "hole_kept"

    def reconstruct(self, t: BufferTag, base: bytes | None, records: Iterable[DecodedXLogRecord]) -> bytes:
        page = bytearray(base if base is not None else bytes(BLCKSZ))
        for rec in records:
            blk = next(b for b in rec.blocks.values() if b.tag == t)
            old = bytes(page)
            page[:] = RedoEngine().reconstruct(t, bytes(page), [rec])
            page[blk.hole_offset : blk.hole_offset + blk.hole_length] = \
                old[blk.hole_offset : blk.hole_offset + blk.hole_length]
        return bytes(page)


def test_a_page_that_starts_with_an_image_is_redone_from_garbage_that_shows_a_hole_left_unzeroed() -> None:
    rec = _fpi(0, 1, 0x100_0000, hole=True)
    plan = build_plan([rec])
    bp = plan.blocks[BufferTag(*RNODE, MAIN_FORKNUM, 0)]
    want = RedoEngine().reconstruct(bp.tag, None, bp.records)
    assert RedoEngine().reconstruct(bp.tag, RESET_BASE, bp.records) == want  # a correct engine
    primary = {bp.tag: want}
    report = Checker([RedoEngine(), _HoleKept()], primary.get, end_lsn=rec.end_lsn).check_plan(plan)
    assert len(report.divergences) == 1
    div = report.divergences[0]
    # the hole is unused space, which the primary's masks hide: the engines' vote finds it
    assert div.kind == DivergenceKind.ENGINE_DISAGREEMENT and div.base_page == RESET_BASE
    assert _HoleKept().reconstruct(bp.tag, None, bp.records) == want  # a zero page would have hidden it


def test_supersede_false_keeps_every_record_of_a_page() -> None:
    first, second = _fpi(0, 1, 0x100_0000), _fpi(0, 2, 0x100_4000)
    plan = build_plan([first, second], supersede=False)
    bp = plan.blocks[BufferTag(*RNODE, MAIN_FORKNUM, 0)]
    assert [r.lsn for r in bp.records] == [first.lsn, second.lsn] and bp.superseded == 0
    report = Checker([RedoEngine(), Named("walredo")], None, supersede=False).check_records([first, second])
    assert report.replays_superseded == 0 and report.record_types == {"XLOG/FPI": 2}
