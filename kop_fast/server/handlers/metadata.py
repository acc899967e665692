"""Metadata (key 3): this process is the only broker and leads every partition; topics come from Pulsar."""

from __future__ import annotations

import asyncio
import datetime
import logging
import uuid

from kop_fast.backend.base import TopicInfo
from kop_fast.protocol.build import make, sibling
from kop_fast.protocol.errors import ErrorCode
from kop_fast.server.registry import api
from kop_fast.server.topics import naming, resolve_topic

log = logging.getLogger("kop_fast.metadata")

API_KEY = 3
_ZERO = datetime.timedelta(0)
# Stable topic ids: the same name gives the same id in every kop_fast process.
_TOPIC_ID_NAMESPACE = uuid.UUID("0b7e4a53-7f4c-4a35-9d55-6b6f0e2a9c11")
_AUTHORIZED_OPS_UNKNOWN = -(2**31)


def topic_id(pulsar_topic: str) -> uuid.UUID:
    return uuid.uuid5(_TOPIC_ID_NAMESPACE, pulsar_topic)


def _topic_entry(schema, broker, name: str, error: ErrorCode, info: TopicInfo | None):
    topic_cls = sibling(schema, "MetadataResponseTopic")
    partition_cls = sibling(schema, "MetadataResponsePartition")
    partitions = ()
    if info is not None:
        node = broker.node_id
        partitions = tuple(
            make(partition_cls, error_code=ErrorCode.none, partition_index=i, leader_id=node,
                 leader_epoch=-1, replica_nodes=(node,), isr_nodes=(node,), offline_replicas=())
            for i in range(info.partitions)
        )
    return make(topic_cls, error_code=error, name=name,
                topic_id=topic_id(info.pulsar_topic) if info else uuid.UUID(int=0),
                is_internal=False, partitions=partitions,
                topic_authorized_operations=_AUTHORIZED_OPS_UNKNOWN)


def _find_by_id(broker, wanted) -> TopicInfo | None:
    ns = naming(broker)
    for info in broker.backend.known_topics(ns.tenant, ns.namespace):
        if topic_id(info.pulsar_topic) == wanted:
            return info
    return None


@api(API_KEY, 0, 12)
async def handle_metadata(ctx, request):
    broker = ctx.broker
    schema = ctx.response_schema
    version = ctx.api_version
    requested = request.topics
    # v0: an empty list means "all topics"; v1+: null means all, empty means none.
    all_topics = requested is None or (version == 0 and len(requested) == 0)
    # Before v4 there is no flag; Kafka brokers then auto-create per their config (on).
    auto_create = getattr(request, "allow_auto_topic_creation", True)
    entries = []
    if all_topics:
        ns = naming(broker)
        try:
            await broker.backend.refresh_admin_topics(ns.tenant, ns.namespace)
        except Exception as exc:  # the admin API is optional help: answer with what we know
            log.warning("listing partitioned topics through the admin API failed: %s", exc)
        for info in sorted(broker.backend.known_topics(ns.tenant, ns.namespace), key=lambda i: i.pulsar_topic):
            entries.append(_topic_entry(schema, broker, ns.kafka_name(info.pulsar_topic), ErrorCode.none, info))
    else:
        names = [t.name for t in requested]
        results = await asyncio.gather(*(resolve_topic(broker, n, auto_create) for n in names if n is not None))
        results.reverse()
        for topic in requested:
            if topic.name is None:  # v10+: asked by topic id, which we only know for known topics
                info = _find_by_id(broker, getattr(topic, "topic_id", None))
                if info is None:
                    entries.append(make(sibling(schema, "MetadataResponseTopic"), error_code=ErrorCode.unknown_topic_id,
                                        name=None, topic_id=topic.topic_id, partitions=()))
                else:
                    kafka_name = naming(broker).kafka_name(info.pulsar_topic)
                    entries.append(_topic_entry(schema, broker, kafka_name, ErrorCode.none, info))
                continue
            error, info = results.pop()
            entries.append(_topic_entry(schema, broker, topic.name, error, info))
    broker_cls = sibling(schema, "MetadataResponseBroker")
    brokers = (make(broker_cls, node_id=broker.node_id, host=broker.host, port=broker.port, rack=None),)
    return make(schema, throttle_time=_ZERO, brokers=brokers, cluster_id=broker.cluster_id,
                controller_id=broker.node_id, topics=tuple(entries),
                cluster_authorized_operations=_AUTHORIZED_OPS_UNKNOWN)
