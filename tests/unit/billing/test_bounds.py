"""The bounds of `billing.bounds` and the core's arithmetic on numbers within them:
never an exception, sums and products exact, out-of-bounds numbers rejected."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing import bounds
from billing.catalog import Catalog, parse_catalog
from billing.errors import CatalogError
from billing.events import (
    BalanceAdjusted,
    CreditsGranted,
    Event,
    RejectReason,
    SubscriptionStarted,
    UsageRecorded,
    WalletDeposited,
)
from billing.invoicing import period_invoice
from billing.ledger import apply, new_state, snapshot
from tests.unit.billing.conftest import t
from tests.unit.billing.helpers import fold, usage

HUGE = D(123456789012345678901234567890123)
MAX = D("999999999999999999.999999999999")  # the largest admitted number
TINY = D("1e-12")
START = t(2026, 1, 1)


def test_the_bounds_admit_18_digits_before_and_12_after_the_point() -> None:
    for ok in (D(0), MAX, MAX.copy_negate(), TINY, D("12.500000000000"), D("1E+17")):
        assert bounds.problem(ok) is None, ok
    for bad in (HUGE, bounds.LIMIT, -bounds.LIMIT, D("1e-13"), D("0.5000000000000")):
        assert "out of range" in (bounds.problem(bad) or ""), bad
    for bad in (D("NaN"), D("Infinity"), D("-Infinity")):
        assert "finite" in (bounds.problem(bad) or ""), bad


def test_numeric_properties_beyond_the_bounds_are_named() -> None:
    assert bounds.property_problem({"input_tokens": "12", "model": "9" * 40}) is None
    assert bounds.property_problem({"input_tokens": "x"}) is None  # left to rating
    field, text = bounds.property_problem({"output_tokens": str(HUGE)}) or ("", "")
    assert field == "properties['output_tokens']" and "out of range" in text


def test_quotient_is_exact_when_it_terminates_else_28_digits() -> None:
    square = bounds.CONTEXT.multiply(MAX, MAX)  # 60 digits
    assert Fraction(bounds.quotient(square, D(1000))) == Fraction(MAX) ** 2 / 1000
    third = bounds.quotient(D(1), D(3))
    assert third == D("0." + "3" * 28)


def test_the_caller_context_is_restored_and_never_used(catalog: Catalog) -> None:
    import decimal

    with decimal.localcontext(decimal.Context(prec=5)) as caller:
        state, _ = fold(catalog, [SubscriptionStarted("s", "c", START, "starter")])
        state, effects = apply(state, usage("c", "tokens", str(MAX), t(2026, 1, 2)), catalog)
        assert decimal.getcontext() is caller
    assert effects.rejection is None
    assert state.last is not None and str(state.last.usage["tokens"]) == str(MAX)  # 30 digits


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (UsageRecorded("u", "c", "tokens", HUGE, t(2026, 1, 2)), "quantity"),
        (UsageRecorded("u", "c", "tokens", bounds.LIMIT, t(2026, 1, 2)), "quantity"),
    ],
)
def test_the_core_rejects_a_quantity_beyond_the_bounds_as_out_of_range(
    catalog: Catalog, event: Event, field: str
) -> None:
    _, effects = fold(catalog, [SubscriptionStarted("s", "c", START, "starter"), event])
    rej = effects[-1].rejection
    assert rej is not None and rej.reason == RejectReason.OUT_OF_RANGE and field in rej.detail


def test_the_core_rejects_huge_token_counts_credits_and_amounts(catalog: Catalog) -> None:
    jan = t(2026, 1, 2)
    huge = str(D("1E+999999999"))  # would overflow any addition
    tokens = usage("c", "tokens", 1, jan, model="small", input_tokens=huge, output_tokens="1")
    cases: list[tuple[str, Event, str]] = [
        ("dev-api", tokens, "input_tokens"),
        ("image-credits", CreditsGranted("g", "c", jan, HUGE), "credits"),
        ("dev-api", WalletDeposited("d", "c", jan, HUGE, "USD"), "amount"),
        ("dev-api", BalanceAdjusted("a", "c", jan, -HUGE, "USD"), "amount"),
    ]
    for plan, event, field in cases:
        _, effects = fold(catalog, [SubscriptionStarted("s", "c", START, plan), event])
        rej = effects[-1].rejection
        assert rej is not None and rej.reason == RejectReason.OUT_OF_RANGE, (plan, field)
        assert field in rej.detail


def test_the_catalog_refuses_a_price_beyond_the_bounds() -> None:
    data = {
        "features": [{"id": "tokens"}],
        "plans": [
            {
                "id": "p",
                "model": "metered",
                "currency": "USD",
                "base_fee": str(HUGE),
                "prices": {"tokens": {"strategy": "per_unit", "unit_price": "0.0000000000001"}},
            }
        ],
    }
    with pytest.raises(CatalogError) as err:
        parse_catalog(data)
    text = str(err.value)
    assert "'base_fee'" in text and "'prices.tokens.unit_price'" in text


# ------------------------------------------------------------------ property

numbers = st.one_of(
    st.sampled_from([D(0), TINY, MAX, D("999999999999999999.999999999998"), D(10**17)]),
    st.decimals(min_value=0, max_value=MAX, places=12, allow_nan=False, allow_infinity=False),
)
halves = st.decimals(min_value=0, max_value=D("499999999999999999.999999999999"), places=12)
METERED, CREDITS, BALANCE = "scale", "query-credits", "dev-api"


@st.composite
def extreme_history(draw: st.DrawFn, plan: str) -> list[Event]:
    events: list[Event] = [SubscriptionStarted("sub", "c", START, plan, seats=3)]
    for i in range(draw(st.integers(1, 8))):
        at = START + timedelta(days=draw(st.integers(0, 70)), seconds=i)
        if plan == METERED:
            events.append(UsageRecorded(f"u{i}", "c", "tokens", draw(numbers), at))
        elif plan == CREDITS:
            kind = draw(st.sampled_from(["simple", "complex"]))
            events.append(UsageRecorded(f"u{i}", "c", "query", draw(numbers), at, {"kind": kind}))
            events.append(CreditsGranted(f"g{i}", "c", at, draw(numbers)))
        else:
            i_n, o_n = draw(halves), draw(halves)
            props = {"model": draw(st.sampled_from(["small", "large"]))}
            props.update(input_tokens=str(i_n), output_tokens=str(o_n))
            total = bounds.CONTEXT.add(i_n, o_n)
            events.append(UsageRecorded(f"u{i}", "c", "tokens", total, at, props))
            amount = draw(numbers)
            if amount > 0:
                events.append(WalletDeposited(f"d{i}", "c", at, amount, "USD"))
            events.append(BalanceAdjusted(f"a{i}", "c", at, draw(numbers).copy_negate(), "USD"))
    events.sort(key=lambda e: e.timestamp)
    return events


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([METERED, CREDITS, BALANCE]).flatmap(extreme_history))
def test_numbers_within_bounds_never_raise_and_sums_stay_exact(
    catalog: Catalog, events: list[Event]
) -> None:
    state = new_state("c")
    first_period = Fraction(0)
    for event in events:
        state, effects = apply(state, event, catalog)
        assert effects.rejection is None, effects.rejection
        if isinstance(event, UsageRecorded) and event.timestamp < t(2026, 2, 1):
            first_period += Fraction(event.quantity)
    for days in (0, 31, 59, 70):
        as_of = START + timedelta(days=days)
        snap = snapshot(state, catalog, source_offsets={}, as_of=as_of)
        invoice = snap.upcoming_invoice
        assert invoice is not None
        assert invoice.total == sum((line.amount for line in invoice.lines), D(0))
        for line in invoice.lines:
            assert line.amount == line.amount.quantize(D("0.01"))
        assert period_invoice(state, catalog, snap.period_start or START) == invoice
    rec = state.record(START)
    usage = rec.usage.values() if rec is not None else ()
    assert sum(map(Fraction, usage), Fraction(0)) == first_period  # exact: 30+ digits


@given(
    st.from_regex(r"-?[0-9]{1,22}(\.[0-9]{1,15})?", fullmatch=True),
)
def test_plain_within_is_problem_without_the_decimal(text: str) -> None:
    """The SDK's fast check agrees with the reference on every plain decimal."""
    if bounds.plain_within(text):
        assert bounds.problem(D(text)) is None
    else:
        assert bounds.problem(D(text)) is not None
