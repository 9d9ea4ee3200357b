"""Rewrite the golden fixtures from tests/unit/samples.py.

Run only on purpose (`python -m tests.golden.regenerate`), after a deliberate schema or
sample change; the diff of the .hex files is then part of the review.
"""

from __future__ import annotations

from pathlib import Path

from streambill.wire.codec import Codec
from streambill.wire.convert import encode_value
from tests.unit.samples import SAMPLES

GOLDEN_DIR = Path(__file__).resolve().parent


def main() -> None:
    codec = Codec()
    for name, value in SAMPLES.items():
        (GOLDEN_DIR / f"{name}.hex").write_text(encode_value(codec, value).hex() + "\n")
        print(f"wrote {name}.hex")


if __name__ == "__main__":
    main()
