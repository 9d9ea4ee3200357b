"""`streambill services up | down | status | kafka-tool`: the command-line face of
`streambill.local.services` and `streambill.local.kafka_tools`.

Failures a person can fix (missing program, busy port, a service that exits during
start-up) come out as one sentence on stderr with exit code 1, never a stack trace.
`kafka-tool NAME ARGS...` passes ARGS to the broker's own command NAME and exits with
its exit code (README, "Operator commands").
"""

from __future__ import annotations

import argparse
import sys

from streambill.config.settings import Settings
from streambill.local.kafka_tools import TOOLS, run_tool
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
    tool = actions.add_parser(
        "kafka-tool",
        help="run the broker's own operator command against STREAMBILL_BOOTSTRAP_SERVERS",
        description="Runs NAME from the Maven-resolved Kafka jars with ARGS unchanged, "
        "adding --bootstrap-server (and --command-config for SASL/TLS settings) unless "
        "given. NAME: consumer-groups (kafka-consumer-groups.sh), delete-records "
        "(kafka-delete-records.sh), topics (kafka-topics.sh).",
    )
    tool.add_argument("name", choices=sorted(TOOLS))
    tool.add_argument("args", nargs=argparse.REMAINDER, help="the tool's own options")
    tool.set_defaults(func=_cmd_kafka_tool)


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


def _cmd_kafka_tool(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return run_tool(settings, args.name, args.args).returncode
    except (ServiceError, ValueError) as error:
        sys.stderr.write(f"streambill services kafka-tool: {error}\n")
        return 1
