"""Small builders for ledger scenarios (explicit event times, UTC)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from billing.catalog import Catalog
from billing.events import Event, Invoice, UsageRecorded
from billing.invoicing import period_invoice
from billing.ledger import CustomerState, Effects, apply, new_state

_ids = itertools.count()


def usage(
    cid: str,
    feature: str,
    quantity: int | str,
    at: datetime,
    event_id: str | None = None,
    **props: str,
) -> UsageRecorded:
    return UsageRecorded(
        event_id or f"u{next(_ids)}", cid, feature, Decimal(quantity), at, dict(props)
    )


def fold(
    catalog: Catalog, events: Iterable[Event], state: CustomerState | None = None
) -> tuple[CustomerState, list[Effects]]:
    effects: list[Effects] = []
    for e in events:
        if state is None:
            state = new_state(e.customer_id)
        state, eff = apply(state, e, catalog)
        effects.append(eff)
    assert state is not None
    return state, effects


def invoice(state: CustomerState, catalog: Catalog, start: datetime) -> Invoice:
    inv = period_invoice(state, catalog, start)
    assert inv is not None
    return inv


def cents(amount: Decimal) -> int:
    """An amount in minor units (USD cents), asserting it is a whole number of them."""
    minor = amount * 100
    assert minor == minor.to_integral_value()
    return int(minor)
