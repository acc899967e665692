"""The hand-written Produce decoder and encoder agree with kio, byte for byte, for every version."""

import datetime
import io
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.serial import entity_reader

from kop_fast.protocol.build import make, sibling
from kop_fast.protocol.errors import ErrorCode, MalformedRequest
from kop_fast.protocol.produce_wire import MAX_VERSION, MIN_VERSION, decode_produce_request, encode_produce_response
from kop_fast.protocol.schemas import encode_entity, encode_request, request_schema, response_schema

VERSIONS = range(MIN_VERSION, MAX_VERSION + 1)


def kio_request(version, transactional_id, acks, timeout_ms, topics):
    schema = request_schema(0, version)
    topic_cls = sibling(schema, "TopicProduceData")
    partition_cls = sibling(schema, "PartitionProduceData")
    # v0-v2 (protocol/extra_schemas) have no transactional id
    return schema(
        **({"transactional_id": transactional_id} if version >= 3 else {}),
        acks=acks, timeout=datetime.timedelta(milliseconds=timeout_ms),
        topic_data=tuple(
            topic_cls(name=name, partition_data=tuple(partition_cls(index=i, records=r) for i, r in parts))
            for name, parts in topics))


def as_plain(request):
    """(transactional_id, acks, [(name, [(index, records bytes or None)])]) of either decoder's result."""
    return (getattr(request, "transactional_id", None), request.acks,
            [(t.name, [(p.index, None if p.records is None else bytes(p.records)) for p in t.partition_data])
             for t in request.topic_data])


TOPICS = [
    ("orders", [(0, b"\x00" * 70 + b"batch-0"), (7, None), (3, b"")]),
    ("b\u00e9ta", [(2, bytes(range(256)) * 5)]),
    ("empty", []),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("transactional_id", [None, "tx-1"])
def test_decoder_matches_kio(version, transactional_id):
    body = encode_request(kio_request(version, transactional_id, -1, 30_000, TOPICS))
    frame = b"HEADER" + body
    ours = decode_produce_request(version, frame, 6)
    assert ours.timeout_ms == 30_000
    expected_id = transactional_id if version >= 3 else None
    assert as_plain(ours) == (expected_id, -1, [(n, list(p)) for n, p in TOPICS])
    theirs, _ = entity_reader(request_schema(0, version))(frame, 6)
    assert as_plain(ours)[1:] == as_plain(theirs)[1:]
    assert getattr(theirs, "transactional_id", None) == expected_id


@pytest.mark.parametrize("version", VERSIONS)
def test_records_are_views_of_the_frame(version):
    """No copy of a batch: the records point into the request frame."""
    frame = bytearray(encode_request(kio_request(version, None, 1, 5, [("t", [(0, b"x" * 1000)])])))
    records = decode_produce_request(version, frame, 0).topic_data[0].partition_data[0].records
    assert isinstance(records, memoryview) and records.obj is frame
    frame[-1000 - (3 if version >= 9 else 0)] = ord("y")  # the first record byte, seen through the view
    assert bytes(records[:1]) == b"y"


@pytest.mark.parametrize("version", VERSIONS)
def test_every_truncation_is_malformed(version):
    body = encode_request(kio_request(version, "tx", 1, 5, TOPICS))
    for cut in range(len(body)):
        if version >= 9 and cut == len(body) - 1:
            continue  # only the empty request-level tag section is missing: still readable up to it
        with pytest.raises(MalformedRequest):
            decode_produce_request(version, body[:cut], 0)


@pytest.mark.parametrize("version", [3, 9])
def test_bad_lengths_are_malformed(version):
    good = encode_request(kio_request(version, None, 1, 5, [("t", [(0, b"abc")])]))
    flexible = version >= 9
    # Null transactional id (-1 / 0), acks, timeout, then the topic count.
    count_at = (1 if flexible else 2) + 6
    bad_count = bytearray(good)
    if flexible:
        bad_count[count_at] = 0x7F  # 126 topics in a few bytes
    else:
        bad_count[count_at:count_at + 4] = (-5).to_bytes(4, "big", signed=True)
    with pytest.raises(MalformedRequest):
        decode_produce_request(version, bytes(bad_count), 0)
    not_utf8 = bytearray(good)
    name_at = count_at + (1 if flexible else 4) + (1 if flexible else 2)
    not_utf8[name_at] = 0xFF
    with pytest.raises(MalformedRequest):
        decode_produce_request(version, bytes(not_utf8), 0)


@settings(max_examples=300, deadline=None)
@given(version=st.sampled_from(list(VERSIONS)), data=st.binary(max_size=200), seed=st.integers(0, 2**32))
def test_garbage_never_raises_anything_but_malformed(version, data, seed):
    body = bytearray(encode_request(kio_request(version, "tx", 1, 5, TOPICS)))
    rng = random.Random(seed)
    for _ in range(rng.randint(1, 4)):
        body[rng.randrange(len(body))] = rng.randrange(256)
    for candidate in (bytes(body), data):
        try:
            decode_produce_request(version, candidate, 0)
        except MalformedRequest:
            pass


@pytest.mark.parametrize("version", VERSIONS)
def test_response_bytes_equal_kio(version):
    topics = [("orders", [(0, 0, 1 << 40), (7, 3, -1)]), ("b\u00e9ta", [(2, 0, 12345)]), ("none", [])]
    ours = encode_produce_response(version, topics, throttle_ms=0)
    schema = response_schema(0, version)
    topic_cls = sibling(schema, "TopicProduceResponse")
    partition_cls = sibling(schema, "PartitionProduceResponse")
    entity = make(schema, throttle_time=datetime.timedelta(0), responses=tuple(
        make(topic_cls, name=name, partition_responses=tuple(
            make(partition_cls, index=i, error_code=ErrorCode(e), base_offset=o, log_append_time=None, log_start_offset=-1,
                 record_errors=(), error_message=None) for i, e, o in parts))
        for name, parts in topics))
    out = io.BytesIO()
    encode_entity(entity, out)
    assert ours == out.getvalue()
    decoded, size = entity_reader(schema)(ours, 0)
    assert size == len(ours)
    assert [(p.index, p.error_code, p.base_offset) for p in decoded.responses[0].partition_responses] == \
        [(0, 0, 1 << 40), (7, 3, -1)]
