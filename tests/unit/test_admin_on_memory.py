"""The admin APIs end to end on the in-memory storage: real admin clients (aiokafka's
AIOKafkaAdminClient, kafka-python's KafkaAdminClient in a thread) over a real socket to a
real `KafkaNode`, no Pulsar process; and the auto-creation setting as clients meet it."""

from __future__ import annotations

import asyncio
import uuid

import kafka.errors
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic, RecordsToDelete
from aiokafka.errors import InvalidTopicError, TopicAlreadyExistsError, for_code
from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType, KafkaAdminClient, ResourcePattern,
                         ResourceType)
from kio.schema.fetch.v4.response import FetchResponse
from kio.schema.metadata.v8.request import MetadataRequest, MetadataRequestTopic
from kio.schema.metadata.v8.response import MetadataResponse
from kio.schema.produce.v3.response import ProduceResponse

from kop_fast.protocol.errors import ErrorCode
from tests.unit.memory_node import (batch, fetch_request, memory_node, produce, produce_request, raw_request, run,
                                   started_consumer, take)

CLIENT_TIMEOUT_MS = 10_000


async def admin_client(bootstrap: str) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=CLIENT_TIMEOUT_MS)
    await admin.start()
    return admin


def topic_errors(response) -> dict:
    """aiokafka's CreateTopics answer as {topic: error class or None}."""
    return {topic: for_code(code) if code else None for topic, code, *_ in response.topic_errors}


async def partition_count(admin: AIOKafkaAdminClient, topic: str) -> int:
    [described] = await admin.describe_topics([topic])
    assert described["error_code"] == 0
    return len(described["partitions"])


async def produce_status(bootstrap: str, topic: str, partition: int = 0) -> tuple[int, int]:
    response = await raw_request(bootstrap, 0, 3, produce_request(topic, batch(b"x"), partition), ProduceResponse)
    [part] = response.responses[0].partition_responses
    return part.error_code, part.base_offset


async def metadata_error(bootstrap: str, topic: str) -> int:
    request = MetadataRequest(topics=(MetadataRequestTopic(name=topic),), allow_auto_topic_creation=True,
                              include_cluster_authorized_operations=False, include_topic_authorized_operations=False)
    response = await raw_request(bootstrap, 3, 8, request, MetadataResponse)
    [entry] = response.topics
    return entry.error_code


def test_aiokafka_admin_creates_grows_and_describes():
    async def scenario():
        async with memory_node() as (node, bootstrap):
            admin = await admin_client(bootstrap)
            try:
                created = await admin.create_topics([NewTopic("orders", 3, 1), NewTopic("audit", 2, 3)])
                assert topic_errors(created) == {"orders": None, "audit": None}
                assert {"orders", "audit"} <= set(await admin.list_topics())
                assert await partition_count(admin, "orders") == 3
                again = await admin.create_topics([NewTopic("orders", 3, 1), NewTopic("bad name", 1, 1)])
                assert topic_errors(again) == {"orders": TopicAlreadyExistsError, "bad name": InvalidTopicError}
                assert "bad name" not in node.storage.engine.topics

                await admin.create_partitions({"orders": NewPartitions(6)})
                assert await partition_count(admin, "orders") == 6
                cluster = await admin.describe_cluster()
                assert cluster["cluster_id"] == "memory-cluster" and cluster["controller_id"] == node.node_id
                assert [(b["node_id"], b["port"]) for b in cluster["brokers"]] == [(node.node_id, node.port)]
            finally:
                await admin.close()
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
            await producer.start()
            try:
                sent = await producer.send_and_wait("orders", b"to-the-new-partition", partition=5)
            finally:
                await producer.stop()
            assert (sent.partition, sent.offset) == (5, 0)

    run(scenario)


def test_a_deleted_topic_is_gone_and_comes_back_empty():
    async def scenario():
        async with memory_node(auto_create_topics=False) as (_node, bootstrap):
            admin = await admin_client(bootstrap)
            try:
                assert topic_errors(await admin.create_topics([NewTopic("short-lived", 1, 1)])) == {"short-lived": None}
                assert await produce_status(bootstrap, "short-lived") == (ErrorCode.none, 0)
                assert await produce_status(bootstrap, "short-lived") == (ErrorCode.none, 1)

                deleted = await admin.delete_topics(["short-lived", "never-made"])
                assert dict(deleted.topic_error_codes) == {
                    "short-lived": ErrorCode.none, "never-made": ErrorCode.unknown_topic_or_partition}
                assert "short-lived" not in await admin.list_topics()
                assert await produce_status(bootstrap, "short-lived") == (ErrorCode.unknown_topic_or_partition, -1)

                assert topic_errors(await admin.create_topics([NewTopic("short-lived", 1, 1)])) == {"short-lived": None}
            finally:
                await admin.close()
            fetched = await raw_request(bootstrap, 1, 4, fetch_request("short-lived", 0, 10), FetchResponse)
            [part] = fetched.responses[0].partitions
            assert (part.error_code, part.high_watermark, part.records or b"") == (ErrorCode.none, 0, b"")

    run(scenario)


