"""The fold worker's two tables for tests that drive `BatchFolder` without Faust:
records and seen entries, committed after each batch as the pipeline does."""

from __future__ import annotations

from processors.fold.batch import BatchResult
from processors.fold.records import CustomerRecord, SeenEntry


class Tables:
    """`RecordView` over dicts. A stored record is handed out as a copy read back from
    its JSON form, as a restarted worker reads it from the changelog."""

    def __init__(self) -> None:
        self.customers: dict[str, CustomerRecord] = {}
        self.seen_ids: dict[str, SeenEntry] = {}

    def customer(self, customer_id: str, partition: int) -> CustomerRecord | None:
        rec = self.customers.get(customer_id)
        return None if rec is None else CustomerRecord.from_dict(rec.to_dict())

    def seen(self, key: str, partition: int) -> SeenEntry | None:
        return self.seen_ids.get(key)

    def commit(self, result: BatchResult) -> None:
        self.seen_ids.update({k: e for k, (_, e) in result.seen.items()})
        self.customers.update({c: r for c, (_, r) in result.customers.items()})
