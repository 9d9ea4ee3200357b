"""Pure planning of a period close: which period, which offsets, what was closed before.

Nothing here talks to Kafka; the job (`processors.close.run`) feeds it watermarks and
the records of the period-closes topic and gets back a `ReadPlan`.

Glossary
- period `YYYY-MM`: every customer billing period whose END falls in that calendar
  month (UTC), counted (first instant of M, first instant of M+1]: a period ending at
  midnight on the 1st belongs to the month it covers (1 Sep -> 1 Oct is `YYYY-09`).
  Periods are monthly and anchored at the subscription start, so a
  period ending in month M starts in month M-1 (never earlier: a start in M-2
  plus one calendar month, clamped, ends in M-1 at the latest).
- watermark: for each topic and partition, the next offset (exclusive end) a close
  read up to. Recorded by PeriodClosed.
- plan record: a PeriodClosePlanned under key `YYYY-MM/plan` (earlier: a PeriodClosed
  with no invoices), written before the first
  invoice of a close. It fixes the watermarks of that close for ever, so a close
  that crashed and is run again reads exactly the same events (see `processors.close.run`).
- lookback: how many already-closed months still receive adjustments for late usage.
  At least `lateness_lookback(M, max_lateness)`: every month in which a period can
  end that the worker still accepts usage for when this close runs (an active
  customer's watermark is past the start of M); `--lookback` only widens it. Late
  usage of an idle customer, older still, widens the fold (`processors.close.fold`).

Usage read rule (per partition p of usage-events), for closing month M:

    start[p] = min( offsets_for_times(T)[p],  W_prev[p] )   clamped to [low[p], W_now[p]]
    T        = first instant of month M-1-lookback   (first close: of month M-1)
    W_prev   = watermarks of the latest earlier close (first close: no term)

- `offsets_for_times(T)` is the first offset whose timestamp is >= T (producers set
  the message timestamp to the event time). Every usage event whose event time lies
  in a period that ends in M (starts >= first of M-1) or in a period adjustable by
  this close (ends in M-lookback..M-1, so starts >= first of M-1-lookback) is at or
  after that offset, however late it arrived.
- `W_prev` makes every event that arrived after the previous close part of this
  close, whatever its event time: nothing that arrived late is skipped. Closes thus
  cover the log contiguously: [start_1, W_1), [<= W_1, W_2), ...
- A late event of a period older than the lookback horizon (or of a period ending
  before the first close ever made) cannot be recomputed from this window; it is
  counted and reported (`beyond_horizon`), never billed silently.
- Customers on a credits or balance plan carry state across periods (credits left,
  wallet), so their usage is also read from the log start up to the window (by key,
  without decoding anybody else's records); see `processors.close.fold`.
Account events are read from the start of the log (low watermark) to W_now.

Resuming (`ReadPlan.resumes`): when the previous close wrote checkpoints, none of the
above reads below W_prev: each customer starts from its checkpoint (its state at
W_prev) and only [W_prev, W_now) of both inputs is folded, plus a dedupe pass over
the window behind each watermark; see `processors.close.checkpoints`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from billing.events import PeriodClosed

USAGE = "usage-events"
ACCOUNT = "account-events"
INVOICES = "invoices"
CHECKPOINTS = "close-checkpoints"
PLAN_SUFFIX = "/plan"

Offsets = dict[int, int]
Watermarks = dict[str, Offsets]


class ClosePlanError(Exception):
    """A close that must not run (period not over, out of order, data gone)."""


class PeriodNotClosable(ClosePlanError):
    """The period's month end plus grace has not passed yet."""


@dataclass(frozen=True, order=True, slots=True)
class Month:
    """A calendar month in UTC, the unit a close is named by (`YYYY-MM`)."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        m = re.fullmatch(r"(\d{4})-(\d{2})", text.strip())
        if not m or not 1 <= int(m.group(2)) <= 12:
            raise ClosePlanError(f"period must look like YYYY-MM (e.g. 2025-03), got {text!r}")
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def of(cls, t: datetime) -> Month:
        u = t.astimezone(UTC)
        return cls(u.year, u.month)

    def shift(self, months: int) -> Month:
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1)

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.shift(1).start

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


_DURATION = re.compile(r"(\d+)([wdhms])")
_UNIT = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `1h30m`, `2d`, `1w` -> timedelta. `0` is zero."""
    s = text.strip().lower()
    if s == "0":
        return timedelta(0)
    parts = _DURATION.findall(s)
    if not parts or "".join(n + u for n, u in parts) != s:
        raise ClosePlanError(f"duration must look like 90s, 15m, 1h30m or 2d, got {text!r}")
    return timedelta(seconds=sum(int(n) * _UNIT[u] for n, u in parts))


