"""The topics of docs/ARCHITECTURE.md ("Topics and owners"): `streambill topics create | list`.

Topics are created explicitly (the local broker has auto-creation off) under
`settings.topic_prefix`, every one with `settings.partitions` partitions, so usage-events
and account-events are always co-partitioned: the fold reads both per customer; the
catalog topic alone has one partition (one total order of publications). Creating
is idempotent: a topic that already exists is reported and left exactly as it is.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from streambill.config import settings as names
from streambill.config.settings import Settings

DAY_MS = 24 * 60 * 60 * 1000
INFINITE = "-1"
NEVER_MS = str(2**63 - 1)  # a compaction lag no record reaches
# Usage must outlive two monthly periods plus the late-arrival grace: a first close and
# an adjustment of late usage both replay it (docs/ARCHITECTURE.md, "Late usage and the closes").
# A period is taken as 31 days, the longest month, so the bound holds for every month.
LONGEST_PERIOD = timedelta(days=31)
USAGE_RETENTION_MS = str(97 * DAY_MS)  # the default settings' minimum: 2 x 31 + 35 days
ALERT_RETENTION_MS = str(30 * DAY_MS)
# Two records of one catalog key (publishers racing, a key written by hand) both stay
# readable for a week before compaction may drop the older; the log is small, so it
# may be cleaned once a tenth of it is dirty.
CATALOG_MIN_COMPACTION_LAG_MS = str(7 * DAY_MS)


@dataclass(frozen=True)
class TopicSpec:
    """One logical topic and the configuration it is created with."""

    logical: str
    config: Mapping[str, str]
    purpose: str
    partitions: int | None = None  # None: `settings.partitions`


TOPIC_SPECS: tuple[TopicSpec, ...] = (
    TopicSpec(
        names.USAGE_EVENTS,
        {"cleanup.policy": "delete", "retention.ms": USAGE_RETENTION_MS},
        "usage reported by producers; retention covers 2 periods + lateness (97 days)",
    ),
    TopicSpec(
        names.ACCOUNT_EVENTS,
        {"cleanup.policy": "delete", "retention.ms": INFINITE, "retention.bytes": INFINITE},
        "subscriptions, seats, credits, deposits; kept forever (every close replays it)",
    ),
    TopicSpec(
        names.CUSTOMER_STATE,
        {"cleanup.policy": "compact"},
        "latest state snapshot per customer, compacted",
    ),
    TopicSpec(
        names.BILLING_ALERTS,
        {"cleanup.policy": "delete", "retention.ms": ALERT_RETENTION_MS},
        "threshold alerts raised and resolved; 30 days",
    ),
    TopicSpec(
        names.INVOICES,
        {"cleanup.policy": "delete", "retention.ms": INFINITE, "retention.bytes": INFINITE},
        "issued and adjusting invoices; kept forever",
    ),
    TopicSpec(
        names.PERIOD_CLOSES,
        {"cleanup.policy": "compact"},
        "per-period close watermarks (key = period id), compacted",
    ),
    TopicSpec(
        names.CLOSE_CHECKPOINTS,
        {"cleanup.policy": "compact"},  # + min.compaction.lag.ms from the settings
        "per-customer state each close carries into the next (key = customer id),"
        " compacted no earlier than the usage retention",
    ),
    TopicSpec(
        names.USAGE_REJECTED,
        {"cleanup.policy": "delete", "retention.ms": INFINITE, "retention.bytes": INFINITE},
        "dead letters with reason and original bytes; kept forever (bad input is never lost)",
    ),
    TopicSpec(
        names.CATALOG,
        {
            "cleanup.policy": "compact",
            "min.compaction.lag.ms": CATALOG_MIN_COMPACTION_LAG_MS,
            "min.cleanable.dirty.ratio": "0.1",
        },
        "features, credit packs, plan versions and retirements (key = feature/<id>, pack/<id>,"
        " plan/<id>/<version>, retired/<id>), compacted, one partition",
        partitions=1,
    ),
)


class TopicError(Exception):
    """Topics could not be created or listed; the message is one sentence."""


def minimum_usage_retention_days(max_lateness: timedelta) -> int:
    """The fewest whole days of usage-events retention that cover `max_lateness` plus two
    periods of the longest month: a close replays a period's usage, and the adjustment of
    the next close replays it again for usage up to `max_lateness` late. Older history
    is carried by the close checkpoints (docs/ARCHITECTURE.md, "Checkpoints")."""
    return math.ceil((max_lateness + 2 * LONGEST_PERIOD) / timedelta(days=1))


def usage_retention_problem(usage_retention_days: int, max_lateness: timedelta) -> str | None:
    """Why `topics create` refuses these settings, in one sentence, or None. A retention of
    0 days or less keeps usage for ever, which always suffices."""
    if usage_retention_days <= 0:
        return None
    minimum = minimum_usage_retention_days(max_lateness)
    if usage_retention_days >= minimum:
        return None
    return (
        f"usage-events retention of {usage_retention_days} days is shorter than"
        f" STREAMBILL_MAX_LATENESS ({max_lateness / timedelta(days=1):g} days) plus two"
        " periods of 31 days: set"
        f" STREAMBILL_USAGE_RETENTION_DAYS to at least {minimum} (or 0 to keep usage for"
        " ever); nothing was created"
    )


def _admin(settings: Settings) -> AdminClient:
    return AdminClient(settings.kafka_config())


def _metadata(admin: AdminClient, timeout: float) -> Any:
    try:
        return admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise TopicError(f"the Kafka cluster did not answer a metadata request: {exc}") from exc


def _existing(admin: AdminClient, timeout: float) -> dict[str, int]:
    """Every topic on the cluster with its partition count."""
    metadata = _metadata(admin, timeout)
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


def _led(admin: AdminClient, timeout: float) -> dict[str, int]:
    """Topic name -> number of partitions that have an elected leader."""
    metadata = _metadata(admin, timeout)
    return {
        name: sum(1 for part in topic.partitions.values() if part.leader >= 0 and not part.error)
        for name, topic in metadata.topics.items()
    }


def create_topics(settings: Settings, timeout: float = 30.0) -> tuple[list[str], list[str]]:
    """Create every missing topic; returns (created, already existing) physical names.

    Returns once the created topics appear in the cluster metadata with all partitions,
    so a producer or consumer started right after finds them. Settings whose usage
    retention is too short (`usage_retention_problem`) raise `TopicError` before the
    cluster is contacted.
    """
    problem = usage_retention_problem(settings.usage_retention_days, settings.max_lateness)
    if problem is not None:
        raise TopicError(problem)
    admin = _admin(settings)
    present = _existing(admin, timeout)
    wanted = [settings.topic(spec.logical) for spec in TOPIC_SPECS]
    existed = [name for name in wanted if name in present]
    new = [
        NewTopic(
            settings.topic(spec.logical),
            num_partitions=partition_count(spec, settings),
            replication_factor=settings.replication_factor,
            config=_config(spec, settings),
        )
        for spec in TOPIC_SPECS
        if settings.topic(spec.logical) not in present
    ]
    created: list[str] = []
    if new:
        for name, future in admin.create_topics(new, request_timeout=timeout).items():
            try:
                future.result(timeout=timeout)
                created.append(name)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise TopicError(f"could not create topic {name}: {exc.args[0].str()}") from exc
                existed.append(name)  # created concurrently by someone else: fine
        counts = {settings.topic(s.logical): partition_count(s, settings) for s in TOPIC_SPECS}
        _await_visible(admin, {name: counts[name] for name in created}, timeout)
    return sorted(created, key=wanted.index), sorted(existed, key=wanted.index)


def partition_count(spec: TopicSpec, settings: Settings) -> int:
    """Partitions `spec`'s topic is created with."""
    return settings.partitions if spec.partitions is None else spec.partitions


