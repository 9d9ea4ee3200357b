"""CLI commands of the processors: `streambill worker` and `streambill dlq replay`.

This is where the worker's dependencies (catalog, codec, metrics registry, clock)
are built and handed to `create_worker`.
"""

from __future__ import annotations

import argparse
import gc
import logging
from collections.abc import Callable
from typing import Any

from billing.events import RejectReason
from streambill.config.settings import Settings


def register(subparsers: Any) -> None:
    worker = subparsers.add_parser("worker", help="run the real-time fold worker (Faust)")
    worker.add_argument("--loglevel", default="info")
    worker.set_defaults(func=run_worker)

    dlq = subparsers.add_parser("dlq", help="dead letters on usage-rejected")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    replay = dlq_sub.add_parser(
        "replay", help="republish dead letters that can now succeed to their source topic"
    )
    replay.add_argument(
        "--reason",
        action="append",
        choices=[r.value for r in RejectReason],
        help="only dead letters with this reason (repeatable; default: all replayable)",
    )
    replay.set_defaults(func=run_dlq_replay)


def _codec(settings: Settings) -> Any:
    from streambill.wire.codec import Codec

    return Codec()


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    from prometheus_client import CollectorRegistry, start_http_server

    from processors.worker.metrics import WorkerMetrics
    from processors.worker.worker import create_worker
    from streambill.wire.catalog_source import process_catalog

    settings.worker_data_dir.mkdir(parents=True, exist_ok=True)
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, registry=registry)
    starters: list[Callable[[], object]] = []  # the liveness watchdog (thread)
    codec = _codec(settings)
    runtime, _ = create_worker(
        settings,
        process_catalog(settings, codec, logging.getLogger("streambill.worker").warning),
        codec=codec,
        metrics=metrics,
        starters=starters,
    )
    runtime.run(args.loglevel, [_tune_gc, *starters])  # run once Faust's worker is made
    return 0


def _tune_gc() -> None:
    """Move everything allocated at startup (modules, catalog, schemas) out of the
    collector's sight and collect the young generation less often: the fold makes
    many short-lived objects but few cycles, and with the default threshold (700)
    the collector kept rescanning the long-lived heap (the records kept between
    batches). Memory is still bounded: the generations are collected, only later."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def run_dlq_replay(args: argparse.Namespace, settings: Settings) -> int:
    from processors.worker.dlq import replay
    from processors.worker.worker import utc_now

    logging.basicConfig(level=logging.INFO)
    reasons = {RejectReason(r) for r in args.reason} if args.reason else None
    report = replay(settings, _codec(settings), reasons, utc_now)
    skipped = ", ".join(f"{k}={v}" for k, v in sorted(report.skipped.items())) or "none"
    logging.getLogger("streambill.dlq").info(
        "scanned %d dead letters, replayed %d, skipped: %s",
        report.scanned,
        report.replayed,
        skipped,
    )
    return 0
