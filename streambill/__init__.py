"""streambill edges: SDK, Avro codec, settings, topic admin, local services, CLI.

`streambill.UsageClient` is the producer SDK (`streambill.sdk.client`); it is imported on first
use, so `import streambill.config.settings` does not load the Kafka client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streambill.sdk.client import DeliveryError, UsageClient, ValidationError

__all__ = ["DeliveryError", "UsageClient", "ValidationError"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from streambill.sdk import client as sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'streambill' has no attribute {name!r}")
