"""The asyncio driver of the consumer-group coordinator (`kop_fast.coordinator`, a pure state machine).

One GroupManager per `__consumer_offsets` partition this process coordinates.
A partition is loaded on first use (the FindCoordinator a client always sends
before any group request, or any group request; ListGroups loads them all):
take ownership (Exclusive subscription), replay the partition into
`GroupManager.load`, then serve. Group requests wait up to LOAD_WAIT_S for a load
in progress. While loading, the manager itself answers
COORDINATOR_LOAD_IN_PROGRESS (or what Kafka answers instead); a partition this
process could not take (another process holds it, or Pulsar failed) answers
NOT_COORDINATOR and is tried again after LOAD_RETRY_S. Nothing is opened at
start, so a server that never sees a group pays nothing.

The driver owns:
* the waiters: an asyncio future per parked request, handed to the manager as
  its opaque waiter token and resolved from `Output.completions` only;
* the timers: per partition one `loop.call_at` armed at the manager's
  `next_deadline_ms()` and re-armed after every call (no polling);
* persistence: each PendingWrite is appended, in emission order, to the
  partition's Pulsar topic; `complete_write` is called exactly once, after Pulsar
  persisted it (or failed); persisted offset commits are offered to the
  subscription mirror.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from typing import Iterable, Sequence

from kop_fast.backend.naming import partition_topic
from kop_fast.backend.offsets_topic import OffsetsPartition, OffsetsTopic
from kop_fast.backend.subscription_mirror import SubscriptionMirror
from kop_fast.coordinator import records as rec
from kop_fast.coordinator import (
    DescribedGroup,
    ErrorCode,
    GroupConfig,
    GroupManager,
    HeartbeatRequest,
    HeartbeatResponse,
    JoinRequest,
    JoinResponse,
    LeaveRequest,
    LeaveResponse,
    ListGroupsResponse,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetDeleteRequest,
    OffsetDeleteResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    Output,
    PendingWrite,
    SyncRequest,
    SyncResponse,
    SystemClock,
    partition_for,
)
from kop_fast.coordinator.group import Group
from kop_fast.protocol.errors import ErrorCode as KafkaErrorCode
from kop_fast.server.storage_errors import storage_error_code
from kop_fast.server.topics import cached_topic

log = logging.getLogger("kop_fast.coordinator")

# How long a request waits for its partition to finish loading before it gets
# COORDINATOR_LOAD_IN_PROGRESS (clients retry that after a backoff: waiting a little
# here saves them the backoff, since a load normally takes milliseconds).
LOAD_WAIT_S = 1.0
# After a failed load (e.g. another process holds the partition) wait this long before trying again.
LOAD_RETRY_S = 5.0
# On shutdown, how long in-flight writes may take to be persisted and answered.
WRITE_DRAIN_S = 5.0


def kafka_error(code: int) -> KafkaErrorCode:
    """A coordinator ErrorCode (or any Kafka error number) as kio's ErrorCode (same numbers)."""
    try:
        return KafkaErrorCode(int(code))
    except ValueError:
        return KafkaErrorCode.unknown_server_error


class CoordinatorPartition:
    __slots__ = ("index", "manager", "log", "load_task", "ready", "retry_at", "timer", "timer_deadline",
                 "inflight")

    def __init__(self, index: int, config: GroupConfig) -> None:
        self.index = index
        self.manager = _loading_manager(config)
        self.log: OffsetsPartition | None = None
        self.load_task: asyncio.Task | None = None
        self.ready = False
        self.retry_at = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.timer_deadline: int | None = None
        self.inflight: set[asyncio.Future] = set()

    @property
    def loading(self) -> bool:
        return self.load_task is not None and not self.load_task.done()

    @property
    def unavailable(self) -> bool:
        """Neither serving nor loading: this process does not coordinate the partition now."""
        return not self.ready and not self.loading


def _loading_manager(config: GroupConfig) -> GroupManager:
    manager = GroupManager(config)
    manager.loading = True
    return manager


