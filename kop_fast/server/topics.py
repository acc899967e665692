"""Resolving the topic names Kafka clients use to Pulsar topic layouts (shared by the handlers)."""

from __future__ import annotations

from kop_fast.backend.base import TopicExists, TopicInfo
from kop_fast.backend.naming import InvalidTopicName, TopicNaming
from kop_fast.protocol.errors import ErrorCode


def naming(broker) -> TopicNaming:
    return TopicNaming(broker.settings.kafka_tenant, broker.settings.kafka_namespace)


def cached_topic(broker, name: str) -> TopicInfo | None:
    """The layout without any I/O, when this process already knows it (the Produce/Fetch fast path)."""
    try:
        return broker.backend.cached_topic(naming(broker).pulsar_topic(name))
    except InvalidTopicName:
        return None


async def resolve_topic(broker, name: str, auto_create: bool) -> tuple[ErrorCode, TopicInfo | None]:
    """Find (and, if allowed, create) the topic a Kafka client names."""
    try:
        pulsar_topic = naming(broker).pulsar_topic(name)
    except InvalidTopicName:
        return ErrorCode.invalid_topic_exception, None
    backend = broker.backend
    info = await backend.describe_topic(pulsar_topic)
    if info is None and auto_create:
        try:
            info = await backend.create_topic(pulsar_topic, broker.settings.default_num_partitions)
        except TopicExists as exc:
            info = exc.info
    if info is None:
        return ErrorCode.unknown_topic_or_partition, None
    return ErrorCode.none, info
