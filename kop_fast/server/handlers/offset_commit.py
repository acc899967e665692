"""OffsetCommit (key 8) v0-v8 (v0/v1 schemas in protocol/extra_schemas): answered once Pulsar persisted the commit.

Partitions of topics this cluster does not have get UNKNOWN_TOPIC_OR_PARTITION,
as in Kafka; the rest go to the group coordinator.
"""

from __future__ import annotations

import asyncio
import datetime

from kop_fast.coordinator import OffsetCommitPartition, OffsetCommitRequest
from kop_fast.protocol.build import make, sibling
from kop_fast.protocol.errors import ErrorCode
from kop_fast.server.group_coordinator import coordinator_of, kafka_error, millis
from kop_fast.server.registry import api
from kop_fast.server.topics import resolve_topic

API_KEY = 8
_ZERO = datetime.timedelta(0)


async def partition_counts(node, names) -> dict[str, int]:
    """Partition count of each named topic; 0 when the topic does not exist (no auto-creation)."""
    counts: dict[str, int] = {}
    missing = []
    for name in dict.fromkeys(names):
        info = node.storage.cached_topic(name)
        if info is not None:
            counts[name] = info.partitions
        else:
            missing.append(name)
    if missing:
        found = await asyncio.gather(*(resolve_topic(node, n, auto_create=False) for n in missing),
                                     return_exceptions=True)
        for name, result in zip(missing, found):
            info = None if isinstance(result, BaseException) else result[1]
            counts[name] = info.partitions if info is not None else 0
    return counts


def group_by_topic(schema, topic_class: str, partition_class: str, results, **partition_extra):
    """[(topic, partition, error)] -> response topics, in first-appearance order."""
    topic_cls = sibling(schema, topic_class)
    partition_cls = sibling(schema, partition_class)
    by_topic: dict[str, list] = {}
    for topic, partition, error in results:
        by_topic.setdefault(topic, []).append(
            make(partition_cls, partition_index=partition, error_code=kafka_error(error), **partition_extra))
    return tuple(make(topic_cls, name=name, partitions=tuple(parts)) for name, parts in by_topic.items())


@api(API_KEY, 0, 8)
async def handle_offset_commit(ctx, request):
    counts = await partition_counts(ctx.node, [t.name for t in request.topics])
    retention_ms = millis(getattr(request, "retention_time", None))
    valid = []
    errors: dict[tuple[str, int], int] = {}
    order: list[tuple[str, int]] = []
    for topic in request.topics:
        for p in topic.partitions:
            tp = (topic.name, p.partition_index)
            order.append(tp)
            if not 0 <= p.partition_index < counts.get(topic.name, 0):
                errors[tp] = ErrorCode.unknown_topic_or_partition
                continue
            valid.append(OffsetCommitPartition(
                topic=topic.name, partition=p.partition_index, offset=p.committed_offset,
                leader_epoch=getattr(p, "committed_leader_epoch", -1), metadata=p.committed_metadata))
    if valid:
        response = await coordinator_of(ctx).commit_offsets(OffsetCommitRequest(
            group_id=request.group_id,
            partitions=valid,
            # v0 has neither: a "simple" commit, as generation -1 with no member id is
            generation_id=getattr(request, "generation_id_or_member_epoch", -1),
            member_id=getattr(request, "member_id", ""),
            group_instance_id=getattr(request, "group_instance_id", None),
            retention_time_ms=retention_ms,
        ))
        for r in response.partitions:
            errors.setdefault((r.topic, r.partition), r.error_code)
    results = [(t, p, errors.get((t, p), ErrorCode.unknown_server_error)) for t, p in dict.fromkeys(order)]
    schema = ctx.response_schema
    return make(schema, throttle_time=_ZERO,
                topics=group_by_topic(schema, "OffsetCommitResponseTopic", "OffsetCommitResponsePartition", results))
