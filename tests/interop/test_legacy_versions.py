"""Old API versions that kio does not ship (protocol/extra_schemas), over a real socket."""

import struct
import time

import pytest

from tests.support import kafka_request

pytestmark = pytest.mark.interop


def test_list_offsets_v0_latest_and_earliest(kop_server):
    from confluent_kafka import Consumer, Producer, TopicPartition

    producer = Producer({"bootstrap.servers": kop_server.bootstrap})
    for i in range(5):
        producer.produce("legacy-lo", value=b"v%d" % i)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": kop_server.bootstrap, "group.id": "legacy"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition("legacy-lo", 0), timeout=20)
    finally:
        consumer.close()
    for timestamp, expected in ((-1, high), (-2, low)):
        body = struct.pack(">iih", -1, 1, 9) + b"legacy-lo" + struct.pack(">iiqi", 1, 0, timestamp, 1)
        frame = kafka_request(kop_server.port, 2, 0, body, correlation_id=5)
        corr, topics, name_len = struct.unpack_from(">iih", frame, 0)
        assert (corr, topics, frame[10:10 + name_len]) == (5, 1, b"legacy-lo")
        partitions, index, error, count, offset = struct.unpack_from(">iihiq", frame, 10 + name_len)
        assert (partitions, index, error, count, offset) == (1, 0, 0, 1, expected)


def _commit_and_fetch(port, commit_version, fetch_version, group, topic, offset):
    from kio.serial import entity_reader

    from kop_fast.protocol.build import make, sibling
    from kop_fast.protocol.schemas import encode_request, request_schema, response_schema

    commit = request_schema(8, commit_version)
    topic_cls = sibling(commit, "OffsetCommitRequestTopic")
    part_cls = sibling(commit, "OffsetCommitRequestPartition")
    body = encode_request(make(commit, group_id=group, generation_id_or_member_epoch=-1, member_id="",
                               topics=(topic_cls(name=topic, partitions=(make(
                                   part_cls, partition_index=0, committed_offset=offset, commit_timestamp=-1,
                                   committed_metadata="m%d" % commit_version),)),)))
    frame = kafka_request(port, 8, commit_version, body, correlation_id=21)
    response, _ = entity_reader(response_schema(8, commit_version))(frame, 4)
    assert response.topics[0].partitions[0].error_code == 0

    fetch = request_schema(9, fetch_version)
    body = encode_request(make(fetch, group_id=group, topics=(
        sibling(fetch, "OffsetFetchRequestTopic")(name=topic, partition_indexes=(0,)),)))
    frame = kafka_request(port, 9, fetch_version, body, correlation_id=22)
    response, _ = entity_reader(response_schema(9, fetch_version))(frame, 4)
    partition = response.topics[0].partitions[0]
    return partition.error_code, partition.committed_offset, partition.metadata


@pytest.mark.parametrize("commit_version,fetch_version", [(0, 0), (1, 0), (1, 1)])
def test_offset_commit_v0_v1_and_fetch_v0(kop_server, commit_version, fetch_version):
    from confluent_kafka.admin import AdminClient

    topic = "legacy-commit"
    AdminClient({"bootstrap.servers": kop_server.bootstrap}).list_topics(topic=topic, timeout=20)
    offset = 1000 + commit_version
    result = _commit_and_fetch(kop_server.port, commit_version, fetch_version,
                               f"legacy-group-{commit_version}{fetch_version}", topic, offset)
    assert result == (0, offset, "m%d" % commit_version)


# --- Produce v0-v2 and Fetch v0-v3 with kafka-python forced to an old broker version -----------
# kafka-python picks its request versions from `api_version`: (0, 10, 1) -> Produce v2 / Fetch v3
# (message format magic 1), (0, 10, 0) -> Produce v2 / Fetch v2, (0, 9) -> Produce v1 / Fetch v1 and
# (0, 8, 2) -> Produce v0 / Fetch v0 (magic 0).

OLD_KAFKA_PYTHON = [((0, 10, 1), 1), ((0, 10, 0), 1), ((0, 9), 0), ((0, 8, 2), 0)]


def _kafka_python_produce(bootstrap, api_version, topic, count, compression=None, **extra):
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, api_version=api_version, compression_type=compression,
                             **extra)
    try:
        futures = [producer.send(topic, key=b"k%d" % i, value=b"v%d" % i, partition=0,
                                 timestamp_ms=1_600_000_000_000 + i) for i in range(count)]
        producer.flush(30)
        return [f.get(timeout=30) for f in futures]
    finally:
        producer.close(timeout=10)


def _kafka_python_consume(bootstrap, api_version, topic, count, offset=0):
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, api_version=api_version, group_id=None,
                             enable_auto_commit=False, consumer_timeout_ms=20_000)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        got = []
        for message in consumer:
            got.append(message)
            if len(got) == count:
                break
        return got
    finally:
        consumer.close()


