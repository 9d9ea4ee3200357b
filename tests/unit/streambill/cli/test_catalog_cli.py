"""`streambill catalog publish | diff | list | retire` over the close's in-memory log."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from billing.events import UsageRecorded
from streambill.cli.catalog import (
    EXIT_OK,
    EXIT_REFUSED,
    CatalogIO,
    diff_file,
    list_live,
    publish_file,
    retire_plan,
)
from streambill.cli.main import build_parser
from streambill.wire.codec import Codec
from streambill.wire.convert import encode_value
from streambill.wire.log import InMemoryLog

EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "catalog.yaml"
TOPIC = "t.catalog"
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Run:
    """One in-memory catalog topic; each call runs a command and keeps its output."""

    def __init__(self) -> None:
        self.log = InMemoryLog(partition_count=1)
        self.codec = Codec()
        self.out = ""
        self.err = ""

    def io(self) -> CatalogIO:
        return CatalogIO(self.log, TOPIC, self.codec, io.StringIO(), io.StringIO(), lambda: AT)

    def __call__(self, command: str, arg: str | Path | None = None) -> int:
        cio = self.io()
        if command == "publish":
            code = publish_file(Path(str(arg)), cio)
        elif command == "diff":
            code = diff_file(Path(str(arg)), cio)
        elif command == "list":
            code = list_live(cio)
        else:
            code = retire_plan(str(arg), cio)
        assert isinstance(cio.out, io.StringIO) and isinstance(cio.err, io.StringIO)
        self.out, self.err = cio.out.getvalue(), cio.err.getvalue()
        return code

    def records(self) -> int:
        return len(self.log.topics.get(TOPIC, [[]])[0])


@pytest.fixture
def run() -> Run:
    return Run()


def edited(tmp_path: Path, name: str, old: str, new: str) -> Path:
    text = EXAMPLE.read_text()
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1))
    return path


WRITER_V1 = '  - id: writer\n    version: 1\n    model: metered\n    currency: USD\n    base_fee: "19.00"\n    prices:\n      tokens: {strategy: per_unit, included: 100000, unit_price: "0.02"'  # noqa: E501


def test_publish_then_again_publishes_nothing(run: Run) -> None:
    assert run("publish", EXAMPLE) == EXIT_OK
    assert run.records() == 14
    assert "published plan/writer/1" in run.out
    assert "published feature/tokens" in run.out
    assert re.search(r"14 published, 0 unchanged; revision [0-9a-f]{64}", run.out)
    revision = run.out.split("revision ")[-1].strip()
    assert run("publish", EXAMPLE) == EXIT_OK
    assert run.records() == 14
    assert f"nothing new, 14 unchanged; revision {revision}" in run.out
    assert run("list") == EXIT_OK
    assert f"revision {revision}" in run.out


def test_a_changed_version_is_refused_field_by_field_and_nothing_published(
    run: Run, tmp_path: Path
) -> None:
    run("publish", EXAMPLE)
    changed = edited(tmp_path, "c.yaml", WRITER_V1, WRITER_V1.replace('"0.02"', '"0.025"'))
    assert run("diff", changed) == EXIT_REFUSED
    assert "refused   plan/writer/1" in run.out
    assert "prices.tokens.unit_price: live 0.02, file 0.025" in run.out
    assert "publish would be refused: 0 to add, 13 unchanged, 1 refused" in run.out
    assert run("publish", changed) == EXIT_REFUSED
    assert "prices.tokens.unit_price: live 0.02, file 0.025" in run.out
    assert "refused, nothing published" in run.out
    assert run.records() == 14


def test_a_bumped_version_is_published_and_the_old_one_stays(run: Run, tmp_path: Path) -> None:
    run("publish", EXAMPLE)
    bumped = edited(
        tmp_path,
        "b.yaml",
        WRITER_V1,
        WRITER_V1.replace("version: 1", "version: 2").replace('"0.02"', '"0.025"'),
    )
    assert run("diff", bumped) == EXIT_OK
    assert "add       plan/writer/2" in run.out and run.records() == 14
    assert run("publish", bumped) == EXIT_OK
    assert run.out.splitlines()[0] == "published plan/writer/2"
    assert "stays     plan/writer/1 (live, not in the file)" in run.out
    assert run.records() == 15
    run("list")
    assert re.search(r"writer\s+v1, v2\s+metered\s+USD\s+open", run.out)


def test_retire_lists_the_plan_retired_once(run: Run) -> None:
    run("publish", EXAMPLE)
    assert run("retire", "voice") == EXIT_OK
    assert "retired   voice" in run.out and run.records() == 15
    assert run("retire", "voice") == EXIT_OK
    assert "already retired" in run.out and run.records() == 15
    assert run("retire", "nope") == EXIT_REFUSED
    assert run("list") == EXIT_OK
    assert re.search(r"voice\s+v1\s+metered\s+USD\s+retired 2026-03-01T12:00:00\+00:00", run.out)
    assert re.search(r"writer\s+v1\s+metered\s+USD\s+open", run.out)
    assert "credits-100      100 credits for 10.00 USD" in run.out
    assert run("publish", EXAMPLE) == EXIT_OK  # a retirement is not undone by a file
    assert "nothing new" in run.out and run.records() == 15


def test_unreadable_records_are_reported_with_offset_and_reason(run: Run) -> None:
    run("publish", EXAMPLE)
    usage = UsageRecorded("e1", "cus_1", "tokens", Decimal(5), AT)
    run.log.produce(TOPIC, b"feature/x", b"\x00garbage", 0)  # offset 14
    run.log.produce(TOPIC, b"feature/y", encode_value(run.codec, usage), 0)
    feature = run.log.topics[TOPIC][0][0]  # feature/image_generation, under another key
    run.log.produce(TOPIC, b"feature/z", feature.value, 0)
    run.log.produce(TOPIC, b"feature/query", None, 0)  # type: ignore[arg-type]  # tombstone
    assert run("list") == EXIT_OK
    lines = run.err.splitlines()
    assert len(lines) == 4
    assert "offset 14 (key 'feature/x'): undecodable" in lines[0]
    assert "offset 15 (key 'feature/y'): unknown_schema: UsageRecorded" in lines[1]
    assert "offset 16 (key 'feature/z'): invalid_field: the record's own key is" in lines[2]
    assert "offset 17 (key 'feature/query'): tombstone" in lines[3]
    assert "features (3)" in run.out


def test_an_invalid_file_publishes_nothing(run: Run, tmp_path: Path) -> None:
    bad = edited(tmp_path, "bad.yaml", 'unit_price: "0.02"', 'unit_price: "-0.02"')
    assert run("publish", bad) == EXIT_REFUSED
    assert "invalid catalog, nothing published" in run.out
    assert "negative price" in run.out
    assert run.records() == 0


def test_the_commands_are_registered() -> None:
    parser = build_parser()
    for argv in (["publish", "f"], ["diff", "f"], ["list"], ["retire", "p"]):
        args = parser.parse_args(["catalog", *argv])
        assert callable(args.func)
