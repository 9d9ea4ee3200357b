"""What the fold worker keeps per key in its two Faust tables, and their JSON form.

`CustomerRecord` (table `customers`, key = customer id) is one customer's ledger
state plus what the worker needs to apply every event exactly once: the last
applied offset per source topic-partition and the customer's event-time
watermark. It is written as ONE changelog record, so state and offsets can never
disagree after a crash. The ledger state is stored WITHOUT the core's memory of
applied event ids (`state_to_dict(..., remember_ids=False)`): the worker never
relies on that memory (it is dropped with `ledger.forget_ids` after every batch,
see `processors.fold.batch`), because its own guards come first: the offsets here catch
every redelivery of an applied message, and the windowed `seen` table (fingerprint
per event id) catches a re-sent event at another position. Keeping the ids would
make every save proportional to the events of the retained periods.

`SeenEntry` (table `seen`, key = event id) remembers an applied event: its payload
fingerprint, where it was read, its customer and its event time (for the window).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from billing import ledger

json_string: Callable[[str], str] = json.encoder.encode_basestring  # "…" with JSON escapes


def tp_key(topic: str, partition: int) -> str:
    """The "topic/partition" form used in offsets maps and snapshots."""
    return f"{topic}/{partition}"


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def datetime_to_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


@dataclass(slots=True)
class CustomerRecord:
    """Mutable within one batch only; its JSON is `to_dict` (`processors.fold.record_json`
    writes the same bytes directly)."""

    customer_id: str
    state: ledger.CustomerState
    offsets: dict[str, int] = field(default_factory=dict)
    watermark_ms: int | None = None

    @classmethod
    def new(cls, customer_id: str) -> CustomerRecord:
        return cls(customer_id, ledger.new_state(customer_id))

    def applied(self, topic: str, partition: int, offset: int) -> bool:
        """True if this customer's state already reflects that message."""
        last = self.offsets.get(tp_key(topic, partition))
        return last is not None and offset <= last

    def copy(self) -> CustomerRecord:
        """A record the caller may change; the ledger state itself is immutable."""
        return CustomerRecord(self.customer_id, self.state, dict(self.offsets), self.watermark_ms)

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "state": ledger.state_to_dict(self.state, remember_ids=False),
            "offsets": dict(self.offsets),
            "watermark_ms": self.watermark_ms,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CustomerRecord:
        return cls(
            customer_id=str(data["customer_id"]),
            # forget_ids: records written before ids were left out still carry them.
            state=ledger.forget_ids(ledger.state_from_dict(data["state"])),
            offsets={str(k): int(v) for k, v in data["offsets"].items()},
            watermark_ms=None if data["watermark_ms"] is None else int(data["watermark_ms"]),
        )


@dataclass(frozen=True, slots=True)
class SeenEntry:
    fingerprint: str
    topic: str
    partition: int
    offset: int
    customer_id: str
    event_ms: int

    def same_message(self, topic: str, partition: int, offset: int) -> bool:
        """True if the entry was written for this very message (a redelivery)."""
        return (self.topic, self.partition, self.offset) == (topic, partition, offset)

    def to_row(self) -> tuple[str, str, int, int, str, int]:
        """The stored form (a JSON list on the changelog). A tuple of strings and
        ints: the garbage collector stops tracking it after its first young
        collection, so the `seen` store (one row per event of the window) adds
        nothing to the full collections' scans, which lists made tens of ms long."""
        return (
            self.fingerprint,
            self.topic,
            self.partition,
            self.offset,
            self.customer_id,
            self.event_ms,
        )

    def to_json(self) -> bytes:
        """`to_row()` as compact JSON, byte for byte what `json.dumps(to_row(),
        separators=(",", ":"), ensure_ascii=False)` gives, without the encoder."""
        return (
            f'["{self.fingerprint}",{json_string(self.topic)},{self.partition:d},{self.offset:d},'
            f"{json_string(self.customer_id)},{self.event_ms:d}]"
        ).encode()

    @classmethod
    def from_row(cls, data: Sequence[Any]) -> SeenEntry:
        fp, topic, partition, offset, customer_id, event_ms = data
        return cls(
            str(fp), str(topic), int(partition), int(offset), str(customer_id), int(event_ms)
        )


class RecordCache:
    """Deserialized customer records by partition, valid between rebalances.

    `epoch` (the assignment epoch) grows on every drop; a fold remembers the epoch
    it started in and is done again if a rebalance happened meanwhile. (The group's
    own "generation" is the runtime's business, never this counter.)"""

    def __init__(self) -> None:
        self._by_partition: dict[int, dict[str, CustomerRecord]] = {}
        self._owned: set[int] = set()
        self.epoch = 0

    def get(self, customer_id: str, partition: int) -> CustomerRecord | None:
        return self._by_partition.get(partition, {}).get(customer_id)

    def put(self, customer_id: str, partition: int, record: CustomerRecord) -> None:
        self._by_partition.setdefault(partition, {})[customer_id] = record

    def drop(self, partitions: set[int], *, keep_unchanged: bool = False) -> None:
        """Forget `partitions`; with `keep_unchanged`, those we already owned stay
        (an assignment that keeps a partition does not change its records)."""
        gone = partitions - self._owned if keep_unchanged else partitions
        for p in gone:
            self._by_partition.pop(p, None)
        self._owned = self._owned | partitions if keep_unchanged else self._owned - partitions
        self.epoch += 1

    def forget(self, partition: int) -> None:
        """Forget one partition's records without a new epoch (no fold is under way:
        the caller reloads them from the store before the next fold)."""
        self._by_partition.pop(partition, None)

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_partition.values())
