"""The credit cost rule (`billing.rating.credit_cost`) over generated catalogs and
events, and the credits fold charging exactly what it says."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.catalog import parse_catalog
from billing.events import CreditsGranted, RejectReason, SubscriptionStarted, UsageRecorded
from billing.ledger import apply, new_state
from billing.rating import Unrateable, credit_cost
from tests.unit.billing.conftest import t

START = t(2026, 1, 1)
VALUES = ("a", "b", "ü", "")
costs_ = st.decimals(0, 10**6, places=3, allow_nan=False, allow_infinity=False)


@st.composite
def credit_specs(draw: st.DrawFn) -> Any:
    """A catalog's `credit_costs` entry: a flat cost, or by property with an optional default."""
    if draw(st.booleans()):
        return str(draw(costs_))
    spec: dict[str, Any] = {"property": "kind"}
    spec["costs"] = {
        k: str(draw(costs_)) for k in draw(st.lists(st.sampled_from(VALUES), unique=True))
    }
    if draw(st.booleans()) or not spec["costs"]:
        spec["default"] = str(draw(costs_))
    return spec


def expected(spec: Any, props: dict[str, str], q: D) -> D | None:
    """The rule as the catalog documents it; None: refused as invalid_field."""
    if isinstance(spec, str):
        return D(spec) * q
    value = props.get(spec["property"])
    if value is not None and value in spec["costs"]:
        return D(spec["costs"][value]) * q
    return None if spec.get("default") is None else D(spec["default"]) * q


@settings(max_examples=80, deadline=None)
@given(
    spec=credit_specs(),
    props=st.dictionaries(st.sampled_from(("kind", "other")), st.sampled_from(VALUES), max_size=2),
    q=st.decimals(0, 10**6, places=4, allow_nan=False, allow_infinity=False),
    feature=st.sampled_from(["f", "g"]),
)
def test_credit_cost_and_the_credits_fold_follow_the_rule(
    spec: Any, props: dict[str, str], q: D, feature: str
) -> None:
    catalog = parse_catalog(
        {
            "features": [{"id": "f", "unit": "u"}, {"id": "g", "unit": "u"}],
            "plans": [
                {
                    "id": "p",
                    "version": 1,
                    "model": "credits",
                    "currency": "USD",
                    "credit_costs": {"f": spec},
                }
            ],
        }
    )
    plan = catalog.plans["p"]
    event = UsageRecorded("u", "c", feature, q, START, props)
    want = expected(spec, props, q) if feature == "f" else None
    reason = RejectReason.INVALID_FIELD if feature == "f" else RejectReason.UNKNOWN_FEATURE
    try:
        got: D | None = credit_cost(plan, event, q)
    except Unrateable as e:
        assert e.reason == reason
        got = None
    assert got == want
    state = new_state("c")
    for setup in (
        SubscriptionStarted("s", "c", START, "p"),
        CreditsGranted("g", "c", START, D(10**9), None),
    ):
        state, _ = apply(state, setup, catalog)
    after, effects = apply(state, event, catalog)
    if want is None:
        assert effects.rejection is not None and effects.rejection.reason == reason
    else:
        assert effects.rejection is None
        assert state.credits_remaining(START) - after.credits_remaining(START) == want
