"""The fold worker's Kafka security (aiokafka clients) from the same settings that
`Settings.kafka_config()` gives confluent-kafka clients (SDK, close, projector).

    STREAMBILL_SECURITY_PROTOCOL   PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    STREAMBILL_SASL_MECHANISM      PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
    STREAMBILL_SASL_USERNAME / STREAMBILL_SASL_PASSWORD
    STREAMBILL_SSL_CA_LOCATION     CA file that signs the brokers' certificates

A protocol this module cannot express raises `ValueError` at start-up,
so a misconfigured worker never silently connects in plain text.

Faust's form of the same settings is `processors.worker.runtime.credentials`.
"""

from __future__ import annotations

import ssl
from typing import Any

from streambill.config.settings import Settings


def tls_context(settings: Settings) -> ssl.SSLContext:
    return ssl.create_default_context(
        purpose=ssl.Purpose.SERVER_AUTH, cafile=settings.ssl_ca_location
    )


def aiokafka_security(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of a plain aiokafka client (the worker's own readers: account
    backlog, skipped ranges, watchdog) for the same settings."""
    protocol = settings.security_protocol.upper()
    if protocol == "PLAINTEXT":
        return {}
    if protocol not in ("SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        raise ValueError(f"unsupported STREAMBILL_SECURITY_PROTOCOL {settings.security_protocol!r}")
    out: dict[str, Any] = {"security_protocol": protocol}
    if protocol != "SASL_PLAINTEXT":
        out["ssl_context"] = tls_context(settings)
    if protocol.startswith("SASL"):
        out.update(
            sasl_mechanism=settings.sasl_mechanism or "PLAIN",
            sasl_plain_username=settings.sasl_username,
            sasl_plain_password=settings.sasl_password,
        )
    return out
