"""`advance`: a state rolled over to an instant exactly as an event there would roll
it, with nothing applied. Frozen times throughout."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.catalog import Catalog
from billing.events import (
    AlertResolved,
    CreditsGranted,
    Event,
    SeatsChanged,
    SubscriptionCancelled,
    SubscriptionChanged,
    SubscriptionStarted,
    WalletDeposited,
)
from billing.invoicing import period_invoice
from billing.ledger import CustomerState, Effects, advance, apply, snapshot, state_to_dict
from tests.unit.billing.conftest import t
from tests.unit.billing.helpers import cents, fold, invoice, usage
from tests.unit.billing.strategies import (
    EXAMPLE_PLANS,
    account_of,
    histories,
    instants,
    usage_of,
)
from tests.unit.billing.test_properties import CATALOG

DEV = SubscriptionStarted("sub", "c", t(2026, 1, 1), "dev-api")
OVERDRAWN = [  # January closes at -0.80 (the dev-api seed of test_scenarios)
    DEV,
    WalletDeposited("dep", "c", t(2026, 1, 1), D("1.00"), "USD"),
    usage("c", "tokens", 200_000, t(2026, 1, 2), "big",
          model="large", input_tokens="100000", output_tokens="100000"),  # 0.30 + 1.50
]  # fmt: skip


def test_a_wallet_that_closed_below_zero_opens_the_next_period_at_zero(catalog: Catalog) -> None:
    jan, _ = fold(catalog, OVERDRAWN)
    assert jan.balance == D("-0.80")
    feb, effects = advance(jan, t(2026, 2, 10), catalog)
    assert (feb.balance, effects) == (D(0), Effects())
    assert jan.balance == D("-0.80")  # the state passed in is unchanged
    assert (feb.seq, feb.updated_at) == (jan.seq, jan.updated_at)  # nothing was applied
    assert snapshot(feb, catalog, source_offsets={}, as_of=t(2026, 2, 10)).balance == 0
    # The January invoice still bills the amount owed; February owes nothing.
    assert cents(invoice(feb, catalog, t(2026, 1, 1)).total) == 80
    assert cents(invoice(feb, catalog, t(2026, 2, 1)).total) == 0
    # The same as the first February event would have done (a zero-token call).
    zero = usage("c", "tokens", 0, t(2026, 2, 10), model="small",
                 input_tokens="0", output_tokens="0")  # fmt: skip
    by_event, _ = apply(jan, zero, catalog)
    assert by_event.balance == feb.balance


def test_nothing_to_roll_over_returns_the_same_state(catalog: Catalog) -> None:
    jan, _ = fold(catalog, OVERDRAWN)
    for at in (t(2026, 1, 31, 23, 59), t(2026, 1, 2), t(2025, 12, 1)):  # live period, before
        assert advance(jan, at, catalog) == (jan, Effects())
    subscribed, _ = fold(catalog, [DEV])
    assert advance(subscribed, t(2026, 5, 1), catalog)[0].balance == 0
    cancelled, _ = fold(catalog, [*OVERDRAWN, SubscriptionCancelled("x", "c", t(2026, 1, 20))])
    after_end, _ = advance(cancelled, t(2026, 3, 1), catalog)
    assert after_end is cancelled  # an event then is rejected (no_subscription): no rollover
    with pytest.raises(ValueError, match="naive"):
        advance(jan, datetime(2026, 2, 1), catalog)  # noqa: DTZ001


def test_metered_rollover_resolves_the_allowance_alerts_like_the_next_event(
    catalog: Catalog,
) -> None:
    sub = SubscriptionStarted("sub", "c", t(2026, 1, 1), "writer")
    jan, _ = fold(catalog, [sub, usage("c", "tokens", 120_000, t(2026, 1, 3))])  # 80 %, 100 %
    feb, effects = advance(jan, t(2026, 2, 1), catalog)
    _, by_event = apply(jan, usage("c", "tokens", 0, t(2026, 2, 1)), catalog)
    assert [type(a) for a in effects.alerts] == [AlertResolved, AlertResolved]
    assert effects.alerts == by_event.alerts
    assert advance(feb, t(2026, 2, 20), catalog) == (feb, Effects())  # resolved once


def test_credits_are_not_settled_by_periods(catalog: Catalog) -> None:
    """Negative credits carry over (nothing bills them); expired grants are left out
    by the snapshot at any instant, so advancing changes no credit."""
    jan, _ = fold(catalog, [
        SubscriptionStarted("sub", "c", t(2026, 1, 1), "image-credits"),
        CreditsGranted("g", "c", t(2026, 1, 1), D(30), t(2026, 2, 15)),
        usage("c", "image_generation", 5, t(2026, 1, 2), complexity="ultra"),  # 50 credits
        CreditsGranted("g2", "c", t(2026, 1, 3), D(40), t(2026, 3, 1)),
    ])  # fmt: skip
    mar, effects = advance(jan, t(2026, 3, 1), catalog)
    assert (mar.grants, effects) == (jan.grants, Effects())
    snap = snapshot(mar, catalog, source_offsets={}, as_of=t(2026, 3, 1))
    assert snap.credits_remaining == D(-20)  # the grant of 40 expired at 2026-03-01
    before = snapshot(mar, catalog, source_offsets={}, as_of=t(2026, 2, 28, 23))
    assert before.credits_remaining == D(20)


# ------------------------------------------------------------------- property

RECORDLESS = (SeatsChanged, SubscriptionChanged, SubscriptionCancelled)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY_MS = 24 * 3600 * 1000
# Milliseconds after an instant: 0-70 days (drawn as days, so that later periods are
# as likely as the same one) plus a time of day; SOON is 0 half of the time.
LATER = st.builds(lambda d, ms: d * DAY_MS + ms, st.integers(0, 70), st.integers(0, DAY_MS))
SOON = st.just(0) | LATER


def comparable(state: CustomerState) -> dict[str, Any]:
    """The state as data without empty period records: every computation treats an
    empty record like a missing one (`invoicing._billable_record`, `wallet_closes`)."""
    d = state_to_dict(state)
    d["periods"] = [p for p in d["periods"] if not _empty(p)]
    return d


def _empty(p: dict[str, Any]) -> bool:
    money = ("credits_used", "spent", "topped", "spend")
    return (
        not (p["usage"] or p["tokens"] or p["alert_idx"] or p["capped"])
        and all(D(p[k]) == 0 for k in money)
    )  # fmt: skip


def untimed(effects: list[Effects]) -> list[Any]:
    """Alerts of several steps, without their timestamps (a rollover is stamped with
    the instant it happened), and every other effect as it is."""
    alerts = [replace(a, timestamp=EPOCH) for e in effects for a in e.alerts]
    rest = [r for r in (replace(e, alerts=()) for e in effects) if r != Effects()]
    return [alerts, rest]


@st.composite
def next_event(draw: st.DrawFn, plan: str, at: datetime) -> Event:
    """A fresh event at `at`: usage or an account event of the plan, or a seat
    change, plan change or cancellation (events that open no period record)."""
    kind = draw(st.sampled_from(["usage", "account", "recordless"]))
    account = draw(account_of(plan, 99, at)) if kind == "account" else None
    if account is not None:
        return account
    if kind != "recordless":
        return draw(usage_of(plan, 99, at))
    return draw(st.sampled_from([
        SeatsChanged("x", "c", at, draw(st.integers(0, 9))),
        SubscriptionChanged("x", "c", at, draw(st.sampled_from(EXAMPLE_PLANS))),
        SubscriptionCancelled("x", "c", at),
    ]))  # fmt: skip


# Every example plan; the wallet, where a rollover changes most, half of the time.
@settings(max_examples=300)
@given(data=st.data(), plan=st.sampled_from(EXAMPLE_PLANS) | st.just("dev-api"))
def test_advancing_then_applying_a_later_event_equals_applying_it(
    data: st.DataObject, plan: str
) -> None:
    """advance(s, T) then apply(e at T' >= T) == apply(s, e): states up to empty period
    records, alerts up to their timestamps, every other effect and every invoice."""
    history = data.draw(histories(plan))
    state, _ = fold(CATALOG, history)
    # Any instant, or one after the history (where rollovers happen).
    after = history[-1].timestamp + timedelta(milliseconds=data.draw(LATER))
    at = data.draw(instants(span=120 * 24 * 3600) | st.just(after))
    later = at + timedelta(milliseconds=data.draw(SOON))
    event = data.draw(next_event(plan, later))
    advanced, rolled = advance(state, at, CATALOG)
    two_steps, applied = apply(advanced, event, CATALOG)
    direct, effects = apply(state, event, CATALOG)
    steps, direct_steps = [rolled, applied], [effects]
    if isinstance(event, RECORDLESS):
        # These land in no period record, so the fold rolls nothing over for them
        # (a wallet keeps its unsettled balance): equal once both reach `later`.
        two_steps, more = advance(two_steps, later, CATALOG)
        direct, direct_more = advance(direct, later, CATALOG)
        steps, direct_steps = [*steps, more], [effects, direct_more]
    assert comparable(two_steps) == comparable(direct)
    assert untimed(steps) == untimed(direct_steps)
    for start in {p["start"] for p in state_to_dict(direct)["periods"]}:
        when = datetime.fromisoformat(start)
        assert period_invoice(two_steps, CATALOG, when) == period_invoice(direct, CATALOG, when)
