"""`streambill services up | down | status`: the command-line face of `streambill.local.services`.

Failures a person can fix (missing program, busy port, a service that exits during
start-up) come out as one sentence on stderr with exit code 1, never a stack trace.
"""

from __future__ import annotations

import argparse
import sys

from streambill.config.settings import Settings
from streambill.local.procs import ServiceError
from streambill.local.services import down, kafka_status, redis_status, up


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("services", help="local Kafka and Redis (no Docker)")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("up", help="start Kafka and Redis; return when both answer").set_defaults(
        func=_cmd_up
    )
    actions.add_parser("down", help="stop the services `up` started").set_defaults(func=_cmd_down)
    actions.add_parser(
        "status", help="what runs and where (exit 0 only if both answer)"
    ).set_defaults(func=_cmd_status)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _fail(error: ServiceError) -> int:
    sys.stderr.write(f"streambill services: {error}\n")
    return 1


def _cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    try:
        for status in up(settings):
            _say(status.describe().replace(": running", ": already running"))
    except ServiceError as error:
        return _fail(error)
    return 0


def _cmd_down(args: argparse.Namespace, settings: Settings) -> int:
    try:
        for name, was_running in down(settings):
            _say(f"{name}: stopped" if was_running else f"{name}: was not running")
    except ServiceError as error:
        return _fail(error)
    return 0


def _cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    statuses = [kafka_status(settings), redis_status(settings)]
    for status in statuses:
        _say(status.describe())
    return 0 if all(s.pid is not None and s.answers for s in statuses) else 3
