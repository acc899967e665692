"""Produce v0-v2 and Fetch v0-v3 (legacy message sets) on the in-memory storage, over a real socket.

Run with the compiled codec and with KOP_FAST_NO_EXTENSIONS=1 (the pure twin): the
conversions go through whichever the process uses.
"""

from __future__ import annotations

import asyncio
import datetime
import struct
import time

import cramjam
import pytest
from aiokafka import TopicPartition
from kio.schema.api_versions.v0.request import ApiVersionsRequest
from kio.schema.api_versions.v0.response import ApiVersionsResponse

from kop_fast import codec
from kop_fast.protocol.build import sibling
from kop_fast.protocol.errors import ErrorCode
from kop_fast.protocol.schemas import request_schema, response_schema
from tests.unit.memory_node import batch, memory_node, produce, raw_request, run, started_consumer, take
from tests.unit.test_codec_batches import legacy_message
from tests.unit.test_legacy_records import kafka_python_set, old_kafka_lz4

TS = 1_700_000_000_000


def legacy_produce(version: int, topic: str, partitions: dict[int, bytes | None], acks: int = -1):
    schema = request_schema(0, version)
    topic_cls, partition_cls = sibling(schema, "TopicProduceData"), sibling(schema, "PartitionProduceData")
    return schema(acks=acks, timeout=datetime.timedelta(seconds=5), topic_data=(topic_cls(
        name=topic, partition_data=tuple(partition_cls(index=i, records=r) for i, r in partitions.items())),))


async def produce_legacy(bootstrap, version, topic, message_set, partition=0):
    response = await raw_request(bootstrap, 0, version, legacy_produce(version, topic, {partition: message_set}),
                                 response_schema(0, version))
    [part] = response.responses[0].partition_responses
    return part


def legacy_fetch(version: int, topic: str, offset: int, partition_max_bytes: int = 1 << 20, max_wait_ms: int = 100,
                 **request_level):
    schema = request_schema(1, version)
    topic_cls, partition_cls = sibling(schema, "FetchTopic"), sibling(schema, "FetchPartition")
    return schema(replica_id=-1, max_wait=datetime.timedelta(milliseconds=max_wait_ms), min_bytes=1, **request_level,
                  topics=(topic_cls(topic=topic, partitions=(partition_cls(
                      partition=0, fetch_offset=offset, partition_max_bytes=partition_max_bytes),)),))


async def fetch_legacy(bootstrap, version, topic, offset, **kw):
    response = await raw_request(bootstrap, 1, version, legacy_fetch(version, topic, offset, **kw),
                                 response_schema(1, version))
    [part] = response.responses[0].partitions
    return part


def messages(part) -> list[tuple]:
    """(magic, compression, offset, timestamp, key, value) of every message in a fetched set."""
    return [(b.magic, b.compression, r.offset, r.timestamp, r.key, r.value)
            for b in codec.decode_batches(bytes(part.records or b"")) for r in b.records]


async def read_back(bootstrap, topic, count):
    async with started_consumer(bootstrap, auto_offset_reset="earliest") as consumer:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        got = await take(consumer, tp, count)
    return [(m.offset, m.timestamp, m.key, m.value, list(m.headers)) for m in got]


def plain_set(magic: int, count: int, first_value: int = 0) -> bytes:
    return b"".join(legacy_message(i, magic, 0, TS + i, b"k%d" % i, b"v%d" % (first_value + i))
                    for i in range(count))


def compressed_set(magic: int, compression: str, count: int) -> bytes:
    inner_offsets = range(count)
    inner = b"".join(legacy_message(o, magic, 0, TS + o, b"k%d" % o, b"v%d" % o) for o in inner_offsets)
    if compression == "gzip":
        packed, codec_id = bytes(cramjam.gzip.compress(inner)), 1
    elif compression == "snappy":
        packed, codec_id = bytes(cramjam.snappy.compress_raw(inner)), 2
    else:
        packed, codec_id = (old_kafka_lz4(inner) if magic == 0 else bytes(cramjam.lz4.compress(inner))), 3
    return legacy_message(count - 1, magic, codec_id, TS, None, packed)


