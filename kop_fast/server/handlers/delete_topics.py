"""DeleteTopics (key 20) v1-v6: by name, and from v6 by topic id, then `Storage.delete_topic`.

Kafka's answers: a name (or id) given twice is INVALID_REQUEST (answered once), a v6
entry needs a name or an id but not both, an unknown name is UNKNOWN_TOPIC_OR_PARTITION
and an unknown id UNKNOWN_TOPIC_ID. A topic made again with the same name starts empty
(the storage's contract). `timeout_ms` bounds the call.
"""

from __future__ import annotations

import datetime
import uuid

from kop_fast.protocol.build import make, sibling
from kop_fast.protocol.errors import ErrorCode, KafkaError
from kop_fast.server.registry import api
from kop_fast.server.topics import answer_each, current_topic, topics_by_id
from kop_fast.storage.api import UnknownTopic

API_KEY = 20
_ZERO = datetime.timedelta(0)
_UNKNOWN_NAME = "This server does not host this topic-partition."
_UNKNOWN_ID = "This server does not host this topic ID."


async def _delete_named(node, name: str) -> uuid.UUID:
    info = await current_topic(node, name)
    if info is None:
        raise KafkaError(ErrorCode.unknown_topic_or_partition, _UNKNOWN_NAME)
    await node.storage.delete_topic(info)
    return info.topic_id


async def _delete_by_id(node, info) -> None:
    try:
        await node.storage.delete_topic(info)
    except UnknownTopic:  # deleted since it was looked up
        raise KafkaError(ErrorCode.unknown_topic_id, _UNKNOWN_ID) from None


def _requested(request, version: int) -> list[tuple[str | None, uuid.UUID | None]]:
    """(name, id) of each entry; None for what it does not give (kio reads the zero id as None)."""
    if version < 6:
        return [(name, None) for name in request.topic_names]
    return [(t.name, t.topic_id if t.topic_id is not None and t.topic_id.int else None) for t in request.topics]


def _refusal(entry, known) -> tuple[ErrorCode, str] | None:
    name, topic_id = entry
    if name is None and topic_id is None:
        return ErrorCode.invalid_request, "Neither topic name nor id were specified."
    if name is not None and topic_id is not None:
        return ErrorCode.invalid_request, "You may not specify both topic name and topic id."
    if name is None and topic_id not in known:
        return ErrorCode.unknown_topic_id, _UNKNOWN_ID
    return None


@api(API_KEY, 1, 6)
async def handle_delete_topics(ctx, request):
    node = ctx.node
    schema = ctx.response_schema
    requested = _requested(request, ctx.api_version)
    known = await topics_by_id(node, (topic_id for _, topic_id in requested if topic_id is not None))

    def delete(entry):
        name, topic_id = entry
        return _delete_named(node, name) if name is not None else _delete_by_id(node, known[topic_id])

    answers = await answer_each(request.timeout, [(entry, entry) for entry in requested], delete,
                                lambda entry: _refusal(entry, known),
                                lambda entry: "Duplicate topic name." if entry[0] is not None else "Duplicate topic id.")
    result_cls = sibling(schema, "DeletableTopicResult")
    results = []
    for (name, topic_id), (error, message, deleted_id) in answers.items():
        if name is None and topic_id in known:
            name = known[topic_id].name
        results.append(make(result_cls, name=name, topic_id=deleted_id or topic_id, error_code=error,
                            error_message=message))
    return make(schema, throttle_time=_ZERO, responses=tuple(results))
