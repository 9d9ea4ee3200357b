"""The projector's Prometheus metrics (projections/read/metrics.py): writes stored per
topic, records skipped per reason, batches with their duration and time, and the lag
of every assigned partition (high watermark minus the position stored in Redis). Kafka
is a fake with settable high watermarks, the store the in-memory adapter, the clocks
fakes; the values are read back from the registry the metrics were given."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, OFFSET_INVALID, TopicPartition
from prometheus_client import CollectorRegistry

from projections.read.metrics import ProjectorMetrics
from projections.read.model import UnexpectedRecord, Write
from projections.read.projector import LAG_INTERVAL, BatchApplier, Projector
from projections.read.store import InMemoryStore
from tests.unit.projections.test_projector_commits import LOGICAL, FakeConsumer, Record
from tests.unit.samples import SAMPLES

STATE = SAMPLES["streambill.state.v1.CustomerStateChanged"]
ALERT = SAMPLES["streambill.alerts.v1.AlertRaised"]
VALUES: dict[bytes, object] = {b"state": STATE, b"alert": ALERT}


def _decode(value: bytes) -> object:
    if value not in VALUES:
        raise UnexpectedRecord("not a sample")
    return VALUES[value]


@dataclass
class WatermarkConsumer(FakeConsumer):
    """The fake of the commit tests, with the high watermarks a fetch would cache."""

    highwater: dict[tuple[str, int], int] = field(default_factory=dict)
    asked: int = 0

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool) -> tuple[int, int]:
        assert cached  # never a broker round trip from the loop
        self.asked += 1
        return (0, self.highwater.get((tp.topic, tp.partition), OFFSET_INVALID))

    def seek(self, tp: TopicPartition) -> None:
        self.events.append(("seek", (tp.topic, tp.partition, tp.offset)))


@dataclass
class Clock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


class TimedStore(InMemoryStore):
    """Each `apply` takes `seconds` of the fake clock."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.seconds = 0.0

    def apply(self, generation: str, writes: Sequence[Write]) -> list[bool]:
        self.clock.now += self.seconds
        return super().apply(generation, writes)


class Setup:
    def __init__(self, *, metrics: bool = True) -> None:
        self.registry = CollectorRegistry()
        self.clock = Clock()
        self.store = TimedStore(self.clock)
        self.consumer = WatermarkConsumer([])
        applier = BatchApplier(self.store, _decode, (), LOGICAL)
        self.projector = Projector(
            self.consumer,  # type: ignore[arg-type]
            applier,
            metrics=ProjectorMetrics(self.registry) if metrics else None,
            clock=self.clock,
            wall=lambda: 1_700_000_000.0,
        )

    def assign(self, *partitions: tuple[str, int]) -> None:
        tps = [TopicPartition(t, p) for t, p in partitions]
        self.projector._on_assign(self.projector.consumer, tps)

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def lag(self, topic: str, partition: int) -> float | None:
        return self.value(
            "streambill_projector_consumer_lag", topic=topic, partition=str(partition)
        )


def test_a_batch_counts_writes_per_topic_skips_per_reason_its_duration_and_time() -> None:
    s = Setup()
    s.assign(("p.customer-state", 0), ("p.invoices", 1))
    s.consumer.highwater = {("p.customer-state", 0): 10, ("p.invoices", 1): 4}
    s.consumer.batches.append(
        [Record("p.customer-state", 0, 5, b"state"), Record("p.customer-state", 0, 6, b"junk"),
         Record("p.invoices", 1, 2, b"state")]  # a state snapshot does not belong on invoices
    )  # fmt: skip
    s.store.seconds = 0.25  # the batch's writes take 0.25 s
    assert s.projector.step() == 3
    name = "streambill_projector_records_applied_total"
    assert s.value(name, topic="p.customer-state") == 1
    assert s.value(name, topic="p.invoices") is None  # nothing stored from it
    skipped = "streambill_projector_records_skipped_total"
    assert s.value(skipped, reason="undecodable") == 2
    assert s.value(skipped, reason="duplicate") is None
    assert s.value("streambill_projector_batches_total") == 1
    assert s.value("streambill_projector_batch_duration_seconds_sum") == 0.25
    assert s.value("streambill_projector_batch_duration_seconds_count") == 1
    assert s.value("streambill_projector_last_batch_timestamp_seconds") == 1_700_000_000.0
    assert s.lag("p.customer-state", 0) == 10 - 7  # positions: next offset to read
    assert s.lag("p.invoices", 1) == 4 - 3
    assert s.value("streambill_projector_position", topic="p.customer-state", partition="0") == 7


