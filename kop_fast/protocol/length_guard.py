"""Check a request body's length prefixes against the bytes it has, before kio reads it.

kio's native reader reserves room for an array from its count before reading a
single element: a compact count of 2**32 in a 30-byte request asked the allocator
for 32 GiB and the failed allocation aborted the whole process (Rust aborts on
allocation failure; nothing to catch). A legacy count of 2**31 - 1 reserved 16 GiB.

`check_lengths` walks the body along its schema without building anything and
raises MalformedRequest when an array count, string or bytes length cannot fit in
what is left of the frame (every element takes at least its minimum size), so kio
only ever sees counts bounded by the frame. It rejects nothing a well-formed
request can contain: everything it refuses, kio would refuse too (after the
allocation). Negative lengths other than -1 (null) are left to kio, which refuses them.
"""

from __future__ import annotations

import struct
from dataclasses import fields
from functools import lru_cache

from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    PrimitiveTupleField,
    classify_field,
    get_field_tag,
    get_schema_field_type,
)

from kop_fast.protocol.errors import MalformedRequest
from kop_fast.protocol.headers import read_uvarint

_FIXED_SIZES = {
    "int8": 1, "uint8": 1, "bool": 1, "int16": 2, "uint16": 2, "error_code": 2,
    "int32": 4, "uint32": 4, "timedelta_i32": 4, "int64": 8, "uint64": 8, "float64": 8,
    "timedelta_i64": 8, "datetime_i64": 8, "uuid": 16,
}
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")


def check_lengths(schema, buf, offset: int) -> None:
    """Raise MalformedRequest if a length prefix in the body at `offset` overruns `buf`."""
    end = len(buf)
    try:
        pos = _entity(schema)[0](buf, offset, end)
    except (struct.error, IndexError):  # a fixed-size length prefix cut off by the frame's end
        raise MalformedRequest(f"{schema.__name__}: truncated") from None
    if pos > end:
        raise MalformedRequest(f"{schema.__name__}: truncated")


def _overrun(what: str, size: int) -> MalformedRequest:
    return MalformedRequest(f"{what}: length {size} exceeds the request")


def _length(buf, pos: int, flexible: bool, legacy: struct.Struct) -> tuple[int, int]:
    """A length or count: compact (n + 1, 0 = null) when flexible, else signed `legacy`."""
    if flexible:
        n, pos = read_uvarint(buf, pos)
        return n - 1, pos
    return legacy.unpack_from(buf, pos)[0], pos + legacy.size


# A skipper is (skip(buf, pos, end) -> pos, minimum encoded size).

def _fixed(size: int):
    return (lambda buf, pos, end: pos + size), size


def _sized(flexible: bool, legacy: struct.Struct, what: str):
    """A string or bytes field."""
    def skip(buf, pos, end):
        n, pos = _length(buf, pos, flexible, legacy)
        if n > end - pos:
            raise _overrun(what, n)
        return pos + n if n > 0 else pos
    return skip, 1 if flexible else legacy.size


def _array(item, flexible: bool, what: str):
    skip_item, item_min = item

    def skip(buf, pos, end):
        count, pos = _length(buf, pos, flexible, _I32)
        if count <= 0:
            return pos
        if count * item_min > end - pos:
            raise _overrun(what, count)
        for _ in range(count):
            pos = skip_item(buf, pos, end)
        return pos
    return skip, 1 if flexible else 4


def _primitive(kafka_type: str, flexible: bool, what: str):
    size = _FIXED_SIZES.get(kafka_type)
    if size is not None:
        return _fixed(size)
    if kafka_type == "string":
        return _sized(flexible, _I16, what)
    if kafka_type in ("bytes", "records"):
        return _sized(flexible, _I32, what)
    raise NotImplementedError(f"no length check for kafka type {kafka_type!r} ({what})")


def _field(field, flexible: bool, what: str):
    kind = classify_field(field)
    if isinstance(kind, EntityTupleField):
        return _array(_entity(kind.type_), flexible, what)
    if isinstance(kind, EntityField):  # KIP-893 nullable structs: in no request kop_fast serves
        raise NotImplementedError(f"no length check for struct field {what}")
    item = _primitive(get_schema_field_type(field), flexible, what)
    if isinstance(kind, PrimitiveTupleField):
        return _array(item, flexible, what)
    return item


def field_is_fixed(field) -> bool:
    kind = classify_field(field)
    return not kind.is_array and not isinstance(kind, EntityField) and get_schema_field_type(field) in _FIXED_SIZES


@lru_cache(maxsize=None)
def _entity(schema):
    flexible = schema.__flexible__
    steps = []
    tagged = {}
    minimum = 0
    for field in fields(schema):
        what = f"{schema.__name__}.{field.name}"
        tag = get_field_tag(field)
        if tag is not None:
            tagged[int(tag)] = _field(field, flexible, what)[0]
            continue
        step, size = _field(field, flexible, what)
        minimum += size
        if field_is_fixed(field) and steps and isinstance(steps[-1], int):
            steps[-1] += size  # runs of fixed-size fields are skipped in one step
        else:
            steps.append(size if field_is_fixed(field) else step)
    if flexible:
        minimum += 1  # the tagged-field count
    name = schema.__name__

    def skip(buf, pos, end):
        for step in steps:
            pos = pos + step if step.__class__ is int else step(buf, pos, end)
        if flexible:
            pos = _tagged_fields(buf, pos, end, tagged, name)
        return pos
    return skip, minimum


def _tagged_fields(buf, pos: int, end: int, tagged: dict, name: str) -> int:
    count, pos = read_uvarint(buf, pos)
    if count * 2 > end - pos:  # a tag and a size, at least
        raise _overrun(f"{name} tagged fields", count)
    for _ in range(count):
        tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        if size > end - pos:
            raise _overrun(f"{name} tagged field {tag}", size)
        skip = tagged.get(tag)
        if skip is not None:
            # A known tag's value is read by kio: its own lengths must fit in its size.
            if skip(buf, pos, pos + size) > pos + size:
                raise _overrun(f"{name} tagged field {tag}", size)
        pos += size
    return pos
