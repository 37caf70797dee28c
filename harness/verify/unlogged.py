"""The end of recovery for unlogged relations: their init fork becomes their main fork.

An unlogged relation's main fork is never WAL-logged; its init fork (the empty
relation: a metapage, a sequence's first tuple, or nothing for a heap) is. At
the end of crash recovery PostgreSQL calls ResetUnloggedRelations
(src/backend/storage/file/reinit.c, UNLOGGED_RELATION_INIT): for every relation
with an init fork it copies the init fork file over the main fork, which is why
redo flushes init-fork buffers as it replays them (XLogReadBufferForRedoExtended).
So after recovery the main fork of each unlogged relation of the range is the
init-fork pages the engines rebuilt.

The primary witnesses that where its main fork is in that state (it was reset
by a crash restart, or never written since it was built empty); where it holds
rows written since, it differs, and that is no finding: those writes have no WAL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from oracles.masks import MaskError, mask_page
from pyredo.rmgrlist import PG15, RmgrTable
from pyredo.wal.record import MAIN_FORKNUM, BufferTag, RelFileNode

PageSource = Callable[[BufferTag], "bytes | None"]


def end_of_recovery(unlogged: Iterable[RelFileNode], init_pages: Mapping[BufferTag, tuple[bytes, str | None]],
                    primary: PageSource | None, table: RmgrTable = PG15) -> dict[str, Any] | None:
    """What recovery's end does with the range's unlogged relations, and what the
    primary's main forks say of it. ``init_pages``: the init-fork pages every
    engine agreed on (page, owner); ``table``: the WAL's major's (its masks).
    None when the range has no unlogged relation."""
    rels = set(unlogged)
    if not rels:
        return None
    with_pages = {t.rnode for t in init_pages}
    empty = len(rels - with_pages)
    witnessed = differs = absent = 0
    for tag, (page, owner) in sorted(init_pages.items()):
        main = primary(tag._replace(fork=MAIN_FORKNUM)) if primary is not None else None
        if main is None:
            absent += 1
            continue
        try:
            same = (mask_page(main, owner or "Heap", tag.blk, MAIN_FORKNUM, final_state=True, table=table)
                    == mask_page(page, owner or "Heap", tag.blk, MAIN_FORKNUM, final_state=True, table=table))
        except MaskError:
            same = main == page
        if same:
            witnessed += 1
        else:
            differs += 1
    summary = (f"crash recovery ends by copying the init fork of each of the {len(rels)} unlogged relations "
               f"over its main fork (ResetUnloggedRelations, reinit.c): the {len(init_pages)} init-fork pages "
               f"verified become their main fork ({empty} relations have an empty init fork, so an empty "
               f"main fork); the primary's main fork matches on {witnessed} pages")
    if differs:
        summary += f", holds rows written without WAL on {differs}"
    if absent:
        summary += f", lacks {absent} (dropped or truncated since)"
    return {"unlogged_relations": len(rels), "init_pages": len(init_pages), "empty_init_forks": empty,
            "main_fork_witnessed": witnessed, "main_fork_differs": differs, "main_fork_absent": absent,
            "summary": summary}
