"""Storage failures as Kafka error codes, in one place: retriable where a retry can succeed, never silent success."""

from __future__ import annotations

from kop_fast.protocol.errors import ErrorCode
from kop_fast.storage.api import StorageError, StorageErrorKind

_BY_KIND = {
    # The client retries this after refreshing metadata.
    StorageErrorKind.UNAVAILABLE: ErrorCode.not_leader_or_follower,
    StorageErrorKind.TIMED_OUT: ErrorCode.request_timed_out,
    StorageErrorKind.TOO_LARGE: ErrorCode.message_too_large,
    StorageErrorKind.FAILED: ErrorCode.kafka_storage_error,
}


def storage_error_code(exc: BaseException) -> ErrorCode:
    if isinstance(exc, StorageError):
        return _BY_KIND[exc.kind]
    if isinstance(exc, TimeoutError):
        return ErrorCode.request_timed_out
    return ErrorCode.kafka_storage_error
