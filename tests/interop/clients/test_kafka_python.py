"""kafka-python against kop-fast: the interoperability matrix's rows for it.

Defaults first (KafkaProducer and a group KafkaConsumer with nothing but bootstrap_servers,
group_id and auto_offset_reset="earliest"), then compression (gzip; lz4 through the `lz4`
package, in the test extras), the client's own refusal of null header values, and
KafkaAdminClient. kafka-python 3 produces idempotently by default (enable_idempotence=True).

Elsewhere, with their compat marks: test_produce_fetch.py (assign, seek_to_beginning,
beginning/end offsets), test_groups.py (explicit commits, a new member resumes), test_admin.py
(KafkaAdminClient's topic calls on two proxies, describe ACLs), test_security.py (SASL/PLAIN).
"""

from __future__ import annotations

import time

import pytest

from tests.interop.clients.canonical import BASE_TS, Record, assert_same_records, canonical_records
from tests.interop.clients.test_confluent_kafka import compressible, new_topic, stored_batches, stored_codecs
from tests.interop.test_produce_fetch import unique

pytestmark = pytest.mark.interop




# -- helpers (also used by test_cross_client.py) ------------------------------------------------------

def as_record(msg) -> Record:
    return Record(msg.key, msg.value, tuple(msg.headers), msg.timestamp)


def without_null_headers(records: list[Record]) -> list[Record]:
    """kafka-python refuses a header whose value is null (see below): it writes b"" there instead."""
    return [Record(r.key, r.value, tuple((n, b"" if v is None else v) for n, v in r.headers), r.timestamp)
            for r in records]


def kafka_python_write(bootstrap: str, topic: str, records: list[Record], partition: int = 0, **conf) -> list[int]:
    """KafkaProducer (`conf` on its defaults), one send per record; the offsets."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, **conf)
    try:
        futures = [producer.send(topic, key=r.key, value=r.value, headers=list(r.headers), timestamp_ms=r.timestamp,
                                 partition=partition) for r in records]
        producer.flush(30)
        return [f.get(timeout=30).offset for f in futures]
    finally:
        producer.close(10)


def poll_records(consumer, count: int, timeout: float = 30) -> list:
    """`count` records, or what came within `timeout` seconds.

    Each poll may take up to 2 s (it returns as soon as records are there): kafka-python 3.0.12
    can lose an assignment when a poll times out between its JoinGroup and SyncGroup (the join
    task is left in flight, need_rejoin() turns False, and its result is never applied), which
    a short poll on a slow machine hits when the leader's first join had no metadata yet.
    """
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        wait_ms = int(max(0.0, min(2.0, deadline - time.monotonic())) * 1000)
        for batch in consumer.poll(timeout_ms=wait_ms, max_records=count - len(out)).values():
            out.extend(batch)
    return out


def kafka_python_read(bootstrap: str, topic: str, count: int, partition: int = 0) -> list:
    """`count` records of one partition from its beginning (assigned, no group); ConsumerRecords."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        return poll_records(consumer, count)
    finally:
        consumer.close()


# -- 1. defaults ----------------------------------------------------------------------------------------

@pytest.mark.compat("kafka-python", "default KafkaProducer (idempotent) and group KafkaConsumer (auto-commit): "
                    "keys, headers, timestamps intact; the commit on close is where the next member starts")
def test_defaults_produce_and_group_consume_with_auto_commit(server):
    from kafka import KafkaConsumer, TopicPartition

    topic, group = unique("kp-default"), unique("g-kp-default")
    records = without_null_headers(canonical_records(topic))
    offsets = kafka_python_write(server.bootstrap, topic, records)  # auto-created, 1 partition
    assert offsets == list(range(offsets[0], offsets[0] + len(records)))
    [(_, producer_id)] = set(stored_batches(server.port, topic))
    assert producer_id >= 0, "idempotent by default: the batches carry a producer id"
    consumer = KafkaConsumer(topic, bootstrap_servers=server.bootstrap, group_id=group, auto_offset_reset="earliest")
    try:
        got = poll_records(consumer, len(records))
        assert [m.offset for m in got] == offsets
        assert_same_records([as_record(m) for m in got], records, who="kafka-python default consumer")
    finally:
        consumer.close()  # autocommit=True: commits the positions, then leaves the group
    consumer = KafkaConsumer(topic, bootstrap_servers=server.bootstrap, group_id=group, auto_offset_reset="earliest")
    try:
        assert consumer.committed(TopicPartition(topic, 0)) == offsets[-1] + 1
        more = without_null_headers(canonical_records(topic + "-more", 2))
        later = kafka_python_write(server.bootstrap, topic, more)
        got = poll_records(consumer, 2)
        assert [m.offset for m in got] == later, "the next member started after the commit"
        assert_same_records([as_record(m) for m in got], more, who="the next member")
    finally:
        consumer.close()


