"""Produce v0-v2, which kio does not ship (its schemas start at v3, Kafka 4's oldest).

The request is v3's without the transactional id; the records are legacy message
sets (magic 0, or 1 from v2 on; protocol/legacy_records.py turns them into a v2
batch). The response has, per partition, the base offset; v1 adds the throttle
time at the end, v2 the log append time per partition. The handler encodes the
response by hand (protocol/produce_wire.py); these classes serve the registry's
check, kio's reader in tests and test clients.
"""

from kio.schema.errors import ErrorCode
from kio.schema.request_header.v1.header import RequestHeader
from kio.schema.response_header.v0.header import ResponseHeader
from kio.schema.types import TopicName
from kio.static.primitive import Records, TZAware, i16, i32, i32Timedelta, i64

from kop_fast.protocol.extra_schemas._kio_classes import ApiVersion


def classes(module: str, version: int) -> dict[str, type]:
    """The request and response classes of Produce v0, v1 or v2, by their kio names."""
    assert version in (0, 1, 2)
    request = ApiVersion(module, api_key=0, version=version, header=RequestHeader)
    response = ApiVersion(module, api_key=0, version=version, header=ResponseHeader)
    out: dict[str, type] = {}
    out["PartitionProduceData"] = request.nested(
        "PartitionProduceData", ("index", i32, "int32"), ("records", Records | None, "records"))
    out["TopicProduceData"] = request.nested(
        "TopicProduceData", ("name", TopicName, "string"),
        ("partition_data", tuple[out["PartitionProduceData"], ...]))
    out["ProduceRequest"] = request.request(
        "ProduceRequest", ("acks", i16, "int16"), ("timeout", i32Timedelta, "timedelta_i32"),
        ("topic_data", tuple[out["TopicProduceData"], ...]))
    out["PartitionProduceResponse"] = response.nested(
        "PartitionProduceResponse", ("index", i32, "int32"), ("error_code", ErrorCode, "error_code"),
        ("base_offset", i64, "int64"),
        *([("log_append_time", TZAware | None, "datetime_i64", None)] if version >= 2 else []))
    out["TopicProduceResponse"] = response.nested(
        "TopicProduceResponse", ("name", TopicName, "string"),
        ("partition_responses", tuple[out["PartitionProduceResponse"], ...]))
    out["ProduceResponse"] = response.response(
        "ProduceResponse", ("responses", tuple[out["TopicProduceResponse"], ...]),
        *([("throttle_time", i32Timedelta, "timedelta_i32")] if version >= 1 else []))
    return out
