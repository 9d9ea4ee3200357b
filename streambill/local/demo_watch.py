"""What the demo watches while usage flows: how far the fold worker got, the alerts
it raised and a few customers' balances as the API serves them.

Progress of the worker is read from its consumer group's committed offsets against
the input topics' high watermarks (nothing joins the group: `committed()` only asks
the group coordinator). The worker commits acknowledged offsets on a timer, so the
figure trails the real position by a few seconds at most.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

from confluent_kafka import Consumer, TopicPartition

from billing.events import AlertRaised, AlertResolved
from streambill.config.settings import ACCOUNT_EVENTS, BILLING_ALERTS, USAGE_EVENTS, Settings
from streambill.local.demo_procs import get_json
from streambill.wire.codec import Codec, DecodeError
from streambill.wire.convert import InvalidField, decode_value


class WorkerProgress:
    """Committed offsets of the fold worker's group versus the inputs' end offsets."""

    def __init__(self, settings: Settings) -> None:
        self._group = settings.worker_group()
        self._topics = [settings.topic(ACCOUNT_EVENTS), settings.topic(USAGE_EVENTS)]
        self._consumer = Consumer(
            settings.kafka_config(**{"group.id": self._group, "enable.auto.commit": False})
        )
        self._tps = [
            TopicPartition(t, p)
            for t in self._topics
            for p in self._consumer.list_topics(t, timeout=10).topics[t].partitions
        ]

    def lag(self, logical: str | None = None) -> tuple[int, int]:
        """(messages not yet committed by the worker, messages in the log), over both
        inputs or only `logical`."""
        wanted = (
            self._tps if logical is None else [tp for tp in self._tps if tp.topic.endswith(logical)]
        )
        committed = self._consumer.committed(wanted, timeout=10)
        behind = total = 0
        for tp in committed:
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=10, cached=False
            )
            done = tp.offset if tp.offset >= 0 else low
            behind += max(high - done, 0)
            total += high - low
        return behind, total

    def close(self) -> None:
        self._consumer.close()


@dataclass
class AlertCounter:
    """Counts AlertRaised / AlertResolved on billing-alerts, from the beginning."""

    settings: Settings
    codec: Codec
    raised: Counter[str] = field(default_factory=Counter)
    resolved: int = 0

    def __post_init__(self) -> None:
        topic = self.settings.topic(BILLING_ALERTS)
        self._consumer = Consumer(
            self.settings.kafka_config(
                **{"group.id": f"{topic}.demo-view", "enable.auto.commit": False}
            )
        )
        parts = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, 0) for p in parts])

    def poll(self) -> None:
        while True:
            msgs = self._consumer.consume(num_messages=5000, timeout=0.05)
            if not msgs:
                return
            for msg in msgs:
                if msg.error() is not None or msg.value() is None:
                    continue
                try:
                    value = decode_value(self.codec, msg.value())
                except (DecodeError, InvalidField):
                    continue
                if isinstance(value, AlertRaised):
                    self.raised[f"{value.kind} {value.threshold_percent}%"] += 1
                elif isinstance(value, AlertResolved):
                    self.resolved += 1

    def close(self) -> None:
        self._consumer.close()


def balance_line(api: str, admin_key: str, customer_ids: list[str]) -> str:
    """`cus_x credits 312 | cus_y USD 1.84 ...` as the API answers now."""
    parts = []
    for cid in customer_ids:
        body = get_json(f"{api}/v1/customers/{cid}/balance", {"x-admin-key": admin_key})
        if not isinstance(body, dict):
            parts.append(f"{cid[-5:]} ?")
            continue
        allowed = "" if body.get("allowed", True) else " DENY"
        if body.get("credits_remaining") is not None:
            parts.append(f"{cid[-5:]} {_short(body['credits_remaining'])} cr{allowed}")
        elif body.get("balance") is not None:
            parts.append(f"{cid[-5:]} ${_short(body['balance'])}{allowed}")
    return " | ".join(parts)


def _short(amount: str) -> str:
    """A decimal string cut to 2 places for display (the API value stays exact)."""
    whole, _, frac = amount.partition(".")
    return whole if not frac else f"{whole}.{frac[:2]}"


def bar(done: int, total: int, width: int = 24) -> str:
    filled = width if total == 0 else min(width, done * width // total)
    return "[" + "#" * filled + "." * (width - filled) + "]"


class StatusLine:
    """One line on stderr, rewritten in place on a terminal, else printed now and then."""

    def __init__(self, out: TextIO = sys.stderr) -> None:
        self._out = out
        self._tty = out.isatty()
        self._next_plain = 0.0

    def show(self, text: str, final: bool = False) -> None:
        if self._tty:
            self._out.write("\r\x1b[K" + text + ("\n" if final else ""))
        elif final or time.monotonic() >= self._next_plain:
            self._out.write(text + "\n")  # not a terminal: a line every 5 seconds
            self._next_plain = time.monotonic() + 5.0
        self._out.flush()
