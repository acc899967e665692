"""Record codec: API behaviour, run against every implementation
(compiled and pure-Python) through the ``impl`` fixture."""

from __future__ import annotations

import os
import pickle
import struct
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


def make_records(impl, n=5, base=0, headers=()):
    return [
        impl.Record(base + i, TS + i, b"k%d" % i if i % 2 else None, b"v" * i, headers)
        for i in range(n)
    ]


def fields(records):
    return [tuple(r) for r in records]


def fix_crc(buf: bytearray, pos: int = 0) -> bytearray:
    """Recompute the CRC of the v2 batch at ``pos`` (after a test mutates it)."""
    length = struct.unpack_from(">i", buf, pos + 8)[0]
    crc = crc32c_package.crc32c(bytes(buf[pos + 21 : pos + 12 + length]))
    struct.pack_into(">I", buf, pos + 17, crc)
    return buf


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


# ---------------------------------------------------------------------------
# encode / decode

COMPRESSIONS = ["none", "gzip", "snappy", "lz4", "zstd"]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_round_trip(impl, compression):
    records = make_records(impl, 20, base=100, headers=(("h", b"x"), ("z", None)))
    records.append(impl.Record(120, TS - 5, b"", None, ()))
    buf = impl.encode_batch(
        records,
        base_offset=100,
        compression=compression,
        producer_id=42,
        producer_epoch=3,
        base_sequence=17,
        partition_leader_epoch=9,
    )
    assert isinstance(buf, bytes)
    assert impl.verify_batches(buf) == (1, 21)
    (batch,) = impl.decode_batches(buf)
    assert fields(batch.records) == fields(records)
    assert batch.base_offset == 100
    assert batch.last_offset_delta == 20
    assert batch.next_offset == 121
    assert batch.partition_leader_epoch == 9
    assert batch.magic == 2
    assert batch.compression == COMPRESSIONS.index(compression)
    assert batch.attributes == COMPRESSIONS.index(compression)
    assert batch.timestamp_type == 0
    assert batch.is_transactional is False and batch.is_control is False
    assert batch.base_timestamp == TS
    assert batch.max_timestamp == TS + 19
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (42, 3, 17)
    # the same bytes from every implementation
    for other in IMPLS:
        assert other.encode_batch(
            [tuple(r) for r in records],
            base_offset=100,
            compression=COMPRESSIONS.index(compression),
            producer_id=42,
            producer_epoch=3,
            base_sequence=17,
            partition_leader_epoch=9,
        ) == buf


def test_encode_defaults_and_flags(impl):
    buf = impl.encode_batch([impl.Record(0, TS, None, b"v")])
    (pos, length, base, last_delta, count, attributes, bts, mts, pid, epoch, seq) = (
        impl.batch_infos(buf)[0]
    )
    assert (pos, length, base, last_delta, count) == (0, len(buf), 0, 0, 1)
    assert (attributes, bts, mts, pid, epoch, seq) == (0, TS, TS, -1, -1, -1)
    assert struct.unpack_from(">i", buf, 12)[0] == -1  # partition leader epoch

    buf = impl.encode_batch(
        [impl.Record(7, TS, None, b"v"), impl.Record(9, TS + 9, None, b"w")],
        base_offset=7,
        transactional=True,
        control=True,
        timestamp_type=1,
    )
    (batch,) = impl.decode_batches(buf)
    assert batch.attributes == 0x10 | 0x20 | 0x08
    assert batch.is_transactional and batch.is_control and batch.timestamp_type == 1
    assert batch.last_offset_delta == 2
    # log-append time: every record reports the batch's max timestamp
    assert [r.timestamp for r in batch.records] == [TS + 9, TS + 9]
    assert [r.offset for r in batch.records] == [7, 9]