@pytest.mark.parametrize("version", [0, 1, 2])
@pytest.mark.parametrize("compression", ["none", "gzip", "snappy", "lz4"])
def test_legacy_produce_is_stored_as_one_batch_and_read_back(version, compression):
    magic = 1 if version == 2 else 0

    async def scenario():
        async with memory_node() as (node, bootstrap):
            before = int(time.time() * 1000)
            data = plain_set(magic, 3) if compression == "none" else compressed_set(magic, compression, 3)
            first = await produce_legacy(bootstrap, version, "old", data)
            second = await produce_legacy(bootstrap, version, "old", data)
            after = int(time.time() * 1000)
            assert (first.error_code, first.base_offset, second.error_code, second.base_offset) == (0, 0, 0, 3)
            if version >= 2:
                assert first.log_append_time is None  # -1: the records keep CreateTime
            info = node.storage.cached_topic("old")
            stored = node.storage.partition_log(info, 0)._batches
            assert [(base, count) for base, count, _data in stored] == [(0, 3), (3, 3)]
            [v2] = codec.decode_batches(stored[0][2])
            assert v2.magic == 2 and v2.compression == codec.COMPRESSION_NAMES.index(compression)
            got = await read_back(bootstrap, "old", 6)
            assert [(o, k, v, h) for o, _ts, k, v, h in got] == [
                (o, b"k%d" % (o % 3), b"v%d" % (o % 3), []) for o in range(6)]
            for offset, timestamp, *_ in got:
                if magic:
                    assert timestamp == TS + offset % 3
                else:  # no timestamp in magic 0: the receive time
                    assert before <= timestamp <= after

    run(scenario)


def test_legacy_produce_kafka_python_message_sets():
    async def scenario():
        async with memory_node() as (_node, bootstrap):
            entries = [(i, TS + i, None, b"kp%d" % i) for i in range(4)]
            part = await produce_legacy(bootstrap, 2, "kp", kafka_python_set(1, "gzip", entries))
            assert (part.error_code, part.base_offset) == (0, 0)
            got = await read_back(bootstrap, "kp", 4)
            assert [(o, ts, k, v) for o, ts, k, v, _h in got] == [(i, TS + i, None, b"kp%d" % i) for i in range(4)]

    run(scenario)


@pytest.mark.parametrize("version", [0, 1, 2])
def test_a_corrupt_message_set_fails_its_partition_only(version):
    async def scenario():
        async with memory_node(default_num_partitions=2) as (node, bootstrap):
            good = plain_set(1 if version == 2 else 0, 2)
            corrupt = bytearray(good)
            corrupt[-1] ^= 0xFF
            request = legacy_produce(version, "mixed", {0: bytes(corrupt), 1: good})
            response = await raw_request(bootstrap, 0, version, request, response_schema(0, version))
            parts = {p.index: (p.error_code, p.base_offset) for p in response.responses[0].partition_responses}
            assert parts == {0: (ErrorCode.corrupt_message, -1), 1: (ErrorCode.none, 0)}
            info = node.storage.cached_topic("mixed")
            assert await node.storage.partition_log(info, 0).bounds() == (0, 0)
            for bad in (b"", b"\x00" * 40, batch(b"a v2 batch")):
                part = await produce_legacy(bootstrap, version, "mixed", bad)
                assert (part.error_code, part.base_offset) == (ErrorCode.corrupt_message, -1)
            # the connection survived every one of them
            assert (await produce_legacy(bootstrap, version, "mixed", good)).error_code == ErrorCode.none

    run(scenario)


