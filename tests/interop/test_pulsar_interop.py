"""Kafka clients and pulsar-client on the same (embedded) Pulsar.

Pulsar -> Kafka: messages a Pulsar producer writes are Kafka records (partition
key -> key, properties -> headers, event time -> timestamp, MessageId -> offset).
Kafka -> Pulsar: with `--entry-format pulsar` every Kafka record is one Pulsar
message; with the default `kafka` format a Pulsar message holds a Kafka batch,
which `kop_fast.pulsar_payload.records()` decodes.
"""

from __future__ import annotations

import logging
import threading
import time

import pulsar
import pytest
from confluent_kafka import OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient

from tests.interop.test_produce_fetch import (BASE_TS, as_tuple, assert_same, assert_strictly_increasing,
                                              consume, create_topic, expected_tuples, make_records, produce,
                                              unique)
from tests.support import KopServer

pytestmark = pytest.mark.interop

NAMESPACE = "persistent://public/default"


def packed(message_id) -> int:
    """The Kafka offset of a Pulsar MessageId in the default layout: ledger<<35 | entry<<14 | index."""
    return (message_id.ledger_id() << 35) | (message_id.entry_id() << 14) | max(message_id.batch_index(), 0)


def pulsar_client(url: str) -> pulsar.Client:
    return pulsar.Client(url, operation_timeout_seconds=20, logger=logging.getLogger("test.pulsar-client"))


def read_all(client: pulsar.Client, topic: str, enough, timeout: float = 30) -> list:
    """Read `topic` from the earliest message until enough(messages) or the deadline."""
    reader = client.create_reader(topic, pulsar.MessageId.earliest)
    messages = []
    try:
        deadline = time.monotonic() + timeout
        while not enough(messages) and time.monotonic() < deadline:
            try:
                messages.append(reader.read_next(timeout_millis=500))
            except pulsar.Timeout:
                continue
    finally:
        reader.close()
    return messages


def null_value(msg) -> bool:
    if hasattr(msg, "has_null_value"):
        return msg.has_null_value()
    return msg._message.has_null_value()


