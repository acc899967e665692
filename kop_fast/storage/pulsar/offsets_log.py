"""Pulsar I/O of the group coordinator: the partitioned system topic `__consumer_offsets`.

Partition i of the coordinator is the Pulsar topic `{offsets-topic}-partition-{i}`;
a group lives in partition `partition_for(group_id, n)` (Kafka's placement).
Each record the coordinator persists is one Pulsar message: the record key
(binary) base64-encoded as the partition key, the record value as the payload,
a tombstone as a Pulsar null value. Batching is off, so one record is one entry.

Ownership is the cluster's business (`kop_fast.server.cluster`: a partition
is coordinated by the proxy the cluster view gives it, after the previous owner
has confirmed the hand-over, under a lease), not Pulsar's: an Exclusive
subscription as a lock was seen never to be released by pulsar-lite when its
holder was SIGKILLed with a full receiver queue. Each partition still has its
own Pulsar client (own connection), so its replays and writes never wait behind
the main client's producers and fetch readers.

Replay: a consumer on a subscription of its own (a fresh name per
acquisition, starting at the earliest message) reads the partition from the
start and is unsubscribed when the replay is done, so nothing is left behind
and nothing holds the log. (A Reader, in pulsar-lite, leaves a permanent
`reader-xxx` subscription behind per open.) Replay ends at a marker the new owner
writes first (an empty message with the property `kop_fast.marker`, skipped by
every replay): nobody else writes (we own the partition), so everything before
it is the log as the previous owners left it. (Asking where the log ends,
`get_last_message_id`, fails on pulsar-lite while the partition is empty, and
pulsar-client logs that as an ERROR at every group's first use.) A marker costs
one small entry per acquisition. Every message goes through a DuplicateFilter:
pulsar-lite redelivers, sometimes out of order.

The log is never
compacted here (pulsar-lite has no compaction): replay time grows with the
number of records ever written to a partition.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections import deque

import _pulsar
import pulsar

from kop_fast.storage.pulsar.bridge import (
    CompletionBridge,
    DuplicateFilter,
    PulsarError,
    client_logger,
    close_quietly,
    position_of,
)

log = logging.getLogger("kop_fast.offsets_topic")

REPLAY_SUBSCRIPTION_PREFIX = "__kop_fast_coordinator_replay"
# pulsar-lite stalls consumers with very large receiver queues; 1000 was seen safe.
REPLAY_RECEIVER_QUEUE = 1000
# A replay read that waits longer than this is a stall (or a broken log): give up and retry.
REPLAY_READ_TIMEOUT_S = 10.0
# Shorter than the Kafka clients' request timeouts, so a commit is answered (with an error)
# before the client gives up on it.
SEND_TIMEOUT_MS = 15000
# Also how long a failed ownership attempt takes (pulsar-lite answers an Exclusive conflict
# by dropping the connection; the client retries until this timeout).
OPERATION_TIMEOUT_S = 5
MARKER_PROPERTY = "kop_fast.marker"
_OK = _pulsar.Result.Ok


class PulsarOffsetsLog:
    """One partition of `__consumer_offsets`: ownership, replay, and ordered appends."""

    def __init__(self, service_url: str, bridge: CompletionBridge, topic: str, index: int,
                 client_options: dict | None = None) -> None:
        self.service_url = service_url
        self._client_options = client_options or {}
        self.client: _pulsar.Client | None = None
        self._client_wrapper = None
        self.bridge = bridge
        self.name = self.topic = topic
        self.index = index
        self._replay_consumer = None
        self._producer = None
        self._producer_task: asyncio.Future | None = None
        self._backlog: deque = deque()  # (records, future) waiting for a producer, FIFO
        self._closed = False

    # -- ownership and replay -------------------------------------------------------------------
    async def acquire_and_replay(self) -> list[tuple[bytes, bytes | None]]:
        """Open the partition for writing and return every record, in log order.

        Raises PulsarError or asyncio.TimeoutError (a stalled replay); nothing is
        held after a failure.
        """
        self._client_wrapper = pulsar.Client(
            self.service_url, operation_timeout_seconds=OPERATION_TIMEOUT_S, connection_timeout_ms=10000,
            logger=client_logger(), **self._client_options)
        self.client = self._client_wrapper._client
        conf = _pulsar.ConsumerConfiguration()
        conf.consumer_type(_pulsar.ConsumerType.Exclusive)
        conf.receiver_queue_size(REPLAY_RECEIVER_QUEUE)
        conf.subscription_initial_position(_pulsar.InitialPosition.Earliest)
        subscription = f"{REPLAY_SUBSCRIPTION_PREFIX}-{uuid.uuid4().hex[:12]}"
        try:
            fut, cb = self.bridge.value_future()
            self.client.subscribe_async_v2(self.topic, subscription, conf, cb)
            self._replay_consumer = await fut
        except BaseException:
            await self.release()
            raise
        try:
            self._producer = await self._create_producer()
            records = await self._replay(await self._write_marker())
        except BaseException:
            await self.release()
            raise
        await self._end_replay()
        return records

    async def _end_replay(self) -> None:
        """Drop the replay's subscription (it would keep the log's backlog otherwise)."""
        consumer, self._replay_consumer = self._replay_consumer, None
        if consumer is None:
            return
        fut, cb = self.bridge.result_future()
        try:
            consumer.unsubscribe_async(cb)
            await asyncio.wait_for(fut, OPERATION_TIMEOUT_S)
        except (PulsarError, asyncio.TimeoutError) as exc:
            log.info("could not drop the replay subscription of %s (%r)", self.topic, exc)
            await close_quietly(self.bridge, consumer)

    async def _write_marker(self) -> tuple[int, int]:
        """(ledger, entry) of a new marker: the end of the replay."""
        builder = _pulsar.MessageBuilder()
        builder.content(b"")
        builder.property(MARKER_PROPERTY, "replay")
        fut, cb = self.bridge.result_future()
        self._producer.send_async(builder.build(), cb)
        mid = await fut
        return mid.ledger_id(), mid.entry_id()

    async def _replay(self, end: tuple[int, int]) -> list[tuple[bytes, bytes | None]]:
        records: list[tuple[bytes, bytes | None]] = []
        dedup = DuplicateFilter()
        while True:
            fut, cb = self.bridge.result_future()
            self._replay_consumer.receive_async(cb)
            msg = await asyncio.wait_for(fut, REPLAY_READ_TIMEOUT_S)
            if not dedup.fresh(msg):
                continue
            record = _decode(msg)
            if record is not None:
                records.append(record)
            position = position_of(msg)
            if (position[0], position[1]) >= end:
                return records

    def owned(self) -> bool:
        """Until released (who owns a partition is the cluster's business)."""
        return not self._closed

    async def release(self) -> None:
        """Stop writing: close the producer, a replay consumer left over, and the client."""
        self._closed = True
        backlog, self._backlog = self._backlog, deque()
        for _records, fut in backlog:
            if not fut.done():
                fut.set_exception(PulsarError(_pulsar.Result.AlreadyClosed, "coordinator partition closed"))
        for attr in ("_producer", "_replay_consumer"):
            handle = getattr(self, attr)
            setattr(self, attr, None)
            if handle is not None:
                await close_quietly(self.bridge, handle)
        client, self.client = self.client, None
        self._client_wrapper = None
        if client is not None:
            await close_quietly(self.bridge, client)

    # -- appends --------------------------------------------------------------------------------
    def append(self, records) -> asyncio.Future:
        """Append records ((key, value) pairs; value None = tombstone) after everything appended
        before; the future resolves once Pulsar has persisted all of them (or fails)."""
        fut = asyncio.get_running_loop().create_future()
        if self._closed:
            fut.set_exception(PulsarError(_pulsar.Result.AlreadyClosed, "coordinator partition closed"))
            return fut
        if self._producer is not None and not self._backlog:
            self._send(records, fut)
            return fut
        self._backlog.append((records, fut))
        if self._producer_task is None:
            self._producer_task = asyncio.ensure_future(self._restart_producer())
        return fut

    async def _create_producer(self):
        conf = _pulsar.ProducerConfiguration()
        conf.batching_enabled(False)
        conf.send_timeout_millis(SEND_TIMEOUT_MS)
        conf.block_if_queue_full(False)
        fut, cb = self.bridge.value_future()
        self.client.create_producer_async_v2(self.topic, conf, cb)
        return await fut

    async def _restart_producer(self) -> None:
        try:
            producer = await self._create_producer()
        except Exception as exc:
            backlog, self._backlog = self._backlog, deque()
            for _records, fut in backlog:
                if not fut.done():
                    fut.set_exception(exc)
            return
        finally:
            self._producer_task = None
        if self._closed:
            producer.close_async(lambda *_: None)
            return
        self._producer = producer
        backlog, self._backlog = self._backlog, deque()
        for records, fut in backlog:
            self._send(records, fut)

    def _send(self, records, fut: asyncio.Future) -> None:
        producer = self._producer
        bridge = self.bridge
        remaining = [len(records)]
        failure = [None]

        def settle(result) -> None:
            if result != _OK and failure[0] is None:
                failure[0] = result
            remaining[0] -= 1
            if remaining[0] == 0 and not fut.done():
                if failure[0] is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(PulsarError(failure[0]))
                    self._producer_failed(producer)

        if not records:
            fut.set_result(None)
            return
        for key, value in records:
            builder = _pulsar.MessageBuilder()
            builder.partition_key(base64.b64encode(key).decode("ascii"))
            if value is None:
                builder.content(b"")
                builder.set_null_value()
            else:
                builder.content(value)
            try:
                producer.send_async(builder.build(), lambda result, _mid: bridge.post(settle, result))
            except Exception as exc:  # e.g. raised synchronously for a closed producer
                log.warning("appending to %s failed: %r", self.topic, exc)
                bridge.post(settle, _pulsar.Result.UnknownError)

    def _producer_failed(self, producer) -> None:
        """After a failed send the next append gets a new producer (old one closed)."""
        if self._producer is producer:
            self._producer = None
            producer.close_async(lambda *_: None)


def _decode(msg) -> tuple[bytes, bytes | None] | None:
    if MARKER_PROPERTY in msg.properties():
        return None  # where a replay ended
    try:
        key = base64.b64decode(msg.partition_key(), validate=True)
    except Exception:
        log.warning("skipping message %s without a valid record key", msg.message_id())
        return None
    if not key:
        log.warning("skipping message %s without a record key", msg.message_id())
        return None
    value = None if msg.has_null_value() else msg.data()
    return key, value