def test_a_write_at_or_below_the_stored_offset_counts_as_a_duplicate() -> None:
    s = Setup()
    s.assign(("p.customer-state", 0))
    s.consumer.batches += [
        [Record("p.customer-state", 0, 5, b"state")],
        [Record("p.customer-state", 0, 5, b"state")],  # redelivered after a crash
    ]
    s.projector.step()
    s.projector.step()
    assert s.value("streambill_projector_records_applied_total", topic="p.customer-state") == 1
    assert s.value("streambill_projector_records_skipped_total", reason="duplicate") == 1
    assert s.value("streambill_projector_batches_total") == 2


def test_an_idle_projector_reports_the_lag_of_its_stored_positions_every_interval() -> None:
    s = Setup()
    generation = s.store.ensure_generation()
    s.store.advance(generation, "customer-state", 0, 40)
    s.assign(("p.customer-state", 0), ("p.customer-state", 1))  # 1: from the beginning
    s.consumer.highwater = {("p.customer-state", 0): 55}
    assert s.projector.step() == 0
    assert s.lag("p.customer-state", 0) == 15
    assert s.lag("p.customer-state", 1) is None  # no stored position, no lag shown
    assert s.value("streambill_projector_batches_total") == 0
    s.consumer.highwater[("p.customer-state", 0)] = 60
    s.projector.step()  # within the interval: not asked again
    assert s.lag("p.customer-state", 0) == 15
    s.clock.now += LAG_INTERVAL
    s.projector.step()
    assert s.lag("p.customer-state", 0) == 20


def test_a_partition_not_fetched_yet_keeps_its_last_lag_and_a_stale_watermark_shows_zero() -> None:
    s = Setup()
    s.assign(("p.invoices", 0))
    s.consumer.batches.append([Record("p.invoices", 0, 8, b"junk")])
    s.consumer.highwater = {("p.invoices", 0): 12}
    s.projector.step()
    assert s.lag("p.invoices", 0) == 12 - 9
    s.consumer.highwater = {}  # e.g. the cache was reset: nothing known
    s.clock.now += LAG_INTERVAL
    s.projector.step()
    assert s.lag("p.invoices", 0) == 3
    s.consumer.highwater = {("p.invoices", 0): 5}  # older than the position
    s.clock.now += LAG_INTERVAL
    s.projector.step()
    assert s.lag("p.invoices", 0) == 0


def test_a_revoked_partition_is_no_longer_reported() -> None:
    s = Setup()
    s.assign(("p.invoices", 0), ("p.invoices", 1))
    s.consumer.batches.append(
        [Record("p.invoices", 0, 3, b"junk"), Record("p.invoices", 1, 3, b"junk")]
    )
    s.consumer.highwater = {("p.invoices", 0): 9, ("p.invoices", 1): 9}
    s.projector.step()
    assert s.lag("p.invoices", 0) == 5
    s.projector._on_revoke(s.projector.consumer, [TopicPartition("p.invoices", 0)])
    assert s.lag("p.invoices", 0) is None
    assert s.lag("p.invoices", 1) == 5
    s.clock.now += LAG_INTERVAL
    s.projector.step()
    assert s.lag("p.invoices", 0) is None  # the next owner reports it


def test_lost_read_models_count_a_reset_and_drop_the_lag_of_the_old_positions() -> None:
    s = Setup()
    s.assign(("p.customer-state", 0))
    s.consumer.batches.append([Record("p.customer-state", 0, 5, b"state")])
    s.consumer.highwater = {("p.customer-state", 0): 9}
    s.projector.step()
    assert s.lag("p.customer-state", 0) == 3
    s.store.clear()  # a rebuild (or a FLUSHALL): positions from the beginning again
    assert s.projector.step() == 0
    assert s.value("streambill_projector_resets_total") == 1
    assert s.lag("p.customer-state", 0) is None
    assert ("seek", ("p.customer-state", 0, OFFSET_BEGINNING)) in s.consumer.events


def test_without_metrics_the_loop_never_asks_for_watermarks() -> None:
    s = Setup(metrics=False)
    s.assign(("p.customer-state", 0))
    s.consumer.batches.append([Record("p.customer-state", 0, 5, b"state")])
    assert s.projector.step() == 1
    assert s.consumer.asked == 0
    assert s.store.positions(s.projector.generation, "customer-state", [0]) == {0: 6}
