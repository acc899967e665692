"""Old API versions kio does not ship (kop_fast.protocol.extra_schemas): wire bytes and class shape.

The bytes are written out field by field with struct, so the encoders and
decoders are checked against the layout itself, not against themselves.
"""

import dataclasses
import io
import struct
from typing import ClassVar

import pytest
from kio.schema.errors import ErrorCode
from kio.schema.request_header.v1.header import RequestHeader
from kio.schema.response_header.v0.header import ResponseHeader
from kio.schema.types import GroupId, TopicName
from kio.serial import entity_reader, entity_writer
from kio.static.constants import EntityType
from kio.static.primitive import i16, i32, i64

from kop_fast.protocol.build import make, sibling
from kop_fast.protocol.errors import MalformedRequest
from kop_fast.protocol.extra_schemas import EXTRA_SCHEMAS
from kop_fast.protocol.schemas import decode_request, encode_entity, encode_request, request_schema, response_schema

MISSING = dataclasses.MISSING


def string(text: str | None) -> bytes:
    if text is None:
        return struct.pack(">h", -1)
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def array(*items: bytes) -> bytes:
    return struct.pack(">i", len(items)) + b"".join(items)


def encode(entity) -> bytes:
    out = io.BytesIO()
    encode_entity(entity, out)
    return out.getvalue()


def decode_response(api_key: int, version: int, data: bytes):
    entity, size = entity_reader(response_schema(api_key, version))(data, 0)
    assert size == len(data)
    return entity


# --- ListOffsets v0 ---------------------------------------------------------------------------

LIST_OFFSETS_V0_REQUEST = (
    struct.pack(">i", -1)
    + array(string("orders") + array(struct.pack(">iqi", 0, -1, 1), struct.pack(">iqi", 2, -2, 5)),
            string("t") + array())
)

LIST_OFFSETS_V0_RESPONSE = (
    array(string("orders") + array(struct.pack(">ih", 0, 0) + array(struct.pack(">q", 42)),
                                   struct.pack(">ih", 2, 3) + array(),
                                   struct.pack(">ih", 7, 0) + array(struct.pack(">q", 9), struct.pack(">q", 1))),
          string("t") + array())
)


def _list_offsets_request():
    schema = request_schema(2, 0)
    topic, part = sibling(schema, "ListOffsetsTopic"), sibling(schema, "ListOffsetsPartition")
    return schema(replica_id=-1, topics=(
        topic(name="orders", partitions=(part(partition_index=0, timestamp=-1),
                                         part(partition_index=2, timestamp=-2, max_num_offsets=5))),
        topic(name="t", partitions=()),
    ))


def _list_offsets_response():
    schema = response_schema(2, 0)
    topic, part = sibling(schema, "ListOffsetsTopicResponse"), sibling(schema, "ListOffsetsPartitionResponse")
    return schema(topics=(
        topic(name="orders", partitions=(
            part(partition_index=0, error_code=ErrorCode.none, old_style_offsets=(42,)),
            part(partition_index=2, error_code=ErrorCode.unknown_topic_or_partition),
            part(partition_index=7, error_code=ErrorCode.none, old_style_offsets=(9, 1)),
        )),
        topic(name="t", partitions=()),
    ))


def test_list_offsets_v0_request_bytes():
    assert encode_request(_list_offsets_request()) == LIST_OFFSETS_V0_REQUEST
    decoded = decode_request(2, 0, LIST_OFFSETS_V0_REQUEST, 0)
    assert decoded == _list_offsets_request()
    assert decoded.topics[0].partitions[0].max_num_offsets == 1  # the default
    # at an offset inside a frame, as the server decodes
    assert decode_request(2, 0, b"\x00" * 7 + LIST_OFFSETS_V0_REQUEST, 7) == decoded


def test_list_offsets_v0_response_bytes():
    assert encode(_list_offsets_response()) == LIST_OFFSETS_V0_RESPONSE
    decoded = decode_response(2, 0, LIST_OFFSETS_V0_RESPONSE)
    assert decoded == _list_offsets_response()
    assert decoded.topics[0].partitions[1].old_style_offsets == ()


def test_list_offsets_v0_response_as_the_handler_builds_it():
    schema = response_schema(2, 0)
    topic = make(sibling(schema, "ListOffsetsTopicResponse"), name="t", partitions=(
        make(sibling(schema, "ListOffsetsPartitionResponse"), partition_index=3, error_code=ErrorCode.none,
             timestamp=-1, offset=42, leader_epoch=-1, old_style_offsets=(42,)),))
    entity = make(schema, throttle_time=None, topics=(topic,))
    assert encode(entity) == array(string("t") + array(struct.pack(">ih", 3, 0) + array(struct.pack(">q", 42))))


