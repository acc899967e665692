"""Record codec: implementation selection, CRC32C, varints, offset layout and
Record, run against every implementation (compiled and pure-Python) through
the ``impl`` fixture.  Batch encode/decode/verify/split and legacy message
sets are in test_codec_batches.py, which shares this module's fixture.  The
Kafka header <-> Pulsar property mapping is tested in test_pulsar_payload.py."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import crc32c as crc32c_package
import pytest

from kop_fast import _codec_py, codec

IMPLS = codec.implementations()


def _impl_id(module) -> str:
    return "python" if module is _codec_py else "cython"


@pytest.fixture(params=IMPLS, ids=_impl_id)
def impl(request):
    return request.param


TS = 1_700_000_000_000


# ---------------------------------------------------------------------------
# implementation selection


def test_expected_extensions_are_in_use():
    if os.environ.get("KOP_FAST_EXPECT_EXTENSIONS") == "1":
        assert codec.IMPLEMENTATION == "cython", (
            "KOP_FAST_EXPECT_EXTENSIONS=1 but the compiled codec is not in use"
        )
    assert codec.IMPLEMENTATION in ("cython", "python")
    if codec.extensions_disabled():
        assert codec.IMPLEMENTATION == "python"
        assert codec.implementations() == [_codec_py]
    else:
        assert codec.IMPLEMENTATION == "cython"
        assert codec.decode_batches is codec.implementations()[0].decode_batches


def test_no_extensions_env_selects_the_twin():
    env = dict(os.environ, KOP_FAST_NO_EXTENSIONS="1")
    out = subprocess.run(
        [sys.executable, "-c", "from kop_fast import codec; print(codec.IMPLEMENTATION)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "python"


@pytest.mark.parametrize("name", codec.API)
def test_both_implementations_export_the_api(name):
    for module in IMPLS:
        assert hasattr(module, name), f"{module.__name__} lacks {name}"


def test_exception_classes_are_shared():
    for module in IMPLS:
        assert module.CorruptRecordError is _codec_py.CorruptRecordError
        assert module.OffsetOverflowError is _codec_py.OffsetOverflowError
    assert issubclass(codec.CorruptRecordError, ValueError)
    assert issubclass(codec.OffsetOverflowError, ValueError)


# ---------------------------------------------------------------------------
# CRC32C

# RFC 3720 (iSCSI) B.4 test vectors plus the usual check value
CRC_VECTORS = [
    (b"", 0),
    (b"123456789", 0xE3069283),
    (bytes(32), 0x8A9136AA),
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
]

# lengths around the 8-byte, 3x256 and 3x4096 stream boundaries
CRC_LENGTHS = sorted(
    set(range(0, 70))
    | {255, 256, 257, 767, 768, 769, 775, 1536, 2000, 12287, 12288, 12289, 12295, 24576}
    | {24576 + 768 + 9, 100_003}
)


@pytest.mark.parametrize("data,expected", CRC_VECTORS)
def test_crc32c_vectors(impl, data, expected):
    assert impl.crc32c(data) == expected
    assert impl._crc32c_sw(data) == expected


def test_crc32c_hardware_software_and_reference_agree(impl):
    blob = os.urandom(max(CRC_LENGTHS) + 16)
    view = memoryview(blob)
    hw = getattr(impl, "_crc32c_hw", None)
    use_hw = hw is not None and impl.CRC32C_HARDWARE
    for length in CRC_LENGTHS:
        for align in (0, 1, 3, 7) if length < 30000 else (0, 5):
            chunk = view[align : align + length]
            expected = crc32c_package.crc32c(bytes(chunk))
            assert impl.crc32c(chunk) == expected, (length, align)
            if impl is not _codec_py or length < 3000:  # the twin's table code is slow
                assert impl._crc32c_sw(chunk) == expected, (length, align)
            if use_hw:
                assert hw(chunk) == expected, (length, align)


def test_crc32c_continues(impl):
    data = os.urandom(5000)
    whole = impl.crc32c(data)
    for cut in (0, 1, 7, 8, 769, 4999, 5000):
        assert impl.crc32c(data[cut:], impl.crc32c(data[:cut])) == whole
        if impl is not _codec_py:
            assert impl._crc32c_sw(data[cut:], impl._crc32c_sw(data[:cut])) == whole


def test_crc32c_accepts_buffers_and_checks_its_seed(impl):
    data = b"hello world"
    expected = crc32c_package.crc32c(data)
    assert impl.crc32c(bytearray(data)) == expected
    assert impl.crc32c(memoryview(data)) == expected
    assert isinstance(impl.CRC32C_HARDWARE, bool)
    with pytest.raises(ValueError):
        impl.crc32c(data, -1)
    with pytest.raises(ValueError):
        impl.crc32c(data, 1 << 32)
    with pytest.raises(TypeError):
        impl.crc32c("text")


def test_crc32c_hardware_flag_matches_the_cpu():
    compiled = [m for m in IMPLS if m is not _codec_py]
    if not compiled:
        pytest.skip("compiled codec not in use")
    (module,) = compiled
    try:
        with open("/proc/cpuinfo") as f:
            has_sse42 = " sse4_2" in f.read()
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    if os.environ.get("KOP_FAST_CRC32C_SOFTWARE") == "1":
        assert module.CRC32C_HARDWARE is False
    else:
        assert module.CRC32C_HARDWARE is has_sse42


def test_crc32c_software_switch_in_a_fresh_interpreter():
    if all(m is _codec_py for m in IMPLS):
        pytest.skip("compiled codec not in use")
    env = dict(os.environ, KOP_FAST_CRC32C_SOFTWARE="1")
    env.pop("KOP_FAST_NO_EXTENSIONS", None)
    code = (
        "from kop_fast import _codec as c; import os; d = os.urandom(100000); "
        "assert c.CRC32C_HARDWARE is False; "
        "assert c.crc32c(d) == c._crc32c_sw(d); print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


# ---------------------------------------------------------------------------
# varints

VARINT_CASES = [
    (0, b"\x00"),
    (-1, b"\x01"),
    (1, b"\x02"),
    (63, b"\x7e"),
    (-64, b"\x7f"),
    (64, b"\x80\x01"),
    (300, b"\xd8\x04"),
    (2**31 - 1, b"\xfe\xff\xff\xff\x0f"),
    (-(2**31), b"\xff\xff\xff\xff\x0f"),
    (2**63 - 1, b"\xfe" + b"\xff" * 8 + b"\x01"),
    (-(2**63), b"\xff" * 9 + b"\x01"),
]


@pytest.mark.parametrize("value,encoded", VARINT_CASES)
def test_varint_known_encodings(impl, value, encoded):
    assert impl.encode_varint(value) == encoded
    assert impl.decode_varint(encoded) == (value, len(encoded))
    assert impl.decode_varint(b"\xaa" + encoded + b"\x00", 1) == (value, len(encoded) + 1)


def test_varint_errors(impl):
    with pytest.raises(OverflowError):
        impl.encode_varint(2**63)
    with pytest.raises(OverflowError):
        impl.encode_varint(-(2**63) - 1)
    for bad in (b"", b"\x80", b"\xff\xff", b"\x80" * 10 + b"\x00", b"\xff" * 9 + b"\x02"):
        with pytest.raises(codec.CorruptRecordError):
            impl.decode_varint(bad)
    with pytest.raises(codec.CorruptRecordError):
        impl.decode_varint(b"\x00", 2)
    with pytest.raises(codec.CorruptRecordError):
        impl.decode_varint(b"\x00", -1)


# ---------------------------------------------------------------------------
# offset layout


def test_default_offset_layout(impl):
    layout = impl.get_offset_layout()
    assert layout == impl.DEFAULT_OFFSET_LAYOUT
    assert (layout.ledger_bits, layout.entry_bits, layout.index_bits) == (28, 21, 14)
    assert layout.total_bits == 63
    assert layout.max_ledger_id == 2**28 - 1
    assert layout.max_entry_id == 2**21 - 1
    assert layout.max_index == 2**14 - 1
    assert layout.max_offset == 2**63 - 1
    assert impl.pack_offset(0, 0, 0) == 0
    assert impl.pack_offset(1, 0, 0) == 1 << 35
    assert impl.pack_offset(0, 1, 0) == 1 << 14
    assert impl.pack_offset(0, 0, 1) == 1
    assert impl.pack_offset(3, 5) == impl.pack_offset(3, 5, 0)
    top = impl.pack_offset(2**28 - 1, 2**21 - 1, 2**14 - 1)
    assert top == 2**63 - 1
    assert impl.unpack_offset(top) == (2**28 - 1, 2**21 - 1, 2**14 - 1)
    assert impl.unpack_offset(impl.pack_offset(123456, 7890, 42)) == (123456, 7890, 42)


@pytest.mark.parametrize(
    "args",
    [(2**28, 0, 0), (0, 2**21, 0), (0, 0, 2**14), (-1, 0, 0), (0, -1, 0), (0, 0, -1), (2**80, 0, 0)],
)
def test_pack_offset_overflow(impl, args):
    with pytest.raises(codec.OffsetOverflowError, match="does not fit"):
        impl.pack_offset(*args)


@pytest.mark.parametrize("offset", [-1, -(2**63), 2**63, 2**70])
def test_unpack_offset_out_of_range(impl, offset):
    with pytest.raises(codec.OffsetOverflowError):
        impl.unpack_offset(offset)


def test_offset_layout_types(impl):
    with pytest.raises(TypeError):
        impl.pack_offset(1.5, 0, 0)
    with pytest.raises(TypeError):
        impl.unpack_offset("1")


def test_custom_offset_layouts(impl):
    # KoP's original 20/32/12 split used all 64 bits (offsets went negative
    # past ledger 2**19); the non-negative part of it is 19/32/12
    with pytest.raises(ValueError, match="63 bits"):
        impl.OffsetLayout(20, 32, 12)
    legacy = impl.OffsetLayout(19, 32, 12)
    assert legacy.max_ledger_id == 2**19 - 1
    assert legacy.pack(5, 2**32 - 1, 4095) == (5 << 44) | ((2**32 - 1) << 12) | 4095
    with pytest.raises(codec.OffsetOverflowError):
        legacy.pack(2**19, 0, 0)  # kop#175: ledger ids ran out
    small = impl.OffsetLayout(10, 10, 0)
    assert small.max_index == 0
    assert small.pack(3, 4) == (3 << 10) | 4
    assert small.unpack((3 << 10) | 4) == (3, 4, 0)
    with pytest.raises(codec.OffsetOverflowError):
        small.pack(0, 0, 1)
    with pytest.raises(codec.OffsetOverflowError):
        small.unpack(1 << 20)
    for bits in ((30, 30, 4), (0, 10, 10), (10, 0, 10), (10, 10, -1)):
        with pytest.raises(ValueError):
            impl.OffsetLayout(*bits)
    assert impl.OffsetLayout(28, 21, 14) == impl.DEFAULT_OFFSET_LAYOUT
    assert hash(impl.OffsetLayout(28, 21, 14)) == hash(impl.DEFAULT_OFFSET_LAYOUT)
    assert impl.OffsetLayout(1, 2, 3) != impl.OffsetLayout(3, 2, 1)
    assert "28" in repr(impl.DEFAULT_OFFSET_LAYOUT)
    assert pickle.loads(pickle.dumps(legacy)) == legacy


def test_set_offset_layout(impl):
    original = impl.get_offset_layout()
    try:
        layout = impl.OffsetLayout(30, 23, 10)
        impl.set_offset_layout(layout)
        assert impl.get_offset_layout() is layout
        assert impl.pack_offset(1, 0, 0) == 1 << 33
        assert impl.unpack_offset(1 << 33) == (1, 0, 0)
        with pytest.raises(codec.OffsetOverflowError):
            impl.pack_offset(0, 0, 1024)
        with pytest.raises(TypeError):
            impl.set_offset_layout((30, 23, 10))
    finally:
        impl.set_offset_layout(original)
    assert impl.get_offset_layout() is original


def test_offset_order_matches_message_id_order(impl):
    import random

    rng = random.Random(7)
    positions = [
        (rng.randrange(2**28), rng.randrange(2**21), rng.randrange(2**14)) for _ in range(300)
    ]
    positions += [(1, 0, 0), (0, 2**21 - 1, 2**14 - 1), (0, 0, 0), (5, 5, 5), (5, 5, 6), (5, 6, 0)]
    by_offset = sorted(positions, key=lambda p: impl.pack_offset(*p))
    assert by_offset == sorted(positions)


# ---------------------------------------------------------------------------
# Record


def test_record_is_tuple_like(impl):
    rec = impl.Record(5, TS, b"k", b"v", [("h", b"1"), ("n", None)])
    assert (rec.offset, rec.timestamp, rec.key, rec.value) == (5, TS, b"k", b"v")
    assert rec.headers == (("h", b"1"), ("n", None))
    assert tuple(rec) == (5, TS, b"k", b"v", (("h", b"1"), ("n", None)))
    assert rec == (5, TS, b"k", b"v", (("h", b"1"), ("n", None)))
    assert len(rec) == 5 and rec[0] == 5 and rec[3] == b"v"
    offset, timestamp, key, value, headers = rec
    assert offset == 5 and headers == rec.headers
    assert rec == impl.Record(5, TS, b"k", b"v", (("h", b"1"), ("n", None)))
    assert rec != impl.Record(6, TS, b"k", b"v", (("h", b"1"), ("n", None)))
    assert hash(rec) == hash(tuple(rec))
    assert impl.Record(1, 2, None, None).headers == ()
    assert impl.Record(1, 2, bytearray(b"k"), memoryview(b"v")) == (1, 2, b"k", b"v", ())
    assert type(impl.Record(1, 2, bytearray(b"k"), None).key) is bytes
    assert repr(rec).startswith("Record(offset=5, timestamp=")
    assert pickle.loads(pickle.dumps(rec)) == rec
    assert impl.Record(offset=1, timestamp=2, key=None, value=b"x") == (1, 2, None, b"x", ())


def test_records_release_their_fields(impl):
    # more Records than the compiled module's free list holds, made every way
    key, value = b"key %d" % id(impl), b"value %d" % id(impl)
    before = sys.getrefcount(key), sys.getrefcount(value)
    records = [impl.Record(i, TS, key, value) for i in range(1500)]
    records += [impl.Record(offset=i, timestamp=TS, key=key, value=value) for i in range(1500, 3000)]
    records += [pickle.loads(pickle.dumps(records[0])) for _ in range(10)]
    decoded = impl.decode_batches(impl.encode_batch(records[1000:3000]))[0].records
    assert decoded == records[1000:3000]
    assert sys.getrefcount(key) >= before[0] + 3000
    del records, decoded
    assert (sys.getrefcount(key), sys.getrefcount(value)) == before
    assert impl.Record(1, 2, key, value, (("h", value),)) == (1, 2, key, value, (("h", value),))
    assert (sys.getrefcount(key), sys.getrefcount(value)) == before


@pytest.mark.skipif(codec.IMPLEMENTATION != "cython", reason="the compiled Record only")
def test_compiled_record_fields_are_member_descriptors():
    # reads of key, value and headers specialize to LOAD_ATTR_SLOT only
    # through member descriptors (the consumer's per-record work)
    from kop_fast import _codec

    for name in ("key", "value", "headers"):
        assert type(_codec.Record.__dict__[name]).__name__ == "member_descriptor"
    assert _codec.Record.__new__(_codec.Record) == (0, 0, None, None, None)


def test_records_compare_across_implementations():
    recs = [m.Record(1, 2, b"k", b"v", (("a", b"b"),)) for m in IMPLS]
    for a in recs:
        for b in recs:
            assert a == b


@pytest.mark.parametrize(
    "args,exc",
    [
        (("x", 1, None, None), TypeError),
        ((1, 1.5, None, None), TypeError),
        ((1, 1, "text", None), TypeError),
        ((1, 1, None, 5), TypeError),
        ((1, 1, None, None, [("k", "text")]), TypeError),
        ((1, 1, None, None, [(b"k", b"v")]), TypeError),
        ((1, 1, None, None, [("k",)]), TypeError),
        ((1, 1, None, None, 5), TypeError),
        ((2**63, 1, None, None), OverflowError),
        ((1, -(2**63) - 1, None, None), OverflowError),
    ],
)
def test_record_validation(impl, args, exc):
    with pytest.raises(exc):
        impl.Record(*args)
