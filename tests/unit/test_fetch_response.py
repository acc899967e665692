"""The hand-written Fetch encoder gives what kio's schema-driven decoder reads, for every version."""

import pytest
from kio.serial import entity_reader

from kop_fast.protocol.fetch_response import (FetchPartitionResult, encode_fetch_response,
                                              encode_legacy_fetch_response)
from kop_fast.protocol.schemas import response_schema


@pytest.mark.parametrize("version", range(0, 13))
def test_fetch_response_matches_kio(version):
    batch = b"B" * 70
    topics = [
        ("alpha", [FetchPartitionResult(0, 0, 1000, 5, [b"\x00" * 8, memoryview(batch)[8:]], len(batch)),
                   FetchPartitionResult(1, 1, -1, -1)]),
        ("beta", [FetchPartitionResult(3, 0, 77, 0)]),
    ]
    if version < 4:  # v0-v3: the schemas of protocol/extra_schemas
        body = b"".join(bytes(p) for p in encode_legacy_fetch_response(version, topics))
    else:
        body = b"".join(bytes(p) for p in encode_fetch_response(version, topics, error_code=0, session_id=0))
    decoded, size = entity_reader(response_schema(1, version))(body, 0)
    assert size == len(body)
    assert [t.topic for t in decoded.responses] == ["alpha", "beta"]
    p0, p1 = decoded.responses[0].partitions
    assert (p0.partition_index, p0.error_code, p0.high_watermark) == (0, 0, 1000)
    assert p0.records == b"\x00" * 8 + batch[8:]
    if version >= 5:
        assert p0.log_start_offset == 5
    assert (p1.partition_index, p1.error_code) == (1, 1)
    assert p1.records in (b"", None)
    assert decoded.responses[1].partitions[0].high_watermark == 77
