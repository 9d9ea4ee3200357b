"""Liveness watchdog of the fold worker: exit when there is work and no progress.

The worker's consumer can stop fetching while the process stays alive (for
instance when it lost its group membership across a broker restart and never
rejoins). Nothing inside the worker notices, so without the watchdog a supervisor
would never restart it. The watchdog looks from outside the group's consumer:
every few seconds a separate plain consumer (the runtime's `LagReader`: never
subscribes, never commits) reads the source partitions' end offsets and the group's
committed offsets from the broker. It runs in its own thread and event loop: Faust
starts app tasks and timers only after table recovery completed, so a worker stuck
in a rebalance or in recovery would never be watched by one.

Decision (`StallWatchdog`, pure, clock injected): the worker is stalled when, for
`timeout_s` without interruption, (a) some watched partition has data beyond the
group's committed offset and (b) the count of messages the pipeline folded did not
move (the group's commits do not count: Faust can move them forward while handing
the pipeline nothing). Then the worker exits with code 70 unacknowledged, the same
path as a failed batch (`on_fatal`); a restart resumes from the committed offsets,
so exiting costs only redelivery.

Watched partitions: the worker's own assignment of the source topics, or every
source partition while it has none (a worker left out of the group while the
group has lag is stuck too). Not judged (the timer restarts): while the runtime
rebalances or recovers tables (`Runtime.rebalancing`, `Runtime.in_recovery`;
recovery of a long changelog may take longer than the timeout), but only up
to `busy_limit_s` (default 10 x the timeout) in one stretch, since a rebalance
that never ends is a hang too; and while the broker cannot be asked (it may be
restarting; the timeout then counts from when it answers again).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Hashable
from typing import Any

from processors.worker.ports import LagReader, Partition, Runtime

log = logging.getLogger(__name__)

Monotonic = Callable[[], float]


class Stalled(Exception):
    """Lag and no progress for longer than the stall timeout."""


class StallWatchdog:
    """Decides, from successive observations, whether the worker is stalled."""

    def __init__(
        self, timeout_s: float, clock: Monotonic = time.monotonic, busy_limit_s: float | None = None
    ) -> None:
        self.timeout_s = timeout_s
        self.busy_limit_s = 10 * timeout_s if busy_limit_s is None else busy_limit_s
        self._clock = clock
        self._progress: Hashable = None
        self._since: float | None = None  # when the current stall candidate began
        self._busy_since: float | None = None

    def reset(self) -> None:
        """Nothing to judge now (broker unreachable)."""
        self._since = None
        self._busy_since = None

    def busy(self) -> bool:
        """Faust rebalances or recovers: not judged, unless for `busy_limit_s` in one
        stretch (True then: stalled)."""
        now = self._clock()
        self._since = None
        if self._busy_since is None:
            self._busy_since = now
        return now - self._busy_since >= self.busy_limit_s

    def observe(self, progress: Hashable, lagging: bool) -> bool:
        """Record one observation; True when lag has stood still for `timeout_s`.

        `progress` is anything that changes whenever the worker moves forward (here:
        messages folded and the group's committed offsets)."""
        now = self._clock()
        self._busy_since = None
        moved = progress != self._progress
        self._progress = progress
        if not lagging or moved or self._since is None:
            self._since = now if lagging else None
            return False
        return now - self._since >= self.timeout_s

    def stalled_for(self) -> float:
        since = self._since if self._since is not None else self._busy_since
        return 0.0 if since is None else self._clock() - since


class RebalanceLimit:
    """Whether the worker counts as busy: while it recovers tables (bounded only by
    the watchdog's own busy limit: a long changelog takes long), and while it
    rebalances, but then only for `limit_s` in one stretch. A rebalance longer than
    that is judged like any other lack of progress: one that never ends is a hang."""

    def __init__(self, limit_s: float, clock: Monotonic = time.monotonic) -> None:
        self.limit_s = limit_s
        self._clock = clock
        self._since: float | None = None

    def busy(self, rebalancing: bool, recovering: bool) -> bool:
        if recovering or not rebalancing:
            self._since = None
            return recovering
        now = self._clock()
        if self._since is None:
            self._since = now
        return now - self._since < self.limit_s


async def watch(
    watchdog: StallWatchdog,
    lag: LagReader,
    *,
    busy: Callable[[], bool],
    watched: Callable[[], list[Partition]],
    folded: Callable[[], int],
    interval_s: float,
    on_stalled: Callable[[BaseException], object],
) -> None:
    """The worker's watchdog loop (runs until cancelled or `on_stalled`)."""
    try:
        while True:
            await asyncio.sleep(interval_s)
            if busy():
                if watchdog.busy():
                    on_stalled(
                        Stalled(f"rebalancing/recovering for {watchdog.stalled_for():.0f} s")
                    )
                    return
                continue
            try:
                offsets = await asyncio.wait_for(lag.read(watched()), timeout=max(interval_s, 10))
            except Exception as exc:  # broker away: judge again once it answers
                log.debug("watchdog: offsets not readable: %r", exc)
                watchdog.reset()
                continue
            lagging = [f"{tp.topic}/{tp.partition}" for tp, (c, e) in offsets.items() if e > c]
            # Progress is what the worker folded, not the group's commits: Faust can
            # move its commits forward while handing the pipeline nothing, and counting
            # that as progress would hide such a stall for ever.
            progress = folded()
            if watchdog.observe(progress, bool(lagging)):
                on_stalled(
                    Stalled(
                        f"no progress for {watchdog.stalled_for():.0f} s with lag on "
                        f"{', '.join(lagging[:8])}{' ...' if len(lagging) > 8 else ''}"
                    )
                )
                return
    finally:
        await lag.stop()


def start_thread(run: Callable[[], Coroutine[Any, Any, None]]) -> threading.Thread:
    """Run the watchdog coroutine in a daemon thread with its own event loop, so
    neither Faust's start-up order nor a busy worker loop can keep it from running."""
    thread = threading.Thread(target=lambda: asyncio.run(run()), name="stall-watchdog", daemon=True)
    thread.start()
    return thread


def watchdog_starter(
    runtime: Runtime,
    sources: tuple[str, ...],
    partitions: int,
    timeout_s: float,
    folded: Callable[[], int],
    on_fatal: Callable[[BaseException], object],
) -> Callable[[], object]:
    """A function that starts the watchdog thread for `runtime`: exit (`on_fatal`,
    code 70) when lag stands still for `timeout_s`. `folded` is the pipeline's count
    of messages made durable; until it moves, the worker is starting (group join,
    changelog recovery) and judged like recovery, only beyond the busy limit."""
    everything = [Partition(t, p) for t in sources for p in range(partitions)]

    def watched() -> list[Partition]:
        mine = [tp for tp in runtime.assigned() if tp.topic in sources]
        return mine or everything

    limit = RebalanceLimit(2 * timeout_s)

    def busy() -> bool:
        recovering = folded() == 0 or runtime.in_recovery
        return limit.busy(runtime.rebalancing, recovering)

    async def _watchdog() -> None:
        await watch(
            StallWatchdog(timeout_s),
            runtime.lag_reader(),
            busy=busy,
            watched=watched,
            folded=folded,
            interval_s=min(5.0, timeout_s / 3),
            on_stalled=on_fatal,
        )

    return lambda: start_thread(_watchdog)
