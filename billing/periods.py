"""Monthly billing periods anchored at the subscription start, in UTC.

Period k of a subscription anchored at `anchor` starts at `anchor` plus k calendar
months, keeping the anchor's time of day. When the anchor's day does not exist in
a month (the 31st in a 30-day month, the 29th-31st in February) the period starts
on that month's last day instead; the following month returns to the anchor day.
So an anchor of Jan 31 gives Jan 31, Feb 28 (29), Mar 31, Apr 30, May 31, ...

Periods are half-open: [start, end). Every datetime must be timezone-aware; the
arithmetic is done in UTC.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from functools import lru_cache


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError(f"naive datetime {t!r}: billing needs timezone-aware UTC times")
    return t.astimezone(UTC)


@lru_cache(maxsize=65_536)  # pure; every event asks for its period's two bounds
def add_months(anchor: datetime, months: int) -> datetime:
    """`anchor` moved by `months` calendar months, the day clamped to the month end."""
    a = _utc(anchor)
    index = a.year * 12 + (a.month - 1) + months
    year, month0 = divmod(index, 12)
    month = month0 + 1
    day = min(a.day, calendar.monthrange(year, month)[1])
    return a.replace(year=year, month=month, day=day)


def period_index(anchor: datetime, t: datetime) -> int:
    """The k such that `t` lies in period k (negative before the anchor)."""
    a, u = _utc(anchor), _utc(t)
    k = (u.year - a.year) * 12 + (u.month - a.month)
    # The estimate is off by at most one in either direction.
    if add_months(a, k) > u:
        k -= 1
    elif add_months(a, k + 1) <= u:
        k += 1
    return k


# anchor -> the last two periods `period_of` returned for it: for each changed
# customer in each batch the worker asks about the current period and about the
# one its lateness limit reaches back into. Periods partition the time line, so a
# remembered period that contains `t` is the answer. Consulted for a UTC `t` only:
# a naive `t` must still be refused by `_utc`. UTC anchors only: equal instants in
# other zones would share an entry, and the bounds carry the anchor's zone.
_RECENT: dict[datetime, tuple[tuple[datetime, datetime], ...]] = {}


def period_of(anchor: datetime, t: datetime) -> tuple[datetime, datetime]:
    """The period [start, end) that contains `t`."""
    if anchor.tzinfo is not UTC:  # not memoized (see `_RECENT`)
        return _period_of(anchor, t)
    recent = _RECENT.get(anchor, ())
    if t.tzinfo is UTC:
        for period in recent:
            if period[0] <= t < period[1]:
                return period
    period = _period_of(anchor, t)
    if len(_RECENT) >= 65_536:
        _RECENT.clear()
    _RECENT[anchor] = (period, *recent[:1])
    return period


def _period_of(anchor: datetime, t: datetime) -> tuple[datetime, datetime]:
    k = period_index(anchor, t)
    return add_months(anchor, k), add_months(anchor, k + 1)


def period_after(anchor: datetime, start: datetime) -> tuple[datetime, datetime]:
    """The period that follows the one starting at `start`."""
    k = period_index(anchor, start) + 1
    return add_months(anchor, k), add_months(anchor, k + 1)


def periods_between(
    anchor: datetime, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """Every period that overlaps [start, end), in order."""
    if end <= start:
        return []
    k = max(period_index(anchor, start), 0)
    out: list[tuple[datetime, datetime]] = []
    while True:
        s, e = add_months(anchor, k), add_months(anchor, k + 1)
        if s >= end:
            return out
        if e > start:
            out.append((s, e))
        k += 1
