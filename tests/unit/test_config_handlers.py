"""DescribeConfigs, AlterConfigs and IncrementalAlterConfigs, every version, through the handlers.

A kio request in, a response that kio encodes and decodes back, with the fields of its
version; the semantics (sources, synonyms, refusals, replace vs merge) on the memory
storage without a socket. The client tests are in test_configs_on_memory.py.
"""

from __future__ import annotations

import asyncio
import io
from types import SimpleNamespace

import pytest
from kio.serial import entity_reader

import kop_fast.server.handlers  # noqa: F401 - registers the handlers
from kop_fast.config import build_settings
from kop_fast.protocol.build import has_field, make, sibling
from kop_fast.protocol.errors import ErrorCode
from kop_fast.protocol.schemas import encode_entity, request_schema, response_schema
from kop_fast.server.node import KafkaNode
from kop_fast.server.registry import REGISTRY
from kop_fast.server.topic_configs import CATALOGUE, AlterOp, ConfigSource, ConfigType, check_topic_configs
from kop_fast.storage.memory import MemoryStorage, MemoryTopic

DESCRIBE, ALTER, INCREMENTAL = 32, 33, 44
TOPIC, BROKER = 2, 4
CASES = [(key, v) for key in (DESCRIBE, ALTER, INCREMENTAL)
         for v in range(REGISTRY.get(key).min_version, REGISTRY.get(key).max_version + 1)]


def node_with_topic(**flags):
    storage = MemoryStorage()
    storage.engine.topics["t"] = MemoryTopic(2, configs={"retention.ms": "3600000"})
    settings = build_settings({"listen": "127.0.0.1:9092", "node_id": 3, "default_num_partitions": 4,
                               **flags}, environ={})
    return KafkaNode(settings, storage, "cluster")


def call(node, api_key: int, version: int, request):
    ctx = SimpleNamespace(node=node, api_version=version, response_schema=response_schema(api_key, version))
    response = asyncio.run(REGISTRY.get(api_key).handle(ctx, request))
    buf = io.BytesIO()
    encode_entity(response, buf)
    decoded, _ = entity_reader(type(response))(buf.getvalue(), 0)
    assert decoded == response and type(decoded) is response_schema(api_key, version)
    return decoded


def describe_request(version: int, *resources, synonyms=True, documentation=True):
    s = request_schema(DESCRIBE, version)
    return make(s, include_synonyms=synonyms, include_documentation=documentation, resources=tuple(
        make(sibling(s, "DescribeConfigsResource"), resource_type=kind, resource_name=name, configuration_keys=keys)
        for kind, name, keys in resources))


def alter_request(api_key: int, version: int, *resources, validate_only=False):
    """resources: (type, name, [(name, value)] or [(name, op, value)])."""
    s = request_schema(api_key, version)
    config_cls = sibling(s, "AlterableConfig")

    def config(entry):
        if api_key == ALTER:
            return make(config_cls, name=entry[0], value=entry[1])
        return make(config_cls, name=entry[0], config_operation=entry[1], value=entry[2])

    return make(s, validate_only=validate_only, resources=tuple(
        make(sibling(s, "AlterConfigsResource"), resource_type=kind, resource_name=name,
             configs=tuple(config(e) for e in entries))
        for kind, name, entries in resources))


def by_name(result) -> dict:
    return {c.name: c for c in result.configs}