# -- 2. compression ----------------------------------------------------------------------------------

@pytest.mark.compat("kafka-python", "compression_type gzip and lz4: stored as sent, read back by kafka-python "
                    "and librdkafka")
@pytest.mark.parametrize("codec", ["gzip", "lz4"])
def test_compressed_producer(server, codec):
    from tests.interop.clients.test_confluent_kafka import as_record as confluent_record
    from tests.interop.clients.test_confluent_kafka import group_conf, poll_messages

    topic = unique(f"kp-{codec}")
    new_topic(server.bootstrap, topic)
    records = without_null_headers(canonical_records(topic)) + compressible(topic)
    offsets = kafka_python_write(server.bootstrap, topic, records, compression_type=codec, linger_ms=100)
    assert stored_codecs(server.port, topic) == {codec}
    got = kafka_python_read(server.bootstrap, topic, len(records))
    assert [m.offset for m in got] == offsets
    assert_same_records([as_record(m) for m in got], records, who=f"kafka-python reading its own {codec}")

    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer(group_conf(server.bootstrap, unique("g"), **{"enable.auto.commit": False}))
    consumer.assign([TopicPartition(topic, 0, offsets[0])])
    try:
        got = poll_messages(consumer, len(records))
    finally:
        consumer.close()
    assert_same_records([confluent_record(m) for m in got], records, who=f"librdkafka reading kafka-python's {codec}")


# -- 3. the client's own limit ------------------------------------------------------------------------

@pytest.mark.compat("kafka-python", "a header with a null value",
                    result="kafka-python refuses to send one (TypeError: All headers items must be (str, bytes) "
                           "tuples); it reads those other clients wrote (test_cross_client.py)")
def test_null_header_value_is_refused_by_the_client(server):
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=server.bootstrap)
    try:
        with pytest.raises(TypeError, match="headers"):
            producer.send(unique("kp-null-header"), value=b"v", headers=[("nul", None)])
    finally:
        producer.close(10)


# -- 4. KafkaAdminClient ---------------------------------------------------------------------------

@pytest.mark.compat("kafka-python", "KafkaAdminClient: create topics and partitions, describe and alter configs, "
                    "list, describe, alter and delete group offsets and groups, delete records, delete topics")
def test_admin_client_partitions_configs_groups_records(server):
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
    from kafka.structs import OffsetAndMetadata

    topic, group = unique("kp-admin"), unique("g-kp-admin")
    admin = KafkaAdminClient(bootstrap_servers=server.bootstrap)
    try:
        admin.create_topics({topic: {"num_partitions": 1}})
        admin.create_partitions({topic: 2})
        [described] = admin.describe_topics([topic])
        assert sorted(p["partition_index"] for p in described["partitions"]) == [0, 1]
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "7200000"})])
        modified = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])["topic"][topic]
        assert {k: v["value"] for k, v in modified.items()} == {"retention.ms": "7200000"}

        offsets = kafka_python_write(server.bootstrap, topic, [Record(None, b"r%d" % i, (), BASE_TS + i)
                                                               for i in range(6)])
        deleted = admin.delete_records({TopicPartition(topic, 0): offsets[2]})
        assert deleted[TopicPartition(topic, 0)]["low_watermark"] == offsets[2]

        tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
        altered = admin.alter_group_offsets(group, {tp0: OffsetAndMetadata(offsets[4], "from admin", None),
                                                    tp1: OffsetAndMetadata(0, "", None)})
        assert all(e.errno == 0 for e in altered.values()), altered
        listed = admin.list_group_offsets(group)[group]
        assert {tp: (om.offset, om.metadata) for tp, om in listed.items()} == {
            tp0: (offsets[4], "from admin"), tp1: (0, "")}

        consumer = KafkaConsumer(topic, bootstrap_servers=server.bootstrap, group_id=group, enable_auto_commit=False,
                                 client_id="kp-admin-member")
        try:
            got = poll_records(consumer, 2)
            assert [(m.partition, m.offset) for m in got] == [(0, offsets[4]), (0, offsets[5])]
            described = admin.describe_groups([group])[group]
            assert described["group_state"] == "Stable"
            [member] = described["members"]
            assert member["client_id"] == "kp-admin-member"
            assert group in [g["group_id"] for g in admin.list_groups()]
        finally:
            consumer.close()
        assert admin.delete_groups([group]) == {group: "OK"}
        assert group not in [g["group_id"] for g in admin.list_groups()]
        admin.delete_topics([topic])
        assert topic not in admin.list_topics()
    finally:
        admin.close()
