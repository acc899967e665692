"""The admin APIs through real clients, on real `kop-fast serve` processes and a real pulsar-lite.

Three proxies on one Pulsar (the embedded pulsar-lite of `a`): `a` and `b` as in
test_multi_proxy.py, and `c` with `--auto-create-topics false`. Everything an admin
call changes lives in Pulsar, so every proxy must agree right after the call returns:
the cross-proxy checks below never sleep or retry. Metadata (which a client sends before
using a topic it does not know) and the admin APIs read the registry to its end first;
Produce, Fetch and ListOffsets on another proxy follow the change within milliseconds
(when that proxy's registry reader applies it), so the checks go through Metadata or
an admin API first, as clients do. The last test restarts all three on
the same data directories and finds the same topics, partition counts, topic ids,
configs, log starts and ends.

Consumers that join groups use group ids whose `__consumer_offsets` partition no other
proxy coordinates (`group_for`): a proxy answers NOT_COORDINATOR for a partition another
process holds, and does not name the owner yet. Every consumer sends FindCoordinator (the
proxy then takes that partition), so the fixed group ids of the consumers that join no
group (`HELPER_GROUPS`) keep their partitions out of `group_for`'s choice.
"""

from __future__ import annotations

import datetime
import io
import json
import shutil
import subprocess
import time
import warnings

import pytest

from tests.support import KopServer, kafka_request

pytestmark = pytest.mark.interop

# No waiting for more members: the consumers below are alone in their groups.
COMMON = ("--group-initial-rebalance-delay-ms", "0")
# The group ids of the consumers that use no group (assigned partitions, watermarks).
ASSIGN_GROUP, WATERMARK_GROUP, TIMES_GROUP = "admin-assign", "admin-wm", "admin-times"
HELPER_GROUPS = (ASSIGN_GROUP, WATERMARK_GROUP, TIMES_GROUP)
ADMIN_KEYS = (19, 20, 21, 29, 30, 31, 32, 33, 37, 44, 60)


class Cluster:
    """a (owns the embedded pulsar-lite), b, and c (auto-creation off), all on a's Pulsar."""

    def __init__(self, base) -> None:
        self.base = base
        self.a = self.b = self.c = None
        # offsets partition -> the proxy ("a", "b", "c") whose consumers use it
        self.coordinators: dict[int, str] = {}

    def start(self) -> "Cluster":
        try:
            self.a = KopServer(self.base / "a", *COMMON).start()
            self.b = KopServer(self.base / "b", "--pulsar-url", self.a.pulsar_url, "--node-id", "1", *COMMON).start()
            self.c = KopServer(self.base / "c", "--pulsar-url", self.a.pulsar_url, "--node-id", "2",
                               "--auto-create-topics", "false", *COMMON).start()
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> list:
        """Stop every proxy, the embedded broker's owner last; their exit codes (c, b, a)."""
        codes = []
        for server in (self.c, self.b, self.a):
            if server is not None:
                server.__dict__.pop("_admin_client", None)  # destroyed now, not retrying a dead port
                codes.append(server.stop())
        return codes

    def role(self, server: KopServer) -> str:
        return {id(self.a): "a", id(self.b): "b", id(self.c): "c"}[id(server)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("admin"))
    c.start()
    try:
        yield c
    finally:
        c.stop()


def group_for(cluster: Cluster, server: KopServer, prefix: str) -> str:
    """A fresh group id whose offsets partition is coordinated by `server` or by nobody yet."""
    from kop_fast.config import build_settings
    from kop_fast.coordinator.records import partition_for

    partitions = build_settings({}, environ={}).offsets_topic_num_partitions  # the proxies' default
    taken = {partition_for(g, partitions) for g in HELPER_GROUPS}
    role = cluster.role(server)
    for i in range(1000):
        group = f"{prefix}-{i}"
        partition = partition_for(group, partitions)
        if partition not in taken and cluster.coordinators.setdefault(partition, role) == role:
            return group
    raise AssertionError("no free offsets partition")


# -- client helpers ------------------------------------------------------------------------------
def admin(server: KopServer):
    """The server's AdminClient (its default settings), kept: a client destroyed while a call
    is under way fails the call's futures."""
    from confluent_kafka.admin import AdminClient

    client = getattr(server, "_admin_client", None)
    if client is None:
        client = server._admin_client = AdminClient({"bootstrap.servers": server.bootstrap})
    return client


