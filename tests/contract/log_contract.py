"""The contract every `LogPort` adapter passes (in-memory and Kafka)."""

from __future__ import annotations

from streambill.wire.log import LogPort, LogRecord


def _all(
    log: LogPort,
    topic: str,
    starts: dict[int, int],
    ends: dict[int, int],
    keys: frozenset[bytes] | None = None,
) -> list[LogRecord]:
    return [r for batch in log.read(topic, starts, ends, keys) for r in batch]


def check_log_port(log: LogPort, topic: str) -> None:
    """`topic` exists and is empty. Writes 30 records over 3 keys, then checks reads."""
    parts = log.partitions(topic)
    assert parts == sorted(parts) and parts
    low, high = log.watermarks(topic)
    assert set(high) == set(parts) and all(high[p] == low[p] for p in parts)
    keys = [b"cus_a", b"cus_b", b"cus_c"]
    log.prepare_writes()
    log.prepare_writes()  # idempotent, and changes nothing on the topic
    assert log.watermarks(topic) == (low, high)
    for i in range(30):
        log.produce(topic, keys[i % 3], f"v{i}".encode(), 1_700_000_000_000 + i * 1000)
    log.flush()
    low, high = log.watermarks(topic)
    assert sum(high.values()) - sum(low.values()) == 30

    records = _all(log, topic, low, high)
    assert len(records) == 30
    per_key: dict[bytes | None, list[int]] = {}
    for r in records:
        assert r.topic == topic
        per_key.setdefault(r.key, []).append(int(r.value[1:]))
        assert r.timestamp_ms == 1_700_000_000_000 + int(r.value[1:]) * 1000
    for k, values in per_key.items():  # one key -> one partition, in order
        assert values == sorted(values)
        assert len({r.partition for r in records if r.key == k}) == 1

    # bounded ranges: start inclusive, end exclusive
    p = records[0].partition
    mid = {p: low[p] + 1}
    sub = _all(log, topic, mid, {p: high[p] - 1})
    assert [r.offset for r in sub] == list(range(low[p] + 1, high[p] - 1))

    # key filter
    only_b = _all(log, topic, low, high, frozenset({b"cus_b"}))
    assert len(only_b) == 10 and all(r.key == b"cus_b" for r in only_b)

    # offsets_for_time: first offset whose timestamp >= t, -1 when none
    t = 1_700_000_000_000 + 15 * 1000
    by_time = log.offsets_for_time(topic, t)
    for part in parts:
        in_part = [r for r in records if r.partition == part]
        later = [r.offset for r in in_part if r.timestamp_ms >= t]
        assert by_time[part] == (later[0] if later else -1)
    assert set(log.offsets_for_time(topic, 1_800_000_000_000).values()) == {-1}

    # empty ranges read nothing
    assert _all(log, topic, high, high) == []
