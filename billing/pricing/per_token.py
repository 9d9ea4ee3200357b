"""Per token, with separate input and output rates chosen by an event property
(typically `model`): "small: USD 0.50 per million input, 1.50 per million output".

Usage is kept per (property value) as input and output token counts, so the
invoice shows one line per model and direction. An included allowance counts total
tokens; when a period exceeds it, every bucket is billed for the same billable
fraction `(total - included) / total`, which makes the amount independent of the
order the events came in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, Inexact, localcontext
from operator import mul

from billing.bounds import QUOTIENT, fraction, quotient
from billing.pricing import LineItem, fmt_qty

ZERO = Decimal(0)
MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class TokenRate:
    """Prices per `per` input and output tokens. `per_token` holds the exact price
    of one input and one output token when dividing by `per` is exact (any power
    of ten), letting the hot path multiply instead of divide; None otherwise."""

    input: Decimal
    output: Decimal
    per_token: tuple[Decimal, Decimal] | None = None


def token_rate(input_price: Decimal, output_price: Decimal, per: Decimal) -> TokenRate:
    """A `TokenRate` with its exact per-token prices precomputed when they exist."""
    with localcontext() as ctx:
        ctx.clear_flags()
        unit = (input_price / per, output_price / per)
        exact = not ctx.flags[Inexact]
    return TokenRate(input_price, output_price, unit if exact else None)


@dataclass(frozen=True, slots=True)
class PerToken:
    property: str
    rates: Mapping[str, TokenRate]
    per: Decimal = MILLION

    def cost(self, rate: TokenRate, input_tokens: Decimal, output_tokens: Decimal) -> Decimal:
        """Exact price of one event's tokens at `rate` (no allowance)."""
        unit = rate.per_token
        if unit is not None:
            return input_tokens * unit[0] + output_tokens * unit[1]
        return quotient(input_tokens * rate.input + output_tokens * rate.output, self.per)

    def amount(self, buckets: Mapping[str, tuple[Decimal, Decimal]], included: Decimal) -> Decimal:
        """Price of a period's (input, output) tokens per property value."""
        return sum((i.amount for i in self.line_items(buckets, included, "")), ZERO)

    def line_items(
        self, buckets: Mapping[str, tuple[Decimal, Decimal]], included: Decimal, label: str
    ) -> list[LineItem]:
        total = sum((i + o for i, o in buckets.values()), ZERO)
        items: list[LineItem] = []
        factor, exact = Decimal(1), True
        if included > 0:
            free = min(total, included)
            items.append(
                LineItem(f"{label} included (allowance {fmt_qty(included)})", free, ZERO, ZERO)
            )
            if total <= included:
                return items
            factor, exact = fraction(total - included, total)
        # An inexact billable fraction keeps the products at its precision.
        times: Callable[[Decimal, Decimal], Decimal] = mul if exact else QUOTIENT.multiply
        for key in sorted(buckets):
            rate = self.rates[key]
            for direction, count, price in (
                ("input", buckets[key][0], rate.input),
                ("output", buckets[key][1], rate.output),
            ):
                if count == 0:
                    continue
                billable = times(count, factor)
                items.append(
                    LineItem(
                        f"{label} {self.property}={key} {direction}"
                        f" at {price} per {fmt_qty(self.per)}",
                        billable,
                        quotient(price, self.per),
                        quotient(times(billable, price), self.per),
                    )
                )
        return items