def results(futures: dict, timeout: float = 30) -> dict:
    """Each future's result, or its KafkaError."""
    from confluent_kafka import KafkaException

    out = {}
    for key, future in futures.items():
        try:
            out[key] = future.result(timeout)
        except KafkaException as exc:
            out[key] = exc.args[0]
    return out


def error_codes(futures: dict) -> dict:
    return {k: (None if v is None else v.code()) for k, v in results(futures).items()}


def partition_counts(server: KopServer) -> dict[str, int]:
    """Every topic Metadata (all topics: nothing is auto-created) lists, with its partition count."""
    md = admin(server).list_topics(timeout=20)
    return {name: len(t.partitions) for name, t in md.topics.items() if t.error is None}


def topic_configs(server: KopServer, topic: str) -> dict:
    from confluent_kafka.admin import ConfigResource

    [entries] = results(admin(server).describe_configs([ConfigResource("topic", topic)])).values()
    return entries


def overrides(server: KopServer, topic: str) -> dict[str, str]:
    from confluent_kafka.admin import ConfigSource

    return {name: e.value for name, e in topic_configs(server, topic).items()
            if e.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value}


def list_offsets(server: KopServer, topic: str, partitions, spec: str) -> dict[int, int]:
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    make = {"earliest": OffsetSpec.earliest, "latest": OffsetSpec.latest}[spec]
    answers = results(admin(server).list_offsets({TopicPartition(topic, p): make() for p in partitions}))
    return {tp.partition: info.offset for tp, info in answers.items()}


def produce(server: KopServer, topic: str, values, partition: int = 0, linger_ms: int = 2) -> list[tuple[int, bytes]]:
    """(offset, value) of each record, each delivery report checked to carry no error."""
    from confluent_kafka import Producer

    reports = []
    producer = Producer({"bootstrap.servers": server.bootstrap, "linger.ms": linger_ms})
    for value in values:
        producer.produce(topic, value=value, partition=partition,
                         on_delivery=lambda err, msg: reports.append((err, msg.offset(), msg.value())))
    assert producer.flush(30) == 0
    assert [err for err, _, _ in reports] == [None] * len(values)
    return [(offset, value) for _, offset, value in reports]


