"""Response bodies encoded by hand (sans-io)."""

from __future__ import annotations

import struct

from kop_fast.protocol.errors import ErrorCode
from kop_fast.protocol.headers import API_VERSIONS_KEY


class EncodedResponse:
    """A response body already encoded, as a list of buffers (written with writelines, no copy)."""

    __slots__ = ("parts", "size")

    def __init__(self, parts: list) -> None:
        self.parts = parts
        self.size = sum(len(p) for p in parts)


def unsupported_api_versions_body(min_version: int, max_version: int) -> bytes:
    """ApiVersions v0 body with UNSUPPORTED_VERSION and our ApiVersions range (KIP-511):
    what a client that asked for an ApiVersions version we do not have can still read."""
    return struct.pack(">hihhh", ErrorCode.unsupported_version, 1, API_VERSIONS_KEY, min_version, max_version)
