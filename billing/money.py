"""Money as a value type: a `Decimal` amount with its `Currency`.

Rules (ground rules 1 and STYLE practice 2):
- amounts are `Decimal` built from `str` or `int`, never `float`;
- arithmetic keeps full precision; rounding happens once per invoice line, to the
  currency's minor unit, half-up (`Currency.round`);
- `Money` refuses to mix currencies (`CurrencyError`);
- splits use the largest-remainder method with a documented tie-break, so the
  shares always sum exactly to the total (`allocate`).

The hot rating path works on bare `Decimal`s of a known plan currency (the plan
fixes it), and wraps into `Money` at the invoice edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from billing.bounds import exact_context
from billing.errors import CurrencyError

ZERO = Decimal(0)
# Each minor unit's quantum, built once (rounding runs per invoice line); the
# property below computes any other.
_QUANTA: dict[int, Decimal] = {n: Decimal(1).scaleb(-n) for n in range(7)}


@dataclass(frozen=True, slots=True)
class Currency:
    """An ISO 4217 currency and the number of digits of its minor unit."""

    code: str
    minor_unit: int

    @property
    def quantum(self) -> Decimal:
        """The smallest amount: Decimal('0.01') for USD, Decimal('1') for JPY."""
        try:
            return _QUANTA[self.minor_unit]
        except KeyError:
            return Decimal(1).scaleb(-self.minor_unit)

    def round(self, amount: Decimal) -> Decimal:
        """`amount` rounded half-up to the minor unit (the only rounding we do)."""
        return amount.quantize(self.quantum, ROUND_HALF_UP)  # `rounding`: positional is faster


# The currencies a catalog may use. Adding one is a one-line, reviewed change.
CURRENCIES: dict[str, Currency] = {
    c.code: c
    for c in (
        Currency("USD", 2),
        Currency("EUR", 2),
        Currency("GBP", 2),
        Currency("CHF", 2),
        Currency("CAD", 2),
        Currency("AUD", 2),
        Currency("SEK", 2),
        Currency("NOK", 2),
        Currency("DKK", 2),
        Currency("INR", 2),
        Currency("BRL", 2),
        Currency("CNY", 2),
        Currency("JPY", 0),
        Currency("KRW", 0),
        Currency("KWD", 3),
        Currency("BHD", 3),
    )
}


def currency(code: str) -> Currency:
    """The currency for an ISO code; `CurrencyError` if we do not know it."""
    try:
        return CURRENCIES[code]
    except KeyError:
        raise CurrencyError(f"unknown currency {code!r}") from None


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount in one currency. Mixed-currency arithmetic raises."""

    amount: Decimal
    currency: Currency

    @classmethod
    def of(cls, amount: str | int | Decimal, code: str) -> Money:
        if isinstance(amount, float):  # defensive: floats are never money
            raise TypeError("money from float is refused; use str or Decimal")
        return cls(Decimal(amount), currency(code))

    @classmethod
    def zero(cls, cur: Currency) -> Money:
        return cls(ZERO, cur)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyError(f"cannot combine {self.currency.code} and {other.currency.code}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        if isinstance(factor, float):
            raise TypeError("money times float is refused")
        return Money(self.amount * factor, self.currency)

    def rounded(self) -> Money:
        return Money(self.currency.round(self.amount), self.currency)

    def __str__(self) -> str:
        return f"{self.currency.code} {self.amount}"


def round_half_up(amount: Decimal, cur: Currency) -> Decimal:
    """Same as `cur.round(amount)`; a free function for readability at call sites."""
    return cur.round(amount)


@exact_context
def allocate(total: Decimal, weights: Sequence[Decimal], cur: Currency) -> list[Decimal]:
    """Split `total` (already a whole number of minor units) across `weights`.

    Largest-remainder method: each share is floored to the minor unit, then the
    leftover minor units go one by one to the shares with the largest remainders;
    ties go to the lower index (deterministic). Invariant: `sum(result) == total`.
    Negative totals are split as the negation of the split of `-total`.
    """
    if not weights:
        raise ValueError("allocate needs at least one weight")
    if any(w < 0 for w in weights):
        raise ValueError("weights must be non-negative")
    if cur.round(total) != total:
        raise ValueError(f"total {total} is not a whole number of {cur.code} minor units")
    if total < 0:
        return [-s for s in allocate(-total, weights, cur)]
    weight_sum = sum(weights, ZERO)
    if weight_sum == 0:
        weights = [Decimal(1)] * len(weights)
        weight_sum = Decimal(len(weights))
    q = cur.quantum
    units = int(total / q)  # whole minor units, exact
    exact = [Decimal(units) * w / weight_sum for w in weights]
    floors = [int(e.to_integral_value(rounding=ROUND_FLOOR)) for e in exact]
    leftover = units - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:leftover]:
        floors[i] += 1
    return [Decimal(f) * q for f in floors]
