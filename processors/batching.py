"""Batches of Faust stream events whose size follows the backlog.

Faust's `take_events(max, within)` waits `within` for each batch and lets no event
in while the previous batch is processed, so a worker on a backlog gets batches of
what Faust can hand over in `within` (about 300 events in 5 ms), and pays the
per-customer work of a batch (snapshot, preview, record) for few events each. A
longer `within` would add its whole length to the latency of a quiet stream.

`backlog_batches` asks `wait()` how long the next batch may wait to fill: short
while the worker is caught up, longer with the backlog (see the worker's
`FoldPipeline.batch_wait`). Events keep arriving while a batch is processed (up
to `max_size` pending; Faust's stream then waits: backpressure). Acknowledgement
is the same as Faust's: an event is acknowledged only after the caller returned
from processing the batch holding it (the generator resumes), never before, so
Faust never commits an offset whose effects are not durable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any


async def backlog_batches(
    stream: Any,
    max_size: int,
    wait: Callable[[], float],
    admit: Callable[[Any], object] | None = None,
) -> AsyncIterator[list[Any]]:
    """Yield lists of events (Faust `EventT`) of `stream` as described above;
    `admit(message)` is called for each event's message as it joins a batch."""
    pending: list[Any] = []
    full = asyncio.Event()  # max_size pending: stop waiting
    room = asyncio.Event()  # a batch was taken: the stream may go on
    room.set()

    async def collect(value: Any) -> Any:
        event = stream.current_event
        if event is None:
            raise RuntimeError("a stream event without current_event")
        pending.append(event)
        if admit is not None:
            admit(event.message)
        if len(pending) >= max_size:
            full.set()
            room.clear()
            await room.wait()
        return value

    acks = stream.enable_acks
    stream.enable_acks = False  # acknowledged here, after processing
    stream.add_processor(collect)
    stream._enable_passive(aiter(stream.channel))  # as take_events: the stream drains
    try:
        while not stream.should_stop:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(full.wait(), wait())
            if not pending:
                continue
            batch = pending[:max_size]
            del pending[: len(batch)]
            full.clear()
            if len(pending) >= max_size:
                full.set()
            else:
                room.set()
            yield batch
            for event in batch:
                await stream.ack(event)
    finally:
        stream.enable_acks = acks
        stream._processors.remove(collect)
        room.set()


def wait_for(
    lag: int, *, within: float, within_backlog: float, backlog: int, batch_size: int
) -> float:
    """How long a batch may wait to fill with `lag` messages behind it: `within` up
    to `backlog` of them; beyond, in proportion to a full batch's worth, up to
    `within_backlog` (large batches amortize the per-customer work; a moderate lag
    does not buy a long wait)."""
    if lag <= backlog:
        return within
    return max(within, min(lag / batch_size, 1.0) * within_backlog)
