"""Properties of the admission rules (billing.admission)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from decimal import Context, Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.admission import (
    AdmissionPolicy,
    canonical_decimal,
    decide,
    fingerprint,
    same_payload,
    to_ms,
)
from billing.events import SubscriptionStarted, UsageRecorded, WalletDeposited
from billing.ledger import apply, new_state, state_from_dict, state_to_dict
from billing.state import same_payload as state_same_payload
from streambill.config.catalog_file import load_catalog
from tests.unit.billing.conftest import EXAMPLE
from tests.unit.billing.strategies import bounded_decimals, maps_of, wire_texts

DAY = 86_400_000
POLICY = AdmissionPolicy(35 * DAY, 35 * DAY, 300_000)
decimals = st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
    lambda d: abs(d) < Decimal(10) ** 18 and d.as_tuple().exponent >= -12  # type: ignore[operator]
)
times = st.integers(0, 10**12).map(lambda ms: datetime.fromtimestamp(ms / 1000, tz=UTC))
props = st.dictionaries(st.sampled_from(["model", "a", "b", "input_tokens"]), st.text(max_size=4))


@st.composite
def usage(draw: st.DrawFn) -> UsageRecorded:
    return UsageRecorded(
        draw(st.sampled_from(["e1", "e2"])),
        draw(st.sampled_from(["c1", "c2"])),
        draw(st.sampled_from(["tokens", "query"])),
        draw(decimals),
        draw(times),
        draw(props),
    )


@given(decimals, decimals)
def test_canonical_decimal_is_equal_exactly_for_equal_values(a: Decimal, b: Decimal) -> None:
    assert (canonical_decimal(a) == canonical_decimal(b)) == (a == b)
    assert Decimal(canonical_decimal(a)) == a


@given(usage(), usage())
def test_same_payload_is_the_fingerprint_comparison(a: UsageRecorded, b: UsageRecorded) -> None:
    """The replay's fast comparison of two events at hand agrees with the stored
    fingerprints the worker compares."""
    assert same_payload(a, b) == (fingerprint(a) == fingerprint(b))


@given(usage(), st.integers(0, 3), st.permutations(range(4)))
def test_other_bytes_of_the_same_event_have_one_fingerprint(
    e: UsageRecorded, zeros: int, order: list[int]
) -> None:
    """Trailing zeros, another time zone, properties in another order: one event."""
    padded = Context(prec=100).add(e.quantity, Decimal(0).scaleb(-zeros))
    items = list(e.properties.items())
    other = dataclasses.replace(
        e,
        quantity=padded,
        timestamp=e.timestamp.astimezone(timezone(timedelta(hours=-5))),
        properties=dict(items[i] for i in order if i < len(items)),
    )
    assert padded == e.quantity
    assert fingerprint(other) == fingerprint(e)


def test_account_events_fingerprint_by_value() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    a = WalletDeposited("d1", "c1", at, Decimal("5.0"), "USD")
    assert fingerprint(a) == fingerprint(dataclasses.replace(a, amount=Decimal("5")))
    assert fingerprint(a) != fingerprint(dataclasses.replace(a, amount=Decimal("6")))


@given(st.lists(st.tuples(st.integers(0, 200 * DAY), st.booleans()), max_size=40))
def test_watermark_never_goes_back_and_any_copy_that_passes_lateness_finds_its_original(
    arrivals: list[tuple[int, bool]],
) -> None:
    """Usage events (time, is a copy of the previous applied one) in log order."""
    wm: int | None = None
    applied: list[int] = []
    for event_ms, copy in arrivals:
        prior = (lambda: True, applied[-1]) if copy and applied else None
        ms = applied[-1] if copy and applied else event_ms
        new_wm, refusal = decide(POLICY, True, ms, wm, prior, None)
        assert wm is None or (new_wm is not None and new_wm >= wm)
        if prior is not None:
            assert refusal is not None and refusal.duplicate  # never applied twice
        if refusal is None:
            applied.append(ms)
        wm = new_wm


def test_future_rule_reads_the_given_clock_and_none_skips_it() -> None:
    now = 10 * DAY
    ahead = now + POLICY.future_tolerance_ms + 1
    wm, refusal = decide(POLICY, True, ahead, None, None, now)
    assert refusal is not None and refusal.reason == "timestamp_in_future" and wm is None
    assert decide(POLICY, True, ahead, None, None, None) == (ahead, None)


def test_an_expired_entry_counts_as_absent_whenever_it_is_pruned() -> None:
    wm = 100 * DAY
    old = wm - POLICY.dedupe_window_ms - 1
    # a reused id past the window is a new event
    assert decide(POLICY, True, wm, wm, (lambda: False, old), None) == (wm, None)


def _through_the_general_branch(e: UsageRecorded) -> UsageRecorded:
    """The same event as an instance of a subclass also named UsageRecorded:
    `fingerprint` takes its general branch (any event type) for it."""
    general = type("UsageRecorded", (UsageRecorded,), {"__slots__": ()})
    return general(*(getattr(e, f.name) for f in dataclasses.fields(e)))  # type: ignore[no-any-return]


@settings(max_examples=150)
@given(
    e=st.builds(
        UsageRecorded,
        event_id=wire_texts(),
        customer_id=wire_texts(),
        feature_id=wire_texts(),
        quantity=bounded_decimals(),
        timestamp=times,
        properties=maps_of(wire_texts()),
    ),
    ms_given=st.booleans(),
)
def test_the_usage_fingerprint_is_the_general_form_written_out(
    e: UsageRecorded, ms_given: bool
) -> None:
    """The hot branch for UsageRecorded (one f-string) against the general one
    (every field in schema order, canonical forms): one fingerprint rule."""
    general = _through_the_general_branch(e)
    assert type(general) is not UsageRecorded
    assert dataclasses.astuple(general) == dataclasses.astuple(e)
    fast = fingerprint(e, to_ms(e.timestamp)) if ms_given else fingerprint(e)
    assert fast == fingerprint(general)


@given(usage(), usage())
def test_a_restored_states_memory_compares_by_the_same_rule(
    a: UsageRecorded, b: UsageRecorded
) -> None:
    """The core's id memory keeps the event, or its digest once the state was
    serialized: both say the same about a re-sent event, and agree with admission."""
    digest = fingerprint(a)  # what state_to_dict writes for a remembered id
    assert state_same_payload(digest, b) == state_same_payload(a, b) == same_payload(a, b)


def test_a_retry_with_negative_zero_is_a_duplicate_before_and_after_a_round_trip() -> None:
    at = datetime(2026, 1, 2, tzinfo=UTC)
    catalog = load_catalog(EXAMPLE)
    state = new_state("c")
    for event in (
        SubscriptionStarted("s", "c", at, "writer"),
        UsageRecorded("u1", "c", "tokens", Decimal("0"), at),
    ):
        state, _ = apply(state, event, catalog)
    retry = UsageRecorded("u1", "c", "tokens", Decimal("-0.00"), at)
    for s in (state, state_from_dict(state_to_dict(state))):
        _, effects = apply(s, retry, catalog)
        assert effects.duplicate and effects.rejection is None
