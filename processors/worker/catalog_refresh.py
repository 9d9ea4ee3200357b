"""The worker picks up catalog publications without a restart.

With `STREAMBILL_CATALOG_SOURCE=topic`, a thread asks the catalog topic every
`worker_catalog_refresh` seconds whether its end offsets moved
(`streambill.wire.catalog_source.CatalogWatch`, one metadata request) and, if they
did, reads it again and hands the new catalog to the fold, which uses it from its
next batch on (`processors.fold.batch.BatchFolder.use_catalog`). A failed check or
an invalid catalog keeps the current catalog and is logged; it never stops billing.

Publish a plan version before subscribing customers to it: until the worker has
reloaded, a subscription pinned to a version it does not know is dead-lettered
(`invalid_field`, replayable with `streambill dlq replay`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from billing.catalog import Catalog
from streambill.wire.catalog_source import CatalogWatch

log = logging.getLogger("streambill.worker.catalog")


def refresh_once(watch: CatalogWatch, use: Callable[[Catalog], None]) -> bool:
    """One check: reload and hand over if the topic moved. True if it did; never
    raises (a failure is logged and the current catalog stays)."""
    try:
        if not watch.changed():
            return False
        catalog = watch.reload()
    except Exception as exc:  # Kafka or an invalid catalog: keep billing on the current one
        log.warning("catalog refresh failed, keeping the current catalog: %s", exc)
        return False
    use(catalog)
    log.info("catalog reloaded: %d plans", len(catalog.plans))
    return True


def refresher_starter(
    watch: CatalogWatch, use: Callable[[Catalog], None], interval_s: float
) -> Callable[[], object]:
    """A function that starts the refresh thread (nothing when the source is a file)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            refresh_once(watch, use)

    def start() -> object:
        if not watch.enabled or interval_s <= 0:
            return None
        thread = threading.Thread(target=loop, name="catalog-refresh", daemon=True)
        thread.start()
        return thread

    return start