def consume_at(server: KopServer, topic: str, partition: int, offset: int, count: int, timeout: float = 20):
    """`count` records of one partition from `offset` (assigned: no group coordinator)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": server.bootstrap, "group.id": ASSIGN_GROUP,
                         "enable.auto.commit": False, "auto.offset.reset": "error"})
    consumer.assign([TopicPartition(topic, partition, offset)])
    got = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append((msg.offset(), msg.value()))
    finally:
        consumer.close()
    return got


class GroupReader:
    """A subscribed consumer of a new group from the beginning (auto.offset.reset=earliest) that
    reports the end of each partition (enable.partition.eof): "nothing there" is a condition."""

    def __init__(self, server: KopServer, group: str, topic: str, partitions: int) -> None:
        from confluent_kafka import Consumer

        self.partitions = partitions
        self.consumer = Consumer({"bootstrap.servers": server.bootstrap, "group.id": group,
                                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                                  "enable.partition.eof": True})
        self.consumer.subscribe([topic])
        self.at_end: set[int] = set()
        self.records: list[tuple[int, int, bytes]] = []

    def poll_until(self, done, timeout: float = 20) -> None:
        from confluent_kafka import KafkaError

        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"not done within {timeout} s: {self.records} {self.at_end}"
            msg = self.consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error() is not None:
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                self.at_end.add(msg.partition())
                continue
            self.at_end.discard(msg.partition())
            self.records.append((msg.partition(), msg.offset(), msg.value()))

    def to_the_end(self, timeout: float = 20) -> list[tuple[int, int, bytes]]:
        """Everything until every partition reported its end."""
        self.poll_until(lambda: len(self.at_end) == self.partitions, timeout)
        return self.records

    def close(self) -> None:
        self.consumer.close()


def raw_produce_v3(port: int, topic: str, partition: int, value: bytes) -> tuple[int, int]:
    """One Produce v3 of a one-record batch: (the partition's error code, base offset). No
    Metadata request before it, unlike a client's."""
    from kio.schema.produce.v3.request import PartitionProduceData, ProduceRequest, TopicProduceData
    from kio.schema.produce.v3.response import ProduceResponse
    from kio.serial import entity_reader, entity_writer

    from kop_fast import codec

    batch = codec.encode_batch([codec.Record(0, int(time.time() * 1000), None, value, ())])
    request = ProduceRequest(transactional_id=None, acks=-1, timeout=datetime.timedelta(seconds=10), topic_data=(
        TopicProduceData(name=topic, partition_data=(PartitionProduceData(index=partition, records=batch),)),))
    buf = io.BytesIO()
    entity_writer(ProduceRequest)(buf, request)
    response, _ = entity_reader(ProduceResponse)(kafka_request(port, 0, 3, buf.getvalue()), 4)
    [part] = response.responses[0].partition_responses
    return int(part.error_code), part.base_offset


def raw_earliest(port: int, topic: str, partition: int = 0) -> tuple[int, int]:
    """One ListOffsets v1 EARLIEST: (error code, offset). No Metadata request before it."""
    from kio.schema.list_offsets.v1.request import ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic
    from kio.schema.list_offsets.v1.response import ListOffsetsResponse
    from kio.serial import entity_reader, entity_writer

    request = ListOffsetsRequest(replica_id=-1, topics=(
        ListOffsetsTopic(name=topic, partitions=(ListOffsetsPartition(partition_index=partition, timestamp=-2),)),))
    buf = io.BytesIO()
    entity_writer(ListOffsetsRequest)(buf, request)
    response, _ = entity_reader(ListOffsetsResponse)(kafka_request(port, 2, 1, buf.getvalue()), 4)
    [part] = response.topics[0].partitions
    return int(part.error_code), part.offset


# -- 1. confluent-kafka AdminClient: the whole life of a topic -------------------------------------
@pytest.mark.compat("confluent-kafka", "AdminClient on three proxies: create topics with configs, refusals, create "
                    "partitions, alter and incremental-alter configs, delete and make again")
@pytest.mark.timeout(120)
def test_topic_life_cycle_with_confluent_admin_client(cluster):
    from confluent_kafka import KafkaError, Producer
    from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, NewPartitions,
                                       NewTopic)

    a, b, c = cluster.a, cluster.b, cluster.c
    topic = "admin-life"
    # Created through a: every proxy lists it with its 4 partitions at once.
    assert error_codes(admin(a).create_topics([NewTopic(topic, 4, config={"retention.ms": "3600000"})])) == {
        topic: None}
    for server in (a, b, c):
        assert partition_counts(server)[topic] == 4
    for server in (a, b):
        retention = topic_configs(server, topic)["retention.ms"]
        assert (retention.value, retention.source) == ("3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    assert topic_configs(b, topic)["max.message.bytes"].source == ConfigSource.DEFAULT_CONFIG.value

    # Refusals: the name taken (through the other proxy), names Kafka refuses.
    assert error_codes(admin(b).create_topics([NewTopic(topic, 2)])) == {topic: KafkaError.TOPIC_ALREADY_EXISTS}
    assert error_codes(admin(b).create_topics([NewTopic("bad name!", 1), NewTopic("..", 1)])) == {
        "bad name!": KafkaError.TOPIC_EXCEPTION, "..": KafkaError.TOPIC_EXCEPTION}  # INVALID_TOPIC_EXCEPTION
    assert "bad name!" not in partition_counts(a) and ".." not in partition_counts(a)
    assert partition_counts(a)[topic] == 4

    # Grown through a; b produces to a new partition at once and a reads it back.
    assert error_codes(admin(a).create_partitions([NewPartitions(topic, 6)])) == {topic: None}
    for server in (a, b, c):
        assert partition_counts(server)[topic] == 6
    assert error_codes(admin(b).create_partitions([NewPartitions(topic, 5)])) == {topic: KafkaError.INVALID_PARTITIONS}
    [(offset, _)] = produce(b, topic, [b"in-5"], partition=5)
    assert consume_at(a, topic, 5, offset, 1) == [(offset, b"in-5")]
    produce(a, topic, [b"old-0", b"old-1"], partition=0)  # more for the deletion to hide

    # Configs: AlterConfigs (replaces all overrides) on a, IncrementalAlterConfigs on b,
    # each described back on the other proxy.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # confluent-kafka deprecates AlterConfigs
        altered = admin(a).alter_configs([ConfigResource("topic", topic, set_config={"retention.ms": "7200000"})])
    assert error_codes(altered) == {ConfigResource("topic", topic): None}
    assert overrides(b, topic) == {"retention.ms": "7200000"}
    incremental = admin(b).incremental_alter_configs([ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry("max.message.bytes", "500000", incremental_operation=AlterConfigOpType.SET)])])
    assert error_codes(incremental) == {ConfigResource("topic", topic): None}
    assert overrides(a, topic) == {"retention.ms": "7200000", "max.message.bytes": "500000"}
    # What kop_fast cannot honour is INVALID_CONFIG, and changes nothing.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        compact = admin(a).alter_configs([ConfigResource("topic", topic, set_config={"cleanup.policy": "compact"})])
    assert error_codes(compact) == {ConfigResource("topic", topic): KafkaError.INVALID_CONFIG}
    segment = admin(b).incremental_alter_configs([ConfigResource("topic", topic, incremental_configs=[
        ConfigEntry("segment.bytes", "2000000", incremental_operation=AlterConfigOpType.SET)])])
    assert error_codes(segment) == {ConfigResource("topic", topic): KafkaError.INVALID_CONFIG}
    assert overrides(a, topic) == overrides(b, topic) == {"retention.ms": "7200000", "max.message.bytes": "500000"}

    # Deleted through a: gone from b's and c's Metadata the moment the call returns.
    assert error_codes(admin(a).delete_topics([topic])) == {topic: None}
    assert topic not in partition_counts(b)
    assert topic not in partition_counts(c)
    # Producing to it through c (auto-creation off): UNKNOWN_TOPIC_OR_PARTITION, nothing created.
    assert raw_produce_v3(c.port, topic, 0, b"nope")[0] == 3  # UNKNOWN_TOPIC_OR_PARTITION
    # (A Kafka client bootstrapped at c would send its Metadata to any of the three
    # brokers c lists, and a and b do auto-create: only a request to c itself tests c.)
    assert topic not in partition_counts(a)
    assert error_codes(admin(c).delete_topics([topic])) == {topic: KafkaError.UNKNOWN_TOPIC_OR_PART}

    # Made again with the same name through b: empty on every proxy.
    assert error_codes(admin(b).create_topics([NewTopic(topic, 6)])) == {topic: None}
    assert overrides(a, topic) == {}  # the old incarnation's configs went with it
    earliest = list_offsets(b, topic, range(6), "earliest")
    assert list_offsets(a, topic, range(6), "earliest") == earliest
    assert list_offsets(a, topic, range(6), "latest") == list_offsets(b, topic, range(6), "latest") == earliest
    reader = GroupReader(a, group_for(cluster, a, "admin-life"), topic, 6)
    try:
        assert reader.to_the_end() == []  # nothing of the old incarnation, in any partition
        [(new_offset, _)] = produce(b, topic, [b"new"], partition=5)
        assert new_offset == earliest[5]
        reader.poll_until(lambda: reader.records and 5 in reader.at_end)
        assert reader.to_the_end() == [(5, new_offset, b"new")]
    finally:
        reader.close()


