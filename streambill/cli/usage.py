"""`streambill report | tail`: publish usage, read topics decoded.

    streambill report --customer cus_abc123 --feature tokens --quantity 1500 \\
        --property model=gpt-4o
    streambill tail usage-events --from-beginning --max 10 --timeout 5

`streambill demo` lives in `streambill.local.demo`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from streambill.config.settings import ALL_TOPICS, Settings
from streambill.sdk.client import DeliveryError, UsageClient, ValidationError
from streambill.wire.codec import Codec
from streambill.wire.tail import TailError, dumps, read, render


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = sub.add_parser("report", help="publish one usage event")
    report.add_argument("--customer", required=True, help="customer id (the message key)")
    report.add_argument("--feature", required=True, help="feature id, e.g. tokens")
    report.add_argument("--quantity", required=True, help="decimal quantity, e.g. 1500 or 0.5")
    report.add_argument("--property", action="append", default=[], metavar="K=V", help="repeatable")
    report.add_argument("--event-id", help="idempotency key (default: a new UUIDv7)")
    report.add_argument("--timestamp", help="event time, RFC 3339 with offset (default: now)")
    report.set_defaults(func=cmd_report)

    tail = sub.add_parser("tail", help="print a topic's values decoded, one JSON per line")
    tail.add_argument("topic", choices=ALL_TOPICS, help="logical topic name")
    tail.add_argument("--from-beginning", action="store_true", help="default: new messages")
    tail.add_argument("--max", type=int, default=None, help="stop after N messages")
    tail.add_argument(
        "--timeout", type=float, default=None, help="stop after S seconds without a message"
    )
    tail.set_defaults(func=cmd_tail)


def _say(message: str) -> None:
    sys.stdout.write(message + "\n")


def _error(message: str) -> None:
    sys.stderr.write(f"streambill: {message}\n")


def _properties(pairs: list[str]) -> dict[str, str]:
    props: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValidationError("properties", f"expected K=V, got {pair!r}")
        props[key] = value
    return props


def _timestamp(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError("timestamp", f"not an RFC 3339 time: {text!r}") from None
    if value.utcoffset() is None:
        raise ValidationError("timestamp", "needs an offset, e.g. 2025-03-14T09:26:53Z")
    return value


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    try:
        with UsageClient(settings) as client:
            event_id = client.report(
                args.customer,
                args.feature,
                args.quantity,
                event_id=args.event_id,
                timestamp=_timestamp(args.timestamp),
                properties=_properties(args.property),
            )
    except ValidationError as err:
        _error(f"invalid {err}")
        return 2
    except DeliveryError as err:
        _error(str(err))
        return 1
    sys.stdout.write(event_id + "\n")
    return 0


def cmd_tail(args: argparse.Namespace, settings: Settings) -> int:
    codec = Codec()
    try:
        for msg in read(
            settings,
            args.topic,
            from_beginning=args.from_beginning,
            max_messages=args.max,
            idle_timeout=args.timeout,
        ):
            sys.stdout.write(dumps(render(args.topic, msg, codec)) + "\n")
            sys.stdout.flush()
    except TailError as err:
        _error(str(err))
        return 1
    except KeyboardInterrupt:
        return 0
    return 0
