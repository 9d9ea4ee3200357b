"""`RecordJson` writes exactly the bytes of the encoder on `CustomerRecord.to_dict()`,
also when it reuses the fragments of a customer's previous record."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from billing import ledger
from billing.admission import AdmissionPolicy
from billing.events import Event, SubscriptionStarted, UsageRecorded
from billing.state import CustomerState, PeriodRecord, new_record, new_state
from processors.fold.batch import BatchFolder, SourceMessage, Topics
from processors.fold.record_json import RecordJson
from processors.fold.records import CustomerRecord
from processors.worker.memory_runtime import MemoryLog, MemoryRuntime
from processors.worker.pipeline import FoldPipeline
from streambill.config.catalog_file import load_catalog
from streambill.wire import convert
from streambill.wire.codec import Codec
from tests.unit.billing.conftest import EXAMPLE, t
from tests.unit.billing.strategies import EXAMPLE_PLANS, START, bounded_decimals, histories

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
catalog = load_catalog(EXAMPLE)
codec = Codec()
TOPICS = Topics("u", "a", "s", "al", "inv", "rej")
DAY = 86_400_000


def reference(record: CustomerRecord) -> bytes:
    """What `processors.worker.pipeline` wrote before `RecordJson`: `_json(record.to_dict())`."""
    return _encode(record.to_dict()).encode()


def assert_exact(writer: RecordJson, record: CustomerRecord) -> bytes:
    data = writer.encode(record)
    assert data == reference(record)
    return data


@settings(max_examples=60, deadline=None)
@given(data=st.data(), plan=st.sampled_from(EXAMPLE_PLANS), prune_every=st.integers(1, 8))
def test_every_state_of_a_folded_history_is_written_exactly(
    data: st.DataObject, plan: str, prune_every: int
) -> None:
    """One writer sees every consecutive state of a customer (shared accounts and
    earlier periods: its cache hits), pruned now and then (horizon, earlier periods)."""
    writer = RecordJson()
    state = ledger.new_state("c")
    offsets: dict[str, int] = {}
    for n, event in enumerate(data.draw(histories(plan))):
        state, _ = ledger.apply(state, event, catalog)
        if n % prune_every == prune_every - 1:
            state = ledger.prune(state, event.timestamp - timedelta(days=35))
        offsets[f"{'u' if isinstance(event, UsageRecorded) else 'a'}/0"] = n
        assert_exact(writer, CustomerRecord("c", state, dict(offsets), n * 1000))
    ms = round((START - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000)
    assert_exact(writer, CustomerRecord("c", ledger.forget_ids(state), {}, ms))


class KeepingView:
    """Hands out the records it keeps, as the worker's cache does (same objects)."""

    def __init__(self) -> None:
        self.customers: dict[str, CustomerRecord] = {}
        self.seen_ids: dict[str, object] = {}

    def customer(self, customer_id: str, partition: int) -> CustomerRecord | None:
        return self.customers.get(customer_id)

    def seen(self, event_id: str, partition: int) -> None:
        return None  # event ids are unique here


def messages(events: list[Event], customer_id: str, tag: str) -> list[SourceMessage]:
    out = []
    for offset, event in enumerate(events):
        event = dataclasses.replace(
            event, customer_id=customer_id, event_id=f"{tag}-{event.event_id}"
        )
        name, record = convert.to_avro(event)
        topic = "u" if isinstance(event, UsageRecorded) else "a"
        out.append(
            SourceMessage(topic, 0, offset, None, customer_id.encode(), codec.encode(name, record))
        )
    return out


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    plans=st.lists(st.sampled_from(EXAMPLE_PLANS), min_size=1, max_size=3),
    batch=st.integers(1, 12),
)
def test_records_of_folded_batches_are_written_exactly(
    data: st.DataObject, plans: list[str], batch: int
) -> None:
    """Records as the worker's `BatchFolder` leaves them (pruned, without id memory),
    several customers interleaved, each customer's record written after every batch
    that changed it."""
    ids = ["c-0", 'c"é\\1', "c\u2028\n2"]
    streams = [messages(data.draw(histories(plan)), ids[i], str(i)) for i, plan in enumerate(plans)]
    merged = sorted((m for s in streams for m in s), key=lambda m: m.offset)
    now = START + timedelta(days=100)
    folder = BatchFolder(
        catalog, codec, AdmissionPolicy(35 * DAY, 35 * DAY, 0), TOPICS, lambda: now
    )
    view, writer, written = KeepingView(), RecordJson(), 0
    for k in range(0, len(merged), batch):
        result = folder.fold(merged[k : k + batch], view)
        for cid, (_, record) in result.customers.items():
            assert_exact(writer, record)
            view.customers[cid] = record
            written += 1
    assert written >= len(plans)


