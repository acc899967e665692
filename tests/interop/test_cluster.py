"""Several kop-fast proxies on one Pulsar as ONE Kafka cluster: membership, leaders, failover.

Every test starts its proxies (`KopServer`) on one separately started pulsar-lite and
stops them at the end. What they check (the clustering contract):
- Metadata from any proxy lists every live proxy as a broker and, per partition, the same
  owning proxy as leader, with a leader epoch >= 0 that grows when the partition moves;
  Produce/Fetch/ListOffsets on another proxy get NOT_LEADER_OR_FOLLOWER; FindCoordinator names
  one proxy, the others answer NOT_COORDINATOR.
- A SIGKILLed proxy's partitions and groups have new owners within 15 s; clients recover by
  themselves and no acknowledged record or commit is lost. SIGTERM hands over at once.
- A proxy restarted at the same address serves its predecessor's groups at once; a node id
  in use by a live proxy at another address is refused.
- An idempotent producer's partitions keep their order without duplicates across moves.
Nothing sleeps to assert: every wait polls against a deadline (`wait_until`).
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass

import pytest

from kop_fast.embedded import EmbeddedPulsar, free_port
from tests.interop.test_admin import raw_earliest
from tests.support import KopServer, fetch_v4, kafka_request

pytestmark = pytest.mark.interop

COMMON = ("--group-initial-rebalance-delay-ms", "0")
NONE, NOT_LEADER_OR_FOLLOWER, NOT_COORDINATOR = 0, 6, 16
FAILOVER_S = 15  # a SIGKILLed proxy's partitions and groups have new owners within this
HANDOVER_S = 5  # SIGTERM hands over "at once": well before a silent proxy would expire (6 s)


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture
def pulsar(tmp_path):
    broker = EmbeddedPulsar(tmp_path / "pulsar")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def proxies(tmp_path, pulsar):
    """start(name, node_id=None, listen=...) -> a started KopServer on `pulsar`; all stopped at the end."""
    started: list[KopServer] = []

    def start(name: str, node_id: int | None = None, listen: str = "127.0.0.1:0") -> KopServer:
        node = ("--node-id", str(node_id)) if node_id is not None else ()
        server = KopServer(tmp_path / name, "--pulsar-url", pulsar.url, *node, *COMMON, listen=listen)
        started.append(server)
        return server.start()

    yield start
    for server in reversed(started):
        server.stop()


# -- helpers --------------------------------------------------------------------------------------
def wait_until(probe, ok, within_s: float, what: str):
    """probe() until ok(its value); that value. Fails after `within_s` with the last value or error."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            last = probe()
            if ok(last):
                return last
        except Exception as exc:  # noqa: BLE001 - a proxy going away mid-request, a client's timeout
            last = exc
        if time.monotonic() >= deadline:
            pytest.fail(f"{what}: not within {within_s:.1f} s; last: {last!r}")
        time.sleep(0.1)


@dataclass(frozen=True)
class View:
    """One proxy's Metadata answer for one topic."""
    brokers: dict  # node id -> (host, port)
    leaders: dict  # partition -> leader node id
    epochs: dict  # partition -> leader epoch


def metadata(port: int, topic: str) -> View:
    """A raw Metadata v8 (the first version with leader epochs) of `topic`, no auto-creation."""
    from kio.schema.metadata.v8.request import MetadataRequest, MetadataRequestTopic
    from kio.schema.metadata.v8.response import MetadataResponse
    from kio.serial import entity_reader, entity_writer

    request = MetadataRequest(topics=(MetadataRequestTopic(name=topic),), allow_auto_topic_creation=False,
                              include_cluster_authorized_operations=False, include_topic_authorized_operations=False)
    buf = io.BytesIO()
    entity_writer(MetadataRequest)(buf, request)
    response, _ = entity_reader(MetadataResponse)(kafka_request(port, 3, 8, buf.getvalue(), timeout=5), 4)
    [t] = response.topics
    parts = [p for p in t.partitions if p.error_code == NONE] if t.error_code == NONE else []
    return View(brokers={b.node_id: (b.host, b.port) for b in response.brokers},
                leaders={p.partition_index: p.leader_id for p in parts},
                epochs={p.partition_index: p.leader_epoch for p in parts})


def views(servers, topic: str) -> list[View]:
    return [metadata(s.port, topic) for s in servers]


