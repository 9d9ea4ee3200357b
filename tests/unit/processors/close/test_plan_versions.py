"""Plan versions are pinned (issue 17): a subscription is billed on the version it was
pinned to, whatever versions are published later.

A catalog holds every version of a plan. An unpinned subscription (every event from
before versions were pinned) is on the plan's lowest version; a pinned one on its
version; a `SubscriptionChanged` to another version migrates the customer at the next
period boundary. So publishing `writer` v2 re-prices nobody: re-running October's
close gives the bytes already on the invoices topic, and October's late usage is
adjusted at v1's price against the invoice actually issued.
"""

from __future__ import annotations

import hashlib
from copy import deepcopy
from decimal import Decimal
from typing import Any

import pytest
import yaml

from billing.admission import fingerprint, to_ms
from billing.catalog import Catalog, parse_catalog
from billing.catalog_live import catalog_revision
from billing.errors import CatalogError
from billing.events import Invoice, PeriodClosed, SubscriptionChanged, SubscriptionStarted
from billing.ledger import apply, new_state
from processors.close.run import CloseReport
from streambill.config.settings import Settings
from streambill.wire.convert import decode_value
from tests.close_support import TOPICS, Harness, subscribe, usage, utc


def _data() -> dict[str, Any]:
    with open(Settings().catalog_path, encoding="utf-8") as f:
        data: dict[str, Any] = yaml.safe_load(f)
    return data


def _writer_v2(data: dict[str, Any]) -> dict[str, Any]:
    v1 = next(p for p in data["plans"] if p["id"] == "writer")
    v2 = deepcopy(v1)
    v2["version"] = 2
    v2["base_fee"] = "29.00"
    v2["prices"]["tokens"]["unit_price"] = "0.03"
    return v2


V1: Catalog = parse_catalog(_data())
V1_V2: Catalog = parse_catalog({**_data(), "plans": [*_data()["plans"], _writer_v2(_data())]})


def _period(invoices: list[Invoice], customer: str, month: int) -> Invoice:
    return next(
        i
        for i in invoices
        if i.customer_id == customer and i.kind == "period" and i.period_start.month == month
    )


def test_the_catalog_keeps_every_version_and_offers_the_highest() -> None:
    assert V1_V2.plans["writer"].version == 2
    assert V1_V2.versions("writer") == (1, 2)
    assert V1_V2.refs["writer"].version == 1  # unpinned: the lowest version
    assert V1_V2.refs["writer@2"].base_fee == Decimal("29.00")
    assert V1_V2.version("writer", 3) is None


def _october_on_v1() -> tuple[Harness, CloseReport]:
    """cus_w on writer v1 with 250k tokens in October, and October closed."""
    h = Harness(V1)
    h.publish([
        subscribe("cus_w", "writer", utc(2026, 10, 1)),
        usage("cus_w", "tokens", 250_000, utc(2026, 10, 9)),
    ])  # fmt: skip
    h.now = utc(2026, 11, 3)
    return h, h.close("2026-10")


def test_re_running_a_close_after_a_new_version_gives_the_same_bytes() -> None:
    h, first = _october_on_v1()
    issued = h.invoices_on_topic()
    assert first.status == "closed" and len(issued) == 1
    assert issued[0][1].total == Decimal("22.00")  # 19.00 + 150k tokens at 0.02 per 1000

    h.catalog = V1_V2  # writer v2 published after October was billed
    again = h.close("2026-10")
    assert again.status == "no_op" and again.sent == 0
    assert again.already_on_topic == 1
    assert [data for _, data in again.invoices] == [data for data, _ in issued]
    closes = [
        decode_value(h.codec, r.value)
        for part in h.log.topics[TOPICS.closes]
        for r in part
        if r.key == b"2026-10"  # the close itself (its plan record has a key of its own)
    ]
    recorded = [c for c in closes if isinstance(c, PeriodClosed)]
    assert [c.catalog_revision for c in recorded] == [catalog_revision(V1)]  # written once
    assert catalog_revision(V1) != catalog_revision(V1_V2)


