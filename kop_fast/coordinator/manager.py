"""The coordinator's front door: a :class:`GroupManager` owns every group this node coordinates.

It does what Kafka's ``GroupCoordinator.handle*`` methods do before reaching a group (group id
validation, ``COORDINATOR_LOAD_IN_PROGRESS`` while loading, session-timeout bounds, creating a
group on the first JoinGroup or "simple" OffsetCommit), routes the request to the
:class:`~kop_fast.coordinator.group.Group`, keeps one timer queue for all groups, runs offset
retention, and rebuilds state from replayed records.

Driving it from asyncio (sketch)::

    out = manager.join(req, fut, clock.now_ms())
    dispatch(out)                      # resolve completions, persist writes
    rearm_timer(manager.next_deadline_ms())

    def dispatch(out):
        for waiter, response in out.completions:
            waiter.set_result(response)
        for write in out.writes:       # in this order, to partition_for(write.group_id, n)
            schedule(persist(write))   # then: dispatch(manager.complete_write(write, err, now))

    on timer: dispatch(manager.tick(now)); rearm_timer(manager.next_deadline_ms())

See :mod:`kop_fast.coordinator.group` for the persistence contract. Heartbeat, OffsetFetch,
DescribeGroups and ListGroups never wait and return their response directly.

Loading: set ``manager.loading = True`` while the records of ``__consumer_offsets`` are being
read (requests then get ``COORDINATOR_LOAD_IN_PROGRESS``, or what Kafka answers instead for
Heartbeat and SyncGroup), call :meth:`GroupManager.load` with them, then set it back to False.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable, Iterable, Sequence

from . import records as rec
from .errors import ErrorCode, group_store_error
from .group import (
    DeleteGroupResult,
    DeleteGroupsResponse,
    DescribedGroup,
    Group,
    GroupConfig,
    GroupState,
    HeartbeatRequest,
    HeartbeatResponse,
    JoinRequest,
    JoinResponse,
    LeaveMemberResult,
    LeaveRequest,
    LeaveResponse,
    ListGroupsResponse,
    OffsetCommitRequest,
    OffsetDeleteRequest,
    OffsetDeleteResponse,
    OffsetFetchPartitionResult,
    OffsetFetchRequest,
    OffsetFetchResponse,
    Output,
    PendingWrite,
    SyncRequest,
    SyncResponse,
    complete_write,
)
from .offsets import OffsetAndMetadata, TopicPartition
from .records import partition_for

__all__ = ["GroupManager", "LoadResult", "partition_for"]


@dataclass(frozen=True, slots=True)
class LoadResult:
    groups: int  # groups rebuilt (with metadata, or offsets only)
    offsets: int  # committed offsets restored
    skipped_records: int  # records with a key version this code does not know (skipped, as Kafka does)


class GroupManager:
    """All groups of this coordinator, plus a shared timer queue."""

    def __init__(self, config: GroupConfig | None = None, *, id_factory: Callable[[], str] | None = None) -> None:
        self.config = config or GroupConfig()
        self._id_factory = id_factory
        self._groups: dict[str, Group] = {}
        self.loading = False
        # Timer queue: (deadline, group id). `_scheduled[g]` is the one live entry of group g;
        # other entries of g are stale and skipped. An entry may be earlier than the group's real
        # next deadline (deadlines only move later on heartbeat): that costs a spurious wakeup,
        # never a late timer.
        self._heap: list[tuple[int, str]] = []
        self._scheduled: dict[str, int] = {}
        self._next_retention_check_ms: int | None = None

    # ================================================================================== lookups

    def get(self, group_id: str) -> Group | None:
        return self._groups.get(group_id)

    def __contains__(self, group_id: object) -> bool:
        return group_id in self._groups

    def __len__(self) -> int:
        return len(self._groups)

    def groups(self) -> list[Group]:
        return list(self._groups.values())

    def get_or_create(self, group_id: str, now_ms: int) -> Group:
        g = self._groups.get(group_id)
        if g is None:
            g = Group(group_id, self.config, now_ms, id_factory=self._id_factory)
            self._groups[group_id] = g
        return g

    # ================================================================================= requests

    def _status_error(self, group_id: str | None, *, allow_empty_id: bool) -> int | None:
        # OffsetCommit/OffsetFetch/DescribeGroups/DeleteGroups accept "" for compatibility;
        # the group-management APIs need a real id (Kafka's isValidGroupId).
        if group_id is None or (not allow_empty_id and group_id == ""):
            return ErrorCode.INVALID_GROUP_ID
        if self.loading:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        return None

    def join(self, req: JoinRequest, waiter: Any, now_ms: int) -> Output:
        self._arm_retention(now_ms)
        error = self._status_error(req.group_id, allow_empty_id=False)
        if error is None and not (
            self.config.min_session_timeout_ms <= req.session_timeout_ms <= self.config.max_session_timeout_ms
        ):
            error = ErrorCode.INVALID_SESSION_TIMEOUT
        g = None
        if error is None:
            g = self._groups.get(req.group_id)
            if g is None:
                if req.member_id != "":
                    # A member id for a group we do not know: the client must start over.
                    error = ErrorCode.UNKNOWN_MEMBER_ID
                else:
                    g = self.get_or_create(req.group_id, now_ms)
        if error is not None or g is None:
            out = Output()
            error = error or ErrorCode.UNKNOWN_SERVER_ERROR
            out.respond(waiter, JoinResponse(error_code=error, member_id=req.member_id))
            return out
        out = g.join(req, waiter, now_ms)
        self._after(g)
        return out

    def sync(self, req: SyncRequest, waiter: Any, now_ms: int) -> Output:
        error = self._status_error(req.group_id, allow_empty_id=False)
        if error == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS:
            # The rebalance in progress was lost with the old coordinator; rejoining is the fix,
            # and old clients do not expect COORDINATOR_LOAD_IN_PROGRESS here.
            error = ErrorCode.REBALANCE_IN_PROGRESS
        g = self._groups.get(req.group_id) if error is None else None
        if error is None and g is None:
            error = ErrorCode.UNKNOWN_MEMBER_ID
        if error is not None or g is None:
            out = Output()
            out.respond(waiter, SyncResponse(error or ErrorCode.UNKNOWN_SERVER_ERROR))
            return out
        out = g.sync(req, waiter, now_ms)
        self._after(g)
        return out

    def heartbeat(self, req: HeartbeatRequest, now_ms: int) -> HeartbeatResponse:
        error = self._status_error(req.group_id, allow_empty_id=False)
        if error == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS:
            return HeartbeatResponse(ErrorCode.NONE)  # Kafka answers blindly while loading
        if error is not None:
            return HeartbeatResponse(error)
        g = self._groups.get(req.group_id)
        if g is None:
            return HeartbeatResponse(ErrorCode.UNKNOWN_MEMBER_ID)
        response = g.heartbeat(req, now_ms)
        m = g.members.get(req.member_id)
        if m is not None and m.heartbeat_deadline_ms is not None:
            self._push(g.group_id, m.heartbeat_deadline_ms)  # O(1) unless it moved earlier
        return response

    def leave(self, req: LeaveRequest, waiter: Any, now_ms: int) -> Output:
        error = self._status_error(req.group_id, allow_empty_id=False)
        out = Output()
        if error is not None:
            out.respond(waiter, LeaveResponse(error))
            return out
        g = self._groups.get(req.group_id)
        if g is None:
            out.respond(
                waiter,
                LeaveResponse(
                    ErrorCode.NONE,
                    [
                        LeaveMemberResult(m.member_id, m.group_instance_id, ErrorCode.UNKNOWN_MEMBER_ID)
                        for m in req.members
                    ],
                ),
            )
            return out
        out = g.leave(req, waiter, now_ms)
        self._after(g)
        return out

    def commit_offsets(self, req: OffsetCommitRequest, waiter: Any, now_ms: int) -> Output:
        self._arm_retention(now_ms)
        error = self._status_error(req.group_id, allow_empty_id=True)
        g = None
        if error is None:
            g = self._groups.get(req.group_id)
            if g is None:
                if req.generation_id < 0:
                    # A group that only uses Kafka to store offsets.
                    g = self.get_or_create(req.group_id, now_ms)
                else:
                    # A generation for a group we do not know: a stale member.
                    error = ErrorCode.ILLEGAL_GENERATION
        if error is not None or g is None:
            out = Output()
            out.respond(waiter, Group._commit_error_response(req, error or ErrorCode.UNKNOWN_SERVER_ERROR))
            return out
        # No timer can move earlier here (a commit only pushes its member's session out).
        return g.commit_offsets(req, waiter, now_ms)

    def fetch_offsets(self, req: OffsetFetchRequest) -> OffsetFetchResponse:
        error = self._status_error(req.group_id, allow_empty_id=True)
        if error is not None:
            return OffsetFetchResponse(error)
        g = self._groups.get(req.group_id)
        if g is None:
            parts = [] if req.partitions is None else [OffsetFetchPartitionResult(t, p) for t, p in req.partitions]
            return OffsetFetchResponse(ErrorCode.NONE, parts)
        return g.fetch_offsets(req)

    def delete_offsets(self, req: OffsetDeleteRequest, waiter: Any, now_ms: int) -> Output:
        error = self._status_error(req.group_id, allow_empty_id=False)
        g = self._groups.get(req.group_id) if error is None else None
        if error is None and g is None:
            error = ErrorCode.GROUP_ID_NOT_FOUND
        if error is not None or g is None:
            out = Output()
            out.respond(waiter, OffsetDeleteResponse(error or ErrorCode.UNKNOWN_SERVER_ERROR))
            return out
        out = g.delete_offsets(req, waiter, now_ms)
        self._after(g)
        return out

    def describe_group(self, group_id: str, api_version: int = 5) -> DescribedGroup:
        """DescribeGroups for one group. An unknown group is reported as Dead, with
        GROUP_ID_NOT_FOUND from version 6 on (as Kafka does)."""
        error = self._status_error(group_id, allow_empty_id=True)
        if error is not None:
            return DescribedGroup(error, group_id, "")
        g = self._groups.get(group_id)
        if g is None:
            error = ErrorCode.GROUP_ID_NOT_FOUND if api_version >= 6 else ErrorCode.NONE
            return DescribedGroup(error, group_id, GroupState.DEAD.value)
        return g.describe()

    def describe_groups(self, group_ids: Iterable[str], api_version: int = 5) -> list[DescribedGroup]:
        return [self.describe_group(gid, api_version) for gid in group_ids]

    def list_groups(
        self, states_filter: Iterable[str] | None = None, types_filter: Iterable[str] | None = None
    ) -> ListGroupsResponse:
        """ListGroups. Filters are case-insensitive; an empty filter matches everything. Every
        group here is a "classic" group, so a type filter without "classic" matches nothing."""
        error = ErrorCode.COORDINATOR_LOAD_IN_PROGRESS if self.loading else ErrorCode.NONE
        states = {s.lower() for s in states_filter} if states_filter else None
        if types_filter and "classic" not in {t.lower() for t in types_filter}:
            return ListGroupsResponse(error, [])
        groups = [
            g.overview() for g in self._groups.values() if states is None or g.state.value.lower() in states
        ]
        return ListGroupsResponse(error, groups)

    def delete_groups(self, group_ids: Sequence[str], waiter: Any, now_ms: int) -> Output:
        """DeleteGroups. Only Empty groups can be deleted (NON_EMPTY_GROUP otherwise); a deleted
        group becomes Dead at once and is answered once its tombstones are written."""
        out = Output()
        results: dict[str, int] = {}
        outstanding = 0

        def respond(out_: Output) -> None:
            out_.respond(
                waiter, DeleteGroupsResponse(ErrorCode.NONE, [DeleteGroupResult(g, e) for g, e in results.items()])
            )

        def on_done_for(gid: str) -> Callable[[int, int, Output], None]:
            def on_done(error: int, now2: int, out2: Output) -> None:
                nonlocal outstanding
                if error != ErrorCode.NONE:
                    results[gid] = group_store_error(error)
                outstanding -= 1
                if outstanding == 0:
                    respond(out2)

            return on_done

        for gid in dict.fromkeys(group_ids):
            error = self._status_error(gid, allow_empty_id=True)
            g = self._groups.get(gid) if error is None else None
            if error is None and g is None:
                error = ErrorCode.GROUP_ID_NOT_FOUND
            if error is not None or g is None:
                results[gid] = error or ErrorCode.UNKNOWN_SERVER_ERROR
                continue
            error, records = g.delete(now_ms)
            results[gid] = error
            if g.state is GroupState.DEAD:
                self._drop(g)
            if records:
                outstanding += 1
                write = PendingWrite(gid, records, on_done_for(gid))
                write.affects_timers = False
                out.writes.append(write)
        if outstanding == 0:
            respond(out)
        return out

    def unload(self, group_ids: Iterable[str], now_ms: int) -> Output:
        """Stop coordinating these groups (e.g. this node lost their ``__consumer_offsets``
        partition): parked requests are answered NOT_COORDINATOR and the groups are dropped."""
        out = Output()
        for gid in group_ids:
            g = self._groups.get(gid)
            if g is not None:
                out.extend(g.unload(now_ms))
                self._drop(g)
        return out

    # ==================================================================================== time

    def next_deadline_ms(self) -> int | None:
        """When :meth:`tick` should next be called (None: nothing scheduled)."""
        heap = self._heap
        while heap:
            d, gid = heap[0]
            if self._scheduled.get(gid) == d and gid in self._groups:
                break
            heapq.heappop(heap)
        candidates = []
        if heap:
            candidates.append(heap[0][0])
        if self._next_retention_check_ms is not None:
            candidates.append(self._next_retention_check_ms)
        return min(candidates) if candidates else None

    def tick(self, now_ms: int) -> Output:
        """Fire the timers due at ``now_ms`` in every group, and run offset retention when due."""
        self._arm_retention(now_ms)
        out = Output()
        due: list[str] = []
        heap = self._heap
        while heap and heap[0][0] <= now_ms:
            d, gid = heapq.heappop(heap)
            if self._scheduled.get(gid) != d:
                continue  # stale entry
            del self._scheduled[gid]
            due.append(gid)
        for gid in due:
            g = self._groups.get(gid)
            if g is None:
                continue
            out.extend(g.tick(now_ms))
            self._after(g)
        if self._next_retention_check_ms is not None and self._next_retention_check_ms <= now_ms:
            out.extend(self.expire_offsets(now_ms))
        return out

    def expire_offsets(self, now_ms: int) -> Output:
        """Offset retention over all groups (Kafka's periodic cleanupGroupMetadata): returns the
        tombstones to write; groups left Empty with no offsets are dropped."""
        self._next_retention_check_ms = now_ms + self.config.offsets_retention_check_interval_ms
        out = Output()
        for g in list(self._groups.values()):
            records = g.expire_offsets(now_ms)
            if records:
                write = PendingWrite(g.group_id, records, None)
                write.affects_timers = False
                out.writes.append(write)
            if g.state is GroupState.DEAD:
                self._drop(g)
        return out

    def _arm_retention(self, now_ms: int) -> None:
        if self._next_retention_check_ms is None:
            self._next_retention_check_ms = now_ms + self.config.offsets_retention_check_interval_ms

    # ============================================================================= persistence

    def complete_write(self, write: PendingWrite, error_code: int, now_ms: int) -> Output:
        """Report the outcome of persisting ``write`` (``ErrorCode.NONE`` = durable); returns the
        responses that were waiting for it."""
        out = complete_write(write, error_code, now_ms)
        g = self._groups.get(write.group_id)
        if g is not None and write.affects_timers:
            self._after(g)
        return out

    # ================================================================================= loading

    def load(self, records: Iterable[rec.Record | tuple[bytes, bytes | None]], now_ms: int) -> LoadResult:
        """Rebuild groups and offsets from replayed ``__consumer_offsets`` records, in log order
        (later records override earlier ones; tombstones delete).

        As in Kafka, a group comes back as it was persisted: Stable with its members (who are
        not connected: they must heartbeat within their session timeout, counted from
        ``now_ms``, or be removed, which triggers a rebalance) or Empty. Offsets whose group has
        no metadata come back in an Empty group of generation 0. Records whose key version is
        unknown are skipped and counted; an unknown *value* version raises
        :class:`~kop_fast.coordinator.records.UnknownRecordVersionError`, because skipping a
        known key's value would silently lose state.

        All records of a group must be in one call; loading a group the manager already holds
        raises ValueError.
        """
        offsets: dict[str, dict[TopicPartition, OffsetAndMetadata]] = {}
        metadata: dict[str, rec.GroupMetadataValue] = {}
        skipped = 0
        for record in records:
            key_bytes, value_bytes = (record.key, record.value) if isinstance(record, rec.Record) else record
            try:
                key = rec.decode_key(key_bytes)
            except rec.UnknownRecordVersionError:
                skipped += 1
                continue
            if isinstance(key, rec.OffsetCommitKey):
                group_offsets = offsets.setdefault(key.group_id, {})
                tp = (key.topic, key.partition)
                if value_bytes is None:
                    group_offsets.pop(tp, None)
                else:
                    v = rec.decode_offset_commit_value(value_bytes)
                    group_offsets[tp] = OffsetAndMetadata(
                        v.offset, v.leader_epoch, v.metadata, v.commit_timestamp_ms, v.expire_timestamp_ms
                    )
            else:
                if value_bytes is None:
                    metadata.pop(key.group_id, None)
                else:
                    metadata[key.group_id] = rec.decode_group_metadata_value(value_bytes)

        loaded: list[Group] = []
        for gid in list(metadata) + [gid for gid, offs in offsets.items() if offs and gid not in metadata]:
            if gid in self._groups:
                raise ValueError(f"group {gid!r} is already loaded")
            if gid in metadata:
                g = Group.from_record(gid, metadata[gid], self.config, now_ms, id_factory=self._id_factory)
            else:
                g = Group(gid, self.config, now_ms, id_factory=self._id_factory)
            for tp, oam in offsets.get(gid, {}).items():
                g.offsets.load(tp, oam)
            loaded.append(g)

        n_offsets = 0
        for g in loaded:
            self._groups[g.group_id] = g
            g.on_loaded(now_ms)
            self._after(g)
            n_offsets += len(g.offsets)
        self._arm_retention(now_ms)
        return LoadResult(groups=len(loaded), offsets=n_offsets, skipped_records=skipped)

    # ================================================================================ internals

    def _push(self, group_id: str, deadline: int) -> None:
        current = self._scheduled.get(group_id)
        if current is None or deadline < current:
            self._scheduled[group_id] = deadline
            heapq.heappush(self._heap, (deadline, group_id))

    def _after(self, g: Group) -> None:
        """Bookkeeping after a group changed: drop it if Dead, else (re)schedule its timer."""
        if g.state is GroupState.DEAD:
            self._drop(g)
            return
        d = g.next_deadline_ms()
        if d is not None:
            self._push(g.group_id, d)

    def _drop(self, g: Group) -> None:
        if self._groups.get(g.group_id) is g:
            del self._groups[g.group_id]
            self._scheduled.pop(g.group_id, None)
