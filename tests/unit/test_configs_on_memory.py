"""Topic and broker configs end to end on the in-memory storage: real admin clients (aiokafka's
AIOKafkaAdminClient, kafka-python's KafkaAdminClient in a thread) over a real socket to a real
`KafkaNode`, no Pulsar process.

DescribeConfigs, AlterConfigs and IncrementalAlterConfigs as clients see them, and what the
accepted settings do: max.message.bytes refuses larger batches, retention.ms moves the log
start when the retention sweep runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import MessageSizeTooLargeError

from kop_fast.protocol.errors import ErrorCode
from kop_fast.server.retention import sweep
from kop_fast.server.topic_configs import ConfigSource
from tests.unit.memory_node import memory_node, run


@contextlib.asynccontextmanager
async def admin(bootstrap: str):
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def describe(client, kind, name: str, keys=None) -> tuple[int, dict]:
    """(error code, {config name: (value, source)}) of one resource."""
    [response] = await client.describe_configs([ConfigResource(kind, name, dict.fromkeys(keys) if keys else None)])
    [(error, _message, _type, _name, entries)] = response.resources
    return error, {e[0]: (e[1], e[3]) for e in entries}


async def alter(client, name: str, configs: dict) -> list[tuple[int, str | None]]:
    [topics] = await client.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs)])
    return [(error, message) for error, message, _type, _name in topics.resources]


def test_describe_and_alter_topic_configs_with_aiokafka():
    async def scenario():
        async with memory_node() as (node, bootstrap), admin(bootstrap) as client:
            await node.storage.create_topic("kept", 1, {"retention.ms": "3600000"})
            error, configs = await describe(client, ConfigResourceType.TOPIC, "kept")
            assert error == ErrorCode.none
            assert configs["retention.ms"] == ("3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG)
            assert configs["max.message.bytes"] == ("1048588", ConfigSource.DEFAULT_CONFIG)

            assert await alter(client, "kept", {"max.message.bytes": "2000"}) == [(ErrorCode.none, None)]
            _, configs = await describe(client, ConfigResourceType.TOPIC, "kept", ["max.message.bytes", "retention.ms"])
            # AlterConfigs replaces the overrides: retention.ms is back to Kafka's default.
            assert configs == {"max.message.bytes": ("2000", ConfigSource.DYNAMIC_TOPIC_CONFIG),
                               "retention.ms": ("604800000", ConfigSource.DEFAULT_CONFIG)}

            [(code, message)] = await alter(client, "kept", {"cleanup.policy": "compact"})
            assert code == ErrorCode.invalid_config and "compaction" in message
            [(code, _)] = await alter(client, "never-made", {"retention.ms": "1"})
            assert code == ErrorCode.unknown_topic_or_partition
            assert node.storage.topic_configs(node.storage.cached_topic("kept")) == {"max.message.bytes": "2000"}

            error, _ = await describe(client, ConfigResourceType.TOPIC, "never-made")
            assert error == ErrorCode.unknown_topic_or_partition

    run(scenario)


def test_broker_describe_returns_kop_fasts_settings():
    async def scenario():
        async with memory_node(default_num_partitions=3, max_request_size=4 << 20) as (_node, bootstrap), \
                admin(bootstrap) as client:
            error, configs = await describe(client, ConfigResourceType.BROKER, "0")
            assert error == ErrorCode.none
            assert configs["num.partitions"] == ("3", ConfigSource.STATIC_BROKER_CONFIG)
            assert configs["socket.request.max.bytes"] == (str(4 << 20), ConfigSource.STATIC_BROKER_CONFIG)
            assert configs["auto.create.topics.enable"] == ("true", ConfigSource.DEFAULT_CONFIG)
            assert configs["log.retention.hours"] == ("168", ConfigSource.DEFAULT_CONFIG)

    run(scenario)


def test_max_message_bytes_refuses_larger_batches():
    async def scenario():
        async with memory_node() as (node, bootstrap), admin(bootstrap) as client:
            await node.storage.create_topic("small", 1)
            assert await alter(client, "small", {"max.message.bytes": "1000"}) == [(ErrorCode.none, None)]
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
            await producer.start()
            try:
                stored = await producer.send_and_wait("small", b"x" * 100)
                with pytest.raises(MessageSizeTooLargeError):
                    await producer.send_and_wait("small", b"y" * 2000)
            finally:
                await producer.stop()
            partition = node.storage.partition_log(node.storage.cached_topic("small"), 0)
            assert stored.offset == 0 and partition.high_watermark == 1  # nothing of the large batch

    run(scenario)


def test_incremental_set_and_delete_with_kafka_python():
    from kafka.admin import KafkaAdminClient
    from kafka.admin import ConfigResource as KConfigResource
    from kafka.admin._configs import AlterConfigOp

    async def scenario():
        async with memory_node() as (node, bootstrap):
            info = await node.storage.create_topic("tuned", 1, {"retention.ms": "3600000"})

            def session():
                client = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
                try:
                    set_one = client.alter_configs([KConfigResource("TOPIC", "tuned", {
                        "max.message.bytes": "5000", "retention.ms": (AlterConfigOp.DELETE, None)})],
                        incremental=True)
                    refused = client.alter_configs([KConfigResource("TOPIC", "tuned", {
                        "compression.type": "gzip"})], incremental=True)
                    described = client.describe_configs([KConfigResource("TOPIC", "tuned")])
                    return set_one, refused, described
                finally:
                    client.close()

            set_one, refused, described = await asyncio.wait_for(asyncio.to_thread(session), 20)
            assert set_one == {"topic": {"tuned": "OK"}}
            assert "InvalidConfigurationError" in refused["topic"]["tuned"] and "as sent" in refused["topic"]["tuned"]
            assert node.storage.topic_configs(info) == {"max.message.bytes": "5000"}
            # kafka-python's default filter: the modified (overridden) configs only.
            assert {name: c["value"] for name, c in described["topic"]["tuned"].items()} == {
                "max.message.bytes": "5000"}

    run(scenario)


def test_the_retention_sweep_moves_the_log_start():
    async def scenario():
        async with memory_node() as (node, bootstrap):
            info = await node.storage.create_topic("aging", 1, {"retention.ms": "60000"})
            now = int(time.time() * 1000)
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
            await producer.start()
            try:
                for i, age_ms in enumerate((3_600_000, 120_000, 1_000, 0)):
                    await producer.send_and_wait("aging", b"v%d" % i, timestamp_ms=now - age_ms)
            finally:
                await producer.stop()
            partition = node.storage.partition_log(info, 0)
            assert await sweep(node, now_ms=now) == {("aging", 0): 2}
            assert (await partition.bounds())[0] == 2
            # Nothing newer expired yet: a second sweep at the same time leaves it; later ones move on.
            assert await sweep(node, now_ms=now) == {("aging", 0): 2}
            assert await sweep(node, now_ms=now + 3_600_000) == {("aging", 0): 4}

            consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
            await consumer.start()
            try:
                tp = TopicPartition("aging", 0)
                assert await consumer.beginning_offsets([tp]) == {tp: 4}
            finally:
                await consumer.stop()
            # A topic without an override is not swept; -1 means no limit.
            await node.storage.create_topic("forever", 1, {"retention.ms": "-1"})
            assert ("forever", 0) not in await sweep(node, now_ms=now + 10**9)

    run(scenario)


def test_the_background_sweeper_runs_until_stopped():
    from kop_fast import codec
    from kop_fast.server.retention import RetentionSweeper

    async def scenario():
        async with memory_node() as (node, _bootstrap):
            assert node.retention_sweeper is not None  # started with the node
            info = await node.storage.create_topic("old", 1, {"retention.ms": "1000"})
            partition = node.storage.partition_log(info, 0)
            await partition.append_batch(codec.encode_batch([codec.Record(0, 1_000, None, b"v", ())]), 1)
            sweeper = RetentionSweeper(node, interval_s=0.01).start()
            try:
                for _ in range(200):
                    if (await partition.bounds())[0] == 1:
                        break
                    await asyncio.sleep(0.01)
                assert (await partition.bounds())[0] == 1
            finally:
                await sweeper.stop()
        assert node.retention_sweeper is None  # stopped with the node

    run(scenario)
