"""`--offset-mode consecutive` (the default) on a real pulsar-lite, with confluent-kafka: the issue's acceptance lines.

Two proxies on one Pulsar with different cluster ids form two Kafka clusters of one
member each, so each leads (writes and serves) every partition: what one wrote the
other reads, and either can append after the other (the next append relearns the
end: see storage/pulsar/offsets_consecutive.py).
"""

from __future__ import annotations

import time

import pulsar
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tests.interop.test_produce_fetch import (
    BASE_TS,
    build_batch,
    consume,
    consumer_conf,
    create_topic,
    produce,
    raw_produce,
    unique,
    watermarks,
)
from tests.support import KopServer

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def proxies(tmp_path_factory):
    base = tmp_path_factory.mktemp("consecutive")
    a = KopServer(base / "a", "--cluster-id", "consecutive-a").start()
    try:
        b = KopServer(base / "b", "--pulsar-url", a.pulsar_url, "--cluster-id", "consecutive-b").start()
        try:
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()


def values_of(messages) -> list[bytes]:
    return [m.value() for m in messages]


def _ten_then_hundred(bootstrap: str, topic: str) -> list[int]:
    offsets = []
    for i in range(10):
        offsets += produce(bootstrap, topic, [(None, b"single-%d" % i, None, None)], {"linger.ms": 0})
    error, base = raw_produce(int(bootstrap.rsplit(":", 1)[1]), topic,
                              bytes(build_batch([b"batch-%d" % i for i in range(100)], BASE_TS)))
    assert error == 0
    return offsets + list(range(base, base + 100))


def test_a_new_topic_starts_at_zero_and_has_no_gaps_through_two_proxies(proxies):
    a, b = proxies
    topic = unique("zero")
    create_topic(a.bootstrap, topic)
    assert watermarks(a.bootstrap, topic) == (0, 0)
    offsets = _ten_then_hundred(a.bootstrap, topic)
    assert offsets == list(range(110))
    want = [b"single-%d" % i for i in range(10)] + [b"batch-%d" % i for i in range(100)]
    for proxy in (a, b):
        assert watermarks(proxy.bootstrap, topic) == (0, 110)
        messages, errors = consume(proxy.bootstrap, topic, OFFSET_BEGINNING, 110)
        assert [m.offset() for m in messages] == list(range(110)), errors[:3]
        assert values_of(messages) == want


def test_seek_start_at_zero_and_end_minus_n(proxies):
    a, b = proxies
    topic = unique("seek")
    create_topic(a.bootstrap, topic)
    # 100 records in batches of uneven sizes (1, 2, 3, ...).
    values = [b"r%d" % i for i in range(100)]
    i = 0
    size = 1
    while i < len(values):
        chunk = values[i:i + size]
        error, base = raw_produce(a.port, topic, bytes(build_batch(chunk, BASE_TS + i)))
        assert (error, base) == (0, i)
        i += len(chunk)
        size += 1
    for proxy in (a, b):
        messages, errors = consume(proxy.bootstrap, topic, 20, 1)
        assert [(m.offset(), m.value()) for m in messages] == [(20, b"r20")], errors[:3]
        messages, errors = consume(proxy.bootstrap, topic, 0, 1)
        assert [(m.offset(), m.value()) for m in messages] == [(0, b"r0")], errors[:3]
        for n in (1, 7, 30):
            messages, errors = consume(proxy.bootstrap, topic, 100 - n, n)
            assert values_of(messages) == values[-n:], errors[:3]


def test_kcat_style_end_minus_n(proxies):
    """librdkafka's logical offset OFFSET_TAIL(n) (kcat -o -n): ListOffsets LATEST minus n."""
    a, _ = proxies
    topic = unique("tail")
    create_topic(a.bootstrap, topic)
    produce(a.bootstrap, topic, [(None, b"v%d" % i, None, None) for i in range(50)], {"linger.ms": 20})
    tail5 = -2000 - 5  # RD_KAFKA_OFFSET_TAIL(5): confluent-kafka has no helper for it
    messages, errors = consume(a.bootstrap, topic, tail5, 5)
    assert values_of(messages) == [b"v%d" % i for i in range(45, 50)], errors[:3]


