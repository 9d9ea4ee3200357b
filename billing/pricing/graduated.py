"""Graduated tiers: each unit is priced by the tier it falls in.

1,500 units with tiers (0, 1,000] at 1 and (1,000, inf) at 0.5 cost
1,000 x 1 + 500 x 0.5. The amount never decreases as the quantity grows (tested as a
property), which also makes real-time incremental deduction safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billing.bounds import quotient
from billing.pricing import LineItem, fmt_qty
from billing.pricing.tiers import ZERO, Tier

ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class Graduated:
    tiers: tuple[Tier, ...]
    block_size: Decimal = ONE

    def _portions(self, quantity: Decimal) -> list[tuple[Tier, Decimal]]:
        out: list[tuple[Tier, Decimal]] = []
        for tier in self.tiers:
            if quantity <= tier.start:
                break
            top = quantity if tier.up_to is None else min(quantity, tier.up_to)
            out.append((tier, top - tier.start))
        return out

    def amount(self, quantity: Decimal) -> Decimal:
        total = ZERO
        for tier, units in self._portions(quantity):
            total += units * tier.unit_price
        return quotient(total, self.block_size)

    def line_items(self, quantity: Decimal, label: str) -> list[LineItem]:
        per = "" if self.block_size == ONE else f" per {fmt_qty(self.block_size)}"
        items: list[LineItem] = []
        for tier, units in self._portions(quantity):
            span = (
                f"above {fmt_qty(tier.start)}"
                if tier.up_to is None
                else f"{fmt_qty(tier.start)}-{fmt_qty(tier.up_to)}"
            )
            items.append(
                LineItem(
                    f"{label}, tier {span} at {tier.unit_price}{per}",
                    units,
                    quotient(tier.unit_price, self.block_size),
                    quotient(units * tier.unit_price, self.block_size),
                )
            )
        return items