def _config(spec: TopicSpec, settings: Settings) -> dict[str, str]:
    """The spec's configuration; usage-events' retention follows the settings (0 or less:
    kept for ever, e.g. for tests and back-fills whose event times lie years back, which a
    time-based retention would delete within minutes of their arrival)."""
    config = dict(spec.config)
    days = settings.usage_retention_days
    if spec.logical == names.USAGE_EVENTS:
        config["retention.ms"] = str(days * DAY_MS) if days > 0 else INFINITE
    if spec.logical == names.CLOSE_CHECKPOINTS:
        # A close resumes from the previous close's checkpoints, and a re-run of it
        # (reconcile) reads them again: they stay as long as the usage it reads with
        # them (usage kept for ever: checkpoints too).
        config["min.compaction.lag.ms"] = str(days * DAY_MS) if days > 0 else NEVER_MS
    return config


def _await_visible(admin: AdminClient, topics: Mapping[str, int], timeout: float) -> None:
    """Wait until each topic shows its partition count in the metadata, each with an
    elected leader: a reader asking for watermarks before that gets NOT_LEADER."""
    deadline = time.monotonic() + timeout
    while True:
        present = _led(admin, timeout)
        if all(present.get(name) == count for name, count in topics.items()):
            return
        if time.monotonic() >= deadline:
            raise TopicError(f"created topics did not appear in metadata within {timeout:.0f}s")
        time.sleep(0.2)


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int
    config: Mapping[str, str]


