"""confluent-kafka-python (librdkafka) against kop-fast: the interoperability matrix's rows for it.

Defaults first (a Producer and a group Consumer configured with nothing but what is required:
bootstrap.servers, group.id, and auto.offset.reset=earliest to read what is already there), then
the variations: every compression codec both ways, the idempotent producer, explicit commits, seek
and offsets_for_times, the AdminClient, cooperative-sticky rebalancing and static membership; last
what kop-fast does not implement, with what the client sees.

Rows covered elsewhere carry their compat mark where they are: test_produce_fetch.py (acks modes and
idempotence, offsets_for_times on 20,000 records), test_groups.py (eager range groups, describe,
list and delete groups), test_admin.py (the topic life cycle on three proxies) and
test_security.py (SASL, TLS, OAUTHBEARER).

One server for the module, with no initial rebalance delay (Kafka's group.initial.rebalance.delay.ms
is 3 s, as kop-fast's): groups form at once. Names are unique per test.
"""

from __future__ import annotations

import asyncio
import struct
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from tests.interop.clients.canonical import BASE_TS, Record, assert_same_records, canonical_records
from tests.interop.test_produce_fetch import create_topic, unique
from tests.support import KopServer, fetch_v4

pytestmark = pytest.mark.interop

CODECS = ("gzip", "snappy", "lz4", "zstd")
CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}




# -- helpers (also used by test_cross_client.py) ------------------------------------------------------

def as_record(msg) -> Record:
    return Record(msg.key(), msg.value(), tuple(msg.headers() or ()), msg.timestamp()[1])


def produce_records(bootstrap: str, topic: str, records: list[Record], conf: dict | None = None,
                    partition: int | None = 0) -> list[int]:
    """Produce with `conf` on top of the defaults (bootstrap.servers only); the delivered offsets."""
    reports: list = [None] * len(records)
    producer = Producer({"bootstrap.servers": bootstrap, **(conf or {})})
    for i, r in enumerate(records):
        kwargs = {} if partition is None else {"partition": partition}
        producer.produce(topic, key=r.key, value=r.value, headers=list(r.headers) or None, timestamp=r.timestamp,
                         on_delivery=lambda err, msg, i=i: reports.__setitem__(i, (err, msg.offset())), **kwargs)
    assert producer.flush(30) == 0, "not delivered within 30 s"
    assert all(r is not None and r[0] is None for r in reports), [r for r in reports if r is None or r[0]][:3]
    return [r[1] for r in reports]


def poll_messages(consumer: Consumer, count: int, timeout: float = 30) -> list:
    """`count` records (consumer errors fail the test)."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=count - len(out), timeout=0.2):
            if msg.error():
                raise KafkaException(msg.error())
            out.append(msg)
    return out


def compressible(tag: str, n: int = 40) -> list[Record]:
    """Records worth compressing (librdkafka sends a batch uncompressed when compression does not pay)."""
    return [Record(b"c%d" % i, (f"{tag} compressible payload {i % 4} " * 30).encode(), (("n", b"%d" % i),),
                   BASE_TS + 10_000 + i) for i in range(n)]


def stored_batches(port: int, topic: str) -> list[tuple[str, int]]:
    """(compression, producer id) of every batch partition 0 holds, as a raw Fetch returns them:
    kop-fast stores each batch as the producer sent it."""
    error, _, raw = fetch_v4(port, topic, 0)
    assert error == 0
    names = {v: k for k, v in CODEC_IDS.items()}
    out, pos = [], 0
    while pos + 61 <= len(raw):
        length = struct.unpack_from(">i", raw, pos + 8)[0]
        if pos + 12 + length > len(raw):
            break  # a partial batch at the end of the answer
        attributes, producer_id = struct.unpack_from(">h", raw, pos + 21)[0], struct.unpack_from(">q", raw, pos + 43)[0]
        out.append((names[attributes & 0x7], producer_id))
        pos += 12 + length
    return out


def stored_codecs(port: int, topic: str) -> set[str]:
    return {codec for codec, _ in stored_batches(port, topic)}


def assert_librdkafka_compressed(port: int, topic: str, codec: str) -> None:
    """librdkafka sends a batch uncompressed when compressing it does not pay (a small tail batch of
    the canonical records, say): at least one batch is `codec`, and no batch another codec."""
    stored = stored_codecs(port, topic)
    assert codec in stored and stored <= {codec, "none"}, stored


def aiokafka_write(bootstrap: str, topic: str, records: list[Record], **conf) -> list[int]:
    """aiokafka's producer (`conf` on its defaults), one send per record, partition 0; the offsets."""
    from aiokafka import AIOKafkaProducer

    async def run():
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **conf)
        await producer.start()
        try:
            futures = [await producer.send(topic, key=r.key, value=r.value, headers=list(r.headers),
                                           timestamp_ms=r.timestamp, partition=0) for r in records]
            return [m.offset for m in await asyncio.gather(*futures)]
        finally:
            await producer.stop()

    return asyncio.run(asyncio.wait_for(run(), 60))