# --- OffsetCommit v0 / v1 ---------------------------------------------------------------------

OFFSET_COMMIT_V0_REQUEST = (
    string("group-a")
    + array(string("orders") + array(struct.pack(">iq", 0, 100) + string("meta"),
                                     struct.pack(">iq", 3, -1) + string(None)),
            string("t2") + array(struct.pack(">iq", 1, 7) + string("")))
)

OFFSET_COMMIT_V1_REQUEST = (
    string("group-a") + struct.pack(">i", 12) + string("member-1")
    + array(string("orders") + array(struct.pack(">iqq", 0, 100, 1_700_000_000_000) + string("meta"),
                                     struct.pack(">iqq", 3, -1, -1) + string(None)),
            string("t2") + array(struct.pack(">iqq", 1, 7, 5) + string("")))
)

OFFSET_COMMIT_RESPONSE = (
    array(string("orders") + array(struct.pack(">ih", 0, 0), struct.pack(">ih", 3, 3)),
          string("t2") + array(struct.pack(">ih", 1, 22)))  # 22: ILLEGAL_GENERATION
)


def _offset_commit_request(version: int):
    schema = request_schema(8, version)
    topic, part = sibling(schema, "OffsetCommitRequestTopic"), sibling(schema, "OffsetCommitRequestPartition")
    timestamps = (1_700_000_000_000, -1, 5)

    def partition(i, index, offset, metadata):
        return make(part, partition_index=index, committed_offset=offset, commit_timestamp=timestamps[i],
                    committed_metadata=metadata)

    return make(schema, group_id="group-a", generation_id_or_member_epoch=12, member_id="member-1", topics=(
        topic(name="orders", partitions=(partition(0, 0, 100, "meta"), partition(1, 3, -1, None))),
        topic(name="t2", partitions=(partition(2, 1, 7, ""),)),
    ))


@pytest.mark.parametrize("version,data", [(0, OFFSET_COMMIT_V0_REQUEST), (1, OFFSET_COMMIT_V1_REQUEST)])
def test_offset_commit_v0_v1_request_bytes(version, data):
    entity = _offset_commit_request(version)
    assert encode_request(entity) == data
    decoded = decode_request(8, version, data, 0)
    assert decoded == entity and hash(decoded) == hash(entity)
    assert type(decoded.topics[0].partitions[0]) is sibling(request_schema(8, version), "OffsetCommitRequestPartition")
    assert decoded.topics[0].partitions[1].committed_metadata is None
    assert decoded.topics[1].partitions[0].committed_metadata == ""


def test_offset_commit_v1_request_fields():
    decoded = decode_request(8, 1, OFFSET_COMMIT_V1_REQUEST, 0)
    assert (decoded.group_id, decoded.generation_id_or_member_epoch, decoded.member_id) == ("group-a", 12, "member-1")
    assert [p.commit_timestamp for t in decoded.topics for p in t.partitions] == [1_700_000_000_000, -1, 5]
    v0 = decode_request(8, 0, OFFSET_COMMIT_V0_REQUEST, 0)
    assert not hasattr(v0, "member_id") and not hasattr(v0.topics[0].partitions[0], "commit_timestamp")


@pytest.mark.parametrize("version", [0, 1])
def test_offset_commit_v0_v1_response_bytes(version):
    schema = response_schema(8, version)
    topic, part = sibling(schema, "OffsetCommitResponseTopic"), sibling(schema, "OffsetCommitResponsePartition")
    entity = make(schema, throttle_time=None, topics=(
        topic(name="orders", partitions=(part(partition_index=0, error_code=ErrorCode.none),
                                         part(partition_index=3, error_code=ErrorCode.unknown_topic_or_partition))),
        topic(name="t2", partitions=(part(partition_index=1, error_code=ErrorCode.illegal_generation),)),
    ))
    assert encode(entity) == OFFSET_COMMIT_RESPONSE
    assert decode_response(8, version, OFFSET_COMMIT_RESPONSE) == entity


@pytest.mark.parametrize("api_key,version,data", [
    (2, 0, LIST_OFFSETS_V0_REQUEST), (8, 0, OFFSET_COMMIT_V0_REQUEST), (8, 1, OFFSET_COMMIT_V1_REQUEST)])
