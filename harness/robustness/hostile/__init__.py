"""Hostile input: mutate REAL WAL and real decoded records, and hold pyredo to
its promise — every outcome is a result or a typed error that says where; no
untyped exception, no hang, no allocation sized by an attacker's length field.

Two targets, one runner:

* the decoder (``mode="wal"``): real segments made once by a LocalCluster of
  the chosen major (``--pg V``; 1 MB segments, wal_compression pglz, lz4 and zstd
  in turn, those the server was built with; image categories of a method the
  corpus lacks are left out) are copied to a
  scratch directory; each case patches those files in place (bit flips,
  truncation, a missing segment, spliced pages, bad page headers, wrong
  xl_tot_len, bogus block headers, huge lengths, broken compressed images),
  reads the neighbourhood with ``WalReader`` — decoding every record and
  restoring every image — then undoes its patches. Some categories call
  ``decode_record`` and ``restore_block_image`` directly with edits the file
  layout cannot carry (bytes inserted or cut, arbitrary hole fields).
  A result or a ``WalError`` naming LSN and file passes.
* pyredo (``mode="redo"``): the records of one page from the same WAL, one of
  them with mutated main data, block data or info bits, go through
  ``RedoEngine(table).reconstruct`` with the table of the corpus' major (its
  page magic, ``WalCorpus.major``), which also picks the record types an info
  mutation swaps in. A page or a ``RedoError`` naming rmgr, info
  and LSN passes; the report counts, per rmgr, which exception a routine
  raised before the engine wrapped it, and the slowest record types.

Each case runs under an interval timer (``signal.setitimer``); a case that
overruns is a hang. ``faulthandler`` is the backstop for one stuck in C.
Memory: tracemalloc's peak per case (Python allocations), and ru_maxrss growth
over the run (everything, C libraries included). A soft RLIMIT_AS turns a
runaway allocation into a MemoryError (counted as untyped) instead of an OOM.

Cases are deterministic: case ``i`` of seed ``S`` draws from
``random.Random(f"{S}:{category}:{i}")`` (redo: ``f"{S}:redo:{i}"``), so any
failure replays alone (``run_wal_case`` / ``run_redo_case``); its note says
what was mutated.

The modules: ``corpus`` (the real WAL and its record index), ``layout`` (where a
record's fields and payloads lie), ``edits`` (byte and value edits), ``wal``
(the decoder target and its mutation categories), ``redo`` (the pyredo target
and record mutation), ``outcome`` (outcomes, per-category counts, the report),
``runner`` (timer, limits, one case, a whole run).
"""

from __future__ import annotations

from harness.robustness.hostile.corpus import (
    FIXTURE_STEPS,
    WalCorpus,
    load_or_make_corpus,
    make_real_wal,
)
from harness.robustness.hostile.outcome import HostileReport, Outcome
from harness.robustness.hostile.runner import (
    address_space_limit,
    run_hostile,
    run_redo_case,
    run_wal_case,
)
from harness.robustness.hostile.wal import WAL_CATEGORIES

__all__ = [
    "FIXTURE_STEPS",
    "WAL_CATEGORIES",
    "HostileReport",
    "Outcome",
    "WalCorpus",
    "address_space_limit",
    "load_or_make_corpus",
    "make_real_wal",
    "run_hostile",
    "run_redo_case",
    "run_wal_case",
]
