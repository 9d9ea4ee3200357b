"""Fixtures for integration tests against the real Kafka broker and Redis.

`settings` points at the services named by STREAMBILL_BOOTSTRAP_SERVERS and
STREAMBILL_REDIS_URL (default: the ones `streambill services up` starts, which
`make test` brings up), with a topic prefix of its own so concurrent sessions on a shared
broker never see each other's topics. When a service does not answer, an integration test
is skipped on a developer's machine and FAILS when CI=true: CI never passes by skipping.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest
import redis
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streambill.config.settings import ALL_TOPICS, Settings
from streambill.config.topics import create_topics
from tests.support import unavailable

TEST_PARTITIONS = 3


def _kafka_problem(settings: Settings) -> str | None:
    admin = AdminClient(settings.kafka_config())
    try:
        metadata = admin.list_topics(timeout=10)
    except KafkaException as exc:
        return f"Kafka at {settings.bootstrap_servers} does not answer: {exc}"
    if not metadata.brokers:
        return f"Kafka at {settings.bootstrap_servers} lists no broker"
    return None


def _redis_problem(settings: Settings) -> str | None:
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"Redis at {settings.redis_url} does not answer: {exc}"
    finally:
        client.close()
    return None


@pytest.fixture(scope="session")
def settings() -> Settings:
    """Settings for this test session: unique topic prefix, small partition count; the
    broker and Redis must answer (see module docstring for skip versus fail)."""
    # Usage kept for ever: tests publish histories dated years back, which a time-based
    # retention would delete at the broker's next check, in the middle of a test.
    session = Settings(
        topic_prefix=f"t-{uuid.uuid4().hex[:12]}.",
        partitions=TEST_PARTITIONS,
        usage_retention_days=0,
    )
    problems = [p for p in (_kafka_problem(session), _redis_problem(session)) if p]
    if problems:
        unavailable("; ".join(problems) + " (start them with `streambill services up`)")
    return session


@pytest.fixture(scope="session")
def topics(settings: Settings) -> Iterator[dict[str, str]]:
    """Every streambill topic created under the session prefix: logical -> physical name.

    The topics are deleted when the session ends, so repeated runs on one broker do not
    pile up prefixes.
    """
    create_topics(settings)
    yield {logical: settings.topic(logical) for logical in ALL_TOPICS}
    admin = AdminClient(settings.kafka_config())
    futures = admin.delete_topics([settings.topic(name) for name in ALL_TOPICS])
    for future in futures.values():
        # Best effort: a leftover test topic under a unique prefix harms nothing.
        with contextlib.suppress(KafkaException):
            future.result(timeout=30)
