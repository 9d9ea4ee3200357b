"""One customer's billing state, its per-period records, and their JSON form.

Purity with speed (the fold's rate target is in bench/rating.py):
- `CustomerState` and `PeriodRecord` are slotted objects that are *never mutated
  once another party can see them*: `billing.ledger.apply` copies the state and
  the record it changes (a handful of slots and one small dict) and returns the
  copy, so a state a caller passed in keeps its value for ever.
- The one structure that is too big to copy per event is the memory of applied
  event ids. It lives in `SeenLog`, an append-only dict shared by a lineage of
  states: each entry carries the sequence number of the state that added it, and
  a state sees exactly the entries with `seq < state.seq`. Only the newest state
  of a log (`log.head == state.seq`) appends in place; applying an event to an
  older state (a branch) first copies the entries it can see. Callers therefore
  cannot observe a mutation, while the common linear fold pays O(1) per event.

Entries of `SeenLog` remember the event itself as its fingerprint (no hashing on
the hot path); a restored state holds a digest string instead (`billing.admission.fingerprint`,
the one payload rule of dedupe), and both compare consistently (`same_payload`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Generic, Literal, TypeVar, overload

from billing.admission import fingerprint
from billing.bounds import exact_context
from billing.events import Event

ZERO = Decimal(0)
Status = Literal["none", "active", "cancelled"]
T = TypeVar("T")
_new = object.__new__  # a slotted instance without running __init__


def same_payload(remembered: Event | str, event: Event) -> bool:
    """Whether a remembered entry (the event, or its digest in a restored state) has
    `event`'s payload: the admission rule (`billing.admission.same_payload`, which is
    `fingerprint` equality) either way."""
    if isinstance(remembered, str):
        return remembered == fingerprint(event)
    return remembered == event


class SeenLog:
    """Append-only memory of applied event ids: id -> (fingerprint, seq, period_start)."""

    __slots__ = ("entries", "head")

    def __init__(self, entries: dict[str, tuple[Event | str, int, datetime]], head: int) -> None:
        self.entries = entries
        self.head = head  # seq of the only state allowed to append in place


class PeriodRecord:
    """What one billing period [start, end) accumulated. Copied, never mutated, once
    published. `usage` is the rated quantity per feature (events for per-request
    features); `tokens` is (input, output) per (feature, property value)."""

    __slots__ = (
        "alert_idx",
        "capped",
        "credits_used",
        "end",
        "plan_id",
        "spend",
        "spent",
        "start",
        "tokens",
        "topped",
        "usage",
    )  # fmt: skip

    start: datetime
    end: datetime
    plan_id: str
    usage: dict[str, Decimal]
    tokens: dict[tuple[str, str], tuple[Decimal, Decimal]]  # (feature, model) -> (in, out)
    credits_used: Decimal  # credits plans: credits consumed by this period's usage
    spent: Decimal  # balance plans: money deducted for this period's usage (exact)
    topped: Decimal  # balance plans: deposits and adjustments in this period
    alert_idx: dict[str, int]  # metered: allowance thresholds raised, per feature
    spend: Decimal  # metered with a spend cap: usage charges so far (exact)
    capped: bool  # metered: the spend cap was reached in this period

    def copy(self) -> PeriodRecord:
        # One statement per slot, not a tuple-packed assignment: this runs once per
        # usage event and the plain form is the faster one.
        r: PeriodRecord = _new(PeriodRecord)
        r.start = self.start
        r.end = self.end
        r.plan_id = self.plan_id
        r.usage = self.usage
        r.tokens = self.tokens
        r.credits_used = self.credits_used
        r.spent = self.spent
        r.topped = self.topped
        r.alert_idx = self.alert_idx
        r.spend = self.spend
        r.capped = self.capped
        return r


def new_record(start: datetime, end: datetime, plan_id: str) -> PeriodRecord:
    r = PeriodRecord.__new__(PeriodRecord)
    r.start, r.end, r.plan_id = start, end, plan_id
    r.usage, r.tokens, r.credits_used = {}, {}, ZERO
    r.spent, r.topped, r.alert_idx = ZERO, ZERO, {}
    r.spend, r.capped = ZERO, False
    return r


class Account:
    """The rarely changing part of a customer state (subscription, seats, wallet
    carry-over, alert bookkeeping). Kept apart so that copying a state per usage
    event copies a few slots only; shared between states until one changes it."""

    __slots__ = (
        "alert_counts", "alert_next", "alerts_raised", "anchor", "cancel_at", "horizon",
        "last_topup", "plans", "seats", "status", "wallet_opening",
    )  # fmt: skip

    status: Status
    anchor: datetime | None  # subscription start: periods are anchored here
    plans: tuple[tuple[datetime, str], ...]  # (effective from period start, plan id)
    cancel_at: datetime | None  # end of the last billable period
    seats: tuple[tuple[datetime, int], ...]  # seat count from each time on
    horizon: datetime | None  # periods before this were pruned; older events too late
    wallet_opening: Decimal  # wallet at the start of the first retained period
    last_topup: Decimal | None  # size of the last pack, grant or deposit
    alerts_raised: frozenset[int]  # credits/balance thresholds currently raised
    alert_counts: dict[int, int]  # raises so far per threshold (for alert ids)
    alert_next: Decimal | None  # highest level not yet raised: the hot-path check

    def copy(self) -> Account:
        a = Account.__new__(Account)
        for name in Account.__slots__:
            setattr(a, name, getattr(self, name))
        return a


class _Cold(Generic[T]):
    """`state.<name>` reads and writes `state.acct.<name>`; the first write to a
    fresh state copies the shared `Account` (copy on write)."""

    def __init__(self, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> _Cold[T]: ...
    @overload
    def __get__(self, obj: CustomerState, owner: type) -> T: ...
    def __get__(self, obj: CustomerState | None, owner: type) -> T | _Cold[T]:
        if obj is None:
            return self
        value: T = getattr(obj.acct, self.name)
        return value

    def __set__(self, obj: CustomerState, value: T) -> None:
        if not obj.acct_owned:
            obj.acct = obj.acct.copy()
            obj.acct_owned = True
        setattr(obj.acct, self.name, value)


class CustomerState:
    """One customer's state. Opaque outside `billing`; see the module docstring for
    the immutability contract. Hot fields are slots; the rest lives in `acct`."""

    __slots__ = (
        "acct", "acct_owned", "balance", "customer_id", "earlier", "grants", "last",
        "seen", "seq", "updated_at",
    )  # fmt: skip

    customer_id: str
    seq: int  # number of events applied; versions the state
    seen: SeenLog
    earlier: dict[datetime, PeriodRecord]  # retained periods before `last`, by start
    last: PeriodRecord | None  # the latest retained period (the live one)
    grants: tuple[tuple[datetime | None, Decimal], ...]  # credits by expiry, None last
    balance: Decimal  # live wallet (balance plans), may be negative
    updated_at: datetime | None  # latest event time applied
    acct: Account
    acct_owned: bool  # False while `acct` is shared with the state this was copied from

    status = _Cold[Status]("status")
    anchor = _Cold[datetime | None]("anchor")
    plans = _Cold[tuple[tuple[datetime, str], ...]]("plans")
    cancel_at = _Cold[datetime | None]("cancel_at")
    seats = _Cold[tuple[tuple[datetime, int], ...]]("seats")
    horizon = _Cold[datetime | None]("horizon")
    wallet_opening = _Cold[Decimal]("wallet_opening")
    last_topup = _Cold[Decimal | None]("last_topup")
    alerts_raised = _Cold[frozenset[int]]("alerts_raised")
    alert_counts = _Cold[dict[int, int]]("alert_counts")
    alert_next = _Cold[Decimal | None]("alert_next")

    def copy(self) -> CustomerState:
        # One statement per slot, as in `PeriodRecord.copy` (the hot path).
        s: CustomerState = _new(CustomerState)
        s.customer_id = self.customer_id
        s.seq = self.seq
        s.seen = self.seen
        s.earlier = self.earlier
        s.last = self.last
        s.grants = self.grants
        s.balance = self.balance
        s.updated_at = self.updated_at
        s.acct = self.acct
        s.acct_owned = False
        return s

    def records(self) -> dict[datetime, PeriodRecord]:
        """Every retained period record by start, in order (the live one last)."""
        out = {s: self.earlier[s] for s in sorted(self.earlier)}
        if self.last is not None:
            out[self.last.start] = self.last
        return out

    def record(self, start: datetime) -> PeriodRecord | None:
        last = self.last
        if last is not None and last.start == start:
            return last
        return self.earlier.get(start)

    def with_records(self, records: dict[datetime, PeriodRecord]) -> None:
        """Replace all records of this fresh (unpublished) state."""
        latest = max(records) if records else None
        self.last = records[latest] if latest is not None else None
        self.earlier = {s: r for s, r in records.items() if s != latest}

    def seen_entry(self, event_id: str) -> tuple[Event | str, int, datetime] | None:
        entry = self.seen.entries.get(event_id)
        if entry is None or entry[1] >= self.seq:
            return None
        return entry

    def remember(self, event_id: str, event: Event, period_start: datetime) -> None:
        """Record `event_id` in this (fresh, unpublished) state and bump `seq`.
        `self.seq` is still the parent's seq here."""
        log = self.seen
        if log.head != self.seq:  # a branch: copy what this lineage can see
            log = SeenLog({k: v for k, v in log.entries.items() if v[1] < self.seq}, self.seq)
        log.entries[event_id] = (event, self.seq, period_start)
        self.seq += 1
        log.head = self.seq
        self.seen = log

    def visible_seen(self) -> dict[str, tuple[Event | str, int, datetime]]:
        return {k: v for k, v in self.seen.entries.items() if v[1] < self.seq}

    def plan_at(self, start: datetime) -> str | None:
        """The plan in effect for the period starting at `start`."""
        current = None
        for effective, plan_id in self.plans:
            if effective <= start:
                current = plan_id
        return current

    @exact_context
    def credits_remaining(self, at: datetime | None = None) -> Decimal:
        grants = self.grants
        if len(grants) == 1 and grants[0][0] is None:
            return grants[0][1]
        return sum((r for exp, r in self.grants if exp is None or at is None or exp > at), ZERO)


def new_state(customer_id: str) -> CustomerState:
    a = Account.__new__(Account)
    a.status, a.anchor, a.plans, a.cancel_at, a.seats = "none", None, (), None, ()
    a.horizon, a.wallet_opening, a.last_topup = None, ZERO, None
    a.alerts_raised, a.alert_counts, a.alert_next = frozenset(), {}, None
    s = CustomerState.__new__(CustomerState)
    s.customer_id, s.seq, s.seen, s.earlier = customer_id, 0, SeenLog({}, 0), {}
    s.last, s.grants, s.balance, s.updated_at = None, (), ZERO, None
    s.acct, s.acct_owned = a, True
    return s
