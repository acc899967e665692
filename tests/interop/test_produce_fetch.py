"""Produce, Fetch and ListOffsets over real sockets with real Kafka clients (acceptance tests).

The server runs with the default offset mode (consecutive: 0, 1, 2, ...); the checks
hold for packed offsets too (Pulsar MessageIds, increasing with gaps between entries):
nothing here assumes 0, 1, 2, ...; every check compares against the offsets the
producer's delivery reports (or Produce responses) gave. The fetch inside a gap between
entries exists only with packed offsets, and runs on a packed server of its own.
"""

from __future__ import annotations

import asyncio
import datetime
import io
import socket
import struct
import threading
import time
import uuid

import pytest
from confluent_kafka import (OFFSET_BEGINNING, TIMESTAMP_CREATE_TIME, Consumer, KafkaError, Producer,
                             TopicPartition)
from confluent_kafka.admin import AdminClient

from tests.support import KopServer, fetch_v4, kafka_request, recv_frame

pytestmark = pytest.mark.interop

CORRUPT_MESSAGE = 2
OFFSET_OUT_OF_RANGE = 1
# Strictly increasing create times, a day in the past (record i has BASE_TS + 2 * i).
BASE_TS = (int(time.time()) - 86_400) * 1000


# -- helpers (also used by test_pulsar_interop.py) --------------------------------------------------

def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    """Auto-create through Metadata (confluent AdminClient.list_topics naming the topic)."""
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic=topic, timeout=20)
    info = md.topics[topic]
    assert info.error is None, info.error
    assert sorted(info.partitions) == list(range(partitions))


def produce(bootstrap: str, topic: str, records, conf: dict | None = None, partition: int = 0) -> list[int]:
    """Produce (key, value, headers, timestamp) tuples with confluent-kafka; the delivered offsets, in order."""
    reports: list = [None] * len(records)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all", **(conf or {})})
    for i, (key, value, headers, ts) in enumerate(records):
        kwargs = {"key": key, "value": value, "partition": partition,
                  "on_delivery": lambda err, msg, i=i: reports.__setitem__(i, (err, msg.offset()))}
        if headers:
            kwargs["headers"] = list(headers)
        if ts is not None:
            kwargs["timestamp"] = ts
        while True:
            try:
                producer.produce(topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(60) == 0, "producer did not deliver everything within 60 s"
    missing = [i for i, r in enumerate(reports) if r is None]
    assert not missing, f"no delivery report for {len(missing)} records"
    errors = [(i, r[0]) for i, r in enumerate(reports) if r[0] is not None]
    assert not errors, f"{len(errors)} delivery errors, first: {errors[:3]}"
    return [r[1] for r in reports]


def consumer_conf(bootstrap: str, **extra) -> dict:
    # group.id is required by confluent; assign() never needs the group coordinator.
    return {"bootstrap.servers": bootstrap, "group.id": unique("g"), "enable.auto.commit": False,
            "auto.offset.reset": "earliest", **extra}


def consume(bootstrap: str, topic: str, start: int, count: int, *, partition: int = 0,
            timeout: float = 30, conf: dict | None = None, stop_on_error: bool = False):
    """Assign at `start` and read until `count` records (or the deadline, or with stop_on_error the
    first consumer error); (messages, errors)."""
    consumer = Consumer(consumer_conf(bootstrap, **(conf or {})))
    messages, errors = [], []
    try:
        consumer.assign([TopicPartition(topic, partition, start)])
        deadline = time.monotonic() + timeout
        while len(messages) < count and time.monotonic() < deadline and not (stop_on_error and errors):
            for msg in consumer.consume(num_messages=min(10_000, count - len(messages)), timeout=0.5):
                if msg.error():
                    errors.append(msg.error())
                else:
                    messages.append(msg)
    finally:
        consumer.close()
    return messages, errors


def as_tuple(msg) -> tuple:
    ts_type, ts = msg.timestamp()
    assert ts_type == TIMESTAMP_CREATE_TIME, (msg.offset(), ts_type)
    return (msg.offset(), msg.key(), msg.value(), list(msg.headers() or []), ts)


def expected_tuples(records, offsets) -> list[tuple]:
    return [(off, k, v, list(h or []), ts) for off, (k, v, h, ts) in zip(offsets, records)]


def assert_same(got: list, want: list, errors=()) -> None:
    """Compare long lists without a 20,000-line diff: the count, then the first difference."""
    assert len(got) == len(want), f"got {len(got)} records, want {len(want)}; consumer errors: {list(errors)[:5]}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"record #{i} differs:\n got  {g!r}\n want {w!r}"


def assert_strictly_increasing(offsets: list[int]) -> None:
    assert all(o >= 0 for o in offsets), [o for o in offsets if o < 0][:5]
    bad = [i for i in range(1, len(offsets)) if offsets[i] <= offsets[i - 1]]
    assert not bad, f"offsets not increasing at {bad[:5]}: {[offsets[i - 1:i + 1] for i in bad[:3]]}"


def watermarks(bootstrap: str, topic: str, partition: int = 0) -> tuple[int, int]:
    consumer = Consumer(consumer_conf(bootstrap))
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=15, cached=False)
    finally:
        consumer.close()


