"""CreatePartitions (key 37) v0-v3: partitions only grow, through `Storage.grow_topic`.

Kafka's answers and messages: a name given twice is INVALID_REQUEST (answered once), an
unknown topic UNKNOWN_TOPIC_OR_PARTITION, a count that is not more than now
INVALID_PARTITIONS. Manual assignments are checked as Kafka checks them, but only the
list [this node] per new partition is accepted (the cluster's placement, not the
assignment, picks each partition's leader), anything else is INVALID_REPLICA_ASSIGNMENT. `validate_only` checks and changes nothing;
`timeout_ms` bounds the call.
"""

from __future__ import annotations

import datetime

from kop_fast.protocol.build import make, sibling
from kop_fast.protocol.errors import ErrorCode, KafkaError
from kop_fast.server.registry import api
from kop_fast.server.topics import answer_each, assignment_error, current_topic

API_KEY = 37
_ZERO = datetime.timedelta(0)


def _check(node, info, topic) -> None:
    current = info.partitions
    if topic.count == current:
        raise KafkaError(ErrorCode.invalid_partitions, f"Topic already has {current} partition(s).")
    if topic.count < current:
        raise KafkaError(ErrorCode.invalid_partitions, f"The topic {info.name} currently has {current} "
                                                       f"partition(s); {topic.count} would not be an increase.")
    if topic.assignments is None:
        return
    added = topic.count - current
    if len(topic.assignments) != added:
        raise KafkaError(ErrorCode.invalid_replica_assignment, f"Attempted to add {added} additional partition(s), "
                                                               f"but only {len(topic.assignments)} assignment(s) were specified.")
    for assignment in topic.assignments:
        message = assignment_error(node.node_id, assignment.broker_ids)
        if message:
            raise KafkaError(ErrorCode.invalid_replica_assignment, message)


async def _grow(node, topic, validate_only: bool) -> None:
    info = await current_topic(node, topic.name)
    if info is None:
        raise KafkaError(ErrorCode.unknown_topic_or_partition)
    _check(node, info, topic)
    if not validate_only:
        await node.storage.grow_topic(info, topic.count)


@api(API_KEY, 0, 3)
async def handle_create_partitions(ctx, request):
    schema = ctx.response_schema
    answers = await answer_each(request.timeout, [(topic.name, topic) for topic in request.topics],
                                lambda topic: _grow(ctx.node, topic, request.validate_only))
    result_cls = sibling(schema, "CreatePartitionsTopicResult")
    return make(schema, throttle_time=_ZERO, results=tuple(
        make(result_cls, name=name, error_code=error, error_message=message)
        for name, (error, message, _) in answers.items()))
