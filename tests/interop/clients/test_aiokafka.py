"""aiokafka against kop-fast: the interoperability matrix's rows for it.

Defaults first (AIOKafkaProducer, and a group AIOKafkaConsumer with nothing but bootstrap_servers,
group_id and auto_offset_reset="earliest"), then the idempotent producer, batches librdkafka
compressed, and AIOKafkaAdminClient. aiokafka's own compressed batches are read by librdkafka in
test_confluent_kafka.py.

Elsewhere, with their compat marks: test_produce_fetch.py (assign and seek_to_beginning),
test_groups.py (explicit commits, a new member resumes), test_security.py (SASL/PLAIN).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.interop.clients.canonical import BASE_TS, Record, assert_same_records, canonical_records
from tests.interop.clients.test_confluent_kafka import (CODECS, assert_librdkafka_compressed, compressible,
                                                        new_topic, produce_records, stored_batches)
from tests.interop.test_produce_fetch import unique

pytestmark = pytest.mark.interop




def run(coroutine, timeout: float = 60):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


# -- helpers (also used by test_cross_client.py) ------------------------------------------------------

def as_record(msg) -> Record:
    return Record(msg.key, msg.value, tuple(msg.headers), msg.timestamp)


async def get_records(consumer, count: int, timeout: float = 30) -> list:
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        for batch in (await consumer.getmany(timeout_ms=200, max_records=count - len(out))).values():
            out.extend(batch)
    return out


async def send_records(producer, topic: str, records: list[Record], partition: int | None = 0) -> list[int]:
    futures = [await producer.send(topic, key=r.key, value=r.value, headers=list(r.headers), timestamp_ms=r.timestamp,
                                   partition=partition) for r in records]
    return [m.offset for m in await asyncio.gather(*futures)]


def aiokafka_read(bootstrap: str, topic: str, count: int, partition: int = 0) -> list:
    """`count` records of one partition from its beginning (assigned, no group); ConsumerRecords."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    async def read():
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            return await get_records(consumer, count)
        finally:
            await consumer.stop()

    return run(read())


# -- 1. defaults ----------------------------------------------------------------------------------------

@pytest.mark.compat("aiokafka", "default AIOKafkaProducer and group AIOKafkaConsumer (auto-commit): keys, binary "
                    "and null headers, timestamps intact; the commit on stop is where the next member starts")
def test_defaults_produce_and_group_consume_with_auto_commit(server):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition

    topic, group = unique("aio-default"), unique("g-aio-default")
    records = canonical_records(topic)
    more = canonical_records(topic + "-more", 2)

    def consumer():
        return AIOKafkaConsumer(topic, bootstrap_servers=server.bootstrap, group_id=group,
                                auto_offset_reset="earliest")

    async def scenario():
        producer = AIOKafkaProducer(bootstrap_servers=server.bootstrap)  # acks=1, not idempotent
        await producer.start()
        try:
            offsets = await send_records(producer, topic, records, partition=None)  # auto-created, 1 partition
            first = consumer()
            await first.start()
            try:
                got = await get_records(first, len(records))
            finally:
                await first.stop()  # commits the positions, then leaves the group
            assert [m.offset for m in got] == offsets
            assert_same_records([as_record(m) for m in got], records, who="aiokafka default consumer")
            second = consumer()
            await second.start()
            try:
                assert await second.committed(TopicPartition(topic, 0)) == offsets[-1] + 1
                later = await send_records(producer, topic, more)
                got = await get_records(second, len(more))
                assert [m.offset for m in got] == later, "the next member started after the commit"
                assert_same_records([as_record(m) for m in got], more, who="the next member")
            finally:
                await second.stop()
        finally:
            await producer.stop()

    run(scenario())
    assert {pid for _, pid in stored_batches(server.port, topic)} == {-1}


# -- 2. the idempotent producer ----------------------------------------------------------------------

@pytest.mark.compat("aiokafka", "enable_idempotence=True, small batches in flight on three partitions: each record "
                    "once, in order")
