"""The data of one consumer group and the bookkeeping every request handler of it shares.

:class:`GroupBase` holds a group's state (membership, generation, protocol, timers' deadlines,
committed offsets) and the primitives that change it consistently: state transitions, adding,
updating and removing members, member validation, and the group-metadata record. The request
handlers build on it: :mod:`.rebalance` (timers and the rebalance phases), :mod:`.membership`
(JoinGroup, SyncGroup, Heartbeat, LeaveGroup) and :mod:`.group_offsets` (OffsetCommit,
OffsetFetch, OffsetDelete, retention); :class:`~kop_fast.coordinator.group.Group` puts them
together.
"""

from __future__ import annotations

import enum
import struct
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable, Mapping, Sequence

from kop_fast.protocol.errors import ErrorCode

from . import records as rec
from .errors import IllegalStateError
from .member import Member, subscribed_topics_of
from .messages import (
    DescribedGroup,
    DescribedMember,
    JoinResponseMember,
    ListedGroup,
    Output,
    PendingWrite,
    SyncResponse,
    WriteCallback,
    join_error,
)
from .offsets import OffsetTable

__all__ = ["CONSUMER_PROTOCOL_TYPE", "GroupBase", "GroupConfig", "GroupState"]

CONSUMER_PROTOCOL_TYPE = "consumer"


