"""The `streambill` command: the composition root.

Each command group lives in its own module exposing `register(subparsers)`; the
settings object is built here, once, and handed to the command that runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from processors.reconcile import run as reconcile_commands
from processors.worker import cli as worker_commands
from projections import commands as projection_commands
from streambill.cli import billing, close, demo, export, services, usage
from streambill.config import topics
from streambill.config.settings import Settings

# Modules that contribute commands, in the order `streambill --help` lists them; each
# has `register(subparsers) -> None` and sets `func(args, settings) -> int` on the
# parsers it adds. Real imports, so the layer test sees this file depend on all of them.
COMMAND_MODULES: tuple[ModuleType, ...] = (
    services,
    topics,
    usage,
    demo,
    billing,
    export,
    close,
    worker_commands,
    reconcile_commands,
    projection_commands,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streambill", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    code: int = args.func(args, settings)
    return code


if __name__ == "__main__":
    sys.exit(main())
