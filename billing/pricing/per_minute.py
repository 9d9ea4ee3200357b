"""Per minute (or any compute unit): quantity reported in seconds, priced per minute.

Pro rata per second by default (90 s at USD 0.006/min costs USD 0.009); with
`per_started_minute` every started minute is billed in full. A thin, named case of
`PerUnit` with a block of 60 seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billing.bounds import quotient
from billing.pricing import LineItem
from billing.pricing.per_unit import PerUnit

SIXTY = Decimal(60)


@dataclass(frozen=True, slots=True)
class PerMinute:
    price_per_minute: Decimal
    per_started_minute: bool = False

    def amount(self, quantity: Decimal) -> Decimal:
        return PerUnit(self.price_per_minute, SIXTY, self.per_started_minute).amount(quantity)

    def line_items(self, quantity: Decimal, label: str) -> list[LineItem]:
        if self.per_started_minute:
            minutes = PerUnit(self.price_per_minute, SIXTY, True).blocks(quantity)
            desc = f"{label}, started minutes at {self.price_per_minute} per minute"
            return [LineItem(desc, minutes, self.price_per_minute, self.amount(quantity))]
        desc = f"{label} in seconds at {self.price_per_minute} per minute"
        return [
            LineItem(desc, quantity, quotient(self.price_per_minute, SIXTY), self.amount(quantity))
        ]
