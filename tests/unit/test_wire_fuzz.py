"""Every decoder that reads bytes from the network, under hostile input.

Request headers, every registered API key and version (random bodies, truncated
well-formed bodies, well-formed bodies whose length prefixes lie), the hand-written
Produce decoder, and the record-batch codec entry points the server calls: each
returns or raises the documented error (MalformedRequest, CorruptRecordError), and
never allocates from a length prefix the input cannot back. The properties live in
tests/wire_properties.py; tests/fuzz_wire.py runs them for minutes.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kop_fast import codec
from kop_fast.coordinator.member import subscribed_topics_of
from kop_fast.protocol.errors import MalformedRequest
from kop_fast.protocol.headers import parse_request_header, peek_api
from kop_fast.protocol.produce_wire import decode_produce_request
from tests import wire_properties as wp

# tests/fuzz_wire.py raises the example count for long runs.
FUZZ = settings(max_examples=int(os.environ.get("KOP_FAST_FUZZ_EXAMPLES", "300")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
REPO = Path(__file__).resolve().parents[2]


@FUZZ
@given(frame=st.binary(max_size=64), flexible=st.booleans())
def test_request_headers(frame, flexible):
    if wp.returns_or_malformed(peek_api, frame) is None:
        assert len(frame) < 8
    parsed = wp.returns_or_malformed(parse_request_header, frame, flexible)
    if parsed is not None:
        assert parsed[1] <= len(frame)


@FUZZ
@given(data=st.data())
def test_every_api_random_body(data):
    key, version = data.draw(st.sampled_from(wp.API_VERSIONS))
    head = wp.request_header(key, version)
    body = data.draw(st.binary(max_size=200))
    wp.returns_or_malformed(wp.decode, key, version, head + body, len(head))


@pytest.mark.parametrize("filler", [b"\xff", b"\x7f", b"\x80", b"\x00\x00\x7f\xff\xff\xff", b"\xff\xff\xff\xff\x0f"])
def test_every_api_and_version_with_extreme_bytes(filler):
    """Bodies of nothing but huge (or -1) lengths, for every API and version."""
    for key, version in wp.API_VERSIONS:
        head = wp.request_header(key, version)
        wp.returns_or_malformed(wp.decode, key, version, head + filler * 12, len(head))


@FUZZ
@given(data=st.data())
def test_every_api_truncated_and_lying(data):
    key, version = data.draw(st.sampled_from(wp.API_VERSIONS))
    head = wp.request_header(key, version)
    body, prefixes = wp.valid_request(data.draw, key, version)
    frame = head + body
    assert wp.decode(key, version, frame, len(head)) is not None  # well-formed: decodes
    cut = data.draw(st.integers(0, max(0, len(body) - 1)))
    wp.returns_or_malformed(wp.decode, key, version, head + body[:cut], len(head))
    if prefixes:
        prefix = data.draw(st.sampled_from(prefixes))
        value = data.draw(wp.lying_values(len(frame)))
        lying = head + wp.lie(body, prefix, value)
        decoded = wp.returns_or_malformed(wp.decode, key, version, lying, len(head))
        if value > len(lying) + 1:  # no length larger than the frame can be honoured
            assert decoded is None, (key, version, prefix, value)


def test_huge_lengths_reserve_nothing():
    """Without the length guard kio reserved count x 8 bytes for an array before reading it,
    and a failed reservation aborts the process: run every API with lying counts in a child
    whose address space is limited to 1.5 GiB (a legacy count of 2**31 - 1 reserved 16 GiB)."""
    script = textwrap.dedent("""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))
        from hypothesis import given, settings, strategies as st
        from tests import wire_properties as wp

        @settings(max_examples=400, deadline=None, derandomize=True, database=None)
        @given(st.data())
        def lying(data):
            key, version = data.draw(st.sampled_from(wp.API_VERSIONS))
            head = wp.request_header(key, version)
            body, prefixes = wp.valid_request(data.draw, key, version)
            for prefix in prefixes:
                for value in (2**31 - 1, 2**32, 2**35 - 1, 2**28):
                    wp.returns_or_malformed(wp.decode, key, version, head + wp.lie(body, prefix, value), len(head))

        lying()
        print("survived")
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "survived" in done.stdout, done.stderr[-2000:]


def test_produce_decoder_allocates_nothing_from_lying_lengths():
    head = wp.request_header(0, 7)
    cases = [
        b"\xff\xff" + struct.pack(">hi", -1, 1000) + struct.pack(">i", 2**31 - 1),  # topic count
        b"\xff\xff" + struct.pack(">hi", -1, 1000) + struct.pack(">ih", 1, 3) + b"abc"
        + struct.pack(">i", 2**31 - 1),  # partition count
        b"\xff\xff" + struct.pack(">hi", -1, 1000) + struct.pack(">ih", 1, 3) + b"abc"
        + struct.pack(">iii", 1, 0, 2**31 - 1) + b"x" * 100,  # records size
        struct.pack(">h", 2**15 - 1) + b"t",  # transactional id
    ]
    for body in cases:
        tracemalloc.start()
        with pytest.raises(MalformedRequest):
            decode_produce_request(7, head + body, len(head))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 64 * 1024, (body, peak)


@FUZZ
@given(data=st.data())
def test_produce_batches_through_the_codec(data):
    """What the Produce handler does with each partition's records: batch_infos, then (for
    a storage that reads records) decode_batches or split_batch; only CorruptRecordError."""
    body, _ = wp.valid_request(data.draw, 0, data.draw(st.integers(3, 9)))
    records = data.draw(st.one_of(st.binary(max_size=200), st.just(_batch()).map(bytearray).flatmap(
        lambda b: st.tuples(st.integers(0, len(b) - 1), st.integers(0, 255)).map(
            lambda m: bytes(b[:m[0]]) + bytes([m[1]]) + bytes(b[m[0] + 1:])))))
    for impl in codec.implementations():
        wp.returns_or_corrupt(impl.batch_infos, records)
        wp.returns_or_corrupt(impl.decode_batches, records)
        wp.returns_or_corrupt(impl.split_batch, records, 2)


def _batch(compression="none", value=b"v" * 20, count=3):
    return codec.encode_batch([(i, 1_700_000_000_000, None, value, ()) for i in range(count)],
                              compression=compression)


@pytest.mark.parametrize("compression", ["gzip", "zstd", "lz4", "snappy"])
def test_decompression_bombs_stop_at_the_budget(compression):
    """A small batch that decompresses past MAX_DECOMPRESSED: CorruptRecordError, and the
    memory taken stays near the budget, not near what the bomb would expand to."""
    # Two records, so split_batch(bomb, 1) has to decompress (a batch small enough is kept whole).
    bomb = _batch(compression, value=bytes(codec.MAX_DECOMPRESSED // 2 + (8 << 20)), count=2)
    assert len(bomb) < 8 << 20
    for impl in codec.implementations():
        assert len(impl.batch_infos(bomb)) == 1  # the header alone is well-formed
        for fn in (impl.decode_batches, lambda b: impl.split_batch(b, 1)):
            tracemalloc.start()
            with pytest.raises(codec.CorruptRecordError):
                fn(bomb)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert peak < 3 * codec.MAX_DECOMPRESSED, (impl.__name__, peak)


@FUZZ
@given(metadata=st.binary(max_size=80))
def test_consumer_subscriptions(metadata):
    """JoinGroup metadata bytes, read for the group's subscribed topics: the errors its caller catches."""
    try:
        subscribed_topics_of(metadata)
    except (struct.error, ValueError, UnicodeDecodeError):
        pass
