"""`streambill demo` command: arguments, exit codes and the closing lines; the run
itself is `streambill.local.demo.run_demo`."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta

from streambill.config.settings import Settings
from streambill.local.demo import DemoOptions, run_demo
from streambill.local.demo_procs import DemoError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser("demo", help="the whole product in one run (see `streambill demo -h`)")
    demo.add_argument("--customers", type=int, default=3000, help="customers (3000)")
    demo.add_argument("--events", type=int, default=200_000, help="usage events (200000)")
    demo.add_argument("--seed", type=int, default=7, help="random seed of the load (7)")
    demo.add_argument("--grace", type=int, default=1, help="close grace in days (1)")
    demo.add_argument("--api-port", type=int, default=0, help="API port (default: a free one)")
    demo.add_argument(
        "--window",
        type=int,
        default=60_000,
        help="publish at most this many events ahead of the worker (60000)",
    )
    demo.add_argument(
        "--keep", action="store_true", help="leave the worker, projector and API running"
    )
    demo.add_argument(
        "--no-reconcile", action="store_true", help="skip `streambill reconcile` at the end"
    )
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    opts = DemoOptions(
        customers=args.customers,
        events=args.events,
        seed=args.seed,
        grace=timedelta(days=args.grace),
        api_port=args.api_port,
        window=args.window,
        keep=args.keep,
        reconcile=not args.no_reconcile,
    )
    started = time.monotonic()
    try:
        result = run_demo(settings, opts)
    except DemoError as exc:
        sys.stderr.write(f"streambill demo: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("streambill demo: interrupted; children stopped\n")
        return 130
    seconds = time.monotonic() - started
    phases = ", ".join(f"{k} {v:.1f}s" for k, v in result.phases.items())
    sys.stdout.write(f"demo finished in {seconds:.1f}s ({phases})\n")
    prefix, month = result.settings.topic_prefix, result.month
    sys.stdout.write(
        f"check it: STREAMBILL_TOPIC_PREFIX={prefix} streambill reconcile --period {month}\n"
    )
    if opts.keep:
        pids = ", ".join(f"{c.name} {c.pid}" for c in result.children)
        sys.stdout.write(f"still running (--keep): {pids}; stop them with kill <pid>\n")
    if result.reconciled is False:
        sys.stderr.write("streambill demo: reconcile found differences (listed above)\n")
        return 1
    return 0
