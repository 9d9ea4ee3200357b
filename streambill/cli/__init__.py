"""The `streambill` command: the composition root (`main`) and the command groups that
only this package registers. The top layer: nothing imports it.

`main` is re-exported lazily so `python -m streambill.cli` and the console script
`streambill.cli:main` stay stable, while importing one command module (say
`streambill.cli.billing`) does not load every other command.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from streambill.cli.main import main as run

    return run(argv)