def make_records(n: int, *, seed: int = 0, both_null: bool = True, null_headers: bool = True) -> list[tuple]:
    """Keys (some null, some not UTF-8), values (some null, binary), headers (binary and null values,
    repeated keys, order matters), strictly increasing timestamps.

    kafka-python and aiokafka refuse a record whose key and value are both null (both_null=False);
    kafka-python also refuses null header values (null_headers=False).
    """
    out = []
    for i in range(n):
        j = i + seed
        key = None if j % 10 == 3 else (b"\xfe\xffkey-%d" % j if j % 10 == 5 else b"key-%d" % j)
        value = None if j % 13 == 7 else b"value-%d-" % j + bytes([j % 256, 0xFF, 0x00])
        if key is None and value is None and not both_null:
            key = b"key-%d" % j
        if j % 4 == 0:
            headers = []
        elif j % 4 == 2:  # a null header value, and keys out of sorted order
            headers = [("z", b"\xff\x00\xfe"), ("null", None if null_headers else b""), ("a", str(j).encode())]
        else:
            headers = [("bin", b"\xff\x00\xfe"), ("n", str(j).encode()), ("bin", bytes([j % 256]))]
        out.append((key, value, headers, BASE_TS + 2 * i))
    return out


# -- raw requests (kio) -----------------------------------------------------------------------------

def produce_v3_body(topic: str, batch: bytes, acks: int = -1) -> bytes:
    """The body of a Produce v3 request of one batch to partition 0 (encoded by kio)."""
    from kio.schema.produce.v3.request import PartitionProduceData, ProduceRequest, TopicProduceData
    from kio.serial import entity_writer

    request = ProduceRequest(
        transactional_id=None, acks=acks, timeout=datetime.timedelta(seconds=10),
        topic_data=(TopicProduceData(name=topic, partition_data=(
            PartitionProduceData(index=0, records=batch),)),))
    buf = io.BytesIO()
    entity_writer(ProduceRequest)(buf, request)
    return buf.getvalue()


def raw_produce(port: int, topic: str, batch: bytes, acks: int = -1) -> tuple[int, int]:
    """Produce v3 of one batch to partition 0; (error code, base offset)."""
    from kio.schema.produce.v3.response import ProduceResponse
    from kio.serial import entity_reader

    frame = kafka_request(port, api_key=0, api_version=3, body=produce_v3_body(topic, batch, acks), flexible=False)
    response, _ = entity_reader(ProduceResponse)(frame, 4)
    [topic_response] = response.responses
    assert topic_response.name == topic
    [part] = topic_response.partition_responses
    assert part.index == 0
    return int(part.error_code), part.base_offset


