"""The handler registry: one entry per Kafka API, the single source of the ApiVersions answer.

A handler module registers its API key and version range with `@api(...)`.
Registration checks that kio has a request and response schema for every
version in the range, so we can never advertise a version we cannot parse
(from kio's index; that each of them loads is tested, `tests/unit/test_protocol.py`).

Produce is served, and so advertised, from v0 (legacy message sets): librdkafka
before 2.11.1 (Debian's kcat among them) compresses a gzip, snappy or lz4 batch
only when the broker advertises Produce v0 (KAFKA-18659).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

from kio.index import api_key_map

from kop_fast.protocol.schemas import decode_request, has_schemas

Handler = Callable[[Any, Any], Any]
ErrorResponder = Callable[[Any, Any, Any], Any]
# decode(api_version, frame, body_offset) -> request; raises MalformedRequest.
Decoder = Callable[[int, Any, int], Any]


@dataclass(frozen=True, slots=True)
class ApiEntry:
    api_key: int
    name: str
    min_version: int
    max_version: int
    handle: Handler
    decode: Decoder
    # Builds the response that carries one error code for the whole request;
    # without it, an unexpected failure closes the connection.
    error_response: ErrorResponder | None = None


class HandlerRegistry:
    def __init__(self) -> None:
        self._entries: dict[int, ApiEntry] = {}

    def register(self, api_key: int, min_version: int, max_version: int,
                 handle: Handler, error_response: ErrorResponder | None = None,
                 decode: Decoder | None = None) -> None:
        if api_key in self._entries:
            raise ValueError(f"API {api_key} registered twice")
        if not 0 <= min_version <= max_version:
            raise ValueError(f"API {api_key}: bad version range {min_version}..{max_version}")
        missing = [v for v in range(min_version, max_version + 1) if not has_schemas(api_key, v)]
        if missing:
            raise ValueError(f"API {api_key}: no request or response schema for versions {missing}")
        if decode is None:
            decode = partial(decode_request, api_key)
        self._entries[api_key] = ApiEntry(
            api_key, api_key_map[api_key], min_version, max_version, handle, decode, error_response
        )

    def get(self, api_key: int) -> ApiEntry | None:
        return self._entries.get(api_key)

    def supported(self) -> list[tuple[int, int, int]]:
        """(api_key, min_version, max_version) of every implemented API, by key."""
        return sorted((e.api_key, e.min_version, e.max_version) for e in self._entries.values())

    def __contains__(self, api_key: int) -> bool:
        return api_key in self._entries


REGISTRY = HandlerRegistry()


def api(api_key: int, min_version: int, max_version: int, *,
        error_response: ErrorResponder | None = None,
        decode: Decoder | None = None,
        registry: HandlerRegistry = REGISTRY):
    """Decorator registering a handler `handle(ctx, request) -> response | awaitable | None`.

    `decode` replaces kio's schema-driven decoder for a hot path (Produce); kio must
    still know every version, and the tests hold the two to the same answers."""

    def decorate(fn: Handler) -> Handler:
        registry.register(api_key, min_version, max_version, fn, error_response, decode)
        return fn

    return decorate
