"""The partitioner every producer of streambill's input topics must use.

A customer's usage-events and account-events live on partition
`owner(customer_id.encode(), partitions)` of each topic: Kafka's default
partitioner of the Java client, murmur2 of the key, positive, modulo the
partition count (librdkafka calls it `murmur2_random`; franz-go's default
`StickyKeyPartitioner(nil)` is it too; sarama's `NewHashPartitioner` and
`NewReferenceHashPartitioner` are FNV-1a, NOT it). The fold worker owns a
customer through that partition only, so a record elsewhere is dead-lettered
`wrong_partition` (see `processors.fold.admission`); the README's topic contract shows
the setting for each client.

`owner` is confluent-kafka's C implementation (Java-compatible, ~0.1 us a call).
"""

from __future__ import annotations

from confluent_kafka import murmur2

__all__ = ["owner"]


def owner(key: bytes, partitions: int) -> int:
    """The partition (0 .. partitions-1) that owns `key`. Raises ValueError for a
    partition count below 1."""
    return int(murmur2(key, partitions))
