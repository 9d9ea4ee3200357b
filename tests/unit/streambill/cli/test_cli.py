"""The command tree: services and topics are registered with their actions."""

from __future__ import annotations

import pytest

from streambill.cli import services as services_cli
from streambill.cli.main import build_parser, main
from streambill.config import topics


@pytest.mark.parametrize(
    ("argv", "func"),
    [
        (["services", "up"], services_cli._cmd_up),
        (["services", "down"], services_cli._cmd_down),
        (["services", "status"], services_cli._cmd_status),
        (["topics", "create"], topics._cmd_create),
        (["topics", "list"], topics._cmd_list),
    ],
)
def test_commands_are_wired(argv: list[str], func: object) -> None:
    assert build_parser().parse_args(argv).func is func


def test_unknown_action_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["services", "restart"])
    assert exit_info.value.code == 2


def test_topics_create_refuses_a_short_usage_retention_before_contacting_kafka(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_broker(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cluster was contacted")

    monkeypatch.setattr(topics, "AdminClient", no_broker)
    monkeypatch.setenv("STREAMBILL_USAGE_RETENTION_DAYS", "75")
    monkeypatch.setenv("STREAMBILL_MAX_LATENESS", "P35D")
    assert main(["topics", "create"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "STREAMBILL_USAGE_RETENTION_DAYS to at least 97" in captured.err
