"""Building the read side's parts from settings (used by the CLI and by tests)."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer

from projections.http.sessions import RedisSessions
from projections.read.model import SOURCE_TOPICS
from projections.read.projector import BatchApplier, Projector, consumer_config
from projections.read.redis_store import RedisStore
from projections.read.store import Keys, ReadModelStore
from streambill.config.settings import Settings
from streambill.wire.codec import Codec, DecodeError
from streambill.wire.convert import InvalidField, decode_value


def build_store(settings: Settings) -> RedisStore:
    return RedisStore.from_url(settings.redis_url, Keys(prefix=settings.read_model_prefix))


def build_sessions(settings: Settings) -> RedisSessions:
    """The portal's session store: Redis, shared by every API process."""
    return RedisSessions.from_url(settings.redis_url, settings.portal_session_prefix)


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
    settings: Settings, store: ReadModelStore, *, batch_size: int = 500, poll_timeout: float = 0.2
) -> Projector:
    consumer = Consumer(settings.kafka_config(**consumer_config(projector_group(settings))))
    return Projector(
        consumer,
        build_applier(settings, store),
        batch_size=batch_size,
        poll_timeout=poll_timeout,
    )


def build_rebuild_consumer(settings: Settings) -> Consumer:
    """A throwaway consumer (own group, manual assignment, never commits)."""
    group = f"{settings.topic_prefix}rebuild-{uuid.uuid4().hex[:8]}"
    return Consumer(settings.kafka_config(**consumer_config(group)))
