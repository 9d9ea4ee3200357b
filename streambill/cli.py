"""The `streambill` command: the composition root.

Each command group lives in its own module exposing `register(subparsers)`; the
settings object is built here, once, and handed to the command that runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from streambill.settings import Settings

# Modules that contribute commands; each has `register(subparsers) -> None` and sets
# `func(args, settings) -> int` on the parsers it adds.
COMMAND_MODULES: tuple[str, ...] = (
    "streambill.services_cli",
    "streambill.topics",
    "streambill.usage_cli",
    "streambill.demo_cli",
    "streambill.billing_cli",
    "streambill.close_cli",
    "processors.cli",
    "processors.reconcile_run",
    "projections.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streambill", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    code: int = args.func(args, settings)
    return code


if __name__ == "__main__":
    sys.exit(main())
