"""The fold worker's table plumbing: changelog values as JSON, rows queued for a
changelog (`Queued`), the local store's set/delete, and the stand-in for Faust's
"current event" that RocksDB stores read their partition from (`Current`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from processors.batch_send import Sent
from processors.fold import SourceMessage
from processors.records import json_string


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