def raw_fetch(port: int, topic: str, offset: int, *, max_wait_ms: int = 100, timeout: float = 10):
    """Fetch v4 of partition 0 at `offset`; (error code, high watermark, [(offset, key, value)])."""
    from aiokafka.record.memory_records import MemoryRecords

    error, high_watermark, raw = fetch_v4(port, topic, offset, max_wait_ms=max_wait_ms, timeout=timeout)
    records = []
    if raw:
        batches = MemoryRecords(raw)
        while True:
            batch = batches.next_batch()
            if batch is None:
                break
            records.extend((r.offset, r.key, r.value) for r in batch)
    return error, high_watermark, records


def build_batch(values: list[bytes], base_ts: int) -> bytearray:
    from aiokafka.record.default_records import DefaultRecordBatchBuilder

    # magic, compression, transactional, producer id, producer epoch, base sequence, batch size
    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 1 << 20)
    for i, value in enumerate(values):
        builder.append(i, timestamp=base_ts + i, key=b"k%d" % i, value=value, headers=[])
    return bytearray(builder.build())


# -- fixtures -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = KopServer(tmp_path_factory.mktemp("produce-fetch") / "data")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def big(server):
    """20,000 records through confluent-kafka (linger 5 ms, acks=all); (topic, records, delivered offsets)."""
    topic = unique("big")
    create_topic(server.bootstrap, topic)
    records = make_records(20_000)
    offsets = produce(server.bootstrap, topic, records, {"linger.ms": 5, "acks": "all"})
    return topic, records, offsets


# -- 1. the round trip ------------------------------------------------------------------------------

@pytest.mark.compat("confluent-kafka", "20,000 records (null and binary keys and values, binary and null headers) "
                    "read back exactly at the delivered offsets")
def test_confluent_20000_records_read_back_exactly(server, big):
    topic, records, offsets = big
    assert_strictly_increasing(offsets)
    messages, errors = consume(server.bootstrap, topic, OFFSET_BEGINNING, len(records), timeout=60)
    assert_same([as_tuple(m) for m in messages], expected_tuples(records, offsets), errors)
    # Sanity of the data set itself: the interesting cases are really in there.
    assert any(r[0] is None for r in records) and any(r[1] is None for r in records)


def test_one_batch_with_more_records_than_an_entry_index_holds(server):
    """A producer assumes record i of a batch is at base offset + i (librdkafka with a large
    batch.num.messages, or the Java client with tiny records, sends batches of > 16,384 records)."""
    topic = unique("huge-batch")
    create_topic(server.bootstrap, topic)
    n = 20_000
    error, base = raw_produce(server.port, topic, bytes(build_batch([b"%d" % i for i in range(n)], BASE_TS)))
    assert error == 0
    messages, errors = consume(server.bootstrap, topic, OFFSET_BEGINNING, n)
    assert [m.value() for m in messages] == [b"%d" % i for i in range(n)], errors[:3]
    got = [m.offset() for m in messages]
    first_bad = next((i for i, o in enumerate(got) if o != base + i), None)
    assert first_bad is None, f"record {first_bad} is at {got[first_bad]}, the producer was told {base + first_bad}"
    assert watermarks(server.bootstrap, topic) == (base, base + n)


# -- 2. seek, offsets_for_times, watermarks ---------------------------------------------------------

@pytest.mark.parametrize("index", [0, 7_777, 10_000, 19_999])
def test_assign_at_delivered_offset_starts_exactly_there(server, big, index):
    topic, records, offsets = big
    messages, errors = consume(server.bootstrap, topic, offsets[index], 2 if index < 19_999 else 1)
    assert messages, f"nothing read from offset {offsets[index]}; errors {errors[:3]}"
    got = [as_tuple(m) for m in messages]
    assert got == expected_tuples(records[index:index + len(got)], offsets[index:index + len(got)])


def test_watermarks_are_first_offset_and_last_plus_one(server, big):
    topic, _, offsets = big
    assert watermarks(server.bootstrap, topic) == (offsets[0], offsets[-1] + 1)


# -- 3. kill -9 and restart -------------------------------------------------------------------------

