"""OffsetDelete (key 47) v0: delete committed offsets of partitions the group no longer consumes (KIP-496)."""

from __future__ import annotations

import datetime

from kop_fast.coordinator import OffsetDeleteRequest
from kop_fast.protocol.errors import ErrorCode
from kop_fast.protocol.build import make
from kop_fast.server.group_coordinator import coordinator_of, kafka_error
from kop_fast.server.handlers.offset_commit import group_by_topic, partition_counts
from kop_fast.server.registry import api

API_KEY = 47
_ZERO = datetime.timedelta(0)


@api(API_KEY, 0, 0)
async def handle_offset_delete(ctx, request):
    schema = ctx.response_schema
    counts = await partition_counts(ctx.node, [t.name for t in request.topics])
    order = list(dict.fromkeys((t.name, p.partition_index) for t in request.topics for p in t.partitions))
    errors: dict[tuple[str, int], int] = {}
    valid = []
    for t, p in order:
        if 0 <= p < counts.get(t, 0):
            valid.append((t, p))
        else:
            errors[(t, p)] = ErrorCode.unknown_topic_or_partition
    response = await coordinator_of(ctx).delete_offsets(
        OffsetDeleteRequest(group_id=request.group_id, partitions=valid))
    if response.error_code != ErrorCode.none:
        # A group-level error (GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP, NOT_COORDINATOR...): no partitions.
        return make(schema, error_code=kafka_error(response.error_code), throttle_time=_ZERO, topics=())
    for r in response.partitions:
        errors.setdefault((r.topic, r.partition), r.error_code)
    results = [(t, p, errors.get((t, p), ErrorCode.unknown_server_error)) for t, p in order]
    return make(schema, error_code=ErrorCode.none, throttle_time=_ZERO,
                topics=group_by_topic(schema, "OffsetDeleteResponseTopic", "OffsetDeleteResponsePartition", results))
