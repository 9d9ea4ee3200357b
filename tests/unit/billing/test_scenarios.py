"""Every example plan through the fold, with totals computed by hand in cents."""

from __future__ import annotations

from decimal import Decimal as D

from billing.catalog import Catalog
from billing.events import (
    CreditsGranted,
    CreditsPurchased,
    Event,
    SeatsChanged,
    SubscriptionStarted,
    WalletDeposited,
)
from billing.invoicing import adjustment, period_invoice
from billing.ledger import CustomerState, Effects, snapshot
from tests.unit.billing.conftest import t
from tests.unit.billing.helpers import cents, fold, invoice, usage


def subscribed(
    catalog: Catalog, plan: str, events: list[Event], seats: int = 1
) -> tuple[CustomerState, list[Effects]]:
    """Customer "c" subscribed to `plan` on 1 January 2026, then `events` folded (the
    effects of the subscription first)."""
    return fold(catalog, [SubscriptionStarted("sub", "c", t(2026, 1, 1), plan, seats), *events])


def test_writer_seed_250k_tokens_is_150k_overage_and_usd_22(catalog: Catalog) -> None:
    s, _ = subscribed(catalog, "writer", [
        usage("c", "tokens", 100_000, t(2026, 1, 5)),
        usage("c", "tokens", 150_000, t(2026, 1, 20)),
    ])  # fmt: skip
    inv = invoice(s, catalog, t(2026, 1, 1))
    overage = next(line for line in inv.lines if "overage" in line.description)
    assert overage.quantity == 150_000
    assert cents(overage.amount) == 300  # 150 x USD 0.02
    assert cents(inv.total) == 2200  # 19.00 + 3.00
    assert (inv.plan_id, inv.plan_version, inv.period_end) == ("writer", 1, t(2026, 2, 1))


def test_starter_rounds_each_line_once_half_up(catalog: Catalog) -> None:
    s, _ = subscribed(catalog, "starter", [
        usage("c", "tokens", 50_167, t(2026, 1, 2)),
    ])  # fmt: skip
    inv = invoice(s, catalog, t(2026, 1, 1))
    overage = inv.lines[-1]
    assert overage.precise_amount == D("0.00501")  # 167 x 0.00003
    assert cents(overage.amount) == 1
    assert cents(inv.total) == 2901
    assert inv.total == sum(line.amount for line in inv.lines)


def test_scale_graduated_beyond_ten_million(catalog: Catalog) -> None:
    s, _ = subscribed(catalog, "scale", [
        usage("c", "tokens", 7_000_000, t(2026, 1, 2)),
        usage("c", "tokens", 5_000_000, t(2026, 1, 3)),
    ])  # fmt: skip
    # 99 + 9,000 x 0.015 (1M-10M) + 2,000 x 0.010 (beyond 10M)
    assert cents(invoice(s, catalog, t(2026, 1, 1)).total) == 9900 + 13500 + 2000


def test_team_seats_with_a_mid_period_change_prorated_to_the_second(catalog: Catalog) -> None:
    s, _ = subscribed(catalog, "team", [
        SeatsChanged("more", "c", t(2026, 1, 11), seats=5),
        usage("c", "tokens", 250_000, t(2026, 1, 20)),
    ], seats=2)  # fmt: skip
    inv = invoice(s, catalog, t(2026, 1, 1))
    seat_lines = [line for line in inv.lines if "seat" in line.description]
    # 2 seats x 10/31 x 20 = 12.903 -> 12.90; 5 seats x 21/31 x 20 = 67.742 -> 67.74
    assert [cents(line.amount) for line in seat_lines] == [1290, 6774]
    # 200,000 included in all, 50,000 x 0.02/1000 = 1.00
    assert cents(inv.total) == 1290 + 6774 + 100
    # the next period bills 5 seats in full
    assert cents(invoice(s, catalog, t(2026, 2, 1)).total) == 10000


def test_voice_seconds_priced_per_minute_pro_rata(catalog: Catalog) -> None:
    s, _ = subscribed(catalog, "voice", [
        usage("c", "transcription", 3_600, t(2026, 1, 2)),
        usage("c", "transcription", 125, t(2026, 1, 3)),
    ])  # fmt: skip
    inv = invoice(s, catalog, t(2026, 1, 1))
    assert inv.lines[0].precise_amount == D("0.3725")  # 3,725 s = 62.083 min x 0.006
    assert cents(inv.total) == 37


