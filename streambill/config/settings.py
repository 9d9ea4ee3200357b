"""One settings object for every process, read from `STREAMBILL_*` environment variables.

Built once in the composition root (`streambill.cli.main`) and passed down; no module
reads the environment on its own.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from billing.admission import AdmissionPolicy

REPO_ROOT = Path(__file__).resolve().parents[2]

# Logical topic names (docs/ARCHITECTURE.md, "Topics and owners");
# the physical name adds `topic_prefix`.
USAGE_EVENTS = "usage-events"
ACCOUNT_EVENTS = "account-events"
CUSTOMER_STATE = "customer-state"
BILLING_ALERTS = "billing-alerts"
INVOICES = "invoices"
PERIOD_CLOSES = "period-closes"
CLOSE_CHECKPOINTS = "close-checkpoints"
USAGE_REJECTED = "usage-rejected"
CATALOG = "catalog"
ALL_TOPICS = (
    USAGE_EVENTS,
    ACCOUNT_EVENTS,
    CUSTOMER_STATE,
    BILLING_ALERTS,
    INVOICES,
    PERIOD_CLOSES,
    CLOSE_CHECKPOINTS,
    USAGE_REJECTED,
    CATALOG,
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STREAMBILL_", extra="ignore")

    # Kafka
    bootstrap_servers: str = "127.0.0.1:19092"
    topic_prefix: str = "streambill."
    partitions: int = 12
    replication_factor: int = 1
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_ca_location: str | None = None

    # Redis
    redis_url: str = "redis://127.0.0.1:16379/0"

    # Local services (`streambill services`)
    state_dir: Path = REPO_ROOT / ".state"
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    redis_port: int = 16379
    # Broker jars resolved by Maven from services/kafka/pom.xml; kept outside the work tree.
    kafka_libs_dir: Path = Path.home() / ".cache" / "streambill" / "kafka-4.1.1" / "libs"

    # Read side (projections/): key prefix of the Redis read models, HTTP API address,
    # the admin key for admin routes and the secret that signs customer tokens.
    # Unset secrets disable what needs them (the API answers 401), never a default key.
    read_model_prefix: str = "sb"
    projector_metrics_port: int = 0  # the projector's Prometheus endpoint; 0 = disabled
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    admin_key: SecretStr | None = None  # legacy: one admin-scope key
    # Scoped API keys (ingest / read / admin), one salted digest a line, re-read when
    # the file changes (projections/http/keys.py; `streambill api-key create`).
    api_keys_file: Path | None = None
    # Limits before work (projections/http/gate.py, limits.py): a longer body is 413
    # before it is parsed; each key may make `api_rate_limit` requests a second on
    # average (bursts of `api_rate_burst`, per API process; 0 = no limit), then 429.
    api_max_body_bytes: int = 4 * 1024 * 1024
    api_rate_limit: float = 200.0
    api_rate_burst: int = 400
    # The same per customer (customer tokens and portal sessions, whatever credential),
    # and per client address for requests that prove no identity: failed
    # authentications, the portal's link and sign-out (while an address is past it,
    # all its requests are 429; projections/http/auth.py, `from_address`).
    api_customer_rate_limit: float = 20.0
    api_customer_rate_burst: int = 40
    api_anonymous_rate_limit: float = 1.0
    api_anonymous_rate_burst: int = 30
    # Seconds between the API's looks at the catalog topic (source "topic") for new
    # plan versions and retirements, which the plan routes check (projections/http/plans.py).
    api_catalog_refresh: float = 10.0
    token_secret: SecretStr | None = None
    token_ttl: str = "24h"
    # Portal sessions (projections/http/sessions.py): following a link starts a
    # server-side session in Redis under `portal_session_prefix` (not the read
    # models' prefix: a rebuild clears those), ending at the link token's expiry or
    # `portal_session_ttl` after it started (e.g. 3600, 15m, 12h), whichever is first.
    portal_session_ttl: str = "12h"
    portal_session_prefix: str = "sbs"

    # Billing
    catalog_path: Path = REPO_ROOT / "examples" / "catalog.yaml"
    # Where processes read the catalog: "file" (catalog_path) or "topic" (the catalog
    # topic, every version `streambill catalog publish` wrote; streambill.wire.catalog_source).
    catalog_source: Literal["file", "topic"] = "file"
    # Retention of usage-events in days (<= 0: for ever). It must cover two periods of
    # the longest month (31 days) plus `max_lateness`, since closes and adjustments replay
    # it: `streambill topics create` refuses less (streambill.config.topics).
    usage_retention_days: int = 97

    # Fold worker (processors/worker/worker.py). The Faust app id (= consumer group and
    # changelog-topic prefix) is `topic_prefix + worker_app_id`, so environments
    # sharing a cluster never share state.
    worker_app_id: str = "fold-worker"
    worker_store: str = "memory://"  # or "rocksdb://" (needs `rocksdict`)
    worker_data_dir: Path = REPO_ROOT / ".state" / "worker"
    # Up to this many messages are folded per batch; each changed customer gets one
    # snapshot and one changelog record per batch, so large batches amortize that
    # per-customer cost under backlog. A batch is what has been fetched meanwhile
    # (processors/worker/batches.py); it never waits to fill, only for the interval below.
    worker_batch_size: int = 20000
    # A small batch starts at most this often (seconds): it waits this long after
    # the previous batch started for more to arrive (processors/feed.paced_take).
    # At low rates batches were single fetches of a few events, hundreds a second,
    # each with its own produce requests (effects, seen entries, records); a fresh
    # broker spent more than a core on them and its acks stalled for 200-300 ms.
    # 0 folds whatever arrived at once.
    worker_batch_interval: float = 0.01
    worker_session_timeout: float = 10.0  # seconds; a killed worker's partitions move after it
    # Liveness watchdog (processors/worker/watchdog.py): exit 70 when the worker's partitions
    # have lag and nothing moved for this many seconds; 0 disables it.
    worker_stall_timeout: float = 30.0
    # Seconds between checks of the catalog topic for new publications (source "topic";
    # 0: never; processors.worker.catalog_refresh).
    worker_catalog_refresh: float = 10.0
    worker_metrics_port: int = 0  # Prometheus text endpoint; 0 = disabled
    # An event id is remembered for `dedupe_window` of event time behind the
    # customer's watermark; anything older than `max_lateness` behind it is
    # rejected as too_late. max_lateness <= dedupe_window (checked by the worker)
    # so every event that passes the lateness check is still deduplicated.
    dedupe_window: timedelta = timedelta(days=35)
    max_lateness: timedelta = timedelta(days=35)
    future_tolerance: timedelta = timedelta(minutes=5)

    def admission_policy(self) -> AdmissionPolicy:
        """The admission settings every path reads (`billing.admission`)."""

        def ms(value: timedelta) -> int:
            return int(value.total_seconds() * 1000)

        return AdmissionPolicy(
            dedupe_window_ms=ms(self.dedupe_window),
            max_lateness_ms=ms(self.max_lateness),
            future_tolerance_ms=ms(self.future_tolerance),
        )

    def worker_group(self) -> str:
        """Physical Faust app id / consumer group of the fold worker."""
        return f"{self.topic_prefix}{self.worker_app_id}"

    def topic(self, logical: str) -> str:
        """Physical topic name for a logical one (`usage-events` -> `<prefix>usage-events`)."""
        return f"{self.topic_prefix}{logical}"

    def kafka_config(self, **extra: Any) -> dict[str, Any]:
        """confluent-kafka configuration: bootstrap and security, plus `extra`."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username or ""
            conf["sasl.password"] = self.sasl_password or ""
        if self.ssl_ca_location:
            conf["ssl.ca.location"] = self.ssl_ca_location
        conf.update(extra)
        return conf
