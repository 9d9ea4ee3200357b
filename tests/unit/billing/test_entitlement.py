"""`billing.entitlement`: the feature rule agrees with rating, and every denial has
its reason."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing import entitlement
from billing.events import UsageRecorded
from billing.rating import Unrateable, credit_cost, feature_price
from streambill.config.catalog_file import load_catalog
from streambill.config.settings import REPO_ROOT

CATALOG = load_catalog(REPO_ROOT / "examples" / "catalog.yaml")
FEATURES = sorted({f for p in CATALOG.plans.values() for f in (*p.prices, *p.credit_costs)})


@pytest.mark.parametrize("plan_id", sorted(CATALOG.plans))
@pytest.mark.parametrize("feature", [*FEATURES, "nope"])
def test_feature_billed_is_what_rating_accepts(plan_id: str, feature: str) -> None:
    plan = CATALOG.plans[plan_id]
    event = UsageRecorded("e", "c", feature, Decimal(1), datetime(2026, 1, 1, tzinfo=UTC))
    try:
        if plan.model == "credits":
            credit_cost(plan, event, Decimal(1))
        else:
            feature_price(plan, feature)
        rated = True
    except Unrateable as exc:
        rated = exc.reason != "unknown_feature"
    assert entitlement.feature_billed(plan, feature) == rated


def _refusal(**kw: object) -> str | None:
    base: dict[str, object] = dict(
        allowed=True, status="active", model="metered", credits=None, balance=None,
        plan=CATALOG.plans["writer"], feature_id="tokens",
    )  # fmt: skip
    return entitlement.refusal(**{**base, **kw})  # type: ignore[arg-type]


def test_reasons() -> None:
    assert _refusal() is None
    assert _refusal(feature_id="image_generation") == entitlement.FEATURE_NOT_IN_PLAN
    assert _refusal(status="none") == entitlement.NO_SUBSCRIPTION
    assert _refusal(allowed=False, status="cancelled") == entitlement.SUBSCRIPTION_ENDED
    assert _refusal(allowed=False) == entitlement.SPEND_CAP_REACHED
    assert (
        _refusal(allowed=False, model="credits", credits=Decimal(0))
        == entitlement.CREDITS_EXHAUSTED
    )
    assert (
        _refusal(allowed=False, model="balance", balance=Decimal("-0.01"))
        == entitlement.BALANCE_EXHAUSTED
    )
    assert _refusal(plan=None, feature_id="image_generation") is None
