"""Schemas of old API versions that kio does not ship, in kio's dataclass form (see _kio_classes).

kio's schemas start at the oldest versions Kafka 4 supports; some clients still
send older ones (librdkafka uses ListOffsets v0 with old `broker.version.fallback`
settings; old clients commit with OffsetCommit v0/v1). kio's reader and writer
work on these classes as on its own. Where an old version has the same wire
layout as a newer one, the newer kio class serves.
"""

from kio.schema.offset_commit.v2.response import OffsetCommitResponse as _OffsetCommitResponseV2
from kio.schema.offset_fetch.v1.request import OffsetFetchRequest as _OffsetFetchRequestV1
from kio.schema.offset_fetch.v1.response import OffsetFetchResponse as _OffsetFetchResponseV1

from kop_fast.protocol.extra_schemas import (fetch_v0, fetch_v1, fetch_v2, fetch_v3, list_offsets_v0,
                                             offset_commit_v0, offset_commit_v1, produce_v0, produce_v1, produce_v2)

# (api_key, version) -> (request schema, response schema)
EXTRA_SCHEMAS = {
    (0, 0): (produce_v0.ProduceRequest, produce_v0.ProduceResponse),
    (0, 1): (produce_v1.ProduceRequest, produce_v1.ProduceResponse),
    (0, 2): (produce_v2.ProduceRequest, produce_v2.ProduceResponse),
    (1, 0): (fetch_v0.FetchRequest, fetch_v0.FetchResponse),
    (1, 1): (fetch_v1.FetchRequest, fetch_v1.FetchResponse),
    (1, 2): (fetch_v2.FetchRequest, fetch_v2.FetchResponse),
    (1, 3): (fetch_v3.FetchRequest, fetch_v3.FetchResponse),
    (2, 0): (list_offsets_v0.ListOffsetsRequest, list_offsets_v0.ListOffsetsResponse),
    # v0/v1 responses: v2's layout (topics, partitions, error codes; no throttle time)
    (8, 0): (offset_commit_v0.OffsetCommitRequest, _OffsetCommitResponseV2),
    (8, 1): (offset_commit_v1.OffsetCommitRequest, _OffsetCommitResponseV2),
    # OffsetFetch v0 reads offsets from ZooKeeper in old Kafka; its wire layout is v1's
    (9, 0): (_OffsetFetchRequestV1, _OffsetFetchResponseV1),
}
