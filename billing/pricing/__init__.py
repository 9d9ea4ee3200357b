"""Pricing strategies: each turns a period's cumulative quantity of one feature into
an exact amount (full precision, never rounded here) and into invoice line items.

One small module per strategy. Quantity-based strategies share the
`QuantityPricing` protocol: `amount(q)` is the price of a period's whole quantity
`q`, so the price of one more event is `amount(q + dq) - amount(q)` whatever the
strategy; that is how a balance plan deducts tiered prices in real time and stays
independent of event order. Token pricing (input/output by model) and seats need
more than one number and have their own functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True, slots=True)
class LineItem:
    """An unrounded invoice line: `amount == quantity * unit_price` when the strategy
    is linear on the line; `amount` is what gets rounded once on the invoice."""

    description: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal


class QuantityPricing(Protocol):
    """A price for a period's cumulative quantity of one feature."""

    def amount(self, quantity: Decimal) -> Decimal:
        """Exact price of `quantity` units (0 for 0 units; never decreasing)."""
        ...

    def line_items(self, quantity: Decimal, label: str) -> list[LineItem]:
        """Invoice line items for `quantity` units; amounts sum to `amount(quantity)`."""
        ...


def fmt_qty(q: Decimal) -> str:
    """A quantity for descriptions: 1,000 or 2.5 (no exponent, thousands separators)."""
    if q == q.to_integral_value():
        return f"{int(q):,}"
    return f"{q.normalize():,f}"