# -- 2. DeleteRecords -----------------------------------------------------------------------------
@pytest.mark.compat("confluent-kafka", "AdminClient delete_records moves the log start on every proxy")
@pytest.mark.timeout(90)
def test_delete_records_moves_the_log_start_on_every_proxy(cluster):
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    a, b = cluster.a, cluster.b
    topic = "admin-records"
    assert hasattr(AdminClient, "delete_records")  # confluent-kafka >= 2.4
    assert error_codes(admin(a).create_topics([NewTopic(topic, 1)])) == {topic: None}
    written = produce(a, topic, [b"r%d" % i for i in range(10)])
    sixth = written[5][0]
    [deleted] = results(admin(b).delete_records([TopicPartition(topic, 0, sixth)])).values()
    assert deleted.low_watermark == sixth

    end = written[-1][0] + 1
    # a learns of the new log start by following the registry; its Metadata waits for that.
    # Without this request a's ListOffsets may still answer the old log start for a few ms:
    # a kop_fast bug, see test_the_other_proxy_honours_a_change_at_once below.
    assert admin(a).list_topics(topic=topic, timeout=20).topics[topic].error is None
    for server in (a, b):
        assert list_offsets(server, topic, [0], "earliest") == {0: sixth}
        consumer = Consumer({"bootstrap.servers": server.bootstrap, "group.id": WATERMARK_GROUP})
        try:
            assert consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=20, cached=False) == (sixth, end)
        finally:
            consumer.close()
    # Before the log start and past the end, as Kafka answers.
    low = results(admin(a).delete_records([TopicPartition(topic, 0, written[1][0])]))
    assert [r.low_watermark for r in low.values()] == [sixth]
    past = results(admin(a).delete_records([TopicPartition(topic, 0, end + 1)]))
    assert [r.code() for r in past.values()] == [1]  # OFFSET_OUT_OF_RANGE

    # A new group from the beginning, on the other proxy, starts at the sixth record.
    reader = GroupReader(b, group_for(cluster, b, "admin-records"), topic, 1)
    try:
        assert reader.to_the_end() == [(0, o, v) for o, v in written[5:]]
    finally:
        reader.close()


