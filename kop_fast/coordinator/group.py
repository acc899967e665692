"""The per-group state machine of the Kafka consumer-group coordinator (classic protocol).

It follows Kafka's ``GroupCoordinator`` / ``GroupMetadata`` (Kafka 3.x, including KIP-345 static
membership, KIP-394 member-id-required joins, KIP-429-compatible rejoin handling, KIP-211 offset
retention, KIP-496 OffsetDelete, KIP-814 skip-assignment, pending-sync expiry). It is *sans-io*:
no sockets, no asyncio, no clock. The asyncio layer drives it.

Group states (Kafka's transitions)::

    Empty --join--> PreparingRebalance --all joined / timeout--> CompletingRebalance
    CompletingRebalance --leader's SyncGroup persisted--> Stable
    Stable / CompletingRebalance --join with new metadata, leader join, leave, expiry--> PreparingRebalance
    PreparingRebalance --nobody left--> Empty
    any --DeleteGroups (Empty only) / offset expiry (Empty, no offsets) / unload--> Dead

How to drive it
---------------
Every request method takes a request dataclass, an opaque ``waiter`` token chosen by the caller
(e.g. an ``asyncio.Future``; it is only stored and handed back, never inspected) and ``now_ms``
(wall-clock epoch milliseconds). Methods that may change state return an :class:`Output`:

* ``Output.completions``: ``(waiter, response)`` pairs to deliver now. They include the
  caller's own response when it is ready, and responses to *other* waiters that this call
  released (e.g. the last member to rejoin releases every parked JoinGroup). A JoinGroup or
  SyncGroup that has to wait produces no completion for its waiter yet; it is answered later
  from another call, from :meth:`Group.tick`, or from :func:`complete_write`.
* ``Output.writes``: :class:`PendingWrite` objects, records to persist (see below).

Read-only methods (``heartbeat``, ``fetch_offsets``, ``describe``, ``overview``) return their
response directly.

Timers (session timeouts, rebalance timeouts, the initial rebalance delay, pending-member and
pending-sync expiry) are plain deadlines: call :meth:`Group.tick` (or
``GroupManager.tick``) whenever ``next_deadline_ms()`` has passed. Re-read ``next_deadline_ms()``
after every call, because calls move deadlines.

Every waiter handed in is answered exactly once, eventually, as long as the I/O layer keeps
ticking and completes every write. Where Kafka would silently drop a parked request (a member
re-sending JoinGroup/SyncGroup while the first one is parked, or a member removed while parked),
this state machine answers the superseded waiter (REBALANCE_IN_PROGRESS / UNKNOWN_MEMBER_ID)
so futures never leak.

Persistence contract
--------------------
State that must survive a restart is written as :class:`~kop_fast.coordinator.records.Record`
key/value pairs, grouped in a :class:`PendingWrite`. The choice made here is **apply after
persist**, exactly like Kafka's coordinator:

* an OffsetCommit *stages* the offsets (pending: not visible to OffsetFetch, reported as
  UNSTABLE_OFFSET_COMMIT to fetches that require stable offsets) and returns a PendingWrite;
  the commit's response is **not** in any Output until the I/O layer reports the write's
  outcome with :func:`complete_write` (``GroupManager.complete_write``), which applies the
  offsets and emits the response (or fails them and emits the error);
* the leader's SyncGroup in CompletingRebalance writes the group's assignment; the group becomes
  Stable and every parked SyncGroup is answered only in ``complete_write``;
* a static member replacing its old member id while Stable is answered only once the new
  member id is persisted;
* OffsetDelete and DeleteGroups are answered once their tombstones are written (Kafka answers
  these before the tombstones land; waiting is strictly safer);
* the metadata of a group that became Empty, and tombstones from offset expiry, have no waiter.

So if the I/O layer only ever delivers ``Output.completions``, a response that depends on
durable state cannot reach a client before that state is durable. The I/O layer must:

1. append ``write.records`` to ``__consumer_offsets`` partition
   ``partition_for(write.group_id, n)``, preserving the order in which PendingWrites were
   emitted (at least per group; a per-partition FIFO producer does that);
2. call ``complete_write(write, error_code, now_ms)`` exactly once per write, with
   ``ErrorCode.NONE`` on success or a Kafka error code on failure/timeout (e.g.
   ``COORDINATOR_NOT_AVAILABLE``, ``NOT_COORDINATOR`` after losing ownership,
   ``REQUEST_TIMED_OUT``); it is translated the way Kafka translates storage errors;
3. deliver the completions that call returns.
"""

from __future__ import annotations

import enum
import itertools
import logging
import struct
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable, Mapping, Sequence

from . import records as rec
from .errors import ErrorCode, as_error_code, group_store_error, offset_commit_store_error
from .offsets import OffsetAndMetadata, OffsetTable, TopicPartition

__all__ = [
    "CONSUMER_PROTOCOL_TYPE",
    "GroupState",
    "GroupConfig",
    "IllegalStateError",
    "Member",
    "Group",
    "Output",
    "PendingWrite",
    "complete_write",
    # requests / responses
    "JoinRequest",
    "JoinResponse",
    "JoinResponseMember",
    "SyncRequest",
    "SyncResponse",
    "HeartbeatRequest",
    "HeartbeatResponse",
    "LeaveMember",
    "LeaveRequest",
    "LeaveMemberResult",
    "LeaveResponse",
    "OffsetCommitPartition",
    "OffsetCommitRequest",
    "OffsetCommitPartitionResult",
    "OffsetCommitResponse",
    "OffsetFetchRequest",
    "OffsetFetchPartitionResult",
    "OffsetFetchResponse",
    "OffsetDeleteRequest",
    "OffsetDeletePartitionResult",
    "OffsetDeleteResponse",
    "DescribedMember",
    "DescribedGroup",
    "ListedGroup",
    "ListGroupsResponse",
    "DeleteGroupResult",
    "DeleteGroupsResponse",
]

_log = logging.getLogger(__name__)

CONSUMER_PROTOCOL_TYPE = "consumer"
NO_GENERATION = -1
UNKNOWN_MEMBER_ID = ""


class IllegalStateError(RuntimeError):
    """An internal invariant was violated (an invalid state transition)."""


