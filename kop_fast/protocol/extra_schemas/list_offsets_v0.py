"""ListOffsets v0: a replica id, then per partition a timestamp and how many offsets
to return; the answer is a list of offsets per partition ("old style" offsets)."""

from kio.schema.errors import ErrorCode
from kio.schema.request_header.v1.header import RequestHeader
from kio.schema.response_header.v0.header import ResponseHeader
from kio.static.primitive import i32, i64

from kop_fast.protocol.extra_schemas._kio_classes import ApiVersion

_request = ApiVersion(__name__, api_key=2, version=0, header=RequestHeader)
_response = ApiVersion(__name__, api_key=2, version=0, header=ResponseHeader)

ListOffsetsPartition = _request.nested(
    "ListOffsetsPartition",
    ("partition_index", i32, "int32"),
    ("timestamp", i64, "int64"),
    ("max_num_offsets", i32, "int32", i32(1)),
)
ListOffsetsTopic = _request.topic("ListOffsetsTopic", ListOffsetsPartition)
ListOffsetsRequest = _request.request(
    "ListOffsetsRequest",
    ("replica_id", i32, "int32"),
    ("topics", tuple[ListOffsetsTopic, ...]),
)

ListOffsetsPartitionResponse = _response.nested(
    "ListOffsetsPartitionResponse",
    ("partition_index", i32, "int32"),
    ("error_code", ErrorCode, "error_code"),
    ("old_style_offsets", tuple[i64, ...], "int64", ()),
)
ListOffsetsTopicResponse = _response.topic("ListOffsetsTopicResponse", ListOffsetsPartitionResponse)
ListOffsetsResponse = _response.response(
    "ListOffsetsResponse",
    ("topics", tuple[ListOffsetsTopicResponse, ...]),
)
