"""Faust's `broker_credentials` from the same settings as every other client
(`streambill.config.kafka_security`)."""

from __future__ import annotations

import faust
from faust.types.auth import CredentialsT

from streambill.config.kafka_security import tls_context
from streambill.config.settings import Settings


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """Faust's `broker_credentials` for the settings; None for PLAINTEXT."""
    protocol = settings.security_protocol.upper()
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(tls_context(settings))
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            mechanism=settings.sasl_mechanism or "PLAIN",
            ssl_context=tls_context(settings) if protocol == "SASL_SSL" else None,
        )
    raise ValueError(f"unsupported STREAMBILL_SECURITY_PROTOCOL {settings.security_protocol!r}")
