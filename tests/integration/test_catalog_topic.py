"""`streambill catalog publish | diff | list | retire` on the real broker: the example
catalog published once, immutable plan versions, a bumped version, a retired plan."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from billing.catalog_records import PlanRetired
from streambill.cli.main import main
from streambill.config.settings import CATALOG, REPO_ROOT, Settings
from streambill.config.topics import list_topics
from streambill.wire.catalog_topic import read_catalog
from streambill.wire.codec import Codec
from streambill.wire.kafka_log import KafkaLog

pytestmark = pytest.mark.integration

EXAMPLE = REPO_ROOT / "examples" / "catalog.yaml"
WRITER = '  - id: writer\n    version: 1\n    model: metered\n    currency: USD\n    base_fee: "19.00"\n    prices:\n      tokens: {strategy: per_unit, included: 100000, unit_price: "0.02"'  # noqa: E501


def _keys(settings: Settings) -> list[str]:
    log = KafkaLog(settings.kafka_config(), timeout_s=15.0)
    try:
        topic = settings.topic(CATALOG)
        low, high = log.watermarks(topic)
        return [r.key.decode() for b in log.read(topic, low, high) for r in b if r.key]
    finally:
        log.close()


def test_publish_list_refuse_bump_and_retire(
    env: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMBILL_BOOTSTRAP_SERVERS", env.bootstrap_servers)
    monkeypatch.setenv("STREAMBILL_TOPIC_PREFIX", env.topic_prefix)
    topic = env.topic(CATALOG)
    info = next(i for i in list_topics(env) if i.name == topic)
    assert (info.partitions, info.config["cleanup.policy"]) == (1, "compact")

    errors: list[str] = []

    def run(*argv: str) -> tuple[int, str]:
        code = main(["catalog", *argv])
        captured = capsys.readouterr()
        errors.append(captured.err)
        return code, captured.out

    code, out = run("publish", str(EXAMPLE))
    assert code == 0, out
    assert "14 published" in out and "published plan/writer/1" in out
    revision = out.split("revision ")[-1].strip()
    assert len(_keys(env)) == 14

    code, out = run("list")
    assert code == 0
    assert f"revision {revision}" in out
    assert re.search(r"writer\s+v1\s+metered\s+USD\s+open", out)
    assert "plans (8)" in out and "features (4)" in out and "credit packs (2)" in out

    code, out = run("publish", str(EXAMPLE))
    assert code == 0 and f"nothing new, 14 unchanged; revision {revision}" in out
    assert len(_keys(env)) == 14

    changed = tmp_path / "changed.yaml"
    changed.write_text(EXAMPLE.read_text().replace(WRITER, WRITER.replace('"0.02"', '"0.03"')))
    code, out = run("diff", str(changed))
    assert code == 1 and "prices.tokens.unit_price: live 0.02, file 0.03" in out
    code, out = run("publish", str(changed))
    assert code == 1
    assert "refused   plan/writer/1" in out
    assert "prices.tokens.unit_price: live 0.02, file 0.03" in out
    assert len(_keys(env)) == 14

    bumped = tmp_path / "bumped.yaml"
    writer_v2 = WRITER.replace("version: 1", "version: 2").replace('"0.02"', '"0.03"')
    bumped.write_text(EXAMPLE.read_text().replace(WRITER, writer_v2))
    code, out = run("publish", str(bumped))
    assert code == 0, out
    assert out.splitlines()[0] == "published plan/writer/2"
    assert "stays     plan/writer/1 (live, not in the file)" in out
    assert _keys(env)[-1] == "plan/writer/2"

    code, out = run("retire", "writer")
    assert code == 0 and "retired   writer" in out
    code, out = run("list")
    assert re.search(r"writer\s+v1, v2\s+metered\s+USD\s+retired 20", out)
    assert re.search(r"starter\s+v1\s+metered\s+USD\s+open", out)

    # A reader in another process (a fresh consumer) sees the same live catalog.
    log = KafkaLog(env.kafka_config(), timeout_s=15.0)
    try:
        log.produce(topic, b"plan/bad/1", b"\xc3\x01garbage", 0)
        log.flush()
        found = read_catalog(log, topic, Codec())
    finally:
        log.close()
    assert isinstance(found.live.records["retired/writer"], PlanRetired)
    assert found.live.catalog().plans["writer"].version == 2
    assert [(u.offset, u.key) for u in found.unreadable] == [(16, "plan/bad/1")]
    code, out = run("list")
    assert code == 0 and "retired 20" in out
    assert "offset 16 (key 'plan/bad/1'): undecodable" in errors[-1]
    assert errors[:-1] == [""] * (len(errors) - 1)
