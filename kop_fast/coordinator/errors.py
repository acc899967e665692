"""Errors of the group coordinator: :class:`IllegalStateError`, and the mapping of storage
failures to the Kafka error codes clients are answered with.

Error codes are kio's :class:`~kop_fast.protocol.errors.ErrorCode` (Kafka's wire numbers, as in
``org.apache.kafka.common.protocol.Errors``); the functions here accept any int and return an
``ErrorCode`` when the number is one Kafka defines.
"""

from __future__ import annotations

from kop_fast.protocol.errors import ErrorCode

__all__ = ["IllegalStateError", "as_error_code", "group_store_error", "offset_commit_store_error"]


class IllegalStateError(RuntimeError):
    """An internal invariant was violated (an invalid state transition)."""


def as_error_code(code: int) -> int:
    """Return ``code`` as an :class:`ErrorCode` when it is one we know, else the int unchanged."""
    try:
        return ErrorCode(code)
    except ValueError:
        return int(code)


def _storage_error_map(*, timed_out: ErrorCode, too_large: ErrorCode) -> dict[int, ErrorCode]:
    """What a failed write to ``__consumer_offsets`` is reported as. Both of Kafka's mappings
    hide replication trouble behind COORDINATOR_NOT_AVAILABLE and a lost partition behind
    NOT_COORDINATOR; they differ in what a timeout and a too-large write become."""
    return {
        ErrorCode.unknown_topic_or_partition: ErrorCode.coordinator_not_available,
        ErrorCode.not_enough_replicas: ErrorCode.coordinator_not_available,
        ErrorCode.not_enough_replicas_after_append: ErrorCode.coordinator_not_available,
        ErrorCode.request_timed_out: timed_out,
        ErrorCode.not_leader_or_follower: ErrorCode.not_coordinator,
        ErrorCode.kafka_storage_error: ErrorCode.not_coordinator,
        ErrorCode.message_too_large: too_large,
        ErrorCode.record_list_too_large: too_large,
        ErrorCode.invalid_fetch_size: too_large,
    }


_GROUP_STORE_ERRORS = _storage_error_map(
    timed_out=ErrorCode.coordinator_not_available, too_large=ErrorCode.unknown_server_error
)
_OFFSET_COMMIT_STORE_ERRORS = _storage_error_map(
    timed_out=ErrorCode.request_timed_out, too_large=ErrorCode.invalid_commit_offset_size
)


def group_store_error(code: int) -> int:
    """Error answered to SyncGroup / JoinGroup (and OffsetDelete / DeleteGroups) when writing
    group metadata failed.

    Mirrors the mapping in Kafka's ``GroupMetadataManager.storeGroup`` callback: clients only
    understand coordinator-level errors here, so storage errors are translated.
    """
    code = as_error_code(code)
    return _GROUP_STORE_ERRORS.get(code, code)


def offset_commit_store_error(code: int) -> int:
    """Error answered per partition to OffsetCommit when writing the commit failed.

    Mirrors Kafka's ``GroupMetadataManager.maybeConvertOffsetCommitError`` (a timeout stays a
    timeout there).
    """
    code = as_error_code(code)
    return _OFFSET_COMMIT_STORE_ERRORS.get(code, code)