def test_encode_rejects_bad_input(impl):
    rec = impl.Record(0, TS, None, b"v")
    with pytest.raises(ValueError):
        impl.encode_batch([])
    with pytest.raises(ValueError):
        impl.encode_batch([rec], compression="brotli")
    with pytest.raises(ValueError):
        impl.encode_batch([rec], compression=7)
    with pytest.raises(ValueError):
        impl.encode_batch([rec], base_offset=1)  # negative delta
    with pytest.raises(ValueError):
        impl.encode_batch([rec, impl.Record(0, TS, None, b"v")])  # not increasing
    with pytest.raises(ValueError):
        impl.encode_batch([rec, impl.Record(2**31, TS, None, b"v")])
    with pytest.raises(ValueError):
        impl.encode_batch([rec], producer_epoch=2**15)
    with pytest.raises(ValueError):
        impl.encode_batch([rec], base_sequence=2**31)
    with pytest.raises(ValueError):
        impl.encode_batch([rec], timestamp_type=2)
    with pytest.raises(ValueError):
        impl.encode_batch(
            [impl.Record(0, -(2**63), None, None), impl.Record(1, 2**63 - 1, None, None)]
        )
    with pytest.raises(TypeError):
        impl.encode_batch([(0, TS, "str", None, ())])
    with pytest.raises(TypeError):
        impl.encode_batch([(0, TS, None)])
    with pytest.raises(TypeError):
        impl.encode_batch([5])
    with pytest.raises(ValueError):
        impl.encode_batch([(0, TS, None, None, (("\ud800", None),))])  # unencodable key


def test_encode_accepts_tuples_iterables_and_buffers(impl):
    expected = impl.encode_batch(
        [impl.Record(0, TS, b"k", b"v", (("h", b"x"),)), impl.Record(1, TS, None, None)]
    )
    assert impl.encode_batch([(0, TS, b"k", b"v", (("h", b"x"),)), (1, TS, None, None, ())]) == expected
    assert impl.encode_batch(
        iter([(0, TS, bytearray(b"k"), memoryview(b"v"), [["h", bytearray(b"x")]]), (1, TS, None, None, [])])
    ) == expected
    caller_list = [(0, TS, bytearray(b"k"), b"v", (("h", b"x"),)), (1, TS, None, None, ())]
    snapshot = list(caller_list)
    assert impl.encode_batch(caller_list) == expected
    assert caller_list == snapshot


def test_header_keys_with_undecodable_bytes_round_trip(impl):
    raw_batch = bytearray(impl.encode_batch([(0, TS, None, b"v", (("k", b"x"),))]))
    # rewrite the header key "k" into the invalid UTF-8 byte 0xff
    index = raw_batch.rindex(b"k")
    raw_batch[index] = 0xFF
    fix_crc(raw_batch)
    (batch,) = impl.decode_batches(raw_batch)
    (key, value) = batch.records[0].headers[0]
    assert key == "\udcff" and value == b"x"
    assert impl.encode_batch(batch.records) == bytes(raw_batch)


def test_decode_several_batches_and_buffer_types(impl):
    a = impl.encode_batch(make_records(impl, 3), compression="lz4")
    b = impl.encode_batch(make_records(impl, 4, base=3), base_offset=3)
    for buf in (a + b, bytearray(a + b), memoryview(a + b)):
        batches = impl.decode_batches(buf)
        assert [len(x.records) for x in batches] == [3, 4]
        assert [r.offset for x in batches for r in x.records] == list(range(7))
    assert impl.decode_batches(b"") == []
    assert impl.verify_batches(a + b) == (2, 7)
    infos = impl.batch_infos(a + b)
    assert [(i[0], i[1], i[2], i[4]) for i in infos] == [(0, len(a), 0, 3), (len(a), len(b), 3, 4)]


def test_partial_tail(impl):
    a = impl.encode_batch(make_records(impl, 3))
    b = impl.encode_batch(make_records(impl, 4, base=3), base_offset=3)
    for cut in (1, 11, 12, 30, len(b) - 1):
        buf = a + b[:cut]
        with pytest.raises(codec.CorruptRecordError, match="truncated"):
            impl.decode_batches(buf)
        batches = impl.decode_batches(buf, allow_partial_tail=True)
        assert len(batches) == 1 and len(batches[0].records) == 3
        with pytest.raises(codec.CorruptRecordError):
            impl.verify_batches(buf)
    # a complete but corrupt batch is never skipped
    bad = bytearray(a)
    bad[-1] ^= 1
    with pytest.raises(codec.CorruptRecordError, match="CRC"):
        impl.decode_batches(bytes(bad) + b[:10], allow_partial_tail=True)


# ---------------------------------------------------------------------------
# verify_batches


