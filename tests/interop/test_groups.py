"""Consumer groups over real sockets: confluent-kafka, kafka-python, aiokafka, raw kio requests, pulsar-client.

Offsets are packed Pulsar positions (gaps between entries): records are
identified by their values, never by assuming offsets 0, 1, 2, ...
"""

from __future__ import annotations

import asyncio
import io
import logging
import time

import pulsar
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from kop_fast.pulsar_payload import records as pulsar_records
from tests.interop.test_produce_fetch import create_topic, unique
from tests.support import KopServer, kafka_request

pytestmark = pytest.mark.interop

SESSION_MS = 6000
FAST_GROUPS = ("--group-initial-rebalance-delay-ms", "0")


# -- helpers ------------------------------------------------------------------------------------------

def produce_values(bootstrap: str, topic: str, values: list[bytes], *, partition: int | None = None,
                   batch_size: int | None = None) -> dict[bytes, tuple[int, int]]:
    """Produce values (key = value, so they spread over partitions); value -> (partition, offset).

    With batch_size, flush after every batch_size records: each flush is one stored Kafka batch.
    """
    delivered: dict[bytes, tuple[int, int]] = {}

    def report(err, msg):
        assert err is None, err
        delivered[msg.value()] = (msg.partition(), msg.offset())

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    for i, value in enumerate(values):
        kwargs = {"key": value, "value": value, "on_delivery": report}
        if partition is not None:
            kwargs["partition"] = partition
        producer.produce(topic, **kwargs)
        if batch_size and (i + 1) % batch_size == 0:
            assert producer.flush(30) == 0
    assert producer.flush(30) == 0, "producer did not deliver everything within 30 s"
    assert len(delivered) == len(values)
    return delivered


def group_consumer(bootstrap: str, group: str, **extra) -> Consumer:
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                     "enable.auto.commit": False, "session.timeout.ms": SESSION_MS,
                     "heartbeat.interval.ms": 500, **extra})


def assigned(consumer: Consumer) -> set[int]:
    return {tp.partition for tp in consumer.assignment()}


def poll_round(consumers, seen: dict, timeout: float = 0.05) -> None:
    """One consume() call on every consumer; records go to seen[consumer index]."""
    for i, c in enumerate(consumers):
        for msg in c.consume(num_messages=1000, timeout=timeout):
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(msg.error())
                continue
            seen.setdefault(i, []).append(msg)


def wait_for_assignment(consumers, partitions: int, timeout: float) -> list[set[int]]:
    """Poll until every consumer owns something and together they own exactly 0..partitions-1, disjoint."""
    deadline = time.monotonic() + timeout
    seen: dict = {}
    while time.monotonic() < deadline:
        poll_round(consumers, seen)
        owned = [assigned(c) for c in consumers]
        union = set().union(*owned)
        if all(owned) and union == set(range(partitions)) and sum(map(len, owned)) == partitions:
            assert not seen, f"records arrived before anything was produced: {len(seen)}"
            return owned
    raise AssertionError(f"no complete disjoint assignment within {timeout} s: {[assigned(c) for c in consumers]}")


def poll_until(consumer: Consumer, count: int, timeout: float = 30) -> list:
    messages = []
    deadline = time.monotonic() + timeout
    while len(messages) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        messages.append(msg)
    return messages


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = KopServer(tmp_path_factory.mktemp("groups") / "data", *FAST_GROUPS, "--default-num-partitions", "6")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


# -- 1. three confluent consumers share six partitions ---------------------------------------------------

@pytest.mark.compat("confluent-kafka", "eager range group: three members split six partitions; after one leaves the "
                    "other two take over at the commits, nothing lost or read twice")
