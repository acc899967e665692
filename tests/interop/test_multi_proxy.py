"""Two kop_fast processes in front of one Pulsar share everything through Pulsar."""

import time

import pytest

from tests.support import KopServer

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def two_proxies(tmp_path_factory):
    base = tmp_path_factory.mktemp("multi")
    a = KopServer(base / "a").start()
    try:
        b = KopServer(base / "b", "--pulsar-url", a.pulsar_url, "--node-id", "1").start()
    except Exception:
        a.stop()
        raise
    yield a, b
    b.stop()
    a.stop()


def produce(bootstrap, topic, values):
    from confluent_kafka import Producer

    offsets = []
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2})
    for v in values:
        producer.produce(topic, value=v, on_delivery=lambda err, msg: offsets.append(
            (err, msg.offset(), msg.value())))
    assert producer.flush(30) == 0
    assert all(err is None for err, _, _ in offsets)
    return [(o, v) for _, o, v in offsets]


def consume(bootstrap, topic, start, count, timeout=30):
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "multi", "enable.auto.commit": False,
                         "auto.offset.reset": "error"})
    consumer.assign([TopicPartition(topic, 0, start)])
    got = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append((msg.offset(), msg.value()))
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=20)
    finally:
        consumer.close()
    return got, (low, high)


def test_written_through_one_read_through_the_other(two_proxies):
    a, b = two_proxies
    first = produce(a.bootstrap, "shared-t", [b"a%d" % i for i in range(50)])
    # B learns the topic from the registry topic in Pulsar and reads A's records.
    got, (low, high) = consume(b.bootstrap, "shared-t", first[0][0], 50)
    assert got == first
    assert (low, high) == (first[0][0], first[-1][0] + 1)
    # More records through A after B has cached the end: B must not call them out of range.
    second = produce(a.bootstrap, "shared-t", [b"b%d" % i for i in range(20)])
    got, (low, high) = consume(b.bootstrap, "shared-t", second[0][0], 20)
    assert got == second
    assert high == second[-1][0] + 1
    # And the other way round, interleaved in one partition.
    third = produce(b.bootstrap, "shared-t", [b"c%d" % i for i in range(10)])
    got, _ = consume(a.bootstrap, "shared-t", first[0][0], 80)
    assert got == first + second + third


def watermarks(bootstrap, topic):
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "multi-wm"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=20, cached=False)
    finally:
        consumer.close()


def test_earliest_seen_empty_by_one_proxy_follows_the_other_ones_first_write(two_proxies):
    a, b = two_proxies
    # B creates the topic (a Metadata request naming it) and sees it empty: earliest == latest.
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(topic="shared-empty", timeout=20)
    assert md.topics["shared-empty"].error is None
    low, high = watermarks(b.bootstrap, "shared-empty")
    assert low == high
    # A writes the first records; B's "empty" must not stick as the log start.
    first = produce(a.bootstrap, "shared-empty", [b"e%d" % i for i in range(5)])
    assert watermarks(b.bootstrap, "shared-empty") == (first[0][0], first[-1][0] + 1)
    # Settled now: more records through either proxy leave it where it is.
    produce(b.bootstrap, "shared-empty", [b"f"])
    assert watermarks(b.bootstrap, "shared-empty")[0] == first[0][0]
    assert watermarks(a.bootstrap, "shared-empty")[0] == first[0][0]