class GroupState(enum.StrEnum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


# Short names for the states, used by all the modules of the group.
EMPTY = GroupState.EMPTY
PREPARING = GroupState.PREPARING_REBALANCE
COMPLETING = GroupState.COMPLETING_REBALANCE
STABLE = GroupState.STABLE
DEAD = GroupState.DEAD


class Counters:
    """Process-wide event counts of every group (read by the metrics at scrape time)."""

    rebalances = 0  # transitions into PreparingRebalance


COUNTERS = Counters()

_VALID_PREVIOUS_STATES: dict[GroupState, frozenset[GroupState]] = {
    DEAD: frozenset({STABLE, PREPARING, COMPLETING, EMPTY, DEAD}),
    COMPLETING: frozenset({PREPARING}),
    STABLE: frozenset({COMPLETING}),
    PREPARING: frozenset({STABLE, COMPLETING, EMPTY}),
    EMPTY: frozenset({PREPARING}),
}


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """Broker settings of the coordinator (Kafka's names in comments; Kafka's defaults)."""

    min_session_timeout_ms: int = 6_000  # group.min.session.timeout.ms
    max_session_timeout_ms: int = 1_800_000  # group.max.session.timeout.ms
    max_size: int = 2**31 - 1  # group.max.size
    initial_rebalance_delay_ms: int = 3_000  # group.initial.rebalance.delay.ms
    offset_metadata_max_bytes: int = 4_096  # offset.metadata.max.bytes
    offsets_retention_ms: int = 7 * 24 * 60 * 60 * 1000  # offsets.retention.minutes = 10080
    offsets_retention_check_interval_ms: int = 600_000  # offsets.retention.check.interval.ms
    # Kafka's GroupCoordinator.NewMemberJoinTimeoutMs: a brand-new member parked in JoinGroup
    # cannot heartbeat, so it is dropped if the rebalance takes longer than this.
    new_member_join_timeout_ms: int = 300_000


class GroupBase:
    """One consumer group's state, and the operations on it that the request handlers share."""

    def __init__(
        self,
        group_id: str,
        config: GroupConfig,
        now_ms: int,
        *,
        id_factory: Callable[[], str] | None = None,
    ) -> None:
        self.group_id = group_id
        self.config = config
        self._id_factory = id_factory or (lambda: str(uuid.uuid4()))
        self.state = EMPTY
        # When the state last changed; persisted so that KIP-211 retention ("expire offsets
        # retention_ms after the group became Empty") survives a restart. None = unknown.
        self.state_timestamp_ms: int | None = now_ms
        self.protocol_type: str | None = None
        self.protocol_name: str | None = None
        self.generation_id = 0
        self.leader_id: str | None = None
        self.members: dict[str, Member] = {}  # insertion ordered: first joiner first
        self.static_members: dict[str, str] = {}  # group.instance.id -> member id
        self.pending_members: dict[str, int] = {}  # MEMBER_ID_REQUIRED ids -> expiry deadline
        self.pending_sync_members: set[str] = set()
        self.offsets = OffsetTable()
        # Topics the members subscribe to, for consumer groups (None = unknown).
        self.subscribed_topics: frozenset[str] | None = None
        # Set when a member joins during the initial delay, which extends the delay.
        self.new_member_added = False
        self._protocol_support: Counter[str] = Counter()  # protocol -> members supporting it
        # Rebalance (join) timer: Kafka's DelayedJoin / InitialDelayedJoin.
        self._join_deadline_ms: int | None = None
        self._join_initial = False
        self._join_delay_ms = 0
        self._join_remaining_ms = 0
        # Pending-sync timer: Kafka's DelayedSync, for one generation.
        self._sync_deadline_ms: int | None = None
        self._sync_generation = -1

    # ============================================================================ introspection

    def __repr__(self) -> str:
        return (
            f"Group({self.group_id!r}, {self.state.value}, generation={self.generation_id}, "
            f"protocol={self.protocol_name!r}, leader={self.leader_id!r}, members={list(self.members)})"
        )

    @property
    def size(self) -> int:
        return len(self.members)

    def is_leader(self, member_id: str) -> bool:
        return self.leader_id is not None and self.leader_id == member_id

    def is_pending_member(self, member_id: str) -> bool:
        return member_id in self.pending_members and member_id not in self.members

    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def has_all_members_joined(self) -> bool:
        return not self.pending_members and all(m.join_waiter is not None for m in self.members.values())

    def is_consumer_group(self) -> bool:
        return self.protocol_type == CONSUMER_PROTOCOL_TYPE

    def is_subscribed_to_topic(self, topic: str) -> bool:
        """Unknown subscriptions count as subscribed, to be safe (as in Kafka)."""
        return True if self.subscribed_topics is None else topic in self.subscribed_topics

    def supports_protocols(self, protocol_type: str, protocol_names: set[str]) -> bool:
        if self.state is EMPTY:
            return bool(protocol_type) and bool(protocol_names)
        n = len(self.members)
        return self.protocol_type == protocol_type and any(self._protocol_support[p] == n for p in protocol_names)

    def select_protocol(self) -> str:
        """The protocol every member supports with the most votes, each member voting for its
        most preferred candidate. Ties go to the protocol that got its first vote from the
        earliest-joined member (Kafka leaves ties to hash order)."""
        if not self.members:
            raise IllegalStateError("cannot select a protocol for an empty group")
        n = len(self.members)
        candidates = {p for p, c in self._protocol_support.items() if c == n}
        votes: dict[str, int] = {}
        for m in self.members.values():
            p = m.vote(candidates)
            votes[p] = votes.get(p, 0) + 1
        best = None
        for p, c in votes.items():
            if best is None or c > votes[best]:
                best = p
        assert best is not None
        return best

    def current_member_metadata(self) -> list[JoinResponseMember]:
        if self.state in (DEAD, PREPARING) or self.protocol_name is None:
            raise IllegalStateError(f"cannot list member metadata of group in state {self.state}")
        p = self.protocol_name
        return [JoinResponseMember(m.member_id, m.group_instance_id, m.metadata(p)) for m in self.members.values()]

    def describe(self) -> DescribedGroup:
        if self.state is STABLE:
            p = self.protocol_name or ""
            members = [
                DescribedMember(
                    m.member_id, m.group_instance_id, m.client_id, m.client_host, m.metadata(p), m.assignment
                )
                for m in self.members.values()
            ]
            return DescribedGroup(ErrorCode.none, self.group_id, self.state.value, self.protocol_type or "", p, members)
        members = [
            DescribedMember(m.member_id, m.group_instance_id, m.client_id, m.client_host, b"", b"")
            for m in self.members.values()
        ]
        return DescribedGroup(ErrorCode.none, self.group_id, self.state.value, self.protocol_type or "", "", members)

    def overview(self) -> ListedGroup:
        return ListedGroup(self.group_id, self.protocol_type or "", self.state.value)

    # ============================================================================ membership core

    def _transition(self, target: GroupState, now: int) -> None:
        if self.state not in _VALID_PREVIOUS_STATES[target]:
            raise IllegalStateError(f"group {self.group_id}: invalid transition {self.state} -> {target}")
        self.state = target
        self.state_timestamp_ms = now
        if target is PREPARING:
            COUNTERS.rebalances += 1

    def _schedule_heartbeat(self, m: Member, now: int, timeout_ms: int | None = None) -> None:
        m.heartbeat_deadline_ms = now + (m.session_timeout_ms if timeout_ms is None else timeout_ms)

    def _add_member(self, m: Member, join_waiter: tuple[Any] | None) -> None:
        if not self.members:
            self.protocol_type = m.protocol_type
        if self.leader_id is None:
            self.leader_id = m.member_id
        self.members[m.member_id] = m
        self._protocol_support.update(m.protocol_names())
        m.join_waiter = join_waiter
        if m.group_instance_id is not None:
            self.static_members[m.group_instance_id] = m.member_id
        self.pending_members.pop(m.member_id, None)

    def _remove_member(self, member_id: str, out: Output) -> None:
        """Drop a member (no rebalance decision here). Its parked requests, if any, are answered
        with UNKNOWN_MEMBER_ID so they never hang."""
        m = self.members.pop(member_id, None)
        if m is not None:
            self._protocol_support.subtract(m.protocol_names())
            self._protocol_support += Counter()  # drop zero counts
            if m.group_instance_id is not None and self.static_members.get(m.group_instance_id) == member_id:
                del self.static_members[m.group_instance_id]
            if m.join_waiter is not None:
                out.respond(m.join_waiter[0], join_error(ErrorCode.unknown_member_id))
                m.join_waiter = None
            if m.sync_waiter is not None:
                out.respond(m.sync_waiter[0], SyncResponse(ErrorCode.unknown_member_id))
                m.sync_waiter = None
            m.heartbeat_deadline_ms = None
        if self.leader_id == member_id:
            self.leader_id = next(iter(self.members), None)
        self.pending_members.pop(member_id, None)
        self._remove_pending_sync(member_id)

    def _remove_pending_sync(self, member_id: str) -> None:
        self.pending_sync_members.discard(member_id)
        if not self.pending_sync_members:
            self._sync_deadline_ms = None

    def _update_member(
        self,
        m: Member,
        protocols: Sequence[tuple[str, bytes]],
        rebalance_timeout_ms: int,
        session_timeout_ms: int,
        join_waiter: tuple[Any] | None,
        out: Output,
    ) -> None:
        self._protocol_support.subtract(m.protocol_names())
        m.protocols = [(n, bytes(md)) for n, md in protocols]
        self._protocol_support.update(m.protocol_names())
        self._protocol_support += Counter()
        m.rebalance_timeout_ms = rebalance_timeout_ms
        m.session_timeout_ms = session_timeout_ms
        if join_waiter is not None and m.join_waiter is not None and m.join_waiter is not join_waiter:
            # The member re-sent JoinGroup while the previous one was parked; Kafka drops the
            # old one silently, we answer it so its waiter does not leak.
            out.respond(m.join_waiter[0], join_error(ErrorCode.rebalance_in_progress, m.member_id))
        m.join_waiter = join_waiter

    def _validate_current_member(self, member_id: str, group_instance_id: str | None) -> int | None:
        """Kafka's validateCurrentMember: static identity first, then the member id."""
        if group_instance_id is not None:
            current = self.static_members.get(group_instance_id)
            if current is None:
                return ErrorCode.unknown_member_id
            if current != member_id:
                return ErrorCode.fenced_instance_id
            return None
        if member_id not in self.members:
            return ErrorCode.unknown_member_id
        return None

    def _generate_member_id(self, client_id: str, group_instance_id: str | None) -> str:
        prefix = group_instance_id if group_instance_id is not None else client_id
        return f"{prefix}-{self._id_factory()}"

    def _compute_subscribed_topics(self) -> frozenset[str] | None:
        if self.protocol_type != CONSUMER_PROTOCOL_TYPE:
            return None
        if not self.members:
            return frozenset()
        if self.protocol_name is None:
            return None
        topics: set[str] = set()
        try:
            for m in self.members.values():
                topics |= subscribed_topics_of(m.metadata(self.protocol_name))
        except (struct.error, ValueError, UnicodeDecodeError, IllegalStateError):
            return None  # not the consumer protocol we know: subscriptions unknown
        return frozenset(topics)

    # ============================================================================= persistence

    def _write(
        self, out: Output, records: list[rec.Record], on_done: WriteCallback | None, *, affects_timers: bool = True
    ) -> PendingWrite:
        write = PendingWrite(self.group_id, records, on_done, affects_timers=affects_timers)
        out.writes.append(write)
        return write

    def metadata_value(self, assignment: Mapping[str, bytes]) -> rec.GroupMetadataValue:
        protocol = self.protocol_name
        return rec.GroupMetadataValue(
            protocol_type=self.protocol_type or "",
            generation=self.generation_id,
            protocol=protocol,
            leader=self.leader_id,
            current_state_timestamp_ms=-1 if self.state_timestamp_ms is None else self.state_timestamp_ms,
            members=tuple(
                rec.MemberMetadataValue(
                    member_id=m.member_id,
                    group_instance_id=m.group_instance_id,
                    client_id=m.client_id,
                    client_host=m.client_host,
                    rebalance_timeout_ms=m.rebalance_timeout_ms,
                    session_timeout_ms=m.session_timeout_ms,
                    subscription=m.metadata(protocol) if protocol is not None else b"",
                    assignment=assignment.get(m.member_id, b""),
                )
                for m in self.members.values()
            ),
        )

    def _metadata_record(self, assignment: Mapping[str, bytes]) -> rec.Record:
        return rec.group_metadata_record(self.group_id, self.metadata_value(assignment))
