"""`CloseTopics.of`: the close's five topics under the settings' prefix."""

from __future__ import annotations

from processors.close.fold import TopicNames
from processors.close.topics import CloseTopics
from streambill.config.settings import Settings


def test_the_close_topics_are_the_settings_topics() -> None:
    topics = CloseTopics.of(Settings.model_construct(topic_prefix="t."))
    assert topics == CloseTopics(
        "t.usage-events",
        "t.account-events",
        "t.invoices",
        "t.period-closes",
        "t.close-checkpoints",
    )
    assert topics.inputs == TopicNames("t.usage-events", "t.account-events", "t.close-checkpoints")