def test_verify_detects_problems(impl):
    good = impl.encode_batch(make_records(impl, 5))

    def mutated(pos, fmt, value, recompute_crc=True):
        buf = bytearray(good)
        struct.pack_into(fmt, buf, pos, value)
        return bytes(fix_crc(buf) if recompute_crc else buf)

    cases = {
        "CRC": mutated(len(good) - 1, ">B", good[-1] ^ 0x40, recompute_crc=False),
        "magic": mutated(16, ">b", 1, recompute_crc=False),
        "length": mutated(8, ">i", 20),
        "truncated": mutated(8, ">i", len(good)),
        "negative record count": mutated(57, ">i", -1),
        "declares 6 records": mutated(57, ">i", 6),
        "declares 4 records": mutated(57, ">i", 4),
        "compression codec": mutated(21, ">h", 5),
        "overruns": mutated(61, ">B", 0x7E),  # first record length 63
    }
    for expected, buf in cases.items():
        with pytest.raises(codec.CorruptRecordError, match=expected):
            impl.verify_batches(buf)
        with pytest.raises(codec.CorruptRecordError):
            impl.batch_infos(buf)
        with pytest.raises(codec.CorruptRecordError):
            impl.decode_batches(buf)
    with pytest.raises(codec.CorruptRecordError):
        impl.verify_batches(good + good[:70])
    assert impl.verify_batches(b"") == (0, 0)


def test_verify_trusts_count_of_compressed_batches(impl):
    buf = impl.encode_batch(make_records(impl, 5), compression="gzip")
    assert impl.verify_batches(buf) == (1, 5)
    wrong = bytes(fix_crc(bytearray(buf[:57] + struct.pack(">i", 9) + buf[61:])))
    assert impl.verify_batches(wrong) == (1, 9)  # only decoding can tell
    with pytest.raises(codec.CorruptRecordError):
        impl.decode_batches(wrong)


# ---------------------------------------------------------------------------
# patch_base_offset


def test_patch_base_offset(impl):
    buf = impl.encode_batch(make_records(impl, 3), compression="snappy")
    for writable in (bytearray(buf), memoryview(bytearray(buf))):
        impl.patch_base_offset(writable, 1000)
        assert impl.verify_batches(writable) == (1, 3)
        (batch,) = impl.decode_batches(writable)
        assert [r.offset for r in batch.records] == [1000, 1001, 1002]
        assert bytes(writable)[8:] == buf[8:]
    with pytest.raises(TypeError):
        impl.patch_base_offset(buf, 5)
    with pytest.raises(codec.OffsetOverflowError):
        impl.patch_base_offset(bytearray(buf), -1)
    with pytest.raises(codec.OffsetOverflowError):
        impl.patch_base_offset(bytearray(buf), 2**63)
    with pytest.raises(codec.CorruptRecordError):
        impl.patch_base_offset(bytearray(10), 5)


# ---------------------------------------------------------------------------
# split_batch


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_split_batch(impl, compression):
    records = make_records(impl, 10, base=50, headers=(("h", b"1"),))
    buf = impl.encode_batch(
        records,
        base_offset=50,
        compression=compression,
        producer_id=7,
        producer_epoch=2,
        base_sequence=100,
        transactional=True,
    )
    assert impl.split_batch(buf, 10)[0] is buf
    assert impl.split_batch(buf, 11) == [buf]
    parts = impl.split_batch(buf, 3)
    assert len(parts) == 4
    infos = [impl.batch_infos(p)[0] for p in parts]
    assert [i[4] for i in infos] == [3, 3, 3, 1]  # record counts
    assert [i[2] for i in infos] == [50, 53, 56, 59]  # base offsets
    assert [i[10] for i in infos] == [100, 103, 106, 109]  # base sequences
    assert {(i[8], i[9]) for i in infos} == {(7, 2)}
    assert {i[5] for i in infos} == {COMPRESSIONS.index(compression) | 0x10}
    decoded = [r for p in parts for r in impl.decode_batches(p)[0].records]
    assert fields(decoded) == fields(records)
    for p in parts:
        assert p == _codec_py.split_batch(p, 3)[0]
    assert [bytes(p) for p in parts] == [bytes(p) for p in _codec_py.split_batch(buf, 3)]