def agree_on(servers, partitions: int, excluded: int | None = None):
    """ok() for wait_until(views(...)): every proxy lists exactly `servers` as brokers and the
    same leader (a listed broker, not `excluded`) for each of `partitions`."""
    ports = sorted(s.port for s in servers)

    def ok(vs: list[View]) -> bool:
        first = vs[0]
        return (all((v.brokers, v.leaders) == (first.brokers, first.leaders) for v in vs)
                and sorted(port for _, port in first.brokers.values()) == ports
                and sorted(first.leaders) == list(range(partitions))
                and all(leader in first.brokers and leader != excluded for leader in first.leaders.values()))
    return ok


def wait_agreed(servers, topic: str, partitions: int, within_s: float, excluded: int | None = None) -> View:
    vs = wait_until(lambda: views(servers, topic), agree_on(servers, partitions, excluded), within_s,
                    f"{len(servers)} proxies agreeing on brokers and leaders of {topic}")
    return vs[0]


def node_ids(view: View, servers) -> list[int]:
    """Each server's node id, by its port in the brokers list."""
    by_port = {port: node for node, (_, port) in view.brokers.items()}
    return [by_port[s.port] for s in servers]


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)


def find_coordinator(port: int, group: str) -> tuple[int, int, int]:
    """A raw FindCoordinator v1: (error code, node id, port)."""
    from kio.schema.find_coordinator.v1.request import FindCoordinatorRequest
    from kio.schema.find_coordinator.v1.response import FindCoordinatorResponse
    from kio.serial import entity_reader, entity_writer

    buf = io.BytesIO()
    entity_writer(FindCoordinatorRequest)(buf, FindCoordinatorRequest(key=group, key_type=0))
    response, _ = entity_reader(FindCoordinatorResponse)(kafka_request(port, 10, 1, buf.getvalue(), timeout=5), 4)
    return int(response.error_code), response.node_id, response.port


def offset_fetch_error(port: int, group: str, topic: str) -> int:
    """A raw OffsetFetch v2 of partition 0: its top-level error code."""
    from kio.schema.offset_fetch.v2.request import OffsetFetchRequest, OffsetFetchRequestTopic
    from kio.schema.offset_fetch.v2.response import OffsetFetchResponse
    from kio.serial import entity_reader, entity_writer

    request = OffsetFetchRequest(group_id=group, topics=(OffsetFetchRequestTopic(name=topic, partition_indexes=(0,)),))
    buf = io.BytesIO()
    entity_writer(OffsetFetchRequest)(buf, request)
    response, _ = entity_reader(OffsetFetchResponse)(kafka_request(port, 9, 2, buf.getvalue(), timeout=5), 4)
    return int(response.error_code)


def committed_offsets(bootstrap: str, group: str) -> dict[int, int]:
    """The group's committed offsets (partition -> offset), through the AdminClient."""
    from confluent_kafka import ConsumerGroupTopicPartitions
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    [future] = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                                 request_timeout=5).values()
    return {tp.partition: tp.offset for tp in future.result(10).topic_partitions if tp.offset >= 0}


def group_coordinator(bootstrap: str, group: str) -> int:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    [future] = admin.describe_consumer_groups([group], request_timeout=5).values()
    return future.result(10).coordinator.id


def value(p: int, n: int) -> bytes:
    return b"%d:%d" % (p, n)


def parse(raw: bytes) -> tuple[int, int]:
    p, n = raw.split(b":")
    return int(p), int(n)


class ProducerThread:
    """Produces value(p, n) to partition p (key p) round-robin over the partitions until stopped;
    acked[p] lists the acknowledged n in acknowledgement order."""

    def __init__(self, config: dict, topic: str, partitions: int) -> None:
        from confluent_kafka import Producer

        self.producer = Producer(config)
        self.topic, self.partitions = topic, partitions
        self.acked: dict[int, list[int]] = {p: [] for p in range(partitions)}
        self.failed: list = []
        self.unflushed: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def acked_total(self) -> int:
        return sum(len(ns) for ns in list(self.acked.values()))

    def _delivered(self, err, msg) -> None:  # in this thread (poll/flush)
        p, n = parse(msg.value())
        if err is None:
            self.acked[p].append(n)
        else:
            self.failed.append((p, n, str(err)))

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            p, n = i % self.partitions, i // self.partitions
            try:
                self.producer.produce(self.topic, value=value(p, n), key=b"%d" % p, partition=p,
                                      on_delivery=self._delivered)
            except BufferError:  # the local queue is full (brokers away): wait for deliveries
                self.producer.poll(0.1)
                continue
            i += 1
            self.producer.poll(0)
            time.sleep(0.002)
        self.unflushed = self.producer.flush(60)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(90)
        assert not self._thread.is_alive(), "the producer did not flush within 90 s"


