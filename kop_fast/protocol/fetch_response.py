"""Fetch responses (v0-v12) encoded by hand, so stored batches go to the socket without a copy.

kio would copy every record batch into one buffer; here the response is a list
of buffers: small encoded pieces around the batches' own memory, written with
`transport.writelines`. tests/unit/test_fetch_response.py checks the bytes
against kio's decoder for every version.
"""

from __future__ import annotations

import struct

from kop_fast.protocol.headers import array_length_bytes, string_bytes

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_PARTITION_V4 = struct.Struct(">ihqq")  # partition, error, high watermark, last stable offset
_Q = struct.Struct(">q")


class FetchPartitionResult:
    __slots__ = ("partition", "error_code", "high_watermark", "last_stable_offset", "log_start_offset",
                 "parts", "size")

    def __init__(self, partition: int, error_code: int, high_watermark: int = -1, log_start_offset: int = -1,
                 parts: list | None = None, size: int = 0) -> None:
        self.partition = partition
        self.error_code = error_code
        self.high_watermark = high_watermark
        self.last_stable_offset = high_watermark  # no transactions: everything is stable
        self.log_start_offset = log_start_offset
        self.parts = parts or []
        self.size = size


def encode_fetch_response(version: int, topics: list[tuple[str, list[FetchPartitionResult]]], *,
                          error_code: int = 0, session_id: int = 0, throttle_ms: int = 0) -> list:
    """Body of a Fetch response as a list of buffers (without the response header)."""
    flexible = version >= 12
    out: list = []
    head = bytearray(_I32.pack(throttle_ms))
    if version >= 7:
        head += _I16.pack(error_code) + _I32.pack(session_id)
    head += array_length_bytes(len(topics), flexible)
    for name, partitions in topics:
        head += string_bytes(name, flexible)
        head += array_length_bytes(len(partitions), flexible)
        for p in partitions:
            head += _PARTITION_V4.pack(p.partition, p.error_code, p.high_watermark, p.last_stable_offset)
            if version >= 5:
                head += _Q.pack(p.log_start_offset)
            # aborted transactions: none (empty array, not null)
            head += b"\x01" if flexible else b"\x00\x00\x00\x00"
            if version >= 11:
                head += _I32.pack(-1)  # preferred read replica: none
            head += array_length_bytes(p.size, flexible)
            if p.parts:
                out.append(bytes(head))
                out.extend(p.parts)
                head = bytearray()
            if flexible:
                head += b"\x00"  # partition tagged fields
        if flexible:
            head += b"\x00"  # topic tagged fields
    if flexible:
        head += b"\x00"  # response tagged fields
    out.append(bytes(head))
    return out


_PARTITION_V0 = struct.Struct(">ihq")  # partition, error, high watermark


def encode_legacy_fetch_response(version: int, topics: list[tuple[str, list[FetchPartitionResult]]], *,
                                 throttle_ms: int = 0) -> list:
    """Body of a Fetch v0-v3 response: no last stable offset, no aborted transactions, and the
    throttle time from v1 on. The partitions' parts are message sets already down-converted."""
    out: list = []
    head = bytearray(_I32.pack(throttle_ms) if version >= 1 else b"")
    head += _I32.pack(len(topics))
    for name, partitions in topics:
        head += string_bytes(name, False)
        head += _I32.pack(len(partitions))
        for p in partitions:
            head += _PARTITION_V0.pack(p.partition, p.error_code, p.high_watermark)
            head += _I32.pack(p.size)
            if p.parts:
                out.append(bytes(head))
                out.extend(p.parts)
                head = bytearray()
    out.append(bytes(head))
    return out
