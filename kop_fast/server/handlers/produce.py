"""Produce (key 0) v0-v9: verify each batch, hand it to the storage, answer with its base offset.

v0-v2 carry legacy message sets (magic 0/1): each partition's set becomes one v2 batch
(protocol/legacy_records.py: timestamps, compression) and takes the same path.

Nothing is acknowledged before the storage has made it durable. The handler is a plain
function up to the point where every batch has been handed to its partition, so
batches are stored in the order requests arrived (a pipelining idempotent producer
relies on that); only the wait for the storage's receipts is asynchronous.
"""

from __future__ import annotations

import asyncio
import logging
import time

from kop_fast import codec
from kop_fast.producer_state import SequenceCheck
from kop_fast.protocol.encoded import EncodedResponse
from kop_fast.protocol.errors import ErrorCode
from kop_fast.protocol.legacy_records import up_convert
from kop_fast.protocol.produce_wire import (
    BATCH_FROM,
    MAX_VERSION,
    MIN_VERSION,
    decode_produce_request,
    encode_produce_response,
)
from kop_fast.server.registry import api
from kop_fast.server.storage_errors import storage_error_code
from kop_fast.server.topic_configs import MAX_MESSAGE_BYTES, int_setting
from kop_fast.auth.access import PRODUCE
from kop_fast.server.topics import authorized, granted, resolve_topic

log = logging.getLogger("kop_fast.produce")

API_KEY = 0
_ATTR_TRANSACTIONAL = 0x10
_ATTR_CONTROL = 0x20
_SEQUENCE_ERRORS = {
    SequenceCheck.DUPLICATE_SEQUENCE: ErrorCode.duplicate_sequence_number,
    SequenceCheck.OUT_OF_ORDER_SEQUENCE: ErrorCode.out_of_order_sequence_number,
    SequenceCheck.INVALID_PRODUCER_EPOCH: ErrorCode.invalid_producer_epoch,
    # The original is still being written; a retry after it lands gets its offset.
    SequenceCheck.DUPLICATE_IN_FLIGHT: ErrorCode.not_enough_replicas,
}


def _store(node, info, index: int, records) -> asyncio.Future | tuple[ErrorCode, int]:
    """Verify and submit one partition's batch; an immediate (error, offset) or a future of one."""
    if not 0 <= index < info.partitions:
        return ErrorCode.unknown_topic_or_partition, -1
    if not records:
        return ErrorCode.corrupt_message, -1
    limit = node.storage.topic_configs(info).get(MAX_MESSAGE_BYTES)  # None unless the topic sets it
    if limit is not None and len(records) > int_setting(limit):
        return ErrorCode.message_too_large, -1
    try:
        batches = codec.batch_infos(records)
    except codec.CorruptRecordError as exc:
        log.info("rejecting corrupt batch for %s[%d]: %s", info.name, index, exc)
        return ErrorCode.corrupt_message, -1
    if len(batches) != 1:  # Produce v3+ carries exactly one v2 batch per partition
        return ErrorCode.invalid_record, -1
    (_pos, _length, _base, last_delta, count, attributes, _bts, _mts,
     producer_id, producer_epoch, base_sequence) = batches[0]
    if count < 1 or last_delta != count - 1 or attributes & (_ATTR_TRANSACTIONAL | _ATTR_CONTROL):
        # Offsets inside a stored batch must be exactly base+0..n-1; transactions are not supported.
        return ErrorCode.invalid_record, -1
    partition = node.storage.partition_log(info, index)
    cluster = node.cluster
    if cluster is not None and not cluster.serving(partition.name):
        return ErrorCode.not_leader_or_follower, -1
    if producer_id >= 0 and not node.producer_recovery.ready(partition):
        # Its producers' state is being read: the batch waits for it (in arrival order).
        return node.producer_recovery.after_load(
            partition, lambda: _append(node, info, index, partition, records, count, producer_id, producer_epoch,
                                       base_sequence))
    return _append(node, info, index, partition, records, count, producer_id, producer_epoch, base_sequence)


def _append(node, info, index: int, partition, records, count: int, producer_id: int, producer_epoch: int,
            base_sequence: int) -> asyncio.Future | tuple[ErrorCode, int]:
    """Check the producer's sequence and hand the batch to the storage."""
    producers = node.producer_state
    check, cached_offset = producers.check(partition.name, producer_id, producer_epoch, base_sequence, count)
    if check == SequenceCheck.DUPLICATE_OF_RECENT:
        return ErrorCode.none, cached_offset
    if check != SequenceCheck.ACCEPT:
        return _SEQUENCE_ERRORS[check], -1
    handle = producers.begin(partition.name, producer_id, producer_epoch, base_sequence, count)
    try:
        stored = partition.append_batch(records, count)
    except codec.CorruptRecordError as exc:
        # A storage that reads the records (entry format pulsar, or a batch split because it
        # claims more records than one entry holds) found what batch_infos cannot see inside
        # a compressed batch: records that do not decode, or more than MAX_DECOMPRESSED bytes.
        producers.forget(partition.name, producer_id)
        log.info("rejecting corrupt batch for %s[%d]: %s", info.name, index, exc)
        return ErrorCode.corrupt_message, -1
    inflight = node.inflight_appends
    inflight.add(stored)
    recovery = node.producer_recovery if producer_id >= 0 else None
    if recovery is not None:
        recovery.writing(partition.name, stored)
    result = asyncio.get_running_loop().create_future()
    metrics = node.metrics
    size = len(records)  # the callback must not hold `records`, a view that pins the request frame

    def done(fut: asyncio.Future) -> None:
        inflight.discard(fut)
        exc = fut.exception()
        if recovery is not None:
            # Corrupt records were never stored; any other failure may have been (see producer_recovery).
            recovery.settled(partition.name, fut, exc is not None and not isinstance(exc, codec.CorruptRecordError))
        if exc is not None:
            producers.forget(partition.name, producer_id)
            if isinstance(exc, codec.CorruptRecordError):  # found by a storage that waited first
                log.info("rejecting corrupt batch for %s[%d]: %s", info.name, index, exc)
                result.set_result((ErrorCode.corrupt_message, -1))
                return
            log.warning("storing a batch in %s failed: %r", partition.name, exc)
            result.set_result((storage_error_code(exc), -1))
        else:
            producers.persisted(handle, fut.result())
            if metrics is not None:
                metrics.stored(info.name, size, count)
            result.set_result((ErrorCode.none, fut.result()))

    stored.add_done_callback(done)
    return result


