"""Produce (key 0) v0-v9 requests decoded and responses encoded by hand: the write hot path.

kio would copy every record batch out of the request frame into a new bytes
object (for a 1 MB batch that copy, and the fresh memory it touches, was a
fifth of the event loop's time in the produce benchmark) and build its
response through generic, schema-driven Python. Here a request's record
batches are `memoryview`s of the frame itself, and a response is a few
`struct` packs. The objects carry the same attribute names as kio's entities,
so the handler reads either. tests/unit/test_produce_wire.py checks both
directions against kio for every version.

Layout (flexible = v9: compact lengths, tagged fields):

    request   transactional_id nullable-string (v3+), acks int16, timeout_ms int32,
              [topic_data: name string, [partition_data: index int32, records nullable-bytes]]
    response  [responses: name string, [partition_responses: index int32, error_code int16,
              base_offset int64, log_append_time_ms int64 (v2+), log_start_offset int64 (v5+),
              record_errors [] (v8+), error_message nullable-string (v8+)]], throttle_time_ms int32 (v1+)

v0-v2 carry legacy message sets (magic 0/1) instead of a v2 batch: the handler converts
them (protocol/legacy_records.py); kio has no schemas for them (protocol/extra_schemas).
"""

from __future__ import annotations

import struct

from kop_fast.protocol.errors import MalformedRequest
from kop_fast.protocol.headers import array_length_bytes, read_uvarint, skip_tagged_fields, string_bytes

MIN_VERSION = 0
BATCH_FROM = 3  # older versions carry legacy message sets
MAX_VERSION = 9
FLEXIBLE_FROM = 9

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_ACKS_TIMEOUT = struct.Struct(">hi")
_PARTITION_HEAD = struct.Struct(">ihqq")  # index, error_code, base_offset, log_append_time_ms
_PARTITION_HEAD_V0 = struct.Struct(">ihq")  # index, error_code, base_offset
_Q = struct.Struct(">q")


class PartitionProduceData:
    __slots__ = ("index", "records")

    def __init__(self, index: int, records) -> None:
        self.index = index
        self.records = records  # memoryview of the request frame, or None


class TopicProduceData:
    __slots__ = ("name", "partition_data")

    def __init__(self, name: str, partition_data: tuple) -> None:
        self.name = name
        self.partition_data = partition_data


class ProduceRequest:
    __slots__ = ("transactional_id", "acks", "timeout_ms", "topic_data")

    def __init__(self, transactional_id: str | None, acks: int, timeout_ms: int, topic_data: tuple) -> None:
        self.transactional_id = transactional_id
        self.acks = acks
        self.timeout_ms = timeout_ms
        self.topic_data = topic_data


# -- request ------------------------------------------------------------------------------------

def _need(end: int, pos: int, size: int, what: str) -> None:
    if size < 0 or pos + size > end:
        raise MalformedRequest(f"Produce request: truncated {what}")


def _length(view, end: int, pos: int, flexible: bool, fixed: struct.Struct, what: str) -> tuple[int, int]:
    """A length or count: compact (unsigned varint of n + 1) when flexible, else `fixed` (signed)."""
    if flexible:
        size, pos = read_uvarint(view, pos)
        return size - 1, pos
    _need(end, pos, fixed.size, what)
    return fixed.unpack_from(view, pos)[0], pos + fixed.size


def _string(view, end: int, pos: int, flexible: bool, nullable: bool, what: str) -> tuple[str | None, int]:
    size, pos = _length(view, end, pos, flexible, _I16, what)
    if size < 0:
        if size == -1 and nullable:
            return None, pos
        raise MalformedRequest(f"Produce request: bad length of {what}")
    _need(end, pos, size, what)
    try:
        return str(view[pos:pos + size], "utf-8"), pos + size
    except UnicodeDecodeError:
        raise MalformedRequest(f"Produce request: {what} is not UTF-8") from None


def _array_length(view, end: int, pos: int, flexible: bool, what: str) -> tuple[int, int]:
    count, pos = _length(view, end, pos, flexible, _I32, what)
    # Every element takes at least one byte: a larger count is garbage, not a big request.
    if count < 0 or count > end - pos:
        raise MalformedRequest(f"Produce request: bad length of {what}")
    return count, pos


def decode_produce_request(version: int, frame, offset: int) -> ProduceRequest:
    """Decode a Produce request body starting at `offset`; record batches stay in `frame`."""
    try:
        return _decode(version, frame, offset)
    except (struct.error, ValueError, IndexError) as exc:  # belt and braces: never crash the connection
        raise MalformedRequest(f"Produce request: {exc}") from None


def _decode(version: int, frame, offset: int) -> ProduceRequest:
    flexible = version >= FLEXIBLE_FROM
    view = memoryview(frame)
    end = len(view)
    if version >= BATCH_FROM:
        transactional_id, pos = _string(view, end, offset, flexible, True, "transactional_id")
    else:
        transactional_id, pos = None, offset
    _need(end, pos, 6, "acks and timeout")
    acks, timeout_ms = _ACKS_TIMEOUT.unpack_from(view, pos)
    pos += 6
    topic_count, pos = _array_length(view, end, pos, flexible, "topic_data")
    topics = []
    for _ in range(topic_count):
        name, pos = _string(view, end, pos, flexible, False, "topic name")
        partition_count, pos = _array_length(view, end, pos, flexible, "partition_data")
        partitions = []
        for _ in range(partition_count):
            _need(end, pos, 4, "partition index")
            index = _I32.unpack_from(view, pos)[0]
            pos += 4
            size, pos = _length(view, end, pos, flexible, _I32, "records")
            if size < 0:
                if size != -1:
                    raise MalformedRequest("Produce request: bad length of records")
                records = None
            else:
                _need(end, pos, size, "records")
                records = view[pos:pos + size]
                pos += size
            if flexible:
                pos = skip_tagged_fields(view, pos)
            partitions.append(PartitionProduceData(index, records))
        if flexible:
            pos = skip_tagged_fields(view, pos)
        topics.append(TopicProduceData(name, tuple(partitions)))
    if flexible:
        skip_tagged_fields(view, pos)
    return ProduceRequest(transactional_id, acks, timeout_ms, tuple(topics))


# -- response -----------------------------------------------------------------------------------

def encode_produce_response(version: int, topics: list[tuple[str, list[tuple[int, int, int]]]],
                            throttle_ms: int = 0) -> bytes:
    """Body of a Produce response (without the response header).

    `topics`: (name, [(partition index, error code, base offset), ...]). Log append time
    is -1 (we keep the producer's CreateTime) and log start offset -1 (unknown here)."""
    flexible = version >= FLEXIBLE_FROM
    out = bytearray(array_length_bytes(len(topics), flexible))
    for name, partitions in topics:
        out += string_bytes(name, flexible)
        out += array_length_bytes(len(partitions), flexible)
        if version < 2:
            for index, error_code, base_offset in partitions:
                out += _PARTITION_HEAD_V0.pack(index, error_code, base_offset)
            continue
        for index, error_code, base_offset in partitions:
            out += _PARTITION_HEAD.pack(index, error_code, base_offset, -1)
            if version >= 5:
                out += _Q.pack(-1)
            if version >= 8:
                # record_errors: empty array; error_message: null.
                out += b"\x01\x00" if flexible else b"\x00\x00\x00\x00\xff\xff"
            if flexible:
                out += b"\x00"  # partition tagged fields
        if flexible:
            out += b"\x00"  # topic tagged fields
    if version >= 1:
        out += _I32.pack(throttle_ms)
    if flexible:
        out += b"\x00"  # response tagged fields
    return bytes(out)
