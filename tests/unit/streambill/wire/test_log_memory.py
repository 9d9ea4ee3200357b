"""The in-memory LogPort adapter passes the shared contract."""

from __future__ import annotations

from streambill.wire.log import InMemoryLog
from tests.contract.log_contract import check_log_port


def test_in_memory_log_contract() -> None:
    check_log_port(InMemoryLog(partition_count=3, batch_size=4), "t.usage")


def test_in_memory_retention_moves_low_watermark() -> None:
    log = InMemoryLog(partition_count=1)
    for i in range(5):
        log.produce("t", b"k", bytes([i]), i)
    log.delete_before("t", 0, 3)
    low, high = log.watermarks("t")
    assert (low, high) == ({0: 3}, {0: 5})
    assert [r.offset for b in log.read("t", {0: 0}, {0: 5}) for r in b] == [3, 4]
