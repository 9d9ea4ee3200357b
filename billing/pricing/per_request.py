"""Per request: a flat price per event, whatever its quantity.

The ledger counts events (not units) for a feature priced this way, so the
"quantity" this strategy receives is the number of requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billing.pricing import LineItem


@dataclass(frozen=True, slots=True)
class PerRequest:
    price: Decimal

    def amount(self, quantity: Decimal) -> Decimal:
        return quantity * self.price

    def line_items(self, quantity: Decimal, label: str) -> list[LineItem]:
        return [LineItem(f"{label} requests", quantity, self.price, self.amount(quantity))]