def test_committed_offset_lag_is_unread_records(proxies):
    a, _ = proxies
    topic = unique("lag")
    create_topic(a.bootstrap, topic)
    produce(a.bootstrap, topic, [(None, b"v%d" % i, None, None) for i in range(40)], {"linger.ms": 10})
    group = unique("group")
    consumer = Consumer(consumer_conf(a.bootstrap, **{"group.id": group}))
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 15 and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=15 - len(got), timeout=0.5):
                if not msg.error():
                    got.append(msg)
        assert [m.offset() for m in got] == list(range(15))
        consumer.commit(offsets=[TopicPartition(topic, 0, 15)], asynchronous=False)
        committed = consumer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
    finally:
        consumer.close()
    assert high - committed == 40 - 15


def test_pulsar_producer_messages_continue_the_sequence(proxies):
    a, b = proxies
    topic = unique("foreign")
    create_topic(a.bootstrap, topic)
    assert produce(a.bootstrap, topic, [(None, b"k%d" % i, None, None) for i in range(5)],
                   {"linger.ms": 0}) == list(range(5))
    client = pulsar.Client(a.pulsar_url)
    try:
        producer = client.create_producer(f"persistent://public/default/{topic}-partition-0",
                                          batching_enabled=True, batching_max_publish_delay_ms=50)
        for i in range(3):
            producer.send_async(b"p%d" % i, None)
        producer.flush()
        producer.send(b"p3")  # an entry of its own
        producer.close()
    finally:
        client.close()
    # The next Kafka append (through the other proxy) follows them.
    assert produce(b.bootstrap, topic, [(None, b"k5", None, None)], {"linger.ms": 0}) == [9]
    want = [(i, b"k%d" % i) for i in range(5)] + [(5 + i, b"p%d" % i) for i in range(4)] + [(9, b"k5")]
    for proxy in (a, b):
        messages, errors = consume(proxy.bootstrap, topic, OFFSET_BEGINNING, 10)
        assert [(m.offset(), m.value()) for m in messages] == want, errors[:3]
        assert watermarks(proxy.bootstrap, topic) == (0, 10)
        messages, errors = consume(proxy.bootstrap, topic, 7, 1)
        assert [(m.offset(), m.value()) for m in messages] == [(7, b"p2")], errors[:3]


def test_everything_the_same_after_a_restart_of_everything(tmp_path):
    topic = unique("restart")
    srv = KopServer(tmp_path / "data").start()
    try:
        create_topic(srv.bootstrap, topic)
        assert _ten_then_hundred(srv.bootstrap, topic) == list(range(110))
    finally:
        srv.stop()
    srv = KopServer(tmp_path / "data").start()
    try:
        assert watermarks(srv.bootstrap, topic) == (0, 110)
        messages, errors = consume(srv.bootstrap, topic, 20, 1)
        assert [m.offset() for m in messages] == [20], errors[:3]
        assert produce(srv.bootstrap, topic, [(None, b"after", None, None)], {"linger.ms": 0}) == [110]
        messages, errors = consume(srv.bootstrap, topic, OFFSET_BEGINNING, 111)
        assert [m.offset() for m in messages] == list(range(111)), errors[:3]
    finally:
        srv.stop()


def test_offset_mode_is_the_clusters_and_a_mismatch_refuses_to_start(tmp_path):
    srv = KopServer(tmp_path / "data").start()
    try:
        other = KopServer(tmp_path / "other", "--pulsar-url", srv.pulsar_url, "--offset-mode", "packed")
        with pytest.raises(RuntimeError, match="exited with 1") as info:
            other.start()
        assert "--offset-mode packed differs from this cluster's offset mode consecutive" in str(info.value)
        same = KopServer(tmp_path / "same", "--pulsar-url", srv.pulsar_url, "--offset-mode", "consecutive",
                         "--cluster-id", "another").start()
        same.stop()
    finally:
        srv.stop()


