"""The runner: each case under an interval timer (a faulthandler backstop for
one stuck in C) and an address-space limit, its outcome classified and counted."""

from __future__ import annotations

import contextlib
import faulthandler
import random
import resource
import shutil
import signal
import sys
import time
import traceback
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from harness.robustness.hostile.corpus import COMPRESSIONS, WalCorpus
from harness.robustness.hostile.outcome import (
    OK,
    Action,
    BadResult,
    CaseTimeout,
    HostileReport,
    Outcome,
)
from harness.robustness.hostile.redo import RedoTarget, mutate_record
from harness.robustness.hostile.wal import WAL_CATEGORIES, ScratchWal, WalTarget
from pyredo import BLCKSZ
from pyredo.errors import PyredoError, RedoError, WalError
from pyredo.wal.lsn import format_lsn


def _where_ok(e: BaseException, mode: str) -> bool:
    """Does a typed error say where? WalError: LSN and file. RedoError: rmgr, info, LSN."""
    if isinstance(e, WalError):
        return e.lsn is not None and e.segment is not None
    if isinstance(e, RedoError):
        return e.rmgr is not None and e.info is not None and e.lsn is not None
    return False


def _maxrss_kb() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


@contextlib.contextmanager
def address_space_limit(extra_mb: int | None) -> Iterator[None]:
    """Cap the address space at what we use now plus ``extra_mb``: a runaway
    allocation becomes a MemoryError (an untyped outcome) instead of an OOM."""
    if not extra_mb:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    vm_kb = 0
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                vm_kb = int(line.split()[1])
    limit = vm_kb * 1024 + extra_mb * (1 << 20)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@contextlib.contextmanager
