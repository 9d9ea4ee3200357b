"""CLI commands of the read side: `projector`, `projections rebuild`, `api`, `token issue`,
`api-key create`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from typing import Any

from billing.errors import CatalogError
from projections.http import keys, tokens
from projections.read.rebuild import rebuild
from projections.wiring import (
    build_applier,
    build_plans,
    build_projector,
    build_rebuild_consumer,
    build_sessions,
    build_store,
)
from streambill.config.settings import Settings


def register(subparsers: Any) -> None:
    projector = subparsers.add_parser("projector", help="keep the Redis read models up to date")
    projector.add_argument("--batch-size", type=int, default=500)
    projector.set_defaults(func=run_projector)

    projections = subparsers.add_parser("projections", help="read-model maintenance")
    proj_sub = projections.add_subparsers(dest="projections_command", required=True)
    rebuild_p = proj_sub.add_parser("rebuild", help="clear the read models, replay the topics")
    rebuild_p.set_defaults(func=run_rebuild)

    api = subparsers.add_parser("api", help="serve the HTTP API and the customer portal")
    api.add_argument("--host", default=None, help="default: settings.api_host (127.0.0.1)")
    api.add_argument("--port", type=int, default=None, help="default: settings.api_port (8080)")
    api.add_argument("--workers", type=int, default=1)
    api.set_defaults(func=run_api)

    token = subparsers.add_parser("token", help="customer tokens for the API and the portal")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    issue = token_sub.add_parser("issue", help="print a signed token scoped to one customer")
    issue.add_argument("--customer", required=True)
    issue.add_argument("--ttl", default=None, help="e.g. 3600, 15m, 12h, 7d (default 24h)")
    issue.set_defaults(func=run_token_issue)

    api_key = subparsers.add_parser("api-key", help="scoped API keys (ingest, read, admin)")
    key_sub = api_key.add_subparsers(dest="api_key_command", required=True)
    create = key_sub.add_parser(
        "create", help="print a new key once, and the line to add to STREAMBILL_API_KEYS_FILE"
    )
    create.add_argument("--name", required=True, help="shown in logs, e.g. producer-eu")
    create.add_argument("--scope", required=True, choices=keys.SCOPES)
    create.set_defaults(func=run_api_key_create)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def run_projector(args: argparse.Namespace, settings: Settings) -> int:
    """The projector's metrics live on a registry of their own, served on
    `projector_metrics_port` when set (as the worker's on `worker_metrics_port`)."""
    from prometheus_client import CollectorRegistry, start_http_server

    from projections.read.metrics import ProjectorMetrics

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    registry = CollectorRegistry()
    metrics = ProjectorMetrics(registry)
    if settings.projector_metrics_port:
        start_http_server(settings.projector_metrics_port, registry=registry)
    store = build_store(settings)
    projector = build_projector(settings, store, batch_size=args.batch_size, metrics=metrics)
    projector.run(_stop_on_signals())
    return 0


def run_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    store = build_store(settings)
    consumer = build_rebuild_consumer(settings)

    def progress(done: int, total: int) -> None:
        share = 100 if total == 0 else done * 100 // total
        sys.stderr.write(f"\rrebuild: {done}/{total} records ({share}%)")
        sys.stderr.flush()

    try:
        result = rebuild(consumer, build_applier(settings, store), progress=progress)
    finally:
        consumer.close()
    sys.stderr.write("\n")
    sys.stdout.write(
        f"rebuilt from {result.records} records: {result.applied} applied, "
        f"{result.skipped_bad} skipped as undecodable, in {result.seconds:.1f}s\n"
    )
    return 0


def run_api(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from projections.http.app import create_app
    from streambill.sdk.client import UsageClient

    problems = settings_secret_problems(settings)
    if problems:
        for problem in problems:
            sys.stderr.write(f"streambill api: {problem}\n")
        return 2
    store = build_store(settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        plans = build_plans(settings)
    except CatalogError as exc:  # no catalog to check plan commands against
        sys.stderr.write(f"streambill api: {exc}\n")
        return 2
    with UsageClient(settings) as sdk:
        try:
            app = create_app(settings, store, sdk, sessions=build_sessions(settings), plans=plans)
        except ValueError as exc:  # an unreadable keys file, a bad setting: refuse to start
            sys.stderr.write(f"streambill api: {exc}\n")
            return 2
        uvicorn.run(
            app,
            host=args.host or settings.api_host,
            port=args.port or settings.api_port,
            log_level="warning",
            access_log=False,
        )
    return 0


def settings_secret_problems(settings: Settings) -> list[str]:
    """`projections.http.auth.secret_problems` of the configured secrets."""
    from projections.http.auth import secret_problems

    return secret_problems(
        settings.admin_key.get_secret_value() if settings.admin_key else None,
        settings.token_secret.get_secret_value() if settings.token_secret else None,
    )


def run_token_issue(args: argparse.Namespace, settings: Settings) -> int:
    """Print a token for `--customer`; a missing or short secret, an empty customer or a
    bad ttl is one sentence on stderr and exit code 2, never a traceback."""
    if settings.token_secret is None:
        sys.stderr.write("streambill token: STREAMBILL_TOKEN_SECRET is not set\n")
        return 2
    try:
        ttl = tokens.parse_ttl(args.ttl or settings.token_ttl)
        token = tokens.issue(
            settings.token_secret.get_secret_value().encode("utf-8"),
            args.customer,
            now=int(time.time()),
            ttl_seconds=ttl,
        )
    except ValueError as exc:
        sys.stderr.write(f"streambill token: {exc}\n")
        return 2
    sys.stdout.write(token + "\n")
    return 0


def run_api_key_create(args: argparse.Namespace, settings: Settings) -> int:
    """Print a new scoped key (shown this once: only its salted digest is kept) and
    the line that enables it; a bad name is one sentence on stderr and exit code 2."""
    try:
        presented, entry = keys.create(args.name, args.scope)
    except ValueError as exc:
        sys.stderr.write(f"streambill api-key: {exc}\n")
        return 2
    where = settings.api_keys_file or "the file named by STREAMBILL_API_KEYS_FILE"
    sys.stdout.write(
        f"key (shown once, give it to the client as header x-api-key):\n{presented}\n"
        f"line to add to {where}:\n{entry.line()}\n"
    )
    return 0
