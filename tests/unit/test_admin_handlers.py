"""Every version of the admin handlers (CreateTopics, DeleteTopics, CreatePartitions,
DeleteRecords, DescribeCluster, the ACL APIs): a kio request (through kio's encoder and
decoder, as from the wire) into the registered handler on a real `KafkaNode` over
`MemoryStorage`; the response must encode and decode back with kio and carry that
version's fields, Kafka's error codes and messages, and the storage must show the change.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import uuid
from types import SimpleNamespace

import pytest

import kop_fast.server.handlers  # noqa: F401 - registers the handlers
from kop_fast import codec
from kop_fast.config import build_settings
from kop_fast.protocol.build import make, sibling
from kop_fast.protocol.errors import ErrorCode
from kop_fast.protocol.schemas import request_schema, response_schema
from kop_fast.server import topic_configs
from kop_fast.server.handlers.describe_cluster import CLUSTER_OPERATIONS
from kop_fast.server.node import KafkaNode
from kop_fast.server.registry import REGISTRY
from kop_fast.server.topics import kafka_name_error
from kop_fast.storage.memory import MemoryStorage, MemoryTopic
from tests.unit.test_group_handlers import roundtrip

TIMEOUT = datetime.timedelta(seconds=5)
NO_ID = None  # kio reads the zero uuid as None
NOT_ASKED = -(2**31)


def versions(api_key: int) -> list[int]:
    entry = REGISTRY.get(api_key)
    return list(range(entry.min_version, entry.max_version + 1))


def run(scenario):
    asyncio.run(asyncio.wait_for(scenario(), 10))


def memory_kafka_node(storage: MemoryStorage | None = None, **topics: int) -> KafkaNode:
    storage = storage or MemoryStorage()
    for name, partitions in {"t": 3, **topics}.items():
        storage.engine.topics[name] = MemoryTopic(partitions)
    return KafkaNode(build_settings({"listen": "127.0.0.1:9092", "default_num_partitions": 4}, environ={}),
                     storage, "cluster")


async def call(node: KafkaNode, api_key: int, version: int, request):
    """The handler's response to `request` (sent through kio's codec), checked to round-trip."""
    ctx = SimpleNamespace(node=node, api_version=version, response_schema=response_schema(api_key, version),
                          header=SimpleNamespace(client_id="client"), connection=SimpleNamespace(peer=("127.0.0.1", 1), listener_name=None))
    result = REGISTRY.get(api_key).handle(ctx, roundtrip(request))
    if inspect.isawaitable(result):
        result = await result
    assert type(result) is response_schema(api_key, version)
    return roundtrip(result)


def nested(schema, class_name, **fields):
    return make(sibling(schema, class_name), **fields)


def errors(results) -> dict:
    return {r.name: (r.error_code, r.error_message) for r in results}


# -- CreateTopics --------------------------------------------------------------------------------
def create_request(version: int, *topics: dict, validate_only=False, timeout=TIMEOUT):
    s = request_schema(19, version)
    return make(s, timeout=timeout, validate_only=validate_only, topics=tuple(
        nested(s, "CreatableTopic", name=t["name"], num_partitions=t.get("partitions", -1),
               replication_factor=t.get("rf", -1),
               assignments=tuple(nested(s, "CreatableReplicaAssignment", partition_index=i, broker_ids=tuple(b))
                                 for i, b in t.get("assignments", ())),
               configs=tuple(nested(s, "CreatableTopicConfig", name=k, value=v) for k, v in t.get("configs", {}).items()))
        for t in topics))


@pytest.mark.parametrize("version", versions(19))
def test_create_topics_every_version(version):
    async def scenario():
        node = memory_kafka_node()
        response = await call(node, 19, version, create_request(
            version,
            {"name": "new", "partitions": 3},
            {"name": "default"},
            {"name": "t", "partitions": 1, "rf": 1},
            {"name": "bad name"},
            {"name": "dup"}, {"name": "dup", "partitions": 2},
            {"name": "zero", "partitions": 0},
            {"name": "minus-two", "partitions": -2},
            {"name": "rf0", "rf": 0},
            {"name": "rf3", "partitions": 2, "rf": 3},
            {"name": "manual", "assignments": [(0, [0]), (1, [0])]},
            {"name": "elsewhere", "assignments": [(0, [1])]},
            {"name": "twice-here", "assignments": [(0, [0, 0])]},
            {"name": "gap", "assignments": [(0, [0]), (2, [0])]},
            {"name": "both", "partitions": 2, "assignments": [(0, [0])]},
        ))
        none = (ErrorCode.none, None)
        assert errors(response.topics) == {
            "new": none, "default": none, "rf3": none, "manual": none,
            "t": (ErrorCode.topic_already_exists, "Topic 't' already exists."),
            "bad name": (ErrorCode.invalid_topic_exception, kafka_name_error("bad name")),
            "dup": (ErrorCode.invalid_request, "Duplicate topic name."),
            "zero": (ErrorCode.invalid_partitions, "Number of partitions was set to an invalid non-positive value."),
            "minus-two": (ErrorCode.invalid_partitions,
                          "Number of partitions was set to an invalid non-positive value."),
            "rf0": (ErrorCode.invalid_replication_factor,
                    "Replication factor must be larger than 0, or -1 to use the default value."),
            "elsewhere": (ErrorCode.invalid_replica_assignment,
                          "The manual partition assignment includes broker 1, but no such broker is registered."),
            "twice-here": (ErrorCode.invalid_replica_assignment,
                           "The manual partition assignment includes the broker 0 more than once."),
            "gap": (ErrorCode.invalid_replica_assignment, "partitions should be a consecutive 0-based integer sequence"),
            "both": (ErrorCode.invalid_request, "A manual partition assignment was specified, "
                                                "but numPartitions was not set to -1."),
        }
        assert [t.name for t in response.topics][:5] == ["new", "default", "t", "bad name", "dup"]
        engine = node.storage.engine
        assert {n: t.partitions for n, t in engine.topics.items()} == {
            "t": 3, "new": 3, "default": 4, "rf3": 2, "manual": 2}
        by_name = {t.name: t for t in response.topics}
        if version >= 5:
            assert [(by_name[n].num_partitions, by_name[n].replication_factor) for n in ("new", "default", "rf3")] \
                == [(3, 1), (4, 1), (2, 1)]
            assert (by_name["zero"].num_partitions, by_name["zero"].replication_factor) == (-1, -1)
            info = node.storage.cached_topic("new")
            described = topic_configs.describe_topic_configs(node, info)
            assert [(c.name, c.value, c.config_source) for c in by_name["new"].configs] == \
                [(name, value, source) for name, value, _, source, _ in described]
            assert by_name["zero"].configs == ()
        if version >= 7:
            assert by_name["new"].topic_id == engine.topics["new"].topic_id
            assert by_name["t"].topic_id == NO_ID

    run(scenario)


@pytest.mark.parametrize("version", [2, 5, 7])
def test_create_topics_validate_only_creates_nothing(version):
    async def scenario():
        node = memory_kafka_node()
        response = await call(node, 19, version, create_request(
            version, {"name": "checked", "partitions": 6}, {"name": "t"}, {"name": ".."}, validate_only=True))
        assert [(t.name, t.error_code) for t in response.topics] == [
            ("checked", ErrorCode.none), ("t", ErrorCode.topic_already_exists), ("..", ErrorCode.invalid_topic_exception)]
        assert response.topics[2].error_message == 'Topic name cannot be "." or ".."'
        assert set(node.storage.engine.topics) == {"t"}
        if version >= 5:
            assert response.topics[0].num_partitions == 6
        if version >= 7:
            assert response.topics[0].topic_id == NO_ID

    run(scenario)


def test_create_topics_configs_are_checked_then_stored(monkeypatch):
    async def scenario():
        node = memory_kafka_node()
        request = create_request(7, {"name": "kept", "configs": {"retention.ms": "60000"}},
                                 {"name": "refused", "configs": {"no.such.config": "1"}})
        response = await call(node, 19, 7, request)
        kept, refused = response.topics
        assert kept.error_code == ErrorCode.none
        assert node.storage.engine.topics["kept"].configs == {"retention.ms": "60000"}
        assert ("retention.ms", "60000", 1) in [(c.name, c.value, c.config_source) for c in kept.configs]
        assert refused.error_code == ErrorCode.invalid_config and refused.error_message
        assert "refused" not in node.storage.engine.topics

        seen = []
        monkeypatch.setattr(topic_configs, "check_topic_configs",
                            lambda configs, storage=None: seen.append(dict(configs)) or "not today")
        response = await call(node, 19, 5, create_request(5, {"name": "later", "configs": {"a": "1"}}))
        assert errors(response.topics) == {"later": (ErrorCode.invalid_config, "not today")}
        assert seen == [{"a": "1"}] and "later" not in node.storage.engine.topics

    run(scenario)


class SlowCreate(MemoryStorage):
    """create_topic waits until `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def create_topic(self, name, partitions, configs=None):
        await self.release.wait()
        return await super().create_topic(name, partitions, configs)


def test_create_topics_timeout_bounds_the_call_and_the_creation_goes_on():
    async def scenario():
        node = memory_kafka_node(SlowCreate())
        started = asyncio.get_running_loop().time()
        response = await call(node, 19, 7, create_request(
            7, {"name": "slow"}, {"name": "bad/name"}, timeout=datetime.timedelta(milliseconds=50)))
        assert asyncio.get_running_loop().time() - started < 2
        assert [(t.name, t.error_code) for t in response.topics] == [
            ("slow", ErrorCode.request_timed_out), ("bad/name", ErrorCode.invalid_topic_exception)]
        assert "slow" not in node.storage.engine.topics
        node.storage.release.set()
        for _ in range(100):
            if "slow" in node.storage.engine.topics:
                break
            await asyncio.sleep(0.01)
        assert node.storage.engine.topics["slow"].partitions == 4

    run(scenario)


def test_kafka_topic_name_rule():
    assert kafka_name_error("Orders.v1_x-2") is None and kafka_name_error("a" * 249) is None
    assert kafka_name_error("") == "Topic name is illegal, it can't be empty"
    assert kafka_name_error(".") == kafka_name_error("..") == 'Topic name cannot be "." or ".."'
    assert kafka_name_error("a" * 250).startswith("Topic name is illegal, it can't be longer than 249 characters")
    for name in ("a b", "a/b", "caf\u00e9", "persistent://public/default/t", "t\n"):
        assert kafka_name_error(name) == (f'Topic name "{name}" is illegal, it contains a character other than '
                                          "ASCII alphanumerics, '.', '_' and '-'")


# -- DeleteTopics --------------------------------------------------------------------------------
@pytest.mark.parametrize("version", versions(20))
def test_delete_topics_every_version(version):
    async def scenario():
        node = memory_kafka_node(u=2)
        engine = node.storage.engine
        t_id, u_id = engine.topics["t"].topic_id, engine.topics["u"].topic_id
        s = request_schema(20, version)
        if version < 6:
            request = make(s, timeout=TIMEOUT, topic_names=("t", "nope", "dup", "dup"))
        else:
            def state(name=None, topic_id=NO_ID):
                return nested(s, "DeleteTopicState", name=name, topic_id=topic_id)
            stranger = uuid.uuid4()
            request = make(s, timeout=TIMEOUT, topics=(
                state("t"), state("nope"), state("dup"), state("dup"), state(topic_id=u_id),
                state(topic_id=stranger), state("x", u_id), state()))
        response = await call(node, 20, version, request)
        got = [(r.name, r.error_code) for r in response.responses]
        assert got[:3] == [("t", ErrorCode.none), ("nope", ErrorCode.unknown_topic_or_partition),
                           ("dup", ErrorCode.invalid_request)]
        if version >= 5:
            assert [r.error_message for r in response.responses][:3] == [
                None, "This server does not host this topic-partition.", "Duplicate topic name."]
        if version < 6:
            assert len(got) == 3 and set(engine.topics) == {"u"}
            return
        assert got[3:] == [("u", ErrorCode.none), (None, ErrorCode.unknown_topic_id),
                           ("x", ErrorCode.invalid_request), (None, ErrorCode.invalid_request)]
        assert [r.topic_id for r in response.responses] == [t_id, NO_ID, NO_ID, u_id, stranger, u_id, NO_ID]
        assert [r.error_message for r in response.responses][4:] == [
            "This server does not host this topic ID.", "You may not specify both topic name and topic id.",
            "Neither topic name nor id were specified."]
        assert engine.topics == {}

    run(scenario)


def test_a_deleted_topic_made_again_starts_empty():
    async def scenario():
        node = memory_kafka_node()
        old = node.storage.cached_topic("t")
        await node.storage.partition_log(old, 0).append_batch(codec.encode_batch(
            [codec.Record(0, 1, None, b"old", ())]), 1)
        await call(node, 20, 4, make(request_schema(20, 4), timeout=TIMEOUT, topic_names=("t",)))
        response = await call(node, 19, 7, create_request(7, {"name": "t", "partitions": 1}))
        assert response.topics[0].error_code == ErrorCode.none
        new = node.storage.cached_topic("t")
        assert new.topic_id != old.topic_id and response.topics[0].topic_id == new.topic_id
        assert await node.storage.partition_log(new, 0).bounds() == (0, 0)

    run(scenario)


# -- CreatePartitions ----------------------------------------------------------------------------
def partitions_request(version: int, *topics: tuple, validate_only=False):
    s = request_schema(37, version)
    return make(s, timeout=TIMEOUT, validate_only=validate_only, topics=tuple(
        nested(s, "CreatePartitionsTopic", name=name, count=count, assignments=None if assignments is None else tuple(
            nested(s, "CreatePartitionsAssignment", broker_ids=tuple(b)) for b in assignments))
        for name, count, assignments in topics))


@pytest.mark.parametrize("version", versions(37))
def test_create_partitions_every_version(version):
    async def scenario():
        node = memory_kafka_node(same=2, fewer=4, manual=1, short=1, elsewhere=1)
        response = await call(node, 37, version, partitions_request(
            version, ("t", 5, None), ("nope", 2, None), ("same", 2, None), ("fewer", 3, None),
            ("manual", 3, [[0], [0]]), ("short", 3, [[0]]), ("elsewhere", 2, [[7]]),
            ("dup", 2, None), ("dup", 3, None)))
        assert errors(response.results) == {
            "t": (ErrorCode.none, None),
            "nope": (ErrorCode.unknown_topic_or_partition, None),
            "same": (ErrorCode.invalid_partitions, "Topic already has 2 partition(s)."),
            "fewer": (ErrorCode.invalid_partitions,
                      "The topic fewer currently has 4 partition(s); 3 would not be an increase."),
            "manual": (ErrorCode.none, None),
            "short": (ErrorCode.invalid_replica_assignment,
                      "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified."),
            "elsewhere": (ErrorCode.invalid_replica_assignment,
                          "The manual partition assignment includes broker 7, but no such broker is registered."),
            "dup": (ErrorCode.invalid_request, "Duplicate topic name."),
        }
        assert {n: t.partitions for n, t in node.storage.engine.topics.items()} == {
            "t": 5, "same": 2, "fewer": 4, "manual": 3, "short": 1, "elsewhere": 1}

        checked = await call(node, 37, version, partitions_request(version, ("t", 9, None), validate_only=True))
        assert errors(checked.results) == {"t": (ErrorCode.none, None)}
        assert node.storage.engine.topics["t"].partitions == 5

    run(scenario)


# -- DeleteRecords -------------------------------------------------------------------------------
def records_request(version: int, *partitions: tuple):
    s = request_schema(21, version)
    by_topic: dict[str, list] = {}
    for name, index, offset in partitions:
        by_topic.setdefault(name, []).append(nested(s, "DeleteRecordsPartition", partition_index=index, offset=offset))
    return make(s, timeout=TIMEOUT, topics=tuple(
        nested(s, "DeleteRecordsTopic", name=name, partitions=tuple(parts)) for name, parts in by_topic.items()))


def low_watermarks(response) -> dict:
    return {(t.name, p.partition_index): (p.error_code, p.low_watermark) for t in response.topics for p in t.partitions}


@pytest.mark.parametrize("version", versions(21))
def test_delete_records_every_version(version):
    async def scenario():
        node = memory_kafka_node()
        info = node.storage.cached_topic("t")
        for index, count in ((0, 5), (1, 2)):
            await node.storage.partition_log(info, index).append_batch(codec.encode_batch(
                [codec.Record(i, 1_000 + i, None, b"v", ()) for i in range(count)]), count)
        response = await call(node, 21, version, records_request(
            version, ("t", 0, 3), ("t", 1, -1), ("t", 2, 1), ("t", 5, 0), ("nope", 0, 0)))
        assert low_watermarks(response) == {
            ("t", 0): (ErrorCode.none, 3), ("t", 1): (ErrorCode.none, 2),
            ("t", 2): (ErrorCode.offset_out_of_range, -1), ("t", 5): (ErrorCode.unknown_topic_or_partition, -1),
            ("nope", 0): (ErrorCode.unknown_topic_or_partition, -1)}
        assert await node.storage.partition_log(info, 0).bounds() == (3, 5)
        again = await call(node, 21, version, records_request(version, ("t", 0, 1), ("t", 0, -7)))
        assert [(p.error_code, p.low_watermark) for p in again.topics[0].partitions] == [
            (ErrorCode.none, 3), (ErrorCode.offset_out_of_range, -1)]

    run(scenario)


# -- DescribeCluster -----------------------------------------------------------------------------
@pytest.mark.parametrize("version", versions(60))
def test_describe_cluster_every_version(version):
    async def scenario():
        node = memory_kafka_node()
        s = request_schema(60, version)
        plain = await call(node, 60, version, make(s, include_cluster_authorized_operations=False,
                                                   include_fenced_brokers=False))
        assert (plain.error_code, plain.error_message, plain.cluster_id, plain.controller_id) == (
            ErrorCode.none, None, "cluster", 0)
        assert [(b.broker_id, b.host, b.port, b.rack) for b in plain.brokers] == [(0, "127.0.0.1", 9092, None)]
        assert plain.cluster_authorized_operations == NOT_ASKED
        if version >= 1:
            assert plain.endpoint_type == 1
        if version >= 2:
            assert plain.brokers[0].is_fenced is False
        asked = await call(node, 60, version, make(s, include_cluster_authorized_operations=True,
                                                   include_fenced_brokers=True))
        assert asked.cluster_authorized_operations == CLUSTER_OPERATIONS == 8096
        if version >= 1:
            controllers = await call(node, 60, version, make(s, include_cluster_authorized_operations=False,
                                                             endpoint_type=2, include_fenced_brokers=False))
            assert (controllers.error_code, controllers.brokers) == (ErrorCode.mismatched_endpoint_type, ())
            unknown = await call(node, 60, version, make(s, include_cluster_authorized_operations=False,
                                                         endpoint_type=9, include_fenced_brokers=False))
            assert (unknown.error_code, unknown.error_message) == (ErrorCode.unsupported_endpoint_type,
                                                                   "Unsupported endpoint type 9")

    run(scenario)


# -- ACLs ----------------------------------------------------------------------------------------
def acl_filter(s, class_name: str):
    return nested(s, class_name, resource_type_filter=2, resource_name_filter="t", pattern_type_filter=3,
                  principal_filter="User:x", host_filter="*", operation=3, permission_type=3)


@pytest.mark.parametrize("version", versions(29))
def test_acl_apis_answer_as_a_broker_without_an_authorizer(version):
    async def scenario():
        node = memory_kafka_node()
        described = await call(node, 29, version, acl_filter(request_schema(29, version), "DescribeAclsRequest"))
        assert (described.error_code, described.error_message, described.resources) == (
            ErrorCode.security_disabled, "No Authorizer is configured on the broker", ())
        s = request_schema(30, version)
        creation = nested(s, "AclCreation", resource_type=2, resource_name="t", resource_pattern_type=3,
                          principal="User:x", host="*", operation=3, permission_type=3)
        created = await call(node, 30, version, make(s, creations=(creation, creation)))
        assert [(r.error_code, r.error_message) for r in created.results] == [
            (ErrorCode.security_disabled, "No Authorizer is configured.")] * 2
        s = request_schema(31, version)
        deleted = await call(node, 31, version, make(s, filters=(acl_filter(s, "DeleteAclsFilter"),) * 3))
        assert [(r.error_code, r.error_message, r.matching_acls) for r in deleted.filter_results] == [
            (ErrorCode.security_disabled, "No Authorizer is configured.", ())] * 3

    run(scenario)


def test_admin_apis_are_advertised_at_exactly_these_versions():
    supported = {key: (low, high) for key, low, high in REGISTRY.supported()}
    assert {key: supported[key] for key in (19, 20, 21, 29, 30, 31, 37, 60)} == {
        19: (2, 7), 20: (1, 6), 21: (0, 2), 29: (1, 3), 30: (1, 3), 31: (1, 3), 37: (0, 3), 60: (0, 2)}
