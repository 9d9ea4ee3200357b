"""Differential test: generated histories through every path must agree to the cent.

A history is a few customers (metered, credits and balance plans) on three
partitions, with usage reported on time and late (up to beyond the 35-day window),
producer retries (properties reordered, `12.50` for `12.5`), conflicting reuse of
an id, one event id shared by two customers, records on the wrong partition or
without a key, plan and seat changes at period boundaries, top-ups and pack
purchases. Records arrive in arrival order; four monthly closes run at their due
time, each seeing only what had arrived.

Paths, and what must hold:
- the worker: `BatchFolder` over each partition's arrivals cut into random
  batches, merged by time within a batch as the pipeline does, tables committed
  after each batch;
- the closes: `close_period` over the in-memory log (Jan..Apr 2025);
- `simulate` over the whole log in log order;
- reconcile: `reconcile_log` (every input accounted for exactly once, the worker's
  snapshots byte-equal to one pure fold of the whole log, whatever the batches)
  and `check_against_live` (what the closes invoiced equals what the records the
  worker kept price to);
- every customer period: billed by the closes (invoice plus adjustments) ==
  `simulate`'s invoice; every final balance and credit count of the worker ==
  the replay's at the same instant.
"""

from __future__ import annotations

import dataclasses
import os
from datetime import datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from billing import ledger
from billing.admission import AdmissionPolicy
from billing.events import (
    CreditsPurchased,
    Event,
    SeatsChanged,
    SubscriptionChanged,
    SubscriptionStarted,
    UsageRecorded,
    WalletDeposited,
)
from billing.replay import Replay
from processors.close.run import read_history
from processors.fold.batch import BatchFolder, SourceMessage, Topics, merge_by_time
from processors.reconcile.live import check_against_live
from processors.reconcile.log import read_outputs, reconcile_log
from processors.reconcile.run import render
from processors.simulate.simulation import simulate
from streambill.wire.convert import encode_value
from streambill.wire.log import LogRecord
from streambill.wire.partitioner import owner
from tests.close_support import TOPICS as CT
from tests.close_support import Harness, load_example_catalog, utc
from tests.worker_tables import Tables

CATALOG = load_example_catalog()
DAY = 86_400_000
PARTS = 3
POLICY = AdmissionPolicy(35 * DAY, 35 * DAY, 300_000)
TOPICS = Topics(CT.usage, CT.account, "t.customer-state", "t.alerts", CT.invoices, "t.rejected")
WORKER_NOW = utc(2025, 5, 3)  # the worker's clock: after every arrival
START = utc(2025, 1, 1)
END = utc(2025, 5, 1)  # periods ending by then are billed by the four closes
CLOSES = [("2025-01", utc(2025, 2, 2)), ("2025-02", utc(2025, 3, 2)),
          ("2025-03", utc(2025, 4, 2)), ("2025-04", utc(2025, 5, 2))]  # fmt: skip
# (customer, plan, feature, property maker): metered, credits, balance
CUSTOMERS = [
    ("cus_w", "writer", "tokens", lambda q: {}),
    ("cus_s", "starter", "tokens", lambda q: {}),
    ("cus_i", "image-credits", "image_generation", lambda q: {"complexity": "complex"}),
    ("cus_d", "dev-api", "tokens",
     lambda q: {"model": "small", "input_tokens": str(q), "output_tokens": "0"}),
]  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Arrival:
    at: datetime
    event: Event
    partition: int | None = None  # None: the owner
    keyless: bool = False


