"""Process-wide settings of a close process (the CLI's or a close worker's).

A close allocates a few small objects per event (the decoded event, its Decimal and
datetime, the ledger's copy-on-write state) and keeps most of them until the end
(every event id is remembered for dedupe). CPython's cyclic garbage collector then
runs a generation-0 pass every 700 net allocations and re-traverses the growing
survivors in generation 1 and 2 passes, about a sixth of the fold's CPU time, to
find cycles that the fold does not create. `prepare_process` moves everything
allocated so far (modules, schemas, catalog) out of the collector's sight and makes
its passes rare; memory is still freed by reference counting as usual.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 50_000


def prepare_process() -> None:
    """Call once after the setup of a close process, before it reads the log."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