def test_image_credits_pack_costs_by_complexity(catalog: Catalog) -> None:
    s, effects = subscribed(catalog, "image-credits", [
        CreditsPurchased("buy-1", "c", t(2026, 1, 1, 1), "credits-100"),
        usage("c", "image_generation", 1, t(2026, 1, 2), complexity="standard"),
        usage("c", "image_generation", 1, t(2026, 1, 2), complexity="standard"),
        usage("c", "image_generation", 1, t(2026, 1, 2), complexity="standard"),
        usage("c", "image_generation", 1, t(2026, 1, 3), complexity="complex"),
        usage("c", "image_generation", 1, t(2026, 1, 3), complexity="complex"),
        usage("c", "image_generation", 1, t(2026, 1, 4), complexity="ultra"),
    ])  # fmt: skip
    (purchase,) = effects[1].invoices
    assert (purchase.kind, cents(purchase.total)) == ("purchase", 1000)
    assert [e.credits_deducted for e in effects[2:]] == [1, 1, 1, 5, 5, 10]
    snap = snapshot(s, catalog, source_offsets={}, as_of=t(2026, 1, 5))
    assert snap.credits_remaining == 100 - 23
    assert snap.allowed
    assert cents(invoice(s, catalog, t(2026, 1, 1)).total) == 0  # credits are prepaid


def test_query_credits_and_alerts_relative_to_the_last_top_up(catalog: Catalog) -> None:
    events: list[Event] = [CreditsPurchased("buy", "c", t(2026, 1, 1), "credits-500k")]
    # 400 complex queries = 400,000 credits: 100,000 left = 20 % of the top-up.
    events += [usage("c", "query", 1, t(2026, 1, 2), kind="complex") for _ in range(400)]
    events += [usage("c", "query", 1, t(2026, 1, 3), kind="simple")]
    s, effects = subscribed(catalog, "query-credits", events)
    raised = [a for e in effects for a in e.alerts]
    assert [(a.kind, a.threshold_percent, a.value) for a in raised] == [
        ("credits_low", 20, D(100_000))
    ]
    assert effects[-1].credits_deducted == 100
    assert s.credits_remaining() == 99_900
    # A new pack resolves the alert.
    _, eff = fold(catalog, [CreditsPurchased("buy2", "c", t(2026, 1, 4), "credits-500k")], s)
    (resolved,) = eff[0].alerts
    assert resolved.raised_alert_id == raised[0].alert_id


def test_expiring_credits_are_used_first_then_expire(catalog: Catalog) -> None:
    s, _ = subscribed(catalog, "image-credits", [
        CreditsPurchased("buy", "c", t(2026, 1, 1), "credits-100"),
        CreditsGranted("promo-late", "c", t(2026, 1, 1), D(20), expires_at=t(2026, 1, 20)),
        CreditsGranted("promo-soon", "c", t(2026, 1, 1), D(8), expires_at=t(2026, 1, 10)),
        usage("c", "image_generation", 1, t(2026, 1, 5), complexity="ultra"),  # 10
    ])  # fmt: skip
    # 8 from the grant expiring first, 2 from the next one; the pack is untouched.
    assert s.grants == ((t(2026, 1, 20), D(18)), (None, D(100)))
    assert snapshot(s, catalog, source_offsets={}, as_of=t(2026, 1, 19)).credits_remaining == 118
    assert snapshot(s, catalog, source_offsets={}, as_of=t(2026, 1, 21)).credits_remaining == 100
    s, _ = fold(
        catalog, [usage("c", "image_generation", 1, t(2026, 1, 25), complexity="complex")], s
    )
    assert s.grants == ((None, D(95)),)  # the expired 18 are gone


def test_credits_may_go_below_zero_and_deny(catalog: Catalog) -> None:
    s, effects = subscribed(catalog, "image-credits", [
        CreditsGranted("g", "c", t(2026, 1, 1), D(12)),
        usage("c", "image_generation", 1, t(2026, 1, 2), complexity="ultra"),
        usage("c", "image_generation", 1, t(2026, 1, 3), complexity="complex"),
    ])  # fmt: skip
    kinds = [(a.threshold_percent, type(a).__name__) for e in effects for a in e.alerts]
    assert kinds == [(20, "AlertRaised"), (10, "AlertRaised"), (0, "AlertRaised")]
    snap = snapshot(s, catalog, source_offsets={"t/0": 7}, as_of=t(2026, 1, 4))
    assert (snap.credits_remaining, snap.allowed, snap.source_offsets) == (D(-3), False, {"t/0": 7})


def test_dev_api_wallet_tokens_by_model(catalog: Catalog) -> None:
    s, effects = subscribed(catalog, "dev-api", [
        WalletDeposited("dep", "c", t(2026, 1, 1), D("10.00"), "USD"),
        usage("c", "tokens", 2_000_000, t(2026, 1, 2), model="small",
              input_tokens="1000000", output_tokens="1000000"),
        usage("c", "tokens", 300_000, t(2026, 1, 3), model="large",
              input_tokens="200000", output_tokens="100000"),
        usage("c", "tokens", 7, t(2026, 1, 3), model="small", input_tokens="4", output_tokens="3"),
    ])  # fmt: skip
    assert cents(effects[1].invoices[0].total) == 1000
    assert [e.money_deducted for e in effects[2:]] == [D("2.00"), D("2.10"), D("0.0000065")]
    assert s.balance == D("5.8999935")  # full precision, no rounding per event
    inv = invoice(s, catalog, t(2026, 1, 1))
    assert cents(inv.total) == 0  # paid from the wallet, nothing owed


