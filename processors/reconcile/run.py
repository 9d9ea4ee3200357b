"""`streambill reconcile [--period YYYY-MM]`: the Kafka wiring and the table.

    report = reconcile(settings, period=Month(2026, 10))   # from Python (chaos suite)
    print(render(report)); assert report.ok

Exit code of the command: 0 when every record is accounted for and every check
holds, 1 on any difference (listed), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from billing.catalog import Catalog
from processors.close.plan import ClosePlanError, Month
from processors.close.run import read_history
from processors.close.topics import CloseTopics
from processors.fold.admission import policy_from
from processors.reconcile.live import check_against_live
from processors.reconcile.log import ReconcileReport, read_outputs, reconcile_log
from processors.reconcile.period import check_period
from processors.worker.worker import topics_from
from streambill.config.settings import Settings
from streambill.wire.codec import Codec
from streambill.wire.log import LogPort


def reconcile(
    settings: Settings,
    period: Month | None = None,
    *,
    log: LogPort | None = None,
    catalog: Catalog | None = None,
    codec: Codec | None = None,
    clock: Callable[[], datetime] | None = None,
) -> ReconcileReport:
    """Reconcile the topics named by `settings` (a `KafkaLog` unless `log` is given)."""
    from streambill.wire.catalog_source import process_catalog
    from streambill.wire.kafka_log import KafkaLog

    started = time.monotonic()
    own_log = log is None
    the_log: LogPort = KafkaLog(settings.kafka_config()) if log is None else log
    the_codec = codec or Codec()
    the_catalog = catalog or process_catalog(settings, the_codec)
    now = clock or (lambda: datetime.now(UTC))
    topics = topics_from(settings)
    try:
        read = read_outputs(the_log, topics, the_codec)
        report = reconcile_log(
            the_log, the_codec, the_catalog, topics, policy_from(settings), now, read=read
        )
        close_topics = CloseTopics.of(settings)
        check_against_live(
            the_log,
            the_codec,
            the_catalog,
            usage_topic=topics.usage,
            account_topic=topics.account,
            invoices_topic=close_topics.invoices,
            history=read_history(the_log, close_topics.closes, the_codec),
            dead_letters=read[0].dead_letters,
            report=report,
        )
        if period is not None:
            check_period(
                the_log, the_codec, the_catalog, close_topics, period, now, report,
                policy_from(settings),
            )  # fmt: skip
    finally:
        if own_log:
            the_log.close()  # type: ignore[attr-defined]
    report.seconds = time.monotonic() - started
    return report


def render(report: ReconcileReport) -> str:
    head = ("partition", "in log", "applied", "deduplicated", "dead-lettered", "unaccounted")
    rows: list[tuple[str, list[int]]] = [
        (
            f"{r.topic}/{r.partition}",
            [r.in_log, r.applied, r.deduplicated, r.dead_lettered, r.unaccounted],
        )
        for r in sorted(report.rows, key=lambda r: (r.topic, r.partition))
    ]
    rows.append(("total", [sum(row[1][i] for row in rows) for i in range(5)]))
    width = max([len(head[0]), *(len(name) for name, _ in rows)])
    lines = [f"{head[0]:<{width}}" + "".join(f"{h:>15}" for h in head[1:])]
    for name, values in rows:
        lines.append(f"{name:<{width}}" + "".join(f"{v:>15,}" for v in values))
    lines.append(
        f"customer snapshots equal to the pure fold: {report.snapshots_equal:,}"
        f" of {report.customers:,}"
    )
    effects = ", ".join(f"{n:,} {k}" for k, n in sorted(report.effects.items()))
    lines.append(f"effects of the pure fold checked on their topics: {effects or 'none'}")
    for name, result in report.checks.items():
        lines.append(f"{name}: {result}")
    if report.ok:
        lines.append(f"reconciled: no difference ({report.seconds:.1f}s)")
    else:
        more = report.more_differences
        lines.append(f"DIFFERENCES ({len(report.differences) + more}):")
        lines += [f"  - {d}" for d in report.differences]
        if more:
            lines.append(f"  ... and {more} more")
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "reconcile", help="account for every input event; check outputs against a pure re-run"
    )
    p.add_argument("--period", help="YYYY-MM: also check that closed month's invoices")
    p.set_defaults(func=run)
    r = subparsers.add_parser(
        "worker-rebuild",
        help="rebuild the worker's state from the latest close's checkpoints plus the log"
        " and compare it with the running worker's snapshots",
    )
    r.add_argument(
        "--install",
        metavar="APP_ID",
        help="also install the rebuilt state for workers started with"
        " STREAMBILL_WORKER_APP_ID=APP_ID (a new app id; see the README's runbook)",
    )
    r.set_defaults(func=run_rebuild)


def run_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0: the rebuilt state equals every latest snapshot; 1: differences (listed);
    2: the rebuild cannot run (inputs it needs deleted, no topics)."""
    from processors.reconcile.rebuild import rebuild_worker
    from streambill.wire.catalog_source import process_catalog
    from streambill.wire.kafka_log import KafkaLog, LogError

    log = KafkaLog(settings.kafka_config())
    codec = Codec()
    try:
        report = rebuild_worker(
            log, codec, process_catalog(settings, codec), topics_from(settings),
            CloseTopics.of(settings), policy_from(settings), lambda: datetime.now(UTC),
        )  # fmt: skip
    except (ClosePlanError, LogError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    finally:
        log.close()
    out = sys.stdout
    out.write(
        f"worker rebuild from {report.started_from}: {report.records_folded} records folded,"
        f" {report.customers} customers, {report.equal} equal to their latest snapshot\n"
    )
    for line in report.differences[:50]:
        out.write(f"  {line}\n")
    if len(report.differences) > 50:
        out.write(f"  ... and {len(report.differences) - 50} more\n")
    if args.install:
        from processors.reconcile.switch_over import SwitchOverError, install

        try:
            written = install(settings, report, args.install)
        except SwitchOverError as exc:
            sys.stderr.write(f"error: {exc}\n")
            return 2
        out.write(
            f"installed for app id {args.install}: {written['customers']} customer records,"
            f" {written['seen']} seen entries, {written['snapshots']} corrected snapshots;"
            f" start the workers with STREAMBILL_WORKER_APP_ID={args.install}\n"
        )
        return 0
    return 0 if report.ok else 1


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        month = Month.parse(args.period) if args.period else None
    except ClosePlanError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    report = reconcile(settings, month)
    sys.stdout.write(render(report) + "\n")
    return 0 if report.ok else 1
