"""Issue 22, scoped API keys: `ingest` posts usage only, `read` reads every customer,
`admin` does everything; several keys per scope from a file of salted digests,
re-read when it changes; the legacy STREAMBILL_ADMIN_KEY stays an admin key; a
customer token stays its customer's own view; logs name the key, never the secret."""

from __future__ import annotations

import argparse
import io
import logging
import os
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from projections.commands import run_api_key_create
from projections.http import keys, tokens
from projections.http.app import create_app
from projections.read.store import InMemoryStore
from streambill.config.settings import Settings
from tests.projections.apphelpers import ADMIN_KEY, NOW, SECRET, RecordingWriter, fill

USAGE = {
    "event_id": "e-1",
    "customer_id": "cus_a",
    "feature_id": "api_calls",
    "quantity": "3",
    "timestamp": "2027-01-15T00:00:00Z",
}
SUBSCRIPTION = {"event_id": "s-1", "plan_id": "starter", "timestamp": "2027-01-15T00:00:00Z"}


class Keys:
    """A keys file with one key per scope (plus a second ingest key)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.secret: dict[str, str] = {}
        lines = []
        for name, scope in [
            ("producer", "ingest"),
            ("producer-2", "ingest"),
            ("dashboards", "read"),
            ("ops", "admin"),
        ]:
            presented, entry = keys.create(name, scope)
            self.secret[name] = presented
            lines.append(entry.line())
        path.write_text("# scoped keys\n" + "\n".join(lines) + "\n")

    def header(self, name: str) -> dict[str, str]:
        return {"x-api-key": self.secret[name]}


@pytest.fixture
def keyfile(tmp_path: Path) -> Keys:
    return Keys(tmp_path / "api-keys")


@pytest.fixture
def client(keyfile: Keys) -> Iterator[TestClient]:
    store = InMemoryStore()
    fill(store)
    settings = Settings(
        admin_key=SecretStr(ADMIN_KEY),
        token_secret=SecretStr(SECRET),
        api_keys_file=keyfile.path,
    )
    app = create_app(settings, store, RecordingWriter(), clock=lambda: NOW + 1)
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def test_an_ingest_key_posts_usage_and_nothing_else(client: TestClient, keyfile: Keys) -> None:
    for name in ("producer", "producer-2"):
        h = keyfile.header(name)
        assert client.post("/v1/usage", json=USAGE, headers=h).status_code == 202
        r = client.post("/v1/customers/cus_a/subscription", json=SUBSCRIPTION, headers=h)
        assert r.status_code == 403
        assert client.get("/v1/customers/cus_a/usage", headers=h).status_code == 403
        assert (
            client.get("/v1/customers/cus_a/entitlements/api_calls", headers=h).status_code == 403
        )


def test_a_read_key_reads_every_customer_and_writes_nothing(
    client: TestClient, keyfile: Keys
) -> None:
    h = keyfile.header("dashboards")
    for cus in ("cus_a", "cus_b"):
        assert client.get(f"/v1/customers/{cus}/balance", headers=h).status_code == 200
        assert client.get(f"/v1/customers/{cus}/entitlements/x", headers=h).status_code == 200
    assert client.get("/v1/customers/nobody/usage", headers=h).status_code == 404
    assert client.post("/v1/usage", json=USAGE, headers=h).status_code == 403
    r = client.post("/v1/customers/cus_a/subscription", json=SUBSCRIPTION, headers=h)
    assert r.status_code == 403


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(lambda k: k.header("ops"), id="scoped admin key"),
        pytest.param(lambda k: {"x-admin-key": ADMIN_KEY}, id="STREAMBILL_ADMIN_KEY"),
        pytest.param(lambda k: {"x-api-key": ADMIN_KEY}, id="STREAMBILL_ADMIN_KEY as x-api-key"),
        pytest.param(lambda k: {"x-admin-key": k.secret["ops"]}, id="scoped key as x-admin-key"),
    ],
)
def test_an_admin_key_does_everything(client: TestClient, keyfile: Keys, header: object) -> None:
    h = header(keyfile)  # type: ignore[operator]
    assert client.post("/v1/usage", json=USAGE, headers=h).status_code == 202
    r = client.post("/v1/customers/cus_a/subscription", json=SUBSCRIPTION, headers=h)
    assert r.status_code == 202
    assert client.get("/v1/customers/cus_b/usage", headers=h).status_code == 200


def test_a_customer_token_stays_its_own_view(client: TestClient) -> None:
    token = tokens.issue(SECRET.encode(), "cus_a", now=NOW, ttl_seconds=60)
    h = {"authorization": f"Bearer {token}"}
    assert client.get("/v1/customers/cus_a/usage", headers=h).status_code == 200
    assert client.get("/v1/customers/cus_b/usage", headers=h).status_code == 403
    assert client.post("/v1/usage", json=USAGE, headers=h).status_code == 401


def test_a_wrong_secret_or_unknown_id_is_401(client: TestClient, keyfile: Keys) -> None:
    good = keyfile.secret["ops"]
    key_id = good.split("_")[1]
    for bad in [
        good[:-1] + ("A" if good[-1] != "A" else "B"),  # right id, wrong secret
        f"sbk_{'0' * 16}_{good.split('_', 2)[2]}",  # unknown id
        f"sbk_{key_id}_",
        "sbk_",
        f"sbk_{key_id}_é",
    ]:
        h = {"x-api-key": bad.encode()}  # bytes: the client would refuse to send "é"
        assert client.post("/v1/usage", json=USAGE, headers=h).status_code == 401, bad
        assert client.get("/v1/customers/cus_a/usage", headers=h).status_code == 401


def test_the_file_holds_salted_digests_never_the_secret(keyfile: Keys) -> None:
    text = keyfile.path.read_text()
    for presented in keyfile.secret.values():
        assert presented.split("_", 2)[2] not in text
    a, entry_a = keys.create("same", "read")
    b, entry_b = keys.create("same", "read")
    assert entry_a.salt != entry_b.salt and a != b


def test_keys_rotate_without_a_restart(tmp_path: Path) -> None:
    now = [0.0]
    old, old_entry = keys.create("old", "ingest")
    new, new_entry = keys.create("new", "ingest")
    path = tmp_path / "keys"
    path.write_text(old_entry.line() + "\n")
    file = keys.KeyFile(path, check_every=1.0, clock=lambda: now[0])
    assert file.find(old) is not None and file.find(new) is None

    path.write_text(f"{old_entry.line()}\n{new_entry.line()}\n")  # add the new key
    os.utime(path, ns=(1, 1))  # a changed stamp even within the clock's resolution
    assert file.find(new) is None  # not re-checked before `check_every`
    now[0] = 1.0
    assert file.find(new) is not None and file.find(old) is not None

    path.write_text(new_entry.line() + "\n")  # retire the old key
    now[0] = 2.0
    assert file.find(old) is None and file.find(new) is not None

    path.write_text("half written line\n")  # a bad edit keeps the current keys
    now[0] = 3.0
    assert file.find(new) is not None


def test_a_missing_or_malformed_keys_file_stops_the_api(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="STREAMBILL_API_KEYS_FILE"):
        keys.KeyFile(tmp_path / "absent")
    bad = tmp_path / "bad"
    bad.write_text("0123456789abcdef superuser me 00 00\n")
    with pytest.raises(ValueError, match="line 1: scope must be one of ingest, read, admin"):
        keys.KeyFile(bad)


def test_logs_name_the_key_never_the_secret(
    client: TestClient, keyfile: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="streambill.api"):
        assert (
            client.post("/v1/usage", json=USAGE, headers=keyfile.header("producer")).status_code
            == 202
        )
    assert "producer" in caplog.text
    assert keyfile.secret["producer"] not in caplog.text
    assert keyfile.secret["producer"].split("_", 2)[2] not in caplog.text


def test_api_key_create_prints_the_key_once_and_its_line(tmp_path: Path) -> None:
    out = io.StringIO()
    path = tmp_path / "keys"
    with redirect_stdout(out):
        code = run_api_key_create(
            argparse.Namespace(name="producer-eu", scope="ingest"), Settings(api_keys_file=path)
        )
    assert code == 0
    lines = out.getvalue().splitlines()
    presented, line = lines[1], lines[3]
    assert presented.startswith("sbk_") and str(path) in lines[2]
    entries = keys.parse(line)
    (entry,) = entries.values()
    assert (entry.name, entry.scope) == ("producer-eu", "ingest")
    assert keys.KeyTable(entries).find(presented) == entry
    assert run_api_key_create(argparse.Namespace(name="has space", scope="read"), Settings()) == 2