def list_topics(settings: Settings, timeout: float = 30.0) -> list[TopicInfo]:
    """The topics under our prefix, with partitions and cleanup/retention configuration."""
    admin = _admin(settings)
    present = {
        name: count
        for name, count in _existing(admin, timeout).items()
        if name.startswith(settings.topic_prefix)
    }
    if not present:
        return []
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in sorted(present)]
    infos: list[TopicInfo] = []
    for resource, future in admin.describe_configs(resources, request_timeout=timeout).items():
        try:
            entries = future.result(timeout=timeout)
        except KafkaException as exc:
            raise TopicError(f"could not describe topic {resource.name}: {exc}") from exc
        shown = {
            key: entries[key].value for key in ("cleanup.policy", "retention.ms") if key in entries
        }
        infos.append(TopicInfo(resource.name, present[resource.name], shown))
    return sorted(infos, key=lambda info: info.name)


# --- CLI --------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("topics", help="create or list the streambill topics")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("create", help="create every missing topic (idempotent)").set_defaults(
        func=_cmd_create
    )
    actions.add_parser("list", help="topics under the prefix with their config").set_defaults(
        func=_cmd_list
    )


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


def _cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    try:
        created, existed = create_topics(settings)
    except TopicError as error:
        sys.stderr.write(f"streambill topics: {error}\n")
        return 1
    counts = {settings.topic(spec.logical): partition_count(spec, settings) for spec in TOPIC_SPECS}
    for name in created:
        _say(f"created  {name} ({counts[name]} partitions)")
    for name in existed:
        _say(f"existed  {name}")
    return 0


def _cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    try:
        infos = list_topics(settings)
    except TopicError as error:
        sys.stderr.write(f"streambill topics: {error}\n")
        return 1
    found = {info.name for info in infos}
    for info in infos:
        policy = info.config.get("cleanup.policy", "?")
        retention = _retention(info.config.get("retention.ms")) if "delete" in policy else "-"
        _say(f"{info.name:<40} {info.partitions:>3} partitions  {policy:<8} retention {retention}")
    for spec in TOPIC_SPECS:
        if settings.topic(spec.logical) not in found:
            _say(f"{settings.topic(spec.logical):<40} MISSING (run `streambill topics create`)")
    return 0


def _retention(value: str | None) -> str:
    if value is None:
        return "?"
    if value == INFINITE:
        return "infinite"
    millis = int(value)
    return f"{millis // DAY_MS}d" if millis % DAY_MS == 0 else f"{millis}ms"