class GroupState(enum.StrEnum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


_EMPTY = GroupState.EMPTY
_PREPARING = GroupState.PREPARING_REBALANCE
_COMPLETING = GroupState.COMPLETING_REBALANCE
_STABLE = GroupState.STABLE
_DEAD = GroupState.DEAD

_VALID_PREVIOUS_STATES: dict[GroupState, frozenset[GroupState]] = {
    _DEAD: frozenset({_STABLE, _PREPARING, _COMPLETING, _EMPTY, _DEAD}),
    _COMPLETING: frozenset({_PREPARING}),
    _STABLE: frozenset({_COMPLETING}),
    _PREPARING: frozenset({_STABLE, _COMPLETING, _EMPTY}),
    _EMPTY: frozenset({_PREPARING}),
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


# ------------------------------------------------------------------------------------------------
# Requests and responses
# ------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class JoinRequest:
    """JoinGroup v0-v9. For v0 set ``rebalance_timeout_ms = session_timeout_ms``;
    ``require_known_member_id`` is ``version >= 4 and group_instance_id is None``;
    ``supports_skip_assignment`` is ``version >= 9``."""

    group_id: str
    member_id: str
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: Sequence[tuple[str, bytes]]
    group_instance_id: str | None = None
    require_known_member_id: bool = False
    supports_skip_assignment: bool = False
    reason: str | None = None


@dataclass(slots=True)
class JoinResponseMember:
    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass(slots=True)
class JoinResponse:
    error_code: int
    member_id: str = ""
    generation_id: int = NO_GENERATION
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    members: list[JoinResponseMember] = field(default_factory=list)
    skip_assignment: bool = False


@dataclass(slots=True)
class SyncRequest:
    """SyncGroup v0-v5 (``protocol_type``/``protocol_name`` are v5+, None before)."""

    group_id: str
    generation_id: int
    member_id: str
    assignments: Mapping[str, bytes] | Sequence[tuple[str, bytes]] = ()
    group_instance_id: str | None = None
    protocol_type: str | None = None
    protocol_name: str | None = None


@dataclass(slots=True)
class SyncResponse:
    error_code: int
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


@dataclass(slots=True)
class HeartbeatRequest:
    group_id: str
    generation_id: int
    member_id: str
    group_instance_id: str | None = None


@dataclass(slots=True)
class HeartbeatResponse:
    error_code: int


@dataclass(slots=True)
class LeaveMember:
    member_id: str = ""
    group_instance_id: str | None = None
    reason: str | None = None


@dataclass(slots=True)
class LeaveRequest:
    """LeaveGroup. v0-v2 carry one member id: pass ``[LeaveMember(member_id)]``."""

    group_id: str
    members: Sequence[LeaveMember]


@dataclass(slots=True)
class LeaveMemberResult:
    member_id: str
    group_instance_id: str | None
    error_code: int


@dataclass(slots=True)
class LeaveResponse:
    error_code: int
    members: list[LeaveMemberResult] = field(default_factory=list)

    @property
    def legacy_error_code(self) -> int:
        """The single error of a v0-v2 response: the top-level one, else the first member error."""
        if self.error_code != ErrorCode.NONE:
            return self.error_code
        for m in self.members:
            if m.error_code != ErrorCode.NONE:
                return m.error_code
        return ErrorCode.NONE


@dataclass(slots=True)
class OffsetCommitPartition:
    topic: str
    partition: int
    offset: int
    leader_epoch: int = -1
    metadata: str | None = ""
    commit_timestamp_ms: int = -1  # OffsetCommit v1 only; -1 = now


@dataclass(slots=True)
class OffsetCommitRequest:
    """OffsetCommit v0-v9. ``generation_id=-1`` with an empty ``member_id`` is a "simple"
    (non-group-managed) commit; ``retention_time_ms`` is the v2-v4 field (-1 = broker default)."""

    group_id: str
    partitions: Sequence[OffsetCommitPartition]
    generation_id: int = NO_GENERATION
    member_id: str = ""
    group_instance_id: str | None = None
    retention_time_ms: int = -1


@dataclass(slots=True)
class OffsetCommitPartitionResult:
    topic: str
    partition: int
    error_code: int


@dataclass(slots=True)
class OffsetCommitResponse:
    # OffsetCommit has no top-level error on the wire; this is the group-level error that was
    # applied to every partition (NONE when partitions were judged one by one).
    error_code: int
    partitions: list[OffsetCommitPartitionResult] = field(default_factory=list)


@dataclass(slots=True)
class OffsetFetchRequest:
    """OffsetFetch; ``partitions=None`` fetches every committed offset of the group."""

    group_id: str
    partitions: Sequence[TopicPartition] | None = None
    require_stable: bool = False


@dataclass(slots=True)
class OffsetFetchPartitionResult:
    topic: str
    partition: int
    offset: int = -1
    leader_epoch: int = -1
    metadata: str = ""
    error_code: int = ErrorCode.NONE


@dataclass(slots=True)
class OffsetFetchResponse:
    error_code: int
    partitions: list[OffsetFetchPartitionResult] = field(default_factory=list)


@dataclass(slots=True)
class OffsetDeleteRequest:
    group_id: str
    partitions: Sequence[TopicPartition]


@dataclass(slots=True)
class OffsetDeletePartitionResult:
    topic: str
    partition: int
    error_code: int


@dataclass(slots=True)
class OffsetDeleteResponse:
    error_code: int
    partitions: list[OffsetDeletePartitionResult] = field(default_factory=list)


@dataclass(slots=True)
class DescribedMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes  # only while Stable (the selected protocol's metadata), else b""
    assignment: bytes  # only while Stable, else b""


@dataclass(slots=True)
class DescribedGroup:
    error_code: int
    group_id: str
    state: str
    protocol_type: str = ""
    protocol_data: str = ""  # the selected protocol, only while Stable
    members: list[DescribedMember] = field(default_factory=list)


@dataclass(slots=True)
class ListedGroup:
    group_id: str
    protocol_type: str
    state: str
    group_type: str = "classic"


@dataclass(slots=True)
class ListGroupsResponse:
    error_code: int
    groups: list[ListedGroup] = field(default_factory=list)


@dataclass(slots=True)
class DeleteGroupResult:
    group_id: str
    error_code: int


@dataclass(slots=True)
class DeleteGroupsResponse:
    error_code: int
    results: list[DeleteGroupResult] = field(default_factory=list)


def _join_error(error: int, member_id: str = UNKNOWN_MEMBER_ID) -> JoinResponse:
    return JoinResponse(error_code=error, member_id=member_id)


# ------------------------------------------------------------------------------------------------
# Output and persistence
# ------------------------------------------------------------------------------------------------

WriteCallback = Callable[[int, int, "Output"], None]  # (error_code, now_ms, out)

# Write ids grow in emission order; since the I/O layer appends writes in emission order, a
# larger id means "later in the log", which orders concurrent commits of one partition.
_write_ids = itertools.count(1)


class PendingWrite:
    """Records that must be durably appended before the state machine goes on.

    Hand it back to :func:`complete_write` (or ``GroupManager.complete_write``) exactly once.
    """

    __slots__ = ("write_id", "group_id", "records", "affects_timers", "_on_done", "_completed")

    def __init__(self, group_id: str, records: list[rec.Record], on_done: WriteCallback | None) -> None:
        self.write_id = next(_write_ids)
        self.group_id = group_id
        self.records = records
        # Whether completing it can move the group's timers (the manager then reschedules the
        # group; offset-commit writes never do, and they are the frequent ones).
        self.affects_timers = True
        self._on_done = on_done
        self._completed = False

    @property
    def completed(self) -> bool:
        return self._completed

    @property
    def has_waiters(self) -> bool:
        """True if some response is withheld until this write completes."""
        return self._on_done is not None

    def __repr__(self) -> str:
        return f"PendingWrite(id={self.write_id}, group={self.group_id!r}, records={len(self.records)})"


@dataclass(slots=True)
class Output:
    """What a call produced: responses to deliver now, and records to persist."""

    completions: list[tuple[Any, Any]] = field(default_factory=list)
    writes: list[PendingWrite] = field(default_factory=list)

    def respond(self, waiter: Any, response: Any) -> None:
        self.completions.append((waiter, response))

    def extend(self, other: Output) -> None:
        self.completions.extend(other.completions)
        self.writes.extend(other.writes)

    def response_for(self, waiter: Any) -> Any:
        """The response completed for ``waiter`` in this output, or None (convenience for tests
        and simple drivers)."""
        for w, r in self.completions:
            if w is waiter:
                return r
        return None


def complete_write(write: PendingWrite, error_code: int, now_ms: int) -> Output:
    """Report the outcome of persisting ``write``; returns the responses it releases."""
    if write._completed:
        raise IllegalStateError(f"{write!r} was already completed")
    write._completed = True
    out = Output()
    if write._on_done is not None:
        write._on_done(as_error_code(error_code), now_ms, out)
    return out


# ------------------------------------------------------------------------------------------------
# Members
# ------------------------------------------------------------------------------------------------


class Member:
    """One member of a group (Kafka's ``MemberMetadata``)."""

    __slots__ = (
        "member_id",
        "group_instance_id",
        "client_id",
        "client_host",
        "rebalance_timeout_ms",
        "session_timeout_ms",
        "protocol_type",
        "protocols",
        "assignment",
        "join_waiter",
        "sync_waiter",
        "is_new",
        "heartbeat_deadline_ms",
    )

    def __init__(
        self,
        member_id: str,
        group_instance_id: str | None,
        client_id: str,
        client_host: str,
        rebalance_timeout_ms: int,
        session_timeout_ms: int,
        protocol_type: str,
        protocols: Sequence[tuple[str, bytes]],
    ) -> None:
        self.member_id = member_id
        self.group_instance_id = group_instance_id
        self.client_id = client_id
        self.client_host = client_host
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.session_timeout_ms = session_timeout_ms
        self.protocol_type = protocol_type
        self.protocols: list[tuple[str, bytes]] = [(n, bytes(m)) for n, m in protocols]
        self.assignment = b""
        # A parked JoinGroup / SyncGroup: a 1-tuple holding the caller's waiter, so that any
        # object (even None) can be a waiter. None = not parked.
        self.join_waiter: tuple[Any] | None = None
        self.sync_waiter: tuple[Any] | None = None
        # Joined but not yet part of a completed generation: it cannot heartbeat yet, so it
        # expires after new_member_join_timeout_ms instead of its session timeout.
        self.is_new = False
        self.heartbeat_deadline_ms: int | None = None

    @property
    def is_static(self) -> bool:
        return self.group_instance_id is not None

    @property
    def awaiting_join(self) -> bool:
        return self.join_waiter is not None

    @property
    def awaiting_sync(self) -> bool:
        return self.sync_waiter is not None

    def protocol_names(self) -> set[str]:
        return {n for n, _ in self.protocols}

    def metadata(self, protocol: str) -> bytes:
        for n, m in self.protocols:
            if n == protocol:
                return m
        raise IllegalStateError(f"member {self.member_id} does not support protocol {protocol}")

    def matches(self, protocols: Sequence[tuple[str, bytes]]) -> bool:
        """Same protocols with the same metadata in the same order (Kafka's ``matches``)."""
        if len(protocols) != len(self.protocols):
            return False
        return all(n1 == n2 and bytes(m1) == m2 for (n1, m1), (n2, m2) in zip(protocols, self.protocols, strict=True))

    def vote(self, candidates: set[str]) -> str:
        """The member's most preferred protocol among ``candidates``."""
        for n, _ in self.protocols:
            if n in candidates:
                return n
        raise IllegalStateError(f"member {self.member_id} supports none of {sorted(candidates)}")

    def __repr__(self) -> str:
        return (
            f"Member({self.member_id!r}, instance={self.group_instance_id!r}, "
            f"join={self.awaiting_join}, sync={self.awaiting_sync}, new={self.is_new})"
        )


def _subscribed_topics_of(metadata: bytes) -> set[str]:
    """Topics of a ``ConsumerProtocolSubscription`` (any version: v0 is a prefix of all of them):
    ``int16 version``, then ``int32 count`` strings of ``int16 length`` + UTF-8."""
    (version,) = struct.unpack_from(">h", metadata, 0)
    if version < 0:
        raise ValueError("negative consumer protocol version")
    (count,) = struct.unpack_from(">i", metadata, 2)
    if count < 0:
        raise ValueError("negative topic count")
    pos = 6
    topics = set()
    for _ in range(count):
        (n,) = struct.unpack_from(">h", metadata, pos)
        pos += 2
        if n < 0 or pos + n > len(metadata):
            raise ValueError("bad topic name")
        topics.add(metadata[pos : pos + n].decode("utf-8"))
        pos += n
    return topics


def _java_length(s: str) -> int:
    """``String.length()`` in Java: UTF-16 code units (what offset.metadata.max.bytes limits)."""
    return len(s) if s.isascii() else len(s.encode("utf-16-le")) // 2


# ------------------------------------------------------------------------------------------------
# The group
# ------------------------------------------------------------------------------------------------

# Timer kinds, in the order they fire when due at the same millisecond.
_T_PENDING_MEMBER = 0
_T_HEARTBEAT = 1
_T_SYNC = 2
_T_JOIN = 3


class Group:
    """One consumer group: membership, rebalance state machine, committed offsets."""

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
        self.state = _EMPTY
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
        if self.state is _EMPTY:
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
        if self.state in (_DEAD, _PREPARING) or self.protocol_name is None:
            raise IllegalStateError(f"cannot list member metadata of group in state {self.state}")
        p = self.protocol_name
        return [JoinResponseMember(m.member_id, m.group_instance_id, m.metadata(p)) for m in self.members.values()]

    def describe(self) -> DescribedGroup:
        if self.state is _STABLE:
            p = self.protocol_name or ""
            members = [
                DescribedMember(
                    m.member_id, m.group_instance_id, m.client_id, m.client_host, m.metadata(p), m.assignment
                )
                for m in self.members.values()
            ]
            return DescribedGroup(ErrorCode.NONE, self.group_id, self.state.value, self.protocol_type or "", p, members)
        members = [
            DescribedMember(m.member_id, m.group_instance_id, m.client_id, m.client_host, b"", b"")
            for m in self.members.values()
        ]
        return DescribedGroup(ErrorCode.NONE, self.group_id, self.state.value, self.protocol_type or "", "", members)

    def overview(self) -> ListedGroup:
        return ListedGroup(self.group_id, self.protocol_type or "", self.state.value)

    # ================================================================================== timers

    def next_deadline_ms(self) -> int | None:
        t = self._earliest_timer()
        return None if t is None else t[0]

    def _earliest_timer(self) -> tuple[int, int, str | None] | None:
        best: tuple[int, int, str | None] | None = None
        for mid, d in self.pending_members.items():
            if best is None or (d, _T_PENDING_MEMBER) < best[:2]:
                best = (d, _T_PENDING_MEMBER, mid)
        for m in self.members.values():
            hb = m.heartbeat_deadline_ms
            if hb is not None and (best is None or (hb, _T_HEARTBEAT) < best[:2]):
                best = (hb, _T_HEARTBEAT, m.member_id)
        if self._sync_deadline_ms is not None and (best is None or (self._sync_deadline_ms, _T_SYNC) < best[:2]):
            best = (self._sync_deadline_ms, _T_SYNC, None)
        if self._join_deadline_ms is not None and (best is None or (self._join_deadline_ms, _T_JOIN) < best[:2]):
            best = (self._join_deadline_ms, _T_JOIN, None)
        return best

    def tick(self, now_ms: int) -> Output:
        """Fire every timer due at ``now_ms``."""
        out = Output()
        self._run_timers(now_ms, out)
        return out

    def _run_timers(self, now: int, out: Output) -> None:
        # The cap only guards against a degenerate configuration (e.g. zero timeouts) re-arming
        # timers at `now` forever; normal operation never gets near it.
        for _ in range(1000 + 4 * (len(self.members) + len(self.pending_members))):
            t = self._earliest_timer()
            if t is None or t[0] > now:
                return
            _, kind, key = t
            if kind == _T_PENDING_MEMBER:
                assert key is not None
                self._on_pending_member_expired(key, now, out)
            elif kind == _T_HEARTBEAT:
                assert key is not None
                self._on_heartbeat_expired(self.members[key], now, out)
            elif kind == _T_SYNC:
                self._on_sync_expired(now, out)
            else:
                self._on_join_expired(now, out)

    def _schedule_heartbeat(self, m: Member, now: int, timeout_ms: int | None = None) -> None:
        m.heartbeat_deadline_ms = now + (m.session_timeout_ms if timeout_ms is None else timeout_ms)

    def _on_heartbeat_expired(self, m: Member, now: int, out: Output) -> None:
        m.heartbeat_deadline_ms = None
        if m.is_new or not (m.awaiting_join or m.awaiting_sync):
            _log.info("Member %s in group %s has failed (session expired), removing it", m.member_id, self.group_id)
            self._remove_member_and_update_group(m, now, out, f"member {m.member_id} session expired")
        else:
            # A member parked in JoinGroup/SyncGroup is alive by definition (Kafka's
            # hasSatisfiedHeartbeat); re-arm so it is checked again once it is answered.
            self._schedule_heartbeat(m, now)

    def _on_pending_member_expired(self, member_id: str, now: int, out: Output) -> None:
        del self.pending_members[member_id]
        if self.state is _PREPARING:
            self._try_complete_join(now, out)

    def _on_sync_expired(self, now: int, out: Output) -> None:
        self._sync_deadline_ms = None
        if self._sync_generation != self.generation_id or self.state not in (_COMPLETING, _STABLE):
            return
        if self.pending_sync_members:
            # Members that got their JoinGroup response but never sent SyncGroup are gone.
            missing = sorted(self.pending_sync_members)
            for mid in missing:
                self._remove_member(mid, out)
            self._prepare_rebalance(now, out, f"members {missing} did not send SyncGroup in time")

    def _on_join_expired(self, now: int, out: Output) -> None:
        self._join_deadline_ms = None
        if self.state is not _PREPARING:
            return
        if self._join_initial and self.new_member_added and self._join_remaining_ms != 0:
            # Kafka's InitialDelayedJoin: members keep arriving, wait another delay, but never
            # longer in total than the rebalance timeout.
            self.new_member_added = False
            delay = min(self.config.initial_rebalance_delay_ms, self._join_remaining_ms)
            remaining = max(self._join_remaining_ms - self._join_delay_ms, 0)
            self._set_join_timer(now, delay, initial=True, remaining_ms=remaining)
            return
        self._complete_join(now, out)

    def _set_join_timer(self, now: int, delay_ms: int, *, initial: bool, remaining_ms: int = 0) -> None:
        self._join_deadline_ms = now + delay_ms
        self._join_initial = initial
        self._join_delay_ms = delay_ms
        self._join_remaining_ms = remaining_ms

    # ============================================================================ membership core

    def _transition(self, target: GroupState, now: int) -> None:
        if self.state not in _VALID_PREVIOUS_STATES[target]:
            raise IllegalStateError(f"group {self.group_id}: invalid transition {self.state} -> {target}")
        self.state = target
        self.state_timestamp_ms = now

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
                out.respond(m.join_waiter[0], _join_error(ErrorCode.UNKNOWN_MEMBER_ID))
                m.join_waiter = None
            if m.sync_waiter is not None:
                out.respond(m.sync_waiter[0], SyncResponse(ErrorCode.UNKNOWN_MEMBER_ID))
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
            out.respond(m.join_waiter[0], _join_error(ErrorCode.REBALANCE_IN_PROGRESS, m.member_id))
        m.join_waiter = join_waiter

    def _validate_current_member(self, member_id: str, group_instance_id: str | None) -> int | None:
        """Kafka's validateCurrentMember: static identity first, then the member id."""
        if group_instance_id is not None:
            current = self.static_members.get(group_instance_id)
            if current is None:
                return ErrorCode.UNKNOWN_MEMBER_ID
            if current != member_id:
                return ErrorCode.FENCED_INSTANCE_ID
            return None
        if member_id not in self.members:
            return ErrorCode.UNKNOWN_MEMBER_ID
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
                topics |= _subscribed_topics_of(m.metadata(self.protocol_name))
        except (struct.error, ValueError, UnicodeDecodeError, IllegalStateError):
            return None  # not the consumer protocol we know: subscriptions unknown
        return frozenset(topics)

    # ================================================================================ JoinGroup

    def join(self, req: JoinRequest, waiter: Any, now_ms: int) -> Output:
        """JoinGroup on an existing group (group creation and session-timeout bounds are checked
        by the manager)."""
        out = Output()
        box = (waiter,)
        member_id = req.member_id
        if not self._accept_joining_member(member_id):
            # Over group.max.size: shed this member (Kafka does not rebalance for it here).
            if member_id in self.members:
                self._remove_member(member_id, out)
            out.respond(waiter, _join_error(ErrorCode.GROUP_MAX_SIZE_REACHED))
        elif member_id == UNKNOWN_MEMBER_ID:
            self._join_new_member(req, box, now_ms, out)
        else:
            self._join_current_member(req, box, now_ms, out)
        if self.state is _PREPARING:
            self._try_complete_join(now_ms, out)
        return out

    def _accept_joining_member(self, member_id: str) -> bool:
        max_size = self.config.max_size
        if self.state in (_EMPTY, _DEAD):
            return True
        if self.state is _PREPARING:
            m = self.members.get(member_id)
            if m is not None and m.awaiting_join:
                return True
            if len(self.members) < max_size:
                return True  # fewer members than the limit, so fewer awaiting too
            return sum(1 for x in self.members.values() if x.awaiting_join) < max_size
        return member_id in self.members or len(self.members) < max_size

    def _join_new_member(self, req: JoinRequest, box: tuple[Any], now: int, out: Output) -> None:
        if self.state is _DEAD:
            out.respond(box[0], _join_error(ErrorCode.COORDINATOR_NOT_AVAILABLE))
            return
        if not self.supports_protocols(req.protocol_type, {n for n, _ in req.protocols}):
            out.respond(box[0], _join_error(ErrorCode.INCONSISTENT_GROUP_PROTOCOL))
            return
        new_id = self._generate_member_id(req.client_id, req.group_instance_id)
        if req.group_instance_id is not None:
            old_id = self.static_members.get(req.group_instance_id)
            if old_id is not None:
                self._update_static_member_and_rebalance(old_id, new_id, req, box, now, out)
            else:
                self._add_member_and_rebalance(new_id, req, box, now, out)
        elif req.require_known_member_id:
            # KIP-394: hand out the id first; the member joins for real with it. Until then it
            # counts as expected (a pending member delays the end of the join phase).
            self.pending_members[new_id] = now + req.session_timeout_ms
            out.respond(box[0], _join_error(ErrorCode.MEMBER_ID_REQUIRED, new_id))
        else:
            self._add_member_and_rebalance(new_id, req, box, now, out)

    def _join_current_member(self, req: JoinRequest, box: tuple[Any], now: int, out: Output) -> None:
        member_id = req.member_id
        if self.state is _DEAD:
            out.respond(box[0], _join_error(ErrorCode.COORDINATOR_NOT_AVAILABLE, member_id))
            return
        if not self.supports_protocols(req.protocol_type, {n for n, _ in req.protocols}):
            out.respond(box[0], _join_error(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id))
            return
        if self.is_pending_member(member_id):
            if req.group_instance_id is not None:
                # Pending ids are only given to dynamic members; Kafka throws here.
                out.respond(box[0], _join_error(ErrorCode.UNKNOWN_SERVER_ERROR, member_id))
                return
            self._add_member_and_rebalance(member_id, req, box, now, out)
            return
        error = self._validate_current_member(member_id, req.group_instance_id)
        if error is not None:
            out.respond(box[0], _join_error(error, member_id))
            return
        m = self.members[member_id]
        if self.state is _PREPARING:
            self._update_member_and_rebalance(m, req, box, now, out)
        elif self.state is _COMPLETING:
            if m.matches(req.protocols):
                # Same metadata: probably a retry after a lost response; answer with the current
                # generation without starting another rebalance.
                out.respond(box[0], self._current_join_response(member_id, include_members=self.is_leader(member_id)))
            else:
                self._update_member_and_rebalance(m, req, box, now, out)
        elif self.state is _STABLE:
            if self.is_leader(member_id) or not m.matches(req.protocols):
                # A leader join forces a rebalance: that is how the leader reacts to changes that
                # do not show in member metadata (e.g. new partitions of a subscribed topic).
                self._update_member_and_rebalance(m, req, box, now, out)
            else:
                # A follower rejoining with unchanged metadata (e.g. a cooperative-sticky client's
                # second join) just gets the current generation.
                out.respond(box[0], self._current_join_response(member_id, include_members=False))
        else:  # Empty: members cannot exist; a defensive answer
            out.respond(box[0], _join_error(ErrorCode.UNKNOWN_MEMBER_ID, member_id))

    def _current_join_response(self, member_id: str, *, include_members: bool) -> JoinResponse:
        return JoinResponse(
            error_code=ErrorCode.NONE,
            member_id=member_id,
            generation_id=self.generation_id,
            protocol_type=self.protocol_type,
            protocol_name=self.protocol_name,
            leader=self.leader_id or "",
            members=self.current_member_metadata() if include_members else [],
        )

    def _add_member_and_rebalance(
        self, member_id: str, req: JoinRequest, box: tuple[Any], now: int, out: Output
    ) -> None:
        m = Member(
            member_id,
            req.group_instance_id,
            req.client_id,
            req.client_host,
            req.rebalance_timeout_ms,
            req.session_timeout_ms,
            req.protocol_type,
            req.protocols,
        )
        m.is_new = True
        if self.state is _PREPARING and self.generation_id == 0:
            self.new_member_added = True
        self._add_member(m, box)
        # A parked new member cannot heartbeat and its socket is muted, so a disconnect is
        # invisible; bound how long it may sit in the join phase.
        self._schedule_heartbeat(m, now, self.config.new_member_join_timeout_ms)
        self._maybe_prepare_rebalance(now, out, f"new member {member_id} joined")

    def _update_member_and_rebalance(self, m: Member, req: JoinRequest, box: tuple[Any], now: int, out: Output) -> None:
        self._update_member(m, req.protocols, req.rebalance_timeout_ms, req.session_timeout_ms, box, out)
        why = "leader rejoined" if self.is_leader(m.member_id) else "member rejoined with new metadata"
        self._maybe_prepare_rebalance(now, out, f"{why}: {m.member_id}")

    def _replace_static_member(self, instance_id: str, old_id: str, new_id: str, out: Output) -> Member:
        m = self.members.pop(old_id)
        # Whoever still waits under the old id is a zombie or a duplicate instance: fence it.
        if m.join_waiter is not None:
            out.respond(m.join_waiter[0], _join_error(ErrorCode.FENCED_INSTANCE_ID, old_id))
            m.join_waiter = None
        if m.sync_waiter is not None:
            out.respond(m.sync_waiter[0], SyncResponse(ErrorCode.FENCED_INSTANCE_ID))
            m.sync_waiter = None
        m.member_id = new_id
        self.members[new_id] = m
        if self.leader_id == old_id:
            self.leader_id = new_id
        self.static_members[instance_id] = new_id
        if old_id in self.pending_sync_members:
            # Kafka leaves the old id here (and rebalances when the sync timer fires); the new
            # id is the same member, so carry the obligation over.
            self.pending_sync_members.discard(old_id)
            self.pending_sync_members.add(new_id)
        return m

    def _update_static_member_and_rebalance(
        self, old_id: str, new_id: str, req: JoinRequest, box: tuple[Any], now: int, out: Output
    ) -> None:
        instance_id = req.group_instance_id
        assert instance_id is not None
        current_leader = self.leader_id
        m = self._replace_static_member(instance_id, old_id, new_id, out)
        self._schedule_heartbeat(m, now)
        old_protocols = list(m.protocols)
        old_rebalance_timeout, old_session_timeout = m.rebalance_timeout_ms, m.session_timeout_ms
        self._update_member(m, req.protocols, req.rebalance_timeout_ms, req.session_timeout_ms, box, out)

        if self.state is _STABLE:
            if self.protocol_name == self.select_protocol():
                # KIP-345: a known static member restarting does not cost a rebalance. Persist
                # its new member id first, then give it the current generation.
                generation = self.generation_id
                assignment = {x.member_id: x.assignment for x in self.members.values()}
                record = self._metadata_record(assignment)

                def on_done(error: int, now2: int, out2: Output) -> None:
                    still_ours = (
                        self.state is _STABLE
                        and self.generation_id == generation
                        and self.members.get(new_id) is m
                        and m.join_waiter is box
                    )
                    if not still_ours:
                        return  # a rebalance took over; it answers (or answered) the waiter
                    error = group_store_error(error)
                    if error != ErrorCode.NONE:
                        # Revert: the old member id is what is durable.
                        m.join_waiter = None
                        self._update_member(m, old_protocols, old_rebalance_timeout, old_session_timeout, None, out2)
                        self._replace_static_member(instance_id, new_id, old_id, out2)
                        self._schedule_heartbeat(m, now2)
                        out2.respond(
                            box[0],
                            JoinResponse(
                                error_code=error,
                                member_id=UNKNOWN_MEMBER_ID,
                                generation_id=self.generation_id,
                                protocol_type=self.protocol_type,
                                protocol_name=self.protocol_name,
                                leader=current_leader or "",
                            ),
                        )
                        return
                    m.join_waiter = None
                    if req.supports_skip_assignment:
                        # JoinGroup v9+ (KIP-814): tell a static leader it leads, but to skip
                        # running the assignor since the group is Stable.
                        is_leader = self.is_leader(new_id)
                        response = self._current_join_response(new_id, include_members=is_leader)
                        response.skip_assignment = is_leader
                    else:
                        # Older clients: report the old leader id, so a restarted leader does not
                        # believe it leads and compute an assignment nobody would receive.
                        response = self._current_join_response(new_id, include_members=False)
                        response.leader = current_leader or ""
                    out2.respond(box[0], response)

                self._write(out, [record], on_done)
            else:
                self._maybe_prepare_rebalance(
                    now, out, f"static member {instance_id} rejoined with protocols that change the selection"
                )
        elif self.state is _COMPLETING:
            # The leader may already be assigning for the old member id: start over.
            self._prepare_rebalance(now, out, f"static member {instance_id} rejoined during CompletingRebalance")
        # PreparingRebalance: the member is simply parked with its new id.

    # ============================================================================== rebalancing

    def _maybe_prepare_rebalance(self, now: int, out: Output, reason: str) -> None:
        if self.state in (_STABLE, _COMPLETING, _EMPTY):
            self._prepare_rebalance(now, out, reason)

    def _prepare_rebalance(self, now: int, out: Output, reason: str) -> None:
        _log.info(
            "Preparing to rebalance group %s in state %s with old generation %d (reason: %s)",
            self.group_id,
            self.state.value,
            self.generation_id,
            reason,
        )
        if self.state is _COMPLETING:
            # Members parked in SyncGroup must rejoin.
            self._reset_and_propagate_assignment_error(ErrorCode.REBALANCE_IN_PROGRESS, now, out)
        self.pending_sync_members.clear()
        self._sync_deadline_ms = None
        was_empty = self.state is _EMPTY
        if was_empty:
            delay = self.config.initial_rebalance_delay_ms
            self._set_join_timer(
                now, delay, initial=True, remaining_ms=max(self.rebalance_timeout_ms() - delay, 0)
            )
        else:
            self._set_join_timer(now, self.rebalance_timeout_ms(), initial=False)
        self._transition(_PREPARING, now)
        if not was_empty:
            self._try_complete_join(now, out)

    def _try_complete_join(self, now: int, out: Output) -> None:
        """Finish the join phase early once every known member rejoined (never during the
        initial delay, which always runs its course)."""
        if (
            self.state is _PREPARING
            and self._join_deadline_ms is not None
            and not self._join_initial
            and self.has_all_members_joined()
        ):
            self._join_deadline_ms = None
            self._complete_join(now, out)

    def _maybe_elect_new_joined_leader(self) -> bool:
        if self.leader_id is None:
            return False
        leader = self.members[self.leader_id]
        if leader.awaiting_join:
            return True
        for mid, m in self.members.items():
            if m.awaiting_join:
                self.leader_id = mid
                return True
        return False

    def _complete_join(self, now: int, out: Output) -> None:
        """Kafka's onCompleteJoin: the join phase is over (all rejoined, or timeout)."""
        self._join_deadline_ms = None
        # Dynamic members that did not rejoin in time are gone; static ones stay (they may be
        # restarting) and are removed later by their session timeout or the sync timer.
        for m in [m for m in self.members.values() if not m.awaiting_join and not m.is_static]:
            self._remove_member(m.member_id, out)
        if self.state is _DEAD:
            return
        if not self._maybe_elect_new_joined_leader() and self.members:
            # Only non-rejoined static members are left: wait another rebalance timeout.
            self._set_join_timer(now, self.rebalance_timeout_ms(), initial=False)
            return
        self._init_next_generation(now)
        if self.state is _EMPTY:
            _log.info("Group %s with generation %d is now empty", self.group_id, self.generation_id)
            self._write(out, [self._metadata_record({})], None)
            return
        _log.info(
            "Stabilized group %s generation %d (protocol %s) with %d members",
            self.group_id,
            self.generation_id,
            self.protocol_name,
            len(self.members),
        )
        members = self.current_member_metadata()
        for m in self.members.values():
            if m.join_waiter is not None:
                is_leader = self.is_leader(m.member_id)
                out.respond(
                    m.join_waiter[0],
                    JoinResponse(
                        error_code=ErrorCode.NONE,
                        member_id=m.member_id,
                        generation_id=self.generation_id,
                        protocol_type=self.protocol_type,
                        protocol_name=self.protocol_name,
                        leader=self.leader_id or "",
                        members=list(members) if is_leader else [],
                    ),
                )
                m.join_waiter = None
            self._schedule_heartbeat(m, now)
            m.is_new = False
            self.pending_sync_members.add(m.member_id)
        self._sync_deadline_ms = now + self.rebalance_timeout_ms()
        self._sync_generation = self.generation_id

    def _init_next_generation(self, now: int) -> None:
        self.generation_id += 1
        if self.members:
            self.protocol_name = self.select_protocol()
            self.subscribed_topics = self._compute_subscribed_topics()
            self._transition(_COMPLETING, now)
        else:
            self.protocol_name = None
            self.subscribed_topics = self._compute_subscribed_topics()
            self._transition(_EMPTY, now)

    def _reset_and_propagate_assignment_error(self, error: int, now: int, out: Output) -> None:
        for m in self.members.values():
            m.assignment = b""
        self._propagate_assignment(error, now, out)

    def _set_and_propagate_assignment(self, assignment: Mapping[str, bytes], now: int, out: Output) -> None:
        for m in self.members.values():
            m.assignment = assignment.get(m.member_id, b"")
        self._propagate_assignment(ErrorCode.NONE, now, out)

    def _propagate_assignment(self, error: int, now: int, out: Output) -> None:
        ok = error == ErrorCode.NONE
        for m in self.members.values():
            if m.sync_waiter is not None:
                out.respond(
                    m.sync_waiter[0],
                    SyncResponse(
                        error_code=error,
                        assignment=m.assignment if ok else b"",
                        protocol_type=self.protocol_type if ok else None,
                        protocol_name=self.protocol_name if ok else None,
                    ),
                )
                m.sync_waiter = None
                # Its session may have lapsed while parked; start a fresh one.
                self._schedule_heartbeat(m, now)

    def _remove_member_and_update_group(self, m: Member, now: int, out: Output, reason: str) -> None:
        self._remove_member(m.member_id, out)
        if self.state in (_STABLE, _COMPLETING):
            self._maybe_prepare_rebalance(now, out, reason)
        elif self.state is _PREPARING:
            self._try_complete_join(now, out)

    # ================================================================================ SyncGroup

    def sync(self, req: SyncRequest, waiter: Any, now_ms: int) -> Output:
        out = Output()
        error = self._validate_sync(req)
        if error is not None:
            out.respond(waiter, SyncResponse(error))
            return out
        if self.state is _EMPTY:
            out.respond(waiter, SyncResponse(ErrorCode.UNKNOWN_MEMBER_ID))
        elif self.state is _PREPARING:
            out.respond(waiter, SyncResponse(ErrorCode.REBALANCE_IN_PROGRESS))
        elif self.state is _COMPLETING:
            m = self.members[req.member_id]
            if m.sync_waiter is not None:
                # Re-sent while parked: answer the stale one (Kafka would drop it).
                out.respond(m.sync_waiter[0], SyncResponse(ErrorCode.REBALANCE_IN_PROGRESS))
            m.sync_waiter = (waiter,)
            self._remove_pending_sync(req.member_id)
            if self.is_leader(req.member_id):
                given = dict(req.assignments)
                # Members the leader forgot get an empty assignment.
                assignment = {mid: given.get(mid, b"") for mid in self.members}
                generation = self.generation_id

                def on_done(error: int, now2: int, out2: Output) -> None:
                    # The group may have moved on while the write was in flight; then the
                    # rebalance that moved it has already answered the parked syncs.
                    if self.state is not _COMPLETING or self.generation_id != generation:
                        return
                    error = group_store_error(error)
                    if error != ErrorCode.NONE:
                        self._reset_and_propagate_assignment_error(error, now2, out2)
                        self._maybe_prepare_rebalance(now2, out2, f"storing the assignment failed with {error!r}")
                    else:
                        self._set_and_propagate_assignment(assignment, now2, out2)
                        self._transition(_STABLE, now2)

                self._write(out, [self._metadata_record(assignment)], on_done)
        else:  # Stable
            m = self.members[req.member_id]
            self._remove_pending_sync(req.member_id)
            out.respond(waiter, SyncResponse(ErrorCode.NONE, m.assignment, self.protocol_type, self.protocol_name))
            self._schedule_heartbeat(m, now_ms)
        return out

    def _validate_sync(self, req: SyncRequest) -> int | None:
        if self.state is _DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        error = self._validate_current_member(req.member_id, req.group_instance_id)
        if error is not None:
            return error
        if req.generation_id != self.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        if req.protocol_type is not None and req.protocol_type != self.protocol_type:
            return ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        if req.protocol_name is not None and req.protocol_name != self.protocol_name:
            return ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        return None

    # ================================================================================ Heartbeat

    def heartbeat(self, req: HeartbeatRequest, now_ms: int) -> HeartbeatResponse:
        if self.state is _DEAD:
            return HeartbeatResponse(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        error = self._validate_current_member(req.member_id, req.group_instance_id)
        if error is not None:
            return HeartbeatResponse(error)
        if req.generation_id != self.generation_id:
            return HeartbeatResponse(ErrorCode.ILLEGAL_GENERATION)
        if self.state is _EMPTY:
            return HeartbeatResponse(ErrorCode.UNKNOWN_MEMBER_ID)
        self._schedule_heartbeat(self.members[req.member_id], now_ms)
        if self.state is _PREPARING:
            return HeartbeatResponse(ErrorCode.REBALANCE_IN_PROGRESS)
        return HeartbeatResponse(ErrorCode.NONE)

    # =============================================================================== LeaveGroup

    def leave(self, req: LeaveRequest, waiter: Any, now_ms: int) -> Output:
        out = Output()
        if self.state is _DEAD:
            out.respond(waiter, LeaveResponse(ErrorCode.COORDINATOR_NOT_AVAILABLE))
            return out
        results = []
        error: int
        for lm in req.members:
            if lm.member_id == UNKNOWN_MEMBER_ID:
                # Administrative removal by group.instance.id (KIP-345).
                current = self.static_members.get(lm.group_instance_id) if lm.group_instance_id is not None else None
                if current is not None:
                    self._remove_member_and_update_group(
                        self.members[current],
                        now_ms,
                        out,
                        f"static member {lm.group_instance_id} removed by LeaveGroup",
                    )
                    error = ErrorCode.NONE
                else:
                    error = ErrorCode.UNKNOWN_MEMBER_ID
            elif self.is_pending_member(lm.member_id):
                self._remove_member(lm.member_id, out)
                if self.state is _PREPARING:
                    self._try_complete_join(now_ms, out)
                error = ErrorCode.NONE
            else:
                error = self._validate_current_member(lm.member_id, lm.group_instance_id) or ErrorCode.NONE
                if error == ErrorCode.NONE:
                    self._remove_member_and_update_group(
                        self.members[lm.member_id], now_ms, out, f"member {lm.member_id} left (reason: {lm.reason})"
                    )
            results.append(LeaveMemberResult(lm.member_id, lm.group_instance_id, error))
        out.respond(waiter, LeaveResponse(ErrorCode.NONE, results))
        return out

    # ================================================================================== offsets

    def commit_offsets(self, req: OffsetCommitRequest, waiter: Any, now_ms: int) -> Output:
        out = Output()
        error = self._validate_offset_commit(req)
        if error is None:
            if self.state is _COMPLETING:
                # The member knows the new generation from its JoinGroup response but has not
                # synced yet; its commit would belong to an assignment it does not have.
                error = ErrorCode.REBALANCE_IN_PROGRESS
            elif self.state in (_STABLE, _PREPARING):
                # Commits are still allowed while preparing: the member learns about the
                # rebalance from its next heartbeat. A commit also proves liveness.
                self._schedule_heartbeat(self.members[req.member_id], now_ms)
        if error is not None:
            out.respond(waiter, self._commit_error_response(req, error))
            return out
        self._store_offsets(req, waiter, now_ms, out)
        return out

    @staticmethod
    def _commit_error_response(req: OffsetCommitRequest, error: int) -> OffsetCommitResponse:
        seen = dict.fromkeys((p.topic, p.partition) for p in req.partitions)
        return OffsetCommitResponse(error, [OffsetCommitPartitionResult(t, p, error) for t, p in seen])

    def _validate_offset_commit(self, req: OffsetCommitRequest) -> int | None:
        if self.state is _DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if req.generation_id < 0 and self.state is _EMPTY:
            # Admin client or a consumer not using group management.
            return None
        if req.generation_id >= 0 or req.member_id != UNKNOWN_MEMBER_ID or req.group_instance_id is not None:
            error = self._validate_current_member(req.member_id, req.group_instance_id)
            if error is not None:
                return error
            if req.generation_id != self.generation_id:
                return ErrorCode.ILLEGAL_GENERATION
            return None
        # A "simple" commit into a group that has members: only members may commit.
        return ErrorCode.UNKNOWN_MEMBER_ID

    def _store_offsets(self, req: OffsetCommitRequest, waiter: Any, now: int, out: Output) -> None:
        expire_ts = None if req.retention_time_ms == -1 else now + req.retention_time_ms
        max_len = self.config.offset_metadata_max_bytes
        order: dict[TopicPartition, None] = {}
        valid: dict[TopicPartition, OffsetAndMetadata] = {}
        for p in req.partitions:
            tp = (p.topic, p.partition)
            order[tp] = None
            metadata = "" if p.metadata is None else p.metadata
            if _java_length(metadata) > max_len:
                valid.pop(tp, None)
                continue
            valid[tp] = OffsetAndMetadata(
                offset=p.offset,
                leader_epoch=p.leader_epoch,
                metadata=metadata,
                commit_timestamp_ms=now if p.commit_timestamp_ms == -1 else p.commit_timestamp_ms,
                expire_timestamp_ms=expire_ts,
            )

        def respond(error_for_valid: int, out_: Output) -> None:
            results = [
                OffsetCommitPartitionResult(
                    tp[0], tp[1], error_for_valid if tp in valid else ErrorCode.OFFSET_METADATA_TOO_LARGE
                )
                for tp in order
            ]
            out_.respond(waiter, OffsetCommitResponse(ErrorCode.NONE, results))

        if not valid:
            respond(ErrorCode.NONE, out)
            return
        records = [
            rec.offset_commit_record(
                self.group_id,
                tp[0],
                tp[1],
                rec.OffsetCommitValue(
                    oam.offset, oam.leader_epoch, oam.metadata, oam.commit_timestamp_ms, oam.expire_timestamp_ms
                ),
            )
            for tp, oam in valid.items()
        ]
        write = self._write(out, records, None)
        write.affects_timers = False
        seq = write.write_id
        self.offsets.prepare(valid, seq)

        def on_done(error: int, now2: int, out2: Output) -> None:
            error = offset_commit_store_error(error)
            ok = error == ErrorCode.NONE
            if self.state is not _DEAD:
                for tp, oam in valid.items():
                    if ok:
                        self.offsets.complete(tp, oam, seq)
                    else:
                        self.offsets.fail(tp, seq)
            respond(error, out2)

        write._on_done = on_done

    def fetch_offsets(self, req: OffsetFetchRequest) -> OffsetFetchResponse:
        """Committed offsets, whatever the group's state (groups may use Kafka only for offset
        storage). Unknown partitions get offset -1, leader epoch -1, metadata ""."""
        results: list[OffsetFetchPartitionResult] = []
        dead = self.state is _DEAD
        if req.partitions is None:
            if not dead:
                for tp, oam in self.offsets.items():
                    results.append(self._fetch_one(tp, oam, req.require_stable))
        else:
            for tp in req.partitions:
                tp = (tp[0], tp[1])
                results.append(self._fetch_one(tp, None if dead else self.offsets.get(tp), req.require_stable))
        return OffsetFetchResponse(ErrorCode.NONE, results)

    def _fetch_one(
        self, tp: TopicPartition, oam: OffsetAndMetadata | None, require_stable: bool
    ) -> OffsetFetchPartitionResult:
        if require_stable and self.offsets.has_pending(tp):
            return OffsetFetchPartitionResult(tp[0], tp[1], error_code=ErrorCode.UNSTABLE_OFFSET_COMMIT)
        if oam is None:
            return OffsetFetchPartitionResult(tp[0], tp[1])
        return OffsetFetchPartitionResult(tp[0], tp[1], oam.offset, oam.leader_epoch, oam.metadata)

    def delete_offsets(self, req: OffsetDeleteRequest, waiter: Any, now_ms: int) -> Output:
        """OffsetDelete (KIP-496). Answered once the tombstones are written."""
        out = Output()
        tps = list(dict.fromkeys((t, p) for t, p in req.partitions))
        errors: dict[TopicPartition, int] = {}
        if self.state is _DEAD:
            out.respond(waiter, OffsetDeleteResponse(ErrorCode.GROUP_ID_NOT_FOUND))
            return out
        if self.state is _EMPTY:
            eligible = tps
        elif self.is_consumer_group():
            eligible = []
            for tp in tps:
                if self.is_subscribed_to_topic(tp[0]):
                    errors[tp] = ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC
                else:
                    eligible.append(tp)
        else:
            out.respond(waiter, OffsetDeleteResponse(ErrorCode.NON_EMPTY_GROUP))
            return out

        # As in Kafka, the cleanup (which may kill an Empty group left without offsets) only
        # runs when some partition was eligible.
        records = self._cleanup(self.offsets.remove(eligible), now_ms) if eligible else []

        def respond(error: int, out_: Output) -> None:
            results = [
                OffsetDeletePartitionResult(t, p, errors.get((t, p), error)) for t, p in tps
            ]
            out_.respond(waiter, OffsetDeleteResponse(ErrorCode.NONE, results))

        if records:
            self._write(out, records, lambda error, now2, out2: respond(group_store_error(error), out2))
        else:
            respond(ErrorCode.NONE, out)
        return out

    def expire_offsets(self, now_ms: int) -> list[rec.Record]:
        """Remove offsets past retention (KIP-211) and return the tombstones to write. A group
        left Empty without offsets becomes Dead (its metadata tombstone is included)."""
        if self.state is _DEAD:
            return []
        retention = self.config.offsets_retention_ms
        if self.protocol_type is not None and self.state is _EMPTY:
            # Nobody consumes: the clock starts when the group became Empty (or, for metadata
            # written before that time was recorded, at the commit).
            state_ts = self.state_timestamp_ms
            expired = self.offsets.remove_expired(
                now_ms, retention, lambda o: state_ts if state_ts is not None else o.commit_timestamp_ms
            )
        elif self.protocol_type == CONSUMER_PROTOCOL_TYPE and self.subscribed_topics is not None:
            # Active consumer group: only offsets of topics nobody subscribes to any more expire,
            # counted from their last commit.
            expired = self.offsets.remove_expired(
                now_ms, retention, lambda o: o.commit_timestamp_ms, self.subscribed_topics
            )
        elif self.protocol_type is None:
            # A "simple" group that only stores offsets.
            expired = self.offsets.remove_expired(now_ms, retention, lambda o: o.commit_timestamp_ms)
        else:
            expired = {}
        return self._cleanup(expired, now_ms)

    def _cleanup(self, removed: Mapping[TopicPartition, OffsetAndMetadata], now: int) -> list[rec.Record]:
        """Kafka's cleanupGroupMetadata: tombstones for removed offsets, and a group with neither
        members nor offsets dies."""
        records = [rec.offset_commit_record(self.group_id, t, p, None) for t, p in removed]
        if self.state is _EMPTY and not self.offsets.has_offsets():
            self._transition(_DEAD, now)
            records.extend(self._death_records())
        return records

    def _death_records(self) -> list[rec.Record]:
        # Generation 0 groups never wrote metadata (they only stored offsets).
        return [rec.group_metadata_record(self.group_id, None)] if self.generation_id > 0 else []

    # ============================================================================ whole-group ops

    def delete(self, now_ms: int) -> tuple[int, list[rec.Record]]:
        """DeleteGroups for this group: only an Empty group can be deleted; returns the error and
        the tombstones to write (offsets and group metadata)."""
        if self.state is _DEAD:
            return ErrorCode.GROUP_ID_NOT_FOUND, []
        if self.state is not _EMPTY:
            return ErrorCode.NON_EMPTY_GROUP, []
        self._transition(_DEAD, now_ms)
        removed = self.offsets.remove_all()
        records = [rec.offset_commit_record(self.group_id, t, p, None) for t, p in removed]
        records.extend(self._death_records())
        return ErrorCode.NONE, records

    def unload(self, now_ms: int) -> Output:
        """This node stops coordinating the group (Kafka's onGroupUnloaded): parked requests get
        NOT_COORDINATOR so clients look the coordinator up again."""
        out = Output()
        if self.state is not _DEAD:
            self._transition(_DEAD, now_ms)
        for m in self.members.values():
            if m.join_waiter is not None:
                out.respond(m.join_waiter[0], _join_error(ErrorCode.NOT_COORDINATOR, m.member_id))
                m.join_waiter = None
            if m.sync_waiter is not None:
                out.respond(m.sync_waiter[0], SyncResponse(ErrorCode.NOT_COORDINATOR))
                m.sync_waiter = None
            m.heartbeat_deadline_ms = None
        self.pending_members.clear()
        self.pending_sync_members.clear()
        self._join_deadline_ms = None
        self._sync_deadline_ms = None
        return out

    # ============================================================================= persistence

    def _write(self, out: Output, records: list[rec.Record], on_done: WriteCallback | None) -> PendingWrite:
        write = PendingWrite(self.group_id, records, on_done)
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

    @classmethod
    def from_record(
        cls,
        group_id: str,
        value: rec.GroupMetadataValue,
        config: GroupConfig,
        now_ms: int,
        *,
        id_factory: Callable[[], str] | None = None,
    ) -> Group:
        """Rebuild a group from its persisted metadata, as Kafka's loadGroup: Stable with the
        persisted members (who must heartbeat within their session timeout or be removed, see
        :meth:`on_loaded`), or Empty."""
        g = cls(group_id, config, now_ms, id_factory=id_factory)
        g.state = _STABLE if value.members else _EMPTY
        g.generation_id = value.generation
        g.protocol_name = value.protocol
        g.leader_id = value.leader
        g.state_timestamp_ms = value.current_state_timestamp_ms if value.current_state_timestamp_ms >= 0 else None
        for mv in value.members:
            m = Member(
                mv.member_id,
                mv.group_instance_id,
                mv.client_id,
                mv.client_host,
                mv.rebalance_timeout_ms,
                mv.session_timeout_ms,
                value.protocol_type,
                [(value.protocol or "", mv.subscription)],
            )
            m.assignment = mv.assignment
            g._add_member(m, None)
        g.protocol_type = value.protocol_type or None
        if g.leader_id is not None and g.leader_id not in g.members:
            g.leader_id = next(iter(g.members), None)
        g.subscribed_topics = g._compute_subscribed_topics()
        return g

    def on_loaded(self, now_ms: int) -> Output:
        """After replay: start the members' session timers; an over-capacity group rebalances so
        its members get a chance to commit before being shed (as in Kafka's onGroupLoaded)."""
        out = Output()
        if self.state not in (_STABLE, _EMPTY):
            return out
        if len(self.members) > self.config.max_size:
            self._prepare_rebalance(now_ms, out, f"freshly loaded group is over capacity ({self.config.max_size})")
        for m in self.members.values():
            self._schedule_heartbeat(m, now_ms)
        return out
