"""ListOffsets (key 2) v0-v7: earliest, latest, max timestamp, and the first offset at a time.

v0 (schema in protocol/extra_schemas) answers a list of "old style" offsets;
we give the one offset later versions give.
"""

from __future__ import annotations

import asyncio
import datetime
import logging

from kop_fast.protocol.build import make, sibling
from kop_fast.protocol.errors import ErrorCode
from kop_fast.server.leaders import leader_error
from kop_fast.server.registry import api
from kop_fast.server.storage_errors import storage_error_code
from kop_fast.server.topics import existing_topic, missing_topic_error

log = logging.getLogger("kop_fast.list_offsets")

API_KEY = 2
LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
_ZERO = datetime.timedelta(0)


async def _lookup(node, name: str, index: int, timestamp: int, leader_epoch: int) -> tuple[ErrorCode, int, int]:
    """(error, timestamp, offset) for one partition."""
    info = await existing_topic(node, name)
    if info is None:
        return missing_topic_error(node, name), -1, -1
    if not 0 <= index < info.partitions:
        return ErrorCode.unknown_topic_or_partition, -1, -1
    error = leader_error(node, node.storage.partition_name(info, index), leader_epoch)
    if error:
        return error, -1, -1
    partition = node.storage.partition_log(info, index)
    try:
        if timestamp == EARLIEST:
            # Every consumer that starts from the beginning waits for this answer (and its
            # first Fetch waits behind it on the connection): the storage answers it from memory when it can.
            return ErrorCode.none, -1, await partition.earliest_offset()
        # Other processes may have appended: the end is read from the storage again.
        log_start, hwm = await partition.bounds(refresh=timestamp == LATEST)
        if timestamp == LATEST:
            return ErrorCode.none, -1, hwm
        if timestamp == MAX_TIMESTAMP:
            # The last record stands in for the one with the largest timestamp
            # (they are the same when producers' clocks move forward).
            found = await partition.last_record()
        else:
            found = await partition.offset_for_timestamp(timestamp)
    except Exception as exc:
        log.warning("ListOffsets on %s failed: %r", partition.name, exc)
        return storage_error_code(exc), -1, -1
    if found is None:
        return ErrorCode.none, -1, -1
    offset, ts = found
    return ErrorCode.none, ts, offset


@api(API_KEY, 0, 7)
async def handle_list_offsets(ctx, request):
    node = ctx.node
    schema = ctx.response_schema
    topic_cls = sibling(schema, "ListOffsetsTopicResponse")
    partition_cls = sibling(schema, "ListOffsetsPartitionResponse")
    plan = [(t.name, p.partition_index, p.timestamp, getattr(p, "current_leader_epoch", -1))
            for t in request.topics for p in t.partitions]
    results = await asyncio.gather(*(_lookup(node, *item) for item in plan))
    by_topic: dict[str, list] = {}
    for (name, index, _, _), (error, ts, offset) in zip(plan, results):
        by_topic.setdefault(name, []).append(
            make(partition_cls, partition_index=index, error_code=error, timestamp=ts, offset=offset,
                 leader_epoch=-1, old_style_offsets=(offset,) if offset >= 0 else ()))
    topics = tuple(make(topic_cls, name=name, partitions=tuple(parts)) for name, parts in by_topic.items())
    return make(schema, throttle_time=_ZERO, topics=topics)