def test_idempotent_producer(server):
    from aiokafka import AIOKafkaProducer

    topic = unique("aio-idem")
    new_topic(server.bootstrap, topic, 3)
    values = {p: [b"p%d-%04d" % (p, i) for i in range(300)] for p in range(3)}

    async def produce():
        producer = AIOKafkaProducer(bootstrap_servers=server.bootstrap, enable_idempotence=True, max_batch_size=512,
                                    linger_ms=1)
        await producer.start()
        try:
            futures = [await producer.send(topic, value=values[p][i], partition=p)
                       for i in range(300) for p in range(3)]
            return [(m.partition, m.offset) for m in await asyncio.gather(*futures)]
        finally:
            await producer.stop()

    delivered = run(produce())
    for p in range(3):
        assert [o for pp, o in delivered if pp == p] == list(range(300)), f"partition {p}: consecutive, in order"
    batches = stored_batches(server.port, topic)
    assert len(batches) >= 5 and len({pid for _, pid in batches}) == 1 and batches[0][1] >= 0
    for p in range(3):
        assert [m.value for m in aiokafka_read(server.bootstrap, topic, 300, partition=p)] == values[p]


# -- 3. batches librdkafka compressed ------------------------------------------------------------------

@pytest.mark.compat("aiokafka", "reads batches that librdkafka compressed with gzip, snappy, lz4, zstd")
@pytest.mark.parametrize("codec", CODECS)
def test_reads_batches_compressed_by_librdkafka(server, codec):
    topic = unique(f"aio-reads-{codec}")
    new_topic(server.bootstrap, topic)
    records = canonical_records(topic) + compressible(topic)
    offsets = produce_records(server.bootstrap, topic, records, {"compression.type": codec, "linger.ms": 100})
    assert_librdkafka_compressed(server.port, topic, codec)
    got = aiokafka_read(server.bootstrap, topic, len(records))
    assert [m.offset for m in got] == offsets
    assert_same_records([as_record(m) for m in got], records, who=f"aiokafka reading librdkafka's {codec}")


# -- 4. AIOKafkaAdminClient ----------------------------------------------------------------------------

@pytest.mark.compat("aiokafka", "AIOKafkaAdminClient: create topics and partitions, describe topics, cluster and "
                    "configs, alter configs, list and describe groups, list group offsets, delete records and topics")
def test_admin_client(server):
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic, RecordsToDelete
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
    from aiokafka.structs import OffsetAndMetadata, TopicPartition

    topic, group = unique("aio-admin"), unique("g-aio-admin")

    async def scenario():
        admin = AIOKafkaAdminClient(bootstrap_servers=server.bootstrap)
        await admin.start()
        try:
            created = await admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"retention.ms": "3600000"})])
            assert [(name, code) for name, code, *_ in created.topic_errors] == [(topic, 0)]
            grown = await admin.create_partitions({topic: NewPartitions(2)})
            assert [(name, code) for name, code, *_ in grown.topic_errors] == [(topic, 0)]
            assert topic in await admin.list_topics()
            [described] = await admin.describe_topics([topic])
            assert sorted(p["partition"] for p in described["partitions"]) == [0, 1]
            cluster = await admin.describe_cluster()
            assert [(b["node_id"], b["port"]) for b in cluster["brokers"]] == [(0, server.port)]

            await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                      configs={"retention.ms": "7200000"})])
            [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            [(code, _msg, _type, name, entries)] = response.resources
            assert (code, name) == (0, topic)
            assert {e[0]: e[1] for e in entries}["retention.ms"] == "7200000"

            offsets = produce_records(server.bootstrap, topic, [Record(None, b"r%d" % i, (), BASE_TS + i)
                                                                for i in range(6)])
            deleted = await admin.delete_records({TopicPartition(topic, 0): RecordsToDelete(offsets[2])})
            assert deleted == {TopicPartition(topic, 0): offsets[2]}

            consumer = AIOKafkaConsumer(topic, bootstrap_servers=server.bootstrap, group_id=group,
                                        auto_offset_reset="earliest", enable_auto_commit=False)
            await consumer.start()
            try:
                got = await get_records(consumer, 4)
                assert [(m.partition, m.offset) for m in got] == [(0, o) for o in offsets[2:]]
                await consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(offsets[4], "half")})
                [described] = await admin.describe_consumer_groups([group])
                [(code, group_id, state, protocol_type, protocol, members, *_)] = described.groups
                assert (code, group_id, state, protocol_type, protocol) == (
                    0, group, "Stable", "consumer", "roundrobin")
                assert len(members) == 1
                assert (group, "consumer") in await admin.list_consumer_groups()
                listed = await admin.list_consumer_group_offsets(group)
                assert {tp: (om.offset, om.metadata) for tp, om in listed.items()} == {
                    TopicPartition(topic, 0): (offsets[4], "half")}
            finally:
                await consumer.stop()
            deleted = await admin.delete_topics([topic])
            assert [(name, code) for name, code, *_ in deleted.topic_error_codes] == [(topic, 0)]
            assert topic not in await admin.list_topics()
        finally:
            await admin.close()

    run(scenario())
