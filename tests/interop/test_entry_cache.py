"""Fetches served from the entry cache against the same fetches served by Pulsar readers.

Proxy `cached` (default --read-cache-mb) and proxy `uncached` (--read-cache-mb 0)
share one pulsar-lite; records written through `cached` are in its cache and are
read by `uncached` from Pulsar.
"""

import json
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.support import KopServer, fetch_v4

pytestmark = pytest.mark.interop


def proxy_pair(base, *args: str):
    """A caching proxy and, on its pulsar-lite, one with the cache off; stopped at the end.

    Each is a Kafka cluster of its own (`--cluster-id`), so both lead every partition and
    the same fetch can be sent to both (in one cluster, one of them would answer
    NOT_LEADER_OR_FOLLOWER)."""
    cached = KopServer(base / "cached", *args).start()
    try:
        uncached = KopServer(base / "uncached", *args, "--pulsar-url", cached.pulsar_url, "--node-id", "1",
                             "--cluster-id", "uncached", "--read-cache-mb", "0").start()
    except Exception:
        cached.stop()
        raise
    try:
        yield cached, uncached
    finally:
        uncached.stop()
        cached.stop()


@pytest.fixture(scope="module")
def proxies(tmp_path_factory):
    yield from proxy_pair(tmp_path_factory.mktemp("cache"))


def produce(bootstrap: str, topic: str, n: int, tag: bytes, linger_ms: int = 5) -> list[int]:
    offsets = []
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": linger_ms, "batch.num.messages": 97})
    for i in range(n):
        producer.produce(topic, key=b"k%d" % i, value=tag + b"-%d" % i, headers=[("h", b"\x00\xff"), ("n", None)],
                         timestamp=1_700_000_000_000 + i,
                         on_delivery=lambda err, msg: offsets.append(msg.offset() if err is None else err))
    assert producer.flush(30) == 0
    assert all(isinstance(o, int) for o in offsets), offsets[:3]
    return offsets


def last_offset(records: bytes) -> int:
    from kop_fast import codec
    return codec.decode_batches(bytearray(records))[-1].records[-1].offset


def reader_subscriptions(server: KopServer, topic: str) -> int:
    """Fetch readers' subscriptions pulsar-lite has recorded on public/default/`topic` (each
    Reader leaves one; the one-off lookups' readers are named `kop-fast-one-off-reader-*`)."""
    meta = json.loads((server.data_dir / "pulsar.metadata.json").read_text())
    count = 0
    for tree in meta.values():
        if isinstance(tree, dict):
            node = tree.get("public", {}).get("default", {}).get("persistent", {}).get(topic, {})
            count += sum(1 for name in node.get("subscriptions", {}) if name.startswith("reader-"))
    return count


def read_log(port: int, topic: str, start: int, end: int) -> list[bytes]:
    """Every stored batch from `start` to `end`, as one proxy sends them."""
    from kop_fast import codec

    batches, offset = [], start
    deadline = time.monotonic() + 30
    while offset < end:
        error, hwm, records = fetch_v4(port, topic, offset, max_bytes=1 << 20)
        assert error == 0 and hwm == end
        if not records:  # a fresh Pulsar reader may take longer than the fetch's max wait (a loaded machine)
            assert time.monotonic() < deadline, f"no records at offset {offset} for 30 s"
            continue
        view = bytearray(records)
        for position, length, *_ in codec.batch_infos(view):
            batches.append(bytes(view[position:position + length]))
        offset = last_offset(records) + 1
    return batches


def written_then_read_through_both(proxies, topic: str, n: int) -> tuple[list, list, list]:
    """Produce n records through the caching proxy; its offsets, and the stored batches
    read through the caching proxy and through the uncached one."""
    cached, uncached = proxies
    offsets = produce(cached.bootstrap, topic, n, b"v")
    start, end = offsets[0], offsets[-1] + 1
    before = reader_subscriptions(cached, f"{topic}-partition-0")
    from_cache = read_log(cached.port, topic, start, end)
    # The caching proxy answered every fetch from memory: it opened no fetch reader (only
    # one-off lookups of the log start, one or two when the first is slow and hedged).
    assert reader_subscriptions(cached, f"{topic}-partition-0") - before == 0
    from_pulsar = read_log(uncached.port, topic, start, end)
    return offsets, from_cache, from_pulsar


def test_cached_fetch_is_byte_identical_to_pulsar_fetch(proxies):
    _, from_cache, from_pulsar = written_then_read_through_both(proxies, f"cache-bytes-{time.monotonic_ns()}", 1500)
    assert len(from_cache) > 10  # batch.num.messages=97: many stored batches
    assert from_cache == from_pulsar


