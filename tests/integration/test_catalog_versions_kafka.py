"""Processes take the catalog from the topic and pick up a new plan version without a
restart (issue 17), on the real broker: the example catalog is published, a worker
started with `STREAMBILL_CATALOG_SOURCE=topic`, then `writer` v2 is published while
it runs; a subscription pinned to v2 is applied (not dead-lettered) and an unpinned
one stays on v1. The close and reconcile read the topic through the same function
(`streambill.wire.catalog_source.process_catalog`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from billing.errors import CatalogError
from billing.events import SubscriptionChanged, SubscriptionStarted
from streambill.cli.main import main
from streambill.config.settings import REPO_ROOT, Settings
from streambill.local.procs import free_port
from streambill.wire.catalog_source import CatalogWatch, process_catalog
from streambill.wire.codec import Codec
from tests.integration.fold_support import (
    StateWatcher,
    TopicReader,
    WorkerProcess,
    delete_topics_with_prefix,
    isolated,
    send_with_sdk,
)

pytestmark = pytest.mark.integration

EXAMPLE = REPO_ROOT / "examples" / "catalog.yaml"
WRITER_V1 = (
    '  - id: writer\n    version: 1\n    model: metered\n    currency: USD\n    base_fee: "19.00"\n'
)


@pytest.fixture
def topic_settings(base: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    settings = isolated(
        base,
        worker_metrics_port=free_port(),
        catalog_source="topic",
        worker_catalog_refresh=1.0,
    )
    monkeypatch.setenv("STREAMBILL_BOOTSTRAP_SERVERS", settings.bootstrap_servers)
    monkeypatch.setenv("STREAMBILL_TOPIC_PREFIX", settings.topic_prefix)
    monkeypatch.setenv("STREAMBILL_CATALOG_SOURCE", "topic")
    yield settings
    delete_topics_with_prefix(settings, settings.topic_prefix)


def _with_writer_v2(tmp_path: Path) -> Path:
    text = EXAMPLE.read_text()
    start = text.index(WRITER_V1)
    end = text.index("\n\n", start)
    v1 = text[start:end]
    v2 = v1.replace("version: 1", "version: 2").replace('"19.00"', '"29.00"')
    path = tmp_path / "catalog-v2.yaml"
    path.write_text(text[:end] + "\n" + v2 + text[end:])
    return path


def _account_events(settings: Settings, codec: Codec, kind: type) -> list[Any]:
    reader = TopicReader(settings, "account-events", codec)
    try:
        found: list[Any] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not found:
            found = [v for _, v in reader.poll(1.0) if isinstance(v, kind)]
        return found
    finally:
        reader.close()


def test_processes_bill_from_the_topic_and_the_worker_reloads_it(
    topic_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, codec = topic_settings, Codec()
    with pytest.raises(CatalogError, match="holds no plan"):
        process_catalog(settings, codec)  # never start on an empty catalog
    assert main(["catalog", "publish", str(EXAMPLE)]) == 0
    catalog = process_catalog(settings, codec)
    assert catalog.versions("writer") == (1,)

    worker = WorkerProcess(settings)
    worker.start()
    watcher = StateWatcher(settings, codec)
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        send_with_sdk(settings, [SubscriptionStarted("s-old", "cus_old", now, "writer")])
        assert watcher.wait_until(
            lambda s: "cus_old" in s and s["cus_old"].status == "active", 90
        ), "the unpinned subscription was not applied"

        assert main(["catalog", "publish", str(_with_writer_v2(tmp_path))]) == 0
        assert "published plan/writer/2" in capsys.readouterr().out
        watch = CatalogWatch(settings, codec)
        assert watch.changed() and watch.reload().versions("writer") == (1, 2)
        assert not watch.changed()
        time.sleep(4 * settings.worker_catalog_refresh)  # the worker's own watch

        pinned = SubscriptionStarted("s-new", "cus_new", now, "writer", 1, plan_version=2)
        send_with_sdk(settings, [pinned])
        assert watcher.wait_until(
            lambda s: "cus_new" in s and s["cus_new"].status == "active", 90
        ), "the subscription pinned to v2 was not applied: the worker did not reload"
        assert (watcher.latest["cus_new"].plan_id, watcher.latest["cus_new"].plan_version) == (
            "writer",
            2,
        )
        assert watcher.latest["cus_old"].plan_version == 1
        assert worker.alive() and worker.starts == 1  # no restart

        # Migrating everyone on v1: one SubscriptionChanged each, effective at renewal.
        migrate = ["catalog", "migrate", "--plan", "writer", "--from-version", "1"]
        assert main([*migrate, "--to-version", "3"]) == 1  # not published: refused
        assert "no v3" in capsys.readouterr().err
        assert main([*migrate, "--to-version", "2", "--dry-run"]) == 0
        assert "would move 1 customer(s)" in capsys.readouterr().out
        at = ["--at", now.isoformat()]
        assert main([*migrate, "--to-version", "2", *at]) == 0
        assert "moved 1 customer(s)" in capsys.readouterr().out
        assert main([*migrate, "--to-version", "2", "--customer", "cus_new", *at]) == 0
        assert "skipped   cus_new: not active on writer v1" in capsys.readouterr().out
        changes = _account_events(settings, codec, SubscriptionChanged)
        assert [(e.customer_id, e.plan_id, e.plan_version) for e in changes] == [
            ("cus_old", "writer", 2)
        ]
    finally:
        watcher.close()
        worker.stop()
