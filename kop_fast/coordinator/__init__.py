"""Kafka consumer-group coordinator for kop_fast: a pure (sans-io) state machine.

* :mod:`.partition_groups` -- :class:`PartitionGroups`, the entry point owning the groups and
  timers of one ``__consumer_offsets`` partition;
* :mod:`.group` -- :class:`Group`, one group's state machine, and the persistence contract; it is
  made of :mod:`.group_base` (the group's state, :class:`GroupState`, :class:`GroupConfig`),
  :mod:`.rebalance` (timers and rebalance phases), :mod:`.membership` (JoinGroup, SyncGroup,
  Heartbeat, LeaveGroup) and :mod:`.group_offsets` (OffsetCommit, OffsetFetch, OffsetDelete,
  retention);
* :mod:`.member` -- :class:`Member`;
* :mod:`.messages` -- the request/response dataclasses, :class:`Output`, :class:`PendingWrite`;
* :mod:`.offsets` -- committed-offset table with Kafka's pending/retention semantics;
* :mod:`.records` -- encode/decode of the ``__consumer_offsets`` records, ``partition_for``;
* :mod:`.clock` -- :class:`Clock`, :class:`SystemClock`, :class:`FakeClock`;
* :mod:`.errors` -- :class:`IllegalStateError` and the translation of storage errors.

Error codes are kio's, from :mod:`kop_fast.protocol.errors` (``ErrorCode.none`` and so on).
Nothing here imports asyncio or pulsar; the I/O layer drives it (see ``partition_groups``'s
docstring).
"""

from .clock import Clock, FakeClock, SystemClock
from .errors import IllegalStateError
from .group import Group
from .group_base import CONSUMER_PROTOCOL_TYPE, GroupConfig, GroupState
from .member import Member
from .messages import (
    DeleteGroupResult,
    DeleteGroupsResponse,
    DescribedGroup,
    DescribedMember,
    HeartbeatRequest,
    HeartbeatResponse,
    JoinRequest,
    JoinResponse,
    JoinResponseMember,
    LeaveMember,
    LeaveMemberResult,
    LeaveRequest,
    LeaveResponse,
    ListedGroup,
    ListGroupsResponse,
    OffsetCommitPartition,
    OffsetCommitPartitionResult,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetDeletePartitionResult,
    OffsetDeleteRequest,
    OffsetDeleteResponse,
    OffsetFetchPartitionResult,
    OffsetFetchRequest,
    OffsetFetchResponse,
    Output,
    PendingWrite,
    SyncRequest,
    SyncResponse,
    commit_error_response,
    complete_write,
    join_error,
)
from .offsets import OffsetAndMetadata, OffsetTable, TopicPartition
from .partition_groups import LoadResult, PartitionGroups
from .records import Record, RecordDecodeError, UnknownRecordVersionError, partition_for

__all__ = [
    "CONSUMER_PROTOCOL_TYPE",
    "Clock",
    "DeleteGroupResult",
    "DeleteGroupsResponse",
    "DescribedGroup",
    "DescribedMember",
    "FakeClock",
    "Group",
    "GroupConfig",
    "GroupState",
    "HeartbeatRequest",
    "HeartbeatResponse",
    "IllegalStateError",
    "JoinRequest",
    "JoinResponse",
    "JoinResponseMember",
    "LeaveMember",
    "LeaveMemberResult",
    "LeaveRequest",
    "LeaveResponse",
    "ListGroupsResponse",
    "ListedGroup",
    "LoadResult",
    "Member",
    "OffsetAndMetadata",
    "OffsetCommitPartition",
    "OffsetCommitPartitionResult",
    "OffsetCommitRequest",
    "OffsetCommitResponse",
    "OffsetDeletePartitionResult",
    "OffsetDeleteRequest",
    "OffsetDeleteResponse",
    "OffsetFetchPartitionResult",
    "OffsetFetchRequest",
    "OffsetFetchResponse",
    "OffsetTable",
    "Output",
    "PartitionGroups",
    "PendingWrite",
    "Record",
    "RecordDecodeError",
    "SyncRequest",
    "SyncResponse",
    "SystemClock",
    "TopicPartition",
    "UnknownRecordVersionError",
    "commit_error_response",
    "complete_write",
    "join_error",
    "partition_for",
]