@pytest.mark.parametrize("api_version,magic", OLD_KAFKA_PYTHON, ids=lambda v: ".".join(map(str, v))
                         if isinstance(v, tuple) else str(v))
@pytest.mark.parametrize("compression", [None, "gzip", "lz4"])
def test_kafka_python_old_versions_produce_and_consume(kop_server, api_version, magic, compression):
    if compression == "lz4" and api_version < (0, 10):
        pytest.skip("kafka-python needs xxhash to write magic 0 lz4 (KAFKA-3160 framing)")
    topic = "legacy-kp-%s-%s" % ("".join(map(str, api_version)), compression or "none")
    sent = _kafka_python_produce(kop_server.bootstrap, api_version, topic, 5, compression)
    assert [m.offset for m in sent] == [0, 1, 2, 3, 4]
    got = _kafka_python_consume(kop_server.bootstrap, api_version, topic, 5)
    assert [(m.offset, m.key, m.value) for m in got] == [(i, b"k%d" % i, b"v%d" % i) for i in range(5)]
    if magic:
        assert [m.timestamp for m in got] == [1_600_000_000_000 + i for i in range(5)]
    else:  # magic 0 carries no timestamps
        assert {m.timestamp for m in got} in ({None}, {-1})
    # from inside a stored batch on (a compressed one is one stored batch)
    assert [m.offset for m in _kafka_python_consume(kop_server.bootstrap, api_version, topic, 2, offset=3)] == [3, 4]
    # a modern client reads what the old one wrote: keys, values, and the timestamps kop-fast chose
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": kop_server.bootstrap, "group.id": "legacy-reader",
                         "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        modern = []
        while len(modern) < 5:
            message = consumer.poll(20)
            assert message is not None and message.error() is None
            modern.append(message)
    finally:
        consumer.close()
    assert [(m.offset(), m.key(), m.value(), m.headers()) for m in modern] == [
        (i, b"k%d" % i, b"v%d" % i, None) for i in range(5)]
    now = time.time() * 1000
    for i, m in enumerate(modern):
        timestamp = m.timestamp()[1]
        assert timestamp == 1_600_000_000_000 + i if magic else now - 120_000 < timestamp <= now


@pytest.mark.parametrize("api_version,magic", OLD_KAFKA_PYTHON, ids=lambda v: ".".join(map(str, v))
                         if isinstance(v, tuple) else str(v))
def test_records_of_a_modern_producer_read_with_old_fetch_versions(kop_server, api_version, magic):
    from confluent_kafka import Producer

    topic = "legacy-modern-%s" % "".join(map(str, api_version))
    producer = Producer({"bootstrap.servers": kop_server.bootstrap, "compression.type": "zstd",
                         "linger.ms": 50})
    for i in range(6):
        producer.produce(topic, key=b"k%d" % i, value=b"v%d" % i, partition=0, timestamp=1_650_000_000_000 + i,
                         headers=[("dropped", b"h")])
    assert producer.flush(30) == 0
    got = _kafka_python_consume(kop_server.bootstrap, api_version, topic, 6)
    assert [(m.offset, m.key, m.value) for m in got] == [(i, b"k%d" % i, b"v%d" % i) for i in range(6)]
    if magic:
        assert [m.timestamp for m in got] == [1_650_000_000_000 + i for i in range(6)]
    assert [m.offset for m in _kafka_python_consume(kop_server.bootstrap, api_version, topic, 3, offset=3)] == [3, 4, 5]


def test_entry_format_pulsar_legacy_produce_and_fetch(tmp_path):
    """Also proves, from the server's request counters, which versions kafka-python used."""
    from kop_fast.embedded import free_port
    from tests.support import KopServer
    from tests.unit.test_metrics import http_get, samples

    port = free_port()
    server = KopServer(tmp_path / "data", "--entry-format", "pulsar", "--metrics-listen", f"127.0.0.1:{port}").start()
    try:
        for api_version, magic in ((0, 10, 1), 1), ((0, 8, 2), 0):
            topic = "legacy-pulsar-format-%d" % magic
            sent = _kafka_python_produce(server.bootstrap, api_version, topic, 4, "gzip" if magic else None)
            assert [m.offset for m in sent] == [0, 1, 2, 3]
            got = _kafka_python_consume(server.bootstrap, api_version, topic, 4)
            assert [(m.offset, m.value) for m in got] == [(i, b"v%d" % i) for i in range(4)]
            if magic:
                assert [m.timestamp for m in got] == [1_600_000_000_000 + i for i in range(4)]
            assert [m.offset for m in _kafka_python_consume(server.bootstrap, api_version, topic, 1, offset=2)] == [2]
        status, body = http_get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        requests = {(dict(labels)["api"], dict(labels)["version"]): value
                    for (name, labels), value in samples(body.decode()).items() if name == "kop_fast_requests_total"}
        for api, version in (("produce", "0"), ("produce", "2"), ("fetch", "0"), ("fetch", "3")):
            assert requests.get((api, version), 0) > 0, (api, version, requests)
    finally:
        server.stop()