def test_three_consumers_split_six_partitions_then_two_take_over(server):
    topic = unique("split")
    create_topic(server.bootstrap, topic, 6)
    group = unique("g-split")
    consumers = [group_consumer(server.bootstrap, group) for _ in range(3)]
    try:
        for c in consumers:
            c.subscribe([topic])
        owned = wait_for_assignment(consumers, 6, timeout=30)
        assert sorted(len(o) for o in owned) == [2, 2, 2], owned

        values = [b"r-%04d" % i for i in range(600)]
        placed = produce_values(server.bootstrap, topic, values)
        assert len({p for p, _ in placed.values()}) == 6, "keys should spread over all six partitions"
        seen: dict = {}
        deadline = time.monotonic() + 60
        while sum(len(v) for v in seen.values()) < 600 and time.monotonic() < deadline:
            poll_round(consumers, seen)
        # Each record exactly once, and each consumer only read partitions it owns.
        got = [m.value() for msgs in seen.values() for m in msgs]
        assert sorted(got) == sorted(values), f"{len(got)} records, {len(set(got))} distinct"
        for i, msgs in seen.items():
            assert {m.partition() for m in msgs} <= owned[i]
            for m in msgs:
                assert placed[m.value()] == (m.partition(), m.offset())
        # Commit what was read, so the survivors resume after it.
        for c in consumers:
            c.commit(asynchronous=False)

        leaving = consumers.pop(0)
        left_at = time.monotonic()
        leaving.close()
        owned = wait_for_assignment(consumers, 6, timeout=SESSION_MS / 1000)
        assert time.monotonic() - left_at < SESSION_MS / 1000
        assert sorted(len(o) for o in owned) == [3, 3]

        more = [b"s-%04d" % i for i in range(120)]
        produce_values(server.bootstrap, topic, more)
        seen = {}
        deadline = time.monotonic() + 30
        while sum(len(v) for v in seen.values()) < 120 and time.monotonic() < deadline:
            poll_round(consumers, seen)
        got = [m.value() for msgs in seen.values() for m in msgs]
        assert sorted(got) == sorted(more), "after the takeover: nothing lost, nothing read twice"
    finally:
        for c in consumers:
            c.close()


# -- 2. committed offsets survive kill -9 ------------------------------------------------------------------

@pytest.mark.compat("confluent-kafka", "committed offsets survive kill -9 of kop-fast; the group resumes at them")
def test_committed_offsets_survive_kill9(tmp_path):
    srv = KopServer(tmp_path / "data", *FAST_GROUPS, "--default-num-partitions", "2")
    srv.start()
    try:
        topic = unique("durable")
        create_topic(srv.bootstrap, topic, 2)
        values = [b"d-%03d" % i for i in range(100)]
        placed = produce_values(srv.bootstrap, topic, values, batch_size=7)
        in_order = {p: [v for v, (pp, _o) in sorted(placed.items(), key=lambda kv: kv[1][1]) if pp == p]
                    for p in (0, 1)}
        group = unique("g-durable")
        consumer = group_consumer(srv.bootstrap, group)
        consumer.subscribe([topic])
        read = poll_until(consumer, 40)
        assert len(read) == 40
        last = {}
        for m in read:
            last[m.partition()] = m
        commits = [TopicPartition(topic, p, m.offset() + 1) for p, m in sorted(last.items())]
        result = consumer.commit(offsets=commits, asynchronous=False)
        assert all(tp.error is None for tp in result), result
        consumer.close()
        # Let the "group is Empty" record land too; without it the restarted coordinator
        # waits one session timeout for the departed member (correct, only slower).
        time.sleep(0.5)
        srv.kill9()
        srv.start()

        consumer = group_consumer(srv.bootstrap, group)
        try:
            committed = consumer.committed([TopicPartition(topic, tp.partition) for tp in commits], timeout=30)
            assert [(tp.partition, tp.offset) for tp in committed] == [(tp.partition, tp.offset) for tp in commits]
            consumer.subscribe([topic])
            rest = poll_until(consumer, 60)
            assert sorted(m.value() for m in rest) == sorted(set(values) - {m.value() for m in read}), \
                "resumed exactly after the commits"
            first = {}
            for m in rest:
                first.setdefault(m.partition(), m)
            for p, m in last.items():
                sequence = in_order[p]
                following = sequence.index(m.value()) + 1
                if following < len(sequence):
                    assert first[p].value() == sequence[following]
                    assert first[p].offset() >= commits[[tp.partition for tp in commits].index(p)].offset
        finally:
            consumer.close()
    finally:
        srv.stop()


# -- 3. the Pulsar subscription named like the group follows its commits ----------------------------------

