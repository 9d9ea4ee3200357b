"""The read-model port, its key layout, and the in-memory adapter.

Key layout (prefix `sb` by default). Every key of one customer carries the customer
in a hash tag, so all of them live in one Redis Cluster slot and one Lua script can
touch them atomically:

    sb:{cus_1}:state      hash  the latest snapshot (`model.state_fields`)
    sb:{cus_1}:alerts     hash  alert_id -> JSON of each active alert
    sb:{cus_1}:invoices   hash  invoice_id -> JSON of the invoice with its lines
    sb:{cus_1}:alert_history  list  JSON of the recent alert events, newest first
                                (raised and resolved, at most 20: `projections.read.series`)
    sb:{cus_1}:trend      list  JSON {at, value} of the credits or balance since the last
                                top-up, oldest first (at most 50: `projections.read.series`)
    sb:{cus_1}:offsets    hash  "<topic>/<partition>" -> last source offset applied,
                                plus `_gen`, the generation the data belongs to
    sb:{@<topic>/<p>}:position  hash  {gen, next}: where the projector resumes
    sb:{meta}:generation  string  the current generation (the loss sentinel)

Invariants:
- A write whose source offset is at or below the customer's stored offset for that
  partition changes nothing (redelivery is harmless).
- A position never runs ahead of the customer writes it covers: it is advanced only
  after the writes of a batch are stored, so resuming from it can only replay.
- The generation is a random token created when the models are (re)started empty.
  If Redis loses its data the token is gone; the projector then starts a new
  generation and replays from the beginning. Customer data or positions written
  under an older generation (e.g. between a FLUSHALL and its detection) are wiped on
  first touch under the new one and positions of another generation are ignored,
  so the replay can never be blocked by stale offsets.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from projections.read.model import (
    PutInvoice,
    RaiseAlert,
    ReplaceState,
    ResolveAlert,
    Write,
)
from projections.read.series import next_trend, push_alert_event

GEN_FIELD = "_gen"
DumpValue = str | dict[str, str] | list[str]


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "sb"

    def state(self, customer_id: str) -> str:
        return f"{self.prefix}:{{{customer_id}}}:state"

    def alerts(self, customer_id: str) -> str:
        return f"{self.prefix}:{{{customer_id}}}:alerts"

    def invoices(self, customer_id: str) -> str:
        return f"{self.prefix}:{{{customer_id}}}:invoices"

    def offsets(self, customer_id: str) -> str:
        return f"{self.prefix}:{{{customer_id}}}:offsets"

    def alert_history(self, customer_id: str) -> str:
        return f"{self.prefix}:{{{customer_id}}}:alert_history"

    def trend(self, customer_id: str) -> str:
        return f"{self.prefix}:{{{customer_id}}}:trend"

    def customer(self, customer_id: str) -> tuple[str, str, str, str, str, str]:
        """All keys of one customer, in the order the write script expects."""
        return (
            self.offsets(customer_id),
            self.state(customer_id),
            self.alerts(customer_id),
            self.invoices(customer_id),
            self.alert_history(customer_id),
            self.trend(customer_id),
        )

    def position(self, topic: str, partition: int) -> str:
        return f"{self.prefix}:{{@{topic}/{partition}}}:position"

    def generation(self) -> str:
        return f"{self.prefix}:{{meta}}:generation"

    def pattern(self) -> str:
        return f"{self.prefix}:*"


def new_generation_token() -> str:
    return secrets.token_hex(8)


class ReadModelStore(Protocol):
    """Per-customer read models with source offsets. Implemented by the in-memory and
    Redis adapters; `tests/projections/test_store_contract.py` holds both to one contract."""

    def generation(self) -> str | None:
        """The current generation token, or None if the models were lost/never made."""
        ...

    def ensure_generation(self) -> str:
        """The current generation, creating a fresh one if there is none."""
        ...

    def apply(self, generation: str, writes: Sequence[Write]) -> list[bool]:
        """Apply each write atomically with its offset; True where it changed something."""
        ...

    def advance(self, generation: str, topic: str, partition: int, next_offset: int) -> None:
        """Record that everything before `next_offset` of the partition is applied."""
        ...

    def positions(self, generation: str, topic: str, partitions: Iterable[int]) -> dict[int, int]:
        """Stored resume offsets of this generation (partitions without one are absent)."""
        ...

    def clear(self) -> str:
        """Delete every read model and position; start and return a new generation."""
        ...

    def state(self, customer_id: str) -> dict[str, str]:
        """The state hash (empty if the customer has none)."""
        ...

    def state_fields(self, customer_id: str, fields: Sequence[str]) -> list[str | None]: ...

    def alerts(self, customer_id: str) -> dict[str, str]: ...

    def invoices(self, customer_id: str) -> dict[str, str]: ...

    def alert_history(self, customer_id: str) -> list[str]:
        """JSON of the recent alert events (raised and resolved), newest first."""
        ...

    def trend(self, customer_id: str) -> list[str]:
        """JSON {at, value} points since the last top-up, oldest first."""
        ...

    def dump(self) -> dict[str, DumpValue]:
        """Every read-model key with its value, generation tokens left out, so two
        builds of the same log compare equal key for key."""
        ...


def strip_generation(key: str, value: Mapping[str, str], keys: Keys) -> dict[str, str]:
    """A hash as it appears in a dump: bookkeeping of the generation removed."""
    drop = "gen" if key.endswith(":position") else GEN_FIELD
    return {k: v for k, v in value.items() if k != drop}


class InMemoryStore:
    """The same semantics as the Redis adapter, held in dicts (tests, tools)."""

    def __init__(self, keys: Keys | None = None) -> None:
        self.keys = keys or Keys()
        self._hashes: dict[str, dict[str, str]] = {}
        self._lists: dict[str, list[str]] = {}
        self._strings: dict[str, str] = {}

    def generation(self) -> str | None:
        return self._strings.get(self.keys.generation())

    def ensure_generation(self) -> str:
        return self._strings.setdefault(self.keys.generation(), new_generation_token())

    def apply(self, generation: str, writes: Sequence[Write]) -> list[bool]:
        return [self._apply_one(generation, write) for write in writes]

    def _apply_one(self, generation: str, write: Write) -> bool:
        keys = self.keys.customer(write.customer_id)
        offsets_key, state_key, alerts_key, invoices_key, history_key, trend_key = keys
        offsets = self._hashes.get(offsets_key)
        if offsets is None or offsets.get(GEN_FIELD) != generation:
            for key in keys:
                self._hashes.pop(key, None)
                self._lists.pop(key, None)
            offsets = self._hashes[offsets_key] = {GEN_FIELD: generation}
        else:
            stored = offsets.get(write.source.field)
            if stored is not None and int(stored) >= write.source.offset:
                return False
        op = write.operation
        if isinstance(op, ReplaceState):
            before = self._hashes.get(state_key, {})
            previous = (before.get("model", ""), before.get("last_topup", ""))
            self._hashes[state_key] = dict(op.fields)
            trend = next_trend(self._lists.get(trend_key, []), previous, op.trend)
            self._set_list(trend_key, trend)
        elif isinstance(op, RaiseAlert):
            self._hashes.setdefault(alerts_key, {})[op.alert_id] = op.payload
            history = push_alert_event(self._lists.get(history_key, []), op.history)
            self._set_list(history_key, history)
        elif isinstance(op, ResolveAlert):
            alerts = self._hashes.get(alerts_key, {})
            alerts.pop(op.raised_alert_id, None)
            if not alerts:
                self._hashes.pop(alerts_key, None)  # Redis drops empty hashes too
            history = push_alert_event(self._lists.get(history_key, []), op.history)
            self._set_list(history_key, history)
        elif isinstance(op, PutInvoice):
            self._hashes.setdefault(invoices_key, {})[op.invoice_id] = op.payload
        offsets[write.source.field] = str(write.source.offset)
        return True

    def _set_list(self, key: str, items: list[str]) -> None:
        if items:
            self._lists[key] = items
        else:
            self._lists.pop(key, None)  # Redis drops empty lists too

    def advance(self, generation: str, topic: str, partition: int, next_offset: int) -> None:
        key = self.keys.position(topic, partition)
        current = self._hashes.get(key)
        if current and current["gen"] == generation and int(current["next"]) >= next_offset:
            return
        self._hashes[key] = {"gen": generation, "next": str(next_offset)}

    def positions(self, generation: str, topic: str, partitions: Iterable[int]) -> dict[int, int]:
        found: dict[int, int] = {}
        for partition in partitions:
            stored = self._hashes.get(self.keys.position(topic, partition))
            if stored and stored["gen"] == generation:
                found[partition] = int(stored["next"])
        return found

    def clear(self) -> str:
        self.lose_everything()
        return self.ensure_generation()

    def lose_everything(self) -> None:
        """What a FLUSHALL does to Redis (used by tests of loss detection)."""
        self._hashes.clear()
        self._lists.clear()
        self._strings.clear()

    def state(self, customer_id: str) -> dict[str, str]:
        return dict(self._hashes.get(self.keys.state(customer_id), {}))

    def state_fields(self, customer_id: str, fields: Sequence[str]) -> list[str | None]:
        state = self._hashes.get(self.keys.state(customer_id), {})
        return [state.get(f) for f in fields]

    def alerts(self, customer_id: str) -> dict[str, str]:
        return dict(self._hashes.get(self.keys.alerts(customer_id), {}))

    def invoices(self, customer_id: str) -> dict[str, str]:
        return dict(self._hashes.get(self.keys.invoices(customer_id), {}))

    def alert_history(self, customer_id: str) -> list[str]:
        return list(self._lists.get(self.keys.alert_history(customer_id), []))

    def trend(self, customer_id: str) -> list[str]:
        return list(self._lists.get(self.keys.trend(customer_id), []))

    def dump(self) -> dict[str, DumpValue]:
        out: dict[str, DumpValue] = {
            key: strip_generation(key, value, self.keys) for key, value in self._hashes.items()
        }
        out.update((key, list(items)) for key, items in self._lists.items())
        return dict(sorted(out.items()))
