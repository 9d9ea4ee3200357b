"""The fold's contract: purity, idempotence, rejections as values, pruning, JSON state."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal as D

import pytest

from billing.catalog import Catalog
from billing.errors import StateError
from billing.events import (
    RejectReason,
    SubscriptionCancelled,
    SubscriptionChanged,
    SubscriptionStarted,
    UsageRecorded,
    WalletDeposited,
)
from billing.invoicing import period_invoice, periods_ending_in
from billing.ledger import (
    apply,
    forget_ids,
    new_state,
    prune,
    snapshot,
    state_from_dict,
    state_to_dict,
)
from tests.unit.billing.conftest import t
from tests.unit.billing.helpers import cents, fold, invoice, usage

SUB = SubscriptionStarted("sub", "c", t(2026, 1, 1), "writer")


def reason(catalog: Catalog, *events: object) -> RejectReason | None:
    _, effects = fold(catalog, events)  # type: ignore[arg-type]
    rej = effects[-1].rejection
    return None if rej is None else rej.reason


def test_rejections_are_values_with_reason_codes(catalog: Catalog) -> None:
    jan = t(2026, 1, 2)
    assert reason(catalog, usage("c", "tokens", 1, jan)) == RejectReason.NO_SUBSCRIPTION
    assert (
        reason(catalog, SUB, usage("c", "tokens", 1, t(2025, 12, 31)))
        == RejectReason.NO_SUBSCRIPTION
    )
    assert reason(catalog, SUB, usage("c", "images", 1, jan)) == RejectReason.UNKNOWN_FEATURE
    assert reason(catalog, SUB, usage("c", "tokens", -1, jan)) == RejectReason.NEGATIVE_QUANTITY
    assert reason(catalog, SUB, usage("c", "tokens", "NaN", jan)) == RejectReason.INVALID_FIELD
    dev = SubscriptionStarted("sub", "c", t(2026, 1, 1), "dev-api")
    no_split = usage("c", "tokens", 10, jan, model="small")
    bad_split = usage("c", "tokens", 10, jan, model="small", input_tokens="4", output_tokens="5")
    unknown_model = usage("c", "tokens", 9, jan, model="xl", input_tokens="4", output_tokens="5")
    assert reason(catalog, dev, no_split) == RejectReason.TOKEN_BREAKDOWN
    assert reason(catalog, dev, bad_split) == RejectReason.TOKEN_BREAKDOWN
    assert reason(catalog, dev, unknown_model) == RejectReason.INVALID_FIELD
    credits = SubscriptionStarted("sub", "c", t(2026, 1, 1), "image-credits")
    odd = usage("c", "image_generation", 1, jan, complexity="galactic")
    assert reason(catalog, credits, odd) == RejectReason.INVALID_FIELD
    wrong_cur = WalletDeposited("d", "c", jan, D(5), "EUR")
    assert reason(catalog, dev, wrong_cur) == RejectReason.INVALID_FIELD
    cancel = SubscriptionCancelled("x", "c", t(2026, 1, 10))
    assert (
        reason(catalog, SUB, cancel, usage("c", "tokens", 1, t(2026, 2, 1)))
        == RejectReason.NO_SUBSCRIPTION
    )


def test_a_rejected_event_leaves_the_state_untouched(catalog: Catalog) -> None:
    s, _ = fold(catalog, [SUB])
    s2, eff = apply(s, usage("c", "tokens", -5, t(2026, 1, 2)), catalog)
    assert s2 is s and eff.rejection is not None
    assert eff.rejection.event_id is not None and eff.rejection.customer_id == "c"


def test_same_event_twice_changes_nothing_and_a_conflict_is_rejected(catalog: Catalog) -> None:
    e = usage("c", "tokens", 10, t(2026, 1, 2), event_id="e1")
    s1, _ = fold(catalog, [SUB, e])
    s2, eff = apply(s1, e, catalog)
    assert eff.duplicate and s2 is s1
    s3, eff = apply(s1, replace(e, quantity=D(11)), catalog)
    assert s3 is s1
    assert eff.rejection is not None and eff.rejection.reason == RejectReason.DUPLICATE_CONFLICT
    # 10 and 10.0 are the same quantity: a retry, not a conflict.
    _, eff = apply(s1, replace(e, quantity=D("10.0")), catalog)
    assert eff.duplicate


def test_a_state_passed_in_is_never_changed(catalog: Catalog) -> None:
    s0, _ = fold(catalog, [SUB, usage("c", "tokens", 10, t(2026, 1, 2), event_id="a")])
    before = state_to_dict(s0)
    s1, _ = apply(s0, usage("c", "tokens", 5, t(2026, 1, 3), event_id="b"), catalog)
    # Branch from the old state with another event: both lineages stay exact.
    s2, _ = apply(s0, usage("c", "tokens", 7, t(2026, 1, 3), event_id="c"), catalog)
    assert state_to_dict(s0) == before
    assert s1.last is not None and s1.last.usage["tokens"] == 15
    assert s2.last is not None and s2.last.usage["tokens"] == 17
    # Each lineage remembers only its own events.
    assert apply(s1, usage("c", "tokens", 5, t(2026, 1, 3), event_id="b"), catalog)[1].duplicate
    _, eff = apply(s2, usage("c", "tokens", 5, t(2026, 1, 3), event_id="b"), catalog)
    assert not eff.duplicate and eff.rejection is None
    _, eff = apply(s0, usage("c", "tokens", 5, t(2026, 1, 3), event_id="b"), catalog)
    assert not eff.duplicate


def test_account_changes_never_leak_into_the_state_passed_in(catalog: Catalog) -> None:
    from billing.events import CreditsPurchased, SeatsChanged

    sub = SubscriptionStarted("sub", "c", t(2026, 1, 1), "image-credits")
    s0, _ = fold(catalog, [sub, CreditsPurchased("p", "c", t(2026, 1, 1), "credits-100")])
    before = state_to_dict(s0)
    s1, _ = fold(catalog, [
        usage("c", "image_generation", 85, t(2026, 1, 2), complexity="standard"),  # alert 20 %
        CreditsPurchased("p2", "c", t(2026, 1, 3), "credits-100"),  # resolves, new top-up
        SeatsChanged("seats", "c", t(2026, 1, 4), 3),
        SubscriptionCancelled("bye", "c", t(2026, 1, 5)),
    ], s0)  # fmt: skip
    assert state_to_dict(s0) == before
    assert (s1.status, s1.last_topup, s1.seats[-1][1]) == ("cancelled", 100, 3)
    assert (s0.status, s0.last_topup, s0.seats[-1][1]) == ("active", 100, 1)
    assert s0.credits_remaining() == 100 and s1.credits_remaining() == 115


def test_state_json_round_trip_is_lossless_and_folds_on_identically(catalog: Catalog) -> None:
    events = [
        SubscriptionStarted("sub", "c", t(2026, 1, 1), "dev-api"),
        WalletDeposited("dep", "c", t(2026, 1, 1), D("3.00"), "USD"),
        usage(
            "c",
            "tokens",
            10,
            t(2026, 1, 2),
            "u1",
            model="small",
            input_tokens="4",
            output_tokens="6",
        ),
    ]
    s, _ = fold(catalog, events)
    d = state_to_dict(s)
    restored = state_from_dict(json.loads(json.dumps(d)))
    assert state_to_dict(restored) == d
    # Restored memory still recognises duplicates and conflicts.
    assert apply(restored, events[2], catalog)[1].duplicate
    conflict = replace(events[2], quantity=D(11))
    rej = apply(restored, conflict, catalog)[1].rejection
    assert rej is not None and rej.reason == RejectReason.DUPLICATE_CONFLICT
    nxt = usage(
        "c", "tokens", 2, t(2026, 1, 3), "u2", model="large", input_tokens="1", output_tokens="1"
    )
    assert state_to_dict(apply(restored, nxt, catalog)[0]) == state_to_dict(
        apply(s, nxt, catalog)[0]
    )
    with pytest.raises(StateError):
        state_from_dict({"format": 99})


def test_state_without_remembered_ids_round_trips_and_folds_on_identically(
    catalog: Catalog,
) -> None:
    events = [
        SubscriptionStarted("sub", "c", t(2026, 1, 1), "dev-api"),
        WalletDeposited("dep", "c", t(2026, 1, 1), D("3.00"), "USD"),
        usage("c", "tokens", 10, t(2026, 1, 2), "u1", model="small", input_tokens="4",
              output_tokens="6"),
    ]  # fmt: skip
    s, _ = fold(catalog, events)
    full = state_to_dict(s)
    d = state_to_dict(s, remember_ids=False)
    assert d["seen"] == {} and full["seen"] != {}
    assert {k: v for k, v in full.items() if k != "seen"} == {
        k: v for k, v in d.items() if k != "seen"
    }
    restored = state_from_dict(json.loads(json.dumps(d)))
    forgotten = forget_ids(s)
    assert state_to_dict(restored) == state_to_dict(forgotten) == d
    assert state_to_dict(s) == full  # forget_ids left the original untouched
    assert apply(s, events[2], catalog)[1].duplicate
    # Without the memory, the same event is folded again: callers must dedupe.
    assert not apply(restored, events[2], catalog)[1].duplicate
    nxt = usage(
        "c", "tokens", 2, t(2026, 1, 3), "u2", model="large", input_tokens="1", output_tokens="1"
    )
    after = state_to_dict(apply(s, nxt, catalog)[0], remember_ids=False)
    assert state_to_dict(apply(restored, nxt, catalog)[0], remember_ids=False) == after
    assert state_to_dict(apply(forgotten, nxt, catalog)[0], remember_ids=False) == after
    at = t(2026, 1, 3)
    assert snapshot(restored, catalog, source_offsets={}, as_of=at) == snapshot(
        s, catalog, source_offsets={}, as_of=at
    )


def test_prune_bounds_the_state_and_rejects_older_events_as_too_late(catalog: Catalog) -> None:
    events = [SUB] + [usage("c", "tokens", 1000, t(2026, m, 5)) for m in (1, 2, 3)]
    s, _ = fold(catalog, events)
    pruned = prune(s, t(2026, 3, 1))
    assert list(pruned.records()) == [t(2026, 3, 1)]
    assert len(state_to_dict(pruned)["seen"]) == 1
    assert len(state_to_dict(s)["periods"]) == 3  # the original is unchanged
    _, eff = apply(pruned, usage("c", "tokens", 1, t(2026, 2, 20)), catalog)
    assert eff.rejection is not None and eff.rejection.reason == RejectReason.TOO_LATE
    assert period_invoice(pruned, catalog, t(2026, 2, 1)) is None
    assert cents(invoice(pruned, catalog, t(2026, 3, 1)).total) == 1900
    # Events of retained periods are still remembered; older ones are too late,
    # account events included (not "already subscribed").
    assert apply(pruned, events[3], catalog)[1].duplicate
    rej = apply(pruned, SUB, catalog)[1].rejection
    assert rej is not None and rej.reason == RejectReason.TOO_LATE


def test_plan_change_takes_effect_at_the_next_boundary(catalog: Catalog) -> None:
    s, _ = fold(catalog, [
        SUB,
        usage("c", "tokens", 150_000, t(2026, 1, 10)),
        SubscriptionChanged("up", "c", t(2026, 1, 15), "starter"),
        usage("c", "tokens", 60_000, t(2026, 1, 20)),
        usage("c", "tokens", 60_000, t(2026, 2, 2)),
    ])  # fmt: skip
    jan = invoice(s, catalog, t(2026, 1, 1))
    feb = invoice(s, catalog, t(2026, 2, 1))
    assert (jan.plan_id, cents(jan.total)) == ("writer", 1900 + 220)  # 110k over 100k
    assert (feb.plan_id, cents(feb.total)) == ("starter", 2900 + 30)  # 10k over 50k


def test_cancellation_ends_billing_after_the_current_period(catalog: Catalog) -> None:
    s, _ = fold(catalog, [SUB, SubscriptionCancelled("bye", "c", t(2026, 1, 20))])
    assert periods_ending_in(s, t(2025, 12, 31), t(2026, 6, 1)) == [(t(2026, 1, 1), t(2026, 2, 1))]
    assert period_invoice(s, catalog, t(2026, 2, 1)) is None
    snap = snapshot(s, catalog, source_offsets={}, as_of=t(2026, 2, 2))
    assert (snap.status, snap.allowed, snap.upcoming_invoice) == ("cancelled", False, None)


def test_periods_ending_in_a_calendar_month(catalog: Catalog) -> None:
    s, _ = fold(catalog, [SubscriptionStarted("sub", "c", t(2026, 1, 31), "writer")])
    assert periods_ending_in(s, t(2026, 3, 1), t(2026, 4, 1)) == [(t(2026, 2, 28), t(2026, 3, 31))]
    assert periods_ending_in(s, t(2026, 2, 1), t(2026, 3, 1)) == [(t(2026, 1, 31), t(2026, 2, 28))]
    # A period ending exactly at a month boundary belongs to the month it covers.
    s, _ = fold(catalog, [SubscriptionStarted("sub", "c", t(2026, 1, 1), "writer")])
    assert periods_ending_in(s, t(2026, 1, 1), t(2026, 2, 1)) == [(t(2026, 1, 1), t(2026, 2, 1))]
    assert periods_ending_in(s, t(2026, 2, 1), t(2026, 3, 1)) == [(t(2026, 2, 1), t(2026, 3, 1))]
    assert periods_ending_in(new_state("x"), t(2026, 2, 1), t(2026, 3, 1)) == []


def test_allowance_alerts_once_per_period_resolved_by_the_next(catalog: Catalog) -> None:
    _, effects = fold(catalog, [
        SUB,
        usage("c", "tokens", 79_999, t(2026, 1, 2)),
        usage("c", "tokens", 1, t(2026, 1, 3)),  # 80 %
        usage("c", "tokens", 30_000, t(2026, 1, 4)),  # 100 %
        usage("c", "tokens", 30_000, t(2026, 1, 5)),  # nothing new
        usage("c", "tokens", 1, t(2026, 2, 1)),  # new period
    ])  # fmt: skip
    got = [[(type(a).__name__, a.threshold_percent) for a in e.alerts] for e in effects]
    assert got == [
        [], [], [("AlertRaised", 80)], [("AlertRaised", 100)], [],
        [("AlertResolved", 80), ("AlertResolved", 100)],
    ]  # fmt: skip
    raised = effects[2].alerts[0]
    assert effects[5].alerts[0].raised_alert_id == raised.alert_id


def test_snapshot_of_a_metered_customer(catalog: Catalog) -> None:
    s, _ = fold(catalog, [SUB, usage("c", "tokens", 30_000, t(2026, 1, 2))])
    snap = snapshot(s, catalog, source_offsets={"usage-events/3": 41}, as_of=t(2026, 1, 2, 1))
    assert snap.usage == {"tokens": 30_000}
    assert snap.allowance_remaining == {"tokens": 70_000}
    assert (snap.credits_remaining, snap.balance, snap.allowed, snap.version) == (
        None,
        None,
        True,
        2,
    )
    assert snap.upcoming_invoice is not None and cents(snap.upcoming_invoice.total) == 1900


def test_naive_timestamp_and_foreign_customer_are_rejected(catalog: Catalog) -> None:
    s, _ = fold(catalog, [SUB])
    naive = UsageRecorded("n", "c", "tokens", D(1), t(2026, 1, 2).replace(tzinfo=None))
    assert apply(s, naive, catalog)[1].rejection is not None
    other = usage("someone-else", "tokens", 1, t(2026, 1, 2))
    rej = apply(s, other, catalog)[1].rejection
    assert rej is not None and rej.reason == RejectReason.INVALID_FIELD


def test_hard_spend_cap_denies_once_reached_and_alerts_once() -> None:
    from billing.catalog import parse_catalog

    cat = parse_catalog({
        "features": [{"id": "tokens"}],
        "plans": [{
            "id": "capped", "model": "metered", "currency": "USD", "spend_cap": "1.00",
            "prices": {"tokens": {"strategy": "per_unit", "unit_price": "0.01", "per": 1000}},
        }],
    })  # fmt: skip
    sub = SubscriptionStarted("sub", "c", t(2026, 1, 1), "capped")
    s, effects = fold(cat, [
        sub,
        usage("c", "tokens", 60_000, t(2026, 1, 2)),  # 0.60
        usage("c", "tokens", 40_000, t(2026, 1, 3)),  # 1.00: cap reached
        usage("c", "tokens", 40_000, t(2026, 1, 4)),  # still counted (usage happened)
    ])  # fmt: skip
    assert [len(e.alerts) for e in effects] == [0, 0, 1, 0]
    assert effects[2].alerts[0].kind == "spend_cap"
    assert not snapshot(s, cat, source_offsets={}, as_of=t(2026, 1, 5)).allowed
    s, effects = fold(cat, [usage("c", "tokens", 1, t(2026, 2, 1))], s)
    assert [a.kind for a in effects[0].alerts] == ["spend_cap"]  # resolved by the new period
    assert snapshot(s, cat, source_offsets={}, as_of=t(2026, 2, 2)).allowed
