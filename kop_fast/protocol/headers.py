"""Request and response headers (KIP-482 flexible versions use header v2 / v1).

Request header v1: api_key int16, api_version int16, correlation_id int32,
client_id nullable string (int16 length). v2 adds tagged fields after it; the
client_id stays a non-compact string, as Kafka defines it.
Response header v0: correlation_id int32; v1 adds (empty) tagged fields.
ApiVersions responses always use header v0 so that a client that does not yet
know our versions can parse them (KIP-511).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from kop_fast.protocol.errors import MalformedRequest

_HEADER = struct.Struct(">hhi")
API_VERSIONS_KEY = 18


@dataclass(frozen=True, slots=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


def read_uvarint(buf, pos: int) -> tuple[int, int]:
    value = 0
    shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise MalformedRequest("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            raise MalformedRequest("varint too long")


def uvarint_bytes(n: int) -> bytes:
    """An unsigned varint (compact lengths and counts of flexible versions)."""
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def string_bytes(value: str, flexible: bool) -> bytes:
    """A (non-null) string: compact length in flexible versions, int16 length before."""
    raw = value.encode()
    return (uvarint_bytes(len(raw) + 1) if flexible else len(raw).to_bytes(2, "big")) + raw


def array_length_bytes(count: int, flexible: bool) -> bytes:
    """An array's (or bytes field's) length: compact (n + 1) in flexible versions, int32 before."""
    return uvarint_bytes(count + 1) if flexible else count.to_bytes(4, "big", signed=True)


def skip_tagged_fields(buf, pos: int) -> int:
    count, pos = read_uvarint(buf, pos)
    for _ in range(count):
        _tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        pos += size
        if pos > len(buf):
            raise MalformedRequest("truncated tagged field")
    return pos


def peek_api(frame) -> tuple[int, int, int]:
    """api_key, api_version and correlation_id of a request frame."""
    if len(frame) < 8:
        raise MalformedRequest("request shorter than its header")
    return _HEADER.unpack_from(frame, 0)


def parse_request_header(frame, flexible: bool) -> tuple[RequestHeader, int]:
    """Parse a request header; return it and the offset where the body starts."""
    api_key, api_version, correlation_id = peek_api(frame)
    pos = 8
    if len(frame) < pos + 2:
        raise MalformedRequest("truncated client_id")
    n = int.from_bytes(frame[pos:pos + 2], "big", signed=True)
    pos += 2
    if n < 0:
        client_id = None
    else:
        if len(frame) < pos + n:
            raise MalformedRequest("truncated client_id")
        try:
            client_id = bytes(frame[pos:pos + n]).decode()
        except UnicodeDecodeError as exc:
            raise MalformedRequest("client_id is not UTF-8") from exc
        pos += n
    if flexible:
        pos = skip_tagged_fields(frame, pos)
    return RequestHeader(api_key, api_version, correlation_id, client_id), pos


def response_header(correlation_id: int, flexible: bool) -> bytes:
    """Encoded response header; flexible responses carry an empty tagged-field section."""
    if flexible:
        return correlation_id.to_bytes(4, "big", signed=True) + b"\x00"
    return correlation_id.to_bytes(4, "big", signed=True)
