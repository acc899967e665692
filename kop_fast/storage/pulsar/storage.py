"""The Pulsar backend: every use of pulsar-client lives here.

One `_pulsar.Client` per process; completions come back through the
CompletionBridge. Topic layouts come from the TopicRegistry system topic, or,
for topics Pulsar applications created, from Pulsar itself.
"""

from __future__ import annotations

import asyncio
import logging
import time

import _pulsar
import pulsar

from kop_fast.backend.base import TopicExists, TopicInfo
from kop_fast.backend.bridge import CompletionBridge, PulsarError, close_quietly, has_message_available, client_logger
from kop_fast.backend.entry_cache import CacheBudget
from kop_fast.backend.naming import partition_topic, split_partition_topic
from kop_fast.backend.partition import PartitionLog
from kop_fast.backend.pulsar_admin import PulsarAdmin
from kop_fast.backend.topic_registry import TopicRegistry
from kop_fast.config import Settings

log = logging.getLogger("kop_fast.pulsar")

# How long the answer "this Pulsar topic has no data / does not exist" is trusted.
NATIVE_PROBE_TTL_S = 5.0


class PulsarBackend:
    def __init__(self, settings: Settings, service_url: str) -> None:
        self.settings = settings
        self.service_url = service_url
        self.client: _pulsar.Client | None = None
        self._client_wrapper: pulsar.Client | None = None
        self.bridge: CompletionBridge | None = None
        self.topics: TopicRegistry | None = None
        self._native_probe: dict[str, tuple[float, TopicInfo | None]] = {}
        self._partitions: dict[str, PartitionLog] = {}
        # With an admin URL, Pulsar's own partitioned-topic metadata is the truth.
        self.admin = PulsarAdmin(settings.pulsar_admin_url) if settings.pulsar_admin_url else None
        self._admin_topics: dict[str, TopicInfo] = {}
        self._sweeper: asyncio.Task | None = None
        self.cache_budget = CacheBudget(settings.read_cache_mb * 1024 * 1024)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.bridge = CompletionBridge(loop)
        self._client_wrapper = pulsar.Client(
            self.service_url,
            # pulsar-lite reports many failures by dropping the connection; the client
            # then retries until this timeout. Keep it short enough to answer clients.
            operation_timeout_seconds=10,
            connection_timeout_ms=10000,
            logger=client_logger(),
        )
        self.client = self._client_wrapper._client
        registry_topic = f"persistent://{self.settings.system_namespace}/__kop_fast_topics"
        self.topics = TopicRegistry(self.client, self.bridge, registry_topic)
        try:
            await asyncio.wait_for(self.topics.start(), 30)
        except asyncio.TimeoutError:
            raise PulsarError(None, f"Pulsar at {self.service_url} did not answer within 30 s") from None
        self._sweeper = asyncio.create_task(self._sweep_idle_readers(), name="reader-sweeper")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        # Concurrently: each reader thread takes up to one read timeout to notice.
        await asyncio.gather(*(log_.close() for log_ in self._partitions.values()), return_exceptions=True)
        self._partitions.clear()
        if self.topics is not None:
            await self.topics.close()
        if self.client is not None:
            await close_quietly(self.bridge, self.client)
            self.client = None

    # -- partitions -----------------------------------------------------------------------------
    def partition(self, info: TopicInfo, index: int) -> PartitionLog:
        name = partition_topic(info.pulsar_topic, index, info.partitioned)
        log_ = self._partitions.get(name)
        if log_ is None:
            log_ = PartitionLog(self.client, self.bridge, name, self.settings.entry_format, self.cache_budget)
            self._partitions[name] = log_
        return log_

    async def _sweep_idle_readers(self) -> None:
        while True:
            await asyncio.sleep(10)
            now = time.monotonic()
            for log_ in list(self._partitions.values()):
                try:
                    await log_.close_idle_readers(now)
                except Exception:
                    log.exception("closing idle readers of %s failed", log_.topic)

    def cached_topic(self, pulsar_topic: str) -> TopicInfo | None:
        """The layout when it is known without asking Pulsar (the hot path of Produce and Fetch)."""
        info = self.topics.get(pulsar_topic) or self._admin_topics.get(pulsar_topic)
        if info is not None:
            return info
        cached = self._native_probe.get(pulsar_topic)
        if cached is not None and cached[1] is not None:
            return cached[1]
        return None

    # -- topics -------------------------------------------------------------------------------
    async def describe_topic(self, pulsar_topic: str) -> TopicInfo | None:
        info = self.topics.get(pulsar_topic) or self._admin_topics.get(pulsar_topic)
        if info is not None:
            return info
        if self.admin is not None:
            count = await self.admin.partitions(pulsar_topic)
            if count > 0:
                info = self._admin_topics[pulsar_topic] = TopicInfo(pulsar_topic, count, True)
                return info
        return await self._probe_native(pulsar_topic)

    async def create_topic(self, pulsar_topic: str, partitions: int) -> TopicInfo:
        native = await self._probe_native(pulsar_topic)
        if native is not None:
            raise TopicExists(native)
        if self.admin is not None:
            created = await self.admin.create_partitioned(pulsar_topic, partitions)
            info = TopicInfo(pulsar_topic, await self.admin.partitions(pulsar_topic) or partitions, True)
            self._admin_topics[pulsar_topic] = info
            if not created:
                raise TopicExists(info)
            return info
        info = await self.topics.create(pulsar_topic, partitions)
        self._native_probe.pop(pulsar_topic, None)
        return info

    def known_topics(self, tenant: str, namespace: str) -> list[TopicInfo]:
        prefix = f"persistent://{tenant}/{namespace}/"
        merged = {i.pulsar_topic: i for i in self.topics.all()}
        merged.update(self._admin_topics)
        return [i for name, i in merged.items() if name.startswith(prefix)]

    async def refresh_admin_topics(self, tenant: str, namespace: str) -> None:
        """Learn the partitioned topics Pulsar knows in a namespace (for Metadata of all topics)."""
        if self.admin is None:
            return
        for name in await self.admin.partitioned_topics(tenant, namespace):
            if name not in self._admin_topics:
                count = await self.admin.partitions(name)
                if count > 0:
                    self._admin_topics[name] = TopicInfo(name, count, True)

    async def _probe_native(self, pulsar_topic: str) -> TopicInfo | None:
        """A topic Pulsar applications made: partitioned per Pulsar, or plain with at least one message."""
        now = time.monotonic()
        cached = self._native_probe.get(pulsar_topic)
        if cached is not None and now - cached[0] < NATIVE_PROBE_TTL_S:
            return cached[1]
        info = None
        base, index = split_partition_topic(pulsar_topic)
        if index is None:
            fut, cb = self.bridge.result_future()
            self.client.get_topic_partitions_async(pulsar_topic, cb)
            partitions = await fut
            if len(partitions) > 1 or (partitions and partitions[0] != pulsar_topic):
                info = TopicInfo(pulsar_topic, len(partitions), True)
            elif await self._has_data(pulsar_topic):
                info = TopicInfo(pulsar_topic, 1, False)
        self._native_probe[pulsar_topic] = (now, info)
        return info

    async def _has_data(self, topic: str) -> bool:
        conf = _pulsar.ReaderConfiguration()
        conf.receiver_queue_size(1)
        fut, cb = self.bridge.value_future()
        self.client.create_reader_async_v2(topic, _pulsar.MessageId.earliest, conf, cb)
        reader = await fut
        try:
            return await has_message_available(self.bridge, reader)
        finally:
            await close_quietly(self.bridge, reader)
