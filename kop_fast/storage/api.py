"""The storage interface: all that `kop_fast.server` knows about where Kafka data lives.

Modelled on Tansu's `Storage` trait. The server (connections, handlers, the group
coordinator's driver) holds a `Storage` and nothing else of the engine:
`kop_fast.storage.pulsar` implements it on Apache Pulsar (the product), and
`kop_fast.storage.memory` in memory (a test double for fast handler tests).
Only the composition root (`kop_fast.app`) picks an implementation.

Record batches cross this interface as opaque bytes: Produce hands a verified
Kafka v2 batch to `PartitionLog.append_batch`, and a `FetchCursor` hands back
buffers that, concatenated, are Kafka record batches with their real base
offsets. Offsets are the engine's to assign; the server only compares them.

Failures are `StorageError`s whose `kind` says what a client can do about them;
`kop_fast.server.storage_errors` turns kinds into Kafka error codes, in one place.
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping, Protocol, Sequence


# -- errors ------------------------------------------------------------------------------------
class StorageErrorKind(enum.Enum):
    #: The engine (or this partition's part of it) cannot be reached now; a retry after a
    #: metadata refresh may succeed.
    UNAVAILABLE = "unavailable"
    #: The engine did not answer in time; the outcome is unknown.
    TIMED_OUT = "timed out"
    #: The data is larger than the engine accepts.
    TOO_LARGE = "too large"
    #: Anything else: the engine refused or failed.
    FAILED = "failed"


class StorageError(Exception):
    """A storage operation failed; `kind` tells the server how to answer the client."""

    def __init__(self, message: str = "", kind: StorageErrorKind = StorageErrorKind.FAILED) -> None:
        super().__init__(message or kind.value)
        self.kind = kind


class InvalidTopicName(StorageError, ValueError):
    """The name is neither a legal Kafka topic name nor a full name of the engine."""


class TopicExists(StorageError):
    def __init__(self, info: "TopicInfo") -> None:
        super().__init__(f"topic {info.name} already exists with {info.partitions} partitions")
        self.info = info


class UnknownTopic(StorageError):
    """The topic does not exist (any more): deleted, or never made."""


class InvalidPartitions(StorageError):
    """A partition count the topic cannot take (partitions only grow)."""


# -- topics ------------------------------------------------------------------------------------
#: The overrides of a topic that has none (shared: `topic_configs` runs for every Produce).
NO_CONFIGS: Mapping[str, str] = MappingProxyType({})

@dataclass(frozen=True, slots=True)
class TopicInfo:
    #: The name Kafka clients see (short inside the configured namespace).
    name: str
    partitions: int
    #: The engine's own, stable name of the topic (Pulsar: `persistent://tenant/ns/name`).
    storage_name: str
    #: Kafka's topic id: the same on every proxy, a new one for each incarnation of a name.
    topic_id: uuid.UUID
    #: False when the engine keeps the topic as one log (a plain Pulsar topic), shown as partition 0.
    partitioned: bool = True


# -- partitions --------------------------------------------------------------------------------
class FetchCursor(Protocol):
    """One fetch's hold on one partition, from `offset` on; released when the fetch answers."""

    #: The next offset this cursor returns data from (after a take: after what it returned).
    offset: int

    def take(self, max_bytes: int) -> tuple[list, int]:
        """What is ready now, at or after `offset`: (buffers, total size). At most `max_bytes`,
        but at least one whole batch when any is ready. Raises StorageError."""

    def wait(self) -> list[asyncio.Future]:
        """Futures of which one resolves when `take` may have more (the fetch cancels the rest)."""

    def release(self) -> None:
        """The fetch is answered: what the cursor holds may serve the next fetch."""


