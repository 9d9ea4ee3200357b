"""The plan record has a schema of its own (issue 20): a consumer of period-closes
that reads values alone can no longer take it for a second close of the month; plan
records written before (a PeriodClosed with no invoices under `YYYY-MM/plan`) are
still honoured, so a close interrupted across the upgrade reads what it planned."""

from __future__ import annotations

from billing.events import PeriodClosed, PeriodClosePlanned
from processors.close.run import snapshot
from streambill.wire.convert import decode_value, encode_value
from tests.close_support import TOPICS, Harness, load_example_catalog, subscribe, usage, utc


def _values(h: Harness) -> list[tuple[bytes | None, object]]:
    return [
        (r.key, decode_value(h.codec, r.value))
        for part in h.log.topics[TOPICS.closes]
        for r in part
    ]


def test_a_close_writes_a_plan_record_and_one_period_closed() -> None:
    h = Harness(load_example_catalog())
    h.publish([subscribe("cus_a", "writer", utc(2026, 10, 1))])
    h.now = utc(2026, 11, 3)
    h.close("2026-10")
    values = dict(_values(h))
    assert {k: type(v) for k, v in values.items()} == {
        b"2026-10/plan": PeriodClosePlanned,
        b"2026-10": PeriodClosed,
    }
    plan, closed = values[b"2026-10/plan"], values[b"2026-10"]
    assert isinstance(plan, PeriodClosePlanned) and isinstance(closed, PeriodClosed)
    assert plan.watermarks == closed.watermarks and plan.planned_at == utc(2026, 11, 3)


def test_a_plan_record_of_the_old_form_still_fixes_the_watermarks() -> None:
    h = Harness(load_example_catalog())
    h.publish([subscribe("cus_a", "writer", utc(2026, 10, 1))])
    h.publish([usage("cus_a", "tokens", 150_000, utc(2026, 10, 5))])
    ends = snapshot(h.log, TOPICS)  # planned before the second usage event arrived
    old = PeriodClosed("2026-10", ends, utc(2026, 11, 2), 0, {})
    h.log.produce(TOPICS.closes, b"2026-10/plan", encode_value(h.codec, old), 0)
    h.publish([usage("cus_a", "tokens", 500_000, utc(2026, 10, 20))])  # after the plan
    h.now = utc(2026, 11, 3)
    report = h.close("2026-10")
    assert report.watermarks == ends
    ((priced, _),) = report.invoices
    assert str(priced.invoice.total) == "20.00"  # 150,000 tokens: 19.00 + 50k at 0.02