def test_truncated_requests_are_malformed(api_key, version, data):
    for cut in (1, 5, len(data) // 2, len(data) - 1):
        with pytest.raises(MalformedRequest):
            decode_request(api_key, version, data[:cut], 0)


def test_writer_accepts_only_its_own_version():
    v0 = decode_request(8, 0, OFFSET_COMMIT_V0_REQUEST, 0)
    with pytest.raises(Exception):
        entity_writer(request_schema(8, 1))(io.BytesIO(), v0)


# --- Produce v0-v2, Fetch v0-v3 ----------------------------------------------------------------

def records(data: bytes | None) -> bytes:
    return struct.pack(">i", -1) if data is None else struct.pack(">i", len(data)) + data


PRODUCE_LEGACY_REQUEST = (  # acks, timeout, topics (no transactional id before v3)
    struct.pack(">hi", -1, 5000)
    + array(string("orders") + array(struct.pack(">i", 0) + records(b"MSGSET"), struct.pack(">i", 3) + records(None)))
)


@pytest.mark.parametrize("version", [0, 1, 2])
def test_produce_v0_v2_request_bytes(version):
    decoded = decode_request(0, version, PRODUCE_LEGACY_REQUEST, 0)
    assert (decoded.acks, decoded.timeout.total_seconds()) == (-1, 5)
    [topic] = decoded.topic_data
    assert [(p.index, p.records) for p in topic.partition_data] == [(0, b"MSGSET"), (3, None)]
    assert encode_request(decoded) == PRODUCE_LEGACY_REQUEST


@pytest.mark.parametrize("version", [0, 1, 2])
def test_produce_v0_v2_response_bytes(version):
    from kop_fast.protocol.produce_wire import encode_produce_response

    partition = struct.pack(">ihq", 1, 0, 42) + (struct.pack(">q", -1) if version >= 2 else b"")
    expected = array(string("orders") + array(partition)) + (struct.pack(">i", 0) if version >= 1 else b"")
    assert encode_produce_response(version, [("orders", [(1, 0, 42)])]) == expected
    decoded = decode_response(0, version, expected)
    [p] = decoded.responses[0].partition_responses
    assert (p.index, p.error_code, p.base_offset) == (1, 0, 42)


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_fetch_v0_v3_request_bytes(version):
    data = (struct.pack(">iii", -1, 500, 1) + (struct.pack(">i", 1 << 20) if version >= 3 else b"")
            + array(string("orders") + array(struct.pack(">iqi", 2, 77, 4096))))
    decoded = decode_request(1, version, data, 0)
    assert (decoded.replica_id, decoded.max_wait.total_seconds(), decoded.min_bytes) == (-1, 0.5, 1)
    assert getattr(decoded, "max_bytes", None) == (1 << 20 if version >= 3 else None)
    [topic] = decoded.topics
    assert topic.topic == "orders"
    assert [(p.partition, p.fetch_offset, p.partition_max_bytes) for p in topic.partitions] == [(2, 77, 4096)]
    assert encode_request(decoded) == data
    for cut in (1, 5, len(data) // 2, len(data) - 1):
        with pytest.raises(MalformedRequest):
            decode_request(1, version, data[:cut], 0)


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_fetch_v0_v3_response_bytes(version):
    from kop_fast.protocol.fetch_response import FetchPartitionResult, encode_legacy_fetch_response

    result = FetchPartitionResult(2, 0, 100, 0, [b"MESSAGES"], 8)
    expected = ((struct.pack(">i", 0) if version >= 1 else b"")
                + array(string("orders") + array(struct.pack(">ihq", 2, 0, 100) + records(b"MESSAGES"))))
    assert b"".join(encode_legacy_fetch_response(version, [("orders", [result])])) == expected
    [p] = decode_response(1, version, expected).responses[0].partitions
    assert (p.partition_index, p.error_code, p.high_watermark, p.records) == (2, 0, 100, b"MESSAGES")


# --- class shape: what kio's reader/writer and the handlers see --------------------------------

def _expected_shapes():
    """(api_key, version, request?) -> {class name: (entity type, [(field, type, kafka_type, default)])}"""
    lo_req, lo_resp = request_schema(2, 0), response_schema(2, 0)
    oc0, oc1 = request_schema(8, 0), request_schema(8, 1)

    def nested(schema, name):
        return tuple[sibling(schema, name), ...]

    partition_v0 = [("partition_index", i32, "int32", MISSING), ("committed_offset", i64, "int64", MISSING),
                    ("committed_metadata", str | None, "string", MISSING)]
    return {
        (2, 0, True): {
            "ListOffsetsPartition": (EntityType.nested, [
                ("partition_index", i32, "int32", MISSING), ("timestamp", i64, "int64", MISSING),
                ("max_num_offsets", i32, "int32", i32(1))]),
            "ListOffsetsTopic": (EntityType.nested, [
                ("name", TopicName, "string", MISSING),
                ("partitions", nested(lo_req, "ListOffsetsPartition"), None, MISSING)]),
            "ListOffsetsRequest": (EntityType.request, [
                ("replica_id", i32, "int32", MISSING), ("topics", nested(lo_req, "ListOffsetsTopic"), None, MISSING)]),
        },
        (2, 0, False): {
            "ListOffsetsPartitionResponse": (EntityType.nested, [
                ("partition_index", i32, "int32", MISSING), ("error_code", ErrorCode, "error_code", MISSING),
                ("old_style_offsets", tuple[i64, ...], "int64", ())]),
            "ListOffsetsTopicResponse": (EntityType.nested, [
                ("name", TopicName, "string", MISSING),
                ("partitions", nested(lo_resp, "ListOffsetsPartitionResponse"), None, MISSING)]),
            "ListOffsetsResponse": (EntityType.response, [
                ("topics", nested(lo_resp, "ListOffsetsTopicResponse"), None, MISSING)]),
        },
        (8, 0, True): {
            "OffsetCommitRequestPartition": (EntityType.nested, partition_v0),
            "OffsetCommitRequestTopic": (EntityType.nested, [
                ("name", TopicName, "string", MISSING),
                ("partitions", nested(oc0, "OffsetCommitRequestPartition"), None, MISSING)]),
            "OffsetCommitRequest": (EntityType.request, [
                ("group_id", GroupId, "string", MISSING),
                ("topics", nested(oc0, "OffsetCommitRequestTopic"), None, MISSING)]),
        },
        (8, 1, True): {
            "OffsetCommitRequestPartition": (EntityType.nested, [
                *partition_v0[:2], ("commit_timestamp", i64, "int64", MISSING), partition_v0[2]]),
            "OffsetCommitRequestTopic": (EntityType.nested, [
                ("name", TopicName, "string", MISSING),
                ("partitions", nested(oc1, "OffsetCommitRequestPartition"), None, MISSING)]),
            "OffsetCommitRequest": (EntityType.request, [
                ("group_id", GroupId, "string", MISSING),
                ("generation_id_or_member_epoch", i32, "int32", MISSING), ("member_id", str, "string", MISSING),
                ("topics", nested(oc1, "OffsetCommitRequestTopic"), None, MISSING)]),
        },
    }


CLASSVARS = ["__type__", "__version__", "__flexible__", "__api_key__", "__header_schema__"]


@pytest.mark.parametrize("key", list(_expected_shapes()))
def test_class_shapes(key):
    api_key, version, is_request = key
    top = (request_schema if is_request else response_schema)(api_key, version)
    header = RequestHeader if is_request else ResponseHeader
    for name, (entity_type, expected) in _expected_shapes()[key].items():
        cls = sibling(top, name)
        assert cls.__name__ == cls.__qualname__ == name
        assert cls.__module__ == top.__module__
        assert dataclasses.is_dataclass(cls)
        params = cls.__dataclass_params__
        assert (params.frozen, params.eq, params.init, params.order) == (True, True, True, False)
        # kio's ClassVars: first in the class, in kio's order, and with kio's values
        annotations = list(cls.__annotations__)
        assert annotations[:len(CLASSVARS)] == CLASSVARS
        assert all(str(cls.__annotations__[v]).startswith("typing.ClassVar") for v in CLASSVARS)
        assert (cls.__type__, cls.__version__, cls.__flexible__, cls.__api_key__, cls.__header_schema__) == (
            entity_type, version, False, api_key, header)
        got = [(f.name, f.type, f.metadata.get("kafka_type"), f.default) for f in dataclasses.fields(cls)]
        assert got == expected
        assert annotations[len(CLASSVARS):] == [f[0] for f in expected]
        assert all(f.kw_only and f.default_factory is MISSING for f in dataclasses.fields(cls))
        assert cls.__slots__ == tuple(f[0] for f in expected)


def test_extra_schemas_table():
    assert set(EXTRA_SCHEMAS) == {(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (1, 3),
                                  (2, 0), (8, 0), (8, 1), (9, 0)}
    assert request_schema(8, 0) is not request_schema(8, 1)
    assert response_schema(8, 0) is response_schema(8, 1) is response_schema(8, 2)
    assert response_schema(9, 0) is response_schema(9, 1) and request_schema(9, 0) is request_schema(9, 1)
    for api_key, version in EXTRA_SCHEMAS:
        assert not request_schema(api_key, version).__flexible__


def test_entities_are_frozen():
    decoded = decode_request(8, 1, OFFSET_COMMIT_V1_REQUEST, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.member_id = "x"
    with pytest.raises(TypeError):
        type(decoded)("group-a", 1, "m", ())  # keyword-only, as kio's classes
    assert repr(decoded).startswith("OffsetCommitRequest(group_id='group-a', generation_id_or_member_epoch=12")
