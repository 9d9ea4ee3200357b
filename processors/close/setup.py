"""Process-wide settings of a close process (the CLI's or a close worker's).

A close allocates a few small objects per event (the decoded event, its Decimal and
datetime, the ledger's copy-on-write state) and keeps most of them until the end
(the ledger remembers every applied event for dedupe). CPython's cyclic garbage
collector then runs a generation-0 pass every 700 net allocations and re-traverses
the growing survivors in generation 1 and 2 passes: a large share of the fold's
CPU time (bench/close_cpu.py shows it), spent looking for reference cycles
that the fold does not create (a full collection after a fold finds none; memory
is freed by reference counting as usual).

`prepare_process` moves everything allocated during setup (modules, schemas,
catalog) out of the collector's sight and makes its passes rare; `paused_gc`
switches it off for the duration of a fold. Garbage cycles made meanwhile (only
possible around rare bad records, through exception tracebacks) are collected by
the first pass after the fold.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

GEN0_THRESHOLD = 50_000


def prepare_process() -> None:
    """Call once after the setup of a close process, before it reads the log."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection inside the block (reference counting still frees
    memory); the collector's previous state is restored after it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
