"""Included allowance: the first `included` units of a period are free; the rest is
priced by the feature's strategy as if counting started after the allowance.

So "100,000 tokens included, then USD 0.02 per 1,000" bills 250,000 tokens as
100,000 free plus 150,000 at the overage rate (USD 3.00).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billing.pricing import LineItem, QuantityPricing, fmt_qty

ZERO = Decimal(0)


def split(quantity: Decimal, included: Decimal) -> tuple[Decimal, Decimal]:
    """(free, billable) parts of a period's quantity."""
    free = min(quantity, included)
    return free, quantity - free


@dataclass(frozen=True, slots=True)
class WithAllowance:
    """`inner` priced on the quantity beyond `included`."""

    included: Decimal
    inner: QuantityPricing

    def amount(self, quantity: Decimal) -> Decimal:
        if quantity <= self.included:
            return ZERO
        return self.inner.amount(quantity - self.included)

    def line_items(self, quantity: Decimal, label: str) -> list[LineItem]:
        free, billable = split(quantity, self.included)
        items = [
            LineItem(
                f"{label} included (allowance {fmt_qty(self.included)})",
                free,
                ZERO,
                ZERO,
            )
        ]
        if billable > 0:
            items += self.inner.line_items(billable, f"{label} overage")
        return items
