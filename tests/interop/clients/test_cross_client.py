"""Across the Python clients: what one writes every other reads, and a group moves between libraries.

Each writer uses its default producer; each reader assigns the partition and reads it from the
beginning. The canonical records (keys text, binary and null; binary and null header values, a
repeated header name; an empty value; create times) must come back exactly, in order, at the
offsets the writer was told. kafka-python cannot write a null header value (test_kafka_python.py),
so what it writes has b"" there.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.interop.clients.canonical import Record, assert_same_records, canonical_records
from tests.interop.clients.test_aiokafka import aiokafka_read
from tests.interop.clients.test_aiokafka import as_record as aiokafka_record
from tests.interop.clients.test_aiokafka import get_records
from tests.interop.clients.test_confluent_kafka import (aiokafka_write, group_conf, new_topic, poll_messages,
                                                        produce_records)
from tests.interop.clients.test_confluent_kafka import as_record as confluent_record
from tests.interop.clients.test_kafka_python import as_record as kafka_python_record
from tests.interop.clients.test_kafka_python import (kafka_python_read, kafka_python_write, poll_records,
                                                     without_null_headers)
from tests.interop.test_produce_fetch import unique

pytestmark = pytest.mark.interop




def confluent_read(bootstrap: str, topic: str, count: int, partition: int = 0) -> list:
    consumer = Consumer(group_conf(bootstrap, unique("g"), **{"enable.auto.commit": False}))
    consumer.assign([TopicPartition(topic, partition, 0)])
    try:
        return poll_messages(consumer, count)
    finally:
        consumer.close()


def every_reader_reads(bootstrap: str, topic: str, records: list[Record], offsets: list[int], writer: str) -> None:
    readers = {
        "confluent-kafka": (confluent_read, confluent_record, lambda m: m.offset()),
        "kafka-python": (kafka_python_read, kafka_python_record, lambda m: m.offset),
        "aiokafka": (aiokafka_read, aiokafka_record, lambda m: m.offset),
    }
    for reader, (read, as_record, offset_of) in readers.items():
        got = read(bootstrap, topic, len(records))
        who = f"{reader} reading what {writer} wrote"
        assert [offset_of(m) for m in got] == offsets, who
        assert_same_records([as_record(m) for m in got], records, who=who)


# -- 1. what each writes, every other reads -----------------------------------------------------------

@pytest.mark.compat("cross-client", "confluent-kafka writes; confluent-kafka, kafka-python and aiokafka read keys, "
                    "binary and null headers, timestamps intact")
def test_confluent_kafka_writes_every_python_client_reads(server):
    topic = unique("x-confluent")
    records = canonical_records(topic)
    offsets = produce_records(server.bootstrap, topic, records, partition=None)
    every_reader_reads(server.bootstrap, topic, records, offsets, "confluent-kafka")


@pytest.mark.compat("cross-client", "kafka-python writes; confluent-kafka, kafka-python and aiokafka read keys, "
                    "binary headers, timestamps intact")
def test_kafka_python_writes_every_python_client_reads(server):
    topic = unique("x-kafka-python")
    records = without_null_headers(canonical_records(topic))
    offsets = kafka_python_write(server.bootstrap, topic, records)
    every_reader_reads(server.bootstrap, topic, records, offsets, "kafka-python")


@pytest.mark.compat("cross-client", "aiokafka writes; confluent-kafka, kafka-python and aiokafka read keys, "
                    "binary and null headers, timestamps intact")
def test_aiokafka_writes_every_python_client_reads(server):
    topic = unique("x-aiokafka")
    records = canonical_records(topic)
    offsets = aiokafka_write(server.bootstrap, topic, records)
    every_reader_reads(server.bootstrap, topic, records, offsets, "aiokafka")


# -- 2. a group moves from one library to the next -----------------------------------------------------

PER_PARTITION = 12


def first_per_partition(items, count: int) -> dict[int, list]:
    """(partition, offset, value) items -> the first `count` of each partition, in offset order."""
    out: dict[int, list] = {0: [], 1: []}
    for p, o, v in sorted(items, key=lambda x: (x[0], x[1])):
        if len(out[p]) < count:
            out[p].append((o, v))
    return out


@pytest.mark.compat("cross-client", "a consumer group committed by confluent-kafka resumes in kafka-python, whose "
                    "commits resume in aiokafka: each reads exactly from the last commit on")
def test_group_resumes_across_client_libraries(server):
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition as ATopicPartition
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTopicPartition
    from kafka.structs import OffsetAndMetadata

    topic, group = unique("x-group"), unique("g-x-group")
    new_topic(server.bootstrap, topic, 2)
    written = {}
    for p in (0, 1):
        records = [Record(b"k", b"p%d-%02d" % (p, i), (), 0) for i in range(PER_PARTITION)]
        records = [Record(r.key, r.value, r.headers, 1_700_000_000_000 + i) for i, r in enumerate(records)]
        written[p] = list(zip(produce_records(server.bootstrap, topic, records, partition=p),
                              [r.value for r in records]))

    # confluent-kafka reads at least 4 of each partition and commits after the 4th (with metadata).
    consumer = Consumer(group_conf(server.bootstrap, group, **{"enable.auto.commit": False}))
    consumer.subscribe([topic])
    try:
        seen = []
        deadline = time.monotonic() + 30
        while min(sum(1 for p, _, _ in seen if p == q) for q in (0, 1)) < 4:
            assert time.monotonic() < deadline, seen
            seen += [(m.partition(), m.offset(), m.value()) for m in poll_messages(consumer, 1, timeout=1)]
        done = first_per_partition(seen, 4)
        assert done == {p: written[p][:4] for p in (0, 1)}
        consumer.commit(offsets=[TopicPartition(topic, p, done[p][-1][0] + 1, metadata="by confluent-kafka")
                                 for p in (0, 1)], asynchronous=False)
    finally:
        consumer.close()

    # kafka-python resumes there, reads on to the 8th of each and commits.
    consumer = KafkaConsumer(topic, bootstrap_servers=server.bootstrap, group_id=group, enable_auto_commit=False,
                             auto_offset_reset="earliest")
    try:
        for p in (0, 1):
            committed = consumer.committed(KTopicPartition(topic, p), metadata=True)
            # confluent-kafka-python sends its metadata with a NUL at the end (see below).
            assert (committed.offset, committed.metadata.rstrip("\0")) == (written[p][4][0], "by confluent-kafka")
        seen = []
        deadline = time.monotonic() + 30
        while min(sum(1 for p, _, _ in seen if p == q) for q in (0, 1)) < 4:
            assert time.monotonic() < deadline, seen
            seen += [(m.partition, m.offset, m.value) for m in poll_records(consumer, 1, timeout=5)]
        done = first_per_partition(seen, 4)
        assert done == {p: written[p][4:8] for p in (0, 1)}, "kafka-python resumed at confluent-kafka's commits"
        consumer.commit({KTopicPartition(topic, p): OffsetAndMetadata(done[p][-1][0] + 1, "by kafka-python", -1)
                         for p in (0, 1)})
    finally:
        consumer.close(autocommit=False)

    # aiokafka resumes there and reads exactly the rest.
    async def last_stage():
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=server.bootstrap, group_id=group,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        try:
            for p in (0, 1):
                assert await consumer.committed(ATopicPartition(topic, p)) == written[p][8][0]
            got = await get_records(consumer, 8)
            got += await get_records(consumer, 1, timeout=0.5)  # nothing more
            return [(m.partition, m.offset, m.value) for m in got]
        finally:
            await consumer.stop()

    got = asyncio.run(asyncio.wait_for(last_stage(), 60))
    assert len(got) == 8, got
    assert first_per_partition(got, PER_PARTITION) == {p: written[p][8:] for p in (0, 1)}, \
        "aiokafka resumed at kafka-python's commits"


# -- 3. commit metadata ----------------------------------------------------------------------------------

def raw_committed(port: int, group: str, topic: str, partitions) -> dict[int, tuple[int, str | None]]:
    """partition -> (offset, metadata) as an OffsetFetch v1 answers: what kop-fast stored, byte for byte."""
    from kio.serial import entity_reader

    from kop_fast.protocol.build import make, sibling
    from kop_fast.protocol.schemas import encode_request, request_schema, response_schema
    from tests.support import kafka_request

    fetch = request_schema(9, 1)
    body = encode_request(make(fetch, group_id=group, topics=(
        sibling(fetch, "OffsetFetchRequestTopic")(name=topic, partition_indexes=tuple(partitions)),)))
    response, _ = entity_reader(response_schema(9, 1))(kafka_request(port, 9, 1, body), 4)
    return {p.partition_index: (p.committed_offset, p.metadata) for p in response.topics[0].partitions}


@pytest.mark.compat("cross-client", "commit metadata written by one library, read by the others",
                    result="kop-fast keeps it byte for byte; confluent-kafka-python sends a NUL after its metadata "
                           "(its strlen + 1), so others read 'meta\\x00', and reading others' metadata it may "
                           "return bytes past the end (librdkafka treats metadata as a C string)")
def test_commit_metadata_kept_byte_for_byte(server):
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import OffsetAndMetadata as AOffsetAndMetadata
    from aiokafka.structs import TopicPartition as ATopicPartition
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTopicPartition
    from kafka.structs import OffsetAndMetadata

    topic = unique("x-metadata")
    new_topic(server.bootstrap, topic, 3)
    group = unique("g-x-metadata")
    text = "état: 3/7 ✓"  # not ASCII: a UTF-8 string on the wire

    kafka_python = KafkaConsumer(bootstrap_servers=server.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        kafka_python.commit({KTopicPartition(topic, 0): OffsetAndMetadata(1, "kafka-python " + text, -1)})
    finally:
        kafka_python.close(autocommit=False)

    async def aiokafka_commit():
        consumer = AIOKafkaConsumer(bootstrap_servers=server.bootstrap, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign([ATopicPartition(topic, 1)])  # aiokafka commits only what it is assigned
            await consumer.commit({ATopicPartition(topic, 1): AOffsetAndMetadata(2, "aiokafka " + text)})
        finally:
            await consumer.stop()

    asyncio.run(asyncio.wait_for(aiokafka_commit(), 30))
    confluent = Consumer(group_conf(server.bootstrap, group, **{"enable.auto.commit": False}))
    try:
        confluent.commit(offsets=[TopicPartition(topic, 2, 3, metadata="confluent " + text)], asynchronous=False)
        [mine] = confluent.committed([TopicPartition(topic, 2)], timeout=20)
        assert (mine.offset, mine.metadata) == (3, "confluent " + text), "its own metadata comes back as it was"
    finally:
        confluent.close()

    stored = raw_committed(server.port, group, topic, (0, 1, 2))
    assert stored[0] == (1, "kafka-python " + text)
    assert stored[1] == (2, "aiokafka " + text)
    assert stored[2][0] == 3 and stored[2][1] in ("confluent " + text, "confluent " + text + "\0"), stored[2]
    reader = KafkaConsumer(bootstrap_servers=server.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        assert reader.committed(KTopicPartition(topic, 1), metadata=True).metadata == "aiokafka " + text
    finally:
        reader.close(autocommit=False)


# -- 4. one group, three libraries at once ---------------------------------------------------------------

class Background:
    """A member of another library polling in a thread of its own; `owned` and `read` are its view."""

    def __init__(self, target) -> None:
        self.owned: set[int] = set()
        self.read: list[tuple[int, int, bytes]] = []
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(target,), daemon=True)
        self.thread.start()

    def _run(self, target) -> None:
        try:
            target(self)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            self.error = exc

    def join(self) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the member did not stop"
        assert self.error is None, repr(self.error)


@pytest.mark.compat("cross-client", "one consumer group with a confluent-kafka, a kafka-python and an aiokafka "
                    "member at once: they agree on roundrobin, split three partitions, each record read once")
def test_one_group_with_members_of_three_libraries(server):
    from aiokafka import AIOKafkaConsumer
    from confluent_kafka.admin import AdminClient
    from kafka import KafkaConsumer

    topic, group = unique("x-mixed"), unique("g-x-mixed")
    new_topic(server.bootstrap, topic, 3)
    heartbeat_ms = 500  # 3 s by default: each member learns of a rebalance sooner

    def kafka_python_member(member: Background) -> None:
        consumer = KafkaConsumer(topic, bootstrap_servers=server.bootstrap, group_id=group,
                                 auto_offset_reset="earliest", heartbeat_interval_ms=heartbeat_ms)
        try:
            while not member.stop.is_set():  # long polls: see poll_records in test_kafka_python.py
                for batch in consumer.poll(timeout_ms=1000).values():
                    member.read += [(m.partition, m.offset, m.value) for m in batch]
                member.owned = {tp.partition for tp in consumer.assignment()}
        finally:
            consumer.close()

    def aiokafka_member(member: Background) -> None:
        async def run():
            consumer = AIOKafkaConsumer(topic, bootstrap_servers=server.bootstrap, group_id=group,
                                        auto_offset_reset="earliest", heartbeat_interval_ms=heartbeat_ms)
            await consumer.start()
            try:
                while not member.stop.is_set():
                    for batch in (await consumer.getmany(timeout_ms=100)).values():
                        member.read += [(m.partition, m.offset, m.value) for m in batch]
                    member.owned = {tp.partition for tp in consumer.assignment()}
            finally:
                await consumer.stop()

        asyncio.run(run())

    confluent = Consumer(group_conf(server.bootstrap, group, **{"heartbeat.interval.ms": heartbeat_ms}))
    confluent.subscribe([topic])
    confluent_read: list = []
    others = [Background(kafka_python_member), Background(aiokafka_member)]

    def poll_confluent() -> set[int]:
        for msg in confluent.consume(num_messages=100, timeout=0.1):
            assert msg.error() is None, msg.error()
            confluent_read.append((msg.partition(), msg.offset(), msg.value()))
        return {tp.partition for tp in confluent.assignment()}

    try:
        deadline = time.monotonic() + 45
        split, since = None, 0.0
        while True:  # one partition each, unchanged for two heartbeats: no rebalance under way
            owned = [poll_confluent()] + [m.owned for m in others]
            if all(len(o) == 1 for o in owned) and set().union(*owned) == {0, 1, 2}:
                if owned != split:
                    split, since = owned, time.monotonic()
                elif time.monotonic() - since > 2 * heartbeat_ms / 1000:
                    break
            else:
                split = None
            assert time.monotonic() < deadline, f"no stable split: {owned}; errors {[m.error for m in others]}"
        admin = AdminClient({"bootstrap.servers": server.bootstrap})
        described = admin.describe_consumer_groups([group])[group].result(20)
        assert described.partition_assignor == "roundrobin" and len(described.members) == 3

        values = set()
        for p in range(3):
            records = [Record(None, b"mixed-p%d-%02d" % (p, i), (), 1_700_000_000_000 + i) for i in range(30)]
            produce_records(server.bootstrap, topic, records, partition=p)
            values |= {r.value for r in records}
        deadline = time.monotonic() + 30
        while len(confluent_read) + sum(len(m.read) for m in others) < len(values):
            assert time.monotonic() < deadline, (len(confluent_read), [len(m.read) for m in others])
            poll_confluent()
        reads = [confluent_read] + [m.read for m in others]
        for read, o in zip(reads, owned):
            assert {p for p, _, _ in read} == o, "each read its own partition only"
        everything = [v for read in reads for _, _, v in read]
        assert sorted(everything) == sorted(values), "each record read once"
    finally:
        for m in others:
            m.stop.set()
        confluent.close()
        for m in others:
            m.join()
