"""`processors.simulate.lines`: every event written as a line reads back as the same
event, under the one `type` name table both directions use."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import TypeVar, get_args

from billing.events import (
    AccountEvent,
    CreditsGranted,
    Event,
    SubscriptionChanged,
    UsageRecorded,
)
from processors.simulate.lines import LINE_TYPES, event_line, read_jsonl
from tests.unit.samples import SAMPLES

EVENTS: list[Event] = [v for v in SAMPLES.values() if isinstance(v, get_args(Event))]


E = TypeVar("E")


def _sample(cls: type[E]) -> E:
    return next(e for e in EVENTS if isinstance(e, cls))


# What SAMPLES leave out: a pinned plan version, a grant that never expires, a usage
# quantity in exponent form with no properties.
VARIANTS: list[Event] = [
    replace(_sample(SubscriptionChanged), plan_version=3),
    replace(_sample(CreditsGranted), expires_at=None),
    replace(_sample(UsageRecorded), quantity=Decimal("1E+3"), properties={}),
]


def test_every_account_event_class_has_a_line_type_and_a_sample() -> None:
    assert set(LINE_TYPES) == set(get_args(AccountEvent))
    assert {type(e) for e in EVENTS} == set(get_args(Event))


def test_every_event_written_reads_back_as_the_same_event(tmp_path: Path) -> None:
    written = [*EVENTS, *VARIANTS]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(event_line(e) for e in written))
    events, rejected = read_jsonl(path, account=False)
    assert rejected == []
    assert events == written
    assert [type(e) for e in events] == [type(e) for e in written]
