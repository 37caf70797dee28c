"""Hostile input per major: a corpus knows the major that wrote it (its page magic),
and the redo mode mutates, names and redoes its records with that major's table; the
wal mode leaves out image categories of a compression the corpus' server lacks."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest
from factories import block, record

from harness.robustness.hostile.corpus import WalCorpus
from harness.robustness.hostile.redo import RedoTarget, mutate_record
from harness.robustness.hostile.runner import run_hostile, run_redo_case
from pyredo.rmgr import RM_HEAP2_ID
from pyredo.rmgrlist import PG15, PG17
from pyredo.wal.record import BKPIMAGE_COMPRESS_LZ4

FIXTURE = Path(__file__).resolve().parent.parent / "data" / "hostile_wal"


@pytest.fixture(scope="module")
def corpus() -> WalCorpus:
    return WalCorpus.load(FIXTURE)


def test_a_corpus_knows_its_major(corpus: WalCorpus) -> None:
    assert corpus.major == 15
    assert RedoTarget.from_corpus(corpus).table is PG15


def test_the_redo_mode_uses_the_corpus_majors_table(corpus: WalCorpus) -> None:
    as17 = dataclasses.replace(corpus, major=17)  # same records, read as 17's table names them
    t = RedoTarget.from_corpus(as17)
    assert t.table is PG17
    names = {run_redo_case(t, 0, i).rmgr for i in range(40)}
    assert names <= {r.name for r in PG17}


def test_an_info_mutation_picks_a_record_type_of_the_table() -> None:
    """xl_info mutations mostly swap in a routine key of the table they are given."""
    rec = record(RM_HEAP2_ID, 0x10, b"\0\0", block(0, 0))
    tag = rec.blocks[0].tag
    for table in (PG15, PG17):
        keys = set(table.by_module("heap2").redo)
        infos = [new.info for seed in range(300)
                 for new, note in [mutate_record(random.Random(seed), rec, tag, table)]
                 if note.startswith("xl_info") and ";" not in note]
        assert sum(i in keys for i in infos) > len(infos) / 2


def test_wal_mode_leaves_out_images_the_corpus_cannot_hold(corpus: WalCorpus) -> None:
    no_lz4 = dataclasses.replace(corpus, records=[dataclasses.replace(r, images=tuple(
        b for b in r.images if not b & BKPIMAGE_COMPRESS_LZ4)) for r in corpus.records])
    rep = run_hostile(no_lz4, mode="wal", cases=40, trace_memory=False)
    assert "image_lz4" not in rep.categories and "image_pglz" in rep.categories
