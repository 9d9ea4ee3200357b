"""The demo's proof that what it published is on Kafka.

A handful of the usage events the SDK sent (the first of each plan, so several
plans and features) are read back from usage-events by a consumer of their own
(`streambill.wire.tail`, no consumer group offsets), printed decoded as one JSON document
each, and compared with what was sent: the record equals `to_avro(sent)`, the
domain value `from_avro(record)` equals the sent event, the key is the customer id
and the message timestamp the event time. A missing or different event raises
`DemoError`: the demo fails rather than print a claim it did not check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import closing

from confluent_kafka import Message

from billing.events import UsageRecorded
from streambill.config.settings import USAGE_EVENTS, Settings
from streambill.local.demo_load import DemoCustomer
from streambill.local.demo_procs import DemoError
from streambill.wire import tail
from streambill.wire.codec import Codec, DecodeError
from streambill.wire.convert import InvalidField, from_avro, to_avro
from streambill.wire.fields import to_millis

SAMPLE_SIZE = 6


def pick_sample(
    published: Sequence[UsageRecorded], plan_of: Mapping[str, str], size: int = SAMPLE_SIZE
) -> list[UsageRecorded]:
    """The first published event of each plan, then the earliest others, up to `size`,
    in publishing order."""
    picked: list[int] = []
    plans: set[str | None] = set()
    for i, event in enumerate(published):
        plan = plan_of.get(event.customer_id)
        if plan not in plans and len(picked) < size:
            plans.add(plan)
            picked.append(i)
    rest = (i for i in range(len(published)) if i not in picked)
    while len(picked) < min(size, len(published)):
        picked.append(next(rest))
    return [published[i] for i in sorted(picked)]


def read_back(
    settings: Settings,
    codec: Codec,
    published: Sequence[UsageRecorded],
    customers: Sequence[DemoCustomer],
    limit: int,
) -> list[str]:
    """A sample of `published` (`pick_sample`) found on usage-events, reading at most
    `limit` messages from the beginning: JSON lines in publishing order, then the
    verdict line. Raises `DemoError` if one is missing or differs from what was sent."""
    sample = pick_sample(published, {c.customer_id: c.plan_id for c in customers})
    found = _find(settings, codec, sample, limit)
    missing = [e.event_id for e in sample if e.event_id not in found]
    if missing:
        raise DemoError(
            f"read back {len(found)} of {len(sample)} published events from Kafka; "
            f"missing: {', '.join(missing)}"
        )
    differences = [d for e in sample if (d := difference(e, found[e.event_id], codec))]
    if differences:
        raise DemoError(
            "events read back from Kafka differ from what was sent: " + "; ".join(differences)
        )
    lines = [tail.dumps(tail.render(USAGE_EVENTS, found[e.event_id], codec)) for e in sample]
    n = len(sample)
    return [*lines, f"read back {n} of {n} published events from Kafka, equal to what was sent"]


def _find(
    settings: Settings, codec: Codec, sample: Sequence[UsageRecorded], limit: int
) -> dict[str, Message]:
    """The first message of each sampled event id; only messages keyed by a sampled
    customer are decoded."""
    wanted = {e.event_id for e in sample}
    keys = {e.customer_id.encode("utf-8") for e in sample}
    found: dict[str, Message] = {}
    messages = tail.read(
        settings, USAGE_EVENTS, from_beginning=True, max_messages=limit, idle_timeout=15.0
    )
    try:
        with closing(messages):
            for msg in messages:
                if msg.key() not in keys:
                    continue
                event_id = _event_id(codec, msg)
                if event_id in wanted and event_id not in found:
                    found[event_id] = msg
                    if len(found) == len(wanted):
                        break
    except tail.TailError as exc:
        raise DemoError(f"cannot read the published events back: {exc}") from exc
    return found


def _event_id(codec: Codec, msg: Message) -> str | None:
    try:
        return str(codec.decode(msg.value())[1].get("event_id"))
    except DecodeError:
        return None  # not decodable: cannot be one we look for (it would stay missing)


def difference(sent: UsageRecorded, msg: Message, codec: Codec) -> str | None:
    """What differs between the event sent and the message read back (None: nothing)."""
    name, record = codec.decode(msg.value())
    expected_name, expected = to_avro(sent)
    problems = []
    if (name, record) != (expected_name, expected):
        problems.append(f"record {name} {record!r} != sent {expected_name} {expected!r}")
    try:
        if from_avro(name, record) != sent:
            problems.append("decoded value != sent event")
    except InvalidField as exc:
        problems.append(f"invalid field {exc}")
    if msg.key() != sent.customer_id.encode("utf-8"):
        problems.append(f"key {msg.key()!r} is not the customer id")
    if msg.timestamp()[1] != to_millis(sent.timestamp):
        problems.append(f"message timestamp {msg.timestamp()[1]} is not the event time")
    return f"{sent.event_id}: {', '.join(problems)}" if problems else None