def _case_timer(seconds: float) -> Iterator[None]:
    """Raise CaseTimeout in the main thread after ``seconds``; faulthandler kills
    the process (with every thread's traceback) if even that cannot get through."""
    def on_alarm(signum: int, frame: object) -> None:
        raise CaseTimeout(f"case ran past {seconds:g}s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _arm_backstop(seconds: float) -> bool:
    """faulthandler kills the process, printing every thread's stack, if a case is
    stuck where the interval timer cannot reach (inside C). Needs a real stderr."""
    for stream in (sys.stderr, sys.__stderr__):
        if stream is None:
            continue
        try:
            faulthandler.dump_traceback_later(seconds, exit=True, file=stream)
            return True
        except (AttributeError, ValueError, OSError):
            continue
    return False


def _run_action(action: Action, mode: str, timeout: float, trace: bool) -> Outcome:
    """Run one case's action under the timer; classify what came out."""
    before = tracemalloc.get_traced_memory()[0] if trace else 0
    if trace:
        tracemalloc.reset_peak()
    backstop = _arm_backstop(max(30.0, timeout * 6))
    t0 = time.perf_counter()
    try:
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            result = action()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        o = Outcome(OK, OK, 0.0)
        if mode == "redo" and (not isinstance(result, bytes) or len(result) != BLCKSZ):
            o = Outcome("bad_result", type(result).__name__, 0.0)
    except CaseTimeout as e:
        o = Outcome("timeout", "CaseTimeout", 0.0, detail="".join(traceback.format_exception(e)[-6:]))
    except BadResult as e:
        o = Outcome("bad_result", "BadResult", 0.0, detail=str(e))
    except PyredoError as e:
        if (mode == "wal" and isinstance(e, WalError)) or (mode == "redo" and isinstance(e, RedoError)):
            kind = "typed" if _where_ok(e, mode) else "unlocated"
        else:
            kind = "untyped"  # the wrong family escaped
        cause = e.__cause__
        # pyredo.engine's catch-all: "redo routine X failed: IndexError: ..."
        stray = (type(cause).__name__ if isinstance(e, RedoError) and cause is not None
                 and e.message.startswith("redo routine ") else None)
        o = Outcome(kind, type(e).__name__, 0.0,
                    detail="" if kind == "typed" and not stray else "".join(traceback.format_exception(e)),
                    cause=type(cause).__name__ if cause is not None else None, stray=stray)
    except Exception as e:  # the finding this runner exists for
        o = Outcome("untyped", type(e).__name__, 0.0, detail="".join(traceback.format_exception(e)))
    finally:
        if backstop:
            faulthandler.cancel_dump_traceback_later()
    o.seconds = time.perf_counter() - t0
    if trace:
        o.peak_bytes = max(0, tracemalloc.get_traced_memory()[1] - before)
    return o


def run_wal_case(t: WalTarget, category: str, seed: int, i: int, *, timeout: float = 5.0,
                 trace: bool = False) -> Outcome:
    """Case ``i`` of ``category``: patch the scratch WAL, read, undo."""
    rng = random.Random(f"{seed}:{category}:{i}")
    try:
        note, action = WAL_CATEGORIES[category](rng, t)
        o = _run_action(action, "wal", timeout, trace)
    finally:
        t.scratch.restore()
    o.note = note
    return o


def run_redo_case(t: RedoTarget, seed: int, i: int, *, timeout: float = 5.0,
                  trace: bool = False) -> Outcome:
    """Case ``i`` of the redo mode: one mutated record in a real page's chain."""
    from pyredo.engine import RedoEngine

    table = t.table  # the corpus' major's
    rng = random.Random(f"{seed}:redo:{i}")
    rmid = rng.choice(sorted(t.by_rmid))
    ci, j, k = rng.choice(t.by_rmid[rmid])
    chain = t.chains[ci]
    rec, note = mutate_record(rng, chain.records[k], chain.tag, table)
    tail = chain.records[k + 1 : k + 1 + rng.randint(0, 3)]
    records = [*chain.records[j:k], rec, *tail]
    o = _run_action(lambda: RedoEngine(table).reconstruct(chain.tag, None, records), "redo", timeout, trace)
    o.note = f"{chain.tag} record {k - j + 1}/{len(records)}: {note}"
    o.rmgr = table.rmgr_name(rmid)
    # what the harness also calls on every record: type name, description, implicit pages
    try:
        o.record_type = table.record_type(rec)
        r = table.get(rec.rmid)
        if r is not None:
            r.describe(rec)
            r.tags_changed_implicitly(rec)
    except Exception as e:
        o.helper_error = f"{type(e).__name__}: {e} ({''.join(traceback.format_exception(e)[-2:]).strip()})"
    return o


def run_hostile(
    corpus: WalCorpus,
    *,
    mode: str = "wal",
    cases: int = 1000,
    seed: int = 0,
    categories: Sequence[str] | None = None,
    timeout: float = 5.0,
    trace_memory: bool = True,
    workdir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> HostileReport:
    """Run ``cases`` cases of ``mode`` ("wal" or "redo") against ``corpus``."""
    import tempfile

    if mode not in ("wal", "redo"):
        raise ValueError(f"mode {mode!r}: choose wal or redo")
    present = set().union(*(r.compressions for r in corpus.records))
    # by default, no category aimed at images of a method the corpus' server could not write
    cats = list(categories or (c for c in WAL_CATEGORIES
                               if c.removeprefix("image_") not in set(COMPRESSIONS) - present))
    for c in cats:
        if c not in WAL_CATEGORIES:
            raise ValueError(f"unknown category {c!r} (choose from {', '.join(WAL_CATEGORIES)})")
    rep = HostileReport(mode, seed, timeout=timeout, tracemalloc=trace_memory,
                        corpus={"path": str(corpus.path), "pg_major": corpus.major, "records": len(corpus.records),
                                "segments": len(corpus.segments), "start": format_lsn(corpus.start),
                                "end": format_lsn(corpus.end)})
    started_tracing = trace_memory and not tracemalloc.is_tracing()
    if started_tracing:
        tracemalloc.start()
    tmp = Path(tempfile.mkdtemp(prefix="redodiff-hostile-", dir=workdir))
    try:
        # set-up (the scratch WAL, or every record decoded and planned) before the baseline
        wt = WalTarget(corpus, ScratchWal(corpus, tmp / "wal")) if mode == "wal" else None
        rt = RedoTarget.from_corpus(corpus) if mode == "redo" else None
        rep.maxrss_start_kb = _maxrss_kb()
        t0 = time.monotonic()
        with _case_timer(timeout):
            if wt is not None:
                for i in range(cases):
                    cat = cats[i % len(cats)]
                    n = i // len(cats)
                    o = run_wal_case(wt, cat, seed, n, timeout=timeout, trace=trace_memory)
                    rep.stats(cat).add(o, f"{cat}#{n}")
                    rep.cases += 1
                    if progress is not None:
                        progress(i + 1, cases)
            elif rt is not None:
                for i in range(cases):
                    o = run_redo_case(rt, seed, i, timeout=timeout, trace=trace_memory)
                    rep.stats(o.rmgr or "?").add(o, f"redo#{i}")
                    rep.cases += 1
                    if progress is not None:
                        progress(i + 1, cases)
        rep.seconds = time.monotonic() - t0
    finally:
        rep.maxrss_end_kb = _maxrss_kb()
        if started_tracing:
            tracemalloc.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return rep
