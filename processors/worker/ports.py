"""What the fold pipeline needs from its runtime (docs/decisions/0001-faust-runtime.md).

The pipeline above this port is framework-free. A runtime owns group membership,
partition assignment, the fetching of source messages, table changelog recovery and
the commits of acknowledged offsets; the pipeline owns batching, the fold, the
effects and the commit order (`processors.worker.commit`). Two runtimes implement
the port: Faust's (`processors.worker.runtime`, the only code that touches Faust,
mode or aiokafka) and an in-memory one for tests (`processors.worker.memory_runtime`).

Contract (`tests/contract/runtime_contract.py`, run on the in-memory runtime by
tests/contract/test_runtime_port.py and on Faust's against a real broker by
tests/integration/test_runtime_port_kafka.py):
- every source message is handed over once per assignment, inside a `HandOver` of
  one partition, in offset order; the runtime never takes a hand-over back;
- `acknowledge(handed)` marks exactly those offsets committable; nothing else ever
  is, so after a crash the runtime redelivers from the lowest unacknowledged
  offset of each partition (Faust's runtime keeps this only for acknowledgements
  in offset order, as the commit order makes them: Faust's own commit passes
  unacknowledged offsets below out-of-order ones; docs/decisions/0001);
- a rebalance is announced through the one `on_rebalance` listener, before any
  hand-over of the new assignment; a hand-over of a partition no longer assigned
  must be `release`d, never acknowledged;
- a table's rows reach its store only by `Table.apply`, after the changelog
  records that carry them were acked; after a restart the store holds what the
  changelog holds (changelog recovery);
- `in_recovery` and `rebalancing` may be read from any thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from processors.fold.batch import SourceMessage


class Partition(NamedTuple):
    """A topic-partition. Equal to (and hashed as) any (topic, partition) tuple,
    so a runtime's own partition type compares equal to it."""

    topic: str
    partition: int


@dataclass(eq=False)
class HandOver:
    """The fresh messages of one fetch of one source partition, in offset order.
    `tp` is the runtime's (topic, partition) tuple; `acked` and `refcount` are the
    runtime's own bookkeeping (a hand-over is tracked like one message until it is
    acknowledged or released)."""

    tp: Any
    messages: list[SourceMessage]
    acked: bool = False
    refcount: int = 0


@dataclass(frozen=True, slots=True)
class Rebalance:
    """One change of the assignment: source partition numbers taken away from this
    worker (`revoked`) or given to it (`assigned`; also those it keeps)."""

    revoked: frozenset[int] = field(default_factory=frozenset)
    assigned: frozenset[int] = field(default_factory=frozenset)


Gap = tuple[Partition, range]  # offsets of one partition the runtime never handed over


class Source(Protocol):
    """Hand-overs queued for the pipeline (`processors.worker.batches.BatchFeed`)."""

    def __len__(self) -> int: ...

    async def wait(self) -> None: ...

    async def take(self, limit: int) -> list[HandOver]: ...


class Table(Protocol):
    """One changelog-backed table as the pipeline reads and updates it."""

    @property
    def changelog(self) -> str:
        """The topic name of its changelog."""

    @property
    def keeps_objects(self) -> bool:
        """True: the store keeps values as given (else JSON-able dicts)."""

    def get(self, key: str, partition: int) -> Any: ...

    def apply(self, rows: Sequence[tuple[int, str, Any]], last: dict[tuple[str, int], int]) -> None:
        """Store `rows` (partition, key, value; None deletes) whose changelog records
        were acked up to the offsets `last` (topic, partition) -> offset."""

    def items(self) -> Iterator[tuple[str, Any]]:
        """Every (key, value) of the store, all partitions."""


class LogReader(Protocol):
    """Reads of the source log outside the group (never commits)."""

    async def account_backlog(
        self, topic: str, partitions: Iterable[int], also_committed: str
    ) -> tuple[list[SourceMessage], dict[tuple[str, int], int]]:
        """Messages of `topic` in `partitions` from the group's committed offset up to
        the end offset as of now, in offset order; and the group's committed offsets
        of `topic` and `also_committed` there, raised to the log start offsets."""

    async def read_range(
        self, topic: str, partition: int, start: int, stop: int
    ) -> list[SourceMessage]:
        """Messages start <= offset < stop of one partition, in offset order."""

    async def read_all(self, topic: str, partition: int) -> list[SourceMessage]:
        """Every message of one partition from the log start up to the end offset as
        of now, in offset order (a tombstone's value is b"")."""


class LagReader(Protocol):
    """(committed, end) offsets of the group, for the watchdog's own thread and loop."""

    async def read(self, tps: Iterable[Partition]) -> dict[Partition, tuple[int, int]]: ...

    async def stop(self) -> None: ...


class Runtime(Protocol):
    """The port itself; see the module docstring for the contract."""

    @property
    def source(self) -> Source:
        """The hand-overs queued for the pipeline."""

    @property
    def customers(self) -> Table:
        """customer id -> `CustomerRecord` (its dict form where the store serializes)."""

    @property
    def seen(self) -> Table:
        """dedupe key -> `SeenEntry.to_row()`."""

    @property
    def log(self) -> LogReader:
        """Reads of the source log outside the group."""

    def on_rebalance(self, listener: Callable[[Rebalance], None]) -> None:
        """Set THE listener of assignment changes (called on the runtime's loop)."""

    def assigned(self) -> frozenset[Partition]:
        """Source partitions assigned now (any thread; empty before the first)."""

    def acknowledge(self, handed: Sequence[HandOver]) -> None:
        """Their effects are durable: their offsets become committable."""

    def release(self, handed: Sequence[HandOver]) -> None:
        """Dropped unacknowledged (partition no longer assigned): stop tracking them."""

    async def passed(self, gaps: Sequence[Gap]) -> None:
        """Offsets the runtime never handed over, read and made durable by the
        pipeline itself: commits may pass them."""

    def highwater(self, topic: str, partition: int) -> int:
        """The partition's end offset as last fetched (0 if unknown)."""

    async def partition_for(self, topic: str, key: bytes | None) -> int:
        """The partition a keyed record without one goes to (murmur2 of the key)."""

    @property
    def in_recovery(self) -> bool:
        """True while tables recover from their changelogs."""

    @property
    def rebalancing(self) -> bool:
        """True while the group rebalances."""

    def lag_reader(self) -> LagReader:
        """A new reader of the group's offsets (used on another thread's loop)."""
