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
