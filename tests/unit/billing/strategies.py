"""Hypothesis strategies: event histories of one customer on any example plan.

A history starts with the subscription at `START` and spans about three monthly
periods, so rollovers, late events for an earlier period and (for wallets) periods
that close below zero all occur. Account events fit the plan's model: seat changes
on `team`, packs and grants (some expiring) on credits plans, deposits with odd
precision and adjustments on `dev-api`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal as D
from typing import TypeVar

from hypothesis import strategies as st

from billing import bounds
from billing.events import (
    BalanceAdjusted,
    CreditsGranted,
    CreditsPurchased,
    Event,
    SeatsChanged,
    SubscriptionStarted,
    UsageRecorded,
    WalletDeposited,
)
from tests.unit.billing.conftest import t

T = TypeVar("T")
START = t(2026, 1, 1)
SPAN = 85 * 24 * 3600  # seconds: January to late March
EXAMPLE_PLANS = (
    "starter", "writer", "scale", "team", "voice", "image-credits", "query-credits", "dev-api",
)  # fmt: skip
PACK = {"image-credits": "credits-100", "query-credits": "credits-500k"}


def instants(span: int = SPAN) -> st.SearchStrategy[datetime]:
    """Instants in [START, START + span), to the millisecond (the wire's precision)."""
    return st.integers(0, span * 1000 - 1).map(lambda ms: START + timedelta(milliseconds=ms))


@st.composite
def usage_of(draw: st.DrawFn, plan: str, i: int, at: datetime) -> UsageRecorded:
    """One valid usage event of a customer `c` on `plan`."""
    if plan in ("starter", "writer", "scale", "team"):
        return UsageRecorded(f"u{i}", "c", "tokens", D(draw(st.integers(0, 3_000_000))), at, {})
    if plan == "voice":
        tenths = draw(st.integers(0, 36_000))
        return UsageRecorded(f"u{i}", "c", "transcription", D(tenths) / 10, at, {})
    if plan == "image-credits":
        props = {"complexity": draw(st.sampled_from(["standard", "complex", "ultra"]))}
        images = D(draw(st.integers(0, 5)))
        return UsageRecorded(f"u{i}", "c", "image_generation", images, at, props)
    if plan == "query-credits":
        props = {"kind": draw(st.sampled_from(["simple", "complex"]))}
        return UsageRecorded(f"u{i}", "c", "query", D(draw(st.integers(0, 100))), at, props)
    q_in, q_out = draw(st.integers(0, 10**7)), draw(st.integers(0, 10**6))
    props = {"model": draw(st.sampled_from(["small", "large"]))}
    props.update(input_tokens=str(q_in), output_tokens=str(q_out))
    return UsageRecorded(f"u{i}", "c", "tokens", D(q_in + q_out), at, props)


@st.composite
def account_of(draw: st.DrawFn, plan: str, j: int, at: datetime) -> Event | None:
    """One account event that fits `plan` (None where the plan takes none)."""
    if plan == "team":
        return SeatsChanged(f"s{j}", "c", at, draw(st.integers(0, 30)))
    if plan in PACK:
        if draw(st.booleans()):
            return CreditsPurchased(f"p{j}", "c", at, PACK[plan], draw(st.integers(1, 3)))
        expiry = draw(st.none() | st.integers(1, 40 * 24).map(lambda h: at + timedelta(hours=h)))
        return CreditsGranted(f"g{j}", "c", at, D(draw(st.integers(0, 2000))), expiry)
    if plan == "dev-api":
        amount = D(draw(st.integers(1, 20_000))) / 1000  # 0.001 .. 20.000: odd precision
        if draw(st.integers(0, 3)):
            return WalletDeposited(f"d{j}", "c", at, amount, "USD")
        return BalanceAdjusted(f"a{j}", "c", at, -amount if draw(st.booleans()) else amount, "USD")
    return None


@st.composite
def histories(draw: st.DrawFn, plan: str, max_usage: int = 20) -> list[Event]:
    """The subscription, then usage and account events in event-time order, over
    a few days to about three periods."""
    span = draw(st.sampled_from([3 * 24 * 3600, 40 * 24 * 3600, SPAN]))
    events: list[Event] = []
    for i in range(draw(st.integers(0, max_usage))):
        events.append(draw(usage_of(plan, i, draw(instants(span)))))
    for j in range(draw(st.integers(0, 4))):
        account = draw(account_of(plan, j, draw(instants(span))))
        if account is not None:
            events.append(account)
    events.sort(key=lambda e: e.timestamp)
    return [SubscriptionStarted("sub", "c", START, plan, seats=2), *events]


# ---- edge values for the fast encoders and decoders (held to the reference codec)

EDGE_DECIMALS = tuple(
    D(x)
    for x in (
        "999999999999999999.999999999999",  # the extremes of billing.bounds
        "-999999999999999999.999999999999",
        "0.000000000001",
        "-0",
        "0E-12",
        "-0.000000000000",
        "1.000000000000",  # trailing zeros: the scale is kept
        "1E+17",  # a positive exponent, written out in plain notation
        "-1E+3",
        "0",
    )
)


@st.composite
def _bounded_decimal(draw: st.DrawFn) -> D:
    exponent = draw(st.integers(-12, 3))
    top = 10 ** (18 - exponent) - 1  # |digits * 10**exponent| < 10**18
    digits = draw(st.integers(0, top))
    return D((draw(st.integers(0, 1)), tuple(int(c) for c in str(digits)), exponent))


def bounded_decimals() -> st.SearchStrategy[D]:
    """Decimals within `billing.bounds` (what the doors admit), edges included: the
    extremes, negative zero, zeros with 12 decimals, trailing zeros, positive
    exponents, and anything with 0 to 12 decimals in between."""
    return st.sampled_from(EDGE_DECIMALS) | _bounded_decimal()


EDGE_TEXTS = ("", '"', "\\", "\x00\x1f", "é\u2028\u2029", "😀", "</script>", "\ud7ff", "ß" * 70)


def wire_texts(max_size: int = 12) -> st.SearchStrategy[str]:
    """Any unicode a str can hold on the wire (no lone surrogates), and awkward ones."""
    alphabet = st.characters(blacklist_categories=("Cs",))
    return st.sampled_from(EDGE_TEXTS) | st.text(alphabet, max_size=max_size)


def maps_of(values: st.SearchStrategy[T], key_size: int = 8) -> st.SearchStrategy[dict[str, T]]:
    """Maps from empty to large: more than 63 entries make Avro's block count a
    two-byte varint."""
    keys = wire_texts(key_size)
    small = st.dictionaries(keys, values, max_size=4)
    large = st.dictionaries(st.text(max_size=key_size), values, min_size=64, max_size=70)
    return small | large


def within_text_bounds(*ids: str, properties: Mapping[str, str]) -> bool:
    """Whether ids and properties are within the text bounds of `billing.bounds`
    (what the doors admit; beyond them a record is `invalid_field`)."""
    return all(bounds.id_problem(i) is None for i in ids) and (
        bounds.text_property_problem(properties) is None
    )
