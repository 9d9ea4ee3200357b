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
from collections.abc import Callable

from billing.catalog import Catalog
from billing.errors import CatalogError
from streambill.config import settings as names
from streambill.config.catalog_file import load_catalog
from streambill.config.settings import Settings
from streambill.wire.catalog_topic import CatalogRead, read_catalog
from streambill.wire.codec import Codec
from streambill.wire.kafka_log import KafkaLog, LogError

RETRY_S = 15.0


def _read_with_retry(log: KafkaLog, topic: str, codec: Codec) -> CatalogRead:
    """The topic read to its end; a broker error (a leader moving, a topic just
    created, a broker restarting, no such topic yet) is retried for up to `RETRY_S`
    seconds, then a `CatalogError`."""
    deadline = time.monotonic() + RETRY_S
    while True:
        try:
            return read_catalog(log, topic, codec)
        except LogError as exc:
            if time.monotonic() >= deadline:
                raise CatalogError([f"cannot read the catalog topic {topic}: {exc}"]) from exc
            time.sleep(0.2)


def read_topic(settings: Settings, codec: Codec) -> CatalogRead:
    log = KafkaLog(settings.kafka_config(), timeout_s=10.0)
    try:
        return _read_with_retry(log, settings.topic(names.CATALOG), codec)
    finally:
        log.close()


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
    if settings.catalog_source == "file":  # else "topic": the setting admits nothing else
        return load_catalog(settings.catalog_path)
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
        log = KafkaLog(self._settings.kafka_config(), timeout_s=10.0)
        try:
            _, high = log.watermarks(self._topic)
        except LogError as exc:
            raise CatalogError([f"cannot read the catalog topic {self._topic}: {exc}"]) from exc
        finally:
            log.close()
        return high != self._seen

    def reload(self) -> Catalog:
        return self.reload_read()[0]

    def reload_read(self) -> tuple[Catalog, CatalogRead]:
        """The topic read again: its catalog and the read itself (the live records,
        retirements included), remembered as seen by `changed()`; `CatalogError` if it
        holds no plan or cannot be read."""
        read = read_topic(self._settings, self._codec)
        catalog = catalog_of(read, self._topic)
        self._seen = dict(read.end_offsets)
        return catalog, read
