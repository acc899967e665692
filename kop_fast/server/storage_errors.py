"""Pulsar failures as Kafka error codes: retriable where a retry can succeed, never silent success."""

from __future__ import annotations

import _pulsar

from kop_fast.backend.bridge import PulsarError
from kop_fast.protocol.errors import ErrorCode

_R = _pulsar.Result
# The client retries these after refreshing metadata: the Pulsar side was unavailable.
_NOT_LEADER = {_R.NotConnected, _R.AlreadyClosed, _R.ConnectError, _R.ReadError, _R.ProducerBusy,
               _R.ProducerQueueIsFull, _R.MemoryBufferIsFull, _R.ServiceUnitNotReady, _R.TopicTerminated,
               _R.ProducerFenced, _R.LookupError, _R.BrokerMetadataError, _R.TooManyLookupRequestException,
               _R.ConsumerBusy, _R.ProducerNotInitialized, _R.ConsumerNotInitialized}


def storage_error_code(exc: BaseException) -> ErrorCode:
    if isinstance(exc, PulsarError):
        if exc.result == _R.Timeout:
            return ErrorCode.request_timed_out
        if exc.result in _NOT_LEADER:
            return ErrorCode.not_leader_or_follower
        if exc.result == _R.MessageTooBig:
            return ErrorCode.message_too_large
        return ErrorCode.kafka_storage_error
    if isinstance(exc, TimeoutError):
        return ErrorCode.request_timed_out
    return ErrorCode.kafka_storage_error
