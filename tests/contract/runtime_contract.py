"""The contract every `Runtime` adapter passes (`processors.worker.ports`): the
in-memory runtime (tests/contract/test_runtime_port.py) and Faust's on a real broker
(tests/integration/test_runtime_port_kafka.py).

The checks are written once, against the port; what the port cannot do (start a
runtime, kill it, let another group member join) a `RuntimeDriver` does, one per
runtime. Records are published through the commit order's `Producer` the driver
makes, the one the pipeline writes with. Each check starts from a fresh log and
group (a new driver) and stops its runtimes at the end.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from processors.worker.commit import CommitOrder, Producer
from processors.worker.metrics import WorkerMetrics
from processors.worker.ports import HandOver, Partition, Rebalance, Runtime
from streambill.wire.partitioner import owner

Prepare = Callable[[Runtime], None]


class RuntimeDriver(Protocol):
    """One runtime under test on a log and a group of its own."""

    sources: tuple[str, str]  # (usage-like, account-like) source topics
    partitions: int  # of each source (at least 3)
    patience: float  # seconds to wait for what the runtime does on its own
    quiet: float  # seconds without a new hand-over after which none is coming

    def producer(self, loop: asyncio.AbstractEventLoop) -> Producer:
        """A producer into the runtime's log (publishing and changelog writes)."""

    async def start(self, prepare: Prepare) -> Runtime:
        """A new runtime; `prepare(runtime)` runs before it joins the group (it sets
        the rebalance listener there, as the pipeline does). Returns once it is
        assigned every source partition and its tables are recovered."""

    async def restart(self, prepare: Prepare) -> Runtime:
        """The current runtime's process dies: it forgets every hand-over it tracks
        and acknowledges nothing more. Then `start(prepare)` on the same log and group."""

    async def fetch(self, runtime: Runtime) -> None:
        """Let the runtime fetch what is new (the in-memory one fetches only when told)."""

    async def join(self) -> None:
        """Another member joins the group and is given some of the partitions; it
        acknowledges every hand-over it gets. Returns once the rebalance is over (the
        runtime's hand-overs must be taken meanwhile)."""

    async def leave(self) -> None:
        """That member, having acknowledged everything published to its partitions,
        leaves; returns once the runtime is assigned every partition again."""

    async def stop(self) -> None:
        """Stop every runtime the driver started."""


# ---- helpers


async def publish(
    driver: RuntimeDriver, topic: str, partition: int, count: int, tag: str = "v"
) -> list[int]:
    """`count` records onto one partition; their offsets (once acked by the log)."""
    loop = asyncio.get_running_loop()
    producer = driver.producer(loop)
    records: list[tuple[bytes | None, bytes | None]] = [
        (f"k{i}".encode(), f"{tag}{i}".encode()) for i in range(count)
    ]
    last = await producer.queue({(topic, partition): records}).wait()
    end = last[(topic, partition)] + 1
    return list(range(end - count, end))


async def take(
    driver: RuntimeDriver, runtime: Runtime, count: int, *, into: list[HandOver] | None = None
) -> list[HandOver]:
    """Hand-overs until they hold `count` messages (fails after `patience`), then
    whatever else comes within `quiet`."""
    got: list[HandOver] = [] if into is None else into
    deadline = time.monotonic() + driver.patience
    while sum(len(h.messages) for h in got) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"got {sum(len(h.messages) for h in got)} of {count} messages"
        got += await _take_within(driver, runtime, min(left, 0.2))
    extra_until = time.monotonic() + driver.quiet
    while (left := extra_until - time.monotonic()) > 0:
        got += await _take_within(driver, runtime, left)
    return got


async def _take_within(driver: RuntimeDriver, runtime: Runtime, timeout: float) -> list[HandOver]:
    await driver.fetch(runtime)
    if not len(runtime.source):
        try:
            await asyncio.wait_for(runtime.source.wait(), timeout)
        except TimeoutError:
            return []
    return await runtime.source.take(1 << 20)


def offsets(handed: Iterable[HandOver]) -> dict[Partition, list[int]]:
    """(topic, partition) -> offsets handed over, in hand-over order; asserts that
    every hand-over holds messages of its own partition only, in offset order."""
    out: dict[Partition, list[int]] = {}
    for h in handed:
        assert h.messages, "an empty hand-over"
        tp = Partition(h.tp[0], h.tp[1])
        assert h.tp == tp and hash(h.tp) == hash(tp)
        assert all((m.topic, m.partition) == tp for m in h.messages)
        got = [m.offset for m in h.messages]
        assert got == sorted(set(got)), f"{tp}: not in offset order: {got}"
        out.setdefault(tp, []).extend(got)
    return out


