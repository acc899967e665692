"""Legacy message sets <-> v2 batches (protocol/legacy_records.py), with every codec
implementation; both must give the same bytes."""

import zlib

import cramjam
import pytest
from kafka.record.legacy_records import LegacyRecordBatch, LegacyRecordBatchBuilder

from kop_fast import _codec_py, codec
from kop_fast.protocol.legacy_records import down_convert, up_convert
from tests.unit.test_codec import IMPLS, TS, impl  # noqa: F401  (impl: the per-implementation fixture)
from tests.unit.test_codec_batches import legacy_message

RECEIVED = 1_800_000_000_000
KAFKA_PYTHON_CODECS = {"none": 0, "gzip": 1, "lz4": 3}


def old_kafka_lz4(data: bytes) -> bytes:
    """An lz4 frame with the header checksum of Kafka 0.8/0.9 (KAFKA-3160), which also hashed
    the magic bytes (kafka-python needs xxhash, not installed, to write it)."""
    compressor = cramjam.lz4.Compressor(content_checksum=False, block_linked=False)
    compressor.compress(data)
    frame = bytearray(compressor.finish())
    frame[6] = (_codec_py._xxh32(bytes(frame[0:6])) >> 8) & 0xFF
    return bytes(frame)


def kafka_python_set(magic, compression, entries):
    """A message set as kafka-python's producer builds it (its own, independent encoder)."""
    if magic == 0 and compression == "lz4":
        inner = kafka_python_set(0, "none", entries)
        return legacy_message(len(entries) - 1, 0, 3, -1, None, old_kafka_lz4(inner))
    builder = LegacyRecordBatchBuilder(magic, KAFKA_PYTHON_CODECS[compression], 1 << 20)
    for offset, timestamp, key, value in entries:
        builder.append(offset, timestamp, key, value)
    return bytes(builder.build())


def fields(batch):
    return [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in batch.records]


def stored(impl, data):
    [batch] = impl.decode_batches(data)
    assert (batch.magic, batch.base_offset, batch.producer_id) == (2, 0, -1)
    return batch


@pytest.mark.parametrize("magic", [0, 1])
@pytest.mark.parametrize("compression", ["none", "gzip", "lz4"])
def test_a_message_set_becomes_one_v2_batch(impl, magic, compression):
    entries = [(i, TS + i, b"k%d" % i if i % 2 else None, b"v%d" % i if i != 3 else None) for i in range(5)]
    batch = stored(impl, up_convert(kafka_python_set(magic, compression, entries), RECEIVED, impl))
    expected_ts = [TS + i if magic else RECEIVED for i in range(5)]
    assert fields(batch) == [(i, expected_ts[i], key, value, ()) for (i, _ts, key, value) in entries]
    assert batch.compression == codec.COMPRESSION_NAMES.index(compression)
    assert batch.timestamp_type == 0  # CreateTime


def test_snappy_wrappers_and_several_of_them(impl):
    inner = b"".join(legacy_message(i, 1, 0, TS + i, None, b"s%d" % i) for i in range(3))
    wrapper = legacy_message(2, 1, 2, TS, None, bytes(cramjam.snappy.compress_raw(inner)))
    plain = legacy_message(0, 1, 0, TS + 7, b"k", b"plain")
    batch = stored(impl, up_convert(wrapper + plain + wrapper, RECEIVED, impl))
    assert [(r.offset, r.value) for r in batch.records] == [
        (0, b"s0"), (1, b"s1"), (2, b"s2"), (3, b"plain"), (4, b"s0"), (5, b"s1"), (6, b"s2")]
    assert batch.compression == codec.COMPRESSION_SNAPPY


def test_magic_0_lz4_with_the_broken_header_checksum(impl):
    data = kafka_python_set(0, "lz4", [(i, -1, None, b"old%d" % i) for i in range(3)])
    frame = data[26:]  # after the wrapper's offset, size, crc, magic, attributes, null key, value length
    assert frame[:4] == b"\x04\x22\x4d\x18" and frame[6] != (_codec_py._xxh32(frame[4:6]) >> 8) & 0xFF
    batch = stored(impl, up_convert(data, RECEIVED, impl))
    assert [(r.offset, r.timestamp, r.value) for r in batch.records] == [(i, RECEIVED, b"old%d" % i) for i in range(3)]


