"""`MemoryStorage`: the storage interface in memory, a test double for fast handler tests.

Not a product storage (the product stores in Pulsar): nothing survives the
process, and it never drops data to save memory. It follows the interface's
contract the way the Pulsar storage does, so handlers tested against it meet the
same behaviour: batches are opaque bytes, offsets are consecutive (0, 1, 2, ...)
from the first record, a fetch inside a batch returns that whole batch, and the
offsets log has one owner at a time.

Several `MemoryStorage`s built on one `MemoryEngine` act like proxies in front
of one engine: they share topics, partitions, offsets logs and their owners.
`fail_appends` makes every append fail with a given StorageError (for the error
mapping tests).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from types import MappingProxyType
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from kop_fast import codec
from kop_fast.storage.memory_cluster import MemoryClusterChannel, MemoryClusterLog
from kop_fast.storage.api import (
    NO_CONFIGS,
    InvalidPartitions,
    InvalidTopicName,
    StorageError,
    StorageErrorKind,
    StorageStats,
    TopicExists,
    TopicInfo,
    UnknownTopic,
)

# A Kafka name, or one inside a SASL tenant's namespace (`tenant/ns/name`, server/tenancy.py), as Pulsar takes it.
_LEGAL_NAME = re.compile(r"^(?:[A-Za-z0-9._-]+/[A-Za-z0-9._-]+/)?[A-Za-z0-9._-]{1,249}$")


class MemoryPartitionLog:
    def __init__(self, name: str) -> None:
        self.name = name
        self._bases: list[int] = []
        self._batches: list[tuple[int, int, bytes]] = []  # (base offset, record count, batch as sent)
        self.log_start = 0
        self._end = 0
        self._waiters: list[asyncio.Future] = []
        self.fail_appends: StorageError | None = None

    @property
    def high_watermark(self) -> int | None:
        return self._end

    def append_batch(self, batch, record_count: int) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        if self.fail_appends is not None:
            fut.set_exception(self.fail_appends)
            return fut
        base = self._end
        self._bases.append(base)
        self._batches.append((base, record_count, bytes(batch)))
        self._end = base + record_count
        fut.set_result(base)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        return fut

    async def bounds(self, refresh: bool = False) -> tuple[int, int]:
        return self.log_start, self._end

    async def earliest_offset(self) -> int:
        return self.log_start

    def _records(self, i: int) -> list:
        base, _count, data = self._batches[i]
        patched = bytearray(data)
        codec.patch_base_offset(patched, base)
        return codec.decode_batches(bytes(patched))[0].records

    async def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        for i in range(len(self._batches)):
            for record in self._records(i):
                if record.offset >= self.log_start and record.timestamp >= timestamp:
                    return record.offset, record.timestamp
        return None

    async def last_record(self) -> tuple[int, int] | None:
        if not self._batches:
            return None
        record = self._records(len(self._batches) - 1)[-1]
        return record.offset, record.timestamp

    async def open_fetch(self, offset: int) -> "MemoryFetchCursor":
        return MemoryFetchCursor(self, offset)

    async def delete_records(self, before: int) -> int:
        self.log_start = max(self.log_start, min(before, self._end))
        return self.log_start

    async def recent_producer_batches(self, max_entries: int = 1000) -> list[tuple[int, int, int, int, int]]:
        result = []
        for base, _count, data in self._batches[-max_entries:] if max_entries > 0 else ():
            # A batch here is one stored entry, as sent (exactly one v2 batch: Produce checked).
            info = codec.batch_infos(data)[0]
            count, producer_id, epoch, first = info[4], info[8], info[9], info[10]
            if producer_id >= 0:
                result.append((producer_id, epoch, first, (first + count - 1) % (1 << 31), base))
        return result

    def batches_from(self, offset: int):
        """(base, count, data) of the batch holding `offset` and every later one."""
        first = max(bisect_right(self._bases, offset) - 1, 0)
        return self._batches[first:]

    def waiter(self) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self._waiters = [w for w in self._waiters if not w.done()]
        self._waiters.append(fut)
        return fut


class MemoryFetchCursor:
    def __init__(self, partition: MemoryPartitionLog, offset: int) -> None:
        self.offset = offset
        self._partition = partition

    def take(self, max_bytes: int) -> tuple[list, int]:
        parts: list = []
        size = 0
        for base, count, data in self._partition.batches_from(self.offset):
            if base + count <= self.offset:
                continue
            if parts and size + len(data) > max_bytes:
                break
            # The stored base offset is the producer's; the real one goes out in its place.
            parts += (base.to_bytes(8, "big", signed=True), memoryview(data)[8:])
            size += len(data)
            self.offset = base + count
        return parts, size

    def wait(self) -> list[asyncio.Future]:
        return [self._partition.waiter()]

    def release(self) -> None:
        pass


class MemoryOffsetsLog:
    def __init__(self, engine: "MemoryEngine", index: int, owner: object) -> None:
        self.name = f"__consumer_offsets-partition-{index}"
        self._engine = engine
        self._index = index
        self._owner = owner

    async def acquire_and_replay(self) -> list[tuple[bytes, bytes | None]]:
        holder = self._engine.owners.get(self._index)
        if holder is not None and holder is not self._owner:
            raise StorageError(f"{self.name} is owned by another process", StorageErrorKind.UNAVAILABLE)
        self._engine.owners[self._index] = self._owner
        return list(self._engine.offsets.setdefault(self._index, []))

    def owned(self) -> bool:
        return self._engine.owners.get(self._index) is self._owner

    def append(self, records: Sequence[tuple[bytes, bytes | None]]) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        if not self.owned():
            fut.set_exception(StorageError(f"{self.name} is not owned", StorageErrorKind.UNAVAILABLE))
        else:
            self._engine.offsets.setdefault(self._index, []).extend(records)
            fut.set_result(None)
        return fut

    async def release(self) -> None:
        if self.owned():
            del self._engine.owners[self._index]


@dataclass
class MemoryTopic:
    partitions: int
    topic_id: uuid.UUID = field(default_factory=uuid.uuid4)
    configs: dict[str, str] = field(default_factory=dict)


class MemoryEngine:
    """What several MemoryStorages share, as several proxies share one Pulsar."""

    def __init__(self) -> None:
        self.topics: dict[str, MemoryTopic] = {}
        self.partitions: dict[tuple[uuid.UUID, int], MemoryPartitionLog] = {}
        self.offsets: dict[int, list[tuple[bytes, bytes | None]]] = {}
        self.owners: dict[int, object] = {}
        #: (group, topic, partition) -> the last committed offset mirrored
        self.mirrored: dict[tuple[str, str, int], int] = {}
        self.cluster_id: str | None = None
        self.cluster_channels: dict[str, MemoryClusterChannel] = {}


class MemoryStorage:
    def __init__(self, engine: MemoryEngine | None = None) -> None:
        self.engine = engine if engine is not None else MemoryEngine()
        # (role, topic name, action) that the engine refuses: Pulsar's authorization, for handler tests.
        self.refused: set[tuple[str, str, str]] = set()
        self.access_questions = 0

    def known_access(self, role: str, token: str | None, topic: TopicInfo, action: str) -> bool | None:
        return None if self.refused else True  # with refusals configured, every answer is asked for

    async def check_access(self, role: str, token: str | None, topic: TopicInfo, action: str) -> bool:
        self.access_questions += 1
        return (role, topic.name, action) not in self.refused

    async def start(self) -> None:
        pass

    async def probe(self) -> None:
        pass

    async def close(self) -> None:
        for index, owner in list(self.engine.owners.items()):
            if owner is self:
                del self.engine.owners[index]

    @staticmethod
    def _check(name: str) -> None:
        if not _LEGAL_NAME.match(name) or name in (".", ".."):
            raise InvalidTopicName(f"topic name {name!r} is not a legal Kafka topic name")

    def _info(self, name: str) -> TopicInfo | None:
        topic = self.engine.topics.get(name)
        return None if topic is None else TopicInfo(name, topic.partitions, f"memory:{name}", topic.topic_id)

    def _current(self, info: TopicInfo) -> MemoryTopic:
        topic = self.engine.topics.get(info.name)
        if topic is None or topic.topic_id != info.topic_id:
            raise UnknownTopic(f"topic {info.name} does not exist")
        return topic

    def cached_topic(self, name: str) -> TopicInfo | None:
        return self._info(name)

    async def describe_topic(self, name: str) -> TopicInfo | None:
        self._check(name)
        return self._info(name)

    async def create_topic(self, name: str, partitions: int, configs: Mapping[str, str] | None = None) -> TopicInfo:
        self._check(name)
        existing = self._info(name)
        if existing is not None:
            raise TopicExists(existing)
        self.engine.topics[name] = MemoryTopic(partitions, configs=dict(configs or {}))
        return self._info(name)

    async def delete_topic(self, topic: TopicInfo) -> None:
        self._current(topic)
        del self.engine.topics[topic.name]
        for key in [k for k in self.engine.partitions if k[0] == topic.topic_id]:
            del self.engine.partitions[key]

    async def grow_topic(self, topic: TopicInfo, partitions: int) -> TopicInfo:
        current = self._current(topic)
        if partitions <= current.partitions:
            raise InvalidPartitions(f"topic {topic.name} has {current.partitions} partitions already")
        current.partitions = partitions
        return self._info(topic.name)

    applies_retention_bytes = False

    def topic_configs(self, topic: TopicInfo) -> Mapping[str, str]:
        current = self.engine.topics.get(topic.name)
        if current is None or current.topic_id != topic.topic_id:
            return NO_CONFIGS
        return MappingProxyType(current.configs)

    async def set_topic_configs(self, topic: TopicInfo, configs: Mapping[str, str]) -> None:
        self._current(topic).configs = dict(configs)

    async def list_topics(self, scope: str | None = None) -> list[TopicInfo]:
        return [self._info(name) for name in sorted(self.engine.topics)]

    async def cluster_id(self, proposed: str) -> str:
        if self.engine.cluster_id is None:
            self.engine.cluster_id = proposed
        return self.engine.cluster_id

    def resources(self) -> dict[str, int]:
        return {"partition_logs": len(self.engine.partitions)}

    def stats(self) -> StorageStats:
        """Appends are stored at once, nothing is cached apart from the data, no broker runs."""
        return StorageStats()

    def partition_name(self, topic: TopicInfo, index: int) -> str:
        return f"{topic.name}-{index}"

    def partition_log(self, topic: TopicInfo, index: int) -> MemoryPartitionLog:
        key = (topic.topic_id, index)
        partition = self.engine.partitions.get(key)
        if partition is None:
            partition = self.engine.partitions[key] = MemoryPartitionLog(self.partition_name(topic, index))
        return partition

    def offsets_log(self, index: int) -> MemoryOffsetsLog:
        return MemoryOffsetsLog(self.engine, index, self)

    def cluster_log(self, cluster_id: str) -> MemoryClusterLog:
        channel = self.engine.cluster_channels.setdefault(cluster_id, MemoryClusterChannel())
        return MemoryClusterLog(channel)

    def mirror_commit(self, group_id: str, topic: TopicInfo, partition: int, offset: int) -> None:
        self.engine.mirrored[(group_id, topic.name, partition)] = offset
