"""OffsetCommit v0 and v1 requests, which kio does not ship; their responses have v2's layout.

v0 has a group id and, per partition, an offset and metadata. v1 adds the
generation and member id, and a commit timestamp per partition (v2 replaced it
with one retention time for the request).
"""

from kio.schema.request_header.v1.header import RequestHeader
from kio.schema.types import GroupId
from kio.static.primitive import i32, i64

from kop_fast.protocol.extra_schemas._kio_classes import ApiVersion


def request_classes(module: str, version: int) -> tuple[type, type, type]:
    """(OffsetCommitRequestPartition, OffsetCommitRequestTopic, OffsetCommitRequest) of v0 or v1."""
    assert version in (0, 1)
    v1 = version == 1
    schema = ApiVersion(module, api_key=8, version=version, header=RequestHeader)
    partition = schema.nested(
        "OffsetCommitRequestPartition",
        ("partition_index", i32, "int32"),
        ("committed_offset", i64, "int64"),
        *([("commit_timestamp", i64, "int64")] if v1 else []),
        ("committed_metadata", str | None, "string"),
    )
    topic = schema.topic("OffsetCommitRequestTopic", partition)
    request = schema.request(
        "OffsetCommitRequest",
        ("group_id", GroupId, "string"),
        *([("generation_id_or_member_epoch", i32, "int32"), ("member_id", str, "string")] if v1 else []),
        ("topics", tuple[topic, ...]),
    )
    return partition, topic, request