class GroupConsumerThread:
    """A subscribed consumer with auto commit; records (assignment number, partition, offset, n)."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        from confluent_kafka import Consumer

        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                                  "auto.offset.reset": "earliest", "enable.auto.commit": True,
                                  "auto.commit.interval.ms": 500, "session.timeout.ms": 6000,
                                  "heartbeat.interval.ms": 1000})
        self.assignments = 0
        self.records: list[tuple[int, int, int, int]] = []
        self.errors: list[str] = []
        self.consumer.subscribe([topic], on_assign=self._assigned)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _assigned(self, consumer, partitions) -> None:  # in this thread (poll)
        self.assignments += 1

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                msg = self.consumer.poll(0.2)
                if msg is None:
                    continue
                if msg.error() is not None:
                    self.errors.append(str(msg.error()))
                    continue
                p, n = parse(msg.value())
                assert p == msg.partition()
                self.records.append((self.assignments, msg.partition(), msg.offset(), n))
        finally:
            self.consumer.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def check_reads(consumers: list[GroupConsumerThread]) -> None:
    """Re-reads only after a rebalance: within one assignment a consumer's offsets of a partition
    strictly increase; and an offset always holds the same value."""
    at_offset: dict[tuple[int, int], int] = {}
    for c in consumers:
        streams: dict[tuple[int, int], list[int]] = {}
        for assignment, p, offset, n in list(c.records):
            streams.setdefault((assignment, p), []).append(offset)
            assert at_offset.setdefault((p, offset), n) == n, f"partition {p} offset {offset}: two values"
        for (assignment, p), offsets in streams.items():
            assert all(a < b for a, b in zip(offsets, offsets[1:])), \
                f"partition {p} read again within assignment {assignment}: {offsets[:50]}"


def read_all(bootstrap: str, topic: str, partitions: int, within_s: float = 60) -> dict[int, list[int]]:
    """Every partition from its first record to its high watermark: partition -> the n of its values."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "cluster-read-all",
                         "enable.auto.commit": False, "auto.offset.reset": "error"})
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=20)[1] for p in range(partitions)}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        got: dict[int, list[int]] = {p: [] for p in range(partitions)}
        last = {p: -1 for p in range(partitions)}
        deadline = time.monotonic() + within_s
        while any(last[p] < ends[p] - 1 for p in got) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            p, n = parse(msg.value())
            assert p == msg.partition()
            got[p].append(n)
            last[p] = msg.offset()
        assert all(last[p] >= ends[p] - 1 for p in got), f"not read to the end within {within_s} s: {last} < {ends}"
        return got
    finally:
        consumer.close()


# -- a. one cluster, one view ---------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_every_proxy_lists_all_brokers_and_the_same_leaders(proxies):
    topic, group = "cluster-view", "cluster-view-group"
    servers = [proxies(f"p{i}") for i in range(3)]  # node ids left to the proxies: 0, 1, 2
    create_topic(servers[0].bootstrap, topic, 12)
    view = wait_agreed(servers, topic, 12, within_s=10)
    assert sorted(view.brokers) == [0, 1, 2]
    assert sorted(view.brokers.values()) == sorted(("127.0.0.1", s.port) for s in servers)
    assert set(view.leaders.values()) == {0, 1, 2}, view.leaders
    for v in views(servers, topic):
        assert v.epochs == view.epochs
    assert all(epoch >= 0 for epoch in view.epochs.values()), view.epochs

    ids = node_ids(view, servers)
    leader = servers[ids.index(view.leaders[0])]
    others = [s for s in servers if s is not leader]
    assert raw_earliest(leader.port, topic, 0) == (NONE, 0)
    assert fetch_v4(leader.port, topic, 0)[0] == NONE
    for other in others:
        assert raw_earliest(other.port, topic, 0)[0] == NOT_LEADER_OR_FOLLOWER
        assert fetch_v4(other.port, topic, 0)[0] == NOT_LEADER_OR_FOLLOWER

    answers = {find_coordinator(s.port, group) for s in servers}
    assert len(answers) == 1, answers
    [(error, coordinator_id, coordinator_port)] = answers
    assert error == NONE and view.brokers[coordinator_id] == ("127.0.0.1", coordinator_port)
    for server, node in zip(servers, ids):
        expected = NONE if node == coordinator_id else NOT_COORDINATOR
        assert offset_fetch_error(server.port, group, topic) == expected, f"node {node}"