def test_everything_read_again_after_kill9_and_restart(tmp_path):
    data_dir = tmp_path / "data"
    topic = unique("restart")
    records = make_records(2_000, seed=5)
    srv = KopServer(data_dir).start()
    try:
        create_topic(srv.bootstrap, topic)
        offsets = produce(srv.bootstrap, topic, records)
        assert_strictly_increasing(offsets)
        want = expected_tuples(records, offsets)
        messages, errors = consume(srv.bootstrap, topic, OFFSET_BEGINNING, len(records))
        assert_same([as_tuple(m) for m in messages], want, errors)
        srv.kill9()
    finally:
        srv.stop()
    srv = KopServer(data_dir).start()
    try:
        messages, errors = consume(srv.bootstrap, topic, OFFSET_BEGINNING, len(records))
        assert_same([as_tuple(m) for m in messages], want, errors)
        assert watermarks(srv.bootstrap, topic) == (offsets[0], offsets[-1] + 1)
        # New records after the restart come after the old ones.
        more = make_records(10, seed=9000)
        later = produce(srv.bootstrap, topic, more)
        assert_strictly_increasing(offsets + later)
        messages, errors = consume(srv.bootstrap, topic, later[0], len(more))
        assert_same([as_tuple(m) for m in messages], expected_tuples(more, later), errors)
    finally:
        srv.stop()


# -- 4. acks=0, acks=1, idempotence -------------------------------------------------------------------

@pytest.mark.compat("confluent-kafka", "acks=0, acks=1 and enable.idempotence=true: 1,000 records each once, in order")
@pytest.mark.parametrize("conf", [
    {"acks": "0"},
    {"acks": "1"},
    {"enable.idempotence": True},
], ids=["acks0", "acks1", "idempotent"])
def test_acks_modes_each_record_exactly_once_in_order(server, conf):
    topic = unique("acks")
    create_topic(server.bootstrap, topic)
    records = [(b"k%d" % (i % 10), b"acks-%06d" % i, None, None) for i in range(1_000)]
    offsets = produce(server.bootstrap, topic, records, conf)
    messages, errors = consume(server.bootstrap, topic, OFFSET_BEGINNING, len(records))
    values = [m.value() for m in messages]
    assert values == [r[1] for r in records], f"{len(values)} values read; errors {errors[:3]}"
    got_offsets = [m.offset() for m in messages]
    assert_strictly_increasing(got_offsets)
    if conf.get("acks") != "0":  # acks=0 gets no offsets back
        assert got_offsets == offsets
    # Nothing beyond those records (no duplicates after them either).
    assert watermarks(server.bootstrap, topic) == (got_offsets[0], got_offsets[-1] + 1)


# -- 5. kafka-python and aiokafka ---------------------------------------------------------------------

@pytest.mark.compat("kafka-python", "acks=all producer; assign, seek_to_beginning, beginning_offsets and end_offsets: "
                    "300 records with binary keys and headers")
