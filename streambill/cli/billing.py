"""`streambill catalog check FILE` and `streambill simulate ...`.

`catalog check` validates a catalog file: prints every problem (plan and field)
and exits 1, or a one-line summary and 0 (the catalog topic's `catalog publish |
diff | list | retire` live in `streambill.cli.catalog`). `simulate` runs the billing
core over JSON-lines files (see `processors.simulate.simulation`) and prints invoices, final
customer states and rejected events, as JSON (`--json`) or readable tables;
`--compare OTHER` prices the same history under a second catalog and shows the
revenue difference per customer and in total, prepayments (credit packs, wallet
deposits) apart; it refuses (exit 1) a history subscribing to a plan OTHER lacks
unless `--map OLD_PLAN=NEW_PLAN` names the plan to price it under there
(`processors.simulate.compare`).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from billing.catalog import Catalog
from billing.errors import CatalogError
from billing.events import Event
from processors.simulate.compare import (
    CompareError,
    Comparison,
    RevenueDiff,
    check_plans,
    compare,
    comparison_json,
    parse_plan_map,
    remap,
)
from processors.simulate.lines import LineError, Rejected, parse_time, read_jsonl
from processors.simulate.simulation import SimulationResult, decimal_text, result_json, simulate
from streambill.cli import catalog as catalog_topic
from streambill.config.catalog_file import load_catalog
from streambill.config.settings import Settings

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def register(subparsers: Any) -> None:
    cat = subparsers.add_parser("catalog", help="catalog tools")
    cat_sub = cat.add_subparsers(dest="catalog_command", required=True)
    check = cat_sub.add_parser(
        "check", help="validate a catalog file; exit 1 listing every problem"
    )
    check.add_argument("file", type=Path)
    check.set_defaults(func=run_check)
    catalog_topic.register_commands(cat_sub)

    sim = subparsers.add_parser("simulate", help="run the billing core over JSON-lines event files")
    sim.add_argument(
        "--catalog",
        type=Path,
        help="a catalog file to back-test (default: the processes' catalog,"
        " STREAMBILL_CATALOG_SOURCE: the file or the catalog topic)",
    )
    sim.add_argument(
        "--events", type=Path, required=True, help="usage events, one JSON object a line"
    )
    sim.add_argument("--accounts", type=Path, help="account events, one JSON object a line")
    sim.add_argument(
        "--from", dest="start", required=True, help="range start (date or RFC 3339), inclusive"
    )
    sim.add_argument(
        "--to", dest="end", required=True, help="range end (date or RFC 3339), exclusive"
    )
    sim.add_argument("--json", action="store_true", help="print one JSON document")
    sim.add_argument(
        "--compare", type=Path, metavar="OTHER_CATALOG", help="back-test another catalog"
    )
    sim.add_argument(
        "--map",
        dest="plan_map",
        action="append",
        default=[],
        metavar="OLD_PLAN=NEW_PLAN",
        help="with --compare: price OLD_PLAN's subscriptions under NEW_PLAN of the other"
        " catalog (repeatable; required for every plan the other catalog lacks)",
    )
    sim.set_defaults(func=run_simulate)


def run_check(args: argparse.Namespace, settings: Settings) -> int:
    out = sys.stdout
    try:
        catalog = load_catalog(args.file)
    except CatalogError as exc:
        out.write(f"{args.file}: {len(exc.problems)} problem(s)\n")
        for problem in exc.problems:
            out.write(f"  - {problem}\n")
        return EXIT_INVALID
    out.write(
        f"{args.file}: ok ({len(catalog.plans)} plans, {len(catalog.features)} features, "
        f"{len(catalog.credit_packs)} credit packs)\n"
    )
    return EXIT_OK


def _load(path: Path, out: TextIO) -> Catalog | None:
    try:
        return load_catalog(path)
    except CatalogError as exc:
        out.write(f"{path}: invalid catalog\n" + "".join(f"  - {p}\n" for p in exc.problems))
        return None


def _process_catalog(settings: Settings, out: TextIO) -> Catalog | None:
    from streambill.wire.catalog_source import process_catalog
    from streambill.wire.codec import Codec

    try:
        return process_catalog(settings, Codec(), lambda line: out.write(line + "\n"))
    except CatalogError as exc:
        out.write("the processes' catalog is invalid\n")
        out.write("".join(f"  - {p}\n" for p in exc.problems))
        return None


def run_simulate(args: argparse.Namespace, settings: Settings) -> int:
    out, err = sys.stdout, sys.stderr
    try:
        start, end = parse_time(args.start, "--from"), parse_time(args.end, "--to")
    except LineError as exc:
        err.write(f"{exc.detail}\n")
        return EXIT_USAGE
    try:
        plan_map = parse_plan_map(args.plan_map)
    except CompareError as exc:
        err.write(f"{exc}\n")
        return EXIT_USAGE
    if plan_map and not args.compare:
        err.write("--map needs --compare OTHER_CATALOG\n")
        return EXIT_USAGE
    catalog = _load(args.catalog, err) if args.catalog else _process_catalog(settings, err)
    other = _load(args.compare, err) if args.compare else None
    if catalog is None or (args.compare and other is None):
        return EXIT_INVALID
    events: list[Event] = []
    bad: list[Rejected] = []
    for path, account in ((args.events, False), (args.accounts, True)):
        if path is None:
            continue
        try:
            parsed, rejected = read_jsonl(path, account)
        except OSError as exc:
            err.write(f"cannot read {path}: {exc.strerror or exc}\n")
            return EXIT_USAGE
        events += parsed
        bad += rejected
    if other is not None:
        try:
            check_plans(events, end, catalog, other, plan_map, str(args.compare))
        except CompareError as exc:
            err.write(f"simulate --compare: {exc}\n")
            return EXIT_INVALID
    result = simulate(catalog, events, start, end)
    result.rejected[:0] = bad
    comparison = None
    if other is not None:
        comparison = compare(result, simulate(other, remap(events, plan_map), start, end), plan_map)
    if args.json:
        doc = result_json(result)
        if comparison is not None:
            doc["comparison"] = {"catalog": str(args.compare), **comparison_json(comparison)}
        out.write(json.dumps(doc, indent=2) + "\n")
    else:
        write_tables(result, out)
        if comparison is not None:
            write_comparison(comparison, args.compare, out)
    return EXIT_OK


def _day(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")


def _table(rows: list[list[str]], out: TextIO, right: set[int] | None = None) -> None:
    right = right or set()
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        out.write("  " + "  ".join(cells).rstrip() + "\n")


def write_tables(result: SimulationResult, out: TextIO) -> None:
    out.write(f"Invoices ({len(result.invoices)})\n")
    for inv in result.invoices:
        out.write(
            f"\n  {inv.invoice_id}  {inv.kind}  {inv.customer_id}"
            f"  {inv.plan_id} v{inv.plan_version}"
            f"  {_day(inv.period_start)} -> {_day(inv.period_end)}\n"
        )
        rows = [["  description", "quantity", "unit price", "amount"]]
        rows += [
            ["  " + x.description, str(x.quantity), str(x.unit_price), str(x.amount)]
            for x in inv.lines
        ]
        rows.append(["  total", "", "", f"{inv.currency} {inv.total}"])
        _table(rows, out, right={1, 2, 3})
    out.write(f"\nCustomers ({len(result.customers)})\n")
    if result.customers:
        rows = [["customer", "plan", "usage", "credits", "balance"]]
        for c in result.customers:
            usage = ", ".join(f"{k}={v}" for k, v in sorted(c.usage.items())) or "-"
            credits = "-" if c.credits_remaining is None else str(c.credits_remaining)
            balance = "-" if c.balance is None else str(decimal_text(c.balance, 2))
            rows.append([c.customer_id, c.plan_id or "-", usage, credits, balance])
        _table(rows, out)
    out.write(f"\nRejected ({len(result.rejected)})\n")
    for r in result.rejected:
        out.write(f"  {r.event_id or '-'}  {r.reason}  {r.detail}\n")


def write_comparison(comparison: Comparison, other: Path, out: TextIO) -> None:
    for line in (f"{old} -> {new}" for old, new in sorted(comparison.plan_map.items())):
        out.write(f"\nplan mapped in {other}: {line}")
    if comparison.plan_map:
        out.write("\n")
    out.write(f"\nRevenue compared with {other} (period invoices and adjustments)\n")
    _diff_table(comparison.revenue, "revenue", out)
    out.write(f"\nPrepayments compared with {other} (credit packs, wallet deposits)\n")
    _diff_table(comparison.prepayments, "prepaid", out)
    if comparison.other_only_rejections:
        counts = ", ".join(f"{n} {r}" for r, n in comparison.other_only_rejections.items())
        out.write(f"\nRejected only with {other}: {counts}\n")


def _diff_table(rows: list[RevenueDiff], name: str, out: TextIO) -> None:
    if not rows:
        out.write("  none\n")
        return
    table = [["customer", "currency", name, "with other", "difference"]]
    for r in rows:
        sign = "+" if r.difference > 0 else ""
        table.append([r.customer_id or "TOTAL", r.currency, str(r.revenue), str(r.other_revenue),
                      f"{sign}{r.difference}"])  # fmt: skip
    _table(table, out, right={2, 3, 4})
