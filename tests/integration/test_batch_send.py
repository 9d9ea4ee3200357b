"""The worker's own producer (`processors.worker.batch_send.Writer`) on the real broker:
records land on the partitions asked for, in order, and `Sent.wait` reports the
last offset written per partition; a record that cannot be delivered fails the
wait instead of passing silently."""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka import KafkaException

from processors.worker.batch_send import Groups, Writer
from streambill.config.settings import Settings
from tests.kafka_helpers import consume_all


def _write(config: dict[str, object], batches: list[Groups]) -> list[dict[tuple[str, int], int]]:
    async def run() -> list[dict[tuple[str, int], int]]:
        writer = Writer(config, asyncio.get_running_loop())
        try:
            return [await writer.queue(groups).wait() for groups in batches]
        finally:
            writer.close()

    return asyncio.run(run())


def test_records_land_in_order_and_wait_reports_the_last_offsets(env: Settings) -> None:
    topic = env.topic("customer-state")
    first: Groups = {
        (topic, 0): [(b"a", f"a{i}".encode()) for i in range(500)],
        (topic, 2): [(b"c", b"c0"), (b"c", None)],  # a tombstone too
    }
    second: Groups = {(topic, 0): [(b"a", b"a500")], (topic, 1): [(b"b", b"b0")]}
    lasts = _write(env.kafka_config(), [first, second])
    assert lasts[0] == {(topic, 0): 499, (topic, 2): 1}
    assert lasts[1] == {(topic, 0): 500, (topic, 1): 0}
    by_partition: dict[int, list[tuple[bytes | None, bytes | None]]] = {0: [], 1: [], 2: []}
    for msg in consume_all(env, "customer-state", 504):
        by_partition[msg.partition()].append((msg.key(), msg.value()))
    assert by_partition[0] == first[(topic, 0)] + second[(topic, 0)]
    assert by_partition[1] == second[(topic, 1)]
    assert by_partition[2] == first[(topic, 2)]


def test_a_record_the_broker_refuses_fails_the_wait(env: Settings) -> None:
    # customer-state is compacted: a record without a key is refused.
    topic = env.topic("customer-state")
    with pytest.raises(KafkaException, match="INVALID_RECORD"):
        _write(env.kafka_config(), [{(topic, 0): [(b"a", b"1"), (None, b"2"), (b"a", b"3")]}])


def test_an_undeliverable_record_fails_the_wait() -> None:
    # Nothing listens on port 1: the records time out; the wait must raise.
    config = {"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 1000}
    with pytest.raises(Exception, match=r"(?i)timed out|timeout|transport"):
        _write(config, [{("nowhere", 0): [(b"k", b"v")] * 3}])
