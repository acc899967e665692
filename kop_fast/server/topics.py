"""Resolving the topic names Kafka clients use to topic layouts (shared by the handlers)."""

from __future__ import annotations

from kop_fast.protocol.errors import ErrorCode
from kop_fast.storage.api import InvalidTopicName, TopicExists, TopicInfo


async def resolve_topic(node, name: str, auto_create: bool) -> tuple[ErrorCode, TopicInfo | None]:
    """Find (and, if allowed, create) the topic a Kafka client names."""
    storage = node.storage
    try:
        info = await storage.describe_topic(name)
        if info is None and auto_create:
            try:
                info = await storage.create_topic(name, node.settings.default_num_partitions)
            except TopicExists as exc:
                info = exc.info
    except InvalidTopicName:
        return ErrorCode.invalid_topic_exception, None
    if info is None:
        return ErrorCode.unknown_topic_or_partition, None
    return ErrorCode.none, info


async def existing_topic(node, name: str) -> TopicInfo | None:
    """The layout of a topic that exists (never created here): no I/O when it is known."""
    info = node.storage.cached_topic(name)
    if info is None:
        _, info = await resolve_topic(node, name, auto_create=False)
    return info