# -- b. failover under load -----------------------------------------------------------------------
@pytest.mark.timeout(300)
def test_sigkill_of_a_leader_and_coordinator_loses_no_acknowledged_record_or_commit(proxies):
    topic, group, partitions = "cluster-failover", "cluster-failover-group", 6
    servers = [proxies(f"n{i}", node_id=i) for i in range(3)]
    bootstrap = ",".join(s.bootstrap for s in servers)
    create_topic(bootstrap, topic, partitions)
    before = wait_agreed(servers, topic, partitions, within_s=10)

    producer = ProducerThread({"bootstrap.servers": bootstrap, "acks": "all"}, topic, partitions)
    consumers = [GroupConsumerThread(bootstrap, group, topic) for _ in range(2)]
    try:
        wait_until(lambda: (producer.acked_total(), sum(len(c.records) for c in consumers)),
                   lambda counts: counts[0] >= 600 and counts[1] >= 300, 60, "records produced and consumed")
        committed_before = wait_until(lambda: committed_offsets(bootstrap, group), lambda c: len(c) > 0, 30,
                                      "a first auto commit")
        coordinator = group_coordinator(bootstrap, group)
        led = {node: [p for p, leader in before.leaders.items() if leader == node] for node in before.brokers}
        victim_id = coordinator if led.get(coordinator) else before.leaders[0]
        victim = servers[victim_id]
        survivors = [s for s in servers if s is not victim]
        survivors_bootstrap = ",".join(s.bootstrap for s in survivors)

        acked_at_kill = producer.acked_total()
        victim.kill9()
        killed_at = time.monotonic()
        after = wait_agreed(survivors, topic, partitions, within_s=FAILOVER_S, excluded=victim_id)
        agreed_s = time.monotonic() - killed_at
        assert victim_id not in after.brokers
        for p in led[victim_id]:
            assert after.epochs[p] > before.epochs[p], \
                f"partition {p} moved, epoch {before.epochs[p]} -> {after.epochs[p]}"
        remaining = FAILOVER_S - (time.monotonic() - killed_at)
        wait_until(lambda: committed_offsets(survivors_bootstrap, group),
                   lambda c: all(c.get(p, -1) >= offset for p, offset in committed_before.items()),
                   max(remaining, 1), f"the commits made before the kill ({committed_before}) on a survivor")

        time.sleep(max(0.0, killed_at + 10 - time.monotonic()))  # load: 10 s of producing after the kill
        producer.stop()
        assert producer.unflushed == 0
        assert producer.acked_total() > acked_at_kill, "nothing acknowledged after the kill"
        acked = {(p, n) for p, ns in producer.acked.items() for n in ns}

        def missing():
            consumed = {(p, n) for c in consumers for _, p, _, n in list(c.records)}
            return acked - consumed
        wait_until(missing, lambda m: not m, 60, f"every one of {len(acked)} acknowledged values consumed")
    finally:
        producer.stop()
        for c in consumers:
            c.stop()
    print(f"failover: survivors agreed {agreed_s:.1f} s after the kill; node {victim_id} killed; {len(acked)} acknowledged ({acked_at_kill} before the kill), "
          f"{len(producer.failed)} failed; consumer errors: {[c.errors[:3] for c in consumers]}")
    check_reads(consumers)


