"""The projector's step 6 (projections/read/projector.py): the positions it stored in the
read-model store, and only those, are committed to Kafka after the store recorded them;
a refused commit is tried again; a revoked partition's position is left to its next
owner. Kafka and the store are fakes here; tests/projections/test_projector_lag.py shows
the committed offsets through `kafka-consumer-groups --describe`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from projections.read.model import UnexpectedRecord
from projections.read.projector import BatchApplier, Projector, consumer_config
from projections.read.store import InMemoryStore

LOGICAL = {"p.customer-state": "customer-state", "p.invoices": "invoices"}


@dataclass(frozen=True)
class Record:
    topic_: str
    partition_: int
    offset_: int
    value_: bytes = b"x"

    def error(self) -> Any:
        return None

    def topic(self) -> str | None:
        return self.topic_

    def partition(self) -> int | None:
        return self.partition_

    def offset(self) -> int | None:
        return self.offset_

    def value(self) -> bytes | None:
        return self.value_


@dataclass
class FakeConsumer:
    """Hands out `batches` one per consume; records commits and assignments in `events`."""

    events: list[tuple[str, Any]]
    batches: list[list[Record]] = field(default_factory=list)
    refuse_commits: int = 0

    def consume(self, num_messages: int, timeout: float) -> list[Record]:
        return self.batches.pop(0) if self.batches else []

    def commit(self, *, offsets: Sequence[TopicPartition], asynchronous: bool) -> None:
        if self.refuse_commits:
            self.refuse_commits -= 1
            raise KafkaException(KafkaError(KafkaError._NO_OFFSET))
        committed = [(tp.topic, tp.partition, tp.offset) for tp in offsets]
        self.events.append(("commit" if asynchronous else "commit-sync", committed))

    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        self.events.append(("assign", [(tp.topic, tp.partition, tp.offset) for tp in partitions]))


class RecordingStore(InMemoryStore):
    def __init__(self, events: list[tuple[str, Any]]) -> None:
        super().__init__()
        self.events = events

    def advance(self, generation: str, topic: str, partition: int, next_offset: int) -> None:
        super().advance(generation, topic, partition, next_offset)
        self.events.append(("advance", (topic, partition, next_offset)))


def _undecodable(value: bytes) -> object:
    raise UnexpectedRecord("test records carry no data")  # skipped, positions still advance


def _projector(events: list[tuple[str, Any]]) -> tuple[Projector, FakeConsumer, RecordingStore]:
    store = RecordingStore(events)
    consumer = FakeConsumer(events)
    applier = BatchApplier(store, _undecodable, (), LOGICAL)
    return Projector(consumer, applier), consumer, store  # type: ignore[arg-type]


def _assign(projector: Projector, partitions: Iterable[tuple[str, int]]) -> None:
    tps = [TopicPartition(t, p) for t, p in partitions]
    projector._on_assign(projector.consumer, tps)


def test_a_batch_commits_the_positions_it_stored_after_storing_them() -> None:
    events: list[tuple[str, Any]] = []
    projector, consumer, store = _projector(events)
    _assign(projector, [("p.customer-state", 0), ("p.invoices", 1)])
    consumer.batches.append(
        [Record("p.customer-state", 0, 5), Record("p.customer-state", 0, 6),
         Record("p.invoices", 1, 2)]
    )  # fmt: skip
    events.clear()
    assert projector.step() == 3
    assert events == [
        ("advance", ("customer-state", 0, 7)),
        ("advance", ("invoices", 1, 3)),
        ("commit", [("p.customer-state", 0, 7), ("p.invoices", 1, 3)]),
    ]
    assert store.positions(projector.generation, "customer-state", [0]) == {0: 7}
    events.clear()
    assert projector.step() == 0
    assert events == []  # nothing new stored, nothing committed


def test_an_assignment_commits_the_stored_positions_and_never_the_beginning() -> None:
    events: list[tuple[str, Any]] = []
    projector, _, store = _projector(events)
    generation = store.ensure_generation()
    store.advance(generation, "customer-state", 0, 40)  # stored before a crash in step 6
    events.clear()
    _assign(projector, [("p.customer-state", 0), ("p.customer-state", 1)])
    projector.step()
    assert events == [
        ("assign", [("p.customer-state", 0, 40), ("p.customer-state", 1, OFFSET_BEGINNING)]),
        ("commit", [("p.customer-state", 0, 40)]),
    ]


def test_a_refused_commit_is_tried_again_with_the_newest_positions() -> None:
    events: list[tuple[str, Any]] = []
    projector, consumer, _ = _projector(events)
    _assign(projector, [("p.invoices", 0)])
    consumer.refuse_commits = 1
    consumer.batches += [[Record("p.invoices", 0, 0)], [Record("p.invoices", 0, 1)]]
    projector.step()
    assert [e for e in events if e[0] == "commit"] == []
    assert projector.uncommitted == {("p.invoices", 0): 1}
    projector.step()
    assert [e for e in events if e[0] == "commit"] == [("commit", [("p.invoices", 0, 2)])]
    assert projector.uncommitted == {}


def test_a_revoked_partition_is_not_committed_by_its_former_owner() -> None:
    events: list[tuple[str, Any]] = []
    projector, consumer, _ = _projector(events)
    _assign(projector, [("p.invoices", 0), ("p.invoices", 1)])
    consumer.refuse_commits = 1
    consumer.batches.append([Record("p.invoices", 0, 3), Record("p.invoices", 1, 8)])
    projector.step()
    projector._on_revoke(projector.consumer, [TopicPartition("p.invoices", 0)])
    projector.step()
    assert [e for e in events if e[0] == "commit"] == [("commit", [("p.invoices", 1, 9)])]


def test_offsets_are_committed_by_the_projector_alone() -> None:
    config = consumer_config("g")
    assert config["enable.auto.commit"] is False
    assert callable(config["on_commit"])
