"""The documented bounds on every number that enters billing, and the decimal
context the core computes in.

Bounds (inputs and catalog alike): a number is admitted when it is finite, its
magnitude is below 10**18 (at most `INTEGER_DIGITS` = 18 digits before the decimal
point) and it is written with at most `FRACTION_DIGITS` = 12 digits after it
(exponent >= -12; trailing zeros count, because a Decimal keeps its scale). That
covers usage quantities, the token counts rating reads from properties
(`NUMERIC_PROPERTIES`), credits, wallet deposits and balance adjustments, and every
price, fee, cap, allowance, block size and tier bound of a catalog. Each door (SDK,
HTTP API, wire decoders, catalog parser) refuses a value beyond them, naming the
field; the core rejects one that still reaches it as `out_of_range`.

Input events also have bounds on their text and time, the same at every door (SDK,
HTTP API): ids (event, customer, feature, plan, pack) at most `MAX_ID_CHARS`
characters; at most `MAX_PROPERTIES` properties, keys of 1 to
`MAX_PROPERTY_KEY_CHARS` characters, values of at most `MAX_PROPERTY_VALUE_CHARS`
(so an event stays far below the broker's message size limit); an event time from
`MIN_EVENT_MS` to `MAX_EVENT_MS` (0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z, the
timestamp-millis a reader decodes to a datetime). Tighter, the latest event time is
admission's future rule (`billing.admission.decide`, `future_tolerance` after the
clock), which the API asks too, so nothing the worker would refuse as
`timestamp_in_future` (or the broker as too far ahead) is queued.

`CONTEXT` is what the core runs in (`exact_context` wraps its public entry points):
`PRECISION` = 80 significant digits, so sums, differences and products of admitted
values are exact: a period sum of up to 10**9 quantities (< 10**27, 12 decimals, 39
digits) times a catalog price (30 digits) has at most 69 digits, a few tiers add one
or two, and rounding a line to its minor unit needs fewer. InvalidOperation,
DivisionByZero and Overflow trap, so a value that slipped past the bounds raises at
the operation instead of silently producing garbage.

Quotients are the exception: a division whose exact result has at most `PRECISION`
digits (a block of 1,000, a tier divided by a power of ten) is exact; one that does
not terminate (seats prorated to the second, a block of 60 seconds, the billable
fraction of a token allowance) is rounded half-even to `QUOTIENT_DIGITS` = 28
significant digits (`quotient`), and a product taken with such a fraction is kept at
that precision (`QUOTIENT`), so invoice lines stay short enough for the wire and
equal what the core computed before it had its own context.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    getcontext,
    setcontext,
)
from typing import ParamSpec, TypeVar

INTEGER_DIGITS = 18
FRACTION_DIGITS = 12
LIMIT = Decimal(10) ** INTEGER_DIGITS  # admitted: abs(x) < LIMIT
MIN_EXPONENT = -FRACTION_DIGITS  # admitted: exponent >= MIN_EXPONENT
PRECISION = 80
QUOTIENT_DIGITS = 28
# The properties rating reads as numbers (per-token pricing's breakdown).
NUMERIC_PROPERTIES = ("input_tokens", "output_tokens")

MAX_ID_CHARS = 200
MAX_PROPERTIES = 50
MAX_PROPERTY_KEY_CHARS = 100
MAX_PROPERTY_VALUE_CHARS = 500
MIN_EVENT_MS = -62_135_596_800_000  # 0001-01-01T00:00:00Z
MAX_EVENT_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z

_TRAPS = [InvalidOperation, DivisionByZero, Overflow]
CONTEXT = Context(
    prec=PRECISION, rounding=ROUND_HALF_EVEN, Emin=-999_999, Emax=999_999,
    capitals=1, clamp=0, flags=[], traps=_TRAPS,
)  # fmt: skip
QUOTIENT = Context(
    prec=QUOTIENT_DIGITS, rounding=ROUND_HALF_EVEN, Emin=-999_999, Emax=999_999,
    capitals=1, clamp=0, flags=[], traps=_TRAPS,
)  # fmt: skip
_EXACT = Context(
    prec=PRECISION, rounding=ROUND_HALF_EVEN, Emin=-999_999, Emax=999_999,
    capitals=1, clamp=0, flags=[], traps=[*_TRAPS, Inexact],
)  # fmt: skip


def problem(value: Decimal) -> str | None:
    """Why `value` is beyond the bounds, or None when it is admitted."""
    if not isinstance(value, Decimal):
        return f"expected a decimal number, got {value!r}"
    if not value.is_finite():
        return f"must be a finite number, got {value}"
    if not -LIMIT < value < LIMIT:
        return f"{value} is out of range: at most {INTEGER_DIGITS} digits before the decimal point"
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < MIN_EXPONENT:
        return f"{value} is out of range: at most {FRACTION_DIGITS} digits after the decimal point"
    return None


def plain_within(text: str) -> bool:
    """True when `text`, a decimal in plain notation (`-?[0-9]+(.[0-9]+)?`, the wire
    form), is within the bounds: `problem(Decimal(text)) is None` without building
    the Decimal (the SDK's per-event path). False means "ask `problem`"."""
    whole, _, frac = text.partition(".")
    if whole.startswith("-"):
        whole = whole[1:]
    return (
        whole.isdigit()
        and whole.isascii()
        and (not frac or (frac.isdigit() and frac.isascii()))
        and len(whole.lstrip("0")) <= INTEGER_DIGITS
        and len(frac) <= FRACTION_DIGITS
    )


def property_problem(properties: Mapping[str, str]) -> tuple[str, str] | None:
    """(field, problem) for the first numeric property (`NUMERIC_PROPERTIES`) whose
    value is a number beyond the bounds, e.g. ("properties['input_tokens']", ...).
    A value that is not a number at all is left to rating (`token_breakdown`)."""
    for name in NUMERIC_PROPERTIES:
        text = properties.get(name)
        if not isinstance(text, str) or plain_within(text):
            continue
        try:
            value = Decimal(text)
        except (InvalidOperation, ValueError):
            continue
        found = problem(value)
        if found is not None and value.is_finite():
            return f"properties[{name!r}]", found
    return None


def id_problem(value: str) -> str | None:
    """Why an id is beyond the text bounds (empty or too long), or None."""
    if not value:
        return "must not be empty"
    if len(value) > MAX_ID_CHARS:
        return f"longer than {MAX_ID_CHARS} characters"
    return None


def text_property_problem(properties: Mapping[str, str]) -> tuple[str, str] | None:
    """(field, problem) for properties beyond the text bounds: too many, or a key or
    value too long (the field names the key, cut to `MAX_PROPERTY_KEY_CHARS`)."""
    if len(properties) > MAX_PROPERTIES:
        return "properties", f"at most {MAX_PROPERTIES} properties, got {len(properties)}"
    for key, value in properties.items():
        if not key or len(key) > MAX_PROPERTY_KEY_CHARS:
            return (
                f"properties[{key[:MAX_PROPERTY_KEY_CHARS]!r}...]" if key else "properties",
                f"a key must have 1 to {MAX_PROPERTY_KEY_CHARS} characters, got {len(key)}",
            )
        if len(value) > MAX_PROPERTY_VALUE_CHARS:
            return (
                f"properties[{key!r}]",
                f"longer than {MAX_PROPERTY_VALUE_CHARS} characters",
            )
    return None


def event_ms_problem(event_ms: int) -> str | None:
    """Why an event time (epoch milliseconds) is outside `MIN_EVENT_MS` ..
    `MAX_EVENT_MS`, the times the wire can carry, or None."""
    if event_ms < MIN_EVENT_MS:
        return "before 0001-01-01T00:00:00Z, the earliest time the wire can carry"
    if event_ms > MAX_EVENT_MS:
        return "after 9999-12-31T23:59:59.999Z, the latest time the wire can carry"
    return None


def quotient(dividend: Decimal, divisor: Decimal) -> Decimal:
    """`dividend / divisor`: exact when that fits `PRECISION` digits, else rounded to
    `QUOTIENT_DIGITS` significant digits. DivisionByZero raises."""
    try:
        return _EXACT.divide(dividend, divisor)
    except Inexact:
        return QUOTIENT.divide(dividend, divisor)


def fraction(dividend: Decimal, divisor: Decimal) -> tuple[Decimal, bool]:
    """(`quotient(dividend, divisor)`, whether it is exact). A caller multiplying by
    an inexact one does so in `QUOTIENT`."""
    try:
        return _EXACT.divide(dividend, divisor), True
    except Inexact:
        return QUOTIENT.divide(dividend, divisor), False


P = ParamSpec("P")
R = TypeVar("R")


def install() -> None:
    """Make `CONTEXT` the calling thread's decimal context, for good: the processes'
    entry points and the worker's fold thread call it once, so `enter` finds it in
    place and costs one comparison per call."""
    setcontext(CONTEXT)


def enter() -> Context | None:
    """Make `CONTEXT` current; returns the context to restore with `setcontext`, or
    None when it was current already (installed, or a nested entry point). For a hot
    entry point that cannot afford `exact_context`'s generic call.

    One `CONTEXT` object serves every thread: decimal operations run under the GIL,
    the core never reads the flags they set, and a trap raises in the thread that
    computes."""
    old = getcontext()
    if old is CONTEXT:
        return None
    setcontext(CONTEXT)
    return old


def exact_context(fn: Callable[P, R]) -> Callable[P, R]:
    """`fn` run with `CONTEXT` as the current decimal context, and the
    caller's context restored afterwards (also when `fn` raises). Nested entry
    points run directly: the context is switched once per outermost call."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        old = getcontext()
        if old is CONTEXT:
            return fn(*args, **kwargs)
        setcontext(CONTEXT)
        try:
            return fn(*args, **kwargs)
        finally:
            setcontext(old)

    return run