# -- c. a restarted proxy serves its predecessor's groups ------------------------------------------
@pytest.mark.timeout(120)
def test_a_proxy_restarted_on_its_port_serves_the_committed_offsets(proxies):
    from confluent_kafka import Consumer, Producer, TopicPartition

    topic, group = "cluster-restart", "cluster-restart-group"
    port = free_port()
    server = proxies("solo", node_id=0, listen=f"127.0.0.1:{port}")
    create_topic(server.bootstrap, topic, 2)
    producer = Producer({"bootstrap.servers": server.bootstrap, "acks": "all"})
    offsets: dict[tuple[int, int], int] = {}  # (partition, n) -> offset (offsets have gaps: docs/CODEC.md)
    for n in range(10):
        for p in range(2):
            producer.produce(topic, value=value(p, n), partition=p,
                             on_delivery=lambda err, msg: offsets.__setitem__(parse(msg.value()), msg.offset()))
    assert producer.flush(30) == 0 and len(offsets) == 20

    # A short session: the kill may land before the leave of the first consumer is stored, and
    # the restarted proxy then waits for that dead member's session to end (librdkafka: 45 s).
    config = {"bootstrap.servers": server.bootstrap, "group.id": group, "enable.auto.commit": False,
              "auto.offset.reset": "earliest", "session.timeout.ms": 6000}
    wanted = [TopicPartition(topic, 0, offsets[0, 3]), TopicPartition(topic, 1, offsets[1, 7])]
    wanted_offsets = [tp.offset for tp in wanted]
    consumer = Consumer(config)
    try:
        consumer.subscribe([topic])
        wait_until(lambda: (consumer.poll(0.2), consumer.assignment())[1], lambda a: len(a) == 2, 30,
                   "the consumer's assignment")
        consumer.commit(offsets=wanted, asynchronous=False)
        assert [tp.offset for tp in consumer.committed(wanted, timeout=10)] == wanted_offsets
    finally:
        consumer.close()

    server.kill9()
    server.stop()  # reaps it and closes its log
    restarted_at = time.monotonic()
    server.start()
    assert server.port == port

    consumer = Consumer(config)
    try:
        committed = wait_until(lambda: consumer.committed(wanted, timeout=2),
                               lambda tps: [tp.offset for tp in tps] == wanted_offsets,
                               FAILOVER_S - (time.monotonic() - restarted_at),
                               "the committed offsets after the restart")
        assert [tp.error for tp in committed] == [None, None]
        committed_s = time.monotonic() - restarted_at
        consumer.subscribe([topic])
        first: dict[int, int] = {}

        def poll_first():
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                first.setdefault(msg.partition(), msg.offset())
            return dict(first)
        wait_until(poll_first, lambda f: len(f) == 2, FAILOVER_S - (time.monotonic() - restarted_at),
                   "a record of each partition after the restart")
        assert first == {0: offsets[0, 3], 1: offsets[1, 7]}
        print(f"restart: committed offsets back {committed_s:.1f} s and the group reading "
              f"{time.monotonic() - restarted_at:.1f} s after the restart began")
    finally:
        consumer.close()


# -- d. an idempotent producer across partition moves ----------------------------------------------
@pytest.mark.timeout(300)
def test_idempotent_producer_keeps_order_without_duplicates_across_moves(proxies):
    topic, partitions = "cluster-idempotent", 4
    a, b = proxies("i0", node_id=0), proxies("i1", node_id=1)
    create_topic(a.bootstrap, topic, partitions)
    two = wait_agreed([a, b], topic, partitions, within_s=10)

    producer = ProducerThread({"bootstrap.servers": f"{a.bootstrap},{b.bootstrap}", "enable.idempotence": True,
                               "linger.ms": 5}, topic, partitions)

    def progress(by: int, what: str) -> None:
        target = producer.acked_total() + by
        wait_until(producer.acked_total, lambda n: n >= target, 30, what)
    try:
        progress(400, "acknowledgements from two proxies")
        c = proxies("i2", node_id=2)
        three = wait_agreed([a, b, c], topic, partitions, within_s=10)
        for p in range(partitions):
            if three.leaders[p] != two.leaders[p]:
                assert three.epochs[p] > two.epochs[p], f"partition {p} moved, epoch did not grow"
        progress(400, "acknowledgements after the third proxy joined")

        led = {s: sum(1 for leader in three.leaders.values() if leader == node) for s, node in ((a, 0), (b, 1))}
        leaving = max(led, key=led.get)
        assert leaving.stop() == 0
        staying = [s for s in (a, b, c) if s is not leaving]
        wait_agreed(staying, topic, partitions, within_s=HANDOVER_S, excluded=0 if leaving is a else 1)
        progress(400, "acknowledgements after a proxy left")
    finally:
        producer.stop()
    assert producer.unflushed == 0
    assert producer.failed == []

    stored = read_all(",".join(s.bootstrap for s in staying), topic, partitions)
    for p in range(partitions):
        ns = stored[p]
        assert all(x < y for x, y in zip(ns, ns[1:])), \
            f"partition {p}: out of order or duplicated: {[(x, y) for x, y in zip(ns, ns[1:]) if x >= y][:10]}"
        lost = set(producer.acked[p]) - set(ns)
        assert not lost, f"partition {p}: {len(lost)} acknowledged values missing, e.g. {sorted(lost)[:10]}"


# -- e. node ids ------------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_a_node_id_in_use_at_another_address_is_refused(proxies, tmp_path, pulsar):
    topic = "cluster-node-ids"
    first = proxies("first", node_id=0)
    create_topic(first.bootstrap, topic, 1)
    second = KopServer(tmp_path / "second", "--pulsar-url", pulsar.url, "--node-id", "0", *COMMON)
    try:
        with pytest.raises(RuntimeError, match=r"kop-fast exited with [1-9]"):
            second.start()  # exits with an error instead of getting ready
    finally:
        second.stop()
    assert metadata(first.port, topic).brokers == {0: ("127.0.0.1", first.port)}