def test_plain_pulsar_topic_is_numbered_from_zero_identically_on_both_proxies(proxies):
    a, b = proxies
    topic = unique("plain")
    client = pulsar.Client(a.pulsar_url)
    try:
        producer = client.create_producer(f"persistent://public/default/{topic}", batching_enabled=True,
                                          batching_max_publish_delay_ms=20)
        for i in range(30):
            if i % 7 == 0:
                producer.send(b"n%d" % i)  # one entry
            else:
                producer.send_async(b"n%d" % i, None)  # batched with its neighbours
        producer.flush()
        producer.close()
    finally:
        client.close()
    want = [(i, b"n%d" % i) for i in range(30)]
    for proxy in (a, b):
        messages, errors = consume(proxy.bootstrap, topic, OFFSET_BEGINNING, 30)
        assert [(m.offset(), m.value()) for m in messages] == want, errors[:3]
        messages, errors = consume(proxy.bootstrap, topic, 17, 1)
        assert [(m.offset(), m.value()) for m in messages] == [(17, b"n17")], errors[:3]
        assert watermarks(proxy.bootstrap, topic) == (0, 30)


def test_offsets_for_times_and_max_timestamp(proxies):
    from confluent_kafka.admin import AdminClient, OffsetSpec

    a, b = proxies
    topic = unique("times")
    create_topic(a.bootstrap, topic)
    records = [(None, b"t%d" % i, None, BASE_TS + 10 * i) for i in range(60)]
    assert produce(a.bootstrap, topic, records, {"linger.ms": 5, "batch.num.messages": 7}) == list(range(60))
    for proxy in (a, b):
        consumer = Consumer(consumer_conf(proxy.bootstrap))
        try:
            for i in (0, 1, 37, 59):
                [tp] = consumer.offsets_for_times([TopicPartition(topic, 0, BASE_TS + 10 * i)], timeout=15)
                assert tp.offset == i
            [tp] = consumer.offsets_for_times([TopicPartition(topic, 0, BASE_TS + 10 * 37 - 3)], timeout=15)
            assert tp.offset == 37
        finally:
            consumer.close()
        admin = AdminClient({"bootstrap.servers": proxy.bootstrap})
        tp = TopicPartition(topic, 0)
        result = admin.list_offsets({tp: OffsetSpec.max_timestamp()})[tp].result(timeout=15)
        assert (result.offset, result.timestamp) == (59, BASE_TS + 590)


def test_entry_format_pulsar_one_message_per_record_each_with_its_offset(tmp_path):
    srv = KopServer(tmp_path / "data", "--entry-format", "pulsar").start()
    try:
        topic = unique("pulsar-format")
        create_topic(srv.bootstrap, topic)
        assert _ten_then_hundred(srv.bootstrap, topic) == list(range(110))
        messages, errors = consume(srv.bootstrap, topic, OFFSET_BEGINNING, 110)
        assert [m.offset() for m in messages] == list(range(110)), errors[:3]
        messages, errors = consume(srv.bootstrap, topic, 20, 1)
        assert [(m.offset(), m.value()) for m in messages] == [(20, b"batch-10")], errors[:3]
        client = pulsar.Client(srv.pulsar_url)
        try:
            reader = client.create_reader(f"persistent://public/default/{topic}-partition-0",
                                          pulsar.MessageId.earliest)
            stamps = [int(reader.read_next(5000).properties()["kafka.offset"]) for _ in range(110)]
            reader.close()
        finally:
            client.close()
        assert stamps == list(range(110))
    finally:
        srv.stop()


