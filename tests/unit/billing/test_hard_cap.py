"""Hard spend caps (issue 18): usage that would take a period's usage charges past a
hard cap is refused (`spend_cap_exceeded`) and never billed; a soft cap (the default)
alerts and bills on. Every path folds with `billing.ledger.apply`, so the worker's
batch fold and the close refuse the same event.

Plan `capped`: metered, USD, no base fee, tokens at 1.00 per 1,000 (none included),
spend cap 5.00. 3,000 tokens (3.00), then 2,000 (5.00: exactly the cap, allowed),
then 1 token (0.001 more: refused when hard, billed when soft).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing.catalog import Catalog, parse_catalog
from billing.catalog_records import catalog_records, records_catalog
from billing.errors import CatalogError
from billing.events import SubscriptionStarted, UsageRecorded
from billing.invoicing import period_invoice
from billing.ledger import apply, new_state, snapshot
from billing.replay import Replay
from processors.fold.admission import DEFAULT_POLICY


def _catalog(mode: str | None) -> Catalog:
    plan: dict[str, object] = {
        "id": "capped", "version": 1, "model": "metered", "currency": "USD",
        "spend_cap": "5.00",
        "prices": {"tokens": {"strategy": "per_unit", "unit_price": "1.00", "per": 1000}},
    }  # fmt: skip
    if mode is not None:
        plan["spend_cap_mode"] = mode
    return parse_catalog({"features": [{"id": "tokens", "unit": "token"}], "plans": [plan]})


T0 = datetime(2026, 10, 1, tzinfo=UTC)
EVENTS = [
    SubscriptionStarted("s", "c", T0, "capped"),
    UsageRecorded("u1", "c", "tokens", Decimal(3000), T0.replace(day=2)),
    UsageRecorded("u2", "c", "tokens", Decimal(2000), T0.replace(day=3)),
    UsageRecorded("u3", "c", "tokens", Decimal(1), T0.replace(day=4)),
]


def _fold(catalog: Catalog) -> tuple[list[str | None], object]:
    state = new_state("c")
    reasons: list[str | None] = []
    for e in EVENTS:
        state, effects = apply(state, e, catalog)
        reasons.append(None if effects.rejection is None else str(effects.rejection.reason))
    return reasons, state


def test_a_hard_cap_refuses_the_event_that_passes_it_and_bills_up_to_the_cap() -> None:
    catalog = _catalog("hard")
    reasons, state = _fold(catalog)
    assert reasons == [None, None, None, "spend_cap_exceeded"]
    invoice = period_invoice(state, catalog, T0)  # type: ignore[arg-type]
    assert invoice is not None and invoice.total == Decimal("5.00")
    live = snapshot(state, catalog, source_offsets={}, as_of=T0.replace(day=5))  # type: ignore[arg-type]
    assert live.allowed is False  # the cap is reached


@pytest.mark.parametrize("mode", [None, "soft"])
def test_a_soft_cap_bills_on(mode: str | None) -> None:
    catalog = _catalog(mode)
    reasons, state = _fold(catalog)
    assert reasons == [None, None, None, None]
    invoice = period_invoice(state, catalog, T0)  # type: ignore[arg-type]
    assert invoice is not None and invoice.total == Decimal("5.00")  # 5.001, rounded once


def test_the_close_refuses_what_the_ledger_refuses() -> None:
    replay = Replay(_catalog("hard"), DEFAULT_POLICY)
    for e in EVENTS:
        if isinstance(e, UsageRecorded):
            replay.usage(e)
        else:
            replay.account(e)
    replay.finish()
    assert replay.rejected == {"spend_cap_exceeded": 1}


def test_the_mode_survives_the_catalog_topic_and_is_checked() -> None:
    catalog = _catalog("hard")
    again = records_catalog(tuple(catalog_records(catalog)))
    assert again.plans["capped"].hard_cap is True
    assert records_catalog(tuple(catalog_records(_catalog(None)))).plans["capped"].hard_cap is False
    with pytest.raises(CatalogError, match="spend_cap_mode"):
        _catalog("firm")
    plan = {"id": "p", "version": 1, "model": "metered", "currency": "USD",
            "spend_cap_mode": "hard", "prices": {}}  # fmt: skip
    with pytest.raises(CatalogError, match="needs a spend_cap"):
        parse_catalog({"features": [], "plans": [plan]})