def first_record_on_subscription(pulsar_url: str, topic: str, group: str, want: bytes, timeout: float = 30):
    """Attach (Exclusive) to subscription `group` until its first message holds `want`; that message's records."""
    client = pulsar.Client(pulsar_url, operation_timeout_seconds=3, logger=logging.getLogger("test.pulsar"))
    deadline = time.monotonic() + timeout
    last = None
    try:
        time.sleep(0.2)  # the mirror usually needs a few ms: do not collide with it
        while time.monotonic() < deadline:
            try:
                consumer = client.subscribe(topic, group, consumer_type=pulsar.ConsumerType.Exclusive,
                                            receiver_queue_size=1)
            except pulsar.Timeout:  # the mirror holds it right now
                continue
            try:
                msg = consumer.receive(timeout_millis=1000)
                last = pulsar_records(msg)
                if want in [r.value for r in last]:
                    return last
            except pulsar.Timeout:
                pass
            finally:
                consumer.close()
            time.sleep(1.0)  # leave the subscription free for the mirror's retry
    finally:
        client.close()
    raise AssertionError(f"subscription {group} never started at {want!r}; last first message: "
                         f"{[r.value for r in last] if last else None}")


def test_subscription_mirror_follows_commits(server):
    topic = unique("mirror")
    create_topic(server.bootstrap, topic, 6)
    values = [b"m-%03d" % i for i in range(50)]
    placed = produce_values(server.bootstrap, topic, values, partition=0, batch_size=10)  # 5 batches
    group = unique("g-mirror")
    pulsar_topic = f"persistent://public/default/{topic}-partition-0"

    consumer = group_consumer(server.bootstrap, group)
    consumer.assign([TopicPartition(topic, 0)])
    read = poll_until(consumer, 20)
    assert [m.value() for m in read] == values[:20]
    # After the topic's first entry (no entry before it to acknowledge): the second batch.
    consumer.commit(offsets=[TopicPartition(topic, 0, read[9].offset() + 1)], asynchronous=False)
    batch = first_record_on_subscription(server.pulsar_url, pulsar_topic, group, values[10])
    assert [r.value for r in batch] == values[10:20]
    # At a batch boundary: the first Pulsar message is exactly the third batch.
    consumer.commit(offsets=[TopicPartition(topic, 0, read[-1].offset() + 1)], asynchronous=False)
    batch = first_record_on_subscription(server.pulsar_url, pulsar_topic, group, values[20])
    assert [r.value for r in batch] == values[20:30]
    assert [r.offset for r in batch] == [placed[v][1] for v in values[20:30]]

    # Inside a batch: the first Pulsar message is the batch holding the next record.
    consumer.commit(offsets=[TopicPartition(topic, 0, placed[values[35]][1])], asynchronous=False)
    batch = first_record_on_subscription(server.pulsar_url, pulsar_topic, group, values[35])
    assert [r.value for r in batch] == values[30:40]

    # Backwards (offset reset) is mirrored too.
    consumer.commit(offsets=[TopicPartition(topic, 0, placed[values[10]][1])], asynchronous=False)
    batch = first_record_on_subscription(server.pulsar_url, pulsar_topic, group, values[10])
    assert [r.value for r in batch] == values[10:20]
    consumer.close()


# -- 4. kafka-python and aiokafka groups ---------------------------------------------------------------

@pytest.mark.compat("kafka-python", "group consumer: explicit commit, committed(), a new member resumes after it")
def test_kafka_python_group_commit_close_rejoin(server):
    from kafka import KafkaConsumer
    from kafka.structs import OffsetAndMetadata
    from kafka.structs import TopicPartition as KTopicPartition

    topic = unique("kp")
    create_topic(server.bootstrap, topic, 6)
    values = [b"kp-%02d" % i for i in range(20)]
    produce_values(server.bootstrap, topic, values, partition=0)
    group = unique("g-kp")

    def consumer():
        return KafkaConsumer(topic, bootstrap_servers=server.bootstrap, group_id=group,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             session_timeout_ms=SESSION_MS, heartbeat_interval_ms=500,
                             request_timeout_ms=30000, consumer_timeout_ms=20000)

    first = consumer()
    read = []
    for msg in first:
        read.append(msg)
        if len(read) == 8:
            break
    assert [m.value for m in read] == values[:8]
    tp = KTopicPartition(topic, 0)
    first.commit({tp: OffsetAndMetadata(read[-1].offset + 1, "", -1)})
    assert first.committed(tp) == read[-1].offset + 1
    first.close()

    second = consumer()
    try:
        msg = next(iter(second))
        assert msg.value == values[8]
        assert second.committed(tp) == read[-1].offset + 1
    finally:
        second.close()


