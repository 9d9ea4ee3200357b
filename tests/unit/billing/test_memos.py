"""The memos of the snapshot path change no result: each memoized function gives
what its plain computation gives, after any sequence of earlier calls (a stale or
too coarse key would show up as a difference here)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing import invoicing, periods, pricing
from billing.catalog import Catalog
from billing.events import (
    Event,
    InvoiceLine,
    SeatsChanged,
    SubscriptionCancelled,
    SubscriptionChanged,
    SubscriptionStarted,
)
from billing.invoicing import period_invoice, period_invoice_id
from billing.ledger import apply, forget_ids, new_state, prune, snapshot
from billing.money import CURRENCIES, Currency
from billing.periods import add_months, period_index, period_of
from billing.pricing import _fmt_qty, fmt_qty
from billing.state import CustomerState
from tests.unit.billing.conftest import t
from tests.unit.billing.helpers import usage
from tests.unit.billing.strategies import EXAMPLE_PLANS, histories, instants

IST = timezone(timedelta(hours=5, minutes=30))


def clear_memos() -> None:
    periods._RECENT.clear()
    invoicing._PERIOD_IDS.clear()
    invoicing._BASE_FEE_LINES.clear()
    pricing._QTY_TEXTS.clear()


def plain_period_of(anchor: datetime, at: datetime) -> tuple[datetime, datetime]:
    k = period_index(anchor, at)
    return add_months(anchor, k), add_months(anchor, k + 1)


# ------------------------------------------------------------------ period_of

ANCHORS = [t(2026, 1, 31, 9), t(2026, 1, 15), t(2028, 2, 29, 23, 59), t(2026, 3, 30, 12)]


@st.composite
def queries(draw: st.DrawFn) -> tuple[datetime, datetime]:
    """An anchor, and a time near one of its period bounds or anywhere."""
    anchor = draw(st.sampled_from(ANCHORS))
    k = draw(st.integers(-2, 14))
    near = add_months(anchor, k) + timedelta(microseconds=draw(st.sampled_from([-1, 0, 1])))
    at = draw(st.sampled_from([near, anchor + timedelta(seconds=draw(st.integers(0, 4 * 10**7)))]))
    if draw(st.booleans()):
        at = at.astimezone(IST)  # the same instant in another zone
    if draw(st.booleans()):
        anchor = anchor.astimezone(IST)
    return anchor, at


@settings(max_examples=300, deadline=None)
@given(st.lists(queries(), min_size=1, max_size=30))
def test_period_of_is_its_plain_computation_whatever_came_before(
    asked: list[tuple[datetime, datetime]],
) -> None:
    for anchor, at in asked:
        assert period_of(anchor, at) == plain_period_of(anchor, at)


def test_period_of_moves_on_at_the_exact_boundary() -> None:
    anchor = t(2026, 1, 31, 9)
    assert period_of(anchor, t(2026, 2, 28, 8, 59)) == (t(2026, 1, 31, 9), t(2026, 2, 28, 9))
    assert period_of(anchor, t(2026, 2, 28, 9)) == (t(2026, 2, 28, 9), t(2026, 3, 31, 9))
    assert period_of(anchor, t(2026, 2, 28, 8, 59)) == (t(2026, 1, 31, 9), t(2026, 2, 28, 9))


def test_a_naive_time_is_refused_even_when_its_period_is_remembered() -> None:
    anchor = t(2026, 1, 15)
    period_of(anchor, t(2026, 1, 20))
    with pytest.raises(ValueError, match="naive"):
        period_of(anchor, datetime(2026, 1, 20))  # noqa: DTZ001


# ------------------------------------------------------------------- money


@pytest.mark.parametrize("minor_unit", range(9))
def test_quantum_is_one_scaled_to_the_minor_unit(minor_unit: int) -> None:
    quantum = Currency("XXX", minor_unit).quantum
    assert quantum.as_tuple() == Decimal(1).scaleb(-minor_unit).as_tuple()


def test_rounding_is_half_up_to_the_minor_unit() -> None:
    for cur, amount, rounded in [
        (CURRENCIES["USD"], "2.345", "2.35"),
        (CURRENCIES["USD"], "-2.345", "-2.35"),
        (CURRENCIES["JPY"], "2.5", "3"),
        (CURRENCIES["KWD"], "0.0005", "0.001"),
        (Currency("XXX", 8), "1", "1.00000000"),
    ]:
        assert cur.round(Decimal(amount)).as_tuple() == Decimal(rounded).as_tuple()


# ---------------------------------------------------------- period invoice id


def plain_invoice_id(customer: str, start: datetime, plan_id: str, version: object) -> str:
    text = "\x1f".join([customer, "period", start.isoformat(), plan_id, str(version)])
    return "inv_" + hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def test_period_invoice_id_is_its_digest_for_every_input(catalog: Catalog) -> None:
    writer, starter = catalog.plans["writer"], catalog.plans["starter"]
    start = t(2026, 1, 1)
    cases = [
        ("c", start, writer),
        ("c", start, writer),  # remembered
        ("c", start.astimezone(IST), writer),  # same instant, another isoformat
        ("c", start + timedelta(days=31), writer),
        ("d", start, writer),
        ("c", start, starter),
        ("c", start, replace(writer, version=2)),
        ("c", start, replace(writer, version=True)),  # equal to 1, prints "True"
        ("c", start, replace(writer, version=1)),
    ]
    for customer, at, plan in cases:
        expected = plain_invoice_id(customer, at, plan.id, plan.version)
        assert period_invoice_id(customer, at, plan) == expected
    ist = period_invoice_id("c", start.astimezone(IST), writer)
    assert ist != period_invoice_id("c", start, writer)


# ------------------------------------------------------------ base fee line


def test_each_plan_gets_its_own_base_fee_line(catalog: Catalog) -> None:
    starter = catalog.plans["starter"]
    state, _ = apply(
        new_state("c"), SubscriptionStarted("s", "c", t(2026, 1, 1), "starter"), catalog
    )
    variants = [
        starter,
        replace(starter, base_fee=Decimal("29")),  # equal fee, another scale
        replace(starter, base_fee=Decimal("29.005")),
        replace(starter, base_fee=Decimal("29.005"), currency=CURRENCIES["JPY"]),
        replace(starter, base_fee=Decimal("0.50"), currency=CURRENCIES["KWD"]),
        starter,
    ]
    for plan in variants * 2:
        priced = Catalog(catalog.features, {**catalog.plans, "starter": plan}, catalog.credit_packs)
        invoice = period_invoice(state, priced, t(2026, 1, 1))
        assert invoice is not None
        fee, cur = plan.base_fee, plan.currency
        expected = InvoiceLine("Base fee", Decimal(1), fee, fee, cur.round(fee))
        assert repr(invoice.lines[0]) == repr(expected)  # repr: the scales too
        assert invoice.total == cur.round(Decimal(0)) + cur.round(fee)  # no usage yet


# -------------------------------------------- the snapshot path, memos or not

CHANGE_TO = {"starter": "scale", "writer": "starter", "scale": "writer", "team": "writer"}


@st.composite
def lives(draw: st.DrawFn) -> list[Event]:
    """A history of one customer, with a plan change and a cancellation sometimes."""
    plan = draw(st.sampled_from(EXAMPLE_PLANS))
    events = draw(histories(plan, max_usage=12))
    if plan in CHANGE_TO and draw(st.booleans()):
        events.append(SubscriptionChanged("chg", "c", draw(instants()), CHANGE_TO[plan]))
    if draw(st.booleans()):
        events.append(SubscriptionCancelled("bye", "c", draw(instants())))
    head, *rest = events
    return [head, *sorted(rest, key=lambda e: e.timestamp)]


def views(state: CustomerState, catalog: Catalog, at: datetime) -> list[object]:
    """Everything the worker derives from a state after a batch, as of `at`."""
    settled = forget_ids(prune(state, at - timedelta(days=3)))
    out: list[object] = [settled.horizon]
    for as_of in (at, at.astimezone(IST), at + timedelta(days=40)):
        out.append(snapshot(settled, catalog, source_offsets={"u/0": 1}, as_of=as_of))
    for start in settled.records():
        out.append(period_invoice(settled, catalog, start))
    return out


@settings(max_examples=150, deadline=None)
@given(lives())
def test_snapshots_and_invoices_equal_their_computation_without_memos(
    catalog: Catalog, events: list[Event]
) -> None:
    state = new_state("c")
    for event in events:
        state, effects = apply(state, event, catalog)
        if effects.rejection is not None:
            continue
        warm = views(state, catalog, event.timestamp)
        clear_memos()
        assert views(state, catalog, event.timestamp) == warm


def test_previews_follow_plan_changes_new_periods_and_cancellation(catalog: Catalog) -> None:
    state = new_state("c")
    previews = []
    for event in [
        SubscriptionStarted("sub", "c", t(2026, 1, 1), "writer"),
        usage("c", "tokens", 1_000, t(2026, 1, 10)),
        SubscriptionChanged("up", "c", t(2026, 1, 15), "starter"),
        usage("c", "tokens", 2_000, t(2026, 1, 20)),
        usage("c", "tokens", 3_000, t(2026, 2, 2)),
        SubscriptionCancelled("bye", "c", t(2026, 2, 3)),
        usage("c", "tokens", 4_000, t(2026, 2, 4)),
    ]:
        state, effects = apply(state, event, catalog)
        assert effects.rejection is None
        preview = snapshot(state, catalog, source_offsets={}, as_of=event.timestamp)
        assert preview.upcoming_invoice is not None
        previews.append(preview.upcoming_invoice)
    assert [(p.plan_id, p.period_start) for p in previews] == [
        ("writer", t(2026, 1, 1))] * 4 + [("starter", t(2026, 2, 1))] * 3  # fmt: skip
    for p in previews:
        assert p.invoice_id == plain_invoice_id("c", p.period_start, p.plan_id, 1)
    ended = snapshot(state, catalog, source_offsets={}, as_of=t(2026, 3, 1))
    assert ended.upcoming_invoice is None


def test_previews_follow_seat_changes(catalog: Catalog) -> None:
    state = new_state("c")
    seats = []
    for event in [
        SubscriptionStarted("sub", "c", t(2026, 1, 1), "team", seats=3),
        usage("c", "tokens", 1_000, t(2026, 1, 10)),
        SeatsChanged("more", "c", t(2026, 1, 16), 5),
        usage("c", "tokens", 1_000, t(2026, 1, 20)),
        usage("c", "tokens", 1_000, t(2026, 2, 2)),
    ]:
        state, _ = apply(state, event, catalog)
        preview = snapshot(state, catalog, source_offsets={}, as_of=event.timestamp)
        assert preview.upcoming_invoice is not None
        seats.append(
            [x.description for x in preview.upcoming_invoice.lines if "seat" in x.description]
        )
    assert seats == [
        ["3 seat(s)"],
        ["3 seat(s)"],
        ["3 seat(s) from 2026-01-01T00:00:00+00:00 to 2026-01-16T00:00:00+00:00",
         "5 seat(s) from 2026-01-16T00:00:00+00:00 to 2026-02-01T00:00:00+00:00"],
        ["3 seat(s) from 2026-01-01T00:00:00+00:00 to 2026-01-16T00:00:00+00:00",
         "5 seat(s) from 2026-01-16T00:00:00+00:00 to 2026-02-01T00:00:00+00:00"],
        ["5 seat(s)"],
    ]  # fmt: skip


# ----------------------------------------------------------------- fmt_qty


@st.composite
def equal_quantities(draw: st.DrawFn) -> tuple[Decimal, Decimal]:
    """Two decimals of one value: the second with more trailing zeros."""
    coefficient = draw(st.integers(-(10**30), 10**30))
    exponent = draw(st.integers(-12, 6))
    zeros = draw(st.integers(0, 4))
    first = Decimal(coefficient).scaleb(exponent)
    second = Decimal(coefficient * 10**zeros).scaleb(exponent - zeros)
    assert first == second
    return first, second


@settings(max_examples=300, deadline=None)
@given(st.lists(equal_quantities(), min_size=1, max_size=5))
def test_fmt_qty_is_its_plain_computation_for_equal_values_of_any_scale(
    pairs: list[tuple[Decimal, Decimal]],
) -> None:
    for first, second in pairs:
        assert fmt_qty(first) == _fmt_qty(first)
        assert fmt_qty(second) == _fmt_qty(second) == _fmt_qty(first)


def test_fmt_qty_prints_thousands_and_no_exponent() -> None:
    for value, text in [("1E+3", "1,000"), ("1000.00", "1,000"), ("2.50", "2.5"), ("-0", "0")]:
        assert fmt_qty(Decimal(value)) == text
    assert fmt_qty(Decimal("NaN")) == "NaN"