def test_split_batch_sequence_wraps(impl):
    buf = impl.encode_batch(make_records(impl, 4), producer_id=1, producer_epoch=0, base_sequence=2**31 - 2)
    parts = impl.split_batch(buf, 1)
    assert [impl.batch_infos(p)[0][10] for p in parts] == [2**31 - 2, 2**31 - 1, 0, 1]


def test_split_batch_errors(impl):
    buf = impl.encode_batch(make_records(impl, 4))
    with pytest.raises(ValueError):
        impl.split_batch(buf, 0)
    with pytest.raises(codec.CorruptRecordError):
        impl.split_batch(buf + buf, 2)
    with pytest.raises(codec.CorruptRecordError):
        impl.split_batch(buf[:-1], 2)


# ---------------------------------------------------------------------------
# bounded decompression


@pytest.mark.parametrize("compression", ["gzip", "snappy", "lz4", "zstd"])
def test_decompression_cap(impl, compression):
    big = impl.encode_batch([impl.Record(0, TS, None, bytes(3 << 20))], compression=compression)
    assert len(big) < 300_000
    (batch,) = impl.decode_batches(big, max_decompressed=4 << 20)
    assert len(batch.records[0].value) == 3 << 20
    with pytest.raises(codec.CorruptRecordError):
        impl.decode_batches(big, max_decompressed=1 << 20)
    # the budget covers the whole call, not each batch
    with pytest.raises(codec.CorruptRecordError):
        impl.decode_batches(big + big, max_decompressed=5 << 20)
    with pytest.raises(ValueError):
        impl.decode_batches(big, max_decompressed=-1)


@pytest.mark.parametrize("name", ["gzip", "lz4", "zstd"])
def test_cramjam_reports_a_full_output_buffer(name):
    """The codec grows its output buffer only on this error; any other
    decompression error means corrupt data.  Pin cramjam's wording."""
    import cramjam

    module = getattr(cramjam, name)
    packed = bytes(module.compress(bytes(100_000)))
    with pytest.raises(cramjam.DecompressionError, match="whole buffer"):
        module.decompress_into(packed, bytearray(1000))
    assert module.decompress_into(packed, bytearray(100_001)) == 100_000


def test_zip_bomb_hits_the_default_cap(impl):
    import cramjam

    records = bytes([0x80, 0x80, 0x80, 0x40])  # record length varint of ~64 MiB, then zeros
    payload = bytes(cramjam.zstd.compress(records + bytes(impl.MAX_DECOMPRESSED), level=1))
    header = struct.pack(">hiqqqhii", 4, 0, TS, TS, -1, -1, -1, 1)
    crc = crc32c_package.crc32c(header + payload)
    bomb = struct.pack(">qiibI", 0, 49 + len(payload), -1, 2, crc) + header + payload
    assert impl.verify_batches(bomb) == (1, 1)
    with pytest.raises(codec.CorruptRecordError, match="limit"):
        impl.decode_batches(bomb)


def test_snappy_declared_size_beyond_cap_fails_before_allocating(impl):
    # raw snappy stream whose length preamble claims 2**32 - 1 bytes
    payload = b"\xff\xff\xff\xff\x0f" + b"\x00" * 8
    header = struct.pack(">hiqqqhii", 2, 0, TS, TS, -1, -1, -1, 1)
    crc = crc32c_package.crc32c(header + payload)
    buf = struct.pack(">qiibI", 0, 49 + len(payload), -1, 2, crc) + header + payload
    with pytest.raises(codec.CorruptRecordError, match="snappy"):
        impl.decode_batches(buf)


# ---------------------------------------------------------------------------
# legacy message sets (magic 0 and 1)


def legacy_message(offset, magic, attributes, timestamp, key, value):
    body = struct.pack(">bb", magic, attributes)
    if magic == 1:
        body += struct.pack(">q", timestamp)
    for part in (key, value):
        body += struct.pack(">i", -1) if part is None else struct.pack(">i", len(part)) + part
    import zlib

    msg = struct.pack(">I", zlib.crc32(body)) + body
    return struct.pack(">qi", offset, len(msg)) + msg