def new_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept until the call returns: destroyed, it fails the call
    admin.create_topics([NewTopic(topic, partitions)])[topic].result(20)


def group_conf(bootstrap: str, group: str, **extra) -> dict:
    return {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest", **extra}


# -- 1. defaults ----------------------------------------------------------------------------------------

@pytest.mark.compat("confluent-kafka", "default Producer and group Consumer (auto-commit): keys, binary and "
                    "null headers, timestamps intact; the commit on close is where the next member starts")
def test_defaults_produce_and_group_consume_with_auto_commit(server):
    # librdkafka's defaults: acks=all, linger.ms=5, no compression, enable.idempotence=false;
    # the consumer: enable.auto.commit=true (every 5 s and on close), isolation.level=read_committed.
    topic, group = unique("cf-default"), unique("g-cf-default")
    records = canonical_records(topic)
    offsets = produce_records(server.bootstrap, topic, records, partition=None)  # auto-created, 1 partition
    assert {pid for _, pid in stored_batches(server.port, topic)} == {-1}, "not idempotent by default"
    consumer = Consumer(group_conf(server.bootstrap, group))
    consumer.subscribe([topic])
    try:
        got = poll_messages(consumer, len(records))
        assert [m.offset() for m in got] == offsets
        assert_same_records([as_record(m) for m in got], records, who="confluent default consumer")
    finally:
        consumer.close()  # commits what was consumed, and leaves the group
    check = Consumer(group_conf(server.bootstrap, group))
    try:
        [tp] = check.committed([TopicPartition(topic, 0)], timeout=20)
        assert tp.offset == offsets[-1] + 1
        check.subscribe([topic])
        more = canonical_records(topic + "-more", 2)
        later = produce_records(server.bootstrap, topic, more)
        got = poll_messages(check, 2)
        assert [m.offset() for m in got] == later, "the next member started after the commit"
        assert_same_records([as_record(m) for m in got], more, who="the next member")
    finally:
        check.close()


# -- 2. compression, both ways ---------------------------------------------------------------------------

@pytest.mark.compat("confluent-kafka", "compression.type gzip, snappy, lz4, zstd: batches stored as sent, "
                    "read back with keys, headers and timestamps intact")
@pytest.mark.parametrize("codec", CODECS)
def test_compressed_batches_round_trip(server, codec):
    topic = unique(f"cf-{codec}")
    create_topic(server.bootstrap, topic)
    records = canonical_records(topic) + compressible(topic)
    offsets = produce_records(server.bootstrap, topic, records, {"compression.type": codec, "linger.ms": 100})
    assert offsets == list(range(offsets[0], offsets[0] + len(records)))
    assert_librdkafka_compressed(server.port, topic, codec)  # kop-fast stores each batch as the producer sent it
    consumer = Consumer(group_conf(server.bootstrap, unique("g"), **{"enable.auto.commit": False}))
    consumer.assign([TopicPartition(topic, 0, 0)])
    try:
        got = poll_messages(consumer, len(records))
    finally:
        consumer.close()
    assert [m.offset() for m in got] == offsets
    assert_same_records([as_record(m) for m in got], records, who=f"librdkafka reading its own {codec}")


@pytest.mark.compat("confluent-kafka", "reads batches that aiokafka compressed with gzip, snappy, lz4, zstd")
@pytest.mark.parametrize("codec", CODECS)
def test_reads_batches_compressed_by_aiokafka(server, codec):
    topic = unique(f"aio-{codec}")
    create_topic(server.bootstrap, topic)
    records = canonical_records(topic) + compressible(topic)
    offsets = aiokafka_write(server.bootstrap, topic, records, compression_type=codec, linger_ms=100)
    assert stored_codecs(server.port, topic) == {codec}
    consumer = Consumer(group_conf(server.bootstrap, unique("g"), **{"enable.auto.commit": False}))
    consumer.assign([TopicPartition(topic, 0, 0)])
    try:
        got = poll_messages(consumer, len(records))
    finally:
        consumer.close()
    assert [m.offset() for m in got] == offsets
    assert_same_records([as_record(m) for m in got], records, who=f"librdkafka reading aiokafka's {codec}")


@pytest.fixture(scope="module")
def pulsar_format(tmp_path_factory):
    """A server that keeps one Pulsar message per record (`--entry-format pulsar`): it decompresses
    every batch it is given."""
    srv = KopServer(tmp_path_factory.mktemp("confluent-kafka-pulsar-format") / "data", "--entry-format", "pulsar")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.compat("confluent-kafka", "--entry-format pulsar: batches librdkafka and aiokafka compressed with gzip, "
                    "snappy, lz4, zstd are unpacked into one Pulsar message per record and read back intact")
@pytest.mark.parametrize("codec", CODECS)
def test_compressed_batches_into_the_pulsar_entry_format(pulsar_format, codec):
    topic = unique(f"cf-pf-{codec}")
    new_topic(pulsar_format.bootstrap, topic)
    ours = canonical_records(topic + "-librdkafka") + compressible(topic + "-librdkafka")
    theirs = canonical_records(topic + "-aiokafka") + compressible(topic + "-aiokafka")
    offsets = produce_records(pulsar_format.bootstrap, topic, ours, {"compression.type": codec, "linger.ms": 100})
    offsets += aiokafka_write(pulsar_format.bootstrap, topic, theirs, compression_type=codec, linger_ms=100)
    consumer = Consumer(group_conf(pulsar_format.bootstrap, unique("g"), **{"enable.auto.commit": False}))
    consumer.assign([TopicPartition(topic, 0, 0)])
    try:
        got = poll_messages(consumer, len(offsets))
    finally:
        consumer.close()
    assert [m.offset() for m in got] == offsets
    assert_same_records([as_record(m) for m in got], ours + theirs, who=f"{codec} through the pulsar entry format")


# -- 3. the idempotent producer ------------------------------------------------------------------------

@pytest.mark.compat("confluent-kafka", "enable.idempotence=true, many small batches in flight on three partitions: "
                    "each record once, in order")
def test_idempotent_producer_many_batches_in_flight(server):
    topic = unique("cf-idem")
    new_topic(server.bootstrap, topic, 3)
    reports: dict[int, list] = {0: [], 1: [], 2: []}
    producer = Producer({"bootstrap.servers": server.bootstrap, "enable.idempotence": True,
                         "batch.num.messages": 7, "linger.ms": 1, "max.in.flight.requests.per.connection": 5})
    values = {p: [b"p%d-%04d" % (p, i) for i in range(300)] for p in range(3)}
    for i in range(300):
        for p in range(3):
            producer.produce(topic, value=values[p][i], partition=p,
                             on_delivery=lambda err, msg: reports[msg.partition()].append((err, msg.offset(),
                                                                                          msg.value())))
        producer.poll(0)
    assert producer.flush(30) == 0
    [(_, producer_id)] = set(stored_batches(server.port, topic))  # partition 0's batches
    assert producer_id >= 0
    for p in range(3):
        assert [e for e, _, _ in reports[p] if e is not None] == []
        assert sorted(o for _, o, _ in reports[p]) == list(range(300)), "consecutive offsets, no duplicates"
    consumer = Consumer(group_conf(server.bootstrap, unique("g"), **{"enable.auto.commit": False}))
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    try:
        got = poll_messages(consumer, 900)
    finally:
        consumer.close()
    for p in range(3):
        assert [m.value() for m in got if m.partition() == p] == values[p], f"partition {p}: once each, in order"


# -- 4. explicit commits, seek, offsets_for_times ----------------------------------------------------

@pytest.mark.compat("confluent-kafka", "group consumer with enable.auto.commit=false: commit(message), committed(), "
                    "seek() back and to offsets_for_times(); the next member resumes at the commit")
def test_commit_seek_and_offsets_for_times(server):
    topic, group = unique("cf-seek"), unique("g-cf-seek")
    create_topic(server.bootstrap, topic)
    records = [Record(b"k%d" % i, b"v%02d" % i, (), BASE_TS + 1000 * i) for i in range(20)]
    offsets = produce_records(server.bootstrap, topic, records, {"linger.ms": 0})
    conf = group_conf(server.bootstrap, group, **{"enable.auto.commit": False})
    consumer = Consumer(conf)
    consumer.subscribe([topic])
    try:
        first = poll_messages(consumer, 10)
        assert [m.value() for m in first] == [r.value for r in records[:10]]
        [done] = consumer.commit(message=first[-1], asynchronous=False)
        assert (done.error, done.offset) == (None, offsets[10])
        assert consumer.committed([TopicPartition(topic, 0)], timeout=20)[0].offset == offsets[10]

        consumer.seek(TopicPartition(topic, 0, offsets[3]))
        assert [m.value() for m in poll_messages(consumer, 2)] == [b"v03", b"v04"]
        [found] = consumer.offsets_for_times([TopicPartition(topic, 0, BASE_TS + 15_000 - 1)], timeout=20)
        assert found.offset == offsets[15]
        consumer.seek(found)
        assert [m.value() for m in poll_messages(consumer, 5)] == [r.value for r in records[15:]]
    finally:
        consumer.close()  # without a commit: the committed offset stays at 10
    resumed = Consumer(conf)
    resumed.subscribe([topic])
    try:
        assert [m.offset() for m in poll_messages(resumed, 10)] == offsets[10:]
    finally:
        resumed.close()


# -- 5. AdminClient --------------------------------------------------------------------------------------

@pytest.mark.compat("confluent-kafka", "AdminClient on its defaults: create, describe, grow and delete topics, "
                    "describe configs, list and alter consumer-group offsets, list, describe and delete groups")
def test_admin_client_topics_configs_and_group_offsets(server):
    from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, TopicCollection
    from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    topic, group = unique("cf-admin"), unique("g-cf-admin")
    admin.create_topics([NewTopic(topic, 2, config={"retention.ms": "3600000"})])[topic].result(20)
    described = admin.describe_topics(TopicCollection([topic]))[topic].result(20)
    assert (described.name, len(described.partitions)) == (topic, 2)
    assert described.topic_id is not None
    admin.create_partitions([NewPartitions(topic, 3)])[topic].result(20)
    assert len(admin.list_topics(topic=topic, timeout=20).topics[topic].partitions) == 3
    [configs] = admin.describe_configs([ConfigResource("topic", topic)]).values()
    configs = configs.result(20)
    assert configs["retention.ms"].value == "3600000"
    assert configs["cleanup.policy"].value == "delete"

    produce_records(server.bootstrap, topic, [Record(None, b"x%d" % i, (), BASE_TS + i) for i in range(5)])
    altered = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic, 0, 3), TopicPartition(topic, 2, 0)])])[group].result(20)
    assert sorted((tp.partition, tp.offset) for tp in altered.topic_partitions) == [(0, 3), (2, 0)]
    listed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(20)
    assert sorted((tp.partition, tp.offset) for tp in listed.topic_partitions) == [(0, 3), (2, 0)]
    consumer = Consumer(group_conf(server.bootstrap, group, **{"enable.auto.commit": False}))
    consumer.subscribe([topic])
    try:
        assert [(m.partition(), m.offset()) for m in poll_messages(consumer, 2)] == [(0, 3), (0, 4)]
        assert admin.describe_consumer_groups([group])[group].result(20).state == ConsumerGroupState.STABLE
    finally:
        consumer.close()
    groups = admin.list_consumer_groups().result(20)
    assert [g.state for g in groups.valid if g.group_id == group] == [ConsumerGroupState.EMPTY]
    admin.delete_consumer_groups([group])[group].result(20)
    assert admin.describe_consumer_groups([group])[group].result(20).state == ConsumerGroupState.DEAD
    admin.delete_topics([topic])[topic].result(20)
    assert topic not in admin.list_topics(timeout=20).topics


