"""Account events first after an assignment: the backlog of account-events.

Kafka orders nothing across the two input topics, so a worker that starts on a
backlog (a restart, a replay, a rebalance) may fetch a customer's usage before the
subscription that was published long before it, and dead-letter it as
`no_subscription`, where the live run, which saw the subscription first, applied
it. To decide like the live run did, the pipeline folds, before the first batch
of each newly assigned partition, every account event of that partition from the
group's committed offset up to the end offset of that moment (read by the
runtime's `LogReader`, which never joins the group nor commits). Those messages
are made durable like any batch; when the stream delivers them again the customer
record's offsets skip them. Account events published after that moment race
with usage as before (documented limitation; `streambill dlq replay` repairs).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from processors.fold.batch import SourceMessage
from processors.worker.ports import Gap, Partition

log = logging.getLogger("processors.worker.worker")

ReadRange = Callable[[str, int, int, int], Awaitable[list[SourceMessage]]]


class OffsetOrder:
    """Finds the messages Faust skipped in a source partition, within one assignment.

    The skip rule "offset <= the customer's last applied offset" assumes each
    partition arrives in offset order from where the group committed (our input
    topics are neither compacted nor transactional: offsets have no gaps). Faust
    breaks that around rebalances and table recovery: messages fetched meanwhile are
    dropped from the stream's queue while the fetch position stays ahead (seen in
    the chaos suite: committed 187, fetched through 764, first message handed over
    321), or a prefetched message jumps the queue (faust-streaming issues #221 and
    #236). Applying such a message would make the skipped messages of its customer
    look applied. `gap` names the skipped range; the caller reads it from the log
    itself and folds it first (see `read_range`), then tells Faust the range is
    done so that its commits can pass it. Going back (Faust seeks to the committed
    offset on each rebalance) is a harmless redelivery.

    A partition this worker keeps across a rebalance may also continue from its
    own position, beyond the committed offset (offset 5089 with 5068 committed, all
    of 5068..5088 folded by this process). That is no skip: every message this
    process checked was made durable before the next batch (a failure exits), so
    the resume point of a new assignment is the larger of the committed offset and
    this process's own progress."""

    def __init__(self) -> None:
        self._next: dict[tuple[str, int], int] = {}
        self._done: dict[tuple[str, int], int] = {}  # next offset after our own progress

    def new_assignment(self) -> None:
        """A rebalance happened: expectations start again from `expect`."""
        self._next = {}

    def expect(self, committed: dict[tuple[str, int], int]) -> None:
        """Where partitions resume: the group's committed offsets (raised to the log
        start offset by the caller, since retention may have deleted what follows
        an old commit), or further where this process itself already folded."""
        for tp, offset in committed.items():
            self._next[tp] = max(offset, self._done.get(tp, offset))

    def gap(self, topic: str, partition: int, offset: int) -> int | None:
        """Take the message at `offset`; the first offset Faust skipped before it, if
        it skipped any (the caller must fold [that, offset) first)."""
        tp = (topic, partition)
        want = self._next.get(tp)
        self._next[tp] = offset + 1
        self._done[tp] = max(offset + 1, self._done.get(tp, 0))
        return want if want is not None and offset > want else None


async def with_skipped(
    order: OffsetOrder, messages: Sequence[SourceMessage], read: ReadRange
) -> tuple[list[SourceMessage], list[Gap]]:
    """The batch's messages, each preceded by the messages Faust skipped before it
    in its partition (`order.gap`), read from the log by `read(topic, partition,
    start, stop)`; and those ranges. Per partition the list is in offset order."""
    out: list[SourceMessage] = []
    gaps: list[Gap] = []
    for m in messages:
        start = order.gap(m.topic, m.partition, m.offset)
        if start is not None:
            log.warning(
                "%s/%d: Faust handed over offset %d, skipping from %d: reading the "
                "skipped messages from the log",
                m.topic,
                m.partition,
                m.offset,
                start,
            )
            out += await read(m.topic, m.partition, start, m.offset)
            gaps.append((Partition(m.topic, m.partition), range(start, m.offset)))
        out.append(m)
    return out, gaps
