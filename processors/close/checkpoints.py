"""Checkpoints: the state each close carries into the next, so closes read only what
retention keeps (docs/ARCHITECTURE.md, "Checkpoints").

The close of month M writes, for every customer it folded, a `CustomerCheckpointed`
to the close-checkpoints topic (key = customer id, so it lands in the customer's
input partition): the state at M's watermarks W_M, the lateness watermark, and what
the next fold needs to deduplicate exactly as a fold from the log start would.

The next close resumes (`ReadPlan.resumes`) instead of folding from the log start:
1. `read_checkpoints`: the records between the two closes' recorded positions of the
   topic (those of close M, written before its PeriodClosed); each must be of close
   M and reflect exactly W_M. A gap (compaction removed one, retention deleted some)
   stops the close with a named error: starting a customer from nothing would bill
   a different number without a word.
2. `resume`: each customer starts from its checkpoint, which is also "billed so far"
   (phase A of `processors.close.fold` is then empty: the state at W_M is what close
   M priced).
3. `rebuild_seen`: the dedupe memory. An event id more than `dedupe_window` behind the
   watermark counts as absent (`billing.admission`), so only the window matters:
   - the applied account events of the window travel in the checkpoint;
   - usage of a customer whose window the next close can still read from the log
     (`rereads`) is read again from usage-events: every record of the window that
     passes the doors was applied, except the `skipped` ones the checkpoint lists
     (refused or duplicates; few). Other customers' applied usage of the window
     travels in the checkpoint too (idle ones: little).
4. then [W_M, W_now) of both inputs is folded as phase B, and late usage older than
   what a checkpoint's state holds (`complete_from`) is folded from the log
   (`processors.close.fold._widen`), or refused by name when retention deleted it.

Failure: every error here is a `ClosePlanError` raised before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from billing.admission import AdmissionPolicy, to_ms
from billing.events import CustomerCheckpointed, Event, RejectReason, UsageRecorded
from billing.replay import Replay, ReplayCustomer
from billing.state_codec import state_from_dict, state_to_dict
from processors.close.plan import ACCOUNT, CHECKPOINTS, USAGE, ClosePlanError, Month, ReadPlan
from processors.fold.admission import EVENT_TYPES, Doors, Rejection
from streambill.wire.codec import Codec
from streambill.wire.convert import decode_value, encode_value
from streambill.wire.log import LogPort, partition_for

# Slack between the earliest event time the next close can still read from the log
# under the minimum usage retention (lateness + two 31-day periods, enforced by
# `topics create`) and the start of this close's month minus the lateness: covers the
# grace before a close runs and months shorter than 31 days.
REREAD_SLACK = timedelta(days=7)


@dataclass
class Tracking:
    """What a fold records for the checkpoints it writes."""

    # customer id -> (offset, event time ms) of its usage records that passed the doors
    # and were not applied (this fold, and those carried by its checkpoint)
    skipped: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    # customer id -> event time from which its state holds every applied usage event
    complete_from: dict[str, datetime | None] = field(default_factory=dict)

    # customer id -> offsets of its usage records refused only as in the future
    pending: dict[str, list[int]] = field(default_factory=dict)

    def skip(self, customer_id: str, offset: int, event_ms: int, reason: str | None) -> None:
        """A usage record that passed the doors and was not applied for `reason`
        (None: a duplicate)."""
        self.skipped.setdefault(customer_id, []).append((offset, event_ms))
        if reason == RejectReason.TIMESTAMP_IN_FUTURE:
            self.pending.setdefault(customer_id, []).append(offset)


def rereads(watermark_ms: int | None, month: Month, policy: AdmissionPolicy) -> bool:
    """Whether the close after `month` re-reads this customer's dedupe window from the
    log (else the window's applied usage travels in the checkpoint)."""
    if watermark_ms is None:
        return False
    readable = to_ms(month.start - timedelta(milliseconds=policy.max_lateness_ms) + REREAD_SLACK)
    return watermark_ms - policy.dedupe_window_ms >= readable


def read_checkpoints(
    log: LogPort,
    topic: str,
    plan: ReadPlan,
    parts: list[int],
    codec: Codec,
    keys: frozenset[bytes] | None,
) -> dict[str, CustomerCheckpointed]:
    """Step 1: the previous close's checkpoint of every customer of `parts`."""
    assert plan.prev_month is not None
    starts = {p: plan.prev[CHECKPOINTS].get(p, 0) for p in parts}
    ends = {p: plan.ends[CHECKPOINTS].get(p, 0) for p in parts}
    low, _ = log.watermarks(topic)
    for p in parts:
        if low.get(p, 0) > starts[p]:
            raise ClosePlanError(
                f"{topic} partition {p}: the checkpoints of close {plan.prev_month} start"
                f" at offset {starts[p]} but the topic starts at {low[p]} (deleted); the"
                " topic must keep them (it is created compacted, never deleted by time)"
            )
    found: dict[str, CustomerCheckpointed] = {}
    expected = dict(starts)
    for batch in log.read(topic, starts, ends):
        for r in batch:
            if r.offset != expected[r.partition]:
                raise ClosePlanError(
                    f"{topic} partition {r.partition}: offsets {expected[r.partition]} to"
                    f" {r.offset - 1} are gone (compacted before this close ran); raise the"
                    " topic's min.compaction.lag.ms (created at the usage retention)"
                )
            expected[r.partition] = r.offset + 1
            if keys is not None and r.key not in keys:
                continue
            cp = _checkpoint(codec, r.value, topic, r.partition, r.offset)
            _check(cp, plan, r.partition, topic, r.offset)
            found[cp.customer_id] = cp  # a re-run's copy repeats the same value
    for p in parts:
        if expected[p] != ends[p]:
            raise ClosePlanError(
                f"{topic} partition {p}: offsets {expected[p]} to {ends[p] - 1} of close"
                f" {plan.prev_month}'s checkpoints are gone (compacted or deleted)"
            )
    return found


def _checkpoint(codec: Codec, value: bytes, topic: str, p: int, o: int) -> CustomerCheckpointed:
    try:
        cp = decode_value(codec, value)
    except Exception as exc:  # a bad record stops the close: it cannot start from it
        raise ClosePlanError(f"{topic}[{p}]@{o} is not a readable checkpoint: {exc}") from exc
    if not isinstance(cp, CustomerCheckpointed):
        raise ClosePlanError(f"{topic}[{p}]@{o} is not a CustomerCheckpointed")
    return cp


def _check(cp: CustomerCheckpointed, plan: ReadPlan, p: int, topic: str, o: int) -> None:
    want = (str(plan.prev_month), p, plan.prev[USAGE].get(p, 0), plan.prev[ACCOUNT].get(p, 0))
    have = (cp.period_id, cp.partition, cp.usage_offset, cp.account_offset)
    if have != want:
        raise ClosePlanError(
            f"{topic}[{p}]@{o}: checkpoint of {cp.customer_id} is (close, partition, usage"
            f" offset, account offset) {have}, the previous close's watermarks say {want}"
        )


def resume(
    folder: Replay, found: Mapping[str, CustomerCheckpointed], codec: Codec, track: Tracking
) -> None:
    """Step 2, and the dedupe memory that travels in the checkpoints."""
    for customer_id, cp in found.items():
        state = state_from_dict(json.loads(cp.state))
        c = folder.customers[customer_id] = ReplayCustomer(state, prev=state)
        c.watermark_ms = cp.watermark_ms
        for data in cp.recent:
            decoded = decode_value(codec, data)
            if not isinstance(decoded, EVENT_TYPES):
                raise ClosePlanError(f"checkpoint of {customer_id}: a recent entry is no event")
            event = cast(Event, decoded)
            c.seen[event.event_id] = event
        track.complete_from[customer_id] = cp.complete_from
        track.skipped[customer_id] = list(cp.skipped)


def decide_pending(
    log: LogPort,
    usage_topic: str,
    folder: Replay,
    found: Mapping[str, CustomerCheckpointed],
    doors: Doors,
    track: Tracking,
) -> None:
    """The usage the previous close refused only as in the future of its clock, decided
    again under this close's clock before anything else of the window, and counted as
    billed so far (it lies in periods ending after the previous close's month, which no
    adjustment of this close reaches). Still in the future: pending again."""
    low: dict[int, int] | None = None
    for customer_id, cp in sorted(found.items()):
        if not cp.pending:
            continue
        c = folder.customers[customer_id]
        p = cp.partition
        low = low if low is not None else log.watermarks(usage_topic)[0]
        if min(cp.pending) < low.get(p, 0):
            raise ClosePlanError(
                f"{usage_topic} partition {p}: usage of {customer_id} at offset"
                f" {min(cp.pending)}, refused by the previous close as in the future and to"
                f" be decided again, was deleted (the topic starts at {low[p]}); raise"
                " STREAMBILL_USAGE_RETENTION_DAYS"
            )
        for offset in cp.pending:
            for batch in log.read(usage_topic, {p: offset}, {p: offset + 1}):
                for r in batch:
                    event = doors.read(r.topic, r.partition, r.key, r.value)
                    if type(event) is not UsageRecorded or event.customer_id != customer_id:
                        raise ClosePlanError(f"{usage_topic}[{p}]@{offset} is not {customer_id}'s")
                    if folder.usage(event, phase_b=False):
                        mine = track.skipped[customer_id]
                        mine[:] = [(o, t) for o, t in mine if o != offset]
                    elif folder.last_refusal == RejectReason.TIMESTAMP_IN_FUTURE:
                        track.pending.setdefault(customer_id, []).append(offset)
        c.prev = c.state


def rebuild_seen(
    log: LogPort,
    usage_topic: str,
    plan: ReadPlan,
    parts: list[int],
    doors: Doors,
    folder: Replay,
    found: Mapping[str, CustomerCheckpointed],
    policy: AdmissionPolicy,
) -> None:
    """Step 3 for the customers whose window is read again from usage-events, from
    the offset their checkpoint names (`window_offset`: where the window started in
    the log when the previous close wrote it) to the previous watermarks."""
    window = policy.dedupe_window_ms
    again = {cid: cp for cid, cp in found.items() if cp.window_offset is not None}
    if not again:
        return
    starts: dict[int, int] = {}
    for cp in again.values():
        assert cp.window_offset is not None
        starts[cp.partition] = min(starts.get(cp.partition, cp.window_offset), cp.window_offset)
    low, _ = log.watermarks(usage_topic)
    for p, start in starts.items():
        if low.get(p, 0) > start:
            raise ClosePlanError(
                f"{usage_topic} partition {p}: this close re-reads the dedupe windows of"
                f" the checkpointed customers from offset {start}, but the topic starts at"
                f" {low[p]} (deleted by retention); raise STREAMBILL_USAGE_RETENTION_DAYS"
                " (at least the lateness plus two periods) or close on time"
            )
    skip = {cid: {o for o, _ in cp.skipped} for cid, cp in again.items()}
    keys = frozenset(cid.encode() for cid in again)
    ends = {p: plan.prev[USAGE][p] for p in starts}
    for batch in log.read(usage_topic, starts, ends, keys):
        for r in batch:
            try:
                event = doors.read(r.topic, r.partition, r.key, r.value)
            except Rejection:
                continue  # refused at the doors then too
            mine = again.get(event.customer_id)
            if mine is None or type(event) is not UsageRecorded:
                continue
            if r.offset in skip[mine.customer_id]:
                continue
            assert mine.watermark_ms is not None
            if to_ms(event.timestamp) >= mine.watermark_ms - window:
                folder.customers[mine.customer_id].seen[event.event_id] = event


def _window_offsets(
    log: LogPort,
    usage_topic: str,
    folder: Replay,
    plan: ReadPlan,
    policy: AdmissionPolicy,
    customers: Iterable[str],
) -> dict[str, int]:
    """customer id -> the offset from which the next close re-reads its dedupe window,
    for the customers it will re-read (`rereads`); the others carry their window in
    the checkpoint. Per partition the earliest window of those customers, found by
    time (producers set the message timestamp to the event time, as the close's read
    rule assumes). A window that may start below the log's first record (retention
    already deleted some) is carried instead: the next close must never miss one."""
    n = len(plan.ends[USAGE])
    wanted: dict[str, tuple[int, int]] = {}  # customer -> (partition, window start ms)
    for cid in customers:
        wm = folder.customers[cid].watermark_ms
        if wm is not None and rereads(wm, plan.month, policy):
            wanted[cid] = (partition_for(cid.encode(), n), wm - policy.dedupe_window_ms)
    if not wanted:
        return {}
    earliest: dict[int, int] = {}
    for p, since in wanted.values():
        earliest[p] = min(earliest.get(p, since), since)
    low, _ = log.watermarks(usage_topic)
    at: dict[int, int] = {}
    for since in sorted(set(earliest.values())):
        found = log.offsets_for_time(usage_topic, since)
        for p, t in earliest.items():
            if t == since:
                end = plan.ends[USAGE][p]
                at[p] = end if found.get(p, -1) < 0 else min(found[p], end)
    usable = {p for p, o in at.items() if o > low.get(p, 0) or low.get(p, 0) == 0}
    return {cid: at[p] for cid, (p, _) in wanted.items() if p in usable}


def checkpoints_of(
    folder: Replay,
    plan: ReadPlan,
    policy: AdmissionPolicy,
    codec: Codec,
    track: Tracking,
    log: LogPort,
    usage_topic: str,
    leave_out: Iterable[str] = (),
) -> list[tuple[bytes, bytes]]:
    """(key, value) of the checkpoint of every folded customer but `leave_out`, in
    customer order (deterministic bytes: a re-run writes the same records)."""
    left = set(leave_out)
    n = len(plan.ends[USAGE])
    mine = [cid for cid in folder.customers if cid not in left]
    windows = _window_offsets(log, usage_topic, folder, plan, policy, mine)
    out: list[tuple[bytes, bytes]] = []
    for customer_id in sorted(folder.customers):
        if customer_id in left:
            continue
        c = folder.customers[customer_id]
        key = customer_id.encode()
        p = partition_for(key, n)
        wm = c.watermark_ms
        since = None if wm is None else wm - policy.dedupe_window_ms
        window_offset = windows.get(customer_id)
        carry_usage = window_offset is None
        recent = tuple(
            encode_value(codec, e)
            for e in c.seen.values()
            if (carry_usage or type(e) is not UsageRecorded)
            and (since is None or to_ms(e.timestamp) >= since)
        )
        passed = track.skipped.get(customer_id, ())
        skipped = tuple(sorted({(o, t) for o, t in passed if since is None or t >= since}))
        pending = tuple(sorted(set(track.pending.get(customer_id, ()))))
        state = json.dumps(
            state_to_dict(c.state, remember_ids=False), separators=(",", ":"), ensure_ascii=False
        )
        cp = CustomerCheckpointed(
            customer_id=customer_id,
            period_id=str(plan.month),
            partition=p,
            usage_offset=plan.ends[USAGE][p],
            account_offset=plan.ends[ACCOUNT][p],
            watermark_ms=wm,
            complete_from=track.complete_from.get(customer_id),
            state=state,
            recent=recent,
            skipped=skipped,
            pending=pending,
            window_offset=window_offset,
        )
        out.append((key, encode_value(codec, cp)))
    return out
