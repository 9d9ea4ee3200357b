"""`streambill export`'s pure part: input records of the log to the JSON lines that
`streambill simulate` reads (the format of `processors.simulate.lines`).

One file holds both inputs: usage lines and account lines (`type` naming the kind);
`read_jsonl` of the usage file reads both, as the same events.

Every record passes the doors (`processors.fold.admission.Doors`) first, as on every
path that reads the input topics; a record they reject is not written but counted by
reason, and nothing a record holds stops an export. The selection (`Selection`) is by
event time: usage in [start, end); account events before `end`, from the beginning of
the log, because a customer's subscription, seats, credits and wallet at `start` are
the fold of every account event before it (the close reads account-events from the
start too). Records are written in the order given (the CLI gives each partition in
offset order: the log's order, which is what simulate folds usage in).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TextIO

from billing.events import Event, RejectReason, UsageRecorded
from processors.fold.admission import Doors, Rejection
from processors.simulate.lines import event_line


class InputRecord(Protocol):
    """A record of an input topic (`streambill.wire.log.LogRecord` is one)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes: ...


@dataclass(frozen=True)
class Selection:
    """What an export keeps: usage in [start, end), account events before `end`, of
    `customers` only when given."""

    start: datetime
    end: datetime
    customers: frozenset[str] | None = None

    def keeps(self, event: Event) -> bool:
        if self.customers is not None and event.customer_id not in self.customers:
            return False
        if isinstance(event, UsageRecorded):
            return self.start <= event.timestamp < self.end
        return event.timestamp < self.end


@dataclass
class ExportTally:
    """What an export did with the records it read."""

    usage: int = 0
    account: int = 0
    outside: int = 0  # read, admitted by the doors, not selected
    rejected: Counter[str] = field(default_factory=Counter)  # reason -> records


def export_records(
    records: Iterable[InputRecord],
    doors: Doors,
    selection: Selection,
    out: TextIO,
    tally: ExportTally,
) -> None:
    """Write the selected events of `records`, in their order, through the doors."""
    for record in records:
        try:
            event = doors.read(record.topic, record.partition, record.key, record.value)
        except Rejection as rejected:
            tally.rejected[rejected.reason.value] += 1
            continue
        except Exception:  # never fatal on data: the worker dead-letters it the same way
            tally.rejected[RejectReason.INTERNAL_ERROR.value] += 1
            continue
        if not selection.keeps(event):
            tally.outside += 1
            continue
        out.write(event_line(event))
        if isinstance(event, UsageRecorded):
            tally.usage += 1
        else:
            tally.account += 1
