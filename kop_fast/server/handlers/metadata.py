"""Metadata (key 3): the cluster's live proxies as brokers, each partition led by the proxy that owns it.

Topics come from the storage; placement and leader epochs from the cluster view
(`kop_fast.server.cluster`), the same on every proxy. There is one replica per
partition (Pulsar keeps the copies): replicas and ISR are the leader.
"""

from __future__ import annotations

import asyncio
import datetime
import uuid

from kop_fast.protocol.build import make, sibling
from kop_fast.protocol.errors import ErrorCode
from kop_fast.server.leaders import leader_of, live_brokers
from kop_fast.server.registry import api
from kop_fast.server.topics import resolve_topic
from kop_fast.storage.api import TopicInfo


API_KEY = 3
_ZERO = datetime.timedelta(0)
_AUTHORIZED_OPS_UNKNOWN = -(2**31)


def topic_id(info: TopicInfo) -> uuid.UUID:
    return info.topic_id


def _topic_entry(schema, node, name: str, error: ErrorCode, info: TopicInfo | None):
    topic_cls = sibling(schema, "MetadataResponseTopic")
    partition_cls = sibling(schema, "MetadataResponsePartition")
    partitions = ()
    if info is not None:
        partitions = tuple(_partition_entry(partition_cls, node, info, i) for i in range(info.partitions))
    return make(topic_cls, error_code=error, name=name,
                topic_id=topic_id(info) if info else uuid.UUID(int=0),
                is_internal=False, partitions=partitions,
                topic_authorized_operations=_AUTHORIZED_OPS_UNKNOWN)


def _partition_entry(partition_cls, node, info: TopicInfo, index: int):
    leader, epoch = leader_of(node, info, index)
    if leader is None:
        return make(partition_cls, error_code=ErrorCode.leader_not_available, partition_index=index, leader_id=-1,
                    leader_epoch=-1, replica_nodes=(), isr_nodes=(), offline_replicas=())
    return make(partition_cls, error_code=ErrorCode.none, partition_index=index, leader_id=leader,
                leader_epoch=epoch, replica_nodes=(leader,), isr_nodes=(leader,), offline_replicas=())


async def _find_by_id(node, wanted) -> TopicInfo | None:
    for info in await node.storage.list_topics():
        if topic_id(info) == wanted:
            return info
    return None


@api(API_KEY, 0, 12)
async def handle_metadata(ctx, request):
    node = ctx.node
    schema = ctx.response_schema
    version = ctx.api_version
    requested = request.topics
    # v0: an empty list means "all topics"; v1+: null means all, empty means none.
    all_topics = requested is None or (version == 0 and len(requested) == 0)
    # Before v4 there is no flag; Kafka brokers then auto-create per their config (on).
    auto_create = getattr(request, "allow_auto_topic_creation", True)
    entries = []
    if all_topics:
        for info in await node.storage.list_topics():
            entries.append(_topic_entry(schema, node, info.name, ErrorCode.none, info))
    else:
        names = [t.name for t in requested]
        results = await asyncio.gather(*(resolve_topic(node, n, auto_create) for n in names if n is not None))
        results.reverse()
        for topic in requested:
            if topic.name is None:  # v10+: asked by topic id, which we only know for known topics
                info = await _find_by_id(node, getattr(topic, "topic_id", None))
                if info is None:
                    entries.append(make(sibling(schema, "MetadataResponseTopic"), error_code=ErrorCode.unknown_topic_id,
                                        name=None, topic_id=topic.topic_id, partitions=()))
                else:
                    entries.append(_topic_entry(schema, node, info.name, ErrorCode.none, info))
                continue
            error, info = results.pop()
            entries.append(_topic_entry(schema, node, topic.name, error, info))
    broker_cls = sibling(schema, "MetadataResponseBroker")
    members = live_brokers(node, ctx.connection.listener_name)  # the listener the client came through
    brokers = tuple(make(broker_cls, node_id=n, host=h, port=p, rack=None) for n, h, p in members)
    return make(schema, throttle_time=_ZERO, brokers=brokers, cluster_id=node.cluster_id,
                controller_id=members[0][0] if members else -1, topics=tuple(entries),
                cluster_authorized_operations=_AUTHORIZED_OPS_UNKNOWN)