def consume_all(bootstrap: str, topic: str, start: int, count: int, timeout: float = 30) -> list:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "cache", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, start)])
    got = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            for msg in consumer.consume(100, 0.5):
                assert msg.error() is None, msg.error()
                got.append((msg.offset(), msg.value()))
    finally:
        consumer.close()
    return got


def test_interleaved_writes_through_two_proxies_read_back_complete(proxies):
    cached, uncached = proxies
    topic = f"cache-interleaved-{time.monotonic_ns()}"
    written = []
    for round_ in range(6):
        for server, tag in ((cached, b"a"), (uncached, b"b")):
            label = tag + b"%d" % round_
            offsets = produce(server.bootstrap, topic, 7, label, linger_ms=0)
            written += [(o, label + b"-%d" % i) for i, o in enumerate(offsets)]
    written.sort()
    # The caching proxy's entries are never contiguous here: every read must still see
    # the other proxy's records in between, from both proxies.
    assert consume_all(cached.bootstrap, topic, written[0][0], len(written)) == written
    assert consume_all(uncached.bootstrap, topic, written[0][0], len(written)) == written


def test_consumer_following_the_producer_gets_every_record(proxies):
    cached, _ = proxies
    topic = f"cache-follow-{time.monotonic_ns()}"
    first = produce(cached.bootstrap, topic, 1, b"first")
    consumer = Consumer({"bootstrap.servers": cached.bootstrap, "group.id": "follow",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 50})
    consumer.assign([TopicPartition(topic, 0, first[0])])
    got = []
    producer = Producer({"bootstrap.servers": cached.bootstrap, "linger.ms": 0})
    try:
        deadline = time.monotonic() + 30
        for i in range(200):  # one record at a time, each read before the next is written
            producer.produce(topic, value=b"r%d" % i)
            producer.flush(10)
            while len(got) < i + 2 and time.monotonic() < deadline:
                msg = consumer.poll(0.2)
                if msg is not None:
                    assert msg.error() is None, msg.error()
                    got.append(msg.value())
        assert got == [b"first-0"] + [b"r%d" % i for i in range(200)]
    finally:
        consumer.close()


@pytest.fixture(scope="module")
def pulsar_format_proxies(tmp_path_factory):
    yield from proxy_pair(tmp_path_factory.mktemp("cache-native"), "--entry-format", "pulsar")


def records_of(batches: list[bytes]) -> list[tuple]:
    from kop_fast import codec

    out = []
    for raw in batches:
        for batch in codec.decode_batches(bytearray(raw)):
            out += [(r.offset, r.timestamp, r.key, r.value, tuple(r.headers)) for r in batch.records]
    return out


def test_pulsar_format_cached_fetch_has_the_records_pulsar_has(pulsar_format_proxies):
    offsets, from_cache, from_pulsar = written_then_read_through_both(
        pulsar_format_proxies, f"cache-native-{time.monotonic_ns()}", 1000)
    # Batches differ (the cache sends the producer's batch, Pulsar's path encodes its
    # own), records do not: same offsets, timestamps, keys, values, headers.
    got = records_of(from_cache)
    assert got == records_of(from_pulsar)
    assert [r[0] for r in got] == offsets
    assert got[0][2:] == (b"k0", b"v-0", (("h", b"\x00\xff"), ("n", None)))


def test_pulsar_format_many_batches_in_flight_are_stored_once(pulsar_format_proxies):
    # 24 batches of 10,000 records in flight at once: more messages than a pulsar-client
    # producer may have pending (100,000). They must wait for room, not fail half-stored.
    cached, uncached = pulsar_format_proxies
    topic = f"inflight-{time.monotonic_ns()}"
    n = 240_000
    errors, offsets = [], []
    producer = Producer({"bootstrap.servers": cached.bootstrap, "linger.ms": 50, "batch.num.messages": 10_000,
                         "queue.buffering.max.messages": n, "retries": 0, "enable.idempotence": False})

    def on_delivery(err, msg):
        (errors if err is not None else offsets).append(err or msg.offset())

    for i in range(n):
        producer.produce(topic, value=b"%d" % i, on_delivery=on_delivery)
    assert producer.flush(120) == 0
    assert errors == [] and len(offsets) == n
    start = min(offsets)
    for server in (cached, uncached):  # from memory, and from Pulsar
        values = [v for _, v in consume_all(server.bootstrap, topic, start, n)]
        assert len(values) == n and set(values) == {b"%d" % i for i in range(n)}  # none twice
