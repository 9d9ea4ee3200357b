"""Volume tiers: the tier the whole quantity reaches sets the rate for every unit.

1,500 units with tiers (0, 1,000] at 1 and (1,000, inf) at 0.5 cost 1,500 x 0.5.
Unlike graduated pricing the amount can drop when a tier boundary is crossed, so
volume pricing is only allowed on plans invoiced in arrears (metered).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billing.bounds import quotient
from billing.pricing import LineItem, fmt_qty
from billing.pricing.tiers import ZERO, Tier

ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class Volume:
    tiers: tuple[Tier, ...]
    block_size: Decimal = ONE

    def tier_for(self, quantity: Decimal) -> Tier:
        for tier in self.tiers:
            if tier.up_to is None or quantity <= tier.up_to:
                return tier
        return self.tiers[-1]  # unreachable for validated tiers (last is unbounded)

    def amount(self, quantity: Decimal) -> Decimal:
        if quantity <= ZERO:
            return ZERO
        return quotient(quantity * self.tier_for(quantity).unit_price, self.block_size)

    def line_items(self, quantity: Decimal, label: str) -> list[LineItem]:
        tier = self.tier_for(quantity)
        per = "" if self.block_size == ONE else f" per {fmt_qty(self.block_size)}"
        return [
            LineItem(
                f"{label}, volume rate {tier.unit_price}{per}",
                quantity,
                quotient(tier.unit_price, self.block_size),
                self.amount(quantity),
            )
        ]
