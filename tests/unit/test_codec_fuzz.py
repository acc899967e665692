"""Record codec under random input: Hypothesis round trips (every
implementation writes the same bytes and reads them back), and random,
truncated and mutated record sets, which must either decode - identically in
every implementation - or raise CorruptRecordError, nothing else."""

from __future__ import annotations

import random
import struct
import zlib

import crc32c as crc32c_package
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kop_fast import _codec_py, codec

IMPLS = codec.implementations()
CorruptRecordError = codec.CorruptRecordError
COMPRESSIONS = ["none", "gzip", "snappy", "lz4", "zstd"]
TS = 1_700_000_000_000

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _impl_id(module) -> str:
    return "python" if module is _codec_py else "cython"


@pytest.fixture(params=IMPLS, ids=_impl_id)
def impl(request):
    return request.param


# ---------------------------------------------------------------------------
# strategies

payloads = st.one_of(st.none(), st.binary(max_size=64))
header_keys = st.one_of(
    st.text(max_size=12),
    st.binary(max_size=8).map(lambda b: b.decode("utf-8", "surrogateescape")),
    st.sampled_from(["__kafka.hdr.order", "__kafka.hdr.0.tt.x", "a", "a.b"]),
)
headers_strategy = st.lists(st.tuples(header_keys, payloads), max_size=5).map(tuple)


@st.composite
def record_lists(draw):
    base = draw(st.integers(0, 2**40))
    n = draw(st.integers(1, 25))
    gaps = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
    first_ts = draw(st.integers(-1, 2**45))
    rows = []
    offset = base + draw(st.integers(0, 5))
    for i in range(n):
        rows.append(
            (
                offset,
                first_ts + draw(st.integers(-(2**20), 2**20)) if i else first_ts,
                draw(payloads),
                draw(payloads),
                draw(headers_strategy),
            )
        )
        offset += gaps[i]
    return base, rows


@FUZZ
@given(
    data=record_lists(),
    compression=st.sampled_from(COMPRESSIONS),
    producer=st.tuples(st.integers(-1, 2**62), st.integers(-1, 2**15 - 1), st.integers(-1, 2**31 - 1)),
    flags=st.tuples(st.booleans(), st.booleans()),
)
def test_round_trip_is_identical_in_every_implementation(data, compression, producer, flags):
    base, rows = data
    kwargs = dict(
        base_offset=base,
        compression=compression,
        producer_id=producer[0],
        producer_epoch=producer[1],
        base_sequence=producer[2],
        transactional=flags[0],
        control=flags[1],
    )
    encoded = [impl.encode_batch(rows, **kwargs) for impl in IMPLS]
    assert all(buf == encoded[0] for buf in encoded)
    records = [IMPLS[0].Record(*row) for row in rows]
    assert IMPLS[0].encode_batch(records, **kwargs) == encoded[0]
    for impl in IMPLS:
        (batch,) = impl.decode_batches(encoded[0])
        assert [tuple(r) for r in batch.records] == rows
        assert batch.base_offset == base
        assert batch.last_offset_delta == rows[-1][0] - base
        assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == producer
        assert (batch.is_transactional, batch.is_control) == flags
        assert batch.max_timestamp == max(r[1] for r in rows)
        assert impl.verify_batches(encoded[0]) == (1, len(rows))


@FUZZ
@given(
    ledger=st.integers(0, 2**28 - 1),
    entry=st.integers(0, 2**21 - 1),
    index=st.integers(0, 2**14 - 1),
    other=st.tuples(st.integers(0, 2**28 - 1), st.integers(0, 2**21 - 1), st.integers(0, 2**14 - 1)),
)
def test_offset_packing_round_trips_and_orders(ledger, entry, index, other):
    for impl in IMPLS:
        offset = impl.pack_offset(ledger, entry, index)
        assert 0 <= offset < 2**63
        assert impl.unpack_offset(offset) == (ledger, entry, index)
        other_offset = impl.pack_offset(*other)
        assert (offset < other_offset) == ((ledger, entry, index) < other)
        assert (offset == other_offset) == ((ledger, entry, index) == other)