@pytest.mark.compat("aiokafka", "group consumer: explicit commit, committed(), a new member resumes after it")
def test_aiokafka_group_commit_close_rejoin(server):
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import OffsetAndMetadata
    from aiokafka.structs import TopicPartition as ATopicPartition

    topic = unique("aio")
    create_topic(server.bootstrap, topic, 6)
    values = [b"aio-%02d" % i for i in range(20)]
    produce_values(server.bootstrap, topic, values, partition=0)
    group = unique("g-aio")
    tp = ATopicPartition(topic, 0)

    def consumer():
        return AIOKafkaConsumer(topic, bootstrap_servers=server.bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                session_timeout_ms=SESSION_MS, heartbeat_interval_ms=500)

    async def scenario():
        first = consumer()
        await first.start()
        try:
            read = []
            while len(read) < 8:
                msg = await asyncio.wait_for(first.getone(), 20)
                read.append(msg)
            assert [m.value for m in read] == values[:8]
            await first.commit({tp: OffsetAndMetadata(read[-1].offset + 1, "")})
            assert await first.committed(tp) == read[-1].offset + 1
        finally:
            await first.stop()
        second = consumer()
        await second.start()
        try:
            msg = await asyncio.wait_for(second.getone(), 20)
            assert msg.value == values[8]
        finally:
            await second.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


# -- 5. the group APIs one by one ----------------------------------------------------------------------

def kio_roundtrip(port: int, api_key: int, version: int, request, response_cls, flexible: bool):
    from kio.serial import entity_reader, entity_writer

    buf = io.BytesIO()
    entity_writer(type(request))(buf, request)
    frame = kafka_request(port, api_key, version, buf.getvalue(), flexible=flexible)
    # Response header: correlation id, then (flexible) an empty tagged-field section.
    response, _ = entity_reader(response_cls)(frame, 5 if flexible else 4)
    return response


def test_find_coordinator_v0_and_batched_v4(server):
    from kio.schema.find_coordinator.v0.request import FindCoordinatorRequest as Request0
    from kio.schema.find_coordinator.v0.response import FindCoordinatorResponse as Response0
    from kio.schema.find_coordinator.v4.request import FindCoordinatorRequest as Request4
    from kio.schema.find_coordinator.v4.response import FindCoordinatorResponse as Response4

    r0 = kio_roundtrip(server.port, 10, 0, Request0(key="some-group"), Response0, flexible=False)
    assert (r0.error_code, r0.node_id, r0.host, r0.port) == (0, 0, "127.0.0.1", server.port)

    keys = ("g-a", "g-b", "g-c", "g-d", "g-e")
    r4 = kio_roundtrip(server.port, 10, 4, Request4(key_type=0, coordinator_keys=keys), Response4, flexible=True)
    assert [c.key for c in r4.coordinators] == list(keys)
    assert all((c.error_code, c.node_id, c.host, c.port) == (0, 0, "127.0.0.1", server.port)
               for c in r4.coordinators)

    txn = kio_roundtrip(server.port, 10, 4, Request4(key_type=1, coordinator_keys=("tx-1", "tx-2")), Response4,
                        flexible=True)
    assert [(c.key, c.error_code, c.node_id) for c in txn.coordinators] == [("tx-1", 15, -1), ("tx-2", 15, -1)]


@pytest.mark.compat("confluent-kafka", "AdminClient describe_consumer_groups (members, assignment) and "
                    "list_consumer_groups (with a state filter)")