# -- 6. cooperative-sticky ----------------------------------------------------------------------------

class Member:
    """A subscribed consumer that records its assignment callbacks and what it reads."""

    def __init__(self, bootstrap: str, group: str, topic: str, **conf) -> None:
        self.events: list[tuple[str, set[int]]] = []
        self.owned: set[int] = set()
        self.read: list = []
        self.consumer = Consumer(group_conf(bootstrap, group, **conf))
        self.consumer.subscribe([topic], on_assign=self._assign, on_revoke=self._revoke)

    def _assign(self, _consumer, partitions) -> None:
        if not partitions:
            return  # cooperative: the second rebalance of a move assigns nothing new
        self.events.append(("assign", {tp.partition for tp in partitions}))
        self.owned |= {tp.partition for tp in partitions}

    def _revoke(self, _consumer, partitions) -> None:
        if not partitions:
            return
        self.events.append(("revoke", {tp.partition for tp in partitions}))
        self.owned -= {tp.partition for tp in partitions}

    def poll(self, timeout: float = 0.05) -> None:
        for msg in self.consumer.consume(num_messages=500, timeout=timeout):
            if msg.error():
                raise KafkaException(msg.error())
            self.read.append((msg.partition(), msg.offset(), msg.value()))

    def close(self) -> None:
        self.consumer.close()