@FUZZ
@given(value=st.integers(-(2**63), 2**63 - 1))
def test_varints_round_trip(value):
    for impl in IMPLS:
        encoded = impl.encode_varint(value)
        assert encoded == IMPLS[-1].encode_varint(value)
        assert impl.decode_varint(encoded) == (value, len(encoded))


# ---------------------------------------------------------------------------
# hostile input: every implementation must agree, and only CorruptRecordError


def outcome(fn, *args, **kwargs):
    try:
        result = fn(*args, **kwargs)
    except CorruptRecordError:
        return "corrupt"
    if isinstance(result, list) and result and hasattr(result[0], "records"):
        return [
            (
                b.base_offset, b.last_offset_delta, b.magic, b.attributes, b.base_timestamp,
                b.max_timestamp, b.producer_id, b.producer_epoch, b.base_sequence,
                [tuple(r) for r in b.records],
            )
            for b in result
        ]
    if isinstance(result, list):
        return [bytes(x) for x in result] if result and not isinstance(result[0], tuple) else result
    return result


def assert_agree(buf, **kwargs):
    decoded = [outcome(impl.decode_batches, buf, **kwargs) for impl in IMPLS]
    assert all(d == decoded[0] for d in decoded), decoded
    verified = [outcome(impl.batch_infos, buf) for impl in IMPLS]
    assert all(v == verified[0] for v in verified)
    return decoded[0]


def fix_crc(buf: bytearray) -> bytearray:
    if len(buf) >= 61 and buf[16] == 2:
        length = struct.unpack_from(">i", buf, 8)[0]
        end = min(len(buf), 12 + max(length, 0))
        if end > 21:
            struct.pack_into(">I", buf, 17, crc32c_package.crc32c(bytes(buf[21:end])))
    return buf


def sample_batch(compression="none", n=6):
    rows = [
        (i, TS + i, b"key%d" % i if i % 2 else None, b"value" * i, (("h", b"x"), ("n", None)) if i % 3 else ())
        for i in range(n)
    ]
    return IMPLS[-1].encode_batch(rows, compression=compression, producer_id=1, producer_epoch=0)


def legacy_message(offset, magic, attributes, key, value):
    body = struct.pack(">bb", magic, attributes)
    if magic == 1:
        body += struct.pack(">q", TS)
    for part in (key, value):
        body += struct.pack(">i", -1) if part is None else struct.pack(">i", len(part)) + part
    msg = struct.pack(">I", zlib.crc32(body)) + body
    return struct.pack(">qi", offset, len(msg)) + msg


@FUZZ
@given(buf=st.binary(max_size=300))
def test_random_bytes(buf):
    assert_agree(buf)
    assert_agree(buf, allow_partial_tail=True)
    for impl in IMPLS:
        try:
            impl.split_batch(buf, 2)
        except CorruptRecordError:
            pass


@FUZZ
@given(data=st.data())
def test_random_bytes_behind_a_plausible_header(data):
    """Random record bytes after a well-formed v2 header with a correct CRC,
    so the record parser itself sees the garbage."""
    body = data.draw(st.binary(max_size=200))
    count = data.draw(st.integers(-2, 12))
    attributes = data.draw(st.sampled_from([0, 0, 0, 1, 2, 3, 4, 7, 8, 0x30]))
    header = struct.pack(">hiqqqhii", attributes, 3, TS, TS + 5, -1, -1, -1, count)
    crc = crc32c_package.crc32c(header + body)
    buf = struct.pack(">qiibI", 0, 49 + len(body), -1, 2, crc) + header + body
    assert_agree(buf)


