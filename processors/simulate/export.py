"""`streambill export`'s pure part: input records of the log to the JSON lines that
`streambill simulate` reads (`processors.simulate.simulation.read_jsonl`).

One file holds both inputs: a usage event is a line without `type` (the usage file's
format), an account event a line whose `type` names its kind (the accounts file's
format); `read_jsonl` of the usage file reads both. `event_json` is the inverse of
the simulate parsers: reading a written line back gives an equal event.

Every record passes the doors (`processors.fold.admission.Doors`) first, as on every
path that reads the input topics; a record they reject is not written but counted by
reason, and nothing a record holds stops an export. The selection (`Selection`) is by
event time: usage in [start, end); account events before `end`, from the beginning of
the log, because a customer's subscription, seats, credits and wallet at `start` are
the fold of every account event before it (the close reads account-events from the
start too). Records are written in the order given (the CLI gives each partition in
offset order: the log's order, which is what simulate folds usage in).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TextIO

from billing.events import (
    BalanceAdjusted,
    CreditsGranted,
    CreditsPurchased,
    Event,
    RejectReason,
    SeatsChanged,
    SubscriptionCancelled,
    SubscriptionChanged,
    SubscriptionStarted,
    UsageRecorded,
    WalletDeposited,
)
from processors.fold.admission import Doors, Rejection


class InputRecord(Protocol):
    """A record of an input topic (`processors.close.log.LogRecord` is one)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes: ...


@dataclass(frozen=True)
class Selection:
    """What an export keeps: usage in [start, end), account events before `end`, of
    `customers` only when given."""

    start: datetime
    end: datetime
    customers: frozenset[str] | None = None

    def keeps(self, event: Event) -> bool:
        if self.customers is not None and event.customer_id not in self.customers:
            return False
        if isinstance(event, UsageRecorded):
            return self.start <= event.timestamp < self.end
        return event.timestamp < self.end


@dataclass
class ExportTally:
    """What an export did with the records it read."""

    usage: int = 0
    account: int = 0
    outside: int = 0  # read, admitted by the doors, not selected
    rejected: Counter[str] = field(default_factory=Counter)  # reason -> records


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def event_json(event: Event) -> dict[str, Any]:
    """The JSON object simulate reads for `event` (amounts as decimal strings)."""
    base = {"event_id": event.event_id, "customer_id": event.customer_id}
    at = _time(event.timestamp)
    if isinstance(event, UsageRecorded):
        return {
            **base,
            "feature_id": event.feature_id,
            "quantity": str(event.quantity),
            "timestamp": at,
            "properties": dict(sorted(event.properties.items())),
        }
    head = {"type": account_type(event), **base, "timestamp": at}
    if isinstance(event, SubscriptionStarted | SubscriptionChanged):
        pin = {} if event.plan_version is None else {"plan_version": event.plan_version}
    if isinstance(event, SubscriptionStarted):
        return {**head, "plan_id": event.plan_id, "seats": event.seats, **pin}
    if isinstance(event, SubscriptionChanged):
        return {**head, "plan_id": event.plan_id, **pin}
    if isinstance(event, SubscriptionCancelled):
        return head
    if isinstance(event, SeatsChanged):
        return {**head, "seats": event.seats}
    if isinstance(event, CreditsPurchased):
        return {**head, "pack_id": event.pack_id, "quantity": event.quantity}
    if isinstance(event, CreditsGranted):
        expires = None if event.expires_at is None else _time(event.expires_at)
        return {**head, "credits": str(event.credits), "expires_at": expires}
    money = {"amount": str(event.amount), "currency": event.currency}
    if isinstance(event, WalletDeposited):
        return {**head, **money}
    return {**head, **money, "reason": event.reason}


_TYPES: dict[type, str] = {
    SubscriptionStarted: "subscription_started",
    SubscriptionChanged: "subscription_changed",
    SubscriptionCancelled: "subscription_cancelled",
    SeatsChanged: "seats_changed",
    CreditsPurchased: "credits_purchased",
    CreditsGranted: "credits_granted",
    WalletDeposited: "wallet_deposited",
    BalanceAdjusted: "balance_adjusted",
}


def account_type(event: Event) -> str:
    """The `type` of an account event's line."""
    return _TYPES[type(event)]


def event_line(event: Event) -> str:
    """One line of the file, newline included."""
    return json.dumps(event_json(event), separators=(", ", ": ")) + "\n"


def export_records(
    records: Iterable[InputRecord],
    doors: Doors,
    selection: Selection,
    out: TextIO,
    tally: ExportTally,
) -> None:
    """Write the selected events of `records`, in their order, through the doors."""
    for record in records:
        try:
            event = doors.read(record.topic, record.partition, record.key, record.value)
        except Rejection as rejected:
            tally.rejected[rejected.reason.value] += 1
            continue
        except Exception:  # never fatal on data: the worker dead-letters it the same way
            tally.rejected[RejectReason.INTERNAL_ERROR.value] += 1
            continue
        if not selection.keeps(event):
            tally.outside += 1
            continue
        out.write(event_line(event))
        if isinstance(event, UsageRecorded):
            tally.usage += 1
        else:
            tally.account += 1