def test_kafka_python_produce_and_consume(server):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTopicPartition

    topic = unique("kp")
    create_topic(server.bootstrap, topic)
    records = make_records(300, seed=11, both_null=False, null_headers=False)
    producer = KafkaProducer(bootstrap_servers=server.bootstrap, acks="all", linger_ms=5,
                             request_timeout_ms=20000)
    try:
        futures = [producer.send(topic, key=k, value=v, headers=h, timestamp_ms=ts, partition=0)
                   for k, v, h, ts in records]
        producer.flush(30)
        offsets = [f.get(timeout=30).offset for f in futures]
    finally:
        producer.close(10)
    assert_strictly_increasing(offsets)

    consumer = KafkaConsumer(bootstrap_servers=server.bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", request_timeout_ms=20000)
    got = []
    try:
        tp = KTopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        deadline = time.monotonic() + 30
        while len(got) < len(records) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                got.extend((r.offset, r.key, r.value, list(r.headers), r.timestamp) for r in batch)
        assert consumer.beginning_offsets([tp])[tp] == offsets[0]
        assert consumer.end_offsets([tp])[tp] == offsets[-1] + 1
    finally:
        consumer.close()
    assert_same(got, expected_tuples(records, offsets))
    # And confluent-kafka reads the same thing.
    messages, errors = consume(server.bootstrap, topic, OFFSET_BEGINNING, len(records))
    assert_same([as_tuple(m) for m in messages], expected_tuples(records, offsets), errors)


@pytest.mark.compat("aiokafka", "acks=all producer; assign and seek_to_beginning: 300 records with binary keys, "
                    "binary and null headers")
def test_aiokafka_produce_and_consume(server):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition as ATopicPartition

    topic = unique("aio")
    create_topic(server.bootstrap, topic)
    records = make_records(300, seed=23, both_null=False)

    async def run():
        producer = AIOKafkaProducer(bootstrap_servers=server.bootstrap, acks="all", linger_ms=5,
                                    request_timeout_ms=20000)
        await producer.start()
        try:
            futures = [await producer.send(topic, key=k, value=v, headers=h, timestamp_ms=ts, partition=0)
                       for k, v, h, ts in records]
            offsets = [m.offset for m in await asyncio.wait_for(asyncio.gather(*futures), 30)]
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=server.bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    request_timeout_ms=20000)
        await consumer.start()
        got = []
        try:
            tp = ATopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            deadline = time.monotonic() + 30
            while len(got) < len(records) and time.monotonic() < deadline:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    got.extend((r.offset, r.key, r.value, list(r.headers), r.timestamp) for r in batch)
        finally:
            await consumer.stop()
        return offsets, got

    offsets, got = asyncio.run(asyncio.wait_for(run(), 90))
    assert_strictly_increasing(offsets)
    assert_same(got, expected_tuples(records, offsets))


# -- 6. Fetch long polling ----------------------------------------------------------------------------

def _produce_later(bootstrap: str, topic: str, value: bytes, delay: float, done: dict) -> None:
    time.sleep(delay)  # the scenario: the record arrives while the fetch is parked
    try:
        done["offsets"] = produce(bootstrap, topic, [(None, value, None, None)])
    except BaseException as exc:  # surfaced by the test thread
        done["error"] = exc
    done["at"] = time.monotonic()


def test_fetch_long_poll_wakes_up_when_a_record_arrives(server):
    """A raw Fetch parked for up to 15 s at the end of an empty partition returns the record produced 1 s later."""
    topic = unique("longpoll-raw")
    create_topic(server.bootstrap, topic)
    low, high = watermarks(server.bootstrap, topic)
    assert low == high  # empty
    done: dict = {}
    thread = threading.Thread(target=_produce_later, args=(server.bootstrap, topic, b"late", 1.0, done))
    started = time.monotonic()
    thread.start()
    try:
        error, hw, records = raw_fetch(server.port, topic, high, max_wait_ms=15_000, timeout=20)
    finally:
        thread.join(30)
    elapsed = time.monotonic() - started
    assert "error" not in done, done.get("error")
    assert error == 0
    assert [v for _, _, v in records] == [b"late"], records
    assert records[0][0] == done["offsets"][0]
    assert hw == done["offsets"][0] + 1
    assert elapsed < 10, f"the fetch was answered after {elapsed:.1f} s, not woken by the produce"


@pytest.mark.compat("confluent-kafka", "a consumer waiting at the end (fetch.wait.max.ms=15000) gets the next record "
                    "at once")
def test_confluent_consumer_waiting_on_empty_partition_gets_later_record(server):
    topic = unique("longpoll")
    create_topic(server.bootstrap, topic)
    consumer = Consumer(consumer_conf(server.bootstrap, **{"fetch.wait.max.ms": 15_000}))
    done: dict = {}
    thread = threading.Thread(target=_produce_later, args=(server.bootstrap, topic, b"wake-up", 1.0, done))
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        started = time.monotonic()
        thread.start()
        received, errors = None, []
        while received is None and time.monotonic() < started + 10:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                errors.append(msg.error())
            else:
                received = (msg.value(), msg.offset(), time.monotonic())
    finally:
        consumer.close()
        thread.join(30)
    assert "error" not in done, done.get("error")
    assert received is not None, f"record not received within 10 s; errors {errors[:3]}"
    assert received[0] == b"wake-up" and received[1] == done["offsets"][0]


