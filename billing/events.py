"""The vocabulary of facts streambill folds and emits.

Frozen, past tense, versioned (`VERSION`). These are the domain values; their wire
form lives in `schemas/` and the conversion functions live at the edge
(`streambill.wire.convert`: `to_avro_*` / `from_avro_*`). Amounts and quantities are
`Decimal` (never float); times are timezone-aware UTC `datetime`s.

Invariant: a given `event_id` identifies one fact for ever. The same id with a
different payload is a conflict, never a silent overwrite.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar, Literal

# --------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class UsageRecorded:
    """A customer consumed `quantity` units of a feature at `timestamp` (event time)."""

    VERSION: ClassVar[int] = 1
    event_id: str
    customer_id: str
    feature_id: str
    quantity: Decimal
    timestamp: datetime
    properties: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AccountHead:
    """The fields every account event starts with, in this order (positional
    construction and `billing.admission.fingerprint` rely on it)."""

    event_id: str
    customer_id: str
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class SubscriptionStarted(AccountHead):
    """The customer's first period starts at `timestamp`; periods are anchored there."""

    VERSION: ClassVar[int] = 1
    ADDED_FIELDS: ClassVar[tuple[str, ...]] = ("plan_version",)
    plan_id: str
    seats: int = 1
    # The plan version the subscription is pinned to; None (events from before
    # versions were pinned): the plan's lowest version (`billing.catalog.Catalog.refs`).
    plan_version: int | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionChanged(AccountHead):
    """Move to `plan_id` (at `plan_version`, None: its lowest); takes effect at the
    next period boundary. Moving to another version of the same plan is how
    customers are migrated to a new price."""

    VERSION: ClassVar[int] = 1
    ADDED_FIELDS: ClassVar[tuple[str, ...]] = ("plan_version",)
    plan_id: str
    plan_version: int | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionCancelled(AccountHead):
    """Ends the subscription at the end of the current period."""

    VERSION: ClassVar[int] = 1


@dataclass(frozen=True, slots=True)
class SeatsChanged(AccountHead):
    """The seat count from `timestamp` on; seat fees are prorated to the second."""

    VERSION: ClassVar[int] = 1
    seats: int


@dataclass(frozen=True, slots=True)
class CreditsPurchased(AccountHead):
    """`quantity` packs of `pack_id` bought: adds credits, issues a purchase invoice."""

    VERSION: ClassVar[int] = 1
    pack_id: str
    quantity: int = 1


@dataclass(frozen=True, slots=True)
class CreditsGranted(AccountHead):
    """Free credits (promotion, goodwill), optionally expiring at `expires_at`."""

    VERSION: ClassVar[int] = 1
    credits: Decimal
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class WalletDeposited(AccountHead):
    """Money added to a balance plan's wallet; issues a purchase invoice."""

    VERSION: ClassVar[int] = 1
    amount: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class BalanceAdjusted(AccountHead):
    """A manual correction of the wallet (positive or negative), with a reason."""

    VERSION: ClassVar[int] = 1
    amount: Decimal
    currency: str
    reason: str = ""


AccountEvent = (
    SubscriptionStarted
    | SubscriptionChanged
    | SubscriptionCancelled
    | SeatsChanged
    | CreditsPurchased
    | CreditsGranted
    | WalletDeposited
    | BalanceAdjusted
)
Event = UsageRecorded | AccountEvent


# -------------------------------------------------------------------- outputs


class RejectReason(StrEnum):
    """Why an event could not be applied. Every rejection lands on usage-rejected."""

    UNDECODABLE = "undecodable"
    UNKNOWN_SCHEMA = "unknown_schema"
    INVALID_FIELD = "invalid_field"
    NO_SUBSCRIPTION = "no_subscription"
    UNKNOWN_FEATURE = "unknown_feature"
    SPEND_CAP_EXCEEDED = "spend_cap_exceeded"
    NEGATIVE_QUANTITY = "negative_quantity"
    TOKEN_BREAKDOWN = "token_breakdown"
    DUPLICATE_CONFLICT = "duplicate_conflict"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"
    TOO_LATE = "too_late"
    OUT_OF_RANGE = "out_of_range"  # a number beyond the documented bounds (billing.bounds)
    MISSING_KEY = "missing_key"  # an input record without a message key
    WRONG_PARTITION = "wrong_partition"  # a key on a partition that does not own it
    INTERNAL_ERROR = "internal_error"  # folding this one event raised; kept, never fatal


@dataclass(frozen=True, slots=True)
class EventRejected:
    """A dead letter: the reason, a readable detail and the original bytes."""

    VERSION: ClassVar[int] = 1
    reason: RejectReason
    detail: str
    event_id: str | None = None
    customer_id: str | None = None
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    original: bytes = b""


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """One line. `precise_amount` keeps full precision; `amount` is it rounded once,
    half-up, to the currency's minor unit."""

    description: str
    quantity: Decimal
    unit_price: Decimal
    precise_amount: Decimal
    amount: Decimal
    feature_id: str | None = None


InvoiceKind = Literal["period", "purchase", "adjustment"]


@dataclass(frozen=True, slots=True)
class Invoice:
    """InvoiceIssued (kind `period` or `purchase`) or InvoiceAdjusted (`adjustment`).

    `invoice_id` is a deterministic function of what the invoice bills, so a
    recomputation yields the same id. `total` is the sum of the rounded lines.
    `adjusts_invoice_id` names the issued invoice an adjustment corrects.
    """

    VERSION: ClassVar[int] = 1
    invoice_id: str
    kind: InvoiceKind
    customer_id: str
    plan_id: str
    plan_version: int
    period_start: datetime
    period_end: datetime
    currency: str
    lines: tuple[InvoiceLine, ...]
    total: Decimal
    issued_at: datetime
    adjusts_invoice_id: str | None = None


