"""Kafka message schemas of every API and version, from `kio`, with cached readers and writers.

A schema's module is imported when the schema is first asked for (kio has one
module per API, version and direction: importing all that the registry
advertises took ~0.4 s of every start); `has_schemas` answers from kio's index
without importing anything.
"""

from __future__ import annotations

import io
from functools import lru_cache

from kio.index import load_request_schema, load_response_schema
from kio.schema.index import api_key_map, schema_name_map
from kio.serial import entity_reader, entity_writer
from kio.static.constants import EntityType

from kop_fast.protocol.errors import MalformedRequest
from kop_fast.protocol.extra_schemas import EXTRA_SCHEMAS
from kop_fast.protocol.length_guard import check_lengths


@lru_cache(maxsize=None)
def request_schema(api_key: int, version: int):
    extra = EXTRA_SCHEMAS.get((api_key, version))
    return extra[0] if extra else load_request_schema(api_key, version)


@lru_cache(maxsize=None)
def response_schema(api_key: int, version: int):
    extra = EXTRA_SCHEMAS.get((api_key, version))
    return extra[1] if extra else load_response_schema(api_key, version)


def has_schemas(api_key: int, version: int) -> bool:
    """Whether a request and a response schema exist for this version (nothing is imported)."""
    if (api_key, version) in EXTRA_SCHEMAS:
        return True
    try:
        paths = schema_name_map[api_key_map[api_key]][version]
    except KeyError:
        return False
    return EntityType.request in paths and EntityType.response in paths


@lru_cache(maxsize=None)
def _reader(schema):
    return entity_reader(schema)


@lru_cache(maxsize=None)
def _writer(schema):
    return entity_writer(schema)


def is_flexible(api_key: int, version: int) -> bool:
    return request_schema(api_key, version).__flexible__


def decode_request(api_key: int, version: int, frame, offset: int):
    """Decode a request body; any schema violation is a malformed request."""
    schema = request_schema(api_key, version)
    # kio reserves memory for an array from its count before reading it: counts that
    # cannot fit in the frame must never reach it (length_guard.py).
    check_lengths(schema, frame, offset)
    try:
        entity, size = _reader(schema)(frame, offset)
    except Exception as exc:  # kio raises several types for truncated / invalid input
        raise MalformedRequest(f"cannot decode {schema.__name__} v{version}: {exc}") from exc
    # Like Kafka brokers, ignore bytes after the body (librdkafka sends some for Metadata v12).
    return entity


def encode_entity(entity, out: io.BytesIO) -> None:
    _writer(type(entity))(out, entity)


def encode_request(entity) -> bytes:
    """Encode a request body (used by tests and tools)."""
    out = io.BytesIO()
    encode_entity(entity, out)
    return out.getvalue()
