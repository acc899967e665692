"""Produce (key 0) v3-v9: verify each batch, store it in Pulsar, answer with the packed offset.

Nothing is acknowledged before Pulsar has persisted it. The handler is a plain
function up to the point where every batch has been handed to its partition's
producer, so batches are stored in the order requests arrived (a pipelining
idempotent producer relies on that); only the wait for Pulsar's receipts is
asynchronous.
"""

from __future__ import annotations

import asyncio
import logging

from kop_fast import codec
from kop_fast.producer_state import SequenceCheck
from kop_fast.protocol.errors import ErrorCode
from kop_fast.protocol.produce_wire import (
    MAX_VERSION,
    MIN_VERSION,
    decode_produce_request,
    encode_produce_response,
)
from kop_fast.server.connection import EncodedResponse
from kop_fast.server.registry import api
from kop_fast.server.storage_errors import storage_error_code
from kop_fast.server.topics import cached_topic, resolve_topic

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


def _store(broker, info, index: int, records) -> asyncio.Future | tuple[ErrorCode, int]:
    """Verify and submit one partition's batch; an immediate (error, offset) or a future of one."""
    if not 0 <= index < info.partitions:
        return ErrorCode.unknown_topic_or_partition, -1
    if not records:
        return ErrorCode.corrupt_message, -1
    try:
        batches = codec.batch_infos(records)
    except codec.CorruptRecordError as exc:
        log.info("rejecting corrupt batch for %s[%d]: %s", info.pulsar_topic, index, exc)
        return ErrorCode.corrupt_message, -1
    if len(batches) != 1:  # Produce v3+ carries exactly one v2 batch per partition
        return ErrorCode.invalid_record, -1
    (_pos, _length, _base, last_delta, count, attributes, _bts, _mts,
     producer_id, producer_epoch, base_sequence) = batches[0]
    if count < 1 or last_delta != count - 1 or attributes & (_ATTR_TRANSACTIONAL | _ATTR_CONTROL):
        # Offsets inside a stored batch must be exactly base+0..n-1; transactions are not supported.
        return ErrorCode.invalid_record, -1
    partition_log = broker.backend.partition(info, index)
    producers = broker.producer_state
    check, cached_offset = producers.check(partition_log.topic, producer_id, producer_epoch, base_sequence, count)
    if check == SequenceCheck.DUPLICATE_OF_RECENT:
        return ErrorCode.none, cached_offset
    if check != SequenceCheck.ACCEPT:
        return _SEQUENCE_ERRORS[check], -1
    handle = producers.begin(partition_log.topic, producer_id, producer_epoch, base_sequence, count)

    # Records one entry can hold: index values 0..max_index.
    capacity = codec.get_offset_layout().max_index + 1
    # `records` is a view of the request frame; the one copy taken here is what pulsar-client
    # is handed and what the entry cache keeps (it must not pin the whole frame).
    if broker.settings.entry_format == "kafka":
        if count <= capacity:
            stored = partition_log.append_kafka_batch(bytes(records), count)
        else:
            # Never truncate: split so each stored entry fits the offset index space. A full
            # entry spans exactly `capacity` offsets, so when the parts land in consecutive
            # entries of one ledger the records keep the offsets base+i the client computes.
            parts = codec.split_batch(bytes(records), capacity)
            stored = _all_stored([partition_log.append_kafka_batch(p, codec.verify_batches(p)[1])
                                  for p in parts])
    else:
        decoded = codec.decode_batches(records)[0].records
        if len(decoded) <= capacity:
            # The batch as sent is also how Fetch may show this entry (the entry cache).
            stored = partition_log.append_native(decoded, bytes(records))
        else:
            stored = _all_stored([partition_log.append_native(decoded[i:i + capacity])
                                  for i in range(0, len(decoded), capacity)])

    result = asyncio.get_running_loop().create_future()

    def done(fut: asyncio.Future) -> None:
        exc = fut.exception()
        if exc is not None:
            producers.forget(partition_log.topic, producer_id)
            code = storage_error_code(exc)
            if code != ErrorCode.request_timed_out:
                partition_log.producer_failed()
            log.warning("storing a batch in %s failed: %r", partition_log.topic, exc)
            result.set_result((code, -1))
        else:
            producers.persisted(handle, fut.result())
            result.set_result((ErrorCode.none, fut.result()))

    stored.add_done_callback(done)
    return result


def _all_stored(futures: list) -> asyncio.Future:
    """One future for a batch stored in several entries: the first base offset, once all persisted."""
    if len(futures) == 1:
        return futures[0]
    combined = asyncio.gather(*futures)
    result = asyncio.get_running_loop().create_future()

    def done(fut: asyncio.Future) -> None:
        if fut.exception() is not None:
            result.set_exception(fut.exception())
        else:
            result.set_result(fut.result()[0])

    combined.add_done_callback(done)
    return result


async def _resolve_then_store(broker, name: str, index: int, records):
    error, info = await resolve_topic(broker, name, auto_create=True)
    if info is None:
        return error, -1
    outcome = _store(broker, info, index, records)
    return await outcome if isinstance(outcome, asyncio.Future) else outcome


@api(API_KEY, MIN_VERSION, MAX_VERSION, decode=decode_produce_request)
def handle_produce(ctx, request):
    broker = ctx.broker
    outcomes = []  # (topic, partition, outcome)
    for topic in request.topic_data:
        info = cached_topic(broker, topic.name)
        for partition in topic.partition_data:
            if info is not None:
                outcome = _store(broker, info, partition.index, partition.records)
            else:
                outcome = asyncio.ensure_future(
                    _resolve_then_store(broker, topic.name, partition.index, partition.records))
            outcomes.append((topic.name, partition.index, outcome))
    if request.acks == 0:
        # Kafka sends no response to acks=0; failures can only be logged.
        return None
    return _respond(ctx, outcomes)


def _respond(ctx, outcomes) -> asyncio.Future:
    """A future of the response, completed by callbacks when every partition has its outcome."""
    response = asyncio.get_running_loop().create_future()
    pending = [o for _, _, o in outcomes if isinstance(o, asyncio.Future)]
    remaining = len(pending)

    def build() -> None:
        by_topic: dict[str, list] = {}
        for name, index, outcome in outcomes:
            error, offset = outcome.result() if isinstance(outcome, asyncio.Future) else outcome
            by_topic.setdefault(name, []).append((index, error, offset))
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