AlertKind = Literal["credits_low", "balance_low", "allowance_used", "spend_cap"]


@dataclass(frozen=True, slots=True)
class AlertRaised:
    """A threshold was crossed downwards (credits, balance) or upwards (allowance).

    `alert_id` is deterministic (customer, kind, feature, threshold, crossing
    number), so a resend is harmless. `threshold_percent` is of `reference` (the
    last top-up for credits/balance, the allowance for metered)."""

    VERSION: ClassVar[int] = 1
    alert_id: str
    customer_id: str
    kind: AlertKind
    threshold_percent: int
    value: Decimal
    reference: Decimal
    timestamp: datetime
    feature_id: str | None = None


@dataclass(frozen=True, slots=True)
class AlertResolved:
    """The condition of `raised_alert_id` no longer holds (top-up, new period)."""

    VERSION: ClassVar[int] = 1
    alert_id: str
    raised_alert_id: str
    customer_id: str
    kind: AlertKind
    threshold_percent: int
    value: Decimal
    timestamp: datetime
    feature_id: str | None = None


@dataclass(frozen=True, slots=True)
class CustomerStateChanged:
    """A full snapshot of one customer's live billing state (compacted topic).

    `source_offsets` maps "topic/partition" to the last offset folded in, so a
    reader knows how fresh the snapshot is and a rebuild can be compared exactly.
    `upcoming_invoice` is the period so far priced by `billing` (a preview)."""

    VERSION: ClassVar[int] = 1
    customer_id: str
    version: int
    status: Literal["none", "active", "cancelled"]
    plan_id: str | None
    plan_version: int | None
    model: Literal["metered", "credits", "balance"] | None
    currency: str | None
    period_start: datetime | None
    period_end: datetime | None
    seats: int
    usage: Mapping[str, Decimal]
    allowance_remaining: Mapping[str, Decimal]
    credits_remaining: Decimal | None
    balance: Decimal | None
    last_topup: Decimal | None
    allowed: bool
    upcoming_invoice: Invoice | None
    source_offsets: Mapping[str, int]
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class CustomerCheckpointed:
    """What the close of `period_id` carries into the next close for one customer:
    its state at that close's watermarks (`usage_offset`, `account_offset` of its
    `partition`) and the admission facts the next fold needs to decide exactly as a
    fold from the log start would (docs/ARCHITECTURE.md, "Checkpoints").

    - `state`: `billing.state_codec.state_to_dict(state, remember_ids=False)` as
      compact JSON (wallet, credit grants with expiry, plan pins, seats, periods);
    - `watermark_ms`: the customer's lateness watermark (None: no usage yet);
    - `complete_from`: the state holds every applied usage event at or after this
      event time (None: since the log start); older late usage is refolded from the
      log, or refused with a named error when retention deleted it;
    - `recent`: the applied events within the dedupe window behind the watermark
      that the next close does not read again (account events; usage too unless the
      next close re-reads the window, `processors.close.checkpoints.rereads`), as
      their Avro values: their ids dedupe later events;
    - `skipped`: (offset, event time ms) of the customer's usage records on
      `partition` within that window that passed the doors but were NOT applied
      (refused or duplicates); every other such record was applied, which is how
      the next close rebuilds the dedupe memory from the log;
    - `pending`: offsets of the customer's usage records refused only for an event
      time in the future of that close's clock: the next close, whose clock is
      later, decides them again (as a fold from the log start would);
    - `window_offset`: the usage-events offset from which the next close re-reads
      this customer's dedupe window (None: the window travels in `recent`)."""

    VERSION: ClassVar[int] = 1
    customer_id: str
    period_id: str
    partition: int
    usage_offset: int
    account_offset: int
    watermark_ms: int | None
    complete_from: datetime | None
    state: str
    recent: tuple[bytes, ...] = ()
    skipped: tuple[tuple[int, int], ...] = ()
    pending: tuple[int, ...] = ()
    window_offset: int | None = None


@dataclass(frozen=True, slots=True)
class PeriodClosePlanned:
    """A close of period `period_id` ("YYYY-MM") fixed the watermarks it reads up to,
    before writing anything else (key `YYYY-MM/plan` on period-closes): a re-run after
    a crash reads exactly these. Not a close: `PeriodClosed` follows when it is done.
    (Closes before this record had its own schema wrote a `PeriodClosed` with
    `invoice_count` 0 under that key; readers take both.)"""

    VERSION: ClassVar[int] = 1
    period_id: str
    watermarks: Mapping[str, Mapping[int, int]]
    planned_at: datetime


@dataclass(frozen=True, slots=True)
class PeriodClosed:
    """A close of period `period_id` ("YYYY-MM") read the log up to `watermarks`
    ({topic: {partition: next offset}}) and issued `invoice_count` invoices."""

    VERSION: ClassVar[int] = 1
    period_id: str
    watermarks: Mapping[str, Mapping[int, int]]
    closed_at: datetime
    invoice_count: int
    total_by_currency: Mapping[str, Decimal] = field(default_factory=dict)
    # The revision of the catalog the close priced with (`billing.catalog_live.revision`
    # of its records); None in closes recorded before it was kept.
    catalog_revision: str | None = None
