"""Tier lists shared by graduated and volume pricing, and their validation.

A tier covers the quantities in (from, up_to]; the first starts at 0, each next one
starts where the previous ended, and only the last is unbounded (`up_to=None`).
`tier_problems` names gaps, overlaps and misplaced unbounded tiers so the catalog
can report them all at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Tier:
    """Units in (start, up_to] cost `unit_price` per block; `up_to=None` is unbounded."""

    start: Decimal
    up_to: Decimal | None
    unit_price: Decimal


def tier_problems(bounds: Sequence[tuple[Decimal | None, Decimal | None]]) -> list[str]:
    """Problems in a list of (from, up_to) bounds; `from=None` means "where the
    previous tier ended". Empty when the tiers tile [0, infinity) exactly."""
    problems: list[str] = []
    if not bounds:
        return ["no tiers"]
    expected: Decimal | None = ZERO
    for i, (start, up_to) in enumerate(bounds):
        if start is not None and expected is not None:
            if start > expected:
                problems.append(f"tier {i + 1}: gap between {expected} and {start}")
            elif start < expected:
                problems.append(f"tier {i + 1}: overlaps the previous tier (from {start})")
        begin = start if start is not None else expected
        if up_to is None:
            if i != len(bounds) - 1:
                problems.append(f"tier {i + 1}: only the last tier may be unbounded")
            expected = None
            continue
        if begin is not None and up_to <= begin:
            problems.append(f"tier {i + 1}: up_to {up_to} must exceed its start {begin}")
        expected = up_to
    if bounds[-1][1] is not None:
        problems.append("the last tier must be unbounded (up_to: null)")
    return problems


def build_tiers(bounds: Sequence[tuple[Decimal | None, Decimal]]) -> tuple[Tier, ...]:
    """Tiers from validated (up_to, unit_price) pairs."""
    out: list[Tier] = []
    start = ZERO
    for up_to, price in bounds:
        out.append(Tier(start, up_to, price))
        if up_to is not None:
            start = up_to
    return tuple(out)
