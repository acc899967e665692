"""Fetch v0-v3, which kio does not ship (its schemas start at v4, Kafka 4's oldest).

The request is v4's without the isolation level; v3 has the request-level max_bytes,
v0-v2 do not. The response has, per partition, the error code, high watermark and
records (no last stable offset, no aborted transactions); v1+ start with the
throttle time. The records are legacy message sets (magic 0 for v0/v1, 1 for v2/v3:
protocol/legacy_records.py converts the stored batches). The handler encodes the
response by hand (protocol/fetch_response.py); these classes serve the request
decoder, the registry's check and tests.
"""

from kio.schema.errors import ErrorCode
from kio.schema.request_header.v1.header import RequestHeader
from kio.schema.response_header.v0.header import ResponseHeader
from kio.schema.types import BrokerId, TopicName
from kio.static.primitive import Records, i32, i32Timedelta, i64

from kop_fast.protocol.extra_schemas._kio_classes import ApiVersion


def classes(module: str, version: int) -> dict[str, type]:
    """The request and response classes of Fetch v0..v3, by their kio names."""
    assert version in (0, 1, 2, 3)
    request = ApiVersion(module, api_key=1, version=version, header=RequestHeader)
    response = ApiVersion(module, api_key=1, version=version, header=ResponseHeader)
    out: dict[str, type] = {}
    out["FetchPartition"] = request.nested(
        "FetchPartition", ("partition", i32, "int32"), ("fetch_offset", i64, "int64"),
        ("partition_max_bytes", i32, "int32"))
    out["FetchTopic"] = request.nested(
        "FetchTopic", ("topic", TopicName, "string"), ("partitions", tuple[out["FetchPartition"], ...]))
    out["FetchRequest"] = request.request(
        "FetchRequest", ("replica_id", BrokerId, "int32", BrokerId(-1)),
        ("max_wait", i32Timedelta, "timedelta_i32"), ("min_bytes", i32, "int32"),
        *([("max_bytes", i32, "int32", i32(0x7FFFFFFF))] if version >= 3 else []),
        ("topics", tuple[out["FetchTopic"], ...]))
    out["PartitionData"] = response.nested(
        "PartitionData", ("partition_index", i32, "int32"), ("error_code", ErrorCode, "error_code"),
        ("high_watermark", i64, "int64"), ("records", Records | None, "records"))
    out["FetchableTopicResponse"] = response.nested(
        "FetchableTopicResponse", ("topic", TopicName, "string"),
        ("partitions", tuple[out["PartitionData"], ...]))
    out["FetchResponse"] = response.response(
        "FetchResponse",
        *([("throttle_time", i32Timedelta, "timedelta_i32")] if version >= 1 else []),
        ("responses", tuple[out["FetchableTopicResponse"], ...]))
    return out