@pytest.mark.parametrize("magic", [0, 1])
def test_legacy_uncompressed(impl, magic):
    buf = legacy_message(10, magic, 0, TS, b"k", b"v") + legacy_message(11, magic, 0, TS + 1, None, None)
    batches = impl.decode_batches(buf)
    assert len(batches) == 2
    ts = TS if magic else -1
    assert fields(batches[0].records) == [(10, ts, b"k", b"v", ())]
    assert fields(batches[1].records) == [(11, TS + 1 if magic else -1, None, None, ())]
    b = batches[0]
    assert (b.magic, b.base_offset, b.last_offset_delta, b.compression, b.producer_id) == (magic, 10, 0, 0, -1)
    with pytest.raises(codec.CorruptRecordError, match="magic"):
        impl.verify_batches(buf)


@pytest.mark.parametrize("magic", [0, 1])
@pytest.mark.parametrize("compression", ["gzip", "snappy"])
def test_legacy_wrapper_compression(impl, magic, compression):
    import cramjam

    inner_offsets = [0, 1, 2] if magic == 1 else [20, 21, 22]
    inner = b"".join(
        legacy_message(o, magic, 0, TS + i, b"k%d" % i, b"v%d" % i) for i, o in enumerate(inner_offsets)
    )
    if compression == "gzip":
        packed = bytes(cramjam.gzip.compress(inner))
    else:
        packed = bytes(cramjam.snappy.compress_raw(inner))  # librdkafka style, no xerial framing
    codec_id = COMPRESSIONS.index(compression)
    wrapper = legacy_message(22, magic, codec_id, TS + 9, None, packed)
    (batch,) = impl.decode_batches(wrapper)
    ts = [TS, TS + 1, TS + 2] if magic else [-1, -1, -1]
    assert fields(batch.records) == [
        (20 + i, ts[i], b"k%d" % i, b"v%d" % i, ()) for i in range(3)
    ]
    assert (batch.base_offset, batch.last_offset_delta, batch.compression) == (20, 2, codec_id)
    if magic == 1:  # log-append time on the wrapper overrides the inner timestamps
        wrapper = legacy_message(22, 1, codec_id | 0x08, TS + 9, None, packed)
        (batch,) = impl.decode_batches(wrapper)
        assert [r.timestamp for r in batch.records] == [TS + 9] * 3
        assert batch.timestamp_type == 1


def test_legacy_errors(impl):
    good = legacy_message(1, 1, 0, TS, b"k", b"v")
    bad_crc = bytearray(good)
    bad_crc[-1] ^= 1
    with pytest.raises(codec.CorruptRecordError, match="CRC"):
        impl.decode_batches(bad_crc)
    import cramjam

    nested = legacy_message(0, 1, 1, TS, None, bytes(cramjam.gzip.compress(good)))
    with pytest.raises(codec.CorruptRecordError, match="nested"):
        impl.decode_batches(legacy_message(0, 1, 1, TS, None, bytes(cramjam.gzip.compress(nested))))
    with pytest.raises(codec.CorruptRecordError, match="no value"):
        impl.decode_batches(legacy_message(0, 1, 1, TS, None, None))
    with pytest.raises(codec.CorruptRecordError, match="no messages"):
        impl.decode_batches(legacy_message(0, 1, 1, TS, None, bytes(cramjam.gzip.compress(b""))))
    with pytest.raises(codec.CorruptRecordError, match="zstd"):
        impl.decode_batches(legacy_message(0, 1, 4, TS, None, bytes(cramjam.zstd.compress(good))))
    mixed = legacy_message(0, 0, 1, TS, None, bytes(cramjam.gzip.compress(good)))
    with pytest.raises(codec.CorruptRecordError, match="magic"):
        impl.decode_batches(mixed)
    extremes = legacy_message(-(2**63), 0, 0, TS, None, b"a") + legacy_message(2**63 - 1, 0, 0, TS, None, b"b")
    with pytest.raises(codec.CorruptRecordError, match="64 bits"):
        impl.decode_batches(legacy_message(0, 0, 1, TS, None, bytes(cramjam.gzip.compress(extremes))))


def _xxh32_header_checksum(descriptor: bytes) -> int:
    return (_codec_py._xxh32(descriptor) >> 8) & 0xFF