def test_pulsar_producer_writing_while_a_kafka_producer_writes(proxies, tmp_path):
    """Interleaved writers: the Kafka producer is answered with the offsets every proxy reads,
    also a proxy that starts afterwards and seeks cold (the owner pins the offsets it corrected)."""
    import threading

    a, b = proxies
    topic = unique("interleaved")
    create_topic(a.bootstrap, topic)
    client = pulsar.Client(a.pulsar_url)
    stop = threading.Event()

    def pulsar_writer():
        producer = client.create_producer(f"persistent://public/default/{topic}-partition-0",
                                          batching_enabled=False)
        i = 0
        while not stop.is_set() and i < 300:
            producer.send(b"p%d" % i)
            i += 1
            time.sleep(0.002)
        producer.close()

    thread = threading.Thread(target=pulsar_writer)
    thread.start()
    try:
        offsets = produce(a.bootstrap, topic, [(None, b"k%d" % i, None, None) for i in range(300)],
                          {"linger.ms": 0, "max.in.flight": 5, "batch.num.messages": 10})
    finally:
        stop.set()
        thread.join()
        client.close()
    assert len(set(offsets)) == 300
    _, end = watermarks(a.bootstrap, topic)
    later = KopServer(tmp_path / "later", "--pulsar-url", a.pulsar_url, "--cluster-id", "consecutive-later").start()
    try:
        for proxy in (a, b, later):
            messages, errors = consume(proxy.bootstrap, topic, OFFSET_BEGINNING, end)
            got = [(m.offset(), m.value()) for m in messages]
            assert [o for o, _ in got] == list(range(end)), errors[:3]
            kafka = {v: o for o, v in got if v.startswith(b"k")}
            assert [kafka[b"k%d" % i] for i in range(300)] == offsets
        for i in (0, 77, 150, 299):  # cold seeks on the proxy that started last
            messages, errors = consume(later.bootstrap, topic, offsets[i], 1)
            assert [(m.offset(), m.value()) for m in messages] == [(offsets[i], b"k%d" % i)], errors[:3]
    finally:
        later.stop()


def _one_off_readers(server: KopServer, topic: str) -> int:
    """One-off readers (probes, walks) pulsar-lite has recorded on public/default/`topic`."""
    import json
    meta = json.loads((server.data_dir / "pulsar.metadata.json").read_text())
    count = 0
    for tree in meta.values():
        if isinstance(tree, dict):
            node = tree.get("public", {}).get("default", {}).get("persistent", {}).get(topic, {})
            count += sum(1 for name in node.get("subscriptions", {}) if name.startswith("kop-fast-one-off"))
    return count


def test_a_consumer_at_the_end_starts_without_searching_pulsar(proxies):
    """Every entry the owner stored is a point of its index: a fetch at the end of a partition
    of 150 entries positions its reader on the last entry at once. (With a point every 64
    entries it binary-searched the rest with one-off Pulsar reads: ~6 per partition.)"""
    a, _ = proxies
    topic = unique("consecutive-end")
    create_topic(a.bootstrap, topic)
    port = int(a.bootstrap.rsplit(":", 1)[1])
    for i in range(150):
        error, base = raw_produce(port, topic, bytes(build_batch([b"entry-%d" % i], BASE_TS + i)))
        assert (error, base) == (0, i)
    before = _one_off_readers(a, f"{topic}-partition-0")
    consumer = Consumer(consumer_conf(a.bootstrap))
    try:
        consumer.assign([TopicPartition(topic, 0, 150)])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # fetches at the end (long polls), then one more record
            consumer.poll(0.2)
        assert raw_produce(port, topic, bytes(build_batch([b"entry-150"], BASE_TS + 150))) == (0, 150)
        got = None
        deadline = time.monotonic() + 20
        while got is None and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                got = (msg.offset(), msg.value())
    finally:
        consumer.close()
    assert got == (150, b"entry-150")
    assert _one_off_readers(a, f"{topic}-partition-0") - before == 0
