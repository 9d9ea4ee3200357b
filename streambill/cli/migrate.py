"""`streambill catalog migrate`: move customers to another version of their plan.

    streambill catalog migrate --plan writer --from-version 1 --to-version 2
                               [--customer cus_1 ...] [--at 2026-12-01T00:00:00Z] [--dry-run]

Each customer moved is one `SubscriptionChanged` to `(plan, to-version)` published on
account-events through the SDK, keyed by the customer: like every plan change it
takes effect at the customer's next renewal (the period in progress stays on its
version). Without `--customer`, the customers are those whose latest snapshot on
customer-state is active on `(plan, from-version)`; with it, exactly those named
(each must be active on that plan and version, else it is skipped and listed).

The event id is `migrate:<plan>:v<from>-v<to>:<customer>:<at>`: running the command
again with the same `--at` publishes duplicates that the worker drops. The target
version must be in the processes' catalog (`process_catalog`), so a migration to a
version not yet published is refused before anything is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from billing.catalog import Catalog
from billing.errors import CatalogError
from billing.events import CustomerStateChanged
from streambill.config import settings as names
from streambill.config.settings import Settings

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Migration:
    plan_id: str
    from_version: int
    to_version: int
    at: datetime

    def event_id(self, customer_id: str) -> str:
        stamp = self.at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return (
            f"migrate:{self.plan_id}:v{self.from_version}-v{self.to_version}:{customer_id}:{stamp}"
        )


def refusal(catalog: Catalog, m: Migration) -> str | None:
    """Why the migration cannot be made with this catalog, or None."""
    if m.from_version == m.to_version:
        return "--from-version and --to-version are the same"
    known = catalog.versions(m.plan_id)
    if not known:
        return f"plan {m.plan_id!r} is not in the catalog"
    if m.to_version not in known:
        listed = ", ".join(f"v{v}" for v in known)
        return (
            f"plan {m.plan_id!r} has no v{m.to_version} in the catalog ({listed}): publish it first"
        )
    return None


def select(
    states: Mapping[str, CustomerStateChanged], m: Migration, customers: Iterable[str] | None
) -> tuple[list[str], list[str]]:
    """(customers to move, customers named but not active on the plan's from-version)."""

    def on_it(s: CustomerStateChanged | None) -> bool:
        return (
            s is not None
            and s.status == "active"
            and (s.plan_id, s.plan_version) == (m.plan_id, m.from_version)
        )

    if customers is None:
        return sorted(c for c, s in states.items() if on_it(s)), []
    named = sorted(set(customers))
    return [c for c in named if on_it(states.get(c))], [
        c for c in named if not on_it(states.get(c))
    ]


def register(catalog_actions: Any) -> None:
    m = catalog_actions.add_parser(
        "migrate", help="move customers to another version of their plan (at their renewal)"
    )
    m.add_argument("--plan", required=True)
    m.add_argument("--from-version", type=int, required=True)
    m.add_argument("--to-version", type=int, required=True)
    m.add_argument("--customer", action="append", help="only these customers (repeatable)")
    m.add_argument("--at", help="event time of the changes (RFC 3339; default now)")
    m.add_argument("--dry-run", action="store_true", help="list the customers, publish nothing")
    m.set_defaults(func=run_migrate)


def run_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from processors.worker.dlq import latest_states, read_all
    from streambill.sdk.client import UsageClient
    from streambill.wire.catalog_source import process_catalog
    from streambill.wire.codec import Codec

    out, err = sys.stdout, sys.stderr
    try:
        at = datetime.fromisoformat(args.at) if args.at else datetime.now(UTC)
    except ValueError:
        err.write(f"streambill catalog migrate: --at {args.at!r} is not an RFC 3339 time\n")
        return EXIT_USAGE
    if at.tzinfo is None:
        err.write("streambill catalog migrate: --at needs a time zone (e.g. Z)\n")
        return EXIT_USAGE
    migration = Migration(args.plan, args.from_version, args.to_version, at)
    codec = Codec()
    try:
        catalog = process_catalog(settings, codec, lambda line: err.write(line + "\n"))
    except CatalogError as exc:
        err.write("streambill catalog migrate: " + "; ".join(exc.problems) + "\n")
        return EXIT_REFUSED
    why = refusal(catalog, migration)
    if why is not None:
        err.write(f"streambill catalog migrate: {why}; nothing published\n")
        return EXIT_REFUSED
    states = latest_states(codec, read_all(settings, names.CUSTOMER_STATE, "migrate"))
    moving, skipped = select(states, migration, args.customer)
    for customer in skipped:
        out.write(f"skipped   {customer}: not active on {args.plan} v{args.from_version}\n")
    if not args.dry_run:
        with UsageClient(settings) as client:
            for customer in moving:
                client.change_plan(
                    customer,
                    args.plan,
                    plan_version=args.to_version,
                    event_id=migration.event_id(customer),
                    timestamp=at,
                )
            client.flush()
    verb = "would move" if args.dry_run else "moved"
    out.write(
        f"{verb} {len(moving)} customer(s) from {args.plan} v{args.from_version} to"
        f" v{args.to_version}, effective at each one's next renewal\n"
    )
    return EXIT_OK
