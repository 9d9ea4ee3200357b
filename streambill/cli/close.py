"""`streambill close`: close a billing period, or every period that is due.

    streambill close --period 2025-03 [--grace 1d] [--dry-run] [--customer ID]
    streambill close --auto [--grace 1d] [--every 1h] [--metrics-port 9108]

Summary and progress go to stderr; with --dry-run (or --print) the invoices go to
stdout, one JSON document per line. Exit codes: 0 done (or no-op), 2 refused (not
due, out of order, bad arguments), 1 failed (nothing further was written).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY, start_http_server

from billing.errors import CatalogError
from processors.close.auto import close_due
from processors.close.parallel import close_deps
from processors.close.plan import ClosePlanError, Month, parse_duration
from processors.close.progress import CloseMetrics
from processors.close.run import (
    CloseDeps,
    CloseError,
    CloseOptions,
    CloseReport,
    close_period,
)
from processors.close.setup import prepare_process
from streambill.config.settings import Settings
from streambill.wire.kafka_log import KafkaLog, LogError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("close", help="close a billing period into invoices")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--period", help="YYYY-MM: every customer period ending in that month")
    which.add_argument("--auto", action="store_true", help="close every period that is due")
    p.add_argument("--grace", default="1d", help="wait for late usage after month end (1d)")
    p.add_argument("--dry-run", action="store_true", help="show the invoices, write nothing")
    p.add_argument("--customer", help="close only this customer (PeriodClosed not recorded)")
    p.add_argument(
        "--lookback",
        type=int,
        default=1,
        help="closed months still adjusted for late usage; never fewer than the"
        " worker's STREAMBILL_MAX_LATENESS reaches (2 for 35 days): this only widens it",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="processes for the fold (default: 2, or 1 on a one-core machine)",
    )
    p.add_argument("--print", action="store_true", help="print the invoices as JSON lines")
    p.add_argument("--every", help="with --auto: keep running, checking at this interval")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    p.add_argument("--now", help=argparse.SUPPRESS)  # ISO time: a frozen clock, for tests
    p.set_defaults(func=run)


def _deps(args: argparse.Namespace, settings: Settings, log: KafkaLog) -> CloseDeps:
    from streambill.wire.catalog_source import process_catalog
    from streambill.wire.codec import Codec

    frozen = datetime.fromisoformat(args.now) if args.now else None

    def clock() -> datetime:
        return frozen if frozen is not None else datetime.now(UTC)

    catalog = process_catalog(settings, Codec(), lambda line: sys.stderr.write(line + "\n"))
    return close_deps(
        settings, log, catalog, clock, workers=args.workers, metrics=CloseMetrics(REGISTRY)
    )


def invoice_json(report: CloseReport) -> list[dict[str, Any]]:
    out = []
    for priced, _ in report.invoices:
        inv = priced.invoice
        out.append(
            {
                "why": priced.why,
                "invoice_id": inv.invoice_id,
                "kind": inv.kind,
                "customer_id": inv.customer_id,
                "plan_id": inv.plan_id,
                "period_start": inv.period_start.isoformat(),
                "period_end": inv.period_end.isoformat(),
                "currency": inv.currency,
                "total": str(inv.total),
                "adjusts_invoice_id": inv.adjusts_invoice_id,
                "lines": [
                    {
                        "description": ln.description,
                        "quantity": str(ln.quantity),
                        "unit_price": str(ln.unit_price),
                        "amount": str(ln.amount),
                    }
                    for ln in inv.lines
                ],
            }
        )
    return out


def _say(report: CloseReport) -> None:
    f = report.fold
    totals = ", ".join(f"{c} {t}" for c, t in sorted(report.totals().items())) or "nothing"
    verdict = {
        "no_op": "no-op: already closed with these watermarks, nothing new billed",
        "dry_run": "dry run: nothing written",
        "closed": "closed",
    }[report.status]
    sys.stderr.write(
        f"period {report.month}: {verdict}; {len(report.invoices)} invoice(s) ({totals}),"
        f" {report.sent} sent, {report.already_on_topic} already on the topic;"
        f" {f.events_read:,} events read, {f.customers:,} customers, {f.duplicates} duplicates,"
        f" rejected {f.rejected or 'none'}, refused at the doors {f.undecodable or 'none'}"
        f" in {report.seconds:.1f}s\n"
    )
    for note in report.notes:
        sys.stderr.write(f"note: {note}\n")


def _print(report: CloseReport) -> None:
    for doc in invoice_json(report):
        sys.stdout.write(json.dumps(doc, sort_keys=True) + "\n")


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        grace = parse_duration(args.grace)
        every = parse_duration(args.every) if args.every else None
        month = Month.parse(args.period) if args.period else None
    except ClosePlanError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    if args.metrics_port:
        start_http_server(args.metrics_port)
    log = KafkaLog(settings.kafka_config())
    try:
        deps = _deps(args, settings, log)
        prepare_process()
        while True:
            if month is not None:
                opts = CloseOptions(month, grace, args.dry_run, args.customer, args.lookback)
                reports = [close_period(deps, opts)]
            else:
                reports = close_due(deps, grace, args.lookback)
                if not reports:
                    sys.stderr.write(
                        "nothing due: every period whose end + grace passed is closed\n"
                    )
            for report in reports:
                _say(report)
                if args.dry_run or args.print:
                    _print(report)
            if every is None or month is not None:
                return 0
            time.sleep(every.total_seconds())
    except ClosePlanError as exc:
        sys.stderr.write(f"refused: {exc}\n")
        return 2
    except (CloseError, LogError) as exc:
        sys.stderr.write(f"failed: {exc}\n")
        return 1
    except CatalogError as exc:
        sys.stderr.write("refused: the catalog: " + "; ".join(exc.problems) + "\n")
        return 2
    finally:
        log.close()