@pytest.mark.timeout(60)
def test_offsets_for_times_after_delete_records_starts_at_the_log_start(cluster):
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import NewTopic

    a = cluster.a
    topic = "admin-records-times"
    assert error_codes(admin(a).create_topics([NewTopic(topic, 1)])) == {topic: None}
    written = produce(a, topic, [b"t%d" % i for i in range(10)], linger_ms=100)  # one batch
    sixth = written[5][0]
    [deleted] = results(admin(a).delete_records([TopicPartition(topic, 0, sixth)])).values()
    assert deleted.low_watermark == sixth
    consumer = Consumer({"bootstrap.servers": a.bootstrap, "group.id": TIMES_GROUP})
    try:
        # Kafka: the first record at or after the log start with a timestamp >= 0.
        [found] = consumer.offsets_for_times([TopicPartition(topic, 0, 0)], timeout=20)
        assert found.offset == sixth
    finally:
        consumer.close()


@pytest.mark.compat("confluent-kafka", "AdminClient describe_cluster; create_acls",
                    result="describe_cluster works; ACLs are not supported: create_acls gets SECURITY_DISABLED")
@pytest.mark.compat("kafka-python", "KafkaAdminClient describe_acls",
                    result="not supported: SecurityDisabledError")
@pytest.mark.timeout(30)
def test_describe_cluster_and_acls_through_clients(cluster):
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, ResourcePatternType,
                                       ResourceType)
    from kafka.admin import (ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                             KafkaAdminClient, ResourcePatternFilter)
    from kafka.admin import ResourceType as KafkaPythonResourceType
    from kafka.errors import SecurityDisabledError

    everyone = sorted((node_id, "127.0.0.1", s.port) for node_id, s in enumerate((cluster.a, cluster.b, cluster.c)))
    for server in (cluster.a, cluster.b, cluster.c):  # one Kafka cluster of three brokers
        described = admin(server).describe_cluster().result(20)
        assert described.controller.id == 0
        assert sorted((n.id, n.host, n.port) for n in described.nodes) == everyone
    assert admin(cluster.a).describe_cluster().result(20).cluster_id == \
        admin(cluster.b).describe_cluster().result(20).cluster_id  # one cluster: the same Pulsar
    binding = AclBinding(ResourceType.TOPIC, "t", ResourcePatternType.LITERAL, "User:u", "*", AclOperation.READ,
                         AclPermissionType.ALLOW)
    assert [e.code() for e in results(admin(cluster.a).create_acls([binding])).values()] == [
        KafkaError.SECURITY_DISABLED]
    # (librdkafka drops DescribeAcls' error code: confluent-kafka's describe_acls gives [] here.)
    client = KafkaAdminClient(bootstrap_servers=cluster.b.bootstrap, request_timeout_ms=20000)
    try:
        with pytest.raises(SecurityDisabledError):
            client.describe_acls(ACLFilter(principal=None, host="*", operation=ACLOperation.ANY,
                                           permission_type=ACLPermissionType.ANY,
                                           resource_pattern=ResourcePatternFilter(KafkaPythonResourceType.ANY, None,
                                                                                  ACLResourcePatternType.ANY)))
    finally:
        client.close()


# -- 3. kafka-python's KafkaAdminClient -----------------------------------------------------------
@pytest.mark.compat("kafka-python", "KafkaAdminClient on two proxies: create topics with configs, describe topics "
                    "and configs, list and delete topics")
