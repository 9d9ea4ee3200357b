"""Reading the catalog topic to its end, and publishing catalog records on it.

The topic is compacted, so what is live is the latest record of each key
(`billing.catalog_live.live_catalog`). A reader never stops on data: a record it
cannot use (undecodable bytes, an unknown schema or one that does not belong on the
catalog topic, a bad field, a key that is not the record's own, no key) is left out
and reported with its partition, offset and reason; a tombstone removes its key, as
compaction will, and is reported too.

It reads and writes through `streambill.wire.log.LogPort` (Kafka's adapter,
`streambill.wire.kafka_log.KafkaLog`, or the in-memory one in tests).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from billing.catalog_live import LiveCatalog, live_catalog
from billing.catalog_records import (
    CatalogRecord,
    CreditPackPublished,
    FeaturePublished,
    PlanRetired,
    PlanVersionPublished,
)
from streambill.wire.codec import Codec, DecodeError
from streambill.wire.convert import InvalidField, decode_value, encode_value
from streambill.wire.log import LogPort, LogRecord

_CATALOG_TYPES = (PlanVersionPublished, FeaturePublished, CreditPackPublished, PlanRetired)


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A record of the catalog topic left out of the live catalog, and why."""

    partition: int
    offset: int
    key: str | None
    reason: str

    def __str__(self) -> str:
        key = "no key" if self.key is None else f"key {self.key!r}"
        return f"partition {self.partition} offset {self.offset} ({key}): {self.reason}"


@dataclass(frozen=True, slots=True)
class CatalogRead:
    live: LiveCatalog
    unreadable: tuple[Unreadable, ...]
    end_offsets: Mapping[int, int]  # per partition, the next offset not read


def _entry(rec: LogRecord, codec: Codec) -> tuple[str, CatalogRecord | None] | Unreadable:
    def bad(key: str | None, reason: str) -> Unreadable:
        return Unreadable(rec.partition, rec.offset, key, reason)

    if rec.key is None:
        return bad(None, "missing_key: a catalog record needs its key")
    try:
        key = rec.key.decode("utf-8")
    except UnicodeDecodeError:
        return bad(rec.key.hex(), "invalid_field: the key is not UTF-8")
    if rec.value is None:
        return key, None
    try:
        value = decode_value(codec, rec.value)
    except (DecodeError, InvalidField) as exc:
        return bad(key, f"{exc.reason}: {exc.detail}")
    if not isinstance(value, _CATALOG_TYPES):
        return bad(key, f"unknown_schema: {type(value).__name__} is not accepted on the catalog")
    if value.key != key:
        return bad(key, f"invalid_field: the record's own key is {value.key!r}")
    return key, value


def read_catalog(log: LogPort, topic: str, codec: Codec) -> CatalogRead:
    """Everything on `topic` up to its end as of now, folded into the live catalog."""
    low, high = log.watermarks(topic)
    entries: list[tuple[str, CatalogRecord | None]] = []
    unreadable: list[Unreadable] = []
    for batch in log.read(topic, low, high):
        for rec in batch:
            entry = _entry(rec, codec)
            if isinstance(entry, Unreadable):
                unreadable.append(entry)
                continue
            if entry[1] is None:
                unreadable.append(
                    Unreadable(rec.partition, rec.offset, entry[0], "tombstone: removes the key")
                )
            entries.append(entry)
    return CatalogRead(live_catalog(entries), tuple(unreadable), dict(high))


def publish(log: LogPort, topic: str, codec: Codec, records: Iterable[CatalogRecord]) -> int:
    """Write `records` in order, each under its key, and wait until every one is
    acknowledged (`flush` raises otherwise). Returns how many were written."""
    count = 0
    for record in records:
        log.produce(topic, record.key.encode("utf-8"), encode_value(codec, record), 0)
        count += 1
    log.flush()
    return count
