"""Old API versions that kio does not ship (protocol/extra_schemas), over a real socket."""

import struct

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
