"""Customer tokens: `tokens.parse_ttl` and `streambill token issue` end to end (the
printed token verifies for its customer with the asked expiry; bad input is one
sentence on stderr and a non-zero exit, never a traceback)."""

from __future__ import annotations

import time

import pytest

from projections.http import tokens
from projections.read.errors import Unauthenticated
from streambill.cli.main import main
from tests.projections.apphelpers import SECRET


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        ("90s", 90),
        ("15m", 900),
        ("12h", 43_200),
        ("7d", 604_800),
        (" 2H ", 7_200),
        ("0010m", 600),
    ],
)
def test_parse_ttl_accepts(text: str, seconds: int) -> None:
    assert tokens.parse_ttl(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["", " ", "0", "0h", "-5", "-5m", "1.5h", "h", "10w", "12 h", "1e3", "10hh", "٣h", "²"],
)
def test_parse_ttl_refuses_with_a_hint(text: str) -> None:
    with pytest.raises(ValueError, match=r"invalid ttl .*: use e\.g\. 3600, 15m, 12h, 7d"):
        tokens.parse_ttl(text)


def issue(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str, tuple[int, int]]:
    """Run `streambill token issue ...`: exit code, stdout, stderr, (clock before, after)."""
    before = int(time.time())
    code = main(["token", "issue", *argv])
    after = int(time.time())
    out, err = capsys.readouterr()
    return code, out, err, (before, after)


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setenv("STREAMBILL_TOKEN_SECRET", SECRET)
    monkeypatch.delenv("STREAMBILL_TOKEN_TTL", raising=False)
    return SECRET.encode()


def test_token_issue_prints_a_token_for_that_customer_with_the_ttl(
    secret: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err, (before, after) = issue(["--customer", "cus_42", "--ttl", "15m"], capsys)
    assert (code, err) == (0, "")
    assert out.endswith("\n") and out.count("\n") == 1
    token = out.strip()
    claims = tokens.verify(secret, token, now=after)
    assert claims.customer_id == "cus_42"
    assert before <= claims.issued_at <= after
    assert claims.expires_at - claims.issued_at == 15 * 60
    # Valid until the last second before expiry, refused from it on.
    tokens.verify(secret, token, now=claims.expires_at - 1)
    with pytest.raises(Unauthenticated):
        tokens.verify(secret, token, now=claims.expires_at)
    with pytest.raises(Unauthenticated):
        tokens.verify(b"another-secret-0123456789", token, now=after)


def test_token_issue_defaults_to_the_settings_ttl(
    secret: bytes, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _, _ = issue(["--customer", "cus_1"], capsys)
    claims = tokens.verify(secret, out.strip(), now=int(time.time()))
    assert code == 0 and claims.expires_at - claims.issued_at == 24 * 3600
    monkeypatch.setenv("STREAMBILL_TOKEN_TTL", "2h")
    code, out, _, _ = issue(["--customer", "cus_1"], capsys)
    claims = tokens.verify(secret, out.strip(), now=int(time.time()))
    assert code == 0 and claims.expires_at - claims.issued_at == 2 * 3600


@pytest.mark.parametrize("ttl", ["1.5h", "0", "-1h", "forever"])
def test_token_issue_with_a_bad_ttl_is_a_clear_error(
    secret: bytes, ttl: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err, _ = issue(["--customer", "cus_42", f"--ttl={ttl}"], capsys)
    assert code == 2 and out == ""
    assert err == f"streambill token: invalid ttl {ttl!r}: use e.g. 3600, 15m, 12h, 7d\n"


def test_token_issue_without_a_secret_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("STREAMBILL_TOKEN_SECRET", raising=False)
    code, out, err, _ = issue(["--customer", "cus_42", "--ttl", "1h"], capsys)
    assert (code, out) == (2, "")
    assert err == "streambill token: STREAMBILL_TOKEN_SECRET is not set\n"


def test_token_issue_with_a_short_secret_or_no_customer_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAMBILL_TOKEN_SECRET", "short")
    code, out, err, _ = issue(["--customer", "cus_42"], capsys)
    assert (code, out) == (2, "")
    assert err == "streambill token: token secret must be at least 16 bytes\n"
    monkeypatch.setenv("STREAMBILL_TOKEN_SECRET", SECRET)
    code, out, err, _ = issue(["--customer", ""], capsys)
    assert (code, out) == (2, "")
    assert err == "streambill token: customer_id must not be empty\n"
