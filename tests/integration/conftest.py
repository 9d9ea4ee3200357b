"""Fixtures of the integration tests (period close, fold worker).

Each gets its own topic prefix so tests never see each other's records.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient

from streambill.config.settings import ALL_TOPICS, Settings
from streambill.config.topics import create_topics
from streambill.wire.codec import Codec


@pytest.fixture
def env(settings: Settings) -> Iterator[Settings]:
    """A fresh set of topics for one test (closes must not see each other's records),
    usage kept for ever."""
    mine = Settings(
        bootstrap_servers=settings.bootstrap_servers,
        topic_prefix=f"t-{uuid.uuid4().hex[:10]}.",
        partitions=3,
        # The close tests replay 2025 histories: a time-based retention would delete them
        # at the broker's next retention check, in the middle of a test.
        usage_retention_days=0,
    )
    create_topics(mine)
    yield mine
    admin = AdminClient(mine.kafka_config())
    for future in admin.delete_topics([mine.topic(t) for t in ALL_TOPICS]).values():
        with contextlib.suppress(Exception):
            future.result(timeout=30)


@pytest.fixture(scope="module")
def base(settings: Settings) -> Iterator[Settings]:
    """Worker tests: the session's broker under a module-wide prefix (see fold_support);
    every topic under it (changelogs included) is deleted afterwards."""
    from tests.integration.fold_support import delete_topics_with_prefix

    mine = Settings(
        bootstrap_servers=settings.bootstrap_servers,
        topic_prefix=f"t-{uuid.uuid4().hex[:8]}.",
        partitions=3,
    )
    yield mine
    if not os.environ.get("STREAMBILL_KEEP_TOPICS"):  # set it to inspect a failure
        delete_topics_with_prefix(mine, mine.topic_prefix)


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec()