class PartitionLog(Protocol):
    """One Kafka partition."""

    #: The engine's name for this partition (logs; the idempotent-producer table's key).
    name: str

    @property
    def high_watermark(self) -> int | None:
        """The end as last seen by this process (no I/O); None before it is known."""

    def append_batch(self, batch: bytes | memoryview, record_count: int) -> asyncio.Future:
        """Store one verified Kafka v2 batch; the future gives its base offset once durable.

        A plain function, not a coroutine: batches are stored in the order of the calls
        (a pipelining idempotent producer relies on that)."""

    async def bounds(self, refresh: bool = False) -> tuple[int, int]:
        """(log start offset, high watermark); `refresh` asks the engine again (other
        processes append), otherwise what this process knows may answer."""

    async def earliest_offset(self) -> int:
        """The log start, for ListOffsets EARLIEST."""

    async def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record with a timestamp >= `timestamp`."""

    async def last_record(self) -> tuple[int, int] | None:
        """(offset, timestamp) of the last record."""

    async def open_fetch(self, offset: int) -> FetchCursor:
        """A cursor at `offset` (within the bounds); a fetch inside a gap between stored
        batches starts at the next record."""

    async def delete_records(self, before: int) -> int:
        """Move the log start to `before` (at most the high watermark: clamped there), on
        every proxy; records below it are never returned again. Returns the new log start."""

    async def recent_producer_batches(self, max_entries: int = 1000) -> list[tuple[int, int, int, int, int]]:
        """(producer id, producer epoch, first sequence, last sequence, base offset) of every
        batch of an idempotent producer (id >= 0) among the last `max_entries` stored
        entries, in log order: what a process taking the partition over rebuilds the
        idempotent-producer table from (`ProducerStateTable.restore`). The last sequence
        is first + record count - 1 modulo 2**31; the base offset is the one the batch's
        `append_batch` future gave. Empty when the engine keeps no producer ids. Raises
        StorageError (TIMED_OUT when the engine stops delivering)."""


# -- the group coordinator's log ---------------------------------------------------------------
class OffsetsLog(Protocol):
    """One partition of the coordinator's `__consumer_offsets` log: one owner at a time."""

    name: str

    async def acquire_and_replay(self) -> list[tuple[bytes, bytes | None]]:
        """Become the owner and return every (key, value) record in log order (value None =
        tombstone). Raises StorageError (another process owns it) or asyncio.TimeoutError;
        nothing is held after a failure."""

    def owned(self) -> bool:
        """False once the engine says ownership may be gone (the caller then stops using it)."""

    def append(self, records: Sequence[tuple[bytes, bytes | None]]) -> asyncio.Future:
        """Append after everything appended before; resolves once all are durable."""

    async def release(self) -> None:
        """Stop owning (hands the partition to the next process)."""


# -- cluster membership ------------------------------------------------------------------------
class ClusterLog(Protocol):
    """What several proxies of one Kafka cluster share to agree on who is alive
    (`kop_fast.cluster.view`): an ordered log of membership changes, and heartbeats."""

    async def start(self, on_change: Callable[[dict], None], on_heartbeat: Callable[[dict], None]) -> None:
        """Replay every change written so far into `on_change` (in log order) before
        returning, then keep following; heartbeats written from now on go to `on_heartbeat`."""

    async def append_change(self, change: dict) -> None:
        """Persist a change; on return this process has applied it (and all before it)."""

    async def publish_heartbeat(self, heartbeat: dict) -> None:
        """Persist a heartbeat; raises StorageError when the engine did not take it in time."""

    async def close(self) -> None: ...


# -- the whole engine --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StorageStats:
    """What the engine side of this process is doing, read when metrics are scraped (no I/O).
    An engine that has no such thing answers 0 (and None for the embedded broker)."""

    #: Appends handed to the engine's client and not acknowledged yet (Pulsar: messages in
    #: pulsar-client, one per stored Kafka batch with the kafka entry format, one per record
    #: with pulsar), over the partition logs.
    sends_pending: int = 0
    #: Appends waiting in this process, in order, before they are handed over (Pulsar: no
    #: producer yet, no room in pulsar-client, or the next offset being learned).
    appends_waiting: int = 0
    #: Entries and bytes of stored batches kept in memory for fetches (the entry cache).
    cache_entries: int = 0
    cache_bytes: int = 0
    #: Partition reads of fetches (cursor takes that returned data) answered from that
    #: cache, and answered by the engine; both only grow.
    cache_hits: int = 0
    cache_misses: int = 0
    #: Whether the broker this process runs itself is up; None when it runs none (an
    #: external engine, or none at all).
    embedded_up: bool | None = None
    #: Times that broker was restarted after it died on its own (only grows).
    embedded_restarts: int = 0


