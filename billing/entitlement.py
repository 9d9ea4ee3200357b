"""Why a customer may not use a feature now: the reasons an entitlement check gives.

`feature_billed` is the rule the fold applies when it rates usage
(`billing.rating.feature_price` for money, `billing.rating.credit_cost` for credits):
usage of a feature the plan neither prices nor gives a credit cost is dead-lettered
`unknown_feature`, so the check denies it up front instead of answering "allowed" for
usage that will never be billed. `refusal` names why a customer whose snapshot says
`allowed: false` is denied, from the fields `billing.ledger.snapshot` derived it from.
"""

from __future__ import annotations

from decimal import Decimal

from billing.catalog import Plan

FEATURE_NOT_IN_PLAN = "feature_not_in_plan"
NO_SUBSCRIPTION = "no_subscription"
SUBSCRIPTION_ENDED = "subscription_ended"
CREDITS_EXHAUSTED = "credits_exhausted"
BALANCE_EXHAUSTED = "balance_exhausted"
SPEND_CAP_REACHED = "spend_cap_reached"


def feature_billed(plan: Plan, feature_id: str) -> bool:
    """Whether usage of `feature_id` on `plan` is rated (not `unknown_feature`)."""
    if plan.model == "credits":
        return feature_id in plan.credit_costs
    return feature_id in plan.prices


def refusal(
    *,
    allowed: bool,
    status: str | None,
    model: str | None,
    credits: Decimal | None,
    balance: Decimal | None,
    plan: Plan | None,
    feature_id: str,
) -> str | None:
    """The reason the customer may not use `feature_id` now, or None (allowed). `plan`
    is the version the customer is on, or None when the caller's catalog lacks it
    (then only the snapshot's own answer counts)."""
    if status in (None, "none"):
        return NO_SUBSCRIPTION
    if not allowed:
        if status == "cancelled":
            return SUBSCRIPTION_ENDED
        if model == "credits" and credits is not None and credits <= 0:
            return CREDITS_EXHAUSTED
        if model == "balance" and balance is not None and balance <= 0:
            return BALANCE_EXHAUSTED
        if model == "metered":
            return SPEND_CAP_REACHED
        return SUBSCRIPTION_ENDED
    if plan is not None and not feature_billed(plan, feature_id):
        return FEATURE_NOT_IN_PLAN
    return None
