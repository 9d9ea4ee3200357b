"""The portal in headless Chromium (Debian's `chromium`, driven by Playwright): the
numbers on the page are the read model's, and it renders at phone size.

Needs `apt-get install -y chromium`; Playwright's own browser download is not used."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
import uvicorn
from playwright.sync_api import sync_playwright

from projections.http import tokens
from projections.http.app import create_app
from projections.http.sessions import RedisSessions
from projections.read.model import Source, to_write
from projections.read.redis_store import RedisStore
from projections.read.store import Keys
from streambill.config.settings import BILLING_ALERTS, CUSTOMER_STATE, INVOICES
from tests.projections import samples
from tests.projections.apphelpers import SECRET, RecordingWriter, settings
from tests.projections.conftest import REDIS_URL

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def store() -> Iterator[RedisStore]:
    prefix = f"sbp-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    s = RedisStore(client, Keys(prefix=prefix))
    gen = s.ensure_generation()
    drain = [
        samples.credits_state("cus_c", remaining=v, at=samples.T0 + timedelta(hours=h))
        for v, h in [("1000", -30), ("-40", -20), ("960", -12), ("600", -5), ("250", 0)]
    ]  # a top-up of the same size at -12 h (the value rose): the trend restarts there
    s.apply(
        gen,
        [
            to_write(samples.metered_state("cus_m", used="850"), Source(CUSTOMER_STATE, 0, 3)),
            to_write(samples.alert("cus_m", "m-old", percent=100), Source(BILLING_ALERTS, 0, 0)),
            to_write(samples.alert("cus_m", "m-80"), Source(BILLING_ALERTS, 0, 1)),
            to_write(samples.resolved("cus_m", "m-old"), Source(BILLING_ALERTS, 0, 2)),
            to_write(samples.invoice("cus_m", "inv-oct"), Source(INVOICES, 0, 0)),
            *(to_write(d, Source(CUSTOMER_STATE, 1, 4 + n)) for n, d in enumerate(drain)),
        ],
    )
    yield s
    for key in client.scan_iter(match=f"{prefix}:*"):
        client.delete(key)
    client.close()


@pytest.fixture
def base_url(store: RedisStore) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sessions = RedisSessions(store.client, store.keys.prefix)  # cleaned with the store's keys
    app = create_app(settings(), store, RecordingWriter(), sessions=sessions)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def token(customer: str) -> str:
    return tokens.issue(SECRET.encode(), customer, now=int(time.time()), ttl_seconds=600)


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="apt-get install -y chromium")
def test_portal_shows_the_read_model_at_phone_size(store: RedisStore, base_url: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    state_m, state_c = store.state("cus_m"), store.state("cus_c")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
            page.goto(f"{base_url}/portal?token={token('cus_m')}")
            assert page.url == f"{base_url}/portal"  # the token left the URL for a cookie
            text = page.get_by_test_id
            assert text("used-tokens").inner_text() == state_m["usage:tokens"] == "850"
            assert text("remaining-tokens").inner_text() == state_m["remaining:tokens"]
            assert text("allowance-tokens").inner_text() == "1000"
            upcoming = json.loads(state_m["upcoming_invoice"])
            assert text("upcoming-total").inner_text() == upcoming["total"]
            assert text("alert").count() == len(store.alerts("cus_m")) == 1
            # The recent history below the active alerts: raised and resolved, newest first.
            history = [json.loads(entry) for entry in store.alert_history("cus_m")]
            events = text("alert-event")
            assert events.count() == len(history) == 3
            shown = [events.nth(n).get_attribute("data-event") for n in range(events.count())]
            assert shown == [h["event"] for h in history] == ["resolved", "raised", "raised"]
            assert events.nth(0).inner_text().startswith("Resolved")
            assert page.locator("#alerts [data-testid=alert-history]").is_visible()
            invoice = json.loads(store.invoices("cus_m")["inv-oct"])
            assert text("invoice-total").inner_text() == f"{invoice['total']} EUR"
            assert page.locator("#usage svg").count() == 2
            # Nothing overflows the phone's width.
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.screenshot(path=str(ARTIFACTS / "portal-metered-phone.png"), full_page=True)

            credits = browser.new_page(viewport={"width": 390, "height": 844})
            credits.goto(f"{base_url}/portal?token={token('cus_c')}")
            c = credits.get_by_test_id
            assert c("current-balance").inner_text() == state_c["credits_remaining"] == "250"
            assert c("last-topup").inner_text() == state_c["last_topup"]
            assert c("used-since-topup").inner_text() == "750"
            # The trend since the last top-up, drawn from the read model's series.
            trend = [json.loads(p) for p in store.trend("cus_c")]
            assert [p["value"] for p in trend] == ["960", "600", "250"]
            chart = c("trend-chart")
            assert chart.get_attribute("data-points") == str(len(trend))
            drawn = (c("trend-line").get_attribute("points") or "").split()
            assert len(drawn) == len(trend)
            assert c("trend-first").inner_text() == trend[0]["value"]
            assert (
                c("trend-last").inner_text() == trend[-1]["value"] == state_c["credits_remaining"]
            )
            box = chart.bounding_box()
            assert box is not None and 0 < box["width"] <= 390 and box["height"] > 20
            assert credits.evaluate("document.documentElement.scrollWidth") <= 390
            credits.screenshot(path=str(ARTIFACTS / "portal-credits-phone.png"), full_page=True)

            stranger = browser.new_page()
            response = stranger.goto(f"{base_url}/portal?token=forged.token.value")
            assert response is not None and response.status == 401
        finally:
            browser.close()
