"""`streambill.wire.partitioner.owner` places keys exactly as the Java client's default
partitioner does (Utils.toPositive(Utils.murmur2(key)) % partitions): every producer
of the input topics must agree with it, or its records are dead-lettered
`wrong_partition`."""

from __future__ import annotations

import pytest

from streambill.wire.partitioner import owner

# (key, Utils.murmur2(key), partition of 3, partition of 12), computed with
# kafka-clients 4.1.1 (the broker's libs); the first three are also Kafka's own
# UtilsTest vectors.
JAVA = [
    ("21", -973932308, 0, 0),
    ("foobar", -790332482, 0, 6),
    ("abc", 479470107, 0, 3),
    ("cus_000001", 1949717247, 0, 3),
    ("cus_000002", -1809845909, 0, 3),
    ("cus_000003", 752354053, 1, 1),
    ("cus_000004", 1219160112, 0, 0),
    ("cus_000005", 1514780266, 1, 10),
]


@pytest.mark.parametrize(("key", "murmur", "of3", "of12"), JAVA)
def test_owner_is_the_java_default_partition(key: str, murmur: int, of3: int, of12: int) -> None:
    assert owner(key.encode(), 3) == of3 == (murmur & 0x7FFFFFFF) % 3
    assert owner(key.encode(), 12) == of12 == (murmur & 0x7FFFFFFF) % 12


def test_owner_refuses_a_partition_count_below_one() -> None:
    with pytest.raises(ValueError):
        owner(b"cus_1", 0)
