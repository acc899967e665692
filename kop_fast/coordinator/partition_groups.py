"""The coordinator's front door: a :class:`PartitionGroups` owns every group of one
``__consumer_offsets`` partition that this node coordinates.

(The asyncio driver, ``kop_fast.server.group_coordinator.GroupCoordinator``, keeps one
PartitionGroups per partition it owns; this class does no I/O.)

It does what Kafka's ``GroupCoordinator.handle*`` methods do before reaching a group (group id
validation, ``COORDINATOR_LOAD_IN_PROGRESS`` while loading, session-timeout bounds, creating a
group on the first JoinGroup or "simple" OffsetCommit), routes the request to the
:class:`~kop_fast.coordinator.group.Group`, keeps one timer queue for all its groups, runs
offset retention, and rebuilds state from replayed records.

Driving it from asyncio (sketch)::

    out = groups.join(req, fut, clock.now_ms())
    dispatch(out)                      # resolve completions, persist writes
    rearm_timer(groups.next_deadline_ms())

    def dispatch(out):
        for waiter, response in out.completions:
            waiter.set_result(response)
        for write in out.writes:       # in this order, to partition_for(write.group_id, n)
            schedule(persist(write))   # then: dispatch(groups.complete_write(write, err, now))

    on timer: dispatch(groups.tick(now)); rearm_timer(groups.next_deadline_ms())

See :mod:`kop_fast.coordinator.group` for the persistence contract. Heartbeat, OffsetFetch,
DescribeGroups and ListGroups never wait and return their response directly.

Loading: set ``groups.loading = True`` while the records of the partition are being read
(requests then get ``COORDINATOR_LOAD_IN_PROGRESS``, or what Kafka answers instead for
Heartbeat and SyncGroup), call :meth:`PartitionGroups.load` with them, then set it back to False.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable, Iterable, Sequence

from kop_fast.protocol.errors import ErrorCode

from . import records as rec
from .errors import group_store_error
from .group import Group
from .group_base import GroupConfig, GroupState
from .messages import UNKNOWN_MEMBER_ID, Output, PendingWrite, complete_write
from .messages import HeartbeatRequest, HeartbeatResponse, JoinRequest, SyncRequest, SyncResponse, join_error
from .messages import LeaveMemberResult, LeaveRequest, LeaveResponse
from .messages import OffsetCommitRequest, commit_error_response
from .messages import OffsetFetchPartitionResult, OffsetFetchRequest, OffsetFetchResponse
from .messages import OffsetDeleteRequest, OffsetDeleteResponse
from .messages import DeleteGroupResult, DeleteGroupsResponse, DescribedGroup, ListGroupsResponse
from .offsets import OffsetAndMetadata, TopicPartition

__all__ = ["LoadResult", "PartitionGroups"]


@dataclass(frozen=True, slots=True)
class LoadResult:
    groups: int  # groups rebuilt (with metadata, or offsets only)
    offsets: int  # committed offsets restored
    skipped_records: int  # records with a key version this code does not know (skipped, as Kafka does)


class PartitionGroups:
    """The groups of one ``__consumer_offsets`` partition, plus a shared timer queue."""

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

    def _status_error(self, group_id: str | None, *, allow_empty_id: bool) -> int:
        """What every request is answered before its group is looked at (``none``: go on)."""
        # OffsetCommit/OffsetFetch/DescribeGroups/DeleteGroups accept "" for compatibility;
        # the group-management APIs need a real id (Kafka's isValidGroupId).
        if group_id is None or (not allow_empty_id and group_id == ""):
            return ErrorCode.invalid_group_id
        if self.loading:
            return ErrorCode.coordinator_load_in_progress
        return ErrorCode.none

    def _find(self, group_id: str, *, allow_empty_id: bool, if_missing: int) -> tuple[Group | None, int]:
        """The group a request goes to and ``none``; or None and the error to answer instead
        (``if_missing`` when the group does not exist)."""
        error = self._status_error(group_id, allow_empty_id=allow_empty_id)
        if error != ErrorCode.none:
            return None, error
        g = self._groups.get(group_id)
        return (g, ErrorCode.none) if g is not None else (None, if_missing)

    def join(self, req: JoinRequest, waiter: Any, now_ms: int) -> Output:
        self._arm_retention(now_ms)
        error = self._status_error(req.group_id, allow_empty_id=False)
        if error == ErrorCode.none and not (
            self.config.min_session_timeout_ms <= req.session_timeout_ms <= self.config.max_session_timeout_ms
        ):
            error = ErrorCode.invalid_session_timeout
        g = self._groups.get(req.group_id) if error == ErrorCode.none else None
        if error == ErrorCode.none and g is None:
            if req.member_id == UNKNOWN_MEMBER_ID:
                g = self.get_or_create(req.group_id, now_ms)
            else:
                # A member id for a group we do not know: the client must start over.
                error = ErrorCode.unknown_member_id
        if g is None:
            return Output.of(waiter, join_error(error, req.member_id))
        out = g.join(req, waiter, now_ms)
        self._after(g)
        return out

    def sync(self, req: SyncRequest, waiter: Any, now_ms: int) -> Output:
        g, error = self._find(req.group_id, allow_empty_id=False, if_missing=ErrorCode.unknown_member_id)
        if g is None:
            if error == ErrorCode.coordinator_load_in_progress:
                # The rebalance in progress was lost with the old coordinator; rejoining is the
                # fix, and old clients do not expect COORDINATOR_LOAD_IN_PROGRESS here.
                error = ErrorCode.rebalance_in_progress
            return Output.of(waiter, SyncResponse(error))
        out = g.sync(req, waiter, now_ms)
        self._after(g)
        return out

    def heartbeat(self, req: HeartbeatRequest, now_ms: int) -> HeartbeatResponse:
        g, error = self._find(req.group_id, allow_empty_id=False, if_missing=ErrorCode.unknown_member_id)
        if g is None:
            if error == ErrorCode.coordinator_load_in_progress:
                return HeartbeatResponse(ErrorCode.none)  # Kafka answers blindly while loading
            return HeartbeatResponse(error)
        response = g.heartbeat(req, now_ms)
        m = g.members.get(req.member_id)
        if m is not None and m.heartbeat_deadline_ms is not None:
            self._push(g.group_id, m.heartbeat_deadline_ms)  # O(1) unless it moved earlier
        return response

    def leave(self, req: LeaveRequest, waiter: Any, now_ms: int) -> Output:
        error = self._status_error(req.group_id, allow_empty_id=False)
        if error != ErrorCode.none:
            return Output.of(waiter, LeaveResponse(error))
        g = self._groups.get(req.group_id)
        if g is None:
            results = [
                LeaveMemberResult(m.member_id, m.group_instance_id, ErrorCode.unknown_member_id) for m in req.members
            ]
            return Output.of(waiter, LeaveResponse(ErrorCode.none, results))
        out = g.leave(req, waiter, now_ms)
        self._after(g)
        return out

    def commit_offsets(self, req: OffsetCommitRequest, waiter: Any, now_ms: int) -> Output:
        self._arm_retention(now_ms)
        error = self._status_error(req.group_id, allow_empty_id=True)
        g = self._groups.get(req.group_id) if error == ErrorCode.none else None
        if error == ErrorCode.none and g is None:
            if req.generation_id < 0:
                # A group that only uses Kafka to store offsets.
                g = self.get_or_create(req.group_id, now_ms)
            else:
                # A generation for a group we do not know: a stale member.
                error = ErrorCode.illegal_generation
        if g is None:
            return Output.of(waiter, commit_error_response(req, error))
        # No timer can move earlier here (a commit only pushes its member's session out).
        return g.commit_offsets(req, waiter, now_ms)

    def fetch_offsets(self, req: OffsetFetchRequest) -> OffsetFetchResponse:
        error = self._status_error(req.group_id, allow_empty_id=True)
        if error != ErrorCode.none:
            return OffsetFetchResponse(error)
        g = self._groups.get(req.group_id)
        if g is None:
            parts = [] if req.partitions is None else [OffsetFetchPartitionResult(t, p) for t, p in req.partitions]
            return OffsetFetchResponse(ErrorCode.none, parts)
        return g.fetch_offsets(req)

    def delete_offsets(self, req: OffsetDeleteRequest, waiter: Any, now_ms: int) -> Output:
        g, error = self._find(req.group_id, allow_empty_id=False, if_missing=ErrorCode.group_id_not_found)
        if g is None:
            return Output.of(waiter, OffsetDeleteResponse(error))
        out = g.delete_offsets(req, waiter, now_ms)
        self._after(g)
        return out

    def describe_group(self, group_id: str, api_version: int = 5) -> DescribedGroup:
        """DescribeGroups for one group. An unknown group is reported as Dead, with
        GROUP_ID_NOT_FOUND from version 6 on (as Kafka does)."""
        error = self._status_error(group_id, allow_empty_id=True)
        if error != ErrorCode.none:
            return DescribedGroup(error, group_id, "")
        g = self._groups.get(group_id)
        if g is None:
            error = ErrorCode.group_id_not_found if api_version >= 6 else ErrorCode.none
            return DescribedGroup(error, group_id, GroupState.DEAD.value)
        return g.describe()

    def describe_groups(self, group_ids: Iterable[str], api_version: int = 5) -> list[DescribedGroup]:
        return [self.describe_group(gid, api_version) for gid in group_ids]

    def list_groups(
        self, states_filter: Iterable[str] | None = None, types_filter: Iterable[str] | None = None
    ) -> ListGroupsResponse:
        """ListGroups. Filters are case-insensitive; an empty filter matches everything. Every
        group here is a "classic" group, so a type filter without "classic" matches nothing."""
        error = ErrorCode.coordinator_load_in_progress if self.loading else ErrorCode.none
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
                waiter, DeleteGroupsResponse(ErrorCode.none, [DeleteGroupResult(g, e) for g, e in results.items()])
            )

        def on_done_for(gid: str) -> Callable[[int, int, Output], None]:
            def on_done(error: int, now2: int, out2: Output) -> None:
                nonlocal outstanding
                if error != ErrorCode.none:
                    results[gid] = group_store_error(error)
                outstanding -= 1
                if outstanding == 0:
                    respond(out2)

            return on_done

        for gid in dict.fromkeys(group_ids):
            g, error = self._find(gid, allow_empty_id=True, if_missing=ErrorCode.group_id_not_found)
            if g is None:
                results[gid] = error
                continue
            error, records = g.delete(now_ms)
            results[gid] = error
            if g.state is GroupState.DEAD:
                self._drop(g)
            if records:
                outstanding += 1
                out.writes.append(PendingWrite(gid, records, on_done_for(gid), affects_timers=False))
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
                out.writes.append(PendingWrite(g.group_id, records, None, affects_timers=False))
            if g.state is GroupState.DEAD:
                self._drop(g)
        return out

    def _arm_retention(self, now_ms: int) -> None:
        if self._next_retention_check_ms is None:
            self._next_retention_check_ms = now_ms + self.config.offsets_retention_check_interval_ms

    # ============================================================================= persistence

    def complete_write(self, write: PendingWrite, error_code: int, now_ms: int) -> Output:
        """Report the outcome of persisting ``write`` (``ErrorCode.none`` = durable); returns the
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

        All records of a group must be in one call; loading a group this object already holds
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
                    group_offsets[tp] = rec.decode_offset_commit_value(value_bytes)
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
