"""`streambill export`: a range of the log's input events as simulate's JSON lines.

    streambill export --from 2026-10-01 --to 2026-11-01 [--customer ID ...] [--out FILE]

Reads account-events, then usage-events, each partition in offset order, with the
period close's log adapter (`streambill.wire.kafka_log.KafkaLog`; no consumer group,
nothing committed), and writes what `processors.simulate.export` selects: usage with
an event time in [--from, --to), account events before --to. The file is what
`streambill simulate --events FILE` reads, so history can be kept, and back-tested,
beyond the usage topic's retention. Records the doors reject are left out and counted
by reason on stderr. With --out, the file appears only once complete (written next
to it, then renamed). Exit codes: 0 done, 1 the log could not be read, 2 bad
arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TextIO

from processors.fold.admission import Doors
from processors.simulate.export import ExportTally, Selection, export_records
from processors.simulate.lines import LineError, parse_time
from streambill.config.settings import ACCOUNT_EVENTS, USAGE_EVENTS, Settings
from streambill.wire.codec import Codec
from streambill.wire.kafka_log import KafkaLog, LogError
from streambill.wire.log import LogPort

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "export", help="write a range of the log's usage and account events as JSON lines"
    )
    p.add_argument("--from", dest="start", required=True, help="usage from (date), inclusive")
    p.add_argument("--to", dest="end", required=True, help="events before (date), exclusive")
    p.add_argument(
        "--customer", action="append", default=[], help="only this customer (repeatable)"
    )
    p.add_argument("--out", type=Path, help="write to FILE (default: stdout)")
    p.set_defaults(func=run)


def export_log(log: LogPort, settings: Settings, selection: Selection, out: TextIO) -> ExportTally:
    """Account events, then usage, partition by partition in offset order, through the
    doors, into `out`. Raises `LogError` when the log cannot be read."""
    usage, account = settings.topic(USAGE_EVENTS), settings.topic(ACCOUNT_EVENTS)
    partitions = log.partitions(usage)
    doors = Doors(Codec(), usage, account, len(partitions))
    keys = None
    if selection.customers is not None:
        keys = frozenset(c.encode() for c in selection.customers)
    tally = ExportTally()
    for topic in (account, usage):
        low, high = log.watermarks(topic)
        for p in sorted(low):
            for batch in log.read(topic, {p: low[p]}, {p: high[p]}, keys):
                export_records(batch, doors, selection, out, tally)
    return tally


def run(args: argparse.Namespace, settings: Settings) -> int:
    err = sys.stderr
    try:
        start, end = parse_time(args.start, "--from"), parse_time(args.end, "--to")
    except LineError as exc:
        err.write(f"streambill export: {exc.detail}\n")
        return EXIT_USAGE
    if start >= end:
        err.write("streambill export: --from must be before --to\n")
        return EXIT_USAGE
    selection = Selection(start, end, frozenset(args.customer) if args.customer else None)
    log = KafkaLog(settings.kafka_config())
    try:
        if args.out is None:
            tally = export_log(log, settings, selection, sys.stdout)
        else:
            tally = _to_file(log, settings, selection, args.out)
    except LogError as exc:
        err.write(f"streambill export: {exc}\n")
        return EXIT_FAILED
    except OSError as exc:
        err.write(f"streambill export: cannot write {args.out}: {exc.strerror or exc}\n")
        return EXIT_FAILED
    finally:
        log.close()
    err.write(summary(tally, args.out) + "\n")
    return EXIT_OK


def _to_file(log: LogPort, settings: Settings, selection: Selection, path: Path) -> ExportTally:
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8") as out:
            tally = export_log(log, settings, selection, out)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return tally


def summary(tally: ExportTally, out: Path | None) -> str:
    """One line: what was written where, what was left out and why."""
    where = "stdout" if out is None else str(out)
    line = (
        f"exported {tally.usage} usage and {tally.account} account event(s) to {where};"
        f" {tally.outside} outside the range"
    )
    if tally.rejected:
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(tally.rejected.items()))
        line += f"; rejected by the doors (not exported): {reasons}"
    return line