def test_truncations(impl):
    a = sample_batch("none")
    b = sample_batch("gzip")
    legacy = legacy_message(7, 1, 0, b"k", b"v")
    whole = a + b + legacy
    assert len(impl.decode_batches(whole)) == 3
    for cut in range(len(whole)):
        buf = whole[:cut]
        complete = sum(1 for end in (len(a), len(a) + len(b), len(whole)) if end <= cut)
        partial = cut not in (0, len(a), len(a) + len(b))
        if partial:
            with pytest.raises(CorruptRecordError):
                impl.decode_batches(buf)
        else:
            assert len(impl.decode_batches(buf)) == complete
        assert len(impl.decode_batches(buf, allow_partial_tail=True)) == complete
        if cut < len(a) + len(b) and partial:
            with pytest.raises(CorruptRecordError):
                impl.verify_batches(buf)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_mutations_with_fixed_crc(compression):
    """Flip, overwrite, insert and delete bytes, then repair the CRC so the
    parsers (and decompressors) see the damage."""
    rng = random.Random(f"mutate-{compression}")
    good = sample_batch(compression)
    outcomes = {"corrupt": 0, "ok": 0}
    for _ in range(150 if compression == "none" else 60):
        buf = bytearray(good)
        for _ in range(rng.choice([1, 1, 2, 4])):
            op = rng.random()
            pos = rng.randrange(8, len(buf))
            if op < 0.5:
                buf[pos] ^= 1 << rng.randrange(8)
            elif op < 0.75:
                buf[pos] = rng.choice([0x00, 0x01, 0x7F, 0x80, 0xFF, rng.randrange(256)])
            elif op < 0.9:
                buf[pos:pos] = bytes([rng.randrange(256)])
            else:
                del buf[pos]
        if rng.random() < 0.7:  # mostly keep the batch length consistent
            struct.pack_into(">i", buf, 8, len(buf) - 12)
        result = assert_agree(bytes(fix_crc(buf)))
        outcomes["corrupt" if result == "corrupt" else "ok"] += 1
    assert outcomes["corrupt"] > 0


def test_legacy_mutations():
    import cramjam

    rng = random.Random("legacy")
    inner = b"".join(legacy_message(i, 1, 0, b"k%d" % i, b"v%d" % i) for i in range(3))
    messages = [
        legacy_message(0, 0, 0, b"key", b"value"),
        legacy_message(5, 1, 0, None, b"value"),
        legacy_message(2, 1, 1, None, bytes(cramjam.gzip.compress(inner))),
        legacy_message(2, 1, 2, None, bytes(cramjam.snappy.compress_raw(inner))),
    ]
    for good in messages:
        assert assert_agree(good) != "corrupt"
        for _ in range(60):
            buf = bytearray(good)
            pos = rng.randrange(8, len(buf))
            buf[pos] ^= 1 << rng.randrange(8)
            if rng.random() < 0.8 and len(buf) > 16:  # repair the CRC32
                struct.pack_into(">I", buf, 12, zlib.crc32(bytes(buf[16:])))
            assert_agree(bytes(buf))


def test_hostile_sizes_do_not_allocate(impl):
    # record count and lengths claiming gigabytes
    header = struct.pack(">hiqqqhii", 0, 0, TS, TS, -1, -1, -1, 2**31 - 1)
    body = b"\x02\x00\x00\x00\x01\xfe\xff\xff\xff\x0f"
    crc = crc32c_package.crc32c(header + body)
    buf = struct.pack(">qiibI", 0, 49 + len(body), -1, 2, crc) + header + body
    with pytest.raises(CorruptRecordError):
        impl.decode_batches(buf)
    with pytest.raises(CorruptRecordError):
        impl.verify_batches(buf)
    huge_length = struct.pack(">qi", 0, 2**31 - 1) + bytes(60)
    with pytest.raises(CorruptRecordError):
        impl.decode_batches(huge_length)
    assert impl.decode_batches(huge_length, allow_partial_tail=True) == []
