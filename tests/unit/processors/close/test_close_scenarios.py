"""Period closes over several months for every example plan, on an in-memory log.

Each customer exercises something: a subscription starting mid-month (anchored
periods), a mid-period seat change (prorated), credits that expire, a wallet that
goes below zero. Every period invoice must equal the live preview (a pure fold of
the same events priced by `snapshot(...).upcoming_invoice` at the period's end);
metered totals are also checked against hand-computed cents.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from billing.events import Event, Invoice
from billing.ledger import CustomerState, apply, new_state, snapshot
from tests.close_support import (
    Harness,
    cents,
    deposit,
    grant,
    live_preview,
    load_example_catalog,
    purchase,
    seats,
    subscribe,
    usage,
    utc,
)


def history() -> list[Event]:
    # Anchors on the 2nd or later: a period ending exactly on the 1st belongs to the
    # month before (close `2025-01` bills 1 Jan -> 1 Feb), so these all close in 2025-02.
    ev: list[Event] = [
        subscribe("cus_starter", "starter", utc(2025, 1, 15, 10)),
        usage("cus_starter", "tokens", 30000, utc(2025, 1, 20)),
        usage("cus_starter", "tokens", 40000, utc(2025, 2, 3)),
        usage("cus_starter", "tokens", 10000, utc(2025, 2, 20)),
        subscribe("cus_writer", "writer", utc(2025, 1, 2)),
        usage("cus_writer", "tokens", 250000, utc(2025, 1, 9)),
        usage("cus_writer", "tokens", 120000, utc(2025, 2, 9)),
        subscribe("cus_scale", "scale", utc(2025, 1, 2)),
        usage("cus_scale", "tokens", 2500000, utc(2025, 1, 12)),
        subscribe("cus_team", "team", utc(2025, 1, 10), seats=2),
        usage("cus_team", "tokens", 300000, utc(2025, 1, 20)),
        seats("cus_team", 4, utc(2025, 1, 25)),
        subscribe("cus_voice", "voice", utc(2025, 1, 2)),
        usage("cus_voice", "transcription", 3600, utc(2025, 1, 2, 12)),
        subscribe("cus_img", "image-credits", utc(2025, 1, 5)),
        purchase("cus_img", "credits-100", utc(2025, 1, 5)),
        grant("cus_img", "50", utc(2025, 1, 5), expires=utc(2025, 2, 1)),
        usage("cus_img", "image_generation", 1, utc(2025, 1, 10), complexity="complex"),
        usage("cus_img", "image_generation", 1, utc(2025, 2, 10), complexity="ultra"),
        subscribe("cus_query", "query-credits", utc(2025, 1, 3)),
        purchase("cus_query", "credits-500k", utc(2025, 1, 3)),
        usage("cus_query", "query", 3, utc(2025, 1, 4), kind="complex"),
        subscribe("cus_dev", "dev-api", utc(2025, 1, 2)),
        deposit("cus_dev", "1.00", utc(2025, 1, 2)),
        usage(
            "cus_dev",
            "tokens",
            200000,
            utc(2025, 1, 7),
            model="large",
            input_tokens="100000",
            output_tokens="100000",
        ),
        usage(
            "cus_dev",
            "tokens",
            10000,
            utc(2025, 2, 7),
            model="small",
            input_tokens="5000",
            output_tokens="5000",
        ),
    ]
    return ev


@pytest.fixture(scope="module")
def closed() -> tuple[Harness, dict[str, list[Invoice]]]:
    h = Harness(load_example_catalog())
    h.publish(history())
    by_month = {}
    for month in ("2025-02", "2025-03", "2025-04"):
        report = h.close(month)
        assert report.status == "closed"
        by_month[month] = [p.invoice for p, _ in report.invoices]
    return h, by_month


def _one(invoices: list[Invoice], customer: str) -> Invoice:
    mine = [i for i in invoices if i.customer_id == customer]
    assert len(mine) == 1, mine
    return mine[0]


def test_every_plan_is_invoiced_each_month(
    closed: tuple[Harness, dict[str, list[Invoice]]],
) -> None:
    _, by_month = closed
    customers = {
        "cus_starter",
        "cus_writer",
        "cus_scale",
        "cus_team",
        "cus_voice",
        "cus_img",
        "cus_query",
        "cus_dev",
    }
    for month in ("2025-02", "2025-03", "2025-04"):
        assert {i.customer_id for i in by_month[month]} == customers
        assert all(i.kind == "period" for i in by_month[month])
        for inv in by_month[month]:
            assert inv.period_end.strftime("%Y-%m") == month


def test_close_equals_live_preview(closed: tuple[Harness, dict[str, list[Invoice]]]) -> None:
    h, by_month = closed
    for invoices in by_month.values():
        for inv in invoices:
            assert live_preview(h.catalog, h.published, inv.customer_id, inv.period_end) == inv


def test_metered_totals_in_cents(closed: tuple[Harness, dict[str, list[Invoice]]]) -> None:
    _, by_month = closed
    feb, mar = by_month["2025-02"], by_month["2025-03"]
    # the seed's numbers: 250,000 tokens on writer = 150,000 overage at 0.02/1000 + 19.00
    assert cents(_one(feb, "cus_writer").total) == 2200
    # second writer period: 120,000 -> 20,000 overage = 0.40
    assert cents(_one(mar, "cus_writer").total) == 1940
    # starter anchored Jan 15 10:00: Jan 20 + Feb 3 in one period: 70,000 -> 20,000 * 0.03/1000
    starter = _one(feb, "cus_starter")
    assert starter.period_start == utc(2025, 1, 15, 10) and cents(starter.total) == 2960
    assert cents(_one(mar, "cus_starter").total) == 2900  # 10,000 tokens: inside the allowance
    # scale: 1,500,000 beyond the included million at 0.015/1000 = 22.50
    assert cents(_one(feb, "cus_scale").total) == 9900 + 2250
    # voice: 3,600 s = 60 min at 0.006
    assert cents(_one(feb, "cus_voice").total) == 36


def test_team_seat_change_is_prorated(closed: tuple[Harness, dict[str, list[Invoice]]]) -> None:
    _, by_month = closed
    team = _one(by_month["2025-02"], "cus_team")
    assert (team.period_start, team.period_end) == (utc(2025, 1, 10), utc(2025, 2, 10))
    # 2 seats for 15 of 31 days, 4 seats for 16 of 31 days at 20.00 a seat;
    # tokens 300,000 - 200,000 included = 100,000 at 0.02/1000 = 2.00
    seat_cents = sum(cents(ln.amount) for ln in team.lines if ln.feature_id is None)
    exact = (2 * 15 + 4 * 16) * 2000 / 31
    assert abs(seat_cents - exact) <= len(team.lines)  # one rounding per line
    assert cents(team.total) == seat_cents + 200
    # the next period bills 4 seats all month
    assert cents(_one(by_month["2025-03"], "cus_team").total) == 8000


def test_credits_expire_and_wallet_goes_below_zero(
    closed: tuple[Harness, dict[str, list[Invoice]]],
) -> None:
    h, by_month = closed
    feb, mar = by_month["2025-02"], by_month["2025-03"]
    # credits: consumption is shown, nothing is charged (packs are invoiced on purchase)
    img = _one(feb, "cus_img")
    assert cents(img.total) == 0
    assert [(ln.description, ln.quantity) for ln in img.lines][-1] == ("Credits consumed", 5)
    assert _one(mar, "cus_img").lines[-1].quantity == 10  # an ultra image
    # the 50 granted credits expired on Feb 1 with 45 unused: 100 + 50 - 5 - 45 - 10 = 90
    state = live_state(h, "cus_img")
    assert (
        snapshot(state, h.catalog, source_offsets={}, as_of=utc(2025, 2, 20)).credits_remaining
        == 90
    )
    # wallet: 1.00 deposited, 100k input * 3.00/M + 100k output * 15.00/M = 1.80 spent
    assert cents(_one(feb, "cus_dev").total) == 80  # owed: the wallet is at -0.80
    # February: 5k * 0.50/M + 5k * 1.50/M = 0.01, all beyond an already negative wallet
    assert cents(_one(mar, "cus_dev").total) == 1
    assert cents(_one(feb, "cus_team").total) == 1935 + 4129 + 200


def live_state(h: Harness, customer: str) -> CustomerState:
    state = new_state(customer)
    for e in sorted(
        (e for e in h.published if e.customer_id == customer), key=lambda e: e.timestamp
    ):
        state, _ = apply(state, e, h.catalog)
    return state


def test_rerun_is_a_byte_identical_no_op(closed: tuple[Harness, dict[str, list[Invoice]]]) -> None:
    h, by_month = closed
    before = h.invoices_on_topic()
    again = h.close("2025-03")
    assert again.status == "no_op" and again.sent == 0
    assert again.already_on_topic == len(by_month["2025-03"])
    assert h.invoices_on_topic() == before
    on_topic = {inv.invoice_id: data for data, inv in before}
    for priced, data in again.invoices:
        assert on_topic[priced.invoice.invoice_id] == data


def test_invoices_are_unique_on_the_topic(closed: tuple[Harness, dict[str, list[Invoice]]]) -> None:
    h, _ = closed
    ids = [inv.invoice_id for _, inv in h.invoices_on_topic()]
    assert len(ids) == len(set(ids)) == 24


def test_refuses_a_period_not_over_yet() -> None:
    h = Harness(load_example_catalog(), now=utc(2025, 4, 1, 12))
    h.publish(history())
    from processors.close.plan import PeriodNotClosable

    with pytest.raises(PeriodNotClosable, match="grace"):
        h.close("2025-03", grace=timedelta(days=1))
    preview = h.close("2025-03", grace=timedelta(days=1), dry_run=True)
    assert preview.status == "dry_run" and preview.invoices
    assert h.invoices_on_topic() == []
    assert not any(h.log.topics.get("t.period-closes", []))
