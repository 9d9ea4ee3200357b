"""Rating: what one usage event counts and costs under a plan.

Pure functions on plain values, used by the ledger fold. Problems with the event
raise `Unrateable` (reason code + detail), which the fold turns into a rejection
value; nothing here touches the state.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from billing.bounds import LIMIT, problem
from billing.catalog import FeaturePrice, Plan
from billing.events import RejectReason, UsageRecorded
from billing.pricing.per_token import PerToken, TokenRate

ZERO = Decimal(0)
ONE = Decimal(1)


class Unrateable(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def check_quantity(event: UsageRecorded) -> Decimal:
    q = event.quantity
    if not isinstance(q, Decimal) or not q.is_finite():
        raise Unrateable(RejectReason.INVALID_FIELD, f"quantity {q!r} is not a finite decimal")
    if q < ZERO:
        raise Unrateable(RejectReason.NEGATIVE_QUANTITY, f"quantity {q} is negative")
    out_of_range("quantity", q)
    return q


def out_of_range(field: str, value: Decimal) -> None:
    """`Unrateable(out_of_range)` naming `field` when `value` is beyond the bounds of
    `billing.bounds` (refused by every door; a value that still reaches the core
    must not break its arithmetic)."""
    found = problem(value)
    if found is not None:
        raise Unrateable(RejectReason.OUT_OF_RANGE, f"{field}: {found}")


def _in_range(name: str, count: Decimal) -> Decimal:
    """A finite token count beyond the bounds is `out_of_range` (before any
    arithmetic on it); NaN and infinities stay `token_breakdown`."""
    if count.is_finite() and not -LIMIT < count < LIMIT:
        out_of_range(f"properties[{name!r}]", count)
    return count


def feature_price(plan: Plan, feature_id: str) -> FeaturePrice:
    price = plan.prices.get(feature_id)
    if price is None:
        raise Unrateable(
            RejectReason.UNKNOWN_FEATURE,
            f"feature {feature_id!r} is not priced on plan {plan.id!r}",
        )
    return price


def counted(price: FeaturePrice, quantity: Decimal) -> Decimal:
    """The quantity a period accumulates: the event count for per-request pricing."""
    return ONE if price.counts_requests else quantity


def _token_count(properties: Mapping[str, str], name: str) -> Decimal:
    raw = properties.get(name)
    if raw is None:
        raise Unrateable(RejectReason.TOKEN_BREAKDOWN, f"property {name!r} is missing")
    try:
        return _in_range(name, Decimal(raw))
    except (InvalidOperation, TypeError, ValueError):
        raise Unrateable(RejectReason.TOKEN_BREAKDOWN, f"{name}={raw!r} is not a number") from None


def token_breakdown(
    tokens: PerToken, event: UsageRecorded, quantity: Decimal
) -> tuple[str, TokenRate, Decimal, Decimal]:
    """(property value, its rate, input tokens, output tokens) of a token event.

    The event must carry `input_tokens` and `output_tokens`, both >= 0 and summing
    to its quantity (`token_breakdown` otherwise), and a known value of the pricing
    property such as `model` (`invalid_field` otherwise)."""
    props = event.properties
    try:  # the hot path: both present and numeric
        i = _in_range("input_tokens", Decimal(props["input_tokens"]))
        o = _in_range("output_tokens", Decimal(props["output_tokens"]))
    except (KeyError, InvalidOperation, TypeError, ValueError):
        i = _token_count(props, "input_tokens")
        o = _token_count(props, "output_tokens")
    # NaN or infinite counts never sum to a finite quantity, so this test comes first.
    if i + o != quantity or i < ZERO or o < ZERO:
        raise Unrateable(
            RejectReason.TOKEN_BREAKDOWN,
            f"input_tokens {i} + output_tokens {o} must be >= 0 and sum to quantity {quantity}",
        )
    key = props.get(tokens.property)
    rate = tokens.rates.get(key) if key is not None else None
    if key is None or rate is None:
        raise Unrateable(
            RejectReason.INVALID_FIELD,
            f"property {tokens.property}={key!r} has no token rate "
            f"(known: {', '.join(sorted(tokens.rates))})",
        )
    return key, rate, i, o


def credit_cost(plan: Plan, event: UsageRecorded, quantity: Decimal) -> Decimal:
    """Credits one event costs: the feature's per-unit cost times the quantity.

    The one definition of the rule (the credits fold calls it for every event). The
    per-unit cost is the one for the event's value of the cost's `property`, when it
    has one listed in `costs`; otherwise the `default`. A feature without a credit
    cost is `unknown_feature`; no listed value and no default is `invalid_field`."""
    cost = plan.credit_costs.get(event.feature_id)
    if cost is None:
        raise Unrateable(
            RejectReason.UNKNOWN_FEATURE,
            f"feature {event.feature_id!r} has no credit cost on plan {plan.id!r}",
        )
    prop = cost.property
    per_unit = None
    if prop is not None:
        value = event.properties.get(prop)
        if value is not None:
            per_unit = cost.costs.get(value)
    if per_unit is None:
        per_unit = cost.default
        if per_unit is None:
            raise Unrateable(
                RejectReason.INVALID_FIELD,
                f"property {prop}={event.properties.get(prop or '')!r} has no credit cost "
                f"(known: {', '.join(sorted(cost.costs))})",
            )
    return per_unit * quantity


TokenUsage = Mapping[tuple[str, str], tuple[Decimal, Decimal]]


def feature_tokens(tokens: TokenUsage, feature_id: str) -> dict[str, tuple[Decimal, Decimal]]:
    """A period's (input, output) counts of one feature, by property value."""
    return {key: io for (fid, key), io in tokens.items() if fid == feature_id}


def usage_amount(price: FeaturePrice, usage: Decimal, tokens: TokenUsage) -> Decimal:
    """Exact money price of a period's cumulative usage of one feature."""
    if price.tokens is not None:
        return price.tokens.amount(feature_tokens(tokens, price.feature_id), price.included)
    assert price.pricing is not None  # exactly one of the two is set by construction
    return price.pricing.amount(usage)
