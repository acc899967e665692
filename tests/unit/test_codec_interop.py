"""Record codec against real clients' record code: batches built by aiokafka,
kafka-python and kio decode identically with kop_fast, and batches kop_fast
encodes read back identically in their readers."""

from __future__ import annotations

import io
import random

import aiokafka.codec
import kafka.codec
import kafka.record.default_records as kp_default
import kafka.record.legacy_records as kp_legacy
import pytest
from aiokafka.record import _crecords as aio_c
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy, _DefaultRecordBatchPy
from aiokafka.record.legacy_records import _LegacyRecordBatchBuilderPy
from aiokafka.record.memory_records import _MemoryRecordsPy

from kop_fast import _codec_py, codec

IMPLS = codec.implementations()
COMPRESSIONS = ["none", "gzip", "snappy", "lz4", "zstd"]
TS = 1_700_000_000_000


def _impl_id(module) -> str:
    return "python" if module is _codec_py else "cython"


@pytest.fixture(params=IMPLS, ids=_impl_id)
def impl(request):
    return request.param


def sample(n=40, seed=1, headers=True):
    """(offset, timestamp, key, value, headers) rows with a bit of everything."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        key = None if i % 3 == 0 else rng.randbytes(rng.randrange(0, 20))
        value = None if i % 7 == 3 else rng.randbytes(rng.randrange(0, 300))
        hdrs = ()
        if headers and i % 2:
            hdrs = tuple(
                (f"h{j}-ü", None if j == 1 else rng.randbytes(rng.randrange(0, 10)))
                for j in range(rng.randrange(1, 4))
            )
        rows.append((i, TS + rng.randrange(-5000, 5000), key, value, hdrs))
    return rows


def aio_fields(batch):
    return [(r.offset, r.timestamp, r.key, r.value, tuple(r.headers)) for r in batch]


def our_fields(batches):
    return [tuple(r) for b in batches for r in b.records]


# ---------------------------------------------------------------------------
# aiokafka


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("builder", [aio_c.DefaultRecordBatchBuilder, _DefaultRecordBatchBuilderPy])
def test_decode_aiokafka_batches(impl, builder, compression):
    rows = sample()
    b = builder(2, COMPRESSIONS.index(compression), 0, 1234, 5, 77, 10**8)
    for offset, ts, key, value, hdrs in rows:
        b.append(offset, ts, key, value, list(hdrs))
    buf = bytes(b.build())
    ref = aio_c.DefaultRecordBatch(buf)
    assert ref.validate_crc()
    batches = impl.decode_batches(buf)
    assert our_fields(batches) == aio_fields(ref) == [tuple(r) for r in rows]
    (batch,) = batches
    assert batch.compression == ref.compression_type
    assert (batch.base_offset, batch.last_offset_delta) == (ref.base_offset, ref.last_offset_delta)
    assert (batch.base_timestamp, batch.max_timestamp) == (ref.first_timestamp, ref.max_timestamp)
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (1234, 5, 77)
    assert impl.verify_batches(buf) == (1, len(rows))
    info = impl.batch_infos(buf)[0]
    assert info == (
        0, len(buf), ref.base_offset, ref.last_offset_delta, len(rows), ref.attributes,
        ref.first_timestamp, ref.max_timestamp, 1234, 5, 77,
    )


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("reader", [aio_c.DefaultRecordBatch, _DefaultRecordBatchPy])
def test_aiokafka_reads_our_batches(impl, reader, compression):
    rows = sample(seed=2)
    buf = impl.encode_batch(
        rows, compression=compression, producer_id=9, producer_epoch=1, base_sequence=3,
        transactional=True,
    )
    batch = reader(buf)
    assert batch.validate_crc()
    assert aio_fields(batch) == [tuple(r) for r in rows]
    assert batch.compression_type == COMPRESSIONS.index(compression)
    assert batch.is_transactional and not batch.is_control_batch
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (9, 1, 3)
    assert batch.max_timestamp == max(r[1] for r in rows)
    assert batch.first_timestamp == rows[0][1]


def test_aiokafka_memory_records_over_our_record_set(impl):
    parts = [
        impl.encode_batch(sample(5, seed=s), compression=c, base_offset=0)
        for s, c in enumerate(COMPRESSIONS)
    ]
    for i, part in enumerate(parts):  # give each batch its own offsets
        part = bytearray(part)
        impl.patch_base_offset(part, 100 * i)
        parts[i] = bytes(part)
    buf = b"".join(parts)
    for memory_records in (aio_c.MemoryRecords, _MemoryRecordsPy):
        records = memory_records(buf)
        seen = []
        while records.has_next():
            seen.extend(aio_fields(records.next_batch()))
        assert seen == our_fields(impl.decode_batches(buf))
        assert [r[0] for r in seen] == [100 * i + j for i in range(5) for j in range(5)]


def test_aiokafka_sees_our_control_batches(impl):
    # a transaction commit marker: key = version 0, type 1 (commit)
    marker = (0, TS, b"\x00\x00\x00\x01", b"\x00\x00\x00\x00\x00\x00", ())
    buf = impl.encode_batch(
        [marker], producer_id=5, producer_epoch=0, transactional=True, control=True
    )
    batch = aio_c.DefaultRecordBatch(buf)
    assert batch.is_control_batch and batch.is_transactional
    (ours,) = impl.decode_batches(buf)
    assert ours.is_control and ours.records[0].key == marker[2]


@pytest.mark.parametrize("magic", [0, 1])
@pytest.mark.parametrize("compression", ["none", "gzip", "snappy", "lz4"])
@pytest.mark.parametrize("builder", [aio_c.LegacyRecordBatchBuilder, _LegacyRecordBatchBuilderPy])
def test_decode_aiokafka_legacy_batches(impl, builder, magic, compression):
    if magic == 0 and compression == "lz4":
        pytest.skip("aiokafka cannot build magic 0 lz4 (KAFKA-3160)")
    rows = [(i, TS + i, None if i % 2 else b"k%d" % i, b"value-%d" % i) for i in range(10)]
    b = builder(magic, COMPRESSIONS.index(compression), 10**8)
    for offset, ts, key, value in rows:
        b.append(offset, ts, key, value)
    buf = bytes(b.build())
    expected = []
    memory_records = _MemoryRecordsPy(buf)
    while memory_records.has_next():
        batch = memory_records.next_batch()
        expected.extend(
            (r.offset, -1 if r.timestamp is None else r.timestamp, r.key, r.value, ())
            for r in batch
        )
    batches = impl.decode_batches(buf)
    assert our_fields(batches) == expected
    assert [r[0] for r in expected] == list(range(10))
    assert all(b.magic == magic for b in batches)
    if compression != "none":
        assert len(batches) == 1 and batches[0].compression == COMPRESSIONS.index(compression)


# ---------------------------------------------------------------------------
# kafka-python (its snappy/lz4/zstd need extra packages; lend it aiokafka's
# cramjam-based codec functions, which write what the Java client writes)


def _old_kafka_lz4(payload: bytes) -> bytes:
    frame = bytearray(aiokafka.codec.lz4_encode(payload))
    frame[6] = (_codec_py._xxh32(bytes(frame[0:6])) >> 8) & 0xFF  # the KAFKA-3160 bug
    return bytes(frame)


@pytest.fixture
def kafka_python_codecs(monkeypatch):
    for name in ("has_snappy", "has_lz4", "has_zstd"):
        monkeypatch.setattr(kafka.codec, name, lambda: True)
    for module in (kp_default, kp_legacy):
        for name in ("snappy_encode", "snappy_decode", "lz4_encode", "lz4_decode"):
            monkeypatch.setattr(module, name, getattr(aiokafka.codec, name))
    monkeypatch.setattr(kp_default, "zstd_encode", aiokafka.codec.zstd_encode)
    monkeypatch.setattr(kp_default, "zstd_decode", aiokafka.codec.zstd_decode)
    monkeypatch.setattr(kp_legacy, "lz4_encode_old_kafka", _old_kafka_lz4)


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_decode_kafka_python_batches(impl, kafka_python_codecs, compression):
    rows = sample(seed=3)
    b = kp_default.DefaultRecordBatchBuilder(
        2, COMPRESSIONS.index(compression), False, 77, 2, 10, 10**8
    )
    for offset, ts, key, value, hdrs in rows:
        b.append(offset, ts, key, value, list(hdrs))
    buf = bytes(b.build())
    ref = kp_default.DefaultRecordBatch(buf)
    assert ref.validate_crc()
    assert our_fields(impl.decode_batches(buf)) == aio_fields(ref) == [tuple(r) for r in rows]
    assert impl.verify_batches(buf) == (1, len(rows))
    # and the other way round
    ours = impl.encode_batch(rows, compression=compression)
    assert aio_fields(kp_default.DefaultRecordBatch(ours)) == [tuple(r) for r in rows]


@pytest.mark.parametrize("magic", [0, 1])
@pytest.mark.parametrize("compression", ["none", "gzip", "snappy", "lz4"])
def test_decode_kafka_python_legacy_batches(impl, kafka_python_codecs, magic, compression):
    rows = [(i, TS + i, None if i % 2 else b"k%d" % i, b"value-%d" % i) for i in range(10)]
    b = kp_legacy.LegacyRecordBatchBuilder(magic, COMPRESSIONS.index(compression), 10**8)
    for offset, ts, key, value in rows:
        b.append(offset, ts, key, value)
    buf = bytes(b.build())
    expected = [
        (offset, ts if magic else -1, key, value, ()) for offset, ts, key, value in rows
    ]
    assert our_fields(impl.decode_batches(buf)) == expected


# ---------------------------------------------------------------------------
# kio


def test_kio_reads_our_batches(impl):
    from kio.records.readers import read_batch

    rows = [
        (i, TS + 1000 * i, b"key", b"value-%d" % i, (("trace", b"abc"), ("n", None)))
        for i in range(5)
    ]
    buf = impl.encode_batch(rows, producer_id=3, producer_epoch=1, base_sequence=0)
    batch, size = read_batch(buf, 0)
    assert size == len(buf)
    assert [r.offset for r in batch.records] == [0, 1, 2, 3, 4]
    assert [(r.key, r.value) for r in batch.records] == [(r[2], r[3]) for r in rows]
    assert [tuple((h.key, h.value) for h in r.headers) for r in batch.records] == [
        ((b"trace", b"abc"), (b"n", None))
    ] * 5
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (3, 1, 0)
    assert batch.base_timestamp == TS and batch.max_timestamp == TS + 4000


def test_decode_kio_batches(impl):
    import datetime

    from kio.records.schema import NewRecordBatch
    from kio.records.schema import Record as KioRecord
    from kio.records.schema import RecordHeader
    from kio.records.writers import write_new_batch
    from kio.static.primitive import TZAwareMicros, i8, i16, i32, i64

    when = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    new = NewRecordBatch(
        producer_id=i64(11),
        producer_epoch=i16(2),
        base_sequence=i32(5),
        attributes=i16(0),
        records=tuple(
            KioRecord(
                attributes=i8(0),
                timestamp=TZAwareMicros.parse(when + datetime.timedelta(seconds=i)),
                offset=i64(i),
                key=b"k%d" % i,
                value=b"v%d" % i,
                headers=(RecordHeader(key=b"h", value=b"x"),),
            )
            for i in range(4)
        ),
    )
    out = io.BytesIO()
    write_new_batch(out, new)
    buf = out.getvalue()
    millis = int(when.timestamp() * 1000)
    (batch,) = impl.decode_batches(buf)
    assert [tuple(r) for r in batch.records] == [
        (i, millis + 1000 * i, b"k%d" % i, b"v%d" % i, (("h", b"x"),)) for i in range(4)
    ]
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (11, 2, 5)
    assert impl.verify_batches(buf) == (1, 4)