def test_deleted_records_move_the_log_start_for_list_offsets_and_consumers():
    async def scenario():
        async with memory_node() as (_node, bootstrap):
            await produce(bootstrap, "trimmed", [b"r%d" % i for i in range(5)])
            tp = TopicPartition("trimmed", 0)
            admin = await admin_client(bootstrap)
            try:
                assert await admin.delete_records({tp: RecordsToDelete(3)}) == {tp: 3}
            finally:
                await admin.close()
            async with started_consumer(bootstrap, auto_offset_reset="earliest") as consumer:
                assert await consumer.beginning_offsets([tp]) == {tp: 3}  # ListOffsets EARLIEST
                consumer.assign([tp])
                got = await take(consumer, tp, 2)
            assert [(m.offset, m.value) for m in got] == [(3, b"r3"), (4, b"r4")]

    run(scenario)


def test_kafka_python_admin_in_a_thread():
    async def scenario():
        async with memory_node() as (node, bootstrap):
            admin = await asyncio.to_thread(KafkaAdminClient, bootstrap_servers=bootstrap,
                                            request_timeout_ms=CLIENT_TIMEOUT_MS)
            try:
                created = await asyncio.to_thread(admin.create_topics, {"kp": {"num_partitions": 2},
                                                                        "kp-by-id": {"num_partitions": 1}})
                assert [(t["name"], t["error_code"]) for t in created["topics"]] == [("kp", 0), ("kp-by-id", 0)]
                try:
                    await asyncio.to_thread(admin.create_topics, {"kp": {"num_partitions": 2}})
                    raise AssertionError("created twice")
                except kafka.errors.TopicAlreadyExistsError:
                    pass
                [described] = await asyncio.to_thread(admin.describe_topics, ["kp"])
                assert (described["name"], described["error_code"], len(described["partitions"])) == ("kp", 0, 2)
                assert described["topic_id"] == str(node.storage.engine.topics["kp"].topic_id)

                cluster = await asyncio.to_thread(admin.describe_cluster)
                assert (cluster["cluster_id"], cluster["controller_id"]) == ("memory-cluster", node.node_id)
                assert [(b["broker_id"], b["host"], b["port"], b["is_fenced"]) for b in cluster["brokers"]] == [
                    (node.node_id, node.host, node.port, False)]
                # DescribeCluster (not the Metadata fallback): Kafka's answer without an authorizer
                assert set(cluster["authorized_operations"]) == {
                    "CREATE", "ALTER", "DESCRIBE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS", "ALTER_CONFIGS",
                    "IDEMPOTENT_WRITE"}

                pattern = ResourcePattern(ResourceType.TOPIC, "kp")
                acl = ACL("User:alice", "*", ACLOperation.READ, ACLPermissionType.ALLOW, pattern)
                try:
                    await asyncio.to_thread(admin.describe_acls, ACLFilter(
                        "User:alice", "*", ACLOperation.READ, ACLPermissionType.ALLOW, pattern))
                    raise AssertionError("ACLs described without an authorizer")
                except kafka.errors.SecurityDisabledError as exc:
                    assert "No Authorizer is configured on the broker" in str(exc)
                created_acls = await asyncio.to_thread(admin.create_acls, [acl, acl])
                assert created_acls == {"succeeded": [], "failed": [kafka.errors.SecurityDisabledError] * 2}

                by_id = node.storage.engine.topics["kp-by-id"].topic_id
                deleted = await asyncio.to_thread(admin.delete_topics, ["kp", by_id])
                assert sorted((t["name"], t["error_code"]) for t in deleted["topics"]) == [("kp", 0), ("kp-by-id", 0)]
                try:
                    await asyncio.to_thread(admin.delete_topics, [uuid.uuid4()])
                    raise AssertionError("deleted an unknown topic id")
                except kafka.errors.UnknownTopicIdError:
                    pass
            finally:
                await asyncio.to_thread(admin.close)
            assert not {"kp", "kp-by-id"} & set(node.storage.engine.topics)

    run(scenario)


def test_metadata_auto_creates_only_when_the_setting_and_the_request_allow_it():
    async def scenario():
        async with memory_node(auto_create_topics=False) as (node, bootstrap):
            assert await metadata_error(bootstrap, "asked-for") == ErrorCode.unknown_topic_or_partition
            assert await produce_status(bootstrap, "produced-to") == (ErrorCode.unknown_topic_or_partition, -1)
            assert node.storage.engine.topics == {}
        async with memory_node() as (node, bootstrap):
            assert await metadata_error(bootstrap, "asked-for") == ErrorCode.none
            assert await produce_status(bootstrap, "produced-to") == (ErrorCode.none, 0)
            assert set(node.storage.engine.topics) == {"asked-for", "produced-to"}

    run(scenario)