@pytest.mark.timeout(60)
def test_kafka_python_admin_client(cluster):
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
    from kafka.errors import TopicAlreadyExistsError

    a, b = cluster.a, cluster.b
    topic = "admin-kafka-python"
    on_a = KafkaAdminClient(bootstrap_servers=a.bootstrap, request_timeout_ms=20000)
    on_b = KafkaAdminClient(bootstrap_servers=b.bootstrap, request_timeout_ms=20000)
    try:
        created = on_a.create_topics({topic: {"num_partitions": 3, "configs": {"retention.ms": "86400000"}}})
        [result] = created["topics"]
        assert (result["name"], result["error_code"], result["num_partitions"]) == (topic, 0, 3)
        assert result["configs"]["retention.ms"]["value"] == "86400000"
        with pytest.raises(TopicAlreadyExistsError):
            on_b.create_topics({topic: {"num_partitions": 1}})

        for client in (on_a, on_b):
            [described] = client.describe_topics([topic])
            assert (described["name"], described["error_code"]) == (topic, 0)
            assert described["topic_id"] == result["topic_id"]
            assert sorted(p["partition_index"] for p in described["partitions"]) == [0, 1, 2]
            configs = client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            modified = configs["topic"][topic]
            assert {k: (v["value"], v["config_source"]) for k, v in modified.items()} == {
                "retention.ms": ("86400000", "DYNAMIC_TOPIC_CONFIG")}
            assert topic in client.list_topics()

        deleted = on_b.delete_topics([topic])
        assert [(t["name"], t["error_code"]) for t in deleted["topics"]] == [(topic, 0)]
        assert topic not in on_a.list_topics()
    finally:
        on_a.close()
        on_b.close()


# -- kcat ------------------------------------------------------------------------------------------
@pytest.mark.timeout(60)
def test_kcat_lists_a_created_topic_with_its_partitions(cluster):
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.skip("kcat is not installed")
    from confluent_kafka.admin import NewPartitions, NewTopic

    topic = "admin-kcat"
    assert error_codes(admin(cluster.a).create_topics([NewTopic(topic, 3)])) == {topic: None}
    assert error_codes(admin(cluster.b).create_partitions([NewPartitions(topic, 5)])) == {topic: None}
    for server in (cluster.a, cluster.b, cluster.c):
        out = subprocess.run([kcat, "-L", "-J", "-b", server.bootstrap, "-m", "20"], capture_output=True,
                             text=True, timeout=40)
        assert out.returncode == 0, out.stderr
        listed = {t["topic"]: t for t in json.loads(out.stdout)["topics"]}
        assert sorted(p["partition"] for p in listed[topic]["partitions"]) == [0, 1, 2, 3, 4]
        assert listed[topic].get("error") is None


# -- every proxy agrees right after each call, many times over ------------------------------------
@pytest.mark.timeout(60)
def test_each_change_is_seen_by_the_other_proxy_when_the_call_returns(cluster):
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions, NewTopic

    a, b = cluster.a, cluster.b
    on_a, on_b = admin(a), admin(b)
    for i in range(8):
        topic = f"admin-race-{i}"
        writer, other = (on_a, b) if i % 2 else (on_b, a)
        assert error_codes(writer.create_topics([NewTopic(topic, 1, config={"retention.ms": str(60000 + i)})])) == {
            topic: None}
        assert partition_counts(other).get(topic) == 1, f"round {i}: not created"
        assert overrides(other, topic) == {"retention.ms": str(60000 + i)}, f"round {i}"
        assert error_codes(writer.create_partitions([NewPartitions(topic, 3)])) == {topic: None}
        assert partition_counts(other).get(topic) == 3, f"round {i}: not grown"
        assert error_codes(writer.incremental_alter_configs([ConfigResource("topic", topic, incremental_configs=[
            ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
            ConfigEntry("max.message.bytes", str(10000 + i), incremental_operation=AlterConfigOpType.SET)])])
                           ) == {ConfigResource("topic", topic): None}
        assert overrides(other, topic) == {"max.message.bytes": str(10000 + i)}, f"round {i}"
        assert error_codes(writer.delete_topics([topic])) == {topic: None}
        assert topic not in partition_counts(other), f"round {i}: not deleted"


