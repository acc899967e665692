"""DeleteRecords (key 21) v0-v2: move a partition's log start up, through `PartitionLog.delete_records`.

Per partition, like Kafka: `offset` -1 means the high watermark; an offset below 0 or
above the high watermark (read from the storage again: other processes append) is
OFFSET_OUT_OF_RANGE; the answer's `low_watermark` is the log start afterwards (-1 with
an error). An offset below the log start moves nothing. `timeout_ms` bounds the call.
"""

from __future__ import annotations

import datetime

from kop_fast.protocol.build import make, sibling
from kop_fast.protocol.errors import ErrorCode, KafkaError
from kop_fast.server.leaders import leader_error
from kop_fast.server.registry import api
from kop_fast.server.topics import existing_topic, within_timeout

API_KEY = 21
HIGH_WATERMARK = -1
_ZERO = datetime.timedelta(0)


async def _delete(node, name: str, index: int, offset: int) -> int:
    info = await existing_topic(node, name)
    if info is None or not 0 <= index < info.partitions:
        raise KafkaError(ErrorCode.unknown_topic_or_partition)
    error = leader_error(node, node.storage.partition_name(info, index))
    if error:
        raise KafkaError(error)
    partition = node.storage.partition_log(info, index)
    _, hwm = await partition.bounds(refresh=True)
    before = hwm if offset == HIGH_WATERMARK else offset
    if not 0 <= before <= hwm:
        raise KafkaError(ErrorCode.offset_out_of_range,
                         f"The offset {before} for partition {name}-{index} is not valid")
    return await partition.delete_records(before)


@api(API_KEY, 0, 2)
async def handle_delete_records(ctx, request):
    schema = ctx.response_schema
    plan = [(t.name, p.partition_index, p.offset) for t in request.topics for p in t.partitions]
    outcomes = await within_timeout(request.timeout, [_delete(ctx.node, *item) for item in plan])
    partition_cls = sibling(schema, "DeleteRecordsPartitionResult")
    by_topic: dict[str, list] = {}
    for (name, index, _), (error, _message, log_start) in zip(plan, outcomes):
        by_topic.setdefault(name, []).append(make(
            partition_cls, partition_index=index, error_code=error,
            low_watermark=log_start if error == ErrorCode.none else -1))
    topic_cls = sibling(schema, "DeleteRecordsTopicResult")
    return make(schema, throttle_time=_ZERO,
                topics=tuple(make(topic_cls, name=name, partitions=tuple(parts)) for name, parts in by_topic.items()))
