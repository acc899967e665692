"""The asyncio driver of the consumer-group coordinator (`kop_fast.coordinator`, a pure state machine).

One PartitionGroups per `__consumer_offsets` partition this process coordinates.
A partition is loaded on first use (the FindCoordinator a client always sends
before any group request, or any group request; ListGroups loads them all):
take ownership of its offsets log (`Storage.offsets_log`), replay it into
`PartitionGroups.load`, then serve. Group requests wait up to LOAD_WAIT_S for a load
in progress. While loading, the manager itself answers
COORDINATOR_LOAD_IN_PROGRESS (or what Kafka answers instead); a partition this
process could not take (another process holds it, or the storage failed) answers
NOT_COORDINATOR and is tried again after LOAD_RETRY_S. Nothing is opened at
start, so a server that never sees a group pays nothing.

The driver owns:
* the waiters: an asyncio future per parked request, handed to the manager as
  its opaque waiter token and resolved from `Output.completions` only;
* the timers: per partition one `loop.call_at` armed at the manager's
  `next_deadline_ms()` and re-armed after every call (no polling);
* persistence: each PendingWrite is appended, in emission order, to the
  partition's offsets log; `complete_write` is called exactly once, after the
  storage persisted it (or failed); persisted offset commits are mirrored
  (`Storage.mirror_commit`).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from typing import Iterable, Iterator, Sequence

from kop_fast.coordinator import records as rec
from kop_fast.coordinator import (
    DescribedGroup,
    Group,
    GroupConfig,
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
    PartitionGroups,
    PendingWrite,
    SyncRequest,
    SyncResponse,
    SystemClock,
    commit_error_response,
    partition_for,
)
from kop_fast.protocol.errors import ErrorCode
from kop_fast.server.cluster import offsets_key
from kop_fast.server.storage_errors import storage_error_code
from kop_fast.server.tenancy import split_scoped_group
from kop_fast.storage.api import OffsetsLog, Storage

log = logging.getLogger("kop_fast.coordinator")

# How long a request waits for its partition to finish loading before it gets
# COORDINATOR_LOAD_IN_PROGRESS (clients retry that after a backoff: waiting a little
# here saves them the backoff, since a load normally takes milliseconds).
LOAD_WAIT_S = 1.0
# After a failed load (the storage failed) wait this long before trying again.
LOAD_RETRY_S = 2.0
# On shutdown, how long in-flight writes may take to be persisted and answered.
WRITE_DRAIN_S = 5.0


def kafka_error(code: int) -> ErrorCode:
    """A Kafka error number as an ErrorCode (an unknown one as UNKNOWN_SERVER_ERROR)."""
    try:
        return ErrorCode(int(code))
    except ValueError:
        return ErrorCode.unknown_server_error


class CoordinatorPartition:
    __slots__ = ("index", "manager", "offsets_log", "load_task", "ready", "retry_at", "timer", "timer_deadline",
                 "inflight")

    def __init__(self, index: int, config: GroupConfig) -> None:
        self.index = index
        self.manager = _loading_manager(config)
        self.offsets_log: OffsetsLog | None = None
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


def _loading_manager(config: GroupConfig) -> PartitionGroups:
    manager = PartitionGroups(config)
    manager.loading = True
    return manager


class GroupCoordinator:
    def __init__(self, settings, storage: Storage) -> None:
        self.storage = storage
        self.num_partitions = settings.offsets_topic_num_partitions
        self.config = GroupConfig(
            min_session_timeout_ms=settings.group_min_session_timeout_ms,
            initial_rebalance_delay_ms=settings.group_initial_rebalance_delay_ms,
        )
        self.clock = SystemClock()
        self._partitions: dict[int, CoordinatorPartition] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self.cluster = None  # ClusterMembership: which offsets partitions this proxy may coordinate

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Cheap: no storage I/O happens until a group is used."""
        self._loop = asyncio.get_running_loop()

    def attach(self, cluster) -> None:
        """Coordinate only the offsets partitions the cluster gives this proxy; drop the others
        as soon as a new epoch moves them away."""
        self.cluster = cluster
        cluster.listeners.append(self._on_epoch)

    def may_coordinate(self, index: int) -> bool:
        cluster = self.cluster
        return cluster is None or cluster.serving(offsets_key(index))

    def _on_epoch(self):
        """A new cluster epoch: unload the partitions moved away; the awaitable settles once
        their in-flight writes are done and they are released (then the epoch is confirmed)."""
        releases = [self._ownership_lost(p) for p in self._partitions.values()
                    if (p.ready or p.loading) and not self.cluster.owns(offsets_key(p.index))]
        return asyncio.gather(*releases) if releases else None

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
            if p.offsets_log is not None:
                await p.offsets_log.release()
                p.offsets_log = None
        log.debug("coordinator stop: partitions released")

    def now(self) -> int:
        return self.clock.now_ms()

    # -- partitions -----------------------------------------------------------------------------
    def partition_index(self, group_id: str) -> int:
        return partition_for(group_id, self.num_partitions)

    def offsets_partition(self, index: int) -> CoordinatorPartition:
        """The partition, its load started if it is neither loaded nor loading (nor backing off)."""
        p = self._partitions.get(index)
        if p is None:
            p = CoordinatorPartition(index, self.config)
            self._partitions[index] = p
        if (not p.ready and not p.loading and not self._stopping and time.monotonic() >= p.retry_at
                and self.may_coordinate(index)):
            p.load_task = asyncio.ensure_future(self._load(p))
        return p

    def offsets_partition_of(self, group_id: str) -> CoordinatorPartition:
        return self.offsets_partition(self.partition_index(group_id))

    async def wait_ready(self, partitions: Iterable[CoordinatorPartition], timeout: float = LOAD_WAIT_S) -> None:
        tasks = {p.load_task for p in partitions if p.loading}
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def _load(self, p: CoordinatorPartition) -> None:
        offsets_log = self.storage.offsets_log(p.index)
        started = time.monotonic()
        try:
            records = await offsets_log.acquire_and_replay()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            p.retry_at = time.monotonic() + LOAD_RETRY_S
            log.warning("cannot coordinate %s (%r); NOT_COORDINATOR for its groups, retry in %.0f s",
                        offsets_log.name, exc, LOAD_RETRY_S)
            return
        if self._stopping or not self.may_coordinate(p.index):
            await offsets_log.release()
            return
        try:
            result = p.manager.load(records, self.now())
        except Exception:
            log.exception("replaying %s failed; NOT_COORDINATOR for its groups", offsets_log.name)
            p.manager = _loading_manager(self.config)
            p.retry_at = time.monotonic() + LOAD_RETRY_S
            await offsets_log.release()
            return
        p.manager.loading = False
        p.offsets_log = offsets_log
        p.ready = True
        log.info("coordinating %s: %d groups, %d offsets from %d records (%d skipped) in %.0f ms",
                 offsets_log.name, result.groups, result.offsets, len(records), result.skipped_records,
                 (time.monotonic() - started) * 1000)
        self._rearm(p)

    def groups(self) -> Iterator[Group]:
        """Every group of the partitions this process coordinates now (metrics)."""
        for p in list(self._partitions.values()):
            if p.ready:
                yield from p.manager.groups()

    # -- driving the state machine --------------------------------------------------------------
    def _dispatch(self, p: CoordinatorPartition, out: Output, manager: PartitionGroups | None = None) -> None:
        """Deliver completions, persist writes (of `manager`, the one that produced `out`), re-arm."""
        manager = manager or p.manager
        for waiter, response in out.completions:
            if not waiter.done():
                waiter.set_result(response)
        for write in out.writes:
            self._persist(p, manager, write)
        self._rearm(p)

    def _persist(self, p: CoordinatorPartition, manager: PartitionGroups, write: PendingWrite) -> None:
        assert self.partition_index(write.group_id) == p.index
        if manager is not p.manager:  # written by a manager that no longer coordinates
            self._dispatch(p, manager.complete_write(write, ErrorCode.not_coordinator, self.now()), manager)
            return
        if p.offsets_log is not None and p.ready and not self.may_coordinate(p.index):
            self._ownership_lost(p)
        if p.offsets_log is None or not p.ready and not self._stopping:
            self._dispatch(p, manager.complete_write(write, ErrorCode.not_coordinator, self.now()), manager)
            return
        fut = p.offsets_log.append([(r.key, r.value) for r in write.records])
        p.inflight.add(fut)
        fut.add_done_callback(lambda f: self._persisted(p, manager, write, f))

    def _persisted(self, p: CoordinatorPartition, manager: PartitionGroups, write: PendingWrite,
                   fut: asyncio.Future) -> None:
        p.inflight.discard(fut)
        if fut.cancelled():
            code = ErrorCode.request_timed_out
        elif fut.exception() is not None:
            exc = fut.exception()
            code = int(storage_error_code(exc))
            log.warning("persisting %r in partition %d failed: %r", write, p.index, exc)
        else:
            code = ErrorCode.none
        self._dispatch(p, manager.complete_write(write, code, self.now()), manager)
        if code == ErrorCode.none:
            self._mirror_commits(write)

    def _ownership_lost(self, p: CoordinatorPartition) -> asyncio.Future:
        """The cluster gave the partition to another proxy (or this one's lease ran out). Stop
        coordinating it (parked requests get NOT_COORDINATOR); the future settles once its
        in-flight writes are done and it is released. The next use loads it again, from what
        was persisted, once this proxy owns it again."""
        log.info("no longer coordinating %s: unloading its groups",
                 p.offsets_log.name if p.offsets_log else p.index)
        if p.loading:
            p.load_task.cancel()
        p.ready = False
        old_manager, old_log = p.manager, p.offsets_log
        p.manager = _loading_manager(self.config)
        p.offsets_log = None
        out = old_manager.unload([g.group_id for g in old_manager.groups()], self.now())
        self._dispatch(p, out, old_manager)
        inflight = list(p.inflight)

        async def release_after_writes() -> None:
            if inflight:
                await asyncio.wait(inflight, timeout=WRITE_DRAIN_S)
            if old_log is not None:
                await old_log.release()

        return asyncio.ensure_future(release_after_writes())

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

    # -- mirroring commits to the storage (Pulsar subscriptions) --------------------------------
    def _mirror_commits(self, write: PendingWrite) -> None:
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
            # A tenant's group (`tenant/ns/group`, server/tenancy.py) holds the short names of
            # that tenant's topics; its subscription is named as the client names the group.
            scope, group = split_scoped_group(key.group_id)
            info = self.storage.cached_topic(key.topic if scope is None or "/" in key.topic
                                             else f"{scope}/{key.topic}")
            if info is None or not 0 <= key.partition < info.partitions:
                continue  # never create topics by mirroring to them
            self.storage.mirror_commit(group, info, key.partition, value.offset)

    # -- requests -------------------------------------------------------------------------------
    async def find_coordinator(self, key: str) -> int:
        """NONE when this process coordinates, or is loading, the group's partition.

        Starts the load but does not wait for it: the group request that follows waits
        (LOAD_WAIT_S). A client that only looks the coordinator up (e.g. librdkafka with
        assign()) must not be held up by a lock another process holds.
        """
        p = self.offsets_partition_of(key)
        await asyncio.sleep(0)  # let a fresh load task start (a failure right away is then seen)
        return ErrorCode.coordinator_not_available if p.unavailable else ErrorCode.none

    async def join(self, req: JoinRequest) -> JoinResponse:
        p = self.offsets_partition_of(req.group_id)
        await self.wait_ready((p,))
        if p.unavailable:
            return JoinResponse(ErrorCode.not_coordinator, member_id=req.member_id)
        waiter = self._loop.create_future()
        self._dispatch(p, p.manager.join(req, waiter, self.now()))
        return await waiter

    async def sync(self, req: SyncRequest) -> SyncResponse:
        p = self.offsets_partition_of(req.group_id)
        if p.unavailable:
            return SyncResponse(ErrorCode.not_coordinator)
        waiter = self._loop.create_future()
        self._dispatch(p, p.manager.sync(req, waiter, self.now()))
        return await waiter

    def heartbeat(self, req: HeartbeatRequest) -> HeartbeatResponse:
        p = self.offsets_partition_of(req.group_id)
        if p.unavailable:
            return HeartbeatResponse(ErrorCode.not_coordinator)
        response = p.manager.heartbeat(req, self.now())
        self._rearm(p)
        return response

    async def leave(self, req: LeaveRequest) -> LeaveResponse:
        p = self.offsets_partition_of(req.group_id)
        if p.unavailable:
            return LeaveResponse(ErrorCode.not_coordinator)
        waiter = self._loop.create_future()
        self._dispatch(p, p.manager.leave(req, waiter, self.now()))
        return await waiter

    async def commit_offsets(self, req: OffsetCommitRequest) -> OffsetCommitResponse:
        p = self.offsets_partition_of(req.group_id)
        await self.wait_ready((p,))
        if p.unavailable:
            return commit_error_response(req, ErrorCode.not_coordinator)
        waiter = self._loop.create_future()
        self._dispatch(p, p.manager.commit_offsets(req, waiter, self.now()))
        return await waiter

    async def fetch_offsets(self, req: OffsetFetchRequest) -> OffsetFetchResponse:
        p = self.offsets_partition_of(req.group_id)
        await self.wait_ready((p,))
        if p.unavailable:
            return OffsetFetchResponse(ErrorCode.not_coordinator)
        return p.manager.fetch_offsets(req)

    async def delete_offsets(self, req: OffsetDeleteRequest) -> OffsetDeleteResponse:
        p = self.offsets_partition_of(req.group_id)
        await self.wait_ready((p,))
        if p.unavailable:
            return OffsetDeleteResponse(ErrorCode.not_coordinator)
        waiter = self._loop.create_future()
        self._dispatch(p, p.manager.delete_offsets(req, waiter, self.now()))
        return await waiter

    async def describe_groups(self, group_ids: Sequence[str], api_version: int) -> list[DescribedGroup]:
        parts = {gid: self.offsets_partition_of(gid) for gid in group_ids}
        await self.wait_ready(set(parts.values()))
        described = []
        for gid in group_ids:
            p = parts[gid]
            if p.unavailable:
                described.append(DescribedGroup(ErrorCode.not_coordinator, gid, ""))
            else:
                described.append(p.manager.describe_group(gid, api_version))
        return described

    async def list_groups(self, states_filter=None, types_filter=None) -> ListGroupsResponse:
        """Groups of every partition this process coordinates (all partitions are loaded first)."""
        parts = [self.offsets_partition(i) for i in range(self.num_partitions)]
        await self.wait_ready(parts)
        error = ErrorCode.none
        groups = []
        for p in parts:
            if p.ready:
                groups.extend(p.manager.list_groups(states_filter, types_filter).groups)
            elif p.loading:
                error = ErrorCode.coordinator_load_in_progress
        return ListGroupsResponse(error, groups)

    async def delete_groups(self, group_ids: Sequence[str]) -> list[tuple[str, int]]:
        unique = list(dict.fromkeys(group_ids))
        by_partition: dict[int, list[str]] = {}
        for gid in unique:
            by_partition.setdefault(self.partition_index(gid), []).append(gid)
        parts = {i: self.offsets_partition(i) for i in by_partition}
        await self.wait_ready(parts.values())
        results: dict[str, int] = {}
        waiters = []
        for i, gids in by_partition.items():
            p = parts[i]
            if p.unavailable:
                results.update((gid, ErrorCode.not_coordinator) for gid in gids)
                continue
            waiter = self._loop.create_future()
            self._dispatch(p, p.manager.delete_groups(gids, waiter, self.now()))
            waiters.append(waiter)
        for waiter in waiters:
            response = await waiter
            results.update((r.group_id, r.error_code) for r in response.results)
        return [(gid, results.get(gid, ErrorCode.unknown_server_error)) for gid in unique]


# -- helpers shared by the group handlers -------------------------------------------------------
_MILLISECOND = datetime.timedelta(milliseconds=1)


def coordinator_of(ctx) -> GroupCoordinator:
    return ctx.node.group_coordinator


def millis(delta) -> int:
    """A kio timedelta field as integer milliseconds (-1 stays -1)."""
    return delta // _MILLISECOND if delta is not None else -1


def client_host(ctx) -> str:
    """The client's address as Kafka reports it (`/127.0.0.1`)."""
    peer = getattr(ctx.connection, "peer", None)
    if not peer:
        return ""
    return "/" + str(peer[0])