@pytest.mark.parametrize(("api_key", "version"), CASES, ids=[f"{k}-v{v}" for k, v in CASES])
def test_every_version_answers_each_resource_and_encodes(api_key, version):
    node = node_with_topic()
    if api_key == DESCRIBE:
        response = call(node, api_key, version, describe_request(
            version, (TOPIC, "t", None), (TOPIC, "missing", None), (BROKER, "3", None), (BROKER, "", None),
            (BROKER, "9", None), (8, "3", None)))
        assert [(r.resource_type, r.resource_name, r.error_code) for r in response.results] == [
            (TOPIC, "t", ErrorCode.none), (TOPIC, "missing", ErrorCode.unknown_topic_or_partition),
            (BROKER, "3", ErrorCode.none), (BROKER, "", ErrorCode.none),
            (BROKER, "9", ErrorCode.invalid_request), (8, "3", ErrorCode.invalid_request)]
        topic, _, broker, default_broker, _, _ = response.results
        entry = by_name(topic)["retention.ms"]
        assert (entry.value, entry.config_source, entry.read_only, entry.is_sensitive) == (
            "3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG, False, False)
        assert [(s.name, s.value, s.source) for s in entry.synonyms] == [
            ("retention.ms", "3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG),
            ("log.retention.hours", "168", ConfigSource.DEFAULT_CONFIG)]
        if version >= 3:
            assert entry.config_type == ConfigType.LONG and "kept" in entry.documentation
        else:
            assert not has_field(type(entry), "documentation")
        assert by_name(broker)["num.partitions"].value == "4"
        assert default_broker.configs == ()
    else:
        if api_key == ALTER:
            change = [("max.message.bytes", "5000")]
        else:
            change = [("max.message.bytes", AlterOp.SET, "5000")]
        response = call(node, api_key, version, alter_request(
            api_key, version, (TOPIC, "t", change), (TOPIC, "missing", change), (BROKER, "3", []),
            (BROKER, "3", [])))
        assert [(r.resource_name, r.error_code) for r in response.responses] == [
            ("t", ErrorCode.none), ("missing", ErrorCode.unknown_topic_or_partition),
            ("3", ErrorCode.invalid_request), ("3", ErrorCode.invalid_request)]
        assert response.responses[2].error_message == "Each resource must appear at most once."
        expected = {"max.message.bytes": "5000"} if api_key == ALTER else {"retention.ms": "3600000",
                                                                           "max.message.bytes": "5000"}
        assert node.storage.topic_configs(node.storage.cached_topic("t")) == expected
    entry = REGISTRY.get(api_key)
    error = entry.error_response(SimpleNamespace(response_schema=response_schema(api_key, version)),
                                 describe_request(version, (TOPIC, "t", None)) if api_key == DESCRIBE
                                 else alter_request(api_key, version, (TOPIC, "t", [])), ErrorCode.unknown_server_error)
    buf = io.BytesIO()
    encode_entity(error, buf)
    assert entity_reader(type(error))(buf.getvalue(), 0)[0] == error


def test_describe_defaults_filter_and_flags():
    node = node_with_topic()
    response = call(node, DESCRIBE, 4, describe_request(4, (TOPIC, "t", ("cleanup.policy", "segment.bytes", "nope")),
                                                        synonyms=False, documentation=False))
    configs = by_name(response.results[0])
    assert set(configs) == {"cleanup.policy", "segment.bytes"}
    policy = configs["cleanup.policy"]
    assert (policy.value, policy.config_source, policy.read_only, policy.config_type) == (
        "delete", ConfigSource.DEFAULT_CONFIG, False, ConfigType.LIST)
    assert policy.synonyms == () and policy.documentation is None
    segment = configs["segment.bytes"]
    assert (segment.value, segment.read_only) == ("1073741824", True)
    everything = call(node, DESCRIBE, 1, describe_request(1, (TOPIC, "t", None)))
    assert set(by_name(everything.results[0])) == set(CATALOGUE)


def test_describe_broker_shows_settings_as_static_and_kafka_defaults():
    node = node_with_topic(max_request_size=2048)
    configs = by_name(call(node, DESCRIBE, 4, describe_request(4, (BROKER, "3", None))).results[0])
    assert all(c.read_only for c in configs.values())
    assert (configs["num.partitions"].value, configs["num.partitions"].config_source) == (
        "4", ConfigSource.STATIC_BROKER_CONFIG)
    assert [(s.value, s.source) for s in configs["num.partitions"].synonyms] == [
        ("4", ConfigSource.STATIC_BROKER_CONFIG), ("1", ConfigSource.DEFAULT_CONFIG)]
    assert configs["socket.request.max.bytes"].value == "2048"
    assert configs["node.id"].value == "3" and configs["listeners"].value == "PLAINTEXT://127.0.0.1:9092"
    assert (configs["message.max.bytes"].value, configs["message.max.bytes"].config_source) == (
        "1048588", ConfigSource.DEFAULT_CONFIG)
    assert configs["log.retention.hours"].value == "168" and configs["log.retention.ms"].value is None
    assert configs["auto.create.topics.enable"].value == "true"
    assert configs["log.retention.hours"].config_type == ConfigType.INT


@pytest.mark.parametrize(("config", "value", "says"), [
    ("cleanup.policy", "compact", "Pulsar topic compaction is not used"),
    ("cleanup.policy", "delete,compact", "Pulsar topic compaction is not used"),
    ("segment.bytes", "1073741824", "Pulsar manages ledgers itself"),
    ("min.insync.replicas", "2", "persistence policy"),
    ("message.timestamp.type", "LogAppendTime", "rewritten"),
    ("message.timestamp.type", "Whenever", "String must be one of"),
    ("compression.type", "gzip", "as sent"),
    ("retention.bytes", "1000", "needs --pulsar-admin-url"),
    ("retention.ms", "-2", "at least -1"),
    ("retention.ms", "soon", "Not a number"),
    ("max.message.bytes", str(2**31), "Not a number of type INT"),
    ("no.such.config", "1", "Unknown topic config name: no.such.config"),
])
def test_alter_refuses_what_kop_fast_cannot_apply(config, value, says):
    node = node_with_topic()
    info = node.storage.cached_topic("t")
    response = call(node, ALTER, 1, alter_request(ALTER, 1, (TOPIC, "t", [(config, value)])))
    [result] = response.responses
    assert result.error_code == ErrorCode.invalid_config and says in result.error_message
    assert node.storage.topic_configs(info) == {"retention.ms": "3600000"}  # nothing changed


def test_accepted_values_and_the_retention_bytes_capability():
    assert check_topic_configs({"cleanup.policy": "delete", "compression.type": "producer",
                                "message.timestamp.type": "CreateTime", "retention.bytes": "-1",
                                "retention.ms": "-1", "max.message.bytes": "0"}) is None
    assert check_topic_configs({"retention.bytes": "1000"}, SimpleNamespace(applies_retention_bytes=True)) is None
    assert "Null value" in check_topic_configs({"retention.ms": None})


def test_alter_replaces_validate_only_changes_nothing_and_nulls_are_refused():
    node = node_with_topic()
    info = node.storage.cached_topic("t")
    call(node, ALTER, 0, alter_request(ALTER, 0, (TOPIC, "t", [("max.message.bytes", "10")]), validate_only=True))
    assert node.storage.topic_configs(info) == {"retention.ms": "3600000"}
    call(node, ALTER, 2, alter_request(ALTER, 2, (TOPIC, "t", [("max.message.bytes", "10")])))
    assert node.storage.topic_configs(info) == {"max.message.bytes": "10"}  # retention.ms back to its default
    [null] = call(node, ALTER, 2, alter_request(ALTER, 2, (TOPIC, "t", [("retention.ms", None)]))).responses
    assert null.error_code == ErrorCode.invalid_request and null.error_message.startswith("Null value not supported")
    [broker] = call(node, ALTER, 2, alter_request(ALTER, 2, (BROKER, "3", [("num.partitions", "9")]))).responses
    assert broker.error_code == ErrorCode.invalid_request
    assert "Cannot update these configs dynamically: num.partitions" in broker.error_message
    [default] = call(node, ALTER, 2, alter_request(ALTER, 2, (BROKER, "", []))).responses
    assert default.error_code == ErrorCode.invalid_request  # the cluster default only incrementally, as in Kafka
    [other] = call(node, ALTER, 2, alter_request(ALTER, 2, (8, "3", []))).responses
    assert other.error_code == ErrorCode.invalid_request


def test_incremental_set_delete_append_subtract():
    node = node_with_topic()
    info = node.storage.cached_topic("t")

    def run(*ops, validate_only=False):
        [result] = call(node, INCREMENTAL, 1, alter_request(INCREMENTAL, 1, (TOPIC, "t", list(ops)),
                                                           validate_only=validate_only)).responses
        return result.error_code, result.error_message

    assert run(("max.message.bytes", AlterOp.SET, "100"), ("retention.ms", AlterOp.DELETE, None)) == (0, None)
    assert node.storage.topic_configs(info) == {"max.message.bytes": "100"}
    assert run(("retention.ms", AlterOp.SET, "5"), validate_only=True) == (0, None)
    assert node.storage.topic_configs(info) == {"max.message.bytes": "100"}
    # APPEND/SUBTRACT on a list: the result is checked (compact is refused, delete is the default).
    code, message = run(("cleanup.policy", AlterOp.APPEND, "compact"))
    assert code == ErrorCode.invalid_config and "compaction" in message
    assert run(("cleanup.policy", AlterOp.APPEND, "delete")) == (0, None)
    assert node.storage.topic_configs(info)["cleanup.policy"] == "delete"
    code, _ = run(("cleanup.policy", AlterOp.SUBTRACT, "delete"))
    assert code == ErrorCode.invalid_config  # an empty policy: nothing would ever be deleted
    assert run(("retention.ms", AlterOp.APPEND, "5")) == (
        ErrorCode.invalid_request, "Config value append is not allowed for config key: retention.ms")
    assert run(("retention.ms", AlterOp.SUBTRACT, "5"))[0] == ErrorCode.invalid_request
    assert run(("nope", AlterOp.APPEND, "5"))[0] == ErrorCode.invalid_config
    assert run(("retention.ms", AlterOp.SET, "5"), ("retention.ms", AlterOp.SET, "6")) == (
        ErrorCode.invalid_request, "Error due to duplicate config keys")
    assert run(("retention.ms", AlterOp.SET, None))[0] == ErrorCode.invalid_request
    assert run(("retention.ms", 9, "5"))[0] == ErrorCode.invalid_request
    assert node.storage.topic_configs(info) == {"max.message.bytes": "100", "cleanup.policy": "delete"}
    # Existing overrides are not checked again: only what changes.
    node.storage.engine.topics["t"].configs["retention.bytes"] = "77"  # accepted earlier by a capable storage
    assert run(("retention.ms", AlterOp.SET, "1000")) == (0, None)
    [cluster] = call(node, INCREMENTAL, 0, alter_request(INCREMENTAL, 0, (BROKER, "", []))).responses
    assert cluster.error_code == ErrorCode.none
