"""The small error hierarchy of the billing core.

Only configuration and programming mistakes raise: bad *events* never raise, they
come back from `billing.ledger.apply` as rejection values with a reason code.
"""

from __future__ import annotations

from collections.abc import Iterable


class BillingError(Exception):
    """Base of every error raised by `billing`."""


class CurrencyError(BillingError):
    """An unknown currency code, or arithmetic that mixes two currencies."""


class CatalogError(BillingError):
    """A catalog failed validation. `problems` lists every problem found, each naming
    the plan (or pack / feature) and the field, so one run shows them all."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__(
            f"{len(self.problems)} problem(s) in catalog:\n"
            + "\n".join(f"  - {p}" for p in self.problems)
        )


class StateError(BillingError):
    """A serialized customer state that cannot be read back (corrupt or foreign)."""
