"""`streambill catalog publish | diff | list | retire`: the catalog topic.

    streambill catalog publish FILE   validate FILE, read the topic to its end, publish
                                      only what is new; refused (exit 1, nothing
                                      published) if a live key would change
    streambill catalog diff FILE      what publish would do; publishes nothing (exit 1
                                      when publish would be refused)
    streambill catalog list           what is live: plans and versions (retired or not),
                                      features, credit packs, the catalog revision
    streambill catalog retire PLAN    no new subscriptions to PLAN (any version);
                                      existing subscribers keep being billed

Exit codes: 0 done (also "nothing new"), 1 refused or invalid (a changed plan
version, feature or pack; an invalid file; an unknown plan), 2 the topic could not be
read or written. A record of the topic that cannot be read is reported on stderr with
its offset and reason, and left out; the command carries on.

The logic takes a `LogPort` (`streambill.wire.log`), so the tests run it
over the close's in-memory log; the commands give it the close's Kafka adapter.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from billing.catalog import Catalog
from billing.catalog_live import CatalogDiff, LiveCatalog, diff, with_records
from billing.catalog_records import PlanRetired, PlanVersionPublished, retired_key
from billing.errors import CatalogError
from streambill.cli import migrate
from streambill.config.catalog_file import load_catalog
from streambill.config.settings import CATALOG, Settings
from streambill.wire.catalog_topic import CatalogRead, publish, read_catalog
from streambill.wire.codec import Codec
from streambill.wire.kafka_log import KafkaLog, LogError
from streambill.wire.log import LogPort

EXIT_OK, EXIT_REFUSED, EXIT_LOG = 0, 1, 2


@dataclass
class CatalogIO:
    """Where a catalog command reads and writes, and prints."""

    log: LogPort
    topic: str
    codec: Codec
    out: TextIO
    err: TextIO
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def read(self) -> CatalogRead:
        found = read_catalog(self.log, self.topic, self.codec)
        for bad in found.unreadable:
            self.err.write(f"{self.topic}: left out {bad}\n")
        return found


def _say(io: CatalogIO, line: str = "") -> None:
    io.out.write(line + "\n")


def _load(path: Path, io: CatalogIO) -> Catalog | None:
    try:
        return load_catalog(path)
    except CatalogError as exc:
        _say(io, f"{path}: invalid catalog, nothing published")
        for problem in exc.problems:
            _say(io, f"  - {problem}")
        return None


def _write_refusals(d: CatalogDiff, io: CatalogIO) -> None:
    for refusal in d.refused:
        _say(io, f"refused   {refusal.key}: {refusal.why}")
        for x in refusal.differences:
            live = "(absent)" if x.live is None else x.live
            new = "(absent)" if x.new is None else x.new
            _say(io, f"            {x.path}: live {live}, file {new}")


def _retired_notes(d: CatalogDiff, live: LiveCatalog, io: CatalogIO) -> None:
    retired = live.retired()
    for record in d.added:
        if isinstance(record, PlanVersionPublished) and record.plan_id in retired:
            _say(io, f"note      plan {record.plan_id} is retired: {record.key} takes no new"
                     " subscriptions either")  # fmt: skip


def diff_file(path: Path, io: CatalogIO) -> int:
    """`catalog diff FILE`: print what publishing FILE would do; publish nothing."""
    catalog = _load(path, io)
    if catalog is None:
        return EXIT_REFUSED
    current = io.read().live
    d = diff(current, catalog)
    for record in d.added:
        _say(io, f"add       {record.key}")
    for key in d.unchanged:
        _say(io, f"unchanged {key}")
    _write_refusals(d, io)
    for key in d.staying:
        _say(io, f"stays     {key} (live, not in the file)")
    _retired_notes(d, current, io)
    verdict = "publish would be refused" if d.refused else "publish would add"
    _say(io, f"{verdict}: {len(d.added)} to add, {len(d.unchanged)} unchanged, "
             f"{len(d.refused)} refused, {len(d.staying)} staying live")  # fmt: skip
    return EXIT_OK if d.ok else EXIT_REFUSED


def publish_file(path: Path, io: CatalogIO) -> int:
    """`catalog publish FILE`: validate, diff against the live topic, publish the new
    records unless a live key would change."""
    catalog = _load(path, io)
    if catalog is None:
        return EXIT_REFUSED
    current = io.read().live
    d = diff(current, catalog)
    if d.refused:
        _write_refusals(d, io)
        _say(io, f"{path}: refused, nothing published ({len(d.refused)} live key(s) would change)")
        return EXIT_REFUSED
    publish(io.log, io.topic, io.codec, d.added)
    for record in d.added:
        _say(io, f"published {record.key}")
    for key in d.staying:
        _say(io, f"stays     {key} (live, not in the file)")
    _retired_notes(d, current, io)
    after = with_records(current, d.added)
    summary = f"{len(d.added)} published" if d.added else "nothing new"
    _say(io, f"{path}: {summary}, {len(d.unchanged)} unchanged; revision {after.revision}")
    return EXIT_OK


def list_live(io: CatalogIO) -> int:
    """`catalog list`: what is live."""
    live = io.read().live
    retired = live.retired()
    versions = live.plan_versions()
    _say(io, f"catalog {io.topic}: revision {live.revision}")
    _say(io, f"plans ({len(versions)})")
    for plan_id, numbers in versions.items():
        latest = live.plan(plan_id, numbers[-1])
        assert latest is not None
        shown = ", ".join(f"v{n}" for n in numbers)
        state = (
            f"retired {retired[plan_id].isoformat(timespec='seconds')}"
            if plan_id in retired
            else "open"
        )
        _say(io, f"  {plan_id:<16} {shown:<12} {latest.model:<8} {latest.currency}  {state}")
    orphans = sorted(set(retired) - set(versions))
    for plan_id in orphans:
        _say(io, f"  {plan_id:<16} {'-':<12} {'-':<8} -    retired, no version live")
    features = live.features()
    _say(io, f"features ({len(features)})")
    for f in features:
        _say(io, f"  {f.feature_id:<16} {f.unit}")
    packs = live.packs()
    _say(io, f"credit packs ({len(packs)})")
    for p in packs:
        _say(io, f"  {p.pack_id:<16} {p.credits} credits for {p.price} {p.currency}")
    return EXIT_OK


def retire_plan(plan_id: str, io: CatalogIO) -> int:
    """`catalog retire PLAN_ID`: publish PlanRetired unless the plan is retired
    already (then nothing is published)."""
    current = io.read().live
    if plan_id not in current.plan_versions():
        _say(io, f"plan {plan_id!r} has no live version: nothing retired")
        return EXIT_REFUSED
    already = current.records.get(retired_key(plan_id))
    if isinstance(already, PlanRetired):
        _say(io, f"plan {plan_id} is already retired (since {already.retired_at.isoformat()})")
        return EXIT_OK
    record = PlanRetired(plan_id, io.clock())
    publish(io.log, io.topic, io.codec, [record])
    after = with_records(current, [record])
    _say(io, f"retired   {plan_id}: no new subscriptions; existing subscribers keep their version")
    _say(io, f"revision {after.revision}")
    return EXIT_OK


# --------------------------------------------------------------------------- CLI


def register_commands(catalog_actions: Any) -> None:
    """Add publish, diff, list, retire and migrate to the `catalog` command group."""
    p = catalog_actions.add_parser(
        "publish", help="publish a catalog file's new plan versions, features and packs"
    )
    p.add_argument("file", type=Path)
    p.set_defaults(func=_run(lambda args, io: publish_file(args.file, io)))
    d = catalog_actions.add_parser("diff", help="what `catalog publish FILE` would do")
    d.add_argument("file", type=Path)
    d.set_defaults(func=_run(lambda args, io: diff_file(args.file, io)))
    ls = catalog_actions.add_parser("list", help="what is live on the catalog topic")
    ls.set_defaults(func=_run(lambda args, io: list_live(io)))
    r = catalog_actions.add_parser("retire", help="stop new subscriptions to a plan")
    r.add_argument("plan_id")
    r.set_defaults(func=_run(lambda args, io: retire_plan(args.plan_id, io)))
    migrate.register(catalog_actions)


def _run(
    command: Callable[[argparse.Namespace, CatalogIO], int],
) -> Callable[[argparse.Namespace, Settings], int]:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        log = KafkaLog(settings.kafka_config(), timeout_s=15.0)
        io = CatalogIO(log, settings.topic(CATALOG), Codec(), sys.stdout, sys.stderr)
        try:
            return command(args, io)
        except LogError as exc:
            sys.stderr.write(f"streambill catalog: {exc}\n")
            return EXIT_LOG
        finally:
            log.close()

    return run
