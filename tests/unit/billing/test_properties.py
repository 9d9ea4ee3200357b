"""Ledger invariants under Hypothesis."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

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
from billing.invoicing import period_invoice, periods_ending_in
from billing.ledger import Effects, apply, state_to_dict
from streambill.config.catalog_file import load_catalog
from tests.unit.billing.conftest import EXAMPLE, t
from tests.unit.billing.helpers import fold
from tests.unit.billing.strategies import EXAMPLE_PLANS, histories

CATALOG = load_catalog(EXAMPLE)
START = t(2026, 1, 1)
settings.register_profile("billing", max_examples=60, deadline=None)
settings.load_profile("billing")

offsets = st.integers(min_value=0, max_value=27 * 24 * 3600)  # inside January


@st.composite
def dev_api_usage(draw: st.DrawFn, i: int) -> UsageRecorded:
    model = draw(st.sampled_from(["small", "large"]))
    q_in, q_out = draw(st.integers(0, 10**7)), draw(st.integers(0, 10**7))
    props = {"model": model, "input_tokens": str(q_in), "output_tokens": str(q_out)}
    at = START + timedelta(seconds=draw(offsets))
    return UsageRecorded(f"u{i}", "c", "tokens", D(q_in + q_out), at, props)


@st.composite
def image_usage(draw: st.DrawFn, i: int) -> UsageRecorded:
    props = {"complexity": draw(st.sampled_from(["standard", "complex", "ultra"]))}
    at = START + timedelta(seconds=draw(offsets))
    return UsageRecorded(f"u{i}", "c", "image_generation", D(draw(st.integers(0, 5))), at, props)


def balance_events(draw: st.DrawFn) -> list[Event]:
    n = draw(st.integers(1, 25))
    events: list[Event] = [draw(dev_api_usage(i)) for i in range(n)]
    for j in range(draw(st.integers(0, 3))):
        at = START + timedelta(seconds=draw(offsets))
        events.append(WalletDeposited(f"d{j}", "c", at, D(draw(st.integers(1, 50))), "USD"))
    return events


def credit_events(draw: st.DrawFn) -> list[Event]:
    n = draw(st.integers(1, 25))
    events: list[Event] = [draw(image_usage(i)) for i in range(n)]
    for j in range(draw(st.integers(0, 3))):
        at = START + timedelta(seconds=draw(offsets))
        events.append(CreditsPurchased(f"p{j}", "c", at, "credits-100"))
    for j in range(draw(st.integers(0, 2))):
        at = START + timedelta(seconds=draw(offsets))
        events.append(CreditsGranted(f"g{j}", "c", at, D(draw(st.integers(0, 40)))))
    return events


def comparable(state: Any) -> dict[str, Any]:
    """The state as data, minus what records the order of arrival (alert history,
    the remembered-id layout, the last-applied time)."""
    d = state_to_dict(state)
    for key in ("alerts_raised", "alert_counts", "alert_next", "last_topup", "updated_at"):
        d.pop(key)
    d["seen"] = {p: sorted(ids) for p, ids in d["seen"].items()}
    return d


@given(data=st.data(), plan=st.sampled_from(["dev-api", "image-credits"]))
def test_final_state_does_not_depend_on_event_order_within_a_period(
    data: st.DataObject, plan: str
) -> None:
    gen = balance_events if plan == "dev-api" else credit_events
    events = data.draw(st.composite(gen)())
    shuffled = data.draw(st.permutations(events))
    sub = SubscriptionStarted("sub", "c", START, plan)
    a, _ = fold(CATALOG, [sub, *events])
    b, _ = fold(CATALOG, [sub, *shuffled])
    assert comparable(a) == comparable(b)
    ia, ib = period_invoice(a, CATALOG, START), period_invoice(b, CATALOG, START)
    assert ia == ib


@given(data=st.data(), plan=st.sampled_from(EXAMPLE_PLANS))
def test_applying_an_event_twice_changes_nothing(data: st.DataObject, plan: str) -> None:
    """Every example plan, events over three periods in any order (late ones too): an
    event delivered again, at once or any number of events later, is a duplicate with
    no effect, and the final state equals the state without the resend."""
    history = data.draw(histories(plan))
    events = [history[0], *data.draw(st.permutations(history[1:]))]
    state, effects = fold(CATALOG, events)
    applied = [e for e, eff in zip(events, effects, strict=True) if eff.rejection is None]
    again = data.draw(st.sampled_from(applied))
    twice, eff = apply(state, again, CATALOG)
    assert eff == Effects(duplicate=True) and twice is state
    at = data.draw(st.integers(events.index(again) + 1, len(events)))
    resent, resent_effects = fold(CATALOG, [*events[:at], again, *events[at:]])
    assert resent_effects[at] == Effects(duplicate=True)
    assert resent_effects[:at] + resent_effects[at + 1 :] == effects
    assert state_to_dict(resent) == state_to_dict(state)


def metered_catalog(strategy: dict[str, Any]) -> Catalog:
    return parse_catalog({
        "features": [{"id": "tokens", "unit": "token"}],
        "plans": [{
            "id": "p", "model": "metered", "currency": "USD", "base_fee": "9.99",
            "seat_fee": "3.33", "prices": {"tokens": strategy},
        }],
    })  # fmt: skip


PRICES = [
    {"strategy": "per_unit", "unit_price": "0.0307", "per": 1000, "included": 1234},
    {"strategy": "per_unit", "unit_price": "0.07", "per": 1000, "rounding": "per_started_block"},
    {"strategy": "graduated", "per": 100, "tiers": [
        {"up_to": 5000, "unit_price": "0.333"}, {"up_to": None, "unit_price": "0.1111"}]},
    {"strategy": "volume", "tiers": [
        {"up_to": 500, "unit_price": "0.0133"}, {"up_to": None, "unit_price": "0.0071"}]},
    {"strategy": "per_request", "unit_price": "0.0049"},
    {"strategy": "per_minute", "unit_price": "0.0067"},
]  # fmt: skip


@given(
    price=st.sampled_from(PRICES),
    quantities=st.lists(
        st.decimals(min_value=0, max_value=10**6, places=2), min_size=1, max_size=8
    ),
    seat_changes=st.lists(st.tuples(offsets, st.integers(0, 9)), max_size=3),
)
def test_invoice_total_is_the_sum_of_its_rounded_lines(
    price: dict[str, Any], quantities: list[D], seat_changes: list[tuple[int, int]]
) -> None:
    cat = metered_catalog(price)
    events: list[Event] = [SubscriptionStarted("sub", "c", START, "p", seats=2)]
    for i, q in enumerate(quantities):
        events.append(UsageRecorded(f"u{i}", "c", "tokens", q, START + timedelta(hours=i)))
    for j, (off, seats) in enumerate(seat_changes):
        events.append(SeatsChanged(f"s{j}", "c", START + timedelta(seconds=off), seats))
    state, _ = fold(cat, events)
    inv = period_invoice(state, cat, START)
    assert inv is not None
    assert_rounded_once(inv)


@given(data=st.data(), plan=st.sampled_from(["image-credits", "query-credits", "dev-api"]))
def test_credits_and_wallet_invoice_totals_are_the_sum_of_their_rounded_lines(
    data: st.DataObject, plan: str
) -> None:
    """Purchase invoices (packs, deposits of any precision) and period invoices,
    including wallet periods that closed below zero and bill the amount owed."""
    state, effects = fold(CATALOG, data.draw(histories(plan)))
    invoices = [inv for eff in effects for inv in eff.invoices]
    for start, _ in periods_ending_in(state, START, START + timedelta(days=120)):
        inv = period_invoice(state, CATALOG, start)
        assert inv is not None
        invoices.append(inv)
    for inv in invoices:
        assert_rounded_once(inv)


def assert_rounded_once(inv: Invoice) -> None:
    """Each line rounded once, half-up, to the cent; the total is their sum."""
    assert inv.total == sum((line.amount for line in inv.lines), D(0))
    for line in inv.lines:
        assert line.amount == line.precise_amount.quantize(D("0.01"), rounding="ROUND_HALF_UP")
