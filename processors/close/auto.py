"""`streambill close --auto`: close, in order, every month that is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from processors.close.plan import ClosePlanError, Month
from processors.close.run import (
    CloseDeps,
    CloseError,
    CloseOptions,
    CloseReport,
    close_period,
    read_history,
)


def first_month(deps: CloseDeps) -> Month | None:
    """The first month `--auto` closes when nothing was closed yet: the month after
    the earliest account event (no period can end before it)."""
    low, high = deps.log.watermarks(deps.topics.account)
    ends = {p: min(low[p] + 1, high[p]) for p in low}
    earliest: int | None = None
    for batch in deps.log.read(deps.topics.account, low, ends):
        for r in batch:
            earliest = r.timestamp_ms if earliest is None else min(earliest, r.timestamp_ms)
    if earliest is None:
        return None
    return Month.of(datetime.fromtimestamp(earliest / 1000, tz=UTC)).shift(1)


def close_due(deps: CloseDeps, grace: timedelta, lookback: int = 1) -> list[CloseReport]:
    """`--auto`: close, in order, every month whose end + grace has passed and that
    is not closed yet. Returns the reports (empty when nothing is due)."""
    reports: list[CloseReport] = []
    while True:
        history = read_history(deps.log, deps.topics.closes, deps.codec)
        month = history.next_to_close(first_month(deps))
        if month is None or month.end + grace > deps.clock():
            return reports
        try:
            reports.append(close_period(deps, CloseOptions(month, grace, lookback=lookback)))
        except ClosePlanError as exc:
            raise CloseError(f"auto close of {month}: {exc}") from exc
