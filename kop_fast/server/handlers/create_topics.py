"""CreateTopics (key 19) v2-v7: Kafka's checks, in Kafka's order, then `Storage.create_topic`.

Each topic is answered on its own, with Kafka's messages: a name given twice
(INVALID_REQUEST, answered once), a name Kafka refuses, a topic that exists, configs
`topic_configs` refuses, a partition count or replication factor out of range, a manual
assignment that names another broker. How Pulsar replicates is its namespace's
policy, so any positive replication factor is accepted; a created topic reports the
replicas Metadata shows, this process: 1. Manual assignments are Kafka's: with both
counts -1, one replica list [this node] per partition 0..n-1. `validate_only` checks
everything and creates nothing; `timeout_ms` bounds the call (a topic not created by
then answers REQUEST_TIMED_OUT, and its creation goes on).

A created topic's configs (v5+) are what DescribeConfigs would show; a validated one
answers none.
"""

from __future__ import annotations

import datetime

from kop_fast.protocol.build import has_field, make, sibling
from kop_fast.protocol.errors import ErrorCode, KafkaError
from kop_fast.server import topic_configs
from kop_fast.server.registry import api
from kop_fast.server.topics import answer_each, assignment_error, kafka_name_error
from kop_fast.storage.api import TopicExists

API_KEY = 19
_ZERO = datetime.timedelta(0)
#: The replicas of each partition as Metadata shows them: this process.
REPLICATION_FACTOR = 1


def _configs(node, topic) -> dict[str, str]:
    configs = {c.name: c.value for c in topic.configs}
    message = topic_configs.check_topic_configs(configs, storage=node.storage)
    if message:
        raise KafkaError(ErrorCode.invalid_config, message)
    return configs


def _described_configs(config_cls, node, info) -> tuple:
    """The created topic's configs as DescribeConfigs gives them (a sensitive value hidden)."""
    return tuple(make(config_cls, name=name, value=None if sensitive else value, read_only=read_only,
                      config_source=source, is_sensitive=sensitive)
                 for name, value, read_only, source, sensitive in topic_configs.describe_topic_configs(node, info))


def _manual_partitions(node, topic) -> int:
    if topic.replication_factor != -1:
        raise KafkaError(ErrorCode.invalid_request, "A manual partition assignment was specified, "
                                                    "but replication factor was not set to -1.")
    if topic.num_partitions != -1:
        raise KafkaError(ErrorCode.invalid_request, "A manual partition assignment was specified, "
                                                    "but numPartitions was not set to -1.")
    indexes: set[int] = set()
    for assignment in topic.assignments:
        if assignment.partition_index in indexes:
            raise KafkaError(ErrorCode.invalid_replica_assignment, "Found multiple manual partition "
                                                                   f"assignments for partition {assignment.partition_index}")
        indexes.add(assignment.partition_index)
        message = assignment_error(node.node_id, assignment.broker_ids)
        if message:
            raise KafkaError(ErrorCode.invalid_replica_assignment, message)
    if indexes != set(range(len(indexes))):
        raise KafkaError(ErrorCode.invalid_replica_assignment,
                         "partitions should be a consecutive 0-based integer sequence")
    return len(indexes)


def _partitions(node, topic) -> int:
    """How many partitions the topic gets; raises KafkaError when Kafka would refuse it."""
    if topic.assignments:
        return _manual_partitions(node, topic)
    if topic.replication_factor == 0 or topic.replication_factor < -1:
        raise KafkaError(ErrorCode.invalid_replication_factor,
                         "Replication factor must be larger than 0, or -1 to use the default value.")
    if topic.num_partitions == 0 or topic.num_partitions < -1:
        raise KafkaError(ErrorCode.invalid_partitions, "Number of partitions was set to an invalid non-positive value.")
    return node.settings.default_num_partitions if topic.num_partitions == -1 else topic.num_partitions


async def _create(node, topic, validate_only: bool):
    """(partitions, the created topic or None when only validating); raises what refuses it."""
    existing = await node.storage.describe_topic(topic.name)
    if existing is not None:
        raise TopicExists(existing)
    configs = _configs(node, topic)
    partitions = _partitions(node, topic)
    if validate_only:
        return partitions, None
    return partitions, await node.storage.create_topic(topic.name, partitions, configs)


def _result(schema, node, name: str, error: ErrorCode, message: str | None, outcome):
    partitions, info = outcome if error == ErrorCode.none else (-1, None)
    result_cls = sibling(schema, "CreatableTopicResult")
    configs = ()
    if info is not None and has_field(result_cls, "configs"):  # v5+
        configs = _described_configs(sibling(schema, "CreatableTopicConfigs"), node, info)
    return make(result_cls, name=name,
                topic_id=info.topic_id if info is not None else None, error_code=error, error_message=message,
                topic_config_error_code=0, num_partitions=partitions,
                replication_factor=REPLICATION_FACTOR if partitions > 0 else -1, configs=configs)


def _name_refusal(topic) -> tuple[ErrorCode, str] | None:
    message = kafka_name_error(topic.name)
    return None if message is None else (ErrorCode.invalid_topic_exception, message)


@api(API_KEY, 2, 7)
async def handle_create_topics(ctx, request):
    node = ctx.node
    schema = ctx.response_schema
    answers = await answer_each(request.timeout, [(topic.name, topic) for topic in request.topics],
                                lambda topic: _create(node, topic, request.validate_only), _name_refusal)
    return make(schema, throttle_time=_ZERO,
                topics=tuple(_result(schema, node, name, *answer) for name, answer in answers.items()))
