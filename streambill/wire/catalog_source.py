"""Where a process takes its catalog from: one function, `process_catalog`, for every
process (the worker, the close, reconcile, simulate without `--catalog`, the API).

`STREAMBILL_CATALOG_SOURCE=file` (the default) reads `STREAMBILL_CATALOG_PATH`;
`topic` reads the catalog topic to its end (`streambill.wire.catalog_topic`), which
`streambill catalog publish` writes: every feature, credit pack and plan version
ever published, so a subscription pinned to a version (`billing.catalog.Catalog`)
is priced at that version whatever was published after it. A catalog topic with no
plan, or whose live records do not make a valid catalog, is a `CatalogError`: a
process never starts on an empty or half catalog. Records the reader cannot use
are reported through `warn`, never fatal.

`CatalogWatch` lets a long-running process pick up new publications without a
restart: `changed()` compares the topic's end offsets with those it last read (one
metadata request), and `reload()` reads it again. Swapping to the new catalog is
safe at any batch boundary: a catalog only gains versions, and a pin names one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition

from billing.catalog import Catalog
from billing.errors import CatalogError
from streambill.config import settings as names
from streambill.config.catalog_file import load_catalog
from streambill.config.settings import Settings
from streambill.wire.catalog_topic import CatalogRead, read_catalog
from streambill.wire.codec import Codec

SOURCES = ("file", "topic")
RETRY_S = 15.0


@dataclass(frozen=True, slots=True)
class _Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class KafkaCatalogReader:
    """The reading half of `streambill.wire.catalog_topic.CatalogLog` on a broker: a
    consumer without a group (assigned partitions, nothing committed)."""

    def __init__(self, settings: Settings) -> None:
        self._consumer = Consumer(
            settings.kafka_config(
                **{
                    "group.id": f"{settings.worker_group()}-catalog-reader",
                    "enable.auto.commit": False,
                    "enable.partition.eof": False,
                }
            )
        )

    def close(self) -> None:
        self._consumer.close()

    def watermarks(self, topic: str) -> tuple[dict[int, int], dict[int, int]]:
        """Per partition, (low, high); a broker error (a leader moving, a topic just
        created, a broker restarting) is retried for up to `RETRY_S` seconds."""
        deadline = time.monotonic() + RETRY_S
        while True:
            try:
                return self._watermarks(topic)
            except KafkaException as exc:
                if time.monotonic() >= deadline:
                    raise CatalogError([f"cannot read the catalog topic {topic}: {exc}"]) from exc
                time.sleep(0.2)

    def _watermarks(self, topic: str) -> tuple[dict[int, int], dict[int, int]]:
        meta = self._consumer.list_topics(topic, timeout=10)
        found = meta.topics.get(topic)
        if found is None or found.error is not None:
            raise CatalogError([f"the catalog topic {topic} does not exist (topics create)"])
        low: dict[int, int] = {}
        high: dict[int, int] = {}
        for p in sorted(found.partitions):
            low[p], high[p] = self._consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=10
            )
        return low, high

    def read(
        self,
        topic: str,
        starts: Mapping[int, int],
        ends: Mapping[int, int],
        keys: frozenset[bytes] | None = None,
    ) -> Iterator[list[_Record]]:
        pending = {p: ends[p] for p, s in starts.items() if s < ends.get(p, s)}
        if not pending:
            return
        self._consumer.assign([TopicPartition(topic, p, starts[p]) for p in pending])
        while pending:
            batch: list[_Record] = []
            for msg in self._consumer.consume(num_messages=500, timeout=1.0):
                p, off = msg.partition(), msg.offset()
                if msg.error() is not None or p is None or off is None or p not in pending:
                    continue
                if off < pending[p] and (keys is None or msg.key() in keys):
                    batch.append(_Record(p, off, msg.key(), msg.value()))
                if off + 1 >= pending[p]:
                    del pending[p]
            if batch:
                yield batch


def read_topic(settings: Settings, codec: Codec) -> CatalogRead:
    reader = KafkaCatalogReader(settings)
    try:
        return read_catalog(reader, settings.topic(names.CATALOG), codec)
    finally:
        reader.close()


def catalog_of(read: CatalogRead, topic: str) -> Catalog:
    """The catalog of a read of the topic; `CatalogError` if it holds no plan."""
    if not read.live.plan_versions():
        raise CatalogError(
            [f"the catalog topic {topic} holds no plan: run `streambill catalog publish FILE`"]
        )
    return read.live.catalog()


def process_catalog(
    settings: Settings, codec: Codec, warn: Callable[[str], object] = lambda _: None
) -> Catalog:
    """The catalog this process bills with (see the module docstring)."""
    source = settings.catalog_source
    if source == "file":
        return load_catalog(settings.catalog_path)
    if source != "topic":
        raise CatalogError([f"STREAMBILL_CATALOG_SOURCE is {source!r}; use one of {SOURCES}"])
    read = read_topic(settings, codec)
    for bad in read.unreadable:
        warn(f"catalog topic: left out {bad}")
    return catalog_of(read, settings.topic(names.CATALOG))


class CatalogWatch:
    """Notices publications on the catalog topic (source `topic` only)."""

    def __init__(self, settings: Settings, codec: Codec) -> None:
        self._settings, self._codec = settings, codec
        self._topic = settings.topic(names.CATALOG)
        self._seen: dict[int, int] | None = None
        self.enabled = settings.catalog_source == "topic"

    def changed(self) -> bool:
        if not self.enabled:
            return False
        reader = KafkaCatalogReader(self._settings)
        try:
            _, high = reader.watermarks(self._topic)
        finally:
            reader.close()
        return high != self._seen

    def reload(self) -> Catalog:
        read = read_topic(self._settings, self._codec)
        catalog = catalog_of(read, self._topic)
        self._seen = dict(read.end_offsets)
        return catalog
