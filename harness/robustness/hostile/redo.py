"""The pyredo target (``mode="redo"``): every page's chain of records in the
corpus, and one record of a chain mutated (main data, block data, info bits)."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field

from harness.robustness.hostile.corpus import WalCorpus
from harness.robustness.hostile.edits import edit_bytes
from pyredo.rmgrlist import PG15, RmgrTable, table_for
from pyredo.wal.record import (
    BufferTag,
    DecodedXLogRecord,
)


# -- the pyredo target ------------------------------------------------------------------
@dataclass
class Chain:
    """The records of one page, from a real WAL plan (the first restores or inits it)."""

    tag: BufferTag
    records: list[DecodedXLogRecord]


@dataclass
class RedoTarget:
    """Every (page, record) of the corpus a case can aim at, grouped by rmgr."""

    chains: list[Chain] = field(default_factory=list)
    # rmid -> (chain index, index of the last record that restored/inited the page, record index)
    by_rmid: dict[int, list[tuple[int, int, int]]] = field(default_factory=dict)
    table: RmgrTable = PG15  # the corpus' major's: records are mutated, named and redone as it knows them

    MAX_PREFIX = 40  # records replayed before the mutated one: bounds a case's cost

    @classmethod
    def from_corpus(cls, corpus: WalCorpus) -> RedoTarget:
        from harness.verify.plan import build_plan
        from pyredo.wal.record import INIT_FORKNUM

        t = cls(table=table_for(corpus.major))
        plan = build_plan(corpus.decoded())
        for bp in plan.blocks.values():
            if bp.unverifiable or bp.tag.fork == INIT_FORKNUM or not bp.self_contained:
                continue
            ci = len(t.chains)
            t.chains.append(Chain(bp.tag, bp.records))
            last: int | None = None
            for k, rec in enumerate(bp.records):
                for blk in rec.blocks.values():
                    if blk.tag == bp.tag and (blk.apply_image or blk.will_init):
                        last = k
                if last is not None and k - last <= cls.MAX_PREFIX:
                    t.by_rmid.setdefault(rec.rmid, []).append((ci, last, k))
        return t


def mutate_record(rng: random.Random, rec: DecodedXLogRecord, tag: BufferTag,
                  table: RmgrTable = PG15) -> tuple[DecodedXLogRecord, str]:
    """A copy of ``rec`` with hostile main data, block data, info bits (often another
    record type of ``table``, the WAL's major's) or block references. The original
    (shared by other pages' chains) is not touched."""
    from pyredo.wal.record import BKPBLOCK_WILL_INIT

    blocks = dict(rec.blocks)
    target = next((bid for bid, b in blocks.items() if b.tag == tag), None)
    main, info = rec.main_data, rec.info
    notes = []
    for _ in range(1 if rng.random() < 0.8 else 2):
        kinds = ["main", "main", "info"]
        if blocks:
            kinds += ["block", "block", "block", "flags", "drop"]
        kind = rng.choice(kinds)
        if kind == "main":
            main, op = edit_bytes(rng, main, resize=True)
            notes.append(f"main data {op}")
        elif kind == "info":
            rmgr = table.get(rec.rmid)
            keys = list(rmgr.redo) if rmgr is not None else []
            if keys and rng.random() < 0.7:
                new = (info & ~rmgr.opmask) | rng.choice(keys) if rmgr is not None else info
            else:
                new = info ^ (1 << rng.randrange(4, 8))
            notes.append(f"xl_info {info:#x}->{new:#x}")
            info = new
        else:
            bid = target if target is not None and rng.random() < 0.7 else rng.choice(list(blocks))
            b = blocks[bid]
            if kind == "block":
                data, op = edit_bytes(rng, b.data, resize=True, max_len=0xFFFF)
                blocks[bid] = dataclasses.replace(b, data=data, has_data=bool(data) or b.has_data)
                notes.append(f"block {bid} data {op}")
            elif kind == "flags":
                which = rng.choice(("apply_image", "has_image", "will_init", "has_data"))
                if which == "will_init":
                    blocks[bid] = dataclasses.replace(b, flags=b.flags ^ BKPBLOCK_WILL_INIT)
                elif which == "apply_image":
                    blocks[bid] = dataclasses.replace(b, apply_image=not b.apply_image)
                elif which == "has_image":
                    blocks[bid] = dataclasses.replace(b, has_image=not b.has_image)
                else:
                    blocks[bid] = dataclasses.replace(b, has_data=not b.has_data)
                notes.append(f"block {bid} {which} toggled")
            else:
                del blocks[bid]
                target = None if bid == target else target
                notes.append(f"block {bid} reference dropped")
            if not blocks:
                break
    return dataclasses.replace(rec, main_data=main, info=info, blocks=blocks), "; ".join(notes)
