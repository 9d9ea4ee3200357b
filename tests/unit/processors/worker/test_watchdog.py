"""The worker's liveness watchdog decides with an injected clock (no broker)."""

from __future__ import annotations

import asyncio

from processors.worker.ports import Partition as TopicPartition
from processors.worker.watchdog import RebalanceLimit, StallWatchdog, watch


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lag_without_progress_for_the_timeout_is_a_stall() -> None:
    clock = FakeClock()
    dog = StallWatchdog(30.0, clock)
    assert dog.observe(("p", 5), lagging=True) is False
    clock.now += 29.9
    assert dog.observe(("p", 5), lagging=True) is False
    clock.now += 0.1
    assert dog.observe(("p", 5), lagging=True) is True
    assert dog.stalled_for() == 30.0


def test_progress_restarts_the_timer() -> None:
    clock = FakeClock()
    dog = StallWatchdog(30.0, clock)
    dog.observe(1, lagging=True)
    clock.now += 25
    assert dog.observe(2, lagging=True) is False  # moved: a new candidate begins
    clock.now += 25
    assert dog.observe(2, lagging=True) is False
    clock.now += 5
    assert dog.observe(2, lagging=True) is True


def test_no_lag_is_never_a_stall_and_clears_the_candidate() -> None:
    clock = FakeClock()
    dog = StallWatchdog(10.0, clock)
    dog.observe(1, lagging=True)
    clock.now += 9
    assert dog.observe(1, lagging=False) is False
    for _ in range(10):
        clock.now += 60
        assert dog.observe(1, lagging=False) is False
    assert dog.observe(1, lagging=True) is False  # lag appears: timer starts now
    clock.now += 9.9
    assert dog.observe(1, lagging=True) is False
    clock.now += 0.1
    assert dog.observe(1, lagging=True) is True


def test_reset_postpones_judgement() -> None:
    clock = FakeClock()
    dog = StallWatchdog(10.0, clock)
    dog.observe(1, lagging=True)
    clock.now += 9
    dog.reset()  # rebalance, recovery or broker away
    clock.now += 9
    assert dog.observe(1, lagging=True) is False
    clock.now += 10
    assert dog.observe(1, lagging=True) is True


class FakeLag:
    """Answers like `GroupLag.read` from a script: offsets, or an error."""

    def __init__(self, answers: list[dict[TopicPartition, tuple[int, int]] | Exception]) -> None:
        self.answers = answers
        self.stopped = False

    async def read(self, tps: object) -> dict[TopicPartition, tuple[int, int]]:
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def stop(self) -> None:
        self.stopped = True


def _run_watch(lag: FakeLag, clock: FakeClock, folded: list[int], busy: list[bool]) -> list[str]:
    fatal: list[str] = []
    tp = TopicPartition("usage", 0)

    async def main() -> None:
        real_sleep = asyncio.sleep

        async def sleep(seconds: float) -> None:
            clock.now += seconds
            await real_sleep(0)

        asyncio.sleep = sleep  # type: ignore[assignment]
        try:
            await asyncio.wait_for(
                watch(
                    StallWatchdog(30.0, clock),
                    lag,  # type: ignore[arg-type]
                    busy=lambda: busy.pop(0) if busy else False,
                    watched=lambda: [tp],
                    folded=lambda: folded.pop(0) if len(folded) > 1 else folded[0],
                    interval_s=5.0,
                    on_stalled=lambda exc: fatal.append(str(exc)),
                ),
                timeout=5,
            )
        finally:
            asyncio.sleep = real_sleep

    asyncio.run(main())
    return fatal


def test_watch_exits_through_on_stalled_with_the_lagging_partitions() -> None:
    clock = FakeClock()
    lag = FakeLag([{TopicPartition("usage", 0): (100, 250)}])
    start = clock.now
    fatal = _run_watch(lag, clock, folded=[7], busy=[])
    assert len(fatal) == 1 and "usage/0" in fatal[0]
    assert 30 <= clock.now - start <= 40  # first observation + 30 s of standing lag
    assert lag.stopped


def test_watch_does_not_judge_while_busy_or_broker_unreachable() -> None:
    clock = FakeClock()
    tp = TopicPartition("usage", 0)
    answers: list[dict[TopicPartition, tuple[int, int]] | Exception] = [
        ConnectionError("broker down")
    ] * 8 + [{tp: (100, 250)}]
    start = clock.now
    fatal = _run_watch(FakeLag(answers), clock, folded=[7], busy=[True] * 6)
    assert len(fatal) == 1
    # 6 busy checks, 8 failed reads, then 30 s of judgement: never before that.
    assert clock.now - start >= (6 + 8) * 5 + 30


def test_busy_pauses_judgement_but_not_forever() -> None:
    clock = FakeClock()
    dog = StallWatchdog(30.0, clock, busy_limit_s=120.0)
    dog.observe(1, lagging=True)
    clock.now += 29
    assert dog.busy() is False  # a rebalance starts: the stall candidate is dropped
    clock.now += 60
    assert dog.busy() is False
    assert dog.observe(1, lagging=True) is False  # rebalance over: timer starts again
    clock.now += 29
    assert dog.observe(1, lagging=True) is False
    assert dog.busy() is False  # a new stretch of rebalancing
    clock.now += 119.9
    assert dog.busy() is False
    clock.now += 0.1
    assert dog.busy() is True  # a rebalance that never ends is a hang too
    assert dog.stalled_for() == 120.0


def test_busy_limit_defaults_to_ten_timeouts() -> None:
    assert StallWatchdog(30.0).busy_limit_s == 300.0


def test_rebalancing_counts_as_busy_for_a_limited_stretch_recovery_always() -> None:
    clock = FakeClock()
    limit = RebalanceLimit(60.0, clock)
    assert limit.busy(rebalancing=True, recovering=False)
    clock.now += 59
    assert limit.busy(rebalancing=True, recovering=False)
    clock.now += 2
    assert not limit.busy(rebalancing=True, recovering=False)  # judged like a stall
    assert limit.busy(rebalancing=True, recovering=True)  # recovery: busy
    clock.now += 1000
    assert limit.busy(rebalancing=False, recovering=True)
    assert not limit.busy(rebalancing=False, recovering=False)
    assert limit.busy(rebalancing=True, recovering=False)  # a new stretch


def test_commits_creeping_forward_without_folding_are_still_a_stall() -> None:
    clock = FakeClock()
    tp = TopicPartition("usage", 0)
    # Faust committed one more offset at each look, but the agent folded nothing.
    lag = FakeLag([{tp: (100 + i, 250)} for i in range(30)])
    start = clock.now
    fatal = _run_watch(lag, clock, folded=[7], busy=[])
    assert len(fatal) == 1 and "usage/0" in fatal[0]
    assert 30 <= clock.now - start <= 40
