"""`PulsarStorage`: the storage interface (`kop_fast.storage.api`) on Apache Pulsar.

One `_pulsar.Client` per process; completions come back through the
CompletionBridge. Topic layouts come from the TopicRegistry system topic, from
Pulsar's admin API when one is configured, or, for topics Pulsar applications
created, from Pulsar itself. The group coordinator's offsets log and the
mirroring of commits to subscriptions use Pulsar clients of their own (see
offsets_log.py and subscription_mirror.py for why).
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import MappingProxyType

import _pulsar
import pulsar

from kop_fast.config import Settings
from kop_fast.storage.api import (
    NO_CONFIGS,
    InvalidPartitions,
    StorageError,
    StorageStats,
    TopicExists,
    TopicInfo,
    UnknownTopic,
)
from kop_fast.storage.pulsar import client_log
from kop_fast.storage.pulsar.admin import PulsarAdmin
from kop_fast.storage.pulsar.bridge import (
    CompletionBridge,
    PulsarError,
    client_logger,
    close_quietly,
    has_message_available,
)
from kop_fast.storage.pulsar.entry_cache import CacheBudget
from kop_fast.storage.pulsar.naming import TopicNaming, partition_topic, split_partition_topic
from kop_fast.storage.pulsar.offsets_log import PulsarOffsetsLog
from kop_fast.storage.pulsar.offsets_consecutive import ConsecutivePartitionLog
from kop_fast.storage.pulsar.partition_log import PulsarPartitionLog
from kop_fast.storage.pulsar.subscription_mirror import SubscriptionMirror
from kop_fast.storage.pulsar.credentials import client_options
from kop_fast.storage.pulsar.role_access import RoleAccess
from kop_fast.storage.pulsar.one_off import OneOffReads
from kop_fast.storage.pulsar.cluster_log import PulsarClusterLog, cluster_topics
from kop_fast.storage.pulsar.topic_registry import TopicRecord, TopicRegistry, legacy_topic_id

log = logging.getLogger("kop_fast.pulsar")

# How long the answer "this Pulsar topic has no data / does not exist" is trusted.
NATIVE_PROBE_TTL_S = 5.0
READER_SWEEP_S = 10.0


class OffsetModeMismatch(RuntimeError):
    """--offset-mode differs from the mode the cluster keeps in Pulsar."""


class PulsarStorage:
    def __init__(self, settings: Settings, service_url: str, embedded=None) -> None:
        """`embedded`: what keeps the embedded pulsar-lite at `service_url` running, when this
        process runs it (`embedded_supervisor.BrokerSupervisor`: `up` and `restarts`)."""
        self.settings = settings
        self.service_url = service_url
        self.embedded = embedded
        self.naming = TopicNaming(settings.kafka_tenant, settings.kafka_namespace)
        self.client_options = client_options(settings.pulsar_auth_token)
        # SASL clients' Produce and Fetch, authorized by Pulsar as their own roles (role_access.py).
        self.role_access: RoleAccess | None = None  # made in start(), with the bridge
        self.client: _pulsar.Client | None = None
        self._client_wrapper: pulsar.Client | None = None
        self.bridge: CompletionBridge | None = None
        self.topics: TopicRegistry | None = None
        self._pulsar_names: dict[str, str] = {}  # Kafka name -> Pulsar topic (the naming regexes run once)
        self._infos: dict[str, TopicInfo] = {}
        self._native_probe: dict[str, tuple[float, TopicInfo | None]] = {}
        self._partitions: dict[tuple, PulsarPartitionLog] = {}  # (topic id, partition topic) -> log
        # With an admin URL, Pulsar's own partitioned-topic metadata is the truth.
        self.admin = PulsarAdmin(settings.pulsar_admin_url) if settings.pulsar_admin_url else None
        self._admin_topics: dict[str, int] = {}  # Pulsar topic -> partitions, per the admin API
        self._sweeper: asyncio.Task | None = None
        self.cache_budget = CacheBudget(settings.read_cache_mb * 1024 * 1024)
        self.mirror: SubscriptionMirror | None = None
        self._mirrored_partitions: dict[str, tuple[TopicInfo, int]] = {}  # partition topic -> (topic, index)
        self._closing: set[asyncio.Future] = set()  # partition logs of deleted topics being closed
        self._log_relay: client_log.ClientLogRelay | None = None
        # The cluster's, from the registry (`start`): "consecutive" or "packed".
        self.offset_mode: str = settings.offset_mode or "consecutive"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.bridge = CompletionBridge(loop)
        if self.settings.pulsar_authorize_roles:
            self.role_access = RoleAccess(self.service_url, self.bridge)
        # Before the first client: pulsar-client keeps the first logger it is given, process-wide.
        log_file = client_log.use_file(self.settings.data_dir)
        if log_file is not None:
            self._log_relay = client_log.ClientLogRelay(log_file)
            self._log_relay.start(loop)
        self._client_wrapper = pulsar.Client(
            self.service_url,
            # pulsar-lite reports many failures by dropping the connection; the client
            # then retries until this timeout. Keep it short enough to answer clients.
            operation_timeout_seconds=10,
            connection_timeout_ms=10000,
            logger=client_logger(),
            **self.client_options,
        )
        self.client = self._client_wrapper._client
        registry_topic = f"persistent://{self.settings.system_namespace}/__kop_fast_topics"
        self.topics = TopicRegistry(self.client, self.bridge, registry_topic)
        self.topics.on_change = self._topic_changed
        self.topics.on_ledger = self._ledger_recorded
        try:
            await asyncio.wait_for(self.topics.start(), 30)
            stored = await asyncio.wait_for(self.topics.claim_offset_mode(self.settings.offset_mode), 30)
        except asyncio.TimeoutError:
            raise PulsarError(None, f"Pulsar at {self.service_url} did not answer within 30 s") from None
        if self.settings.offset_mode is not None and stored != self.settings.offset_mode:
            raise OffsetModeMismatch(
                f"--offset-mode {self.settings.offset_mode} differs from this cluster's offset mode {stored} "
                f"(kept in {registry_topic}); start with --offset-mode {stored}, or leave it out")
        self.offset_mode = stored
        log.info("offset mode %s", stored)
        self._sweeper = asyncio.create_task(self._sweep_idle_readers(), name="reader-sweeper")
        # Opens nothing until a commit is mirrored.
        if stored == "consecutive":
            self.mirror = SubscriptionMirror(self.service_url, loop, translate=self._mirror_position,
                                             client_options=self.client_options)
        else:
            self.mirror = SubscriptionMirror(self.service_url, loop, bounds=self._mirrored_bounds,
                                             client_options=self.client_options)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.role_access is not None:
            await self.role_access.close()
        if self.mirror is not None:
            await self.mirror.close()
        # Concurrently: each reader thread takes up to one read timeout to notice.
        await asyncio.gather(*(p.close() for p in self._partitions.values()), *self._closing,
                             return_exceptions=True)
        self._partitions.clear()
        if self.topics is not None:
            await self.topics.close()
        if self.client is not None:
            await close_quietly(self.bridge, self.client)
            self.client = None
        if self._log_relay is not None:
            self._log_relay.close()
            self._log_relay = None

    async def probe(self) -> None:
        """A partitioned-metadata lookup of the registry topic: one request the broker answers."""
        fut, cb = self.bridge.result_future()
        self.client.get_topic_partitions_async(self.topics.topic, cb)
        await fut

    def resources(self) -> dict[str, int]:
        producers = readers = 0
        for partition in self._partitions.values():
            p, r = partition.handle_counts()
            producers += p
            readers += r
        held = {"partition_logs": len(self._partitions), "producers": producers, "readers": readers}
        if self.role_access is not None:
            held["role_clients"] = self.role_access.open_clients
        return held

    def stats(self) -> StorageStats:
        pending = waiting = 0
        for partition in self._partitions.values():
            p, w = partition.send_counts()
            pending += p
            waiting += w
        budget = self.cache_budget
        embedded = self.embedded
        return StorageStats(
            sends_pending=pending, appends_waiting=waiting,
            cache_entries=budget.entries, cache_bytes=budget.used, cache_hits=budget.hits, cache_misses=budget.misses,
            embedded_up=None if embedded is None else bool(embedded.up),
            embedded_restarts=0 if embedded is None else embedded.restarts)

    # -- partitions -----------------------------------------------------------------------------
    def partition_name(self, topic: TopicInfo, index: int) -> str:
        return partition_topic(topic.storage_name, index, topic.partitioned)

    def partition_log(self, topic: TopicInfo, index: int) -> PulsarPartitionLog:
        name = partition_topic(topic.storage_name, index, topic.partitioned)
        key = (topic.topic_id, name)
        partition = self._partitions.get(key)
        if partition is None:
            record = self.topics.get(topic.storage_name)
            if record is None or record.topic_id != topic.topic_id:
                record = None

            async def truncate(offset: int) -> None:
                if await self.topics.truncate(topic.storage_name, topic.topic_id, index, offset) is None:
                    raise UnknownTopic(f"topic {topic.name} does not exist")

            kwargs = dict(floor=record.floors.get(index) if record else None,
                          log_start_at_least=record.log_starts.get(index, 0) if record else 0,
                          truncate=truncate if record else None)
            if self.offset_mode == "consecutive":
                async def record_ledger(ledger: int, first_entry: int, offset: int, previous) -> None:
                    await self.topics.record_ledger(name, ledger, first_entry, offset, previous)
                partition = ConsecutivePartitionLog(
                    self.client, self.bridge, name, self.settings.entry_format, self.cache_budget,
                    ledgers=self.topics.ledgers.get(name), record_ledger=record_ledger, **kwargs)
            else:
                partition = PulsarPartitionLog(
                    self.client, self.bridge, name, self.settings.entry_format, self.cache_budget, **kwargs)
            self._partitions[key] = partition
        return partition

    def _ledger_recorded(self, partition_topic: str, record) -> None:
        """A ledger start written by a partition's owner (any proxy): into that partition's index."""
        for (_, name), partition in self._partitions.items():
            if name == partition_topic and isinstance(partition, ConsecutivePartitionLog):
                partition.learn_ledger(record)

    def _topic_changed(self, pulsar_topic: str, before: TopicRecord | None, after: TopicRecord | None) -> None:
        """An op of the registry applied (written by any proxy): follow it in the partition logs."""
        self._infos.pop(pulsar_topic, None)
        if before is not None and (after is None or after.topic_id != before.topic_id):
            # Deleted: its partition logs (readers, producer, cached entries) go.
            for key in [k for k in self._partitions if k[0] == before.topic_id]:
                closing = asyncio.ensure_future(self._partitions.pop(key).close())
                self._closing.add(closing)  # held until done, and awaited by close()
                closing.add_done_callback(self._closing.discard)
        elif before is not None and after.log_starts != before.log_starts:
            for index, offset in after.log_starts.items():
                name = partition_topic(pulsar_topic, index)
                partition = self._partitions.get((after.topic_id, name))
                if partition is not None:
                    partition.raise_log_start(offset)

    async def _sweep_idle_readers(self) -> None:
        while True:
            await asyncio.sleep(READER_SWEEP_S)
            now = time.monotonic()
            for partition in list(self._partitions.values()):
                try:
                    await partition.close_idle_readers(now)
                except Exception:
                    log.exception("closing idle readers of %s failed", partition.topic)

    # -- topics -------------------------------------------------------------------------------
    def _pulsar_topic(self, name: str) -> str:
        pulsar_topic = self._pulsar_names.get(name)
        if pulsar_topic is None:
            pulsar_topic = self.naming.pulsar_topic(name)  # raises InvalidTopicName
            if len(self._pulsar_names) < 100_000:
                self._pulsar_names[name] = pulsar_topic
        return pulsar_topic

    def _info(self, pulsar_topic: str, partitions: int, partitioned: bool = True) -> TopicInfo:
        # Kept: Produce and Fetch ask for the layout of their topics on every request.
        info = self._infos.get(pulsar_topic)
        if info is None or info.partitions != partitions or info.partitioned != partitioned:
            record = self.topics.get(pulsar_topic)
            topic_id = record.topic_id if record is not None else legacy_topic_id(pulsar_topic)
            info = TopicInfo(self.naming.kafka_name(pulsar_topic), partitions, pulsar_topic, topic_id, partitioned)
            self._infos[pulsar_topic] = info
        return info

    def _known(self, pulsar_topic: str) -> TopicInfo | None:
        record = self.topics.get(pulsar_topic)
        admin = self._admin_topics.get(pulsar_topic)
        if admin is not None:  # Pulsar's own partition count is the truth
            return self._info(pulsar_topic, admin)
        if record is not None:
            return self._info(pulsar_topic, record.partitions)
        return None

    def cached_topic(self, name: str) -> TopicInfo | None:
        try:
            pulsar_topic = self._pulsar_topic(name)
        except ValueError:
            return None
        info = self._known(pulsar_topic)
        if info is not None:
            return info
        cached = self._native_probe.get(pulsar_topic)
        if cached is not None and cached[1] is not None:
            return cached[1]
        return None

    async def describe_topic(self, name: str) -> TopicInfo | None:
        pulsar_topic = self._pulsar_topic(name)
        # Another proxy may just have created, grown or deleted it: read the registry to its end.
        await self.topics.catch_up()
        info = self._known(pulsar_topic)
        if info is not None:
            return info
        if self.admin is not None:
            count = await self.admin.partitions(pulsar_topic)
            if count > 0:
                self._admin_topics[pulsar_topic] = count
                return self._info(pulsar_topic, count)
        return await self._probe_native(pulsar_topic)

    async def create_topic(self, name: str, partitions: int, configs=None) -> TopicInfo:
        pulsar_topic = self._pulsar_topic(name)
        await self.topics.catch_up()
        existing = self._known(pulsar_topic)
        if existing is not None:
            raise TopicExists(existing)
        native = await self._probe_native(pulsar_topic)
        if native is not None:
            raise TopicExists(native)
        if self.admin is not None:
            if not await self.admin.create_partitioned(pulsar_topic, partitions):
                raise TopicExists(self._info(pulsar_topic, await self.admin.partitions(pulsar_topic) or partitions))
            self._admin_topics[pulsar_topic] = partitions
        record, created = await self.topics.create(pulsar_topic, partitions, configs,
                                                   await self._floors(pulsar_topic, partitions))
        self._native_probe.pop(pulsar_topic, None)
        info = self._info(pulsar_topic, self._admin_topics.get(pulsar_topic, record.partitions))
        if not created:
            raise TopicExists(info)
        if configs and self.admin is not None:
            await self.admin.set_retention(pulsar_topic, configs)
        return info

    async def _floors(self, pulsar_topic: str, partitions: int) -> dict[int, tuple[int, int]]:
        """The last entries earlier incarnations of the name left in its partitions' Pulsar
        topics (only names deleted before have any)."""
        count = max(self.topics.deleted.get(pulsar_topic, 0), partitions) if pulsar_topic in self.topics.deleted else 0
        names = [partition_topic(pulsar_topic, i) for i in range(count)]
        lasts = await asyncio.gather(*(OneOffReads(self.client, self.bridge, n).last_entry() for n in names))
        return {i: last for i, last in enumerate(lasts) if last is not None}

    def _current(self, topic: TopicInfo) -> TopicRecord:
        record = self.topics.get(topic.storage_name)
        if record is None or record.topic_id != topic.topic_id:
            raise UnknownTopic(f"topic {topic.name} does not exist")
        return record

    async def delete_topic(self, topic: TopicInfo) -> None:
        pulsar_topic = topic.storage_name
        if self.topics.get(pulsar_topic) is None and self.admin is None:
            if self._known(pulsar_topic) is None and await self._probe_native(pulsar_topic) is None:
                raise UnknownTopic(f"topic {topic.name} does not exist")
            raise StorageError(f"{pulsar_topic} was made by Pulsar applications: deleting it needs --pulsar-admin-url")
        if self.topics.get(pulsar_topic) is not None:
            self._current(topic)
            await self.topics.delete(pulsar_topic, topic.topic_id)
        if self.admin is not None:
            await self.admin.delete_partitioned(pulsar_topic)
            self._admin_topics.pop(pulsar_topic, None)
        self._native_probe.pop(pulsar_topic, None)
        self._infos.pop(pulsar_topic, None)

    async def grow_topic(self, topic: TopicInfo, partitions: int) -> TopicInfo:
        pulsar_topic = topic.storage_name
        current = self._known(pulsar_topic)
        if current is None or current.topic_id != topic.topic_id:
            raise UnknownTopic(f"topic {topic.name} does not exist")
        if partitions <= current.partitions:
            raise InvalidPartitions(f"topic {topic.name} has {current.partitions} partitions already")
        if not current.partitioned:
            raise InvalidPartitions(f"{pulsar_topic} is a plain Pulsar topic: it cannot have partitions")
        if self.admin is not None:
            await self.admin.grow_partitioned(pulsar_topic, partitions)
            self._admin_topics[pulsar_topic] = partitions
        if self.topics.get(pulsar_topic) is not None:
            await self.topics.grow(pulsar_topic, topic.topic_id, partitions)
        elif self.admin is None:
            raise StorageError(f"{pulsar_topic} was made by Pulsar applications: growing it needs --pulsar-admin-url")
        return self._known(pulsar_topic)

    def topic_configs(self, topic: TopicInfo):
        record = self.topics.get(topic.storage_name)
        # The registry replaces a record's configs, never changes them: a view is safe and free.
        if record is None or record.topic_id != topic.topic_id:
            return NO_CONFIGS
        return MappingProxyType(record.configs)

    async def set_topic_configs(self, topic: TopicInfo, configs) -> None:
        self._current(topic)
        if await self.topics.set_configs(topic.storage_name, topic.topic_id, dict(configs)) is None:
            raise UnknownTopic(f"topic {topic.name} does not exist")
        if self.admin is not None:
            await self.admin.set_retention(topic.storage_name, configs)

    @property
    def applies_retention_bytes(self) -> bool:
        """retention.bytes needs Pulsar's retention policy (the admin API); retention.ms
        kop_fast can also honour itself."""
        return self.admin is not None

    async def list_topics(self, scope: str | None = None) -> list[TopicInfo]:
        ns = self.naming if scope is None else TopicNaming(*scope.split("/", 1))
        await self.topics.catch_up()
        if self.admin is not None:
            try:
                await self._refresh_admin_topics(ns)
            except Exception as exc:  # the admin API is optional help: answer with what we know
                log.warning("listing partitioned topics through the admin API failed: %s", exc)
        prefix = f"persistent://{ns.tenant}/{ns.namespace}/"
        merged = {topic: self._info(topic, r.partitions) for topic, r in self.topics.all().items()}
        merged.update((topic, self._info(topic, n)) for topic, n in self._admin_topics.items())
        return sorted((i for topic, i in merged.items() if topic.startswith(prefix)), key=lambda i: i.storage_name)

    async def cluster_id(self, proposed: str) -> str:
        return await self.topics.claim_cluster_id(proposed)

    async def _refresh_admin_topics(self, ns: TopicNaming) -> None:
        """Learn the partitioned topics Pulsar knows in the namespace."""
        for pulsar_topic in await self.admin.partitioned_topics(ns.tenant, ns.namespace):
            if pulsar_topic not in self._admin_topics:
                count = await self.admin.partitions(pulsar_topic)
                if count > 0:
                    self._admin_topics[pulsar_topic] = count

    async def _probe_native(self, pulsar_topic: str) -> TopicInfo | None:
        """A topic Pulsar applications made: partitioned per Pulsar, or plain with at least one message."""
        now = time.monotonic()
        cached = self._native_probe.get(pulsar_topic)
        if cached is not None and now - cached[0] < NATIVE_PROBE_TTL_S:
            return cached[1]
        info = None
        _base, index = split_partition_topic(pulsar_topic)
        if index is None:
            fut, cb = self.bridge.result_future()
            self.client.get_topic_partitions_async(pulsar_topic, cb)
            partitions = await fut
            if len(partitions) > 1 or (partitions and partitions[0] != pulsar_topic):
                info = self._info(pulsar_topic, len(partitions), True)
            elif await self._has_data(pulsar_topic):
                info = self._info(pulsar_topic, 1, False)
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

    # -- the group coordinator's log and commit mirroring ---------------------------------------
    def offsets_log(self, index: int) -> PulsarOffsetsLog:
        topic = partition_topic(self.settings.offsets_topic, index)
        return PulsarOffsetsLog(self.service_url, self.bridge, topic, index, self.client_options)

    def cluster_log(self, cluster_id: str) -> PulsarClusterLog:
        changes, heartbeats = cluster_topics(self.settings.system_namespace, cluster_id)
        return PulsarClusterLog(self.client, self.bridge, changes, heartbeats)

    # -- Pulsar's authorization of SASL clients (role_access.py) ----------------------------------
    def known_access(self, role: str, token: str | None, topic: TopicInfo, action: str) -> bool | None:
        if self.role_access is None:
            return True  # Pulsar is not asked: everything the tenancy allows is granted
        if token is None:
            return False
        return self.role_access.known(token, _authorized_topic(topic), action)

    async def check_access(self, role: str, token: str | None, topic: TopicInfo, action: str) -> bool:
        known = self.known_access(role, token, topic, action)
        if known is not None:
            return known
        return await self.role_access.allowed(token, _authorized_topic(topic), action)

    def mirror_commit(self, group_id: str, topic: TopicInfo, partition: int, offset: int) -> None:
        if self.mirror is None:
            return
        pulsar_topic = partition_topic(topic.storage_name, partition, topic.partitioned)
        self._mirrored_partitions[pulsar_topic] = (topic, partition)
        self.mirror.offer(group_id, pulsar_topic, offset)

    async def _mirror_position(self, pulsar_topic: str, offset: int) -> int | None:
        """Consecutive offsets: a committed offset as the position the mirror acknowledges by."""
        found = self._mirrored_partitions.get(pulsar_topic)
        if found is None:
            return None
        return await self.partition_log(*found).position_for_commit(offset)

    async def _mirrored_bounds(self, pulsar_topic: str) -> tuple[int, int] | None:
        found = self._mirrored_partitions.get(pulsar_topic)
        if found is None:
            return None
        return await self.partition_log(*found).bounds()


def _authorized_topic(topic: TopicInfo) -> str:
    """The Pulsar topic whose permissions stand for the Kafka topic's (its first partition:
    Pulsar grants permissions per topic or namespace, the same for every partition)."""
    return partition_topic(topic.storage_name, 0, topic.partitioned)
