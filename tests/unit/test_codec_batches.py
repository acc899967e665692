"""Record codec: v2 batch encode/decode, verify_batches, patch_base_offset,
split_batch, bounded decompression and legacy message sets, run against every
implementation (compiled and pure-Python) through the ``impl`` fixture of
test_codec.py."""

from __future__ import annotations

import struct

import crc32c as crc32c_package
import pytest

from kop_fast import _codec_py, codec
from tests.unit.test_codec import IMPLS, TS, impl  # noqa: F401  (impl: the per-implementation fixture)


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


# headers as producers send them: the same keys record after record, some
# values repeated, some of their own, counts and types changing in between
# (the compiled decoder shares a pair or a headers tuple that equals the one
# at the same position of the record before: the results must not show it)
HEADER_SEQUENCE = [
    (("trace-id", b"\x01" * 16), ("content-type", b"application/json")),
    (("trace-id", b"\x02" * 16), ("content-type", b"application/json")),
    (("trace-id", b"\x02" * 16), ("content-type", b"application/json")),
    (("trace-id", b"\x02" * 16), ("content-type", b"text/plain")),
    (("span-id", b"\x02" * 16), ("content-type", b"text/plain")),
    (("span-id", b""), ("content-type", None)),
    (("span-id", None), ("content-type", b"")),
    (("span-id", None), ("content-type", b"")),
    (("span-id", b"\x02" * 16),),
    (),
    (("span-id", b"\x02" * 16), ("content-type", b"text/plain")),
    (("", b""), ("", None), ("", b"")),
    (("\udcff", b"x"), ("\udcff", b"x")),
    (("\udcff", b"x"), ("\udcfe", b"x")),
    tuple((f"h{i}", b"%d" % (i % 3)) for i in range(12)),
    tuple((f"h{i}", b"%d" % (i % 3)) for i in range(12)),
    tuple((f"h{i}", b"%d" % (i % 4)) for i in range(12)),
    tuple((f"h{i}", b"%d" % (i % 4)) for i in range(8)),
    tuple((f"h{i}", b"%d" % (i % 4)) for i in range(8)),
    tuple((f"h{i}", b"%d" % (i % 4)) for i in range(9)),
    (("h0", b"0"), ("h1", b"1")),
    (("h0", b"0"), ("h1", b"1")),
    (("h0", b"0"), ("h1", b"1"), ("h2", b"2")),
    (("h0", b"0"), ("h1", b"1")),
    (("h0", b"0"),),
    (("trace-id", b"\x01" * 16), ("content-type", b"application/json")),
]


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_decode_repeated_and_changing_headers(impl, compression):
    rows = [(i, TS + i, b"k", b"v", headers) for i, headers in enumerate(HEADER_SEQUENCE)]
    buf = impl.encode_batch(rows, compression=compression)
    for other in IMPLS:
        (batch,) = other.decode_batches(buf)
        assert fields(batch.records) == rows
        for record in batch.records:
            assert type(record.headers) is tuple
            for pair in record.headers:
                assert type(pair) is tuple and type(pair[0]) is str
                assert pair[1] is None or type(pair[1]) is bytes
        assert other.encode_batch(batch.records, compression=compression) == buf
    # and again, split in two batches of one buffer: nothing carries over
    half = len(rows) // 2
    two = impl.encode_batch(rows[:half]) + impl.encode_batch(rows[half:], base_offset=half)
    for other in IMPLS:
        assert [r for b in other.decode_batches(two) for r in fields(b.records)] == rows


def test_record_fields_are_read_only(impl):
    rec = impl.Record(1, 2, b"k", b"v", (("h", b"x"),))
    for name, value in (("offset", 3), ("timestamp", 3), ("key", b"x"), ("value", b"x"),
                        ("headers", ())):
        with pytest.raises(AttributeError):
            setattr(rec, name, value)
    assert rec == (1, 2, b"k", b"v", (("h", b"x"),))
    (decoded,) = impl.decode_batches(impl.encode_batch([rec]))[0].records
    with pytest.raises(AttributeError):
        decoded.key = b"x"
    assert (decoded.key, decoded.value, decoded.headers) == (b"k", b"v", (("h", b"x"),))


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