def test_late_usage_is_adjusted_at_the_pinned_price_against_the_issued_invoice() -> None:
    h, _ = _october_on_v1()
    october = _period([i for _, i in h.invoices_on_topic()], "cus_w", 10)

    h.catalog = V1_V2
    h.publish([usage("cus_w", "tokens", 50_000, utc(2026, 10, 20))])  # late, after the close
    h.now = utc(2026, 12, 3)
    h.close("2026-11")
    adjustments = [i for _, i in h.invoices_on_topic() if i.kind == "adjustment"]
    assert len(adjustments) == 1
    adj = adjustments[0]
    assert adj.adjusts_invoice_id == october.invoice_id
    assert (adj.plan_id, adj.plan_version) == ("writer", 1)
    assert adj.total == Decimal("1.00")  # 50k tokens at v1's 0.02 per 1000, not v2's 0.03
    november = _period([i for _, i in h.invoices_on_topic()], "cus_w", 11)
    assert november.plan_version == 1 and november.total == Decimal("19.00")


THREE = ("cus_old", "cus_mig", "cus_new")


def test_a_customer_migrated_to_v2_is_billed_v2_from_the_renewal_on() -> None:
    h = Harness(V1_V2)
    h.publish([
        subscribe("cus_old", "writer", utc(2026, 10, 1)),
        subscribe("cus_mig", "writer", utc(2026, 10, 1)),
        SubscriptionStarted("s-new", "cus_new", utc(2026, 10, 1), "writer", 1, plan_version=2),
        SubscriptionChanged("m-1", "cus_mig", utc(2026, 10, 20), "writer", plan_version=2),
        *(usage(c, "tokens", 200_000, utc(2026, 10, 25)) for c in THREE),
        *(usage(c, "tokens", 200_000, utc(2026, 11, 5)) for c in THREE),
    ])  # fmt: skip
    h.now = utc(2026, 11, 3)
    h.close("2026-10")
    h.now = utc(2026, 12, 3)
    h.close("2026-11")
    invoices = [i for _, i in h.invoices_on_topic()]
    totals = {
        (c, m): (_period(invoices, c, m).plan_version, _period(invoices, c, m).total)
        for c in THREE
        for m in (10, 11)
    }
    assert totals == {
        ("cus_old", 10): (1, Decimal("21.00")),  # 19.00 + 100k beyond the allowance at 0.02
        ("cus_old", 11): (1, Decimal("21.00")),
        ("cus_mig", 10): (1, Decimal("21.00")),  # the change waits for the renewal
        ("cus_mig", 11): (2, Decimal("32.00")),  # 29.00 + 100k at 0.03
        ("cus_new", 10): (2, Decimal("32.00")),
        ("cus_new", 11): (2, Decimal("32.00")),
    }


def test_an_unknown_plan_version_is_refused_naming_the_versions() -> None:
    event = SubscriptionStarted("s1", "cus_x", utc(2026, 10, 1), "writer", 1, plan_version=7)
    state, effects = apply(new_state("cus_x"), event, V1_V2)
    assert effects.rejection is not None and state.acct.status == "none"
    assert "v7" in effects.rejection.detail and "v1, v2" in effects.rejection.detail
    pinned_as_id = SubscriptionStarted("s2", "cus_x", utc(2026, 10, 1), "writer@2", 1)
    assert apply(new_state("cus_x"), pinned_as_id, V1_V2)[1].rejection is not None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p, "duplicate plan id and version 1"),
        (lambda p: {**p, "version": 2, "model": "balance"}, "same model"),
        (lambda p: {**p, "id": "writer@2", "version": 2}, "no '@'"),
    ],
)
def test_versions_in_a_catalog_file_are_checked(change: Any, message: str) -> None:
    data = _data()
    writer = next(p for p in data["plans"] if p["id"] == "writer")
    data["plans"].append(change(deepcopy(writer)))
    with pytest.raises(CatalogError, match=message):
        parse_catalog(data)


def test_an_unpinned_subscription_keeps_the_digest_it_had_before_versions() -> None:
    """The worker remembers account events by fingerprint; an event from before
    `plan_version` existed must still be a duplicate of itself after the upgrade."""
    event = SubscriptionStarted("s1", "cus_x", utc(2026, 10, 1), "writer", 2)
    text = "\x1e".join(
        ["SubscriptionStarted", "s1", "cus_x", str(to_ms(event.timestamp)), "writer", "2"]
    )
    before = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    assert fingerprint(event) == before
    assert fingerprint(SubscriptionStarted(*_fields(event), plan_version=2)) != before


def _fields(e: SubscriptionStarted) -> tuple[Any, ...]:
    return (e.event_id, e.customer_id, e.timestamp, e.plan_id, e.seats)
