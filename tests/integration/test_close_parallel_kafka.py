"""The close folded by worker processes (pre-started while the job plans) emits the
same invoice bytes as the in-process fold, and leaves no process behind."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator

import pytest

from processors.close.fold import TopicNames
from processors.close.parallel import ParallelRunner
from processors.close.plan import Month, PeriodNotClosable
from processors.close.run import CloseDeps, CloseOptions, close_period
from streambill.config.settings import Settings
from tests.close_support import utc
from tests.integration.test_close_kafka import Kafka
from tests.unit.processors.close.test_close_scenarios import history

pytestmark = pytest.mark.integration


@pytest.fixture
def kafka(env: Settings) -> Iterator[Kafka]:
    k = Kafka(env)
    yield k
    k.log.close()


def _deps(kafka: Kafka, workers: int | None, now: tuple[int, int, int]) -> CloseDeps:
    runner = None
    if workers is not None:
        names = TopicNames(kafka.topics.usage, kafka.topics.account)
        runner = ParallelRunner(kafka.settings, names, workers, kafka.catalog)
    return CloseDeps(
        kafka.log, kafka.codec, kafka.catalog, kafka.topics, lambda: utc(*now), runner=runner
    )


def test_workers_emit_the_bytes_of_the_in_process_fold(kafka: Kafka) -> None:
    kafka.publish(history())
    month = CloseOptions(Month(2025, 2), dry_run=True)
    alone = close_period(_deps(kafka, None, (2030, 1, 1)), month)
    for workers in (2, 5):  # 5 > 3 partitions: the spare workers get no task
        parallel = close_period(_deps(kafka, workers, (2030, 1, 1)), month)
        assert [d for _, d in parallel.invoices] == [d for _, d in alone.invoices]
        assert parallel.fold.events_read == alone.fold.events_read
        assert parallel.fold.customers == alone.fold.customers
    assert alone.invoices
    closed = close_period(_deps(kafka, 2, (2030, 1, 1)), CloseOptions(Month(2025, 2)))
    assert closed.status == "closed" and closed.sent == len(alone.invoices)
    again = close_period(_deps(kafka, 2, (2030, 1, 1)), CloseOptions(Month(2025, 2)))
    assert again.status == "no_op" and again.sent == 0
    assert mp.active_children() == []


def test_refused_close_starts_no_worker(kafka: Kafka) -> None:
    kafka.publish(history())
    with pytest.raises(PeriodNotClosable):
        close_period(_deps(kafka, 2, (2025, 2, 2)), CloseOptions(Month(2025, 2)))
    assert mp.active_children() == []


def test_warmed_up_workers_end_when_the_close_stops_before_the_fold(kafka: Kafka) -> None:
    names = TopicNames(kafka.topics.usage, kafka.topics.account)
    runner = ParallelRunner(kafka.settings, names, 2, kafka.catalog)
    runner.warm_up()
    assert len(mp.active_children()) == 2
    runner.shutdown()
    assert mp.active_children() == []