# ---- hand-built states: awkward strings, decimals, None, times in other zones

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6) | st.sampled_from(
    ['"', "\\", "\x00\x1f", "é\u2028\u2029", "😀", "</script>", "\ud7ff"]
)
decimals = (
    st.sampled_from(
        [D("1E+3"), D("-0"), D("0E-10"), D("-1.50"), D("1e-7"), D("NaN"), D("-Infinity")]
    )
    | st.decimals(allow_nan=False, allow_infinity=False, places=None)
    | bounded_decimals()
)
zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-1, seconds=7))]
)
wire_times = st.integers(-(10**12), 10**12).map(lambda ms: START + timedelta(milliseconds=ms))
times = st.datetimes(timezones=zones | st.none()) | wire_times  # naive, other zones, UTC
utc_times = st.datetimes(timezones=st.just(UTC))
ints = st.integers(-(2**63), 2**63)


@st.composite
def periods(draw: st.DrawFn, start: datetime) -> PeriodRecord:
    r = new_record(start, draw(times), draw(texts))
    r.usage = draw(st.dictionaries(texts, decimals, max_size=3))
    r.tokens = draw(st.dictionaries(st.tuples(texts, texts), st.tuples(decimals, decimals)))
    r.credits_used, r.spent, r.topped, r.spend = (draw(decimals) for _ in range(4))
    r.alert_idx = draw(st.dictionaries(texts, ints, max_size=3))
    r.capped = draw(st.booleans())
    return r


@st.composite
def states(draw: st.DrawFn, customer_id: str) -> CustomerState:
    s = new_state(customer_id)
    s.seq = draw(st.integers(0, 10**9))
    s.status = draw(st.sampled_from(["none", "active", "cancelled"]))
    s.anchor, s.cancel_at, s.horizon, s.updated_at = (draw(times | st.none()) for _ in range(4))
    s.plans = tuple(draw(st.lists(st.tuples(times, texts), max_size=3)))
    s.seats = tuple(draw(st.lists(st.tuples(times, ints), max_size=3)))
    starts = draw(st.lists(utc_times, max_size=4, unique=True))
    records = {start: draw(periods(start)) for start in starts}
    s.with_records(records)  # the latest becomes `last`; earlier ones in drawn order
    s.grants = tuple(draw(st.lists(st.tuples(times | st.none(), decimals), max_size=3)))
    s.wallet_opening, s.balance = draw(decimals), draw(decimals)
    s.last_topup, s.alert_next = draw(decimals | st.none()), draw(decimals | st.none())
    s.alerts_raised = frozenset(draw(st.lists(ints, max_size=4)))
    s.alert_counts = draw(st.dictionaries(ints, ints, max_size=4))
    return s


def records(customer_id: str) -> st.SearchStrategy[CustomerRecord]:
    return st.builds(
        CustomerRecord,
        st.just(customer_id),
        states(customer_id),
        st.dictionaries(texts, ints, max_size=3),
        ints | st.none(),
    )


shared = RecordJson(limit=3)  # across examples: entries of other states, evicted often


