"""Kafka topic names <-> Pulsar topic names (pure functions).

Kafka topic `t` lives in `persistent://{tenant}/{namespace}/t`; its partition
`i` is `persistent://{tenant}/{namespace}/t-partition-{i}`, which is exactly how
Pulsar names the partitions of a partitioned topic, so Pulsar applications see
one partitioned topic `t`. A name that is already a full Pulsar name
(`persistent://tenant/ns/topic`) or `tenant/ns/topic` addresses that topic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kop_fast.storage.api import InvalidTopicName

_KAFKA_LEGAL = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_PULSAR_SHORT = re.compile(r"^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+/[A-Za-z0-9._\-:=%]+$")
_PULSAR_FULL = re.compile(r"^(persistent|non-persistent)://[A-Za-z0-9._-]+/[A-Za-z0-9._-]+/[A-Za-z0-9._\-:=%]+$")
PARTITION_SUFFIX = "-partition-"


@dataclass(frozen=True, slots=True)
class TopicNaming:
    tenant: str = "public"
    namespace: str = "default"

    def pulsar_topic(self, kafka_name: str) -> str:
        """Full Pulsar name of the (partitioned) topic a Kafka client calls `kafka_name`."""
        if _KAFKA_LEGAL.match(kafka_name):
            if kafka_name in (".", ".."):
                raise InvalidTopicName(f"topic name {kafka_name!r} is not allowed")
            return f"persistent://{self.tenant}/{self.namespace}/{kafka_name}"
        if _PULSAR_FULL.match(kafka_name):
            return kafka_name
        if _PULSAR_SHORT.match(kafka_name):
            return "persistent://" + kafka_name
        raise InvalidTopicName(f"topic name {kafka_name!r} is neither a legal Kafka name nor a Pulsar topic name")

    def kafka_name(self, pulsar_topic: str) -> str:
        """The name Kafka clients see for a topic of ours: short inside our namespace, full elsewhere."""
        prefix = f"persistent://{self.tenant}/{self.namespace}/"
        if pulsar_topic.startswith(prefix):
            return pulsar_topic[len(prefix):]
        return pulsar_topic


def partition_topic(pulsar_topic: str, partition: int, partitioned: bool = True) -> str:
    """The Pulsar topic holding one Kafka partition (a non-partitioned topic is its own partition 0)."""
    if not partitioned:
        return pulsar_topic
    return f"{pulsar_topic}{PARTITION_SUFFIX}{partition}"


def split_partition_topic(name: str) -> tuple[str, int | None]:
    """`x-partition-3` -> (`x`, 3); a name without the suffix -> (name, None)."""
    base, sep, index = name.rpartition(PARTITION_SUFFIX)
    if sep and index.isdigit():
        return base, int(index)
    return name, None
