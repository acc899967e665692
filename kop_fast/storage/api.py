"""What the server needs from a storage backend (modelled on Tansu's storage trait).

Handlers talk to this interface only; `kop_fast.backend.pulsar` implements it
on Apache Pulsar. Record batches cross it as opaque bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class TopicInfo:
    pulsar_topic: str  # full Pulsar name of the (partitioned) topic
    partitions: int
    # False for a plain, non-partitioned Pulsar topic, shown to Kafka as partition 0.
    partitioned: bool = True


class TopicExists(Exception):
    def __init__(self, info: TopicInfo) -> None:
        super().__init__(f"topic {info.pulsar_topic} already exists with {info.partitions} partitions")
        self.info = info


class Backend(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def describe_topic(self, pulsar_topic: str) -> TopicInfo | None:
        """The topic's partition layout, or None when it does not exist."""

    async def create_topic(self, pulsar_topic: str, partitions: int) -> TopicInfo:
        """Create the topic; raises TopicExists (with the existing layout) when it exists."""

    def known_topics(self, tenant: str, namespace: str) -> list[TopicInfo]:
        """Every topic this backend knows of in that namespace."""