def check_closable(month: Month, grace: timedelta, now: datetime) -> None:
    """Raise `PeriodNotClosable` unless the month's end plus grace has passed at `now`."""
    due = month.end + grace
    if now < due:
        raise PeriodNotClosable(
            f"period {month} cannot be closed yet: its periods end by {month.end:%Y-%m-%d %H:%M}"
            f" UTC and the grace of {grace} for late usage runs until"
            f" {due:%Y-%m-%d %H:%M} UTC (now {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC);"
            " use --dry-run to preview the invoices"
        )


@dataclass(frozen=True, slots=True)
class CloseHistory:
    """What the period-closes topic says: completed closes and plan records by month."""

    closed: Mapping[Month, PeriodClosed] = field(default_factory=dict)
    planned: Mapping[Month, PeriodClosed] = field(default_factory=dict)

    @classmethod
    def from_records(cls, records: Iterable[tuple[str, PeriodClosed]]) -> CloseHistory:
        """Build from (key, value) in log order; a later record of a key wins (compaction)."""
        closed: dict[Month, PeriodClosed] = {}
        planned: dict[Month, PeriodClosed] = {}
        for key, record in records:
            if key.endswith(PLAN_SUFFIX):
                planned[Month.parse(key[: -len(PLAN_SUFFIX)])] = record
            else:
                closed[Month.parse(key)] = record
        return cls(closed, planned)

    @property
    def first_closed(self) -> Month | None:
        return min(self.closed) if self.closed else None

    @property
    def last_closed(self) -> Month | None:
        return max(self.closed) if self.closed else None

    def previous(self, month: Month) -> PeriodClosed | None:
        """The latest completed close before `month` (its watermarks start our window)."""
        earlier = [m for m in self.closed if m < month]
        return self.closed[max(earlier)] if earlier else None

    def check_order(self, month: Month) -> None:
        """Closes run in month order without gaps after the first one; re-running a
        recorded month is allowed (it verifies and reports a no-op)."""
        if month in self.closed:
            return
        last = self.last_closed
        if last is None:
            return
        if month < last:
            raise ClosePlanError(
                f"period {month} is before the last closed period {last} and was never"
                " closed; periods close in order (it would miss events already"
                " attributed to later closes)"
            )
        if month != last.shift(1):
            raise ClosePlanError(
                f"period {month} cannot be closed before {last.shift(1)}: the last closed"
                f" period is {last} and periods close in order without gaps"
            )

    def next_to_close(self, first_candidate: Month | None) -> Month | None:
        """The month `--auto` should close next."""
        last = self.last_closed
        if last is not None:
            return last.shift(1)
        return first_candidate


def as_watermarks(raw: Mapping[str, Mapping[int, int]]) -> Watermarks:
    return {topic: {int(p): int(o) for p, o in parts.items()} for topic, parts in raw.items()}


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """Everything a close reads, fixed before it reads anything.

    `ends` are the watermarks recorded by the plan record and PeriodClosed:
    usage-events and account-events are read up to them, and `ends["invoices"]` is
    the invoices offset before this close's first invoice (where a re-run looks for
    invoices an interrupted attempt already wrote). `prev` is the previous close's
    watermarks (empty for the first close): events below them were billed by it.
    """

    month: Month
    ends: Watermarks
    usage_starts: Offsets
    usage_low: Offsets  # log start: credits/balance customers are read from here
    account_starts: Offsets
    prev: Watermarks
    adjust_from: Month | None  # earliest month whose periods get adjustments; None: none
    horizon: datetime  # T of the rule: usage before it cannot be recomputed
    planned_ms: int | None = None  # when the watermarks were fixed: the future rule's clock
    prev_month: Month | None = None  # the previous close (its checkpoints resume this one)

    @property
    def resumes(self) -> bool:
        """Whether the fold starts from the previous close's checkpoints: that close
        recorded the checkpoints topic's position (it writes checkpoints before its
        PeriodClosed), and so did this close's plan (they lie between the two)."""
        return self.prev_month is not None and CHECKPOINTS in self.prev and CHECKPOINTS in self.ends


