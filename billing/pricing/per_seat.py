"""Per seat per period, prorated to the second when the seat count changes.

The charge for a period is `fee x sum(seats_i x seconds_i) / period_seconds` over
the segments of constant seat count; one invoice line per segment so the customer
sees when the count changed. A non-terminating share of the period is rounded to
`billing.bounds.QUOTIENT_DIGITS` digits, and so is its product with the fee.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from billing.bounds import QUOTIENT, fraction
from billing.pricing import LineItem

ZERO = Decimal(0)


def seat_segments(
    timeline: Sequence[tuple[datetime, int]], start: datetime, end: datetime
) -> list[tuple[datetime, datetime, int]]:
    """(from, to, seats) segments covering [start, end). `timeline` is sorted
    (time, seats from then on); before its first entry there are no seats."""
    segments: list[tuple[datetime, datetime, int]] = []
    seats = 0
    cursor = start
    for at, count in timeline:
        if at <= start:
            seats = count
            continue
        if at >= end:
            break
        if at > cursor:
            segments.append((cursor, at, seats))
            cursor = at
        seats = count
    segments.append((cursor, end, seats))
    return [s for s in segments if s[2] > 0 and s[1] > s[0]]


def seat_line_items(
    fee: Decimal, timeline: Sequence[tuple[datetime, int]], start: datetime, end: datetime
) -> list[LineItem]:
    """Prorated seat lines; quantity is seat-periods (3 seats all period = 3)."""
    if fee == 0:
        return []
    period_seconds = Decimal(int((end - start).total_seconds()))
    segments = seat_segments(timeline, start, end)
    items: list[LineItem] = []
    for s, e, seats in segments:
        seconds = Decimal(int((e - s).total_seconds()))
        whole = s == start and e == end
        quantity, exact = (
            (Decimal(seats), True) if whole else fraction(Decimal(seats) * seconds, period_seconds)
        )
        amount = quantity * fee if exact else QUOTIENT.multiply(quantity, fee)
        span = "" if whole else f" from {s.isoformat()} to {e.isoformat()}"
        items.append(LineItem(f"{seats} seat(s){span}", quantity, fee, amount))
    return items