class Storage(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def probe(self) -> None:
        """A cheap round trip to the engine (readiness); raises StorageError when it does not
        answer. The caller bounds the wait."""

    def cached_topic(self, name: str) -> TopicInfo | None:
        """The layout when this process knows it without I/O (the Produce/Fetch fast path)."""

    async def describe_topic(self, name: str) -> TopicInfo | None:
        """The layout of the topic a Kafka client names, or None when it does not exist.
        Raises InvalidTopicName."""

    async def create_topic(self, name: str, partitions: int, configs: Mapping[str, str] | None = None) -> TopicInfo:
        """Create it with these config overrides; raises TopicExists (with the existing
        layout) or InvalidTopicName. Durable, and seen by every proxy, on return."""

    async def delete_topic(self, topic: TopicInfo) -> None:
        """Delete this incarnation: it leaves every listing, and a topic made again with the
        same name starts empty (none of these records is ever visible again). Raises UnknownTopic."""

    async def grow_topic(self, topic: TopicInfo, partitions: int) -> TopicInfo:
        """Raise the partition count (new partitions usable at once, everywhere). Raises
        InvalidPartitions when `partitions` is not more than now, UnknownTopic."""

    def topic_configs(self, topic: TopicInfo) -> Mapping[str, str]:
        """The topic's config overrides as this process knows them (no I/O; read-only)."""

    #: Whether `set_topic_configs` applies `retention.bytes` in the engine (Pulsar: only
    #: through the admin API); the server refuses a size limit nobody would enforce.
    applies_retention_bytes: bool

    async def set_topic_configs(self, topic: TopicInfo, configs: Mapping[str, str]) -> None:
        """Replace the topic's config overrides (durable, seen by every proxy, on return).
        The engine applies what it can (Pulsar: retention through the admin API); what
        a setting means for Kafka clients is the server's business. Raises UnknownTopic."""

    async def list_topics(self, scope: str | None = None) -> list[TopicInfo]:
        """Every topic of the configured namespace (of `scope`, "tenant/namespace", when given:
        a SASL tenant's), sorted by name."""

    async def cluster_id(self, proposed: str) -> str:
        """The Kafka cluster id of every proxy on this engine: kept by the engine, the
        first one proposed wins (so it survives restarts and is the same everywhere)."""

    def resources(self) -> dict[str, int]:
        """What this process holds open in the engine, by kind (metrics; leak checks)."""

    def stats(self) -> StorageStats:
        """Sends pending, the entry cache, the embedded broker (metrics; read at scrape time)."""

    def partition_name(self, topic: TopicInfo, index: int) -> str:
        """The partition's name, unique in the engine: `partition_log(topic, index).name`,
        without opening anything (placement keys)."""

    def partition_log(self, topic: TopicInfo, index: int) -> PartitionLog:
        """Partition `index` (0 <= index < topic.partitions) of the topic."""

    def offsets_log(self, index: int) -> OffsetsLog:
        """Partition `index` of the group coordinator's offsets log (`--offsets-topic`)."""

    def cluster_log(self, cluster_id: str) -> ClusterLog:
        """The membership log of the proxies of one Kafka cluster id."""

    def known_access(self, role: str, token: str | None, topic: TopicInfo, action: str) -> bool | None:
        """May this SASL client (its role and token) `action` ("produce" or "consume") the
        topic, as far as known without I/O: True or False, None when `check_access` must ask
        the engine. Engines that do not authorize clients (the default) answer True."""

    async def check_access(self, role: str, token: str | None, topic: TopicInfo, action: str) -> bool:
        """The same, asking the engine (Pulsar: as the client's role, `--pulsar-authorize-roles`)."""

    def mirror_commit(self, group_id: str, topic: TopicInfo, partition: int, offset: int) -> None:
        """A group's commit is durable: let applications of the engine see it (Pulsar: move
        the subscription named like the group). Never blocks, never fails the commit."""