def test_legacy_produce_acks_0_gets_no_answer_but_is_stored():
    async def scenario():
        async with memory_node() as (node, bootstrap):
            import io

            from kio.serial import entity_writer

            body = io.BytesIO()
            request = legacy_produce(0, "quiet", {0: plain_set(0, 2)}, acks=0)
            entity_writer(type(request))(body, request)
            payload = struct.pack(">hhih", 0, 0, 9, 4) + b"test" + body.getvalue()
            host, port = bootstrap.split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                writer.write(struct.pack(">i", len(payload)) + payload)
                await writer.drain()
                for _ in range(100):
                    info = node.storage.cached_topic("quiet")
                    if info is not None and (await node.storage.partition_log(info, 0).bounds())[1] == 2:
                        break
                    await asyncio.sleep(0.02)
                else:
                    raise AssertionError("acks=0 records were not stored")
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(reader.read(1), 0.3)
            finally:
                writer.close()

    run(scenario)


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_legacy_fetch_down_converts_records_of_modern_producers(version):
    magic = 0 if version < 2 else 1

    async def scenario():
        async with memory_node() as (_node, bootstrap):
            sent = await produce(bootstrap, "modern", [b"v%d" % i for i in range(3)], trace=b"dropped")
            timestamps = [m.timestamp for m in sent]
            part = await fetch_legacy(bootstrap, version, "modern", 0)
            assert (part.error_code, part.high_watermark) == (ErrorCode.none, 3)
            assert messages(part) == [(magic, 0, i, timestamps[i] if magic else -1, b"k%d" % i, b"v%d" % i)
                                      for i in range(3)]

    run(scenario)


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_a_fetch_inside_a_stored_batch_starts_at_the_requested_offset(version):
    magic = 0 if version < 2 else 1

    async def scenario():
        async with memory_node() as (_node, bootstrap):
            await produce_legacy(bootstrap, 2, "inside", compressed_set(1, "gzip", 5))  # one batch: 0..4
            part = await fetch_legacy(bootstrap, version, "inside", 2)
            assert [(m[0], m[1], m[2], m[4], m[5]) for m in messages(part)] == [
                (magic, 0, o, b"k%d" % o, b"v%d" % o) for o in (2, 3, 4)]
            if magic:
                assert [m[3] for m in messages(part)] == [TS + 2, TS + 3, TS + 4]
            # the partition's max bytes: whole messages, at least one
            one = await fetch_legacy(bootstrap, version, "inside", 1, partition_max_bytes=10)
            assert [m[2] for m in messages(one)] == [1]
            beyond = await fetch_legacy(bootstrap, version, "inside", 6)
            assert (beyond.error_code, beyond.high_watermark) == (ErrorCode.offset_out_of_range, 5)
            at_end = await fetch_legacy(bootstrap, version, "inside", 5)
            assert (at_end.error_code, messages(at_end)) == (ErrorCode.none, [])

    run(scenario)


def test_fetch_v3_request_max_bytes_bounds_the_converted_response():
    async def scenario():
        async with memory_node() as (_node, bootstrap):
            await produce_legacy(bootstrap, 2, "budget", plain_set(1, 5))
            whole = await fetch_legacy(bootstrap, 3, "budget", 0)
            assert [m[2] for m in messages(whole)] == [0, 1, 2, 3, 4]
            message_size = len(bytes(whole.records)) // 5
            part = await fetch_legacy(bootstrap, 3, "budget", 0, max_bytes=2 * message_size)
            assert [m[2] for m in messages(part)] == [0, 1]

    run(scenario)


def test_a_legacy_long_poll_is_answered_by_the_next_produce():
    async def scenario():
        async with memory_node() as (_node, bootstrap):
            await produce_legacy(bootstrap, 0, "tail", plain_set(0, 1))
            poll = asyncio.ensure_future(fetch_legacy(bootstrap, 0, "tail", 1, max_wait_ms=20_000))
            await asyncio.sleep(0.2)
            assert not poll.done()
            await produce_legacy(bootstrap, 0, "tail", plain_set(0, 1, first_value=7))
            part = await asyncio.wait_for(poll, 10)
            assert [(m[2], m[5]) for m in messages(part)] == [(1, b"v7")]

    run(scenario)


def test_api_versions_advertises_the_legacy_versions():
    async def scenario():
        async with memory_node() as (_node, bootstrap):
            response = await raw_request(bootstrap, 18, 0, ApiVersionsRequest(), ApiVersionsResponse)
            ranges = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
            assert ranges[0] == (0, 9) and ranges[1] == (0, 12)

    run(scenario)