def on(handed: Iterable[HandOver], *partitions: int) -> list[HandOver]:
    return [h for h in handed if h.tp[1] in partitions]


async def committed(
    driver: RuntimeDriver, runtime: Runtime, want: dict[Partition, int]
) -> dict[Partition, int]:
    """The group's committed offsets of `want`'s partitions once they equal `want`
    (the runtime commits on its own time); as they are once one passed its wanted
    offset (a commit never goes back) or after `patience`."""
    reader = runtime.lag_reader()
    try:
        deadline = time.monotonic() + driver.patience
        while True:
            now = {tp: c for tp, (c, _) in (await reader.read(list(want))).items()}
            passed = any(now[tp] > offset for tp, offset in want.items())
            if now == want or passed or time.monotonic() > deadline:
                return now
            await asyncio.sleep(0.2)
    finally:
        await reader.stop()


class Listener:
    """The rebalance listener: what was announced, whether `rebalancing` was set
    then and whether it was called on the runtime's (this) loop."""

    def __init__(self) -> None:
        self.changes: list[Rebalance] = []
        self.flags: list[tuple[bool, bool]] = []
        self._loop = asyncio.get_running_loop()

    def prepare(self, runtime: Runtime) -> None:
        def listen(change: Rebalance) -> None:
            self.changes.append(change)
            self.flags.append((runtime.rebalancing, asyncio.get_running_loop() is self._loop))

        runtime.on_rebalance(listen)

    def assert_sound(self) -> None:
        assert self.changes, "no rebalance announced"
        assert all(flags == (True, True) for flags in self.flags), self.flags


def every(driver: RuntimeDriver, *parts: int) -> frozenset[Partition]:
    return frozenset(Partition(t, p) for t in driver.sources for p in parts)


