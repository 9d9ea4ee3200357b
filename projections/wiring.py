"""Building the read side's parts from settings (used by the CLI and by tests)."""

from __future__ import annotations

import uuid
from types import MappingProxyType

from confluent_kafka import Consumer

from projections.http.plans import FixedPlans, PlanOffer, PlanSource, WatchedPlans
from projections.http.sessions import RedisSessions
from projections.read.metrics import ProjectorMetrics
from projections.read.model import SOURCE_TOPICS
from projections.read.projector import BatchApplier, Projector, consumer_config
from projections.read.redis_store import RedisStore
from projections.read.store import Keys, ReadModelStore
from streambill.config.catalog_file import load_catalog
from streambill.config.settings import Settings
from streambill.wire.catalog_source import CatalogWatch
from streambill.wire.codec import Codec, DecodeError
from streambill.wire.convert import InvalidField, decode_value


def build_store(settings: Settings) -> RedisStore:
    return RedisStore.from_url(settings.redis_url, Keys(prefix=settings.read_model_prefix))


def build_sessions(settings: Settings) -> RedisSessions:
    """The portal's session store: Redis, shared by every API process."""
    return RedisSessions.from_url(settings.redis_url, settings.portal_session_prefix)


def build_plans(settings: Settings, codec: Codec | None = None) -> PlanSource:
    """The catalog the API checks plan commands against, from the same source the
    worker bills with: the file once, or the topic, watched every
    `api_catalog_refresh` seconds (`projections.http.plans`). `CatalogError` if it
    cannot be read at start: the API does not start on no catalog."""
    if settings.catalog_source == "file":
        return FixedPlans(PlanOffer(load_catalog(settings.catalog_path)))
    watch = CatalogWatch(settings, codec or Codec())

    def load() -> PlanOffer:
        catalog, read = watch.reload_read()
        return PlanOffer(catalog, MappingProxyType(read.live.retired()))

    return WatchedPlans(load(), watch.changed, load, settings.api_catalog_refresh)


def build_applier(
    settings: Settings, store: ReadModelStore, codec: Codec | None = None
) -> BatchApplier:
    """The record -> write path: Avro decode, domain conversion, offsets in the store."""
    the_codec = codec or Codec()

    def decode(value: bytes) -> object:
        return decode_value(the_codec, value)

    return BatchApplier(
        store,
        decode,
        (DecodeError, InvalidField),
        {settings.topic(t): t for t in SOURCE_TOPICS},
    )


def projector_group(settings: Settings) -> str:
    return f"{settings.topic_prefix}projector"


def build_projector(
    settings: Settings,
    store: ReadModelStore,
    *,
    batch_size: int = 500,
    poll_timeout: float = 0.2,
    metrics: ProjectorMetrics | None = None,
) -> Projector:
    """The live projector; `metrics` on a registry its caller serves (or None)."""
    consumer = Consumer(settings.kafka_config(**consumer_config(projector_group(settings))))
    return Projector(
        consumer,
        build_applier(settings, store),
        batch_size=batch_size,
        poll_timeout=poll_timeout,
        metrics=metrics,
    )


def build_rebuild_consumer(settings: Settings) -> Consumer:
    """A throwaway consumer (own group, manual assignment, never commits)."""
    group = f"{settings.topic_prefix}rebuild-{uuid.uuid4().hex[:8]}"
    return Consumer(settings.kafka_config(**consumer_config(group)))
