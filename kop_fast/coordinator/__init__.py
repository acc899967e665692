"""Kafka consumer-group coordinator for kop_fast: a pure (sans-io) state machine.

* :mod:`.group` -- one group's state machine, the request/response dataclasses, the
  :class:`Output` / :class:`PendingWrite` persistence contract;
* :mod:`.manager` -- :class:`GroupManager`, the entry point owning all groups and timers;
* :mod:`.offsets` -- committed-offset table with Kafka's pending/retention semantics;
* :mod:`.records` -- encode/decode of the ``__consumer_offsets`` records, ``partition_for``;
* :mod:`.clock` -- :class:`Clock`, :class:`SystemClock`, :class:`FakeClock`;
* :mod:`.errors` -- :class:`ErrorCode`.

Nothing here imports asyncio or pulsar; the I/O layer drives it (see ``manager``'s docstring).
"""

from .clock import Clock, FakeClock, SystemClock
from .errors import ErrorCode
from .group import (
    CONSUMER_PROTOCOL_TYPE,
    DeleteGroupResult,
    DeleteGroupsResponse,
    DescribedGroup,
    DescribedMember,
    Group,
    GroupConfig,
    GroupState,
    HeartbeatRequest,
    HeartbeatResponse,
    IllegalStateError,
    JoinRequest,
    JoinResponse,
    JoinResponseMember,
    LeaveMember,
    LeaveMemberResult,
    LeaveRequest,
    LeaveResponse,
    ListedGroup,
    ListGroupsResponse,
    Member,
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
    complete_write,
)
from .manager import GroupManager, LoadResult
from .offsets import OffsetAndMetadata, OffsetTable, TopicPartition
from .records import Record, RecordDecodeError, UnknownRecordVersionError, partition_for

__all__ = [
    "CONSUMER_PROTOCOL_TYPE",
    "Clock",
    "DeleteGroupResult",
    "DeleteGroupsResponse",
    "DescribedGroup",
    "DescribedMember",
    "ErrorCode",
    "FakeClock",
    "Group",
    "GroupConfig",
    "GroupManager",
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
    "PendingWrite",
    "Record",
    "RecordDecodeError",
    "SyncRequest",
    "SyncResponse",
    "SystemClock",
    "TopicPartition",
    "UnknownRecordVersionError",
    "complete_write",
    "partition_for",
]