def test_legacy_v0_lz4_with_the_old_kafka_header_checksum(impl):
    import cramjam

    inner = b"".join(legacy_message(i, 0, 0, -1, None, b"v%d" % i) for i in range(3))
    compressor = cramjam.lz4.Compressor(content_checksum=False, block_linked=False)
    compressor.compress(inner)
    frame = bytearray(compressor.finish())
    # Kafka 0.8/0.9 hashed the magic bytes too (KAFKA-3160)
    frame[6] = _xxh32_header_checksum(bytes(frame[0:6]))
    assert frame[6] != _xxh32_header_checksum(bytes(frame[4:6]))
    (batch,) = impl.decode_batches(legacy_message(2, 0, 3, -1, None, bytes(frame)))
    assert [r.value for r in batch.records] == [b"v0", b"v1", b"v2"]


# ---------------------------------------------------------------------------
# headers <-> properties


def test_plain_headers_map_directly(impl):
    headers = (("content-type", b"application/json"), ("trace", "ünïcode".encode()))
    props = impl.headers_to_properties(headers)
    assert props == {"content-type": "application/json", "trace": "ünïcode"}
    assert impl.properties_to_headers(props) == headers
    assert impl.headers_to_properties(()) == {}
    assert impl.properties_to_headers({}) == ()


def test_pulsar_properties_become_headers(impl):
    props = {"b": "2", "a": "1", "empty": "", "ü": "ß"}
    headers = impl.properties_to_headers(props)
    assert headers == (("a", b"1"), ("b", b"2"), ("empty", b""), ("ü", "ß".encode()))
    # something that merely looks reserved stays an ordinary property
    odd = {"__kafka.hdr.x": "1", "__kafka.hdr.1.zz.k": "2", "__kafka.hdr.order": "nope"}
    assert set(impl.properties_to_headers(odd)) == {(k, v.encode()) for k, v in odd.items()}


def test_escaped_headers(impl):
    headers = (
        ("z", b"last-but-first"),
        ("bin", b"\xff\x00\xfe"),
        ("null", None),
        ("z", b"duplicate"),
        ("__kafka.hdr.order", b"reserved"),
        ("\udcff\udcfe", b"undecodable key"),
        ("a", b"plain"),
        ("dot.ted.key", b""),
    )
    props = impl.headers_to_properties(headers)
    assert props["z"] == "last-but-first"
    assert props["a"] == "plain"
    assert props["dot.ted.key"] == ""
    assert props["__kafka.hdr.1.tb.bin"] == "/wD+"
    assert props["__kafka.hdr.2.tn.null"] == ""
    assert props["__kafka.hdr.3.tt.z"] == "duplicate"
    assert props["__kafka.hdr.4.tt.__kafka.hdr.order"] == "reserved"
    assert props["__kafka.hdr.5.bt.//4="] == "undecodable key"
    assert props["__kafka.hdr.order"] == '["z","a","dot.ted.key"]'
    assert impl.properties_to_headers(props) == headers
    # Pulsar's C++ client hands properties back sorted by key
    assert impl.properties_to_headers(dict(sorted(props.items()))) == headers
    assert impl.properties_to_headers(dict(reversed(props.items()))) == headers


def test_headers_to_properties_is_identical_across_implementations():
    headers = (("b", b"1"), ("a", b"\x80"), ("b", None), ("c", b"x"))
    results = [m.headers_to_properties(headers) for m in IMPLS]
    assert all(r == results[0] for r in results)
    assert all(list(r) == list(results[0]) for r in results)


def test_headers_to_properties_rejects_bad_input(impl):
    with pytest.raises(TypeError):
        impl.headers_to_properties([(b"key", b"v")])
    with pytest.raises(TypeError):
        impl.headers_to_properties([("key", "text")])
    with pytest.raises(TypeError):
        impl.headers_to_properties([("key",)])
    with pytest.raises(ValueError):
        impl.headers_to_properties([("\ud800", None)])
    with pytest.raises(TypeError):
        impl.properties_to_headers({"k": 1})


def test_order_marker_survives_added_properties(impl):
    props = impl.headers_to_properties((("b", b"1"), ("a", b"2")))
    assert props["__kafka.hdr.order"] == '["b","a"]'
    props["added-later"] = "x"
    assert impl.properties_to_headers(props) == (("b", b"1"), ("a", b"2"), ("added-later", b"x"))
