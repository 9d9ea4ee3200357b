"""Issue 22's findings on tokens, parsing and secrets, one test each: every input
answers 4xx (never 5xx), each token has one spelling and a bounded life, numbers are
ASCII digits and strict types, and short secrets stop the API and the demo before
they start."""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pydantic import SecretStr

from projections.commands import run_api
from projections.http import tokens
from projections.http.auth import Authenticator, secret_problems
from projections.http.sessions import SESSION_COOKIE
from projections.read.errors import Unauthenticated
from streambill.local.demo import Demo, DemoOptions
from streambill.local.demo_procs import DemoError
from tests.projections.apphelpers import ADMIN_KEY, NOW, SECRET, RecordingWriter, settings

ADMIN = {"x-admin-key": ADMIN_KEY}
KEY = SECRET.encode()


def _signed(payload: bytes) -> str:
    part = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    signed = f"v1.{part}"
    mac = hmac.new(KEY, signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


# ------------------------------------------------------------------- tokens


@pytest.mark.parametrize("where", ["bearer", "query", "cookie"])
def test_a_non_ascii_token_is_401_not_500(client: TestClient, where: str) -> None:
    bad = "v1.é.x"
    if where == "bearer":
        raw = {"authorization": f"Bearer {bad}".encode()}
        r = client.get("/v1/customers/cus_a/usage", headers=raw)
    elif where == "query":
        r = client.get("/portal", params={"token": bad}, follow_redirects=False)
    else:
        raw = {"cookie": f"{SESSION_COOKIE}={bad}".encode()}
        r = client.get("/portal", headers=raw, follow_redirects=False)
    assert r.status_code == 401


def test_each_token_has_one_spelling() -> None:
    good = tokens.issue(KEY, "cus_a", now=NOW, ttl_seconds=600)
    assert tokens.verify(KEY, good, now=NOW).customer_id == "cus_a"
    head, payload, sig = good.split(".")
    last = sig[-1]
    flipped = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    stray = flipped[flipped.index(last) ^ 1]  # same 6-bit group but for its lowest bit
    variants = [
        f"{head}.{payload}.{sig}=",  # padding
        f"{head}.{payload}=.{sig}",
        f"{head}.{payload}.{sig[:-1]}{stray}",  # a bit the decoder drops
        f"{head}.{payload}.{sig.replace('-', '+').replace('_', '/')}",  # standard alphabet
    ]
    for variant in variants:
        if variant == good:
            continue
        with pytest.raises(Unauthenticated):
            tokens.verify(KEY, variant, now=NOW)


def test_token_lifetimes_are_bounded() -> None:
    with pytest.raises(ValueError, match="longer than 366 days"):
        tokens.parse_ttl("367d")
    with pytest.raises(ValueError, match="invalid ttl"):
        tokens.parse_ttl("99999999999999999999d")
    with pytest.raises(ValueError, match="between 1 second and 366 days"):
        tokens.issue(KEY, "cus_a", now=NOW, ttl_seconds=tokens.MAX_TTL_SECONDS + 1)
    forever = _signed(json.dumps({"sub": "cus_a", "iat": NOW, "exp": NOW + 10**12}).encode())
    with pytest.raises(Unauthenticated):  # signed with the right secret, still refused
        tokens.verify(KEY, forever, now=NOW)
    assert tokens.parse_ttl("366d") == tokens.MAX_TTL_SECONDS


def test_token_issue_with_an_endless_ttl_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from streambill.cli.main import main

    monkeypatch.setenv("STREAMBILL_TOKEN_SECRET", SECRET)
    assert main(["token", "issue", "--customer", "cus_a", "--ttl", "99999999999999999999d"]) == 2
    assert "invalid ttl" in capsys.readouterr().err


@hsettings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_the_token_parser_only_ever_refuses_or_accepts(text: str) -> None:
    """Fuzz: any string is a valid token or `Unauthenticated`, never another error."""
    with contextlib.suppress(Unauthenticated):
        tokens.verify(KEY, text, now=NOW)


# ------------------------------------------------------------------- strict parsing


@pytest.mark.parametrize("quantity", ["１２", "١٢", "12.５"])
def test_decimals_take_ascii_digits_only(client: TestClient, quantity: str) -> None:
    item = {
        "event_id": "e1",
        "customer_id": "cus_a",
        "feature_id": "tokens",
        "quantity": quantity,
        "timestamp": "2026-11-02T10:00:00Z",
    }
    r = client.post("/v1/usage", json=item, headers=ADMIN)
    assert r.status_code == 422 and "quantity" in r.text


@pytest.mark.parametrize("seats", ["2", True, 2.5, 2.0**53])
def test_seats_are_strict_integers(client: TestClient, seats: object) -> None:
    body = {"event_id": "s1", "seats": seats, "timestamp": "2026-11-02T10:00:00Z"}
    r = client.post("/v1/customers/cus_a/seats", json=body, headers=ADMIN)
    assert r.status_code == 422 and "seats" in r.text


def test_seats_written_as_a_whole_float_are_the_integer(client: TestClient) -> None:
    """JSON Schema's integer includes 2.0 (schemathesis holds the API to it)."""
    body = {"event_id": "s1", "seats": 2.0, "timestamp": "2026-11-02T10:00:00Z"}
    assert client.post("/v1/customers/cus_a/seats", json=body, headers=ADMIN).status_code == 202


T_RAW = '"timestamp": "2026-11-02T10:00:00Z"'
U_RAW = '"event_id": "u1", "customer_id": "cus_a", "feature_id": "tokens"'


@pytest.mark.parametrize(
    ("route", "raw"),
    [
        (
            "/v1/customers/cus_a/seats",
            f'{{"event_id": "s1", "seats": 2.0000000000000001, {T_RAW}}}',
        ),
        ("/v1/usage", f'{{{U_RAW}, "quantity": 1.0000000000000001, {T_RAW}}}'),
    ],
)
def test_a_number_a_float_would_round_is_refused_not_rounded(
    client: TestClient, route: str, raw: str
) -> None:
    """As a float, 1.0000000000000001 is 1.0: the API parses JSON numbers exactly,
    so it is a number with a fraction, refused where an integer is wanted."""
    headers = {**ADMIN, "content-type": "application/json"}
    r = client.post(route, content=raw.encode(), headers=headers)
    assert r.status_code == 422 and "integer" in r.text


def test_an_integral_usage_quantity_written_with_a_fraction_is_exact(
    client: TestClient, writer: RecordingWriter
) -> None:
    raw = (
        '{"event_id": "u2", "customer_id": "cus_a", "feature_id": "tokens",'
        ' "quantity": 12.000, "timestamp": "2026-11-02T10:00:00Z"}'
    )
    headers = {**ADMIN, "content-type": "application/json"}
    r = client.post("/v1/usage", content=raw.encode(), headers=headers)
    assert r.status_code == 202
    assert [call[1][2] for call in writer.calls if call[0] == "report"] == [Decimal(12)]


# ------------------------------------------------------------------- secrets at start-up


def test_short_secrets_are_named_before_anything_starts() -> None:
    assert secret_problems(None, None) == []
    assert secret_problems("k" * 16, "s" * 16) == []
    problems = secret_problems("short", "tiny")
    assert len(problems) == 2
    assert "STREAMBILL_ADMIN_KEY" in problems[0] and "STREAMBILL_TOKEN_SECRET" in problems[1]
    with pytest.raises(ValueError, match="STREAMBILL_ADMIN_KEY"):
        Authenticator("short", None, lambda: NOW)


def test_the_api_refuses_to_start_with_a_short_admin_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    short = settings().model_copy(update={"admin_key": SecretStr("short")})
    args = argparse.Namespace(host=None, port=None, workers=1)
    assert run_api(args, short) == 2
    assert "STREAMBILL_ADMIN_KEY is 5 characters" in capsys.readouterr().err


def test_the_demo_refuses_to_start_with_a_short_token_secret() -> None:
    short = settings().model_copy(update={"token_secret": SecretStr("tiny")})
    opts = DemoOptions(run_id="t")
    with pytest.raises(DemoError, match="STREAMBILL_TOKEN_SECRET is 4 bytes"):
        Demo(short, opts, io.StringIO(), io.StringIO(), lambda: datetime.now(UTC))