@st.composite
def histories(draw: st.DrawFn) -> list[Arrival]:
    out: list[Arrival] = []
    n = 0
    for cid, plan, feature, props in CUSTOMERS:
        t0 = utc(2025, 1, 1) + timedelta(days=draw(st.integers(0, 5)))
        out.append(Arrival(t0, SubscriptionStarted(f"s-{cid}", cid, t0, plan)))
        if plan == "image-credits":
            out.append(Arrival(t0, CreditsPurchased(f"p-{cid}", cid, t0, "credits-100", 2)))
        if plan == "dev-api":
            out.append(Arrival(t0, WalletDeposited(f"d-{cid}", cid, t0, Decimal("5"), "USD")))
        if plan in ("writer", "starter") and draw(st.booleans()):  # changes at a boundary
            at = t0 + timedelta(days=31 * draw(st.integers(1, 3)))
            other = "starter" if plan == "writer" else "writer"
            change = draw(st.sampled_from([
                SubscriptionChanged(f"c-{cid}", cid, at, other),
                SeatsChanged(f"c-{cid}", cid, at, 3),
            ]))  # fmt: skip
            out.append(Arrival(at, change))
        for _ in range(draw(st.integers(3, 14))):
            n += 1
            at = t0 + timedelta(hours=draw(st.integers(1, 24 * 110)))
            delay = draw(st.sampled_from([0, 0, 0, 0, 1, 20, 34, 36, 45]))
            qty = draw(st.sampled_from(["1", "7", "12.5", "30000", "90000", "250000"]))
            if feature == "image_generation":
                qty = "1"
            shared = draw(st.integers(0, 9)) == 0
            eid = "evt-shared" if shared else f"e{n}"
            event = UsageRecorded(eid, cid, feature, Decimal(qty), at, props(qty))
            arrives = at + timedelta(days=delay, seconds=1)
            if arrives >= END:
                continue
            out.append(Arrival(arrives, event))
            kind = draw(
                st.sampled_from(["none"] * 6 + ["retry", "conflict", "moved", "keyless", "huge"])
            )
            later = arrives + timedelta(minutes=draw(st.integers(1, 600)))
            if later >= END:
                continue
            if kind == "retry":  # the same event, other bytes: reordered, 12.50
                again = dataclasses.replace(
                    event,
                    quantity=Decimal(qty + ".00") if "." not in qty else Decimal(qty + "0"),
                    properties=dict(reversed(list(event.properties.items()))),
                )
                out.append(Arrival(later, again))
            elif kind == "conflict":
                other_qty = Decimal(qty) + 1
                out.append(Arrival(later, dataclasses.replace(event, quantity=other_qty)))
            elif kind == "moved":
                wrong = (owner(cid.encode(), PARTS) + 1) % PARTS
                out.append(Arrival(later, dataclasses.replace(event, event_id=f"m{n}"), wrong))
            elif kind == "huge":  # past the bounds: dead-lettered out_of_range everywhere
                huge = Decimal("123456789012345678901234567890123")
                big = dataclasses.replace(event, event_id=f"h{n}", quantity=huge)
                out.append(Arrival(later, big))
            elif kind == "keyless":
                out.append(
                    Arrival(later, dataclasses.replace(event, event_id=f"k{n}"), keyless=True)
                )
    out.sort(key=lambda a: (a.at, not isinstance(a.event, UsageRecorded)))
    return out


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def place(h: Harness, arrival: Arrival) -> LogRecord:
    """Append `arrival` to its input topic of `h`'s log (on the partition it names, or
    its owner), without a key if it is keyless; the record."""
    e = arrival.event
    topic = CT.usage if isinstance(e, UsageRecorded) else CT.account
    p = owner(e.customer_id.encode(), PARTS) if arrival.partition is None else arrival.partition
    part = h.log._parts(topic)[p]
    key = None if arrival.keyless else e.customer_id.encode()
    record = LogRecord(topic, p, len(part), key, encode_value(h.codec, e), ms(e.timestamp))
    part.append(record)
    return record


