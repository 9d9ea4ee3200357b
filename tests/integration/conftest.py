"""Fixtures of the period-close integration tests."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient

from streambill.settings import ALL_TOPICS, Settings
from streambill.topics import create_topics


@pytest.fixture
def env(settings: Settings) -> Iterator[Settings]:
    """A fresh set of topics for one test (closes must not see each other's records)."""
    mine = Settings(
        bootstrap_servers=settings.bootstrap_servers,
        topic_prefix=f"t-{uuid.uuid4().hex[:10]}.",
        partitions=3,
    )
    create_topics(mine)
    yield mine
    admin = AdminClient(mine.kafka_config())
    for future in admin.delete_topics([mine.topic(t) for t in ALL_TOPICS]).values():
        with contextlib.suppress(Exception):
            future.result(timeout=30)
