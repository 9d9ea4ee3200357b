"""The fold worker's table plumbing: changelog values as JSON, rows queued for a
changelog (`Queued`), the local stores as the pipeline reads and updates them
(`Stores`), and the stand-in for Faust's "current event" that RocksDB stores read
their partition from (`Current`)."""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from faust import streams as faust_streams
from faust.types import TP

from processors.fold.batch import SourceMessage
from processors.fold.records import json_string
from processors.worker.batch_send import Sent


@dataclass(frozen=True, slots=True)
class Queued:
    """Rows of one table queued for its changelog, not yet acked."""

    table: Any
    rows: list[tuple[int, str, Any]]
    sent: Sent


_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def json_key(key: str) -> bytes:
    """A string key as JSON, exactly what `plain_json(key)` gives, without the encoder's
    dispatch (one key per event)."""
    return json_string(key).encode()


def plain_json(value: Any) -> bytes:
    """Plain JSON (str, numbers, lists, dicts only), what Faust's "json" codec
    decodes on table recovery; the stdlib encoder directly, because Faust's codec
    stack costs several times more per record and we write one per event."""
    return _encode_json(value).encode()


def store_row(store: Any, key: str, value: Any) -> None:
    if value is None:
        store.pop(key, None)
    else:
        store[key] = value


class Current:
    """Stands in for "the current event" of Faust's stores: only `.message.partition`
    is read (RocksDB picks its per-partition database by it)."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, message: SourceMessage) -> None:
        self.message = message


class Stores:
    """The local stores of the worker's tables (`customers`, `seen`), read and
    updated by the pipeline directly. RocksDB stores (`by_event`) pick their
    per-partition database from Faust's "current event", so every access runs
    inside `at(partition)`; the in-memory store is one dict, addressed directly."""

    def __init__(self, customers: Any, seen: Any, *, by_event: bool) -> None:
        self.customers = customers
        self.seen = seen
        self.by_event = by_event
        self._markers: dict[int, Current] = {}

    def mark(self, partition: int, message: SourceMessage) -> None:
        """Remember a message of `partition` (any will do) to address its stores."""
        self._markers.setdefault(partition, Current(message))

    def read(self, table: Any, key: str, partition: int) -> Any:
        if not self.by_event:  # the memory store's own dict: Mapping.get costs ~3 µs
            return table.data.data.get(key)
        with self.at(partition):
            return table.data.get(key)

    def update(self, queued: Queued, last: dict[tuple[str, int], int]) -> None:
        """The rows of `queued`, acked up to the offsets `last`, into the store."""
        store = queued.table.data
        if self.by_event:
            for partition, key, value in queued.rows:
                with self.at(partition):
                    store_row(store, key, value)
        else:  # the memory store's own dict, as `read` reads it (one row per event)
            for _, key, value in queued.rows:
                store_row(store.data, key, value)
        for (t, p), offset in last.items():
            store.set_persisted_offset(TP(t, p), offset)

    @contextmanager
    def at(self, partition: int) -> Iterator[None]:
        """Make Faust's stores (RocksDB picks its per-partition DB from "the
        current event") address `partition`, whatever event the stream saw last.
        Only for those stores (`by_event`): the in-memory store is one dict."""
        current = self._markers.get(partition)
        if current is None:
            yield
            return
        token = faust_streams._current_event.set(weakref.ref(current))  # type: ignore[arg-type]
        try:
            yield
        finally:
            faust_streams._current_event.reset(token)