def test_wallet_below_zero_is_owed_on_the_period_invoice(catalog: Catalog) -> None:
    s, _ = subscribed(catalog, "dev-api", [
        WalletDeposited("dep", "c", t(2026, 1, 1), D("1.00"), "USD"),
        usage("c", "tokens", 200_000, t(2026, 1, 2), model="large",
              input_tokens="100000", output_tokens="100000"),  # 0.30 + 1.50
    ])  # fmt: skip
    assert s.balance == D("-0.80")
    snap = snapshot(s, catalog, source_offsets={}, as_of=t(2026, 1, 3))
    assert (snap.balance, snap.allowed) == (D("-0.80"), False)
    inv = invoice(s, catalog, t(2026, 1, 1))
    assert cents(inv.total) == 80
    assert "owed" in inv.lines[-1].description
    # The owed amount is settled by that invoice: February starts from zero.
    s, _ = fold(catalog, [WalletDeposited("dep2", "c", t(2026, 2, 2), D("5.00"), "USD")], s)
    assert s.balance == D("5.00")
    assert cents(invoice(s, catalog, t(2026, 2, 1)).total) == 0


def test_subscription_mid_month_is_anchored(catalog: Catalog) -> None:
    s, _ = fold(catalog, [
        SubscriptionStarted("sub", "c", t(2026, 1, 15, 10), "writer"),
        usage("c", "tokens", 150_000, t(2026, 2, 15, 9, 59)),  # still the first period
        usage("c", "tokens", 10, t(2026, 2, 15, 10)),  # the second one
    ])  # fmt: skip
    first = invoice(s, catalog, t(2026, 1, 15, 10))
    assert (first.period_start, first.period_end) == (t(2026, 1, 15, 10), t(2026, 2, 15, 10))
    assert cents(first.total) == 2000  # 19 + 50,000 x 0.02/1000
    assert cents(invoice(s, catalog, t(2026, 2, 15, 10)).total) == 1900
    assert period_invoice(s, catalog, t(2026, 1, 1)) is None  # before the subscription
    assert period_invoice(s, catalog, t(2026, 1, 16)) is None  # not a period start


def test_late_event_updates_its_open_period_and_adjusts_the_issued_invoice(
    catalog: Catalog,
) -> None:
    s, _ = subscribed(catalog, "writer", [
        usage("c", "tokens", 100_000, t(2026, 1, 20)),
        usage("c", "tokens", 50_000, t(2026, 2, 3)),
    ])  # fmt: skip
    issued = invoice(s, catalog, t(2026, 1, 1))
    assert cents(issued.total) == 1900
    s, effects = fold(catalog, [usage("c", "tokens", 100_000, t(2026, 1, 25))], s)
    assert effects[0].rejection is None
    recomputed = invoice(s, catalog, t(2026, 1, 1))
    assert recomputed.invoice_id == issued.invoice_id  # same period, same plan version
    assert cents(recomputed.total) == 2100
    assert cents(invoice(s, catalog, t(2026, 2, 1)).total) == 1900  # February untouched
    adj = adjustment(issued, recomputed)
    assert adj is not None
    assert (adj.kind, adj.adjusts_invoice_id, cents(adj.total)) == (
        "adjustment",
        issued.invoice_id,
        200,
    )
    assert adj.total == recomputed.total - issued.total
    assert adjustment(issued, issued) is None
    assert adjustment(issued, recomputed) == adj  # deterministic id and content


def test_metered_tokens_by_model_with_an_allowance_counting_total_tokens() -> None:
    from billing.catalog import parse_catalog

    cat = parse_catalog({
        "features": [{"id": "tokens"}],
        "plans": [{
            "id": "llm", "model": "metered", "currency": "USD", "spend_cap": "100",
            "prices": {"tokens": {
                "strategy": "per_token", "property": "model", "included": 1_000_000,
                "rates": {"small": {"input": "0.50", "output": "1.50"}},
            }},
        }],
    })  # fmt: skip
    s, effects = subscribed(cat, "llm", [
        usage("c", "tokens", 2_000_000, t(2026, 1, 2), model="small",
              input_tokens="1000000", output_tokens="1000000"),
        usage("c", "tokens", 2_000_000, t(2026, 1, 3), model="small",
              input_tokens="1000000", output_tokens="1000000"),
    ])  # fmt: skip
    assert all(e.rejection is None for e in effects)
    inv = invoice(s, cat, t(2026, 1, 1))
    # 4M tokens, 1M included (the allowance counts total tokens): 3/4 of
    # (2M input x 0.50 + 2M output x 1.50 per million) = 3/4 x 4.00 = 3.00
    assert cents(inv.total) == 300
    assert [line.quantity for line in inv.lines] == [D(1_000_000), D(1_500_000), D(1_500_000)]
    assert s.last is not None and s.last.spend == D("3.00")
