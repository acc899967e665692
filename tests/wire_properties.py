"""What every decoder that reads bytes from the network must do with hostile input,
shared by tests/unit/test_wire_fuzz.py (a few seconds in CI) and tests/fuzz_wire.py
(minutes, outside CI).

The rule: a decoder returns, or raises the project's documented error for bad input
(MalformedRequest for requests, CorruptRecordError for record batches), nothing else.
`valid_request` writes a well-formed request body of any kio request schema from
Hypothesis draws, and remembers where its length prefixes are, so the properties can
replace them with lies (huge, negative, larger than the frame).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields

from hypothesis import strategies as st
from kio.serial._introspect import (
    EntityTupleField,
    PrimitiveTupleField,
    classify_field,
    get_field_tag,
    get_schema_field_type,
    is_optional,
)

import kop_fast.server.handlers  # noqa: F401  (registers every handler)
from kop_fast import codec
from kop_fast.protocol.errors import MalformedRequest
from kop_fast.protocol.headers import uvarint_bytes
from kop_fast.protocol.schemas import is_flexible, request_schema
from kop_fast.server.registry import REGISTRY

#: (api key, version) of every request the server decodes
API_VERSIONS = [(key, v) for key, lo, hi in REGISTRY.supported() for v in range(lo, hi + 1)]

_FIXED = {"int8": 1, "int16": 2, "int32": 4, "int64": 8, "uint8": 1, "uint16": 2, "uint32": 4,
          "uint64": 8, "float64": 8, "uuid": 16}


def request_header(api_key: int, version: int, correlation_id: int = 7, client_id: bytes | None = b"fuzz") -> bytes:
    head = struct.pack(">hhi", api_key, version, correlation_id)
    head += struct.pack(">h", -1) if client_id is None else struct.pack(">h", len(client_id)) + client_id
    return head + (b"\x00" if is_flexible(api_key, version) else b"")


def decode(api_key: int, version: int, frame: bytes, offset: int):
    """What the connection does with a frame whose header it has read: the registry's decoder."""
    return REGISTRY.get(api_key).decode(version, frame, offset)


def returns_or_malformed(fn, *args):
    """Call fn; MalformedRequest is the one acceptable failure (the connection closes)."""
    try:
        return fn(*args)
    except MalformedRequest:
        return None


def returns_or_corrupt(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except codec.CorruptRecordError:
        return None


# -- well-formed requests of any schema -----------------------------------------------------------

@dataclass
class Prefix:
    """A length prefix written into a generated request: where, and how it is encoded."""
    pos: int
    width: int  # bytes it takes
    kind: str  # "i16", "i32" or "uvarint"


class _Writer:
    def __init__(self, draw) -> None:
        self.draw = draw
        self.out = bytearray()
        self.prefixes: list[Prefix] = []

    def length(self, n: int, flexible: bool, legacy: str) -> None:
        """n is the real length (-1 = null); compact lengths are written as n + 1."""
        pos = len(self.out)
        if flexible:
            raw = uvarint_bytes(n + 1)
            self.prefixes.append(Prefix(pos, len(raw), "uvarint"))
        else:
            raw = struct.pack(">h" if legacy == "i16" else ">i", n)
            self.prefixes.append(Prefix(pos, len(raw), legacy))
        self.out += raw

    def primitive(self, kafka_type: str, flexible: bool, nullable: bool) -> None:
        draw, out = self.draw, self.out
        if kafka_type in _FIXED:
            out += draw(st.binary(min_size=_FIXED[kafka_type], max_size=_FIXED[kafka_type]))
        elif kafka_type == "bool":
            out.append(draw(st.sampled_from([0, 1])))
        elif kafka_type == "error_code":
            out += b"\x00\x00"
        elif kafka_type in ("timedelta_i32", "timedelta_i64"):
            size = 4 if kafka_type == "timedelta_i32" else 8
            out += draw(st.integers(0, 2**31 - 1)).to_bytes(size, "big")
        elif kafka_type == "datetime_i64":
            out += draw(st.integers(0, 2**41)).to_bytes(8, "big")
        elif kafka_type in ("string", "bytes", "records"):
            if nullable and draw(st.booleans()):
                self.length(-1, flexible, "i16" if kafka_type == "string" else "i32")
                return
            raw = (draw(st.text(max_size=12)).encode() if kafka_type == "string"
                   else draw(st.binary(max_size=24)))
            self.length(len(raw), flexible, "i16" if kafka_type == "string" else "i32")
            out += raw
        else:
            raise NotImplementedError(kafka_type)

    def entity(self, schema, depth: int = 0) -> None:
        flexible = schema.__flexible__
        tagged = []
        for field in fields(schema):
            if get_field_tag(field) is not None:
                tagged.append(field)
                continue
            self.field(field, flexible, depth)
        if flexible:
            self.tagged_fields(tagged, depth)

    def field(self, field, flexible: bool, depth: int, tagged: bool = False) -> None:
        kind = classify_field(field)
        nullable = not tagged and is_optional(field)  # a tagged field is null by being absent
        if not kind.is_array:
            self.primitive(get_schema_field_type(field), flexible, nullable)
            return
        if nullable and self.draw(st.booleans()):
            self.length(-1, flexible, "i32")
            return
        count = self.draw(st.integers(0, 2 if depth < 2 else 0))
        self.length(count, flexible, "i32")
        for _ in range(count):
            if isinstance(kind, EntityTupleField):
                self.entity(kind.type_, depth + 1)
            else:
                assert isinstance(kind, PrimitiveTupleField)
                self.primitive(get_schema_field_type(field), flexible, False)

    def tagged_fields(self, tagged: list, depth: int) -> None:
        # Known tags only: kio 0.6.5 refuses a tag it does not know (KeyError, so
        # MalformedRequest), where KIP-482 says to skip it. Known; not fixed here.
        chosen = [f for f in tagged if self.draw(st.booleans())]
        self.out += uvarint_bytes(len(chosen))
        for field in sorted(chosen, key=get_field_tag):
            inner = _Writer(self.draw)
            inner.field(field, True, depth, tagged=True)
            self.out += uvarint_bytes(int(get_field_tag(field)))
            size = uvarint_bytes(len(inner.out))  # a tag's size is plain, not n + 1
            self.prefixes.append(Prefix(len(self.out), len(size), "uvarint"))
            self.out += size
            base = len(self.out)
            self.prefixes += [Prefix(base + p.pos, p.width, p.kind) for p in inner.prefixes]
            self.out += inner.out


def valid_request(draw, api_key: int, version: int) -> tuple[bytes, list[Prefix]]:
    """A well-formed request body, and where its length prefixes are."""
    writer = _Writer(draw)
    writer.entity(request_schema(api_key, version))
    return bytes(writer.out), writer.prefixes


def lie(body: bytes, prefix: Prefix, value: int) -> bytes:
    """The body with one length prefix replaced by `value` (clamped to what its encoding holds)."""
    if prefix.kind == "uvarint":
        raw = uvarint_bytes(max(0, min(value, 2**35 - 1)))
    else:
        bits = 16 if prefix.kind == "i16" else 32
        value = max(-(2 ** (bits - 1)), min(value, 2 ** (bits - 1) - 1))
        raw = value.to_bytes(bits // 8, "big", signed=True)
    return body[:prefix.pos] + raw + body[prefix.pos + prefix.width:]


def lying_values(frame_size: int) -> st.SearchStrategy[int]:
    return st.sampled_from([-2, -(2**15), -(2**31), 2**15 - 1, 2**31 - 1, 2**32, 2**35 - 1,
                            frame_size + 1, frame_size * 2, 2**31 // 8])