def _store_legacy(node, info, index: int, message_set) -> asyncio.Future | tuple[ErrorCode, int]:
    """Produce v0-v2: the partition's legacy message set as one v2 batch, then `_store`."""
    if not 0 <= index < info.partitions:
        return ErrorCode.unknown_topic_or_partition, -1
    if not message_set:
        return ErrorCode.corrupt_message, -1
    try:
        records = up_convert(message_set, int(time.time() * 1000))
    except codec.CorruptRecordError as exc:
        log.info("rejecting corrupt message set for %s[%d]: %s", info.name, index, exc)
        return ErrorCode.corrupt_message, -1
    return _store(node, info, index, records)


async def _resolve_then_store(node, name: str, index: int, records, info=None, store=_store):
    if info is None:
        error, info = await resolve_topic(node, name, auto_create=True)
        if info is None:
            return error, -1
    error = await authorized(node, info, PRODUCE)
    if error:
        return error, -1
    outcome = store(node, info, index, records)
    return await outcome if isinstance(outcome, asyncio.Future) else outcome


# v0-v2 are served (legacy message sets, up-converted): librdkafka < 2.11.1 also needs v0 advertised
# to compress (KAFKA-18659).
@api(API_KEY, MIN_VERSION, MAX_VERSION, decode=decode_produce_request)
def handle_produce(ctx, request):
    node = ctx.node
    store = _store if ctx.api_version >= BATCH_FROM else _store_legacy
    outcomes = []  # (topic, partition, outcome)
    for topic in request.topic_data:
        info = node.storage.cached_topic(topic.name)
        # A SASL client whose Produce Pulsar has not authorized lately takes the async path.
        ready = info is not None and granted(node, info, PRODUCE)
        for partition in topic.partition_data:
            if ready:
                outcome = store(node, info, partition.index, partition.records)
            else:
                outcome = asyncio.ensure_future(
                    _resolve_then_store(node, topic.name, partition.index, partition.records, info, store))
            outcomes.append((topic.name, partition.index, outcome))
    if request.acks == 0:
        # Kafka sends no response to acks=0, but the request still waits on the storage like
        # any other: the connection's and the node's bounds on unanswered Produce bytes
        # (--max-pending-produce-bytes) then hold for acks=0 producers too.
        return _stored(outcomes)
    return _respond(ctx, outcomes)


def _stored(outcomes) -> asyncio.Future:
    """A future of None, done when every partition's outcome is (acks=0: nothing to answer)."""
    done = asyncio.get_running_loop().create_future()
    pending = [o for _, _, o in outcomes if isinstance(o, asyncio.Future)]
    remaining = len(pending)

    def one_done(fut: asyncio.Future) -> None:
        nonlocal remaining
        remaining -= 1
        if not fut.cancelled() and fut.exception() is not None:  # nobody else will see it
            log.warning("acks=0 produce failed", exc_info=fut.exception())
        if remaining == 0 and not done.done():
            done.set_result(None)

    if not pending:
        done.set_result(None)
    for fut in pending:
        fut.add_done_callback(one_done)
    return done


def _respond(ctx, outcomes) -> asyncio.Future:
    """A future of the response, completed by callbacks when every partition has its outcome."""
    response = asyncio.get_running_loop().create_future()
    pending = [o for _, _, o in outcomes if isinstance(o, asyncio.Future)]
    remaining = len(pending)

    metrics = ctx.node.metrics

    def build() -> None:
        by_topic: dict[str, list] = {}
        for name, index, outcome in outcomes:
            error, offset = outcome.result() if isinstance(outcome, asyncio.Future) else outcome
            by_topic.setdefault(name, []).append((index, error, offset))
            if error and metrics is not None:
                metrics.error(API_KEY, error)
        body = encode_produce_response(ctx.api_version, list(by_topic.items()))
        response.set_result(EncodedResponse([body]))

    def one_done(fut: asyncio.Future) -> None:
        nonlocal remaining
        remaining -= 1
        if response.done():
            return
        if fut.exception() is not None:
            response.set_exception(fut.exception())
        elif remaining == 0:
            build()

    if not pending:
        build()
    for fut in pending:
        fut.add_done_callback(one_done)
    return response
