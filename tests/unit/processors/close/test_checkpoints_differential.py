"""Closes that resume from checkpoints bill exactly what closes folding from the log
start bill, and keep doing so once retention deleted what they no longer read.

The differential test's generated histories (late usage up to beyond the window,
retries, conflicting ids, wrong partitions, plan and seat changes, purchases and
top-ups) run through three harnesses, the four closes each at its due time:
- `fresh`: checkpoints off, every close folds from the log start (the reference);
- `resumed`: each close after the first resumes from its predecessor's checkpoints;
- `trimmed`: as `resumed`, and after each close the records the next close does not
  read are deleted (account events below its watermark, usage below the dedupe
  windows the checkpoints name), as retention would.
Every invoice must be byte-identical across the three, and every PeriodClosed total.
"""

from __future__ import annotations

import dataclasses
import os

from hypothesis import HealthCheck, event, given, settings

from billing.events import CustomerCheckpointed, PeriodClosed
from processors.close.plan import ACCOUNT, CHECKPOINTS, USAGE, Month
from streambill.wire.convert import decode_value
from tests.close_support import TOPICS, Harness
from tests.unit.processors.test_differential import (
    CATALOG,
    CLOSES,
    POLICY,
    Arrival,
    histories,
    place,
)

NO_CHECKPOINTS = dataclasses.replace(TOPICS, checkpoints="")


def _run(
    history: list[Arrival], *, checkpoints: bool, trim: bool, until: str = "9999-12"
) -> Harness:
    """The history through the closes due by each arrival, those after `until` left out."""
    h = Harness(CATALOG)
    h.deps_topics = TOPICS if checkpoints else NO_CHECKPOINTS  # type: ignore[attr-defined]
    h.arrived = []  # type: ignore[attr-defined]  # the input records in arrival order
    pending = [c for c in CLOSES if c[0] <= until]

    def close(month: str) -> None:
        deps = dataclasses.replace(h.deps(), topics=h.deps_topics, policy=POLICY)  # type: ignore[attr-defined]
        from processors.close.run import CloseOptions, close_period

        report = close_period(deps, CloseOptions(Month.parse(month)))
        event(f"resumed={report.fold.resumed}")
        if trim:
            _trim(h, report.watermarks, Month.parse(month))

    for arrival in history:
        while pending and pending[0][1] <= arrival.at:
            close(pending.pop(0)[0])
        h.arrived.append(place(h, arrival))  # type: ignore[attr-defined]
    for month, _ in pending:
        close(month)
    return h


def _trim(h: Harness, marks: dict[str, dict[int, int]], month: Month) -> None:
    """Delete everything the close after `month` does not read: account events below
    the watermarks; usage below the watermarks, below every re-read dedupe window and
    below every pending record the checkpoints just written name."""
    cut = dict(marks[USAGE])
    _, high = h.log.watermarks(TOPICS.checkpoints)
    for batch in h.log.read(TOPICS.checkpoints, marks[CHECKPOINTS], high):
        for r in batch:
            cp = decode_value(h.codec, r.value)
            assert isinstance(cp, CustomerCheckpointed) and cp.period_id == str(month)
            for o in (*cp.pending, *([cp.window_offset] if cp.window_offset is not None else [])):
                cut[cp.partition] = min(cut[cp.partition], o)
    for p, offset in cut.items():
        h.log.delete_before(TOPICS.usage, p, max(offset, h.log.low.get((TOPICS.usage, p), 0)))
    for p, offset in marks[ACCOUNT].items():
        h.log.delete_before(TOPICS.account, p, offset)


def _closes(h: Harness) -> list[tuple[str, object]]:
    out = []
    for part in h.log.topics.get(TOPICS.closes, []):
        for r in part:
            value = decode_value(h.codec, r.value)
            if isinstance(value, PeriodClosed) and r.key is not None and b"/" not in r.key:
                out.append((value.period_id, (value.invoice_count, dict(value.total_by_currency))))
    return sorted(out)


@settings(
    max_examples=int(os.environ.get("STREAMBILL_DIFFERENTIAL_EXAMPLES", "200")) // 2,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(history=histories())
def test_resumed_and_trimmed_closes_bill_what_fresh_closes_bill(history: list[Arrival]) -> None:
    fresh = _run(history, checkpoints=False, trim=False)
    resumed = _run(history, checkpoints=True, trim=False)
    trimmed = _run(history, checkpoints=True, trim=True)
    reference = sorted(data for data, _ in fresh.invoices_on_topic())
    assert sorted(data for data, _ in resumed.invoices_on_topic()) == reference
    assert sorted(data for data, _ in trimmed.invoices_on_topic()) == reference
    assert _closes(resumed) == _closes(trimmed) == _closes(fresh)
    assert not fresh.log.topics.get(TOPICS.checkpoints)
    deleted = sum(trimmed.log.low.values())
    event(f"records deleted > 0: {deleted > 0}")
