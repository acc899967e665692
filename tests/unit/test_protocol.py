import struct

import pytest

from kop_fast.storage.pulsar.naming import InvalidTopicName, TopicNaming, partition_topic, split_partition_topic
from kop_fast.protocol.errors import MalformedRequest
from kop_fast.protocol.headers import parse_request_header, response_header, skip_tagged_fields
from kop_fast.protocol.schemas import decode_request, encode_request, request_schema
from kop_fast.server.registry import HandlerRegistry


def test_request_header_v1_and_v2():
    frame = struct.pack(">hhih", 3, 1, 42, 3) + b"abc" + b"BODY"
    header, pos = parse_request_header(frame, flexible=False)
    assert (header.api_key, header.api_version, header.correlation_id, header.client_id) == (3, 1, 42, "abc")
    assert frame[pos:] == b"BODY"
    # v2: null client id, then one tagged field (tag 5, 2 bytes) to skip
    frame = struct.pack(">hhih", 3, 12, 7, -1) + b"\x01\x05\x02xy" + b"BODY"
    header, pos = parse_request_header(frame, flexible=True)
    assert header.client_id is None and frame[pos:] == b"BODY"


@pytest.mark.parametrize("frame", [
    b"\x00\x03\x00",
    struct.pack(">hhih", 3, 1, 42, 10) + b"abc",
    struct.pack(">hhih", 3, 12, 7, -1) + b"\x01\x05\x09xy",
    struct.pack(">hhih", 3, 12, 7, -1) + b"\xff\xff\xff\xff\xff",
])
def test_malformed_headers(frame):
    with pytest.raises(MalformedRequest):
        parse_request_header(frame, flexible=True)


def test_tagged_fields_and_response_header():
    assert skip_tagged_fields(b"\x00", 0) == 1
    assert response_header(5, False) == b"\x00\x00\x00\x05"
    assert response_header(5, True) == b"\x00\x00\x00\x05\x00"


def test_request_round_trip_through_kio():
    schema = request_schema(3, 12)
    topic = schema.__dataclass_fields__["topics"]
    assert topic is not None
    body = encode_request(schema(topics=None, allow_auto_topic_creation=True,
                                 include_topic_authorized_operations=False))
    frame = b"HEAD" + body
    assert decode_request(3, 12, frame, 4).allow_auto_topic_creation is True
    with pytest.raises(MalformedRequest):
        decode_request(3, 12, frame[:-2], 4)


def test_registry_checks_schemas_and_builds_api_versions():
    registry = HandlerRegistry()
    registry.register(18, 0, 3, lambda ctx, req: None)
    registry.register(3, 0, 12, lambda ctx, req: None)
    assert registry.supported() == [(3, 0, 12), (18, 0, 3)]
    with pytest.raises(Exception):
        registry.register(0, 0, 99, lambda ctx, req: None)  # kio has no Produce v99
    with pytest.raises(ValueError):
        registry.register(18, 0, 3, lambda ctx, req: None)  # twice


def test_every_advertised_version_has_schemas_that_load():
    # Registration checks kio's index only (schemas load on first use, not at start): here each
    # advertised version's request and response really load.
    import kop_fast.server.handlers  # noqa: F401 - registers every handler
    from kop_fast.protocol.schemas import response_schema
    from kop_fast.server.registry import REGISTRY

    for api_key, lo, hi in REGISTRY.supported():
        for version in range(lo, hi + 1):
            assert request_schema(api_key, version).__name__.endswith("Request")
            assert response_schema(api_key, version).__name__.endswith("Response")


def test_topic_naming():
    n = TopicNaming("public", "default")
    assert n.pulsar_topic("orders") == "persistent://public/default/orders"
    assert n.pulsar_topic("tenant1/ns1/t") == "persistent://tenant1/ns1/t"
    assert n.pulsar_topic("persistent://a/b/c") == "persistent://a/b/c"
    assert n.kafka_name("persistent://public/default/orders") == "orders"
    assert n.kafka_name("persistent://a/b/c") == "persistent://a/b/c"
    for bad in ("", "..", "a b", "x" * 250, "a/b"):
        with pytest.raises(InvalidTopicName):
            n.pulsar_topic(bad)
    assert partition_topic("persistent://p/d/t", 3) == "persistent://p/d/t-partition-3"
    assert partition_topic("persistent://p/d/t", 0, partitioned=False) == "persistent://p/d/t"
    assert split_partition_topic("persistent://p/d/t-partition-3") == ("persistent://p/d/t", 3)
    assert split_partition_topic("persistent://p/d/t") == ("persistent://p/d/t", None)


def test_list_offsets_v0_schema_round_trip():
    from kop_fast.protocol.schemas import response_schema
    from kop_fast.protocol.build import make, sibling
    import io

    from kio.serial import entity_writer

    from kop_fast.protocol.errors import ErrorCode

    req_schema = request_schema(2, 0)
    topic = sibling(req_schema, "ListOffsetsTopic")
    part = sibling(req_schema, "ListOffsetsPartition")
    body = encode_request(req_schema(replica_id=-1, topics=(topic(name="t", partitions=(
        part(partition_index=3, timestamp=-2, max_num_offsets=1),)),)))
    assert body == struct.pack(">iih", -1, 1, 1) + b"t" + struct.pack(">iiqi", 1, 3, -2, 1)
    assert decode_request(2, 0, body, 0).topics[0].partitions[0].timestamp == -2
    resp = response_schema(2, 0)
    out = io.BytesIO()
    entity_writer(resp)(out, make(resp, topics=(make(sibling(resp, "ListOffsetsTopicResponse"), name="t",
        partitions=(make(sibling(resp, "ListOffsetsPartitionResponse"), partition_index=3, error_code=ErrorCode.none,
                         old_style_offsets=(42,)),)),)))
    assert out.getvalue() == struct.pack(">ih", 1, 1) + b"t" + struct.pack(">iihiq", 1, 3, 0, 1, 42)
