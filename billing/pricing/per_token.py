"""Per token, with separate input and output rates chosen by an event property
(typically `model`): "small: USD 0.50 per million input, 1.50 per million output".

Usage is kept per (property value) as input and output token counts, so the
invoice shows one line per model and direction. An included allowance counts total
tokens; when a period exceeds it, every bucket is billed for the same billable
fraction `(total - included) / total`, which makes the amount independent of the
order the events came in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from billing.pricing import LineItem, fmt_qty

ZERO = Decimal(0)
MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class TokenRate:
    """Prices per `per` input and output tokens."""

    input: Decimal
    output: Decimal


@dataclass(frozen=True, slots=True)
class PerToken:
    property: str
    rates: Mapping[str, TokenRate]
    per: Decimal = MILLION

    def cost(self, rate: TokenRate, input_tokens: Decimal, output_tokens: Decimal) -> Decimal:
        """Exact price of one event's tokens at `rate` (no allowance)."""
        return (input_tokens * rate.input + output_tokens * rate.output) / self.per

    def amount(self, buckets: Mapping[str, tuple[Decimal, Decimal]], included: Decimal) -> Decimal:
        """Price of a period's (input, output) tokens per property value."""
        return sum((i.amount for i in self.line_items(buckets, included, "")), ZERO)

    def line_items(
        self, buckets: Mapping[str, tuple[Decimal, Decimal]], included: Decimal, label: str
    ) -> list[LineItem]:
        total = sum((i + o for i, o in buckets.values()), ZERO)
        items: list[LineItem] = []
        factor = Decimal(1)
        if included > 0:
            free = min(total, included)
            items.append(
                LineItem(f"{label} included (allowance {fmt_qty(included)})", free, ZERO, ZERO)
            )
            if total <= included:
                return items
            factor = (total - included) / total
        for key in sorted(buckets):
            rate = self.rates[key]
            for direction, count, price in (
                ("input", buckets[key][0], rate.input),
                ("output", buckets[key][1], rate.output),
            ):
                if count == 0:
                    continue
                billable = count * factor
                items.append(
                    LineItem(
                        f"{label} {self.property}={key} {direction}"
                        f" at {price} per {fmt_qty(self.per)}",
                        billable,
                        price / self.per,
                        billable * price / self.per,
                    )
                )
        return items
