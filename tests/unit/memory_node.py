"""A real `KafkaNode` on the in-memory storage for tests with real clients over a real socket,
and one-request helpers (kio requests and responses over their own connection)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import io
import struct

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kio.schema.fetch.v4.request import FetchPartition, FetchRequest, FetchTopic
from kio.schema.produce.v3.request import PartitionProduceData, ProduceRequest, TopicProduceData
from kio.serial import entity_reader, entity_writer

from kop_fast import codec
from kop_fast.config import build_settings
from kop_fast.server.node import KafkaNode
from kop_fast.storage.memory import MemoryStorage

TIME_LIMIT_S = 30


@contextlib.asynccontextmanager
async def memory_node(engine=None, **flags):
    """A listening node on a fresh MemoryStorage (on `engine`, shared with other nodes, when
    given: they form one cluster): yields (node, "host:port"); always stopped."""
    settings = build_settings({"listen": "127.0.0.1:0", "group_initial_rebalance_delay_ms": 0,
                               "group_min_session_timeout_ms": 100, **flags}, environ={})
    storage = MemoryStorage(engine)
    await storage.start()
    node = KafkaNode(settings, storage, "memory-cluster")
    [(host, port)] = await node.start()
    try:
        yield node, f"{host}:{port}"
    finally:
        await node.stop()
        await storage.close()


def run(scenario, time_limit_s: float = TIME_LIMIT_S):
    asyncio.run(asyncio.wait_for(scenario(), time_limit_s))


async def raw_request(bootstrap: str, api_key: int, version: int, request, response_cls):
    """One request over its own connection, the decoded response. Flexible versions get
    request header v2 and response header v1 (no tagged fields)."""
    host, port = bootstrap.split(":")
    flexible = type(request).__flexible__
    body = io.BytesIO()
    entity_writer(type(request))(body, request)
    header = struct.pack(">hhih", api_key, version, 7, 4) + b"test" + (b"\x00" if flexible else b"")
    payload = header + body.getvalue()
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", await reader.readexactly(4))[0]
        frame = await reader.readexactly(size)
    finally:
        writer.close()
    assert struct.unpack(">i", frame[:4])[0] == 7
    body_offset = 4 + (1 if flexible and api_key != 18 else 0)  # after the correlation id (and no tags)
    response, _ = entity_reader(response_cls)(frame, body_offset)
    return response


def fetch_request(topic: str, offset: int, max_wait_ms: int) -> FetchRequest:
    return FetchRequest(
        replica_id=-1, max_wait=datetime.timedelta(milliseconds=max_wait_ms), min_bytes=1, max_bytes=1 << 20,
        isolation_level=0, topics=(FetchTopic(topic=topic, partitions=(
            FetchPartition(partition=0, fetch_offset=offset, partition_max_bytes=1 << 20),)),))


def produce_request(topic: str, records: bytes, partition: int = 0) -> ProduceRequest:
    return ProduceRequest(transactional_id=None, acks=-1, timeout=datetime.timedelta(seconds=5), topic_data=(
        TopicProduceData(name=topic, partition_data=(PartitionProduceData(index=partition, records=records),)),))


def batch(*values: bytes) -> bytes:
    return codec.encode_batch([codec.Record(i, 1_000 + i, None, v, ()) for i, v in enumerate(values)])


async def produce(bootstrap: str, topic: str, values, **headers):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        return [await producer.send_and_wait(topic, value=v, key=b"k%d" % i,
                                             headers=[(k, h) for k, h in headers.items()])
                for i, v in enumerate(values)]
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def started_consumer(bootstrap: str, **config):
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **config)
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def take(consumer: AIOKafkaConsumer, tp, count: int) -> list:
    """The next `count` records of partition `tp` (the test's time limit bounds the wait)."""
    got: list = []
    while len(got) < count:
        got += (await consumer.getmany(tp, timeout_ms=2000)).get(tp, [])
    return got