def lateness_lookback(month: Month, max_lateness: timedelta) -> int:
    """The months back from `month` that late usage accepted by the worker can
    still reach: usage less than `max_lateness` behind a watermark at or after the
    start of `month` lies in a period ending in `Month.of(month.start - max_lateness)`
    or later."""
    earliest = Month.of(month.start - max_lateness)
    return max(1, (month.year - earliest.year) * 12 + month.month - earliest.month)


def window_start(
    month: Month, history: CloseHistory, lookback: int
) -> tuple[datetime, Month | None]:
    """(T, adjust_from): the earliest event time that can matter for this close and the
    earliest closed month still adjusted."""
    first = history.first_closed
    if first is None or month <= first:
        return month.shift(-1).start, None
    adjust_from = max(first, month.shift(-lookback))
    if adjust_from >= month:
        return month.shift(-1).start, None
    return adjust_from.shift(-1).start, adjust_from


def usage_starts(
    *,
    by_time: Mapping[int, int],
    prev: Mapping[int, int] | None,
    low: Mapping[int, int],
    ends: Mapping[int, int],
    resumes: bool = False,
) -> Offsets:
    """The rule of the module docstring for one topic; `by_time[p]` is -1 when no
    message of p has a timestamp >= T (then nothing before the end matters by time).

    Raises `ClosePlanError` when a needed offset was already deleted by retention:
    billing from a log with a hole would silently under-bill. A close that `resumes`
    reads none of this window (the fold checks what it reads instead)
    """
    starts: Offsets = {}
    for p, end in ends.items():
        t = by_time.get(p, -1)
        s = end if t < 0 or t > end else t
        if prev is not None:
            s = min(s, prev.get(p, 0))
        if s < low.get(p, 0) and s < end and not resumes:
            raise ClosePlanError(
                f"usage-events partition {p}: the close needs offset {s} but the log starts"
                f" at {low.get(p, 0)} (deleted by retention); raise the topic's retention"
                " above two periods plus the lateness you accept"
            )
        starts[p] = max(s, low.get(p, 0)) if s < end else end
    return starts


def build_plan(
    *,
    month: Month,
    history: CloseHistory,
    ends: Watermarks,
    low: Watermarks,
    by_time: Mapping[int, int],
    lookback: int,
    planned_ms: int | None = None,
) -> ReadPlan:
    """The read plan of closing `month` at watermarks `ends` (already fixed: from the
    plan record of an earlier attempt, from PeriodClosed on a re-run, or snapshotted)."""
    horizon, adjust_from = window_start(month, history, lookback)
    previous = history.previous(month)
    prev = as_watermarks(previous.watermarks) if previous else {}
    return ReadPlan(
        month=month,
        ends=ends,
        usage_starts=usage_starts(
            by_time=by_time,
            prev=prev.get(USAGE),
            low=low.get(USAGE, {}),
            ends=ends[USAGE],
            resumes=previous is not None and CHECKPOINTS in prev and CHECKPOINTS in ends,
        ),
        usage_low=dict(low.get(USAGE, {p: 0 for p in ends[USAGE]})),
        account_starts=dict(low.get(ACCOUNT, {p: 0 for p in ends[ACCOUNT]})),
        prev=prev,
        adjust_from=adjust_from,
        horizon=horizon,
        planned_ms=planned_ms,
        prev_month=Month.parse(previous.period_id) if previous else None,
    )


def is_below(
    watermarks: Mapping[str, Mapping[int, int]], topic: str, partition: int, offset: int
) -> bool:
    """Whether (topic, partition, offset) is below `watermarks` (read by that close)."""
    return offset < watermarks.get(topic, {}).get(partition, 0)
