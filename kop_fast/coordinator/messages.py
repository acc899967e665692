"""The coordinator's requests and responses, and what a call produces (:class:`Output`), including
the records it must persist first (:class:`PendingWrite`, :func:`complete_write`).

The request/response dataclasses carry what the Kafka APIs carry, without wire details; the
server's handlers translate between them and kio's schemas. The persistence contract is
described in :mod:`kop_fast.coordinator.group`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable, Mapping, Sequence

from kop_fast.protocol.errors import ErrorCode

from . import records as rec
from .errors import IllegalStateError, as_error_code
from .offsets import TopicPartition

__all__ = [
    "NO_GENERATION",
    "UNKNOWN_MEMBER_ID",
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
    "join_error",
    "commit_error_response",
    "Output",
    "PendingWrite",
    "WriteCallback",
    "complete_write",
]

NO_GENERATION = -1
UNKNOWN_MEMBER_ID = ""


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
        if self.error_code != ErrorCode.none:
            return self.error_code
        for m in self.members:
            if m.error_code != ErrorCode.none:
                return m.error_code
        return ErrorCode.none


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
    error_code: int = ErrorCode.none


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


def join_error(error: int, member_id: str = UNKNOWN_MEMBER_ID) -> JoinResponse:
    """A JoinGroup answer that carries only an error."""
    return JoinResponse(error_code=error, member_id=member_id)


def commit_error_response(req: OffsetCommitRequest, error: int) -> OffsetCommitResponse:
    """An OffsetCommit answer rejecting the whole request: ``error`` for each distinct partition."""
    seen = dict.fromkeys((p.topic, p.partition) for p in req.partitions)
    return OffsetCommitResponse(error, [OffsetCommitPartitionResult(t, p, error) for t, p in seen])


# ------------------------------------------------------------------------------------------------
# Output and persistence
# ------------------------------------------------------------------------------------------------

WriteCallback = Callable[[int, int, "Output"], None]  # (error_code, now_ms, out)

# Write ids grow in emission order; since the I/O layer appends writes in emission order, a
# larger id means "later in the log", which orders concurrent commits of one partition.
_write_ids = itertools.count(1)


class PendingWrite:
    """Records that must be durably appended before the state machine goes on.

    Hand it back to :func:`complete_write` (or ``PartitionGroups.complete_write``) exactly once.
    """

    __slots__ = ("write_id", "group_id", "records", "affects_timers", "_on_done", "_completed")

    def __init__(
        self,
        group_id: str,
        records: list[rec.Record],
        on_done: WriteCallback | None,
        *,
        affects_timers: bool = True,
    ) -> None:
        self.write_id = next(_write_ids)
        self.group_id = group_id
        self.records = records
        # Whether completing it can move the group's timers (PartitionGroups then reschedules
        # the group; offset commits and tombstones never do, and commits are the frequent ones).
        self.affects_timers = affects_timers
        self._on_done = on_done
        self._completed = False

    @property
    def completed(self) -> bool:
        return self._completed

    def then(self, callback: WriteCallback) -> None:
        """Also call `callback` when this write completes (after the one it was made with)."""
        first = self._on_done
        if first is None:
            self._on_done = callback
            return

        def both(error_code: int, now_ms: int, out: "Output") -> None:
            first(error_code, now_ms, out)
            callback(error_code, now_ms, out)
        self._on_done = both

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

    @classmethod
    def of(cls, waiter: Any, response: Any) -> Output:
        """An output that only answers ``waiter`` with ``response``."""
        return cls(completions=[(waiter, response)])

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

