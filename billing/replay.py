"""Replaying a log in memory: admission and fold per customer, as every replay does.

`Replay` is what the period close (`processors.close.fold`) and `simulate`
(`processors.simulate.simulation`) run for each customer; the live worker
(`processors.fold.batch`) takes the same steps per message, in arrival order. Pure: no
I/O, no clock (the future rule's clock is passed in).

Order: usage events are taken in log order (the usage topic's offset order, or a
file's line order, which `streambill export` writes in log order). Account events
are queued in log order and each is folded just before the first usage event
whose event time is at or after its own (and the rest at the end): the two topics
have no order between them in the log, so a replay pairs them by event time. The
live worker folds account events as they arrive, which is the same order when
account events are published as they happen.

Each event goes through `billing.admission.decide` with the customer's watermark
and dedupe memory, then `billing.ledger.apply` without the core's id memory. An
exception while folding one event rejects that event (`internal_error`), as the
worker dead-letters it.

Phases (for the close): `prev` is the state after the account events and usage
read below the previous close's watermark, "billed so far"; see `end_phase_a`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from billing.admission import AdmissionPolicy, decide, same_payload, to_ms
from billing.catalog import Catalog
from billing.events import Event, RejectReason, UsageRecorded
from billing.fold import Effects
from billing.ledger import CustomerState, apply, new_state

# (event, reason code, detail) of every rejected event
OnRejected = Callable[[Event, str, str], None]
# (event, effects) of every applied event
OnApplied = Callable[[Event, Effects], None]


def _ignore(*_: object) -> None:
    return None


@dataclass
class ReplayCustomer:
    """One customer's replay in progress, with its admission facts (what the worker
    keeps as `CustomerRecord.watermark_ms` and in its `seen` table)."""

    state: CustomerState
    account_a: deque[Event] = field(default_factory=deque)
    account_b: deque[Event] = field(default_factory=deque)
    prev: CustomerState | None = None  # set when phase A ends
    watermark_ms: int | None = None
    seen: dict[str, Event] = field(default_factory=dict)  # event id -> the applied event


class Replay:
    """Admit and fold the events of many customers (see the module docstring)."""

    def __init__(
        self,
        catalog: Catalog,
        policy: AdmissionPolicy,
        now_ms: int | None = None,
        *,
        on_rejected: OnRejected = _ignore,
        on_applied: OnApplied | None = None,
    ) -> None:
        self.catalog = catalog
        self.policy = policy
        self.now_ms = now_ms
        self.customers: dict[str, ReplayCustomer] = {}
        self.duplicates = 0
        self.rejected: dict[str, int] = {}
        self.last_refusal: str | None = None  # the reason of the latest refusal
        self._on_rejected = on_rejected
        self._on_applied = on_applied

    def customer(self, customer_id: str) -> ReplayCustomer:
        c = self.customers.get(customer_id)
        if c is None:
            c = self.customers[customer_id] = ReplayCustomer(new_state(customer_id))
        return c

    def account(self, event: Event, *, phase_b: bool = True) -> None:
        """Queue an account event (folded by `usage` or `finish`)."""
        c = self.customer(event.customer_id)
        (c.account_b if phase_b else c.account_a).append(event)

    def usage(self, event: UsageRecorded, *, phase_b: bool = True) -> bool:
        """Fold one usage event, after the account events due before it; whether it
        was applied (False: refused or a duplicate)."""
        c = self.customers.get(event.customer_id) or self.customer(event.customer_id)
        if phase_b:
            if c.prev is None:
                self.end_phase_a(c)
            queue = c.account_b
        else:
            queue = c.account_a
        if queue:
            self._drain(c, queue, event.timestamp)
        return self._admit(c, event, True)

    def end_phase_a(self, c: ReplayCustomer) -> None:
        if c.prev is None:
            self._drain(c, c.account_a, None)
            c.prev = c.state

    def finish(self) -> None:
        """Fold every account event still queued."""
        for c in self.customers.values():
            self.end_phase_a(c)
            self._drain(c, c.account_b, None)

    def _drain(self, c: ReplayCustomer, queue: deque[Event], until: datetime | None) -> None:
        while queue and (until is None or queue[0].timestamp <= until):
            self._admit(c, queue.popleft(), False)

    def _admit(self, c: ReplayCustomer, event: Event, usage: bool) -> bool:
        """`decide`, then `apply`: once per event of every replay; whether applied."""
        event_ms = to_ms(event.timestamp)
        earlier = c.seen.get(event.event_id)
        prior = None
        if earlier is not None:  # rare: a copy, or a reused id
            prior = (lambda: same_payload(earlier, event), to_ms(earlier.timestamp))
        c.watermark_ms, refusal = decide(
            self.policy, usage, event_ms, c.watermark_ms, prior, self.now_ms
        )
        if refusal is not None:
            if refusal.duplicate:
                self.duplicates += 1
                self.last_refusal = None
            else:
                reason = refusal.reason or RejectReason.INVALID_FIELD
                self._reject(event, reason.value, refusal.detail)
            return False
        try:
            state, effects = apply(c.state, event, self.catalog, remember=False)
        except Exception as exc:  # one event's failure, as the worker dead-letters it
            self._reject(event, RejectReason.INTERNAL_ERROR.value, f"{type(exc).__name__}: {exc}")
            return False
        if effects.rejection is not None:
            self._reject(event, str(effects.rejection.reason), effects.rejection.detail)
            return False
        c.state = state
        c.seen[event.event_id] = event
        if self._on_applied is not None:
            self._on_applied(event, effects)
        return True

    def _reject(self, event: Event, reason: str, detail: str) -> None:
        self.last_refusal = reason
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self._on_rejected(event, reason, detail)