# -- 7. corrupt input -----------------------------------------------------------------------------------

def test_produce_with_corrupt_crc_is_rejected_and_not_stored(server):
    topic = unique("crc")
    create_topic(server.bootstrap, topic)
    good = build_batch([b"good-1", b"good-2"], BASE_TS)
    error, base_offset = raw_produce(server.port, topic, bytes(good))
    assert error == 0 and base_offset >= 0
    before = watermarks(server.bootstrap, topic)
    assert before == (base_offset, base_offset + 2)

    bad = build_batch([b"bad-1", b"bad-2"], BASE_TS + 10)
    bad[-1] ^= 0xFF  # last byte of the last record: covered by the CRC (which starts at byte 21)
    error, _ = raw_produce(server.port, topic, bytes(bad))
    assert error == CORRUPT_MESSAGE

    assert watermarks(server.bootstrap, topic) == before
    error, hw, records = raw_fetch(server.port, topic, base_offset)
    assert error == 0 and hw == before[1]
    assert [(o, v) for o, _, v in records] == [(base_offset, b"good-1"), (base_offset + 1, b"good-2")]


def _produce_v3_frame(topic: str, batch: bytes, correlation_id: int) -> bytes:
    payload = struct.pack(">hhih", 0, 3, correlation_id, 4) + b"test" + produce_v3_body(topic, batch)
    return struct.pack(">i", len(payload)) + payload


@pytest.mark.parametrize("chunk", [1 << 20, 100_003, 7])
def test_large_produce_frames_pipelined_and_dribbled(server, chunk):
    """Frames of 64 KiB and more are received into a buffer of their own: however the bytes
    arrive (whole, in odd pieces, a large frame's head after a small request's tail), every
    request is answered in order and every batch is stored intact."""
    from kio.schema.produce.v3.response import ProduceResponse
    from kio.serial import entity_reader

    topic = unique("in-place")
    create_topic(server.bootstrap, topic)
    values = [[bytes([65 + j]) * 1000 + b"%d" % i for i in range(150 + 50 * j)] for j in range(3)]
    batches = [bytes(build_batch(v, BASE_TS)) for v in values]
    api_versions = struct.pack(">ihhih", 14, 18, 0, 100, 4) + b"test"
    stream = (api_versions + _produce_v3_frame(topic, batches[0], 1) + api_versions
              + _produce_v3_frame(topic, batches[1], 2) + _produce_v3_frame(topic, batches[2], 3) + api_versions)
    assert all(len(b) > 64 * 1024 for b in batches)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        for i in range(0, len(stream), chunk):
            s.sendall(stream[i:i + chunk])
            if chunk < 100:
                time.sleep(0)  # let small pieces arrive as separate reads now and then
            if chunk < 100 and i > 2000:
                s.sendall(stream[i + chunk:])  # the rest at once, once the first frames are split
                break
        frames = [recv_frame(s) for _ in range(6)]
    assert [struct.unpack_from(">i", f)[0] for f in frames] == [100, 1, 100, 2, 3, 100]
    offsets = []
    for frame in (frames[1], frames[3], frames[4]):
        response, _ = entity_reader(ProduceResponse)(frame, 4)
        part = response.responses[0].partition_responses[0]
        assert int(part.error_code) == 0
        offsets.append(part.base_offset)
    for base, expected in zip(offsets, values):
        error, _hw, records = raw_fetch(server.port, topic, base, timeout=20)
        assert error == 0
        got = [v for o, _k, v in records if o >= base][:len(expected)]
        assert got == expected


# -- 8. out of range, gaps ------------------------------------------------------------------------------

def _is_out_of_range(err: KafkaError) -> bool:
    return (err.code() in (KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET)
            and "out of range" in err.str().lower())


