"""OffsetFetch (key 9) v0-v8 (v0 has v1's layout, see protocol/extra_schemas): committed offsets; v8 asks for several groups at once."""

from __future__ import annotations

import asyncio
import datetime

from kop_fast.coordinator import OffsetFetchPartitionResult, OffsetFetchRequest
from kop_fast.protocol.errors import ErrorCode
from kop_fast.protocol.build import make, sibling
from kop_fast.server.group_coordinator import coordinator_of, kafka_error
from kop_fast.server.registry import api

API_KEY = 9
_ZERO = datetime.timedelta(0)


def _requested(topics):
    """Request topics -> [(topic, partition)], or None for "every committed partition"."""
    if topics is None:
        return None
    return [(t.name, p) for t in topics for p in t.partition_indexes]


def _topics(schema, topic_class: str, partition_class: str, partitions):
    topic_cls = sibling(schema, topic_class)
    partition_cls = sibling(schema, partition_class)
    by_topic: dict[str, list] = {}
    for r in partitions:
        by_topic.setdefault(r.topic, []).append(make(
            partition_cls, partition_index=r.partition, committed_offset=r.offset,
            committed_leader_epoch=r.leader_epoch, metadata=r.metadata, error_code=kafka_error(r.error_code)))
    return tuple(make(topic_cls, name=name, partitions=tuple(parts)) for name, parts in by_topic.items())


async def _fetch(ctx, group_id: str, requested, require_stable: bool):
    return await coordinator_of(ctx).fetch_offsets(
        OffsetFetchRequest(group_id=group_id, partitions=requested, require_stable=require_stable))


@api(API_KEY, 0, 8)
async def handle_offset_fetch(ctx, request):
    schema = ctx.response_schema
    version = ctx.api_version
    require_stable = getattr(request, "require_stable", False)
    if version >= 8:
        groups = request.groups
        responses = await asyncio.gather(*(
            _fetch(ctx, g.group_id, _requested(g.topics), require_stable) for g in groups))
        group_cls = sibling(schema, "OffsetFetchResponseGroup")
        out = []
        for g, response in zip(groups, responses):
            partitions = response.partitions if response.error_code == ErrorCode.none else []
            out.append(make(group_cls, group_id=g.group_id, error_code=kafka_error(response.error_code),
                            topics=_topics(schema, "OffsetFetchResponseTopics", "OffsetFetchResponsePartitions",
                                           partitions)))
        return make(schema, throttle_time=_ZERO, groups=tuple(out))

    requested = _requested(request.topics)
    response = await _fetch(ctx, request.group_id, requested, require_stable)
    partitions = response.partitions
    if response.error_code != ErrorCode.none:
        if version < 2:
            # No top-level error before v2: every requested partition carries it.
            partitions = [OffsetFetchPartitionResult(t, p, error_code=response.error_code)
                          for t, p in (requested or [])]
        else:
            partitions = []
    return make(schema, throttle_time=_ZERO, error_code=kafka_error(response.error_code),
                topics=_topics(schema, "OffsetFetchResponseTopic", "OffsetFetchResponsePartition", partitions))
