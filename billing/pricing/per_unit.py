"""Per unit: `unit_price` per block of `block_size` units ("USD 0.03 per 1,000 tokens").

`per_started_block=False` (pro rata): the price of `q` units is q x price / block.
`per_started_block=True`: every started block costs the full block price, so 1,001
tokens at "per 1,000" cost two blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from billing.bounds import quotient
from billing.pricing import LineItem, fmt_qty

ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class PerUnit:
    unit_price: Decimal
    block_size: Decimal = ONE
    per_started_block: bool = False

    def blocks(self, quantity: Decimal) -> Decimal:
        """Billable blocks: exact fraction (pro rata) or started blocks (ceiling)."""
        if self.per_started_block:
            return (quantity / self.block_size).to_integral_value(rounding=ROUND_CEILING)
        return quotient(quantity, self.block_size)

    def amount(self, quantity: Decimal) -> Decimal:
        if self.per_started_block:
            return self.blocks(quantity) * self.unit_price
        # Multiply first, divide once: exact whenever the block is a power of ten.
        return quotient(quantity * self.unit_price, self.block_size)

    def line_items(self, quantity: Decimal, label: str) -> list[LineItem]:
        if self.block_size == ONE:
            return [LineItem(label, quantity, self.unit_price, self.amount(quantity))]
        per = f"{self.unit_price} per {fmt_qty(self.block_size)}"
        if self.per_started_block:
            blocks = self.blocks(quantity)
            desc = f"{label}, started blocks at {per}"
            return [LineItem(desc, blocks, self.unit_price, self.amount(quantity))]
        return [
            LineItem(
                f"{label} at {per}",
                quantity,
                quotient(self.unit_price, self.block_size),
                self.amount(quantity),
            )
        ]