def poll_until(members: list[Member], done, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s: {[m.events for m in members]}"
        for m in members:
            m.poll()


def produce_to_partitions(bootstrap: str, topic: str, partitions: int, per_partition: int, tag: str) -> set:
    producer = Producer({"bootstrap.servers": bootstrap})
    values = set()
    for i in range(per_partition):
        for p in range(partitions):
            value = b"%s-p%d-%04d" % (tag.encode(), p, i)
            values.add(value)
            producer.produce(topic, value=value, partition=p)
    assert producer.flush(30) == 0
    return values


@pytest.mark.compat("confluent-kafka", "partition.assignment.strategy=cooperative-sticky: a second member takes "
                    "half incrementally while the first keeps the rest; nothing lost, duplicates only from the "
                    "moved partitions (at-least-once)")
def test_cooperative_sticky_moves_only_what_it_must(server):
    from confluent_kafka.admin import AdminClient

    topic, group = unique("cf-coop"), unique("g-cf-coop")
    new_topic(server.bootstrap, topic, 4)
    # Heartbeats every 500 ms (3 s by default): a member learns of a rebalance sooner.
    conf = {"partition.assignment.strategy": "cooperative-sticky", "heartbeat.interval.ms": 500}
    first = Member(server.bootstrap, group, topic, **conf)
    members = [first]
    try:
        poll_until(members, lambda: first.owned == {0, 1, 2, 3}, 30, "the first member owns everything")
        values = produce_to_partitions(server.bootstrap, topic, 4, 50, "before")
        poll_until(members, lambda: len(first.read) >= 100, 30, "the first member reads")

        second = Member(server.bootstrap, group, topic, **conf)
        members.append(second)
        poll_until(members, lambda: len(second.owned) == 2 and len(first.owned) == 2, 30, "the second joins")
        values |= produce_to_partitions(server.bootstrap, topic, 4, 50, "after")
        poll_until(members, lambda: {v for m in members for _, _, v in m.read} >= values, 30, "everything read")

        # Incremental: the first member gave up two partitions and never the other two.
        assert first.events[0] == ("assign", {0, 1, 2, 3})
        revoked = [p for kind, ps in first.events if kind == "revoke" for p in ps]
        assert len(revoked) == 2 and first.owned == {0, 1, 2, 3} - set(revoked), first.events
        assert [e for e in first.events if e[0] == "assign"] == [("assign", {0, 1, 2, 3})], first.events
        assert second.events == [("assign", set(revoked))], second.events
        admin = AdminClient({"bootstrap.servers": server.bootstrap})
        described = admin.describe_consumer_groups([group])[group].result(20)
        assert described.partition_assignor == "cooperative-sticky"
        assert len(described.members) == 2

        reads = [(p, o) for m in members for p, o, _ in m.read]
        duplicates = {po for po in reads if reads.count(po) > 1}
        assert {p for p, _ in duplicates} <= set(revoked), f"read twice outside the moved partitions: {duplicates}"
        assert all(v.startswith(b"before") for m in members for p, o, v in m.read if (p, o) in duplicates)
    finally:
        for m in members:
            m.close()


# -- 7. static membership ------------------------------------------------------------------------------

@pytest.mark.compat("confluent-kafka", "static membership (group.instance.id): a member restarted within "
                    "session.timeout.ms gets its partitions back without a rebalance of the others")
def test_static_member_restart_does_not_rebalance(server):
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    topic, group = unique("cf-static"), unique("g-cf-static")
    new_topic(server.bootstrap, topic, 2)
    admin = AdminClient({"bootstrap.servers": server.bootstrap})
    # session.timeout.ms: the default 45 s. Heartbeats every 500 ms (3 s by default): a rebalance
    # would reach the other member within the second it is watched below.
    conf = {"enable.auto.commit": False, "heartbeat.interval.ms": 500}
    a = Member(server.bootstrap, group, topic, **{"group.instance.id": "instance-a", **conf})
    b = Member(server.bootstrap, group, topic, **{"group.instance.id": "instance-b", **conf})
    restarted = None
    try:
        poll_until([a, b], lambda: len(a.owned) == 1 and len(b.owned) == 1, 30, "two static members")
        for _ in range(10):  # settled: no rebalance under way
            a.poll()
            b.poll()
        b_events = list(b.events)
        a_partition = set(a.owned)
        before = admin.describe_consumer_groups([group])[group].result(20)
        a.close()  # a static member leaves no LeaveGroup behind: the group waits for it
        time.sleep(1.0)
        for _ in range(10):
            b.poll()
        restarted = Member(server.bootstrap, group, topic, **{"group.instance.id": "instance-a", **conf})
        poll_until([restarted, b], lambda: restarted.owned == a_partition, 15, "the restarted member")
        deadline = time.monotonic() + 1.5  # a rebalance would reach b now
        while time.monotonic() < deadline:
            b.poll()
            restarted.poll()
        assert b.events == b_events, "the other member saw a rebalance"
        assert restarted.events == [("assign", a_partition)]
        after = admin.describe_consumer_groups([group])[group].result(20)
        assert after.state == ConsumerGroupState.STABLE
        assert sorted(m.group_instance_id for m in after.members) == ["instance-a", "instance-b"]
        ids = {m.group_instance_id: m.member_id for m in before.members}
        new_ids = {m.group_instance_id: m.member_id for m in after.members}
        assert new_ids["instance-b"] == ids["instance-b"]
        assert new_ids["instance-a"] != ids["instance-a"], "a new member id for the new incarnation"
    finally:
        b.close()
        if restarted is not None:
            restarted.close()


# -- 8. what kop-fast does not implement -----------------------------------------------------------------

@pytest.mark.compat("confluent-kafka", "transactional producer (transactional.id)",
                    result="not supported: init_transactions() fails with _TIMED_OUT (FindCoordinator for "
                           "a transaction answers COORDINATOR_NOT_AVAILABLE)")
def test_transactional_producer_is_not_supported(server):
    producer = Producer({"bootstrap.servers": server.bootstrap, "transactional.id": unique("tx")})
    with pytest.raises(KafkaException) as excinfo:
        producer.init_transactions(2)
    assert excinfo.value.args[0].code() == KafkaError._TIMED_OUT


@pytest.mark.compat("confluent-kafka", "group.protocol=consumer (KIP-848 consumer groups)",
                    result="not supported: no ConsumerGroupHeartbeat; the consumer gets no partitions and no "
                           "error (debug log: 'ConsumerGroupHeartbeatRequest not supported by broker')")
def test_kip848_consumer_group_protocol_is_not_supported(server):
    topic = unique("cf-848")
    produce_records(server.bootstrap, topic, [Record(None, b"x", (), BASE_TS)], partition=None)
    errors = []
    consumer = Consumer(group_conf(server.bootstrap, unique("g-848"), **{"group.protocol": "consumer",
                                                                         "error_cb": errors.append}))
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            assert msg is None or msg.error() is not None, "KIP-848 works now: update this row"
        assert consumer.assignment() == []
    finally:
        consumer.close()
