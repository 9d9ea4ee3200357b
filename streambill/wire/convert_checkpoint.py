"""Conversions of `billing.events.CustomerCheckpointed`, the close-checkpoints value,
and of `PeriodClosePlanned`, the close's plan record on period-closes.

Validated like every output read back (`streambill.wire.convert`): a field of the
wrong type or out of its Avro range raises `InvalidField` naming it. The state JSON
is carried as text and parsed by `billing.state_codec` where it is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from billing.events import CustomerCheckpointed, PeriodClosePlanned
from streambill.wire.convert_outputs import watermarks_from, watermarks_to
from streambill.wire.fields import (
    InvalidField,
    int_from,
    int_to,
    opt_int_from,
    opt_int_to,
    opt_time_from,
    opt_time_to,
    str_from,
    time_from,
    time_to,
)

CUSTOMER_CHECKPOINTED = "streambill.closes.v1.CustomerCheckpointed"
PERIOD_CLOSE_PLANNED = "streambill.closes.v1.PeriodClosePlanned"


def to_avro_period_close_planned(c: PeriodClosePlanned) -> dict[str, Any]:
    return {
        "period_id": c.period_id,
        "watermarks": watermarks_to(c.watermarks),
        "planned_at": time_to(c.planned_at, "planned_at"),
    }


def from_avro_period_close_planned(r: Mapping[str, Any]) -> PeriodClosePlanned:
    return PeriodClosePlanned(
        period_id=str_from(r, "period_id"),
        watermarks=watermarks_from(r),
        planned_at=time_from(r, "planned_at"),
    )


def to_avro_customer_checkpointed(c: CustomerCheckpointed) -> dict[str, Any]:
    return {
        "customer_id": c.customer_id,
        "period_id": c.period_id,
        "partition": int_to(c.partition, "partition"),
        "usage_offset": int_to(c.usage_offset, "usage_offset", bits=64),
        "account_offset": int_to(c.account_offset, "account_offset", bits=64),
        "watermark_ms": opt_int_to(c.watermark_ms, "watermark_ms", bits=64),
        "complete_from": opt_time_to(c.complete_from, "complete_from"),
        "state": c.state,
        "recent": list(c.recent),
        "skipped": [
            {
                "offset": int_to(o, f"skipped[{i}].offset", bits=64),
                "event_time_ms": int_to(t, f"skipped[{i}].event_time_ms", bits=64),
            }
            for i, (o, t) in enumerate(c.skipped)
        ],
        "pending": [int_to(o, f"pending[{i}]", bits=64) for i, o in enumerate(c.pending)],
        "window_offset": opt_int_to(c.window_offset, "window_offset", bits=64),
    }


def from_avro_customer_checkpointed(r: Mapping[str, Any]) -> CustomerCheckpointed:
    recent = r.get("recent", [])
    if not isinstance(recent, list) or not all(isinstance(b, bytes) for b in recent):
        raise InvalidField("recent", "expected an array of bytes")
    skipped = r.get("skipped", [])
    if not isinstance(skipped, list) or not all(isinstance(s, Mapping) for s in skipped):
        raise InvalidField("skipped", "expected an array of records")
    pending = r.get("pending", [])
    if not isinstance(pending, list):
        raise InvalidField("pending", "expected an array of offsets")
    return CustomerCheckpointed(
        customer_id=str_from(r, "customer_id"),
        period_id=str_from(r, "period_id"),
        partition=int_from(r, "partition"),
        usage_offset=int_from(r, "usage_offset", bits=64),
        account_offset=int_from(r, "account_offset", bits=64),
        watermark_ms=opt_int_from(r, "watermark_ms", bits=64),
        complete_from=opt_time_from(r, "complete_from"),
        state=str_from(r, "state"),
        recent=tuple(recent),
        skipped=tuple(
            (
                int_from(s, "offset", path=f"skipped[{i}]", bits=64),
                int_from(s, "event_time_ms", path=f"skipped[{i}]", bits=64),
            )
            for i, s in enumerate(skipped)
        ),
        pending=tuple(int_to(o, f"pending[{i}]", bits=64) for i, o in enumerate(pending)),
        window_offset=opt_int_from(r, "window_offset", bits=64),
    )