@settings(max_examples=200, deadline=None)
@given(data=st.data(), customer_id=texts)
def test_hand_built_records_are_written_exactly(data: st.DataObject, customer_id: str) -> None:
    first = data.draw(records(customer_id))
    assert_exact(shared, first)
    # The same customer again: a new state (other account, records, grants) ...
    assert_exact(shared, data.draw(records(customer_id)))
    # ... and one sharing parts with the first but changed in each of them.
    s = first.state.copy()
    s.seq += 1
    s.seats = (*s.seats, (t(2026, 2, 1), 7))
    if s.last is not None:
        s.last = s.last.copy()
        s.last.usage = {**s.last.usage, "extra": D("1.5")}
    s.earlier = {k: v for k, v in list(s.earlier.items())[1:]}
    assert_exact(shared, CustomerRecord(customer_id, s, {**first.offsets, "u/0": 1}, None))
    assert len(shared) <= 3


def test_changed_account_and_earlier_periods_are_not_served_from_the_cache() -> None:
    """Encode a customer, change its seats and plan (a new `Account`), then one of its
    earlier period records (a new `earlier` dict), encoding after each change."""
    writer = RecordJson()
    state = ledger.new_state("cus")
    for event in histories_of_team():
        state, _ = ledger.apply(state, event, catalog)
    assert state.earlier, "the history spans more than one period"
    before = assert_exact(writer, CustomerRecord("cus", state, {"a/0": 1}, 5))
    assert writer.encode(CustomerRecord("cus", state, {"a/0": 1}, 5)) == before  # cached

    seats = state.copy()
    seats.seats = (*state.seats, (t(2026, 2, 10), 9))
    seats.plans = (*state.plans, (t(2026, 3, 1), "starter"))
    assert seats.acct is not state.acct and seats.earlier is state.earlier
    changed = assert_exact(writer, CustomerRecord("cus", seats, {"a/0": 1}, 5))
    assert changed != before
    assert b'[["2026-01-01T00:00:00+00:00",2],["2026-02-10T00:00:00+00:00",9]]' in changed
    assert b'["2026-03-01T00:00:00+00:00","starter"]' in changed

    late = seats.copy()
    first = min(seats.earlier)
    redone = seats.earlier[first].copy()
    redone.usage = {"tokens": D("123456789")}
    late.earlier = {**seats.earlier, first: redone}
    data = assert_exact(writer, CustomerRecord("cus", late, {"a/0": 1}, 5))
    assert b'"usage":{"tokens":"123456789"}' in data and data != changed

    # And back: the old state's fragments are not mistaken for the new ones.
    assert writer.encode(CustomerRecord("cus", state, {"a/0": 1}, 5)) == before


def histories_of_team() -> list[Event]:
    sub = SubscriptionStarted("sub", "cus", START, "team", seats=2)
    usage = [
        UsageRecorded(f"u{i}", "cus", "tokens", D(1000 * i), START + timedelta(days=12 * i), {})
        for i in range(1, 5)
    ]
    return [sub, *usage]


def test_cache_is_bounded_and_survives_being_cleared() -> None:
    writer = RecordJson(limit=2)
    recs = [CustomerRecord.new(f"c{i}") for i in range(5)]
    for rec in recs * 2:
        assert_exact(writer, rec)
        assert len(writer) <= 2


def test_pipeline_reads_back_kept_records_and_recovered_changelog_values() -> None:
    """The memory store holds the record the pipeline wrote, or after table recovery
    the changelog value JSON-decoded: `customer()` reads both as the same record."""
    state = ledger.new_state("cus")
    for event in histories_of_team():
        state, _ = ledger.apply(state, event, catalog)
    kept = CustomerRecord("cus", ledger.forget_ids(state), {"u/0": 4, "a/0": 0}, 77)
    recovered = json.loads(RecordJson().encode(kept))  # what Faust's json codec decodes
    runtime = MemoryRuntime(MemoryLog(1), ("u", "a"))
    runtime.customers.data = {"cus": kept, "other": recovered}
    pipeline = FoldPipeline(runtime, None, None, None, ("u", "a"), None, print)  # type: ignore[arg-type]
    assert pipeline.customer("cus", 0) is kept
    read = pipeline.customer("other", 0)
    assert isinstance(read, CustomerRecord) and read.to_dict() == kept.to_dict()
    assert RecordJson().encode(read) == reference(kept)