@pytest.mark.parametrize("bad", [
    b"",
    b"\x00" * 30,
    legacy_message(0, 1, 0, TS, None, b"v")[:-1],
    codec.encode_batch([(0, TS, None, b"v2", ())]),  # Produce v0-v2 cannot carry a v2 batch
])
def test_invalid_message_sets_are_corrupt(impl, bad):
    damaged = bytearray(legacy_message(0, 0, 0, -1, None, b"v"))
    damaged[-1] ^= 1
    for data in (bad, bytes(damaged)):
        with pytest.raises(codec.CorruptRecordError):
            up_convert(data, RECEIVED, impl)


def stored_batches(impl):
    first = impl.encode_batch([(10 + i, TS + i, b"k%d" % i, b"v%d" % i, (("h", b"x"),)) for i in range(3)],
                              base_offset=10, compression="gzip")
    second = impl.encode_batch([(13, TS + 3, None, None, ()), (14, TS + 4, b"", b"last", ())], base_offset=13)
    return first + second


@pytest.mark.parametrize("magic", [0, 1])
def test_down_conversion_keeps_offsets_and_timestamps_and_drops_headers(impl, magic):
    message_set = down_convert(stored_batches(impl), magic, 10, 1 << 20, impl)
    decoded = [(b.magic, b.compression, *fields(b)[0]) for b in impl.decode_batches(message_set)]
    values = [(b"k0", b"v0"), (b"k1", b"v1"), (b"k2", b"v2"), (None, None), (b"", b"last")]
    assert decoded == [(magic, 0, 10 + i, TS + i if magic else -1, key, value, ())
                       for i, (key, value) in enumerate(values)]
    # kafka-python's reader (another implementation) agrees, CRCs included.
    pos = 0
    for i, (key, value) in enumerate(values):
        size = int.from_bytes(message_set[pos + 8:pos + 12], "big")
        message = LegacyRecordBatch(message_set[pos:pos + 12 + size], magic)
        assert message.validate_crc()
        [record] = list(message)
        assert (record.offset, record.key, record.value) == (10 + i, key, value)
        assert record.timestamp == (TS + i if magic else None)
        pos += 12 + size
        crc = int.from_bytes(message_set[pos - size:pos - size + 4], "big")
        assert crc == zlib.crc32(message_set[pos - size + 4:pos])


@pytest.mark.parametrize("magic", [0, 1])
def test_down_conversion_starts_at_the_fetch_offset_inside_a_batch(impl, magic):
    message_set = down_convert(stored_batches(impl), magic, 12, 1 << 20, impl)
    assert [r.offset for b in impl.decode_batches(message_set) for r in b.records] == [12, 13, 14]


def test_down_conversion_stops_at_max_bytes_but_gives_one_message(impl):
    data = stored_batches(impl)
    everything = down_convert(data, 1, 10, 1 << 20, impl)
    one = down_convert(data, 1, 10, 1, impl)
    assert one and everything.startswith(one)
    assert [r.offset for b in impl.decode_batches(one) for r in b.records] == [10]
    two = down_convert(data, 1, 10, 2 * len(one), impl)
    assert [r.offset for b in impl.decode_batches(two) for r in b.records] == [10, 11]


def test_both_implementations_give_the_same_bytes():
    if len(IMPLS) < 2:
        pytest.skip("the compiled codec is not in use")
    compiled, pure = IMPLS
    data = stored_batches(pure)
    for magic in (0, 1):
        assert down_convert(data, magic, 11, 1 << 20, compiled) == down_convert(data, magic, 11, 1 << 20, pure)
    legacy = kafka_python_set(1, "gzip", [(i, TS + i, None, b"v%d" % i) for i in range(4)])
    legacy += kafka_python_set(0, "none", [(0, -1, b"k", b"v")])
    assert up_convert(legacy, RECEIVED, compiled) == up_convert(legacy, RECEIVED, pure)


def test_control_batches_are_skipped(impl):
    control = impl.encode_batch([(5, TS, b"\x00\x00\x00\x00", b"\x00" * 6, ())], base_offset=5, control=True)
    data = control + impl.encode_batch([(6, TS, None, b"after", ())], base_offset=6)
    assert [(r.offset, r.value) for b in impl.decode_batches(down_convert(data, 1, 5, 1 << 20, impl))
            for r in b.records] == [(6, b"after")]