def test_describe_and_list_groups(server):
    from confluent_kafka import ConsumerGroupState

    topic = unique("desc")
    create_topic(server.bootstrap, topic, 6)
    group = unique("g-desc")
    consumer = group_consumer(server.bootstrap, group, **{"client.id": "describe-me"})
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    try:
        consumer.subscribe([topic])
        wait_for_assignment([consumer], 6, timeout=30)
        futures = admin.describe_consumer_groups([group, "never-used-group"])
        assert futures["never-used-group"].result(timeout=20).state == ConsumerGroupState.DEAD
        described = futures[group].result(timeout=20)
        assert described.group_id == group
        assert described.state == ConsumerGroupState.STABLE
        assert described.partition_assignor == "range"
        [member] = described.members
        assert member.client_id == "describe-me"
        assert member.host == "/127.0.0.1"
        assert {tp.partition for tp in member.assignment.topic_partitions} == set(range(6))

        listed = admin.list_consumer_groups().result(timeout=20)
        mine = [g for g in listed.valid if g.group_id == group]
        assert len(mine) == 1 and mine[0].state == ConsumerGroupState.STABLE
        assert not listed.errors
        empty_only = admin.list_consumer_groups(states={ConsumerGroupState.EMPTY}).result(timeout=20)
        assert group not in [g.group_id for g in empty_only.valid]
    finally:
        consumer.close()
    listed = admin.list_consumer_groups(states={ConsumerGroupState.EMPTY}).result(timeout=20)
    assert group in [g.group_id for g in listed.valid]


@pytest.mark.compat("confluent-kafka", "AdminClient delete_consumer_groups: NON_EMPTY_GROUP while a member is in it, "
                    "then deleted with its offsets")
def test_delete_groups_only_when_empty(server):
    from confluent_kafka.error import KafkaException as AdminError

    topic = unique("del")
    create_topic(server.bootstrap, topic, 6)
    group = unique("g-del")
    consumer = group_consumer(server.bootstrap, group)
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    consumer.subscribe([topic])
    wait_for_assignment([consumer], 6, timeout=30)
    consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    with pytest.raises(AdminError) as excinfo:
        admin.delete_consumer_groups([group])[group].result(timeout=20)
    assert excinfo.value.args[0].code() == KafkaError.NON_EMPTY_GROUP
    consumer.close()
    admin.delete_consumer_groups([group])[group].result(timeout=20)  # Empty now: deleted
    with pytest.raises(AdminError) as excinfo:
        admin.delete_consumer_groups([group])[group].result(timeout=20)
    assert excinfo.value.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND
    # Its offsets went with it.
    check = group_consumer(server.bootstrap, group)
    try:
        [tp] = check.committed([TopicPartition(topic, 0)], timeout=20)
        assert tp.offset < 0
    finally:
        check.close()


def test_offset_delete(server):
    from kio.schema.offset_delete.v0.request import (OffsetDeleteRequest, OffsetDeleteRequestPartition,
                                                     OffsetDeleteRequestTopic)
    from kio.schema.offset_delete.v0.response import OffsetDeleteResponse

    topic = unique("odel")
    create_topic(server.bootstrap, topic, 6)
    group = unique("g-odel")
    committer = group_consumer(server.bootstrap, group)
    committer.commit(offsets=[TopicPartition(topic, 0, 5), TopicPartition(topic, 1, 7)], asynchronous=False)

    def delete(name, partitions):
        request = OffsetDeleteRequest(group_id=group, topics=(OffsetDeleteRequestTopic(
            name=name, partitions=tuple(OffsetDeleteRequestPartition(partition_index=p) for p in partitions)),))
        return kio_roundtrip(server.port, 47, 0, request, OffsetDeleteResponse, flexible=False)

    response = delete(topic, [0])
    assert response.error_code == 0
    assert [(p.partition_index, p.error_code) for t in response.topics for p in t.partitions] == [(0, 0)]
    committed = committer.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=20)
    assert [tp.offset for tp in committed][1] == 7 and committed[0].offset < 0
    unknown = delete(unique("no-such-topic"), [0])
    assert [p.error_code for t in unknown.topics for p in t.partitions] == [3]  # UNKNOWN_TOPIC_OR_PARTITION

    # A member subscribed to the topic: GROUP_SUBSCRIBED_TO_TOPIC.
    member = group_consumer(server.bootstrap, group)
    try:
        member.subscribe([topic])
        wait_for_assignment([member], 6, timeout=30)
        response = delete(topic, [1])
        assert [p.error_code for t in response.topics for p in t.partitions] == [86]
    finally:
        member.close()
        committer.close()
    unknown_group = OffsetDeleteRequest(group_id=unique("nobody"), topics=())
    response = kio_roundtrip(server.port, 47, 0, unknown_group, OffsetDeleteResponse, flexible=False)
    assert response.error_code == 69  # GROUP_ID_NOT_FOUND
