"""`FoldPipeline` and the commit order on the in-memory runtime: batches, a
revocation, acknowledgement only once durable, and redelivery after a crash
between two steps of `CommitOrder.carry_out`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry

from billing.admission import AdmissionPolicy
from billing.events import SubscriptionStarted, UsageRecorded
from processors.fold.batch import BatchFolder, Topics
from processors.fold.records import CustomerRecord
from processors.worker.memory_runtime import MemoryLog, MemoryProducer, MemoryRuntime
from processors.worker.metrics import WorkerMetrics
from processors.worker.pipeline import FoldPipeline
from streambill.config.catalog_file import load_catalog
from streambill.config.settings import Settings
from streambill.wire import convert
from streambill.wire.codec import Codec
from streambill.wire.partitioner import owner

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
TOPICS = Topics("u", "a", "s", "al", "inv", "rej")
SOURCES = ("u", "a")
DAY = 86_400_000
PARTITIONS = 2
CUSTOMERS = ["c1", "c2", "c3", "c4"]
codec = Codec()
catalog = load_catalog(Settings().catalog_path)


def encode(event: object) -> bytes:
    name, record = convert.to_avro(event)  # type: ignore[arg-type]
    return codec.encode(name, record)


def world(events_per_customer: int = 3) -> MemoryLog:
    log = MemoryLog(PARTITIONS)
    for cid in CUSTOMERS:
        sub = SubscriptionStarted(f"s-{cid}", cid, NOW - timedelta(days=1), "starter")
        log.publish("a", cid.encode(), encode(sub))
    add_usage(log, events_per_customer)
    return log


def add_usage(log: MemoryLog, events_per_customer: int = 3) -> None:
    for cid in CUSTOMERS:
        for i in range(events_per_customer):
            use = UsageRecorded(f"{cid}-e{i}", cid, "tokens", Decimal(i + 1), NOW)
            log.publish("u", cid.encode(), encode(use))


class Worker:
    """A pipeline on a runtime, with a handle on its producer."""

    def __init__(self, runtime: MemoryRuntime) -> None:
        self.runtime = runtime
        self.producer: MemoryProducer | None = None
        self.fatal: list[BaseException] = []
        self.hold = False
        policy = AdmissionPolicy(35 * DAY, 35 * DAY, 300_000)
        folder = BatchFolder(catalog, codec, policy, TOPICS, lambda: NOW, partitions=PARTITIONS)
        self.registry = CollectorRegistry()
        metrics = WorkerMetrics(self.registry)
        self.pipeline = FoldPipeline(
            runtime, folder, metrics, policy, SOURCES, self._producer, self.fatal.append
        )

    def _producer(self, loop: asyncio.AbstractEventLoop) -> MemoryProducer:
        self.producer = MemoryProducer(self.runtime.memory, loop)
        self.producer.hold = self.hold
        return self.producer

    async def batch(self) -> None:
        await self.runtime.deliver()
        await self.pipeline.process(await self.runtime.source.take(10_000))


def records(log: MemoryLog) -> dict[str, dict[str, Any]]:
    """The customer records the changelog holds (what a restart recovers)."""
    table = MemoryRuntime(log, SOURCES).customers
    table.recover(log)
    return {k: CustomerRecord.from_dict(v).to_dict() for k, v in table.data.items()}


async def one_batch(runtime: MemoryRuntime) -> Worker:
    """A worker on `runtime` assigned every partition: one batch, folded and drained."""
    worker = Worker(runtime)
    worker.runtime.assign(range(PARTITIONS))
    await worker.batch()
    await worker.pipeline.drain()
    return worker


def clean_run() -> dict[str, dict[str, Any]]:
    log = world()
    asyncio.run(one_batch(MemoryRuntime(log, SOURCES)))
    return records(log)


def test_a_batch_is_folded_made_durable_and_acknowledged() -> None:
    log = world()
    worker = asyncio.run(one_batch(MemoryRuntime(log, SOURCES)))
    assert not worker.fatal and not worker.runtime.unacked
    for tp, part in log.records.items():
        if tp[0] in SOURCES:
            assert log.committed[tp] == len(part)  # every source offset committed
    got = records(log)
    assert set(got) == set(CUSTOMERS)
    assert all(r["offsets"] for r in got.values())
    snapshots = [k for _, _, k, _ in log.values("s")]
    assert sorted({k for k in snapshots if k}) == sorted(c.encode() for c in CUSTOMERS)
    assert worker.pipeline.folded == 4 + 12 + 4  # account backlog first, then the batch


def test_each_acknowledged_batch_is_timed_from_its_fold_to_its_acknowledgement() -> None:
    worker = asyncio.run(one_batch(MemoryRuntime(world(), SOURCES)))
    value = worker.registry.get_sample_value
    applied = value("streambill_worker_events_applied_total")
    assert applied is not None and applied > 0
    count = value("streambill_worker_batch_duration_seconds_count")
    total = value("streambill_worker_batch_duration_seconds_sum")
    assert count == 2  # the account backlog, then the batch
    assert total is not None and 0 < total < 60


def test_nothing_is_acknowledged_before_effects_seen_and_records_are_durable() -> None:
    log = world()

    async def main() -> None:
        worker = Worker(MemoryRuntime(log, SOURCES))
        worker.hold = True
        worker.runtime.assign(range(PARTITIONS))
        await worker.runtime.deliver()
        handed = await worker.runtime.source.take(10_000)
        # The account backlog is made durable before the batch: let it through.
        task = asyncio.create_task(worker.pipeline.process(handed))
        while not task.done():
            await asyncio.sleep(0)
            if worker.producer is not None:
                worker.producer.release()
        await task  # returns once the batch's effects and seen entries are queued
        assert worker.producer is not None
        await asyncio.sleep(0)
        assert worker.runtime.unacked and log.committed.get(("u", 0), 0) == 0
        worker.producer.release()  # effects and seen entries durable
        for _ in range(5):
            await asyncio.sleep(0)
        assert worker.runtime.unacked  # the records are queued, not durable
        assert worker.producer.pending() > 0
        worker.producer.release()  # the records durable
        await worker.pipeline.drain()
        assert not worker.runtime.unacked and log.committed[("u", 0)] > 0

    asyncio.run(main())


def test_a_revoked_partitions_hand_overs_are_released_not_acknowledged() -> None:
    log = world()

    async def main() -> Worker:
        worker = Worker(MemoryRuntime(log, SOURCES))
        worker.runtime.assign(range(PARTITIONS))
        await worker.runtime.deliver()
        handed = await worker.runtime.source.take(10_000)
        worker.runtime.assign([1])  # partition 0 revoked between fetch and fold
        await worker.pipeline.process(handed)
        await worker.pipeline.drain()
        return worker

    worker = asyncio.run(main())
    assert {h.tp.partition for h in worker.runtime.released} == {0}
    assert not worker.runtime.unacked
    assert log.committed.get(("u", 0), 0) == 0 and log.committed[("u", 1)] > 0
    mine = {c for c in CUSTOMERS if owner(c.encode(), PARTITIONS) == 1}
    assert set(records(log)) == mine


def test_a_revocation_while_a_batch_is_in_flight_drains_it_before_the_next_fold() -> None:
    log = world()

    async def main() -> Worker:
        worker = Worker(MemoryRuntime(log, SOURCES))
        worker.runtime.assign(range(PARTITIONS))
        await worker.batch()  # in flight
        worker.runtime.assign([0])
        more = UsageRecorded("late", CUSTOMERS[0], "tokens", Decimal(9), NOW)
        log.publish("u", CUSTOMERS[0].encode(), encode(more))
        await worker.batch()
        await worker.pipeline.drain()
        return worker

    worker = asyncio.run(main())
    assert not worker.fatal and not worker.runtime.unacked
    assert worker.pipeline.cache.epoch >= 3


def test_a_crash_before_the_records_are_durable_redelivers_and_applies_once() -> None:
    log = world(events_per_customer=0)

    async def crashed() -> MemoryRuntime:
        # The subscriptions first, durable and acknowledged.
        worker = await one_batch(MemoryRuntime(log, SOURCES))
        add_usage(log)
        assert worker.producer is not None
        worker.producer.hold = True
        await worker.batch()  # returns once effects and seen entries are queued
        worker.producer.release()  # effects and seen entries durable, records not
        for _ in range(5):
            await asyncio.sleep(0)
        assert worker.producer.pending() > 0  # the records queued, not written
        return worker.runtime  # SIGKILL: the held records are lost with the process

    runtime = asyncio.run(crashed())
    assert runtime.unacked
    worker = asyncio.run(one_batch(runtime.crash()))
    assert not worker.fatal
    assert records(log) == clean_run()  # each event applied once


def test_a_crash_before_the_acknowledgement_is_skipped_by_the_records_offsets() -> None:
    log = world()

    async def lost_ack() -> MemoryRuntime:
        worker = Worker(MemoryRuntime(log, SOURCES))
        worker.runtime.assign(range(PARTITIONS))
        worker.runtime.acknowledge = lambda handed: None  # type: ignore[method-assign]
        await worker.batch()
        await worker.pipeline.drain()
        return worker.runtime

    runtime = asyncio.run(lost_ack())
    assert log.committed.get(("u", 0), 0) == 0
    outputs = len(log.values("s"))
    asyncio.run(one_batch(runtime.crash()))
    assert len(log.values("s")) == outputs  # everything redelivered was skipped by its offset
    assert records(log) == clean_run()
    assert log.committed[("u", 0)] == log.end("u", 0)


def more_usage(log: MemoryLog, phase: str) -> None:
    """One more event per customer, with ids of their own (`phase`)."""
    for cid in CUSTOMERS:
        use = UsageRecorded(f"{cid}-{phase}", cid, "tokens", Decimal(7), NOW)
        log.publish("u", cid.encode(), encode(use))


def test_a_partition_back_from_another_worker_folds_on_its_changelog_not_a_stale_store() -> None:
    """Chaos fault 7's failure: worker A folds partition 0, loses it to worker B, which
    folds more of it, and gets it back; A's runtime recovery misses what B wrote (the
    store keeps A's own older records), yet B's events, whose offsets B committed,
    must stay in the customers' state: the pipeline reads the partition's customer
    records from the changelog before its first batch of the assignment."""
    log, clean = world(), world()
    for phase in ("b", "a"):
        more_usage(clean, phase)
    p0 = {c for c in CUSTOMERS if owner(c.encode(), PARTITIONS) == 0}

    async def main() -> tuple[Worker, Worker]:
        a = Worker(MemoryRuntime(log, SOURCES))
        a.runtime.assign(range(PARTITIONS))
        await a.batch()
        await a.pipeline.drain()
        a.runtime.assign([1])  # partition 0 goes to B
        b = Worker(MemoryRuntime(log, SOURCES))
        b.runtime.assign([0])
        more_usage(log, "b")
        await b.batch()
        await b.pipeline.drain()
        await a.batch()  # A folds partition 1's share meanwhile
        await a.pipeline.drain()
        b.runtime.assign([])  # B leaves; A gets partition 0 back, stores not recovered
        a.runtime.assign(range(PARTITIONS), recover=False)
        more_usage(log, "a")
        await a.batch()
        await a.pipeline.drain()
        return a, b

    a, b = asyncio.run(main())
    assert not a.fatal and not b.fatal
    assert b.pipeline.folded > 0  # B did fold (and commit) partition 0's "b" events
    assert all(log.committed[("u", p)] == log.end("u", p) for p in range(PARTITIONS))
    clean_worker = asyncio.run(one_batch(MemoryRuntime(clean, SOURCES)))
    assert not clean_worker.fatal
    assert {c: records(log)[c] for c in p0} == {c: records(clean)[c] for c in p0}
    assert records(log) == records(clean)
    # The store A folds on holds the changelog's records again.
    stored = a.runtime.customers.data
    assert {c: CustomerRecord.from_dict(stored[c]).to_dict() for c in CUSTOMERS} == records(log)