# -- 4. ApiVersions --------------------------------------------------------------------------------
def api_versions(port: int, version: int) -> dict[int, tuple[int, int]]:
    from kio.serial import entity_reader, entity_writer

    from kop_fast.protocol.schemas import request_schema, response_schema

    request_cls = request_schema(18, version)
    fields = {"client_software_name": "kop-test", "client_software_version": "0.1"} if version >= 3 else {}
    buf = io.BytesIO()
    entity_writer(request_cls)(buf, request_cls(**fields))
    frame = kafka_request(port, 18, version, buf.getvalue(), flexible=version >= 3)
    response, _ = entity_reader(response_schema(18, version))(frame, 4)  # response header v0 always
    assert response.error_code == 0
    return {int(k.api_key): (int(k.min_version), int(k.max_version)) for k in response.api_keys}


@pytest.mark.timeout(30)
def test_api_versions_advertise_the_admin_apis_at_the_implemented_versions(cluster):
    import kop_fast.server.handlers  # noqa: F401 - registers the handlers
    from kop_fast.server.registry import REGISTRY

    registry = {key: (low, high) for key, low, high in REGISTRY.supported()}  # Produce from v0: KAFKA-18659
    assert set(ADMIN_KEYS) <= set(registry)
    for server in (cluster.a, cluster.b, cluster.c):
        for version in (0, 3):
            advertised = api_versions(server.port, version)
            assert {k: advertised.get(k) for k in ADMIN_KEYS} == {k: registry[k] for k in ADMIN_KEYS}
            assert advertised == registry
    # Every advertised version of each admin API is exercised by the unit tests, not here:
    # tests/unit/test_admin_handlers.py parametrizes over every registered version
    # (`versions(key)`) of CreateTopics (19), DeleteTopics (20), DeleteRecords (21),
    # CreatePartitions (37), DescribeCluster (60) and of DescribeAcls (29), whose test also
    # sends CreateAcls (30) and DeleteAcls (31) at the same version; and
    # tests/unit/test_config_handlers.py's CASES covers every registered version of
    # DescribeConfigs (32), AlterConfigs (33) and IncrementalAlterConfigs (44).
    # That ACL test reaches every version of 30 and 31 only while their ranges equal 29's:
    assert registry[29] == registry[30] == registry[31]


# -- 5. restart ------------------------------------------------------------------------------------
def state(server: KopServer) -> dict:
    """The cluster id; topics (partition count, topic id), config overrides, and log start and end
    of every partition."""
    from confluent_kafka import TopicCollection

    counts = partition_counts(server)
    described = results(admin(server).describe_topics(TopicCollection(sorted(counts))))
    topics = {topic: (n, str(described[topic].topic_id), overrides(server, topic),
                      list_offsets(server, topic, range(n), "earliest"), list_offsets(server, topic, range(n), "latest"))
              for topic, n in sorted(counts.items())}
    return {"cluster id": admin(server).describe_cluster().result(20).cluster_id, "topics": topics}


@pytest.mark.timeout(120)
def test_everything_survives_a_restart_of_every_proxy(cluster):
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import NewPartitions, NewTopic

    a = cluster.a
    topic = "admin-restart"
    assert error_codes(admin(a).create_topics([NewTopic(topic, 2, config={"retention.ms": "123456789",
                                                                           "max.message.bytes": "400000"})])) == {
        topic: None}
    assert error_codes(admin(cluster.b).create_partitions([NewPartitions(topic, 3)])) == {topic: None}
    written = produce(a, topic, [b"x%d" % i for i in range(4)], partition=2)
    [deleted] = results(admin(a).delete_records([TopicPartition(topic, 2, written[2][0])])).values()
    assert deleted.low_watermark == written[2][0]

    before = state(a)
    assert before == state(cluster.b) == state(cluster.c)
    created = before["topics"][topic]
    assert created[0] == 3 and created[2] == {"retention.ms": "123456789", "max.message.bytes": "400000"}
    assert created[3][2] == written[2][0]  # (with the earlier tests' topics, when they ran)
    # The embedded pulsar-lite gets a new port on restart: the cluster id is kept in Pulsar, not derived from it.

    servers = (cluster.c, cluster.b, cluster.a)
    codes = cluster.stop()
    assert codes == [0, 0, 0], {cluster_role: (code, server.log_text()[-4000:])
                                for cluster_role, code, server in zip("cba", codes, servers) if code != 0}
    cluster.start()
    for server in (cluster.a, cluster.b, cluster.c):
        assert state(server) == before
    assert consume_at(cluster.b, topic, 2, written[2][0], 2) == written[2:]
