"""The worker's two Faust tables behind the port's `Table` (`processors.worker.ports`).

The pipeline reads and updates the local stores directly and writes the changelogs
itself (`processors.worker.commit`): Faust's `table[key] = value` picks the changelog
partition from "the current event" (wrong inside a multi-partition batch) and gives
no delivery future to wait on. Faust still recovers the stores from the changelogs.

RocksDB stores pick their per-partition database from Faust's "current event", so
every access to them runs inside `Markers.at(partition)`, which sets a stand-in
(`Current`) for it; the in-memory store is one dict, addressed directly.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from faust import streams as faust_streams
from faust.types import TP

from processors.fold.batch import SourceMessage


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


class Markers:
    """One message per partition (any will do) to address that partition's stores."""

    def __init__(self) -> None:
        self._markers: dict[int, Current] = {}

    def mark(self, partition: int, message: SourceMessage) -> None:
        self._markers.setdefault(partition, Current(message))

    @contextmanager
    def at(self, partition: int) -> Iterator[None]:
        """Make Faust's stores address `partition`, whatever event was current."""
        current = self._markers.get(partition)
        if current is None:
            yield
            return
        token = faust_streams._current_event.set(weakref.ref(current))  # type: ignore[arg-type]
        try:
            yield
        finally:
            faust_streams._current_event.reset(token)


class FaustTable:
    """A Faust table's local store and changelog topic, as the port's `Table`."""

    def __init__(self, table: Any, markers: Markers, *, by_event: bool) -> None:
        self._table = table
        self._markers = markers
        self._by_event = by_event  # RocksDB: per-partition databases, serialized values
        self._changelog: str | None = None

    @property
    def keeps_objects(self) -> bool:
        return not self._by_event

    @property
    def changelog(self) -> str:
        if self._changelog is None:
            self._changelog = str(self._table.changelog_topic.get_topic_name())
        return self._changelog

    def get(self, key: str, partition: int) -> Any:
        if not self._by_event:  # the memory store's own dict, not its per-call Mapping.get
            return self._table.data.data.get(key)
        with self._markers.at(partition):
            return self._table.data.get(key)

    def apply(self, rows: Sequence[tuple[int, str, Any]], last: dict[tuple[str, int], int]) -> None:
        """The rows into the store, then (RocksDB) the persisted changelog offsets:
        the order Faust itself uses, so a crash can make recovery re-read a record,
        never skip one."""
        store = self._table.data
        if self._by_event:
            for partition, key, value in rows:
                with self._markers.at(partition):
                    store_row(store, key, value)
        else:  # the memory store's own dict, as `get` reads it (one row per event)
            for _, key, value in rows:
                store_row(store.data, key, value)
        for (t, p), offset in last.items():
            store.set_persisted_offset(TP(t, p), offset)

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(list(self._table.data.items()))
