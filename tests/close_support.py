"""Helpers shared by the close tests: event builders, an in-memory close harness,
and the independent "live" reference (a pure fold priced by `snapshot`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import yaml

from billing.catalog import Catalog, parse_catalog
from billing.events import (
    CreditsGranted,
    CreditsPurchased,
    Event,
    Invoice,
    SeatsChanged,
    SubscriptionStarted,
    UsageRecorded,
    WalletDeposited,
)
from billing.ledger import apply, new_state, snapshot
from processors.close.plan import Month
from processors.close.run import CloseDeps, CloseOptions, CloseReport, close_period
from processors.close.topics import CloseTopics
from streambill.config.settings import Settings
from streambill.wire.codec import Codec
from streambill.wire.convert import decode_value, encode_value
from streambill.wire.log import InMemoryLog, LogPort

TOPICS = CloseTopics(
    "t.usage-events", "t.account-events", "t.invoices", "t.period-closes", "t.close-checkpoints"
)


def load_example_catalog() -> Catalog:
    with open(Settings().catalog_path, encoding="utf-8") as f:
        return parse_catalog(yaml.safe_load(f))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


_counter = [0]


def _id(prefix: str) -> str:
    _counter[0] += 1
    return f"{prefix}_{_counter[0]:08d}"


def usage(customer: str, feature: str, qty: str | int, at: datetime, **props: str) -> UsageRecorded:
    return UsageRecorded(_id("evt"), customer, feature, Decimal(qty), at, dict(props))


def subscribe(customer: str, plan: str, at: datetime, seats: int = 1) -> SubscriptionStarted:
    return SubscriptionStarted(_id("acc"), customer, at, plan, seats)


def seats(customer: str, n: int, at: datetime) -> SeatsChanged:
    return SeatsChanged(_id("acc"), customer, at, n)


def grant(customer: str, credits: str, at: datetime, expires: datetime | None) -> CreditsGranted:
    return CreditsGranted(_id("acc"), customer, at, Decimal(credits), expires)


def purchase(customer: str, pack: str, at: datetime, qty: int = 1) -> CreditsPurchased:
    return CreditsPurchased(_id("acc"), customer, at, pack, qty)


def deposit(customer: str, amount: str, at: datetime) -> WalletDeposited:
    return WalletDeposited(_id("acc"), customer, at, Decimal(amount), "USD")


@dataclass
class Harness:
    """A close over an in-memory log with a frozen clock."""

    catalog: Catalog
    codec: Codec = field(default_factory=Codec)
    log: InMemoryLog = field(default_factory=lambda: InMemoryLog(partition_count=3))
    now: datetime = datetime(2030, 1, 1, tzinfo=UTC)
    published: list[Event] = field(default_factory=list)

    def publish(self, events: Iterable[Event]) -> None:
        for e in events:
            topic = TOPICS.usage if isinstance(e, UsageRecorded) else TOPICS.account
            self.log.produce(
                topic, e.customer_id.encode(), encode_value(self.codec, e), ms(e.timestamp)
            )
            self.published.append(e)

    def deps(self, log: LogPort | None = None) -> CloseDeps:
        return CloseDeps(log or self.log, self.codec, self.catalog, TOPICS, lambda: self.now)

    def close(self, month: str, log: LogPort | None = None, **opts: Any) -> CloseReport:
        return close_period(self.deps(log), CloseOptions(Month.parse(month), **opts))

    def invoices_on_topic(self) -> list[tuple[bytes, Invoice]]:
        out = []
        for part in self.log.topics.get(TOPICS.invoices, []):
            for r in part:
                value = decode_value(self.codec, r.value)
                assert isinstance(value, Invoice)
                out.append((r.value, value))
        return out


def live_preview(
    catalog: Catalog, events: Sequence[Event], customer: str, period_end: datetime
) -> Invoice | None:
    """The reference: fold the customer's events in event-time order (account events
    first on ties) with `apply` and price the period as the live state previews it at
    its last instant (`snapshot(...).upcoming_invoice`)."""
    mine = [e for e in events if e.customer_id == customer and e.timestamp < period_end]
    mine.sort(key=lambda e: (e.timestamp, isinstance(e, UsageRecorded)))
    state = new_state(customer)
    for e in mine:
        state, _ = apply(state, e, catalog)
    as_of = period_end - timedelta(milliseconds=1)
    return snapshot(state, catalog, source_offsets={}, as_of=as_of).upcoming_invoice


def cents(amount: Decimal) -> int:
    return int(amount * 100)