def json_rows(rows: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Values as their JSON says (a store may give tuples or lists)."""
    return {k: json.loads(json.dumps(v)) for k, v in rows}


# ---- the checks


async def check_hand_overs(driver: RuntimeDriver) -> None:
    """The first assignment is announced before any hand-over; every message comes
    once, inside hand-overs of one partition, in offset order; the runtime's
    reads (assignment, flags, highwater, placement) agree with the log."""
    usage, account = driver.sources
    n = driver.partitions
    listener = Listener()
    runtime = await driver.start(listener.prepare)
    try:
        listener.assert_sound()
        assert listener.changes[-1] == Rebalance(assigned=frozenset(range(n)))
        announced = len(listener.changes)
        everything = every(driver, *range(n))
        assert runtime.assigned() == everything
        assert await asyncio.to_thread(
            lambda: (runtime.in_recovery, runtime.rebalancing, runtime.assigned())
        ) == (False, False, everything), "the flags and the assignment, from another thread"

        published = {Partition(usage, p): await publish(driver, usage, p, 7) for p in range(n)}
        published |= {Partition(account, p): await publish(driver, account, p, 3) for p in range(n)}
        handed = await take(driver, runtime, sum(map(len, published.values())))
        assert offsets(handed) == published, "each message once, in offset order"
        for h in handed:
            for i, m in enumerate(h.messages):
                assert m.key is not None and m.value.startswith(b"v")
                assert m.value[1:] == m.key[1:], (i, m)
        assert len(listener.changes) == announced, "no rebalance while nothing changed"
        for tp, offs in published.items():
            assert runtime.highwater(*tp) == offs[-1] + 1
        for key in (b"cus_1", b"cus_2", b"acct-77"):
            assert await runtime.partition_for(usage, key) == owner(key, n)
        runtime.acknowledge(handed)
        assert all(h.acked for h in handed)
    finally:
        await driver.stop()


async def check_redelivery(driver: RuntimeDriver) -> None:
    """Acknowledged offsets become committed (on the runtime's own time), nothing
    else: the group's committed offset is the lowest unacknowledged offset of each
    partition, and a restarted runtime hands over again exactly from there."""
    usage, account = driver.sources
    n = driver.partitions
    listener = Listener()
    runtime = await driver.start(listener.prepare)
    try:
        rounds = [await _round(driver, runtime, size) for size in (4, 4)]  # 0-3, 4-7
        await publish(driver, account, 0, 2)
        runtime.acknowledge(await take(driver, runtime, 2))
        runtime.acknowledge(on(rounds[0] + rounds[1], 0))  # p0: all of it
        runtime.acknowledge(on(rounds[0], 2))  # p2: the first round; p1 and others: none
        want = {Partition(usage, p): 0 for p in range(n)} | {
            Partition(usage, 0): 8,
            Partition(usage, 2): 4,
            Partition(account, 0): 2,
        }
        now = await committed(driver, runtime, want)
        assert now == want, f"committed {now}, the lowest unacknowledged offsets are {want}"

        listener = Listener()
        runtime = await driver.restart(listener.prepare)
        listener.assert_sound()
        again = await take(driver, runtime, 8 * (n - 2) + 4)
        expected = {Partition(usage, p): list(range(8)) for p in range(1, n)}
        expected[Partition(usage, 2)] = list(range(4, 8))
        assert offsets(again) == expected
        runtime.acknowledge(again)
        done = {Partition(usage, p): 8 for p in range(n)}
        assert await committed(driver, runtime, done) == done
    finally:
        await driver.stop()


async def check_acks_out_of_order(driver: RuntimeDriver) -> None:
    """Hand-overs acknowledged out of offset order: commits stop below the lowest
    unacknowledged offset, whether the group committed anything before (p2, one
    offset missing right at the committed one) or not (p1)."""
    usage = driver.sources[0]
    runtime = await driver.start(lambda runtime: None)
    try:
        first, second, third = [await _round(driver, runtime, size) for size in (4, 1, 3)]
        runtime.acknowledge(on(second + third, 1))  # offsets 4-7, never 0-3
        runtime.acknowledge(on(first, 2))
        assert await committed(driver, runtime, {Partition(usage, 2): 4}) == {
            Partition(usage, 2): 4
        }
        runtime.acknowledge(on(third, 2))  # 5-7, never 4
        want = {Partition(usage, 1): 0, Partition(usage, 2): 4}
        now = await committed(driver, runtime, want)
        assert now == want, f"committed {now}, the lowest unacknowledged offsets are {want}"
    finally:
        await driver.stop()


async def _round(driver: RuntimeDriver, runtime: Runtime, size: int) -> list[HandOver]:
    """`size` records onto every usage partition, all of them taken."""
    for p in range(driver.partitions):
        await publish(driver, driver.sources[0], p, size)
    return await take(driver, runtime, size * driver.partitions)


class _Pipeline:
    """Takes hand-overs in the background as the pipeline does: acknowledges those
    of assigned partitions, releases the others."""

    def __init__(self, driver: RuntimeDriver, runtime: Runtime) -> None:
        self._driver, self._runtime = driver, runtime
        self.acked: list[HandOver] = []
        self.released: list[HandOver] = []
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            handed = await _take_within(self._driver, self._runtime, 0.05)
            assigned = self._runtime.assigned()
            mine = [h for h in handed if h.tp in assigned]
            self._runtime.release([h for h in handed if h.tp not in assigned])
            self.released += [h for h in handed if h.tp not in assigned]
            self._runtime.acknowledge(mine)
            self.acked += mine

    async def until(self, want: dict[Partition, list[int]]) -> None:
        """Until every offset of `want` was acknowledged (fails after `patience`)."""
        deadline = time.monotonic() + self._driver.patience
        while True:
            got = offsets(self.acked)
            if all(set(offs) <= set(got.get(tp, ())) for tp, offs in want.items()):
                return
            assert time.monotonic() < deadline, f"acknowledged {got}, want {want}"
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def check_rebalance(driver: RuntimeDriver) -> None:
    """A rebalance is announced through the one listener (revoked, then the new
    assignment), with `rebalancing` set; after it, hand-overs are of assigned
    partitions only (any other is released) and the partitions kept go on; once the
    other member left, every partition is assigned and handed over again."""
    usage, account = driver.sources
    n = driver.partitions
    listener = Listener()
    runtime = await driver.start(listener.prepare)
    pipeline = _Pipeline(driver, runtime)
    try:
        first = {
            Partition(t, p): await publish(driver, t, p, 3)
            for t in (usage, account)
            for p in range(n)
        }
        await pipeline.until(first)
        announced = len(listener.changes)

        await driver.join()
        changes = listener.changes[announced:]
        listener.assert_sound()
        kept = frozenset(tp[1] for tp in runtime.assigned())
        assert kept and kept < frozenset(range(n)), kept
        assert runtime.assigned() == every(driver, *kept)
        assert changes[-1] == Rebalance(assigned=kept), changes
        moved = frozenset(range(n)) - kept
        assert any(moved <= c.revoked for c in changes[:-1]), changes
        assert not runtime.rebalancing

        split = len(pipeline.acked)
        second = {
            Partition(t, p): await publish(driver, t, p, 2, "w")
            for t in (usage, account)
            for p in range(n)
        }
        await pipeline.until({tp: offs for tp, offs in second.items() if tp[1] in kept})
        await asyncio.sleep(driver.quiet)
        after = offsets(pipeline.acked[split:])
        assert {tp[1] for tp in after} <= kept, "acknowledged hand-overs of a moved partition"
        for tp, offs in after.items():
            assert len(offs) == len(set(offs)), f"{tp}: handed over twice in one assignment"

        announced = len(listener.changes)
        await driver.leave()
        listener.assert_sound()
        assert listener.changes[-1] == Rebalance(assigned=frozenset(range(n)))
        assert runtime.assigned() == every(driver, *range(n))
        third = {
            Partition(t, p): await publish(driver, t, p, 2, "x")
            for t in (usage, account)
            for p in range(n)
        }
        await pipeline.until(third)
        # Hand-overs taken after their partition moved were released, never acked.
        assert all(h.tp[1] in moved and not h.acked for h in pipeline.released)
    finally:
        await pipeline.stop()
        await driver.stop()


async def check_tables(driver: RuntimeDriver) -> None:
    """Rows written through their changelog (the commit order's `write_table`) reach
    the store by `Table.apply`; after a restart the stores hold what the changelogs
    hold (recovered before the runtime counts as started). `LogReader.read_all`
    reads a changelog partition whole, in offset order, a tombstone as b"" (the
    pipeline checks the customer records it recovered against it)."""
    runtime = await driver.start(lambda runtime: None)
    try:
        seen_rows: list[list[tuple[int, str, Any]]] = [
            [(0, "e1", ["x", "u", 0, 1, "c", 5]), (1, "e2", ["y", "u", 1, 2, "d", 6])],
            [(2, "e3", ["z", "u", 2, 3, "e", 7])],
            [(1, "e2", None)],
        ]
        customer_rows: list[list[tuple[int, str, Any]]] = [
            [(0, "cus_a", {"plan": "a", "n": 1}), (2, "cus_c", {"plan": "c", "n": 3})],
            [(0, "cus_a", {"plan": "a", "n": 2})],
        ]
        await _write(driver, runtime, runtime.seen, seen_rows)
        await _write(driver, runtime, runtime.customers, customer_rows)
        seen = {"e1": ["x", "u", 0, 1, "c", 5], "e3": ["z", "u", 2, 3, "e", 7]}
        customers = {"cus_a": {"plan": "a", "n": 2}, "cus_c": {"plan": "c", "n": 3}}
        on_0 = await runtime.log.read_all(runtime.customers.changelog, 0)
        assert [(json.loads(m.key or b""), json.loads(m.value)) for m in on_0] == [
            ("cus_a", {"plan": "a", "n": 1}),
            ("cus_a", {"plan": "a", "n": 2}),
        ]
        assert [m.offset for m in on_0] == sorted(m.offset for m in on_0)
        seen_1 = await runtime.log.read_all(runtime.seen.changelog, 1)
        assert [(json.loads(m.key or b""), m.value) for m in seen_1][1:] == [("e2", b"")]
        assert await runtime.log.read_all(runtime.customers.changelog, 1) == []
        for rt in (runtime, await driver.restart(lambda runtime: None)):
            assert not rt.in_recovery
            assert json_rows(rt.seen.items()) == seen
            assert json_rows(rt.customers.items()) == customers
            assert json_rows([("e3", rt.seen.get("e3", 2))]) == {"e3": seen["e3"]}
            assert rt.seen.get("e2", 1) is None
            assert json_rows([("c", rt.customers.get("cus_c", 2))]) == {"c": customers["cus_c"]}
            assert rt.seen.changelog != rt.customers.changelog
    finally:
        await driver.stop()


async def _write(
    driver: RuntimeDriver,
    runtime: Runtime,
    table: Any,
    batches: Sequence[list[tuple[int, str, Any]]],
) -> None:
    metrics = WorkerMetrics(CollectorRegistry())
    commits = CommitOrder(runtime, driver.producer, metrics, {}, print)
    for rows in batches:
        await commits.write_table(table, rows)


CHECKS = (
    check_hand_overs,
    check_redelivery,
    check_acks_out_of_order,
    check_rebalance,
    check_tables,
)
