"""Named errors for a close whose inputs retention deleted: billing from a log with a
hole would give a different number without a word (docs/ARCHITECTURE.md, "Checkpoints")."""

from __future__ import annotations

from typing import Protocol

from processors.close.plan import ACCOUNT, USAGE, ClosePlanError, ReadPlan


class _Names(Protocol):
    @property
    def usage(self) -> str: ...
    @property
    def account(self) -> str: ...


def check_retention(
    names: _Names, plan: ReadPlan, parts: list[int], history: frozenset[bytes]
) -> None:
    """`ClosePlanError` when the fold needs records that retention deleted: account
    events are folded from the log start for every customer, usage from the log start
    for credits and balance customers (their credits and wallet carry over). A log
    whose low watermark is above 0 lost such records: billing from it would give a
    different number without a word."""
    for topic, low, needed in (
        (names.account, plan.account_starts, True),
        (names.usage, plan.usage_low, bool(history)),
    ):
        gone = {p: low.get(p, 0) for p in parts if low.get(p, 0) > 0}
        if needed and gone:
            where = ", ".join(
                f"partition {p} starts at offset {o}" for p, o in sorted(gone.items())
            )
            raise ClosePlanError(
                f"{topic}: the close folds this topic from its start, but {where} (records"
                " below were deleted by retention); keep the topic for ever"
                " (STREAMBILL_USAGE_RETENTION_DAYS=0 for usage-events; account-events is"
                " created without time retention) or restore it"
            )


def check_resumable(names: _Names, plan: ReadPlan, parts: list[int]) -> None:
    """`ClosePlanError` when a resumed fold's inputs from the previous close's
    watermarks on were deleted by retention (they were never billed)."""
    for topic, logical, low in (
        (names.account, ACCOUNT, plan.account_starts),
        (names.usage, USAGE, plan.usage_low),
    ):
        for p in parts:
            start = plan.prev.get(logical, {}).get(p, 0)
            if low.get(p, 0) > start:
                raise ClosePlanError(
                    f"{topic} partition {p}: this close reads from offset {start} (the"
                    f" previous close's watermark) but the topic starts at {low[p]}:"
                    " records never billed were deleted by retention; raise the topic's"
                    " retention (STREAMBILL_USAGE_RETENTION_DAYS for usage-events)"
                )
