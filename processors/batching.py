"""Batches of Faust stream events whose size follows the backlog.

Faust's `take_events(max, within)` waits `within` for each batch and lets no event
in while the previous batch is processed, so a worker on a backlog gets batches of
what Faust can hand over in `within` (about 300 events in 5 ms), and pays the
per-customer work of a batch (snapshot, preview, record) for few events each. A
longer `within` would add its whole length to the latency of a quiet stream.

`backlog_batches` keeps the short wait while the worker is caught up and waits up
to `within_backlog` while `behind()` says the worker has a backlog, and events keep
arriving while a batch is processed (up to `max_size` pending: Faust's stream then
waits, which is the backpressure). Acknowledgement is the same as Faust's: an
event is acknowledged only after the caller returned from processing the batch
holding it (the generator resumes), never before, so Faust never commits an offset
whose effects are not durable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any


async def backlog_batches(
    stream: Any,
    max_size: int,
    within: float,
    within_backlog: float,
    behind: Callable[[], bool],
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
            timeout = within_backlog if behind() else within
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(full.wait(), timeout)
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
