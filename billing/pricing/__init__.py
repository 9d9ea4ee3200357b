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


# Finite quantity -> its text. The quantities printed are a catalog's allowances,
# block sizes and tier bounds, printed again for every invoice preview.
_QTY_TEXTS: dict[Decimal, str] = {}


def fmt_qty(q: Decimal) -> str:
    """A quantity for descriptions: 1,000 or 2.5 (no exponent, thousands separators).
    A function of the value alone (1.50 and 1.5 both print 1.5), so memoized by it."""
    if not q.is_finite():
        return _fmt_qty(q)
    text = _QTY_TEXTS.get(q)
    if text is None:
        if len(_QTY_TEXTS) >= 4096:
            _QTY_TEXTS.clear()
        text = _QTY_TEXTS[q] = _fmt_qty(q)
    return text


def _fmt_qty(q: Decimal) -> str:
    if q == q.to_integral_value():
        return f"{int(q):,}"
    return f"{q.normalize():,f}"