@pytest.fixture(scope="module")
def default_client(kop_server):
    client = pulsar_client(kop_server.pulsar_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def packed_server(tmp_path_factory):
    """The tests below that compare Kafka offsets with packed MessageIds run on `--offset-mode
    packed` (tests/interop/test_consecutive_offsets.py covers the same paths with consecutive offsets)."""
    srv = KopServer(tmp_path_factory.mktemp("packed") / "data", "--offset-mode", "packed")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def packed_client(packed_server):
    client = pulsar_client(packed_server.pulsar_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def pulsar_format_server(tmp_path_factory):
    srv = KopServer(tmp_path_factory.mktemp("entry-format-pulsar") / "data", "--entry-format", "pulsar",
                    "--offset-mode", "packed")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def pulsar_format_client(pulsar_format_server):
    client = pulsar_client(pulsar_format_server.pulsar_url)
    try:
        yield client
    finally:
        client.close()


# -- (a) Pulsar producer -> Kafka consumer ------------------------------------------------------------

def _pulsar_produce(client: pulsar.Client, topic: str, n: int) -> list[tuple]:
    """n messages with partition key, properties and event time: first one by one (one entry each),
    then asynchronously so that Pulsar batches them. The expected Kafka records, in order."""
    producer = client.create_producer(topic, batching_enabled=True, batching_max_publish_delay_ms=5)
    sent: list = [None] * n
    lock = threading.Lock()
    try:
        for i in range(n):
            key = f"key-{i}"
            props = {"app": "pulsar", "seq": str(i), "ünï": f"välue-{i}"}
            data = b"pulsar-%d-\xff" % i
            ts = BASE_TS + 1000 * i
            if i < n // 2:
                mid = producer.send(data, properties=props, partition_key=key, event_timestamp=ts)
                sent[i] = (mid, key, props, ts, data)
            else:
                def done(res, mid, i=i, key=key, props=props, ts=ts, data=data):
                    with lock:
                        sent[i] = (mid if res == pulsar.Result.Ok else res, key, props, ts, data)
                producer.send_async(data, done, properties=props, partition_key=key, event_timestamp=ts)
        producer.flush()
    finally:
        producer.close()
    assert all(s is not None for s in sent)
    assert all(hasattr(s[0], "ledger_id") for s in sent), [s[0] for s in sent]  # else a send failed
    return [(packed(mid), key.encode(), data, sorted((k, v.encode()) for k, v in props.items()), ts)
            for mid, key, props, ts, data in sent]


def _kafka_view(msg) -> tuple:
    return (msg.offset(), msg.key(), msg.value(), sorted(msg.headers() or []), msg.timestamp()[1])


def test_pulsar_producer_on_kafka_created_topic_read_by_kafka(packed_server, packed_client):
    topic = unique("from-pulsar")
    create_topic(packed_server.bootstrap, topic)  # a 1-partition Kafka topic: Pulsar's <t>-partition-0
    want = _pulsar_produce(packed_client, f"{NAMESPACE}/{topic}-partition-0", 40)
    messages, errors = consume(packed_server.bootstrap, topic, OFFSET_BEGINNING, len(want))
    assert_same([_kafka_view(m) for m in messages], want, errors)


def test_plain_pulsar_topic_is_a_one_partition_kafka_topic(packed_server, packed_client):
    topic = unique("plain-pulsar")
    # Written by Pulsar before any Kafka client names it: a non-partitioned Pulsar topic.
    want = _pulsar_produce(packed_client, f"{NAMESPACE}/{topic}", 40)
    md = AdminClient({"bootstrap.servers": packed_server.bootstrap}).list_topics(topic=topic, timeout=20)
    assert md.topics[topic].error is None
    assert list(md.topics[topic].partitions) == [0]
    messages, errors = consume(packed_server.bootstrap, topic, OFFSET_BEGINNING, len(want))
    assert_same([_kafka_view(m) for m in messages], want, errors)


# -- (b) --entry-format pulsar: Kafka producer -> Pulsar reader ------------------------------------------

def test_entry_format_pulsar_one_message_per_record(pulsar_format_server, pulsar_format_client):
    topic = unique("to-pulsar")
    create_topic(pulsar_format_server.bootstrap, topic)
    records = []
    for i in range(30):
        headers = [("a-header", b"value-%d" % i), ("text", "ünïcode-%d" % i)] if i % 3 else []
        headers = [(k, v.encode() if isinstance(v, str) else v) for k, v in headers]
        value = None if i == 17 else b"payload-%d" % i
        records.append((b"key-%d" % i, value, headers, BASE_TS + 3 * i))
    offsets = produce(pulsar_format_server.bootstrap, topic, records)
    assert_strictly_increasing(offsets)

    messages = read_all(pulsar_format_client, f"{NAMESPACE}/{topic}-partition-0",
                        lambda got: len(got) >= len(records))
    assert len(messages) == len(records)
    for msg, offset, (key, value, headers, ts) in zip(messages, offsets, records):
        where = f"record with key {key!r}"
        assert msg.partition_key() == key.decode(), where
        props = msg.properties()
        for hk, hv in headers:
            assert props.get(hk) == hv.decode(), (where, props)
        assert msg.event_timestamp() == ts, where
        if value is None:
            assert null_value(msg), where
        else:
            assert not null_value(msg) and msg.data() == value, where
        assert packed(msg.message_id()) == offset, where


def test_entry_format_pulsar_kafka_round_trip(pulsar_format_server):
    """Kafka clients still read back exactly what they wrote (binary headers included) in this format."""
    topic = unique("pulsar-format-rt")
    create_topic(pulsar_format_server.bootstrap, topic)
    records = make_records(500, seed=3)
    offsets = produce(pulsar_format_server.bootstrap, topic, records)
    assert_strictly_increasing(offsets)
    messages, errors = consume(pulsar_format_server.bootstrap, topic, OFFSET_BEGINNING, len(records))
    assert_same([as_tuple(m) for m in messages], expected_tuples(records, offsets), errors)


# -- (c) default entry format kafka: a Pulsar message is a Kafka batch -----------------------------------

def test_entry_format_kafka_payload_decodes_to_the_records(packed_server, packed_client):
    from kop_fast.pulsar_payload import records as payload_records

    topic = unique("kafka-format")
    create_topic(packed_server.bootstrap, topic)
    records = make_records(200, seed=7)
    offsets = produce(packed_server.bootstrap, topic, records)
    want = [(off, ts, k, v, tuple(h)) for off, (k, v, h, ts) in zip(offsets, records)]

    decoded: list = []
    firsts: list = []

    def enough(messages):
        while len(firsts) < len(messages):
            batch = payload_records(messages[len(firsts)])
            firsts.append((messages[len(firsts)].message_id(), batch[0].offset if batch else None))
            decoded.extend(batch)
        return len(decoded) >= len(want)

    messages = read_all(packed_client, f"{NAMESPACE}/{topic}-partition-0", enough)
    assert messages
    assert len(messages) <= len(records)  # batches, not one message per record
    assert_same([tuple(r) for r in decoded], want)
    for mid, first_offset in firsts:
        assert packed(mid) == first_offset