class GroupCoordinator:
    def __init__(self, broker) -> None:
        settings = broker.settings
        self.broker = broker
        self.num_partitions = settings.offsets_topic_num_partitions
        self.offsets_topic_name = settings.offsets_topic
        self.config = GroupConfig(
            min_session_timeout_ms=settings.group_min_session_timeout_ms,
            initial_rebalance_delay_ms=settings.group_initial_rebalance_delay_ms,
        )
        self.clock = SystemClock()
        self._partitions: dict[int, CoordinatorPartition] = {}
        self._topic: OffsetsTopic | None = None
        self.mirror: SubscriptionMirror | None = None
        self._mirror_logs: dict[str, tuple] = {}  # pulsar partition topic -> (TopicInfo, index)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Cheap: no Pulsar I/O happens until a group is used."""
        self._loop = asyncio.get_running_loop()
        backend = self.broker.backend
        self._topic = OffsetsTopic(backend.service_url, backend.bridge, self.offsets_topic_name, self.num_partitions)
        self.mirror = SubscriptionMirror(backend.service_url, self._loop, bounds=self._partition_bounds)

    async def stop(self) -> None:
        """Answer parked requests (NOT_COORDINATOR), let in-flight writes finish, release ownership."""
        self._stopping = True
        now = self.now()
        loads = []
        for p in self._partitions.values():
            if p.loading:
                p.load_task.cancel()
                loads.append(p.load_task)
            if p.timer is not None:
                p.timer.cancel()
                p.timer = None
            if p.ready:
                p.ready = False  # from now on: NOT_COORDINATOR
                out = p.manager.unload([g.group_id for g in p.manager.groups()], now)
                self._dispatch(p, out)
        if loads:
            await asyncio.wait(loads, timeout=5)
        inflight = [f for p in self._partitions.values() for f in p.inflight]
        if inflight:
            await asyncio.wait(inflight, timeout=WRITE_DRAIN_S)
        log.debug("coordinator stop: %d in-flight writes done", len(inflight))
        for p in self._partitions.values():
            if p.log is not None:
                await p.log.release()
                p.log = None
        log.debug("coordinator stop: partitions released")
        if self.mirror is not None:
            await self.mirror.close()
        log.debug("coordinator stop: mirror closed")

    def now(self) -> int:
        return self.clock.now_ms()

    # -- partitions -----------------------------------------------------------------------------
    def partition_index(self, group_id: str) -> int:
        return partition_for(group_id, self.num_partitions)

    def partition(self, index: int) -> CoordinatorPartition:
        """The partition, its load started if it is neither loaded nor loading (nor backing off)."""
        p = self._partitions.get(index)
        if p is None:
            p = CoordinatorPartition(index, self.config)
            self._partitions[index] = p
        if not p.ready and not p.loading and not self._stopping and time.monotonic() >= p.retry_at:
            p.load_task = asyncio.ensure_future(self._load(p))
        return p

    def partition_of(self, group_id: str) -> CoordinatorPartition:
        return self.partition(self.partition_index(group_id))

    async def wait_ready(self, partitions: Iterable[CoordinatorPartition], timeout: float = LOAD_WAIT_S) -> None:
        tasks = {p.load_task for p in partitions if p.loading}
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def _load(self, p: CoordinatorPartition) -> None:
        assert self._topic is not None
        log_ = self._topic.partition(p.index)
        started = time.monotonic()
        try:
            records = await log_.acquire_and_replay()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            p.retry_at = time.monotonic() + LOAD_RETRY_S
            log.warning("cannot coordinate %s (%r); NOT_COORDINATOR for its groups, retry in %.0f s",
                        log_.topic, exc, LOAD_RETRY_S)
            return
        if self._stopping:
            await log_.release()
            return
        try:
            result = p.manager.load(records, self.now())
        except Exception:
            log.exception("replaying %s failed; NOT_COORDINATOR for its groups", log_.topic)
            p.manager = _loading_manager(self.config)
            p.retry_at = time.monotonic() + LOAD_RETRY_S
            await log_.release()
            return
        p.manager.loading = False
        p.log = log_
        p.ready = True
        log.info("coordinating %s: %d groups, %d offsets from %d records (%d skipped) in %.0f ms",
                 log_.topic, result.groups, result.offsets, len(records), result.skipped_records,
                 (time.monotonic() - started) * 1000)
        self._rearm(p)

    # -- driving the state machine --------------------------------------------------------------
    def _dispatch(self, p: CoordinatorPartition, out: Output, manager: GroupManager | None = None) -> None:
        """Deliver completions, persist writes (of `manager`, the one that produced `out`), re-arm."""
        manager = manager or p.manager
        for waiter, response in out.completions:
            if not waiter.done():
                waiter.set_result(response)
        for write in out.writes:
            self._persist(p, manager, write)
        self._rearm(p)

    def _persist(self, p: CoordinatorPartition, manager: GroupManager, write: PendingWrite) -> None:
        assert self.partition_index(write.group_id) == p.index
        if manager is not p.manager:  # written by a manager that no longer coordinates
            self._dispatch(p, manager.complete_write(write, ErrorCode.NOT_COORDINATOR, self.now()), manager)
            return
        if p.log is not None and p.ready and not p.log.lock_connected():
            self._ownership_lost(p)
        if p.log is None or not p.ready and not self._stopping:
            self._dispatch(p, manager.complete_write(write, ErrorCode.NOT_COORDINATOR, self.now()), manager)
            return
        fut = p.log.append([(r.key, r.value) for r in write.records])
        p.inflight.add(fut)
        fut.add_done_callback(lambda f: self._persisted(p, manager, write, f))

    def _persisted(self, p: CoordinatorPartition, manager: GroupManager, write: PendingWrite,
                   fut: asyncio.Future) -> None:
        p.inflight.discard(fut)
        if fut.cancelled():
            code = ErrorCode.REQUEST_TIMED_OUT
        elif fut.exception() is not None:
            exc = fut.exception()
            code = int(storage_error_code(exc))
            log.warning("persisting %r in partition %d failed: %r", write, p.index, exc)
        else:
            code = ErrorCode.NONE
        self._dispatch(p, manager.complete_write(write, code, self.now()), manager)
        if code == ErrorCode.NONE:
            self._mirror_commits(write)

    def _ownership_lost(self, p: CoordinatorPartition) -> None:
        """The lock consumer is disconnected: another process may own the partition now. Stop
        coordinating it (parked requests get NOT_COORDINATOR); the next use loads it again, from
        what was persisted, if the lock can be taken."""
        log.warning("lost the lock on %s: unloading its groups", p.log.topic if p.log else p.index)
        p.ready = False
        old_manager, old_log = p.manager, p.log
        p.manager = _loading_manager(self.config)
        p.log = None
        out = old_manager.unload([g.group_id for g in old_manager.groups()], self.now())
        self._dispatch(p, out, old_manager)
        inflight = list(p.inflight)

        async def release_after_writes() -> None:
            if inflight:
                await asyncio.wait(inflight, timeout=WRITE_DRAIN_S)
            await old_log.release()

        asyncio.ensure_future(release_after_writes())

    def _rearm(self, p: CoordinatorPartition) -> None:
        deadline = p.manager.next_deadline_ms() if p.ready and not self._stopping else None
        if p.timer is not None:
            if deadline == p.timer_deadline:
                return
            p.timer.cancel()
            p.timer = None
        p.timer_deadline = deadline
        if deadline is None:
            return
        loop = self._loop
        # +1 ms: never wake before the deadline (the manager would have nothing to do).
        delay = max(0, deadline - self.now() + 1) / 1000.0
        p.timer = loop.call_at(loop.time() + delay, self._on_timer, p)

    def _on_timer(self, p: CoordinatorPartition) -> None:
        p.timer = None
        p.timer_deadline = None
        if p.ready and not self._stopping:
            self._dispatch(p, p.manager.tick(self.now()))

    # -- mirroring commits to Pulsar subscriptions ----------------------------------------------
    def _mirror_commits(self, write: PendingWrite) -> None:
        mirror = self.mirror
        if mirror is None:
            return
        for record in write.records:
            if record.value is None:
                continue
            try:
                key = rec.decode_key(record.key)
                if not isinstance(key, rec.OffsetCommitKey):
                    continue
                value = rec.decode_offset_commit_value(record.value)
            except rec.RecordDecodeError:
                continue
            info = cached_topic(self.broker, key.topic)
            if info is None or not 0 <= key.partition < info.partitions:
                continue  # never create Pulsar topics by subscribing to them
            topic = partition_topic(info.pulsar_topic, key.partition, info.partitioned)
            self._mirror_logs[topic] = (info, key.partition)
            mirror.offer(key.group_id, topic, value.offset)

    async def _partition_bounds(self, topic: str) -> tuple[int, int] | None:
        found = self._mirror_logs.get(topic)
        if found is None:
            return None
        info, index = found
        return await self.broker.backend.partition(info, index).bounds()

    # -- requests -------------------------------------------------------------------------------
    async def find_coordinator(self, key: str) -> int:
        """NONE when this process coordinates, or is loading, the group's partition.

        Starts the load but does not wait for it: the group request that follows waits
        (LOAD_WAIT_S). A client that only looks the coordinator up (e.g. librdkafka with
        assign()) must not be held up by a lock another process holds.
        """
        p = self.partition_of(key)
        await asyncio.sleep(0)  # let a fresh load task start (a failure right away is then seen)
        return ErrorCode.COORDINATOR_NOT_AVAILABLE if p.unavailable else ErrorCode.NONE

    async def join(self, req: JoinRequest) -> JoinResponse:
        p = self.partition_of(req.group_id)
        await self.wait_ready((p,))
        if p.unavailable:
            return JoinResponse(ErrorCode.NOT_COORDINATOR, member_id=req.member_id)
        waiter = self._loop.create_future()
        self._dispatch(p, p.manager.join(req, waiter, self.now()))
        return await waiter

    async def sync(self, req: SyncRequest) -> SyncResponse:
        p = self.partition_of(req.group_id)
        if p.unavailable:
            return SyncResponse(ErrorCode.NOT_COORDINATOR)
        waiter = self._loop.create_future()
        self._dispatch(p, p.manager.sync(req, waiter, self.now()))
        return await waiter

    def heartbeat(self, req: HeartbeatRequest) -> HeartbeatResponse:
        p = self.partition_of(req.group_id)
        if p.unavailable:
            return HeartbeatResponse(ErrorCode.NOT_COORDINATOR)
        response = p.manager.heartbeat(req, self.now())
        self._rearm(p)
        return response

    async def leave(self, req: LeaveRequest) -> LeaveResponse:
        p = self.partition_of(req.group_id)
        if p.unavailable:
            return LeaveResponse(ErrorCode.NOT_COORDINATOR)
        waiter = self._loop.create_future()
        self._dispatch(p, p.manager.leave(req, waiter, self.now()))
        return await waiter

    async def commit_offsets(self, req: OffsetCommitRequest) -> OffsetCommitResponse:
        p = self.partition_of(req.group_id)
        await self.wait_ready((p,))
        if p.unavailable:
            return Group._commit_error_response(req, ErrorCode.NOT_COORDINATOR)
        waiter = self._loop.create_future()
        self._dispatch(p, p.manager.commit_offsets(req, waiter, self.now()))
        return await waiter

    async def fetch_offsets(self, req: OffsetFetchRequest) -> OffsetFetchResponse:
        p = self.partition_of(req.group_id)
        await self.wait_ready((p,))
        if p.unavailable:
            return OffsetFetchResponse(ErrorCode.NOT_COORDINATOR)
        return p.manager.fetch_offsets(req)

    async def delete_offsets(self, req: OffsetDeleteRequest) -> OffsetDeleteResponse:
        p = self.partition_of(req.group_id)
        await self.wait_ready((p,))
        if p.unavailable:
            return OffsetDeleteResponse(ErrorCode.NOT_COORDINATOR)
        waiter = self._loop.create_future()
        self._dispatch(p, p.manager.delete_offsets(req, waiter, self.now()))
        return await waiter

    async def describe_groups(self, group_ids: Sequence[str], api_version: int) -> list[DescribedGroup]:
        parts = {gid: self.partition_of(gid) for gid in group_ids}
        await self.wait_ready(set(parts.values()))
        described = []
        for gid in group_ids:
            p = parts[gid]
            if p.unavailable:
                described.append(DescribedGroup(ErrorCode.NOT_COORDINATOR, gid, ""))
            else:
                described.append(p.manager.describe_group(gid, api_version))
        return described

    async def list_groups(self, states_filter=None, types_filter=None) -> ListGroupsResponse:
        """Groups of every partition this process coordinates (all partitions are loaded first)."""
        parts = [self.partition(i) for i in range(self.num_partitions)]
        await self.wait_ready(parts)
        error = ErrorCode.NONE
        groups = []
        for p in parts:
            if p.ready:
                groups.extend(p.manager.list_groups(states_filter, types_filter).groups)
            elif p.loading:
                error = ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        return ListGroupsResponse(error, groups)

    async def delete_groups(self, group_ids: Sequence[str]) -> list[tuple[str, int]]:
        unique = list(dict.fromkeys(group_ids))
        by_partition: dict[int, list[str]] = {}
        for gid in unique:
            by_partition.setdefault(self.partition_index(gid), []).append(gid)
        parts = {i: self.partition(i) for i in by_partition}
        await self.wait_ready(parts.values())
        results: dict[str, int] = {}
        waiters = []
        for i, gids in by_partition.items():
            p = parts[i]
            if p.unavailable:
                results.update((gid, ErrorCode.NOT_COORDINATOR) for gid in gids)
                continue
            waiter = self._loop.create_future()
            self._dispatch(p, p.manager.delete_groups(gids, waiter, self.now()))
            waiters.append(waiter)
        for waiter in waiters:
            response = await waiter
            results.update((r.group_id, r.error_code) for r in response.results)
        return [(gid, results.get(gid, ErrorCode.UNKNOWN_SERVER_ERROR)) for gid in unique]


# -- helpers shared by the group handlers -------------------------------------------------------
_MILLISECOND = datetime.timedelta(milliseconds=1)


def coordinator_of(ctx) -> GroupCoordinator:
    return ctx.broker.group_coordinator


def millis(delta) -> int:
    """A kio timedelta field as integer milliseconds (-1 stays -1)."""
    return delta // _MILLISECOND if delta is not None else -1


def client_host(ctx) -> str:
    """The client's address as Kafka reports it (`/127.0.0.1`)."""
    peer = getattr(ctx.connection, "peer", None)
    if not peer:
        return ""
    return "/" + str(peer[0])
