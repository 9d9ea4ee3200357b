"""`KafkaLog` asks again for watermarks a new topic's partition cannot give yet.

Right after `topics create` a partition may have no elected leader; the broker then
answers NOT_LEADER_FOR_PARTITION (this made the demo fail in CI). The consumer here is
a stand-in for that one call only: the rest of `KafkaLog` is covered against the real
broker in tests/integration/test_log_kafka.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from streambill.wire.kafka_log import KafkaLog, LogError


class _Answers:
    def __init__(self, failures: list[int]) -> None:
        self.failures = failures
        self.calls = 0

    def get_watermark_offsets(self, tp: Any, timeout: float, cached: bool) -> tuple[int, int]:
        self.calls += 1
        if self.failures:
            raise KafkaException(KafkaError(self.failures.pop(0)))
        return (3, 17)


def _log(answers: _Answers, timeout_s: float = 5.0) -> KafkaLog:
    log = KafkaLog({}, timeout_s=timeout_s)
    log._consumer = answers
    return log


def test_not_leader_yet_is_asked_again_until_answered() -> None:
    answers = _Answers([KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE])
    assert _log(answers)._watermark("t", 0) == (3, 17)
    assert answers.calls == 3


def test_a_lasting_retriable_error_ends_at_the_timeout() -> None:
    answers = _Answers([KafkaError.NOT_LEADER_FOR_PARTITION] * 1000)
    with pytest.raises(LogError, match="NOT_LEADER"):
        _log(answers, timeout_s=0.5)._watermark("t", 0)
    assert 1 < answers.calls < 1000


def test_a_permanent_error_is_not_retried() -> None:
    answers = _Answers([KafkaError.TOPIC_AUTHORIZATION_FAILED])
    with pytest.raises(LogError, match="TOPIC_AUTHORIZATION_FAILED"):
        _log(answers)._watermark("t", 0)
    assert answers.calls == 1
