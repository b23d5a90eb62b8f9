"""Topic names and the creation of missing topics."""

from __future__ import annotations

import logging

from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from fueltrace.settings import Settings
from ingest.kafka_client import admin_client, kafka_errors
from ingest.records import SPECS

log = logging.getLogger(__name__)
DEAD_LETTER_SUFFIX = "dead-letter"


def record_topic(settings: Settings, record_type: str) -> str:
    return settings.topic(SPECS[record_type].topic_suffix)


def dead_letter_topic(settings: Settings) -> str:
    return settings.topic(DEAD_LETTER_SUFFIX)


def record_topics(settings: Settings) -> dict[str, str]:
    """Topic name → record type, for every record type."""
    return {record_topic(settings, t): t for t in SPECS}


def all_topics(settings: Settings) -> list[str]:
    return [*record_topics(settings), dead_letter_topic(settings)]


def ensure_topics(settings: Settings, bootstrap: str) -> list[str]:
    """Create the topics of the SPEC that are missing; return those created."""
    with kafka_errors(bootstrap), admin_client(settings, bootstrap) as admin:
        existing = set(admin.list_topics())
        missing = [t for t in all_topics(settings) if t not in existing]
        created = []
        for name in missing:
            config = {"cleanup.policy": "compact"} if name.endswith(".facility") else {}
            try:
                admin.create_topics(
                    [NewTopic(name, settings.partitions, 1, topic_configs=config)]
                )
                created.append(name)
            except TopicAlreadyExistsError:  # another process was quicker
                pass
    if created:
        log.info("topics created names=%s partitions=%d", ",".join(created), settings.partitions)
    return created
