"""Read-side fixtures. Redis tests use the Redis the rest of the suite uses
(STREAMBILL_REDIS_URL, which `make test` sets to the server it started), but their own DB
(13 unless STREAMBILL_TEST_REDIS_DB) and a unique key prefix per test, so they never touch
other data on it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis
from fastapi.testclient import TestClient

from projections.http.app import create_app
from projections.read.redis_store import RedisStore
from projections.read.store import InMemoryStore, Keys, ReadModelStore
from streambill.config.settings import Settings
from tests.projections.apphelpers import NOW, RecordingWriter, fill, settings

REDIS_DB = int(os.environ.get("STREAMBILL_TEST_REDIS_DB", "13"))
REDIS_URL = str(urlsplit(Settings().redis_url)._replace(path=f"/{REDIS_DB}").geturl())


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def key_prefix() -> str:
    return f"sbt-{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, key_prefix: str) -> Iterator[ReadModelStore]:
    keys = Keys(prefix=key_prefix)
    if request.param == "memory":
        yield InMemoryStore(keys)
        return
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    adapter = RedisStore(client, keys)
    yield adapter
    adapter.clear()
    client.delete(keys.generation())
    client.close()


@pytest.fixture
def writer() -> RecordingWriter:
    """Records the admin routes' SDK calls."""
    return RecordingWriter()


@pytest.fixture
def client(writer: RecordingWriter) -> Iterator[TestClient]:
    """The API over the sample read models (`apphelpers.fill`), its clock frozen just
    after `NOW`; https, since the portal's cookie is `Secure`."""
    store = InMemoryStore()
    fill(store)
    app = create_app(settings(), store, writer, clock=lambda: NOW + 1)
    with TestClient(app, base_url="https://testserver") as c:
        yield c