def run_worker(
    h: Harness, records: list[LogRecord], cuts: st.DataObject
) -> tuple[Tables, list[tuple[str, bytes | None, bytes]]]:
    """The worker over each partition's records in arrival order, random batches."""
    folder = BatchFolder(CATALOG, h.codec, POLICY, TOPICS, lambda: WORKER_NOW, partitions=PARTS)
    tables = Tables()
    outputs: list[tuple[str, bytes | None, bytes]] = []
    for p in range(PARTS):
        mine = [r for r in records if r.partition == p]
        i = 0
        while i < len(mine):
            size = cuts.draw(st.integers(1, 8), label="batch size")
            batch = [
                SourceMessage(r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.value)
                for r in mine[i : i + size]
            ]
            i += size
            result = folder.fold(merge_by_time(batch), tables)
            outputs += [(o.topic, o.key, o.value) for o in result.outputs]
            tables.seen_ids.update({k: e for k, (_, e) in result.seen.items()})
            tables.customers.update({c: r for c, (_, r) in result.customers.items()})
    return tables, outputs


@settings(
    max_examples=int(os.environ.get("STREAMBILL_DIFFERENTIAL_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(history=histories(), cuts=st.data())
def test_every_path_agrees_to_the_cent(history: list[Arrival], cuts: st.DataObject) -> None:
    h = Harness(CATALOG)
    records: list[LogRecord] = []
    pending = list(CLOSES)
    for arrival in history:
        while pending and pending[0][1] <= arrival.at:
            h.close(pending.pop(0)[0])
        records.append(place(h, arrival))
    for month, _ in pending:
        h.close(month)

    tables, outputs = run_worker(h, records, cuts)
    for topic, key, value in outputs:  # the worker's outputs, on their topics
        h.log.produce(topic, key or b"", value, 0)

    # reconcile: accounting, snapshots (batch-split independence), closes vs live
    read = read_outputs(h.log, TOPICS, h.codec)
    report = reconcile_log(h.log, h.codec, CATALOG, TOPICS, POLICY, lambda: WORKER_NOW, read=read)
    check_against_live(
        h.log, h.codec, CATALOG, usage_topic=CT.usage, account_topic=CT.account,
        invoices_topic=CT.invoices, history=read_history(h.log, CT.closes, h.codec),
        dead_letters=read[0].dead_letters, report=report,
    )  # fmt: skip
    assert report.ok, render(report)
    for reason in sorted({r for reasons in read[0].dead_letters.values() for r in reasons}):
        event(f"dead letter {reason}")  # the statistics show what the histories exercise
    assert sum(r.unaccounted for r in report.rows) == 0
    assert sum(r.in_log for r in report.rows) == len(records)

    # the closes' invoices against simulate over the same log, period by period
    billed: dict[tuple[str, datetime], Decimal] = {}
    kinds: dict[tuple[str, datetime], set[str]] = {}
    for _, inv in h.invoices_on_topic():
        if inv.kind == "purchase":  # invoiced live by the worker, not by a close
            continue
        key2 = (inv.customer_id, inv.period_start)
        billed[key2] = billed.get(key2, Decimal(0)) + inv.total
        kinds.setdefault(key2, set()).add(inv.kind)
        event(f"invoice {inv.kind}")
    placed = [  # what simulate is given: the log's events that sit where they belong
        a.event for a in history if a.partition is None and not a.keyless and a.at < END
    ]
    sim = simulate(CATALOG, placed, START, END, POLICY)  # type: ignore[arg-type]
    simulated = {
        (i.customer_id, i.period_start): i.total for i in sim.invoices if i.kind == "period"
    }
    closed = {k: v for k, v in billed.items() if "period" in kinds[k]}
    assert closed == simulated

    # final balances and credits: the worker's state against the replay's
    replay = Replay(CATALOG, POLICY)
    for e in placed:
        if not isinstance(e, UsageRecorded):
            replay.account(e)
    for e in placed:
        if isinstance(e, UsageRecorded):
            replay.usage(e)
    replay.finish()
    for cid, record in tables.customers.items():
        if record.state.anchor is None:
            continue
        as_of = max(record.state.updated_at or START, START)
        live = ledger.snapshot(record.state, CATALOG, source_offsets={}, as_of=as_of)
        pure = ledger.snapshot(replay.customers[cid].state, CATALOG, source_offsets={}, as_of=as_of)
        assert (live.balance, live.credits_remaining) == (pure.balance, pure.credits_remaining), cid
