"""The physical topics a close reads and writes."""

from __future__ import annotations

from dataclasses import dataclass

from processors.close.fold import TopicNames
from streambill.config.settings import (
    ACCOUNT_EVENTS,
    CLOSE_CHECKPOINTS,
    INVOICES,
    PERIOD_CLOSES,
    USAGE_EVENTS,
    Settings,
)


@dataclass(frozen=True, slots=True)
class CloseTopics:
    """Physical topic names."""

    usage: str
    account: str
    invoices: str
    closes: str
    checkpoints: str

    @classmethod
    def of(cls, settings: Settings) -> CloseTopics:
        """The close's topics under `settings`' topic prefix."""
        return cls(
            settings.topic(USAGE_EVENTS),
            settings.topic(ACCOUNT_EVENTS),
            settings.topic(INVOICES),
            settings.topic(PERIOD_CLOSES),
            settings.topic(CLOSE_CHECKPOINTS),
        )

    @property
    def inputs(self) -> TopicNames:
        """The two input topics, as the fold reads them."""
        return TopicNames(self.usage, self.account, self.checkpoints)