def _confluent_fetch_error(bootstrap: str, topic: str, offset: int):
    messages, errors = consume(bootstrap, topic, offset, 1, timeout=15,
                               conf={"auto.offset.reset": "error"}, stop_on_error=True)
    return messages, errors


def test_fetch_beyond_high_watermark_is_out_of_range(server, big):
    topic, _, offsets = big
    high = offsets[-1] + 1
    error, hw, records = raw_fetch(server.port, topic, high)  # exactly the end: fine, nothing yet
    assert (error, hw, records) == (0, high, [])
    for offset in (high + 1, ((offsets[-1] >> 35) + 7) << 35):
        error, _, records = raw_fetch(server.port, topic, offset)
        assert error == OFFSET_OUT_OF_RANGE, (offset, error)
        assert records == []
    messages, errors = _confluent_fetch_error(server.bootstrap, topic, ((offsets[-1] >> 35) + 7) << 35)
    assert not messages
    assert any(_is_out_of_range(e) for e in errors), errors[:3]


def test_fetch_before_log_start_is_out_of_range(server, big):
    topic, _, offsets = big
    if offsets[0] == 0:
        pytest.skip("the first record has offset 0: nothing lies before the log start")
    error, _, records = raw_fetch(server.port, topic, 0)
    assert error == OFFSET_OUT_OF_RANGE
    assert records == []
    messages, errors = _confluent_fetch_error(server.bootstrap, topic, 0)
    assert not messages
    assert any(_is_out_of_range(e) for e in errors), errors[:3]


@pytest.fixture(scope="module")
def packed_big(tmp_path_factory):
    """Gaps between entries exist only with `--offset-mode packed`: a server of its own, 3,000 records."""
    srv = KopServer(tmp_path_factory.mktemp("produce-fetch-packed") / "data", "--offset-mode", "packed")
    srv.start()
    try:
        topic = unique("big-packed")
        create_topic(srv.bootstrap, topic)
        records = make_records(3_000, seed=3)
        offsets = produce(srv.bootstrap, topic, records, {"linger.ms": 5, "acks": "all", "batch.num.messages": 97})
        yield srv, (topic, records, offsets)
    finally:
        srv.stop()


def test_fetch_inside_gap_between_entries_returns_next_record(packed_big):
    server, (topic, records, offsets) = packed_big
    gaps = [i for i in range(len(offsets) - 1) if offsets[i + 1] - offsets[i] > 1]
    assert gaps, "3,000 records in a single Pulsar entry? expected several batches"
    i = gaps[len(gaps) // 2]
    inside = offsets[i] + 1
    error, _, fetched = raw_fetch(server.port, topic, inside)
    assert error == 0
    after = [r for r in fetched if r[0] >= inside]
    assert after and after[0][0] == offsets[i + 1], fetched[:3]
    messages, errors = consume(server.bootstrap, topic, inside, 1, conf={"auto.offset.reset": "error"})
    assert messages, errors[:3]
    assert as_tuple(messages[0]) == expected_tuples(records[i + 1:i + 2], offsets[i + 1:i + 2])[0]


# -- 2 (continued). offsets_for_times: last in the module, as a server stuck in a time lookup
# would slow down every test that shares it. -----------------------------------------------------

@pytest.mark.compat("confluent-kafka", "offsets_for_times on 20,000 records: between, at, before and after them")
def test_offsets_for_times(server, big):
    topic, records, offsets = big
    consumer = Consumer(consumer_conf(server.bootstrap))
    try:
        def lookup(ts: int) -> int:
            [tp] = consumer.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=15)
            assert tp.error is None, tp.error
            return tp.offset

        assert lookup(BASE_TS + 2 * 10_000 + 1) == offsets[10_001]  # between two records: the later one
        assert lookup(BASE_TS + 2 * 5_000) == offsets[5_000]  # exactly a record's timestamp
        assert lookup(BASE_TS - 60_000) == offsets[0]  # before everything: the first record
        assert lookup(BASE_TS + 2 * 20_000 + 1_000) == -1  # after everything: no such record
    finally:
        consumer.close()
