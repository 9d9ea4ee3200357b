"""The Kafka LogPort adapter passes the shared contract against the real broker."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from streambill.config.settings import Settings
from streambill.wire.kafka_log import KafkaLog
from tests.contract.log_contract import check_log_port

pytestmark = pytest.mark.integration


def test_kafka_log_contract(settings: Settings) -> None:
    topic = settings.topic(f"contract-{uuid.uuid4().hex[:8]}")
    admin = AdminClient(settings.kafka_config())
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(30)
    log = KafkaLog(settings.kafka_config(), batch_size=7)
    try:
        check_log_port(log, topic)
    finally:
        log.close()
        admin.delete_topics([topic])[topic].result(30)
