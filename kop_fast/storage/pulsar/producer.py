"""The Pulsar producer of one partition: appends in call order, waiting for room.

Appends are plain functions returning futures, not coroutines: the order in which
they are called is the order in which Pulsar stores the data, also while the
producer is still being created (they wait in `_backlog`, FIFO). Each stored
entry is reported to `on_stored(ledger, entry, base_offset, record_count,
cacheable_batch)` before its future resolves, also when nobody waits for the
future any more (acks=0, a closed connection). `on_stored` may return a future of
the offset to answer instead (consecutive offsets: the entry's stamp was too low
because someone else wrote in between, see offsets_consecutive.py).
"""

from __future__ import annotations

import asyncio
import base64
from collections import deque

import _pulsar

from kop_fast import codec, pulsar_payload
from kop_fast.pulsar_payload import FORMAT_PROPERTY, FORMAT_V2, KEY_B64_PROPERTY, OFFSET_PROPERTY, RECORDS_PROPERTY
from kop_fast.storage.pulsar.bridge import CompletionBridge, PulsarError, close_quietly

SEND_TIMEOUT_MS = 30000
# Messages a producer may have unacknowledged in pulsar-client; appends beyond wait in order.
MAX_PENDING_MESSAGES = 100_000
_OK = _pulsar.Result.Ok


class PartitionProducer:
    def __init__(self, client: _pulsar.Client, bridge: CompletionBridge, topic: str, entry_format: str,
                 on_stored) -> None:
        self.client = client
        self.bridge = bridge
        self.topic = topic
        self.entry_format = entry_format
        self._on_stored = on_stored
        self._producer = None
        self._producer_task: asyncio.Future | None = None
        self._backlog: deque = deque()  # (weight, send, future, args) waiting for a producer or room
        self._unacknowledged = 0  # messages sent and not yet acknowledged (or failed)
        # Called with nothing for each append that failed (never reported to on_stored).
        self.on_failed = None

    def append_kafka_batch(self, batch: bytes, record_count: int, offset: int | None = None) -> asyncio.Future:
        """Store one verified Kafka batch as one Pulsar message; the future gives its base offset.

        `offset` (consecutive offsets): the base offset the owner assigned, stored as the
        message's `kafka.offset` property and given back; None: the packed position."""
        fut = asyncio.get_running_loop().create_future()
        self._submit(1, self._send_kafka_batch, fut, batch, record_count, offset)
        return fut

    def append_native(self, records, batch: bytes | None = None, offset: int | None = None) -> asyncio.Future:
        """Store each record as a Pulsar message, all in one Pulsar batch entry; the future gives the first offset.

        `batch`, the Kafka batch the records came in, is reported to `on_stored` when
        they all land in one entry: it then holds exactly that entry's records at the
        same offsets (pack(ledger, entry, i) = base + i)."""
        fut = asyncio.get_running_loop().create_future()
        self._submit(len(records), self._send_native, fut, records, batch, offset)
        return fut

    def _submit(self, weight: int, send, fut, *args) -> None:
        """Send now, or queue behind earlier appends (FIFO) while the producer is being
        created or `MAX_PENDING_MESSAGES` messages are unacknowledged: pulsar-client would
        refuse more (ProducerQueueIsFull) after part of a batch was sent. Measured with
        the pulsar entry format: librdkafka's 5 produce requests in flight of ~9,000
        records each reached the limit, and refused batches were partly stored."""
        if self._producer is not None and not self._backlog and self._fits(weight):
            self._guarded_send(weight, send, fut, *args)
            return
        self._backlog.append((weight, send, fut, args))
        if self._producer is None and self._producer_task is None:
            self._producer_task = asyncio.ensure_future(self._start_producer())

    def _fits(self, weight: int) -> bool:
        return not self._unacknowledged or self._unacknowledged + weight <= MAX_PENDING_MESSAGES

    def _guarded_send(self, weight: int, send, fut, *args) -> None:
        self._unacknowledged += weight
        producer = self._producer
        try:
            send(fut, *args)
        except Exception as exc:  # e.g. AlreadyClosed, raised synchronously by pulsar-client
            self._acknowledged(weight)
            self._fail(fut, exc if isinstance(exc, PulsarError) else PulsarError(None, repr(exc)), producer)

    def _fail(self, fut, exc: PulsarError, producer) -> None:
        """An append failed. Unless Pulsar only did not answer in time, the producer that
        failed is replaced (once: later failures of the same producer find it gone)."""
        if exc.result != _pulsar.Result.Timeout and self._producer is producer:
            self.reset()
        if self.on_failed is not None:
            self.on_failed()
        if not fut.done():
            fut.set_exception(exc)

    def _acknowledged(self, weight: int) -> None:
        """`weight` messages are no longer pending in pulsar-client: send what waited for room."""
        self._unacknowledged -= weight
        backlog = self._backlog
        while backlog and self._producer is not None and self._fits(backlog[0][0]):
            weight, send, fut, args = backlog.popleft()
            self._guarded_send(weight, send, fut, *args)

    async def _start_producer(self) -> None:
        try:
            producer = await self._create_producer()
        except Exception as exc:
            backlog, self._backlog = self._backlog, deque()
            for _, _, fut, _args in backlog:
                if self.on_failed is not None:
                    self.on_failed()
                if not fut.done():
                    fut.set_exception(exc)
            return
        finally:
            self._producer_task = None
        self._producer = producer
        self._acknowledged(0)  # send the backlog, as far as there is room

    async def _create_producer(self):
        conf = _pulsar.ProducerConfiguration()
        conf.send_timeout_millis(SEND_TIMEOUT_MS)
        conf.max_pending_messages(MAX_PENDING_MESSAGES)
        conf.block_if_queue_full(False)
        if self.entry_format == "kafka":
            # A stored Kafka batch is already a batch: one Pulsar message, one entry.
            conf.batching_enabled(False)
        else:
            # Entry format pulsar: all records of one Kafka batch must land in one Pulsar
            # batch entry. Batches are closed only by our explicit flush: the publish timer
            # could otherwise cut a Kafka batch in two.
            conf.batching_enabled(True)
            conf.batching_max_messages(1 << 20)
            conf.batching_max_allowed_size_in_bytes(256 << 20)
            conf.batching_max_publish_delay_ms(3_600_000)
        fut, cb = self.bridge.value_future()
        self.client.create_producer_async_v2(self.topic, conf, cb)
        return await fut

    @property
    def is_open(self) -> bool:
        return self._producer is not None

    def send_counts(self) -> tuple[int, int]:
        """(messages handed to pulsar-client and not yet acknowledged, appends waiting in
        `_backlog` for a producer or room), for metrics."""
        return self._unacknowledged, len(self._backlog)

    def reset(self) -> None:
        """Forget the producer after a failure; the next append makes a new one."""
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.close_async(lambda *_: None)
        if self._backlog and self._producer_task is None:  # appends waiting for room go on
            self._producer_task = asyncio.ensure_future(self._start_producer())

    def _send_kafka_batch(self, fut, batch: bytes, record_count: int, offset: int | None) -> None:
        builder = _pulsar.MessageBuilder()
        builder.content(batch)
        builder.property(FORMAT_PROPERTY, FORMAT_V2)
        builder.property(RECORDS_PROPERTY, str(record_count))
        if offset is not None:
            builder.property(OFFSET_PROPERTY, str(offset))
        bridge = self.bridge
        producer = self._producer
        producer.send_async(
            builder.build(),
            lambda result, mid: bridge.post(self._kafka_batch_sent, fut, result, mid, batch, record_count, producer,
                                            offset))

    def _kafka_batch_sent(self, fut, result, mid, batch: bytes, record_count: int, producer,
                          offset: int | None = None) -> None:
        self._acknowledged(1)
        if result != _OK:
            self._fail(fut, PulsarError(result), producer)
            return
        ledger, entry = mid.ledger_id(), mid.entry_id()
        base = codec.pack_offset(ledger, entry, 0) if offset is None else offset
        # Also when the producer's future is gone (acks=0, a closed connection): the
        # entry is stored, and the run of cached entries must not skip it.
        correction = self._on_stored(ledger, entry, base, record_count, batch)
        if not fut.done():
            if correction is None:
                fut.set_result(base)
            else:
                chain(correction, fut)

    def _send_native(self, fut, records, batch: bytes | None, offset: int | None) -> None:
        # No await between the first send and the flush: nothing else can join this Pulsar batch.
        producer = self._producer
        bridge = self.bridge
        count = len(records)
        state = {"first": None, "last": None, "failed": None, "flushed": False, "done": False}

        def finish():
            if state["done"] or not state["flushed"] or (state["first"] is None and state["failed"] is None):
                return
            state["done"] = True
            self._acknowledged(count)
            if state["failed"] is not None:
                self._fail(fut, PulsarError(state["failed"]), producer)
                return
            mid = state["first"]
            ledger, entry, index = mid.ledger_id(), mid.entry_id(), max(mid.batch_index(), 0)
            base = codec.pack_offset(ledger, entry, index) if offset is None else offset
            last = state["last"] or mid
            whole = batch is not None and index == 0 and (last.ledger_id(), last.entry_id()) == (ledger, entry)
            correction = self._on_stored(ledger, entry, base, count, batch if whole else None)
            if not fut.done():
                if correction is None:
                    fut.set_result(base)
                else:
                    chain(correction, fut)

        def on_first(result, mid):
            if result == _OK:
                state["first"] = mid
            else:
                state["failed"] = result
            bridge.post(finish)

        def on_last(result, mid):
            # pulsar-client completes one producer's sends in order, on its I/O thread.
            if result != _OK:
                state["failed"] = result
            else:
                state["last"] = mid

        def on_flush(result, _value=None):
            if result != _OK and state["failed"] is None:
                state["failed"] = result
            state["flushed"] = True
            bridge.post(finish)

        send = producer.send_async
        new_builder = _pulsar.MessageBuilder
        to_properties = pulsar_payload.headers_to_properties
        try:
            self._send_records(records, send, new_builder, to_properties, on_first, on_last, offset)
        except Exception:
            state["done"] = True  # the caller reports the failure; callbacks of what was sent change nothing
            raise
        producer.flush_async(on_flush)

    @staticmethod
    def _send_records(records, send, new_builder, to_properties, on_first, on_last, offset=None) -> None:
        """Only the first and the last message get a callback: each Python callback costs
        pulsar-client's I/O thread a GIL hand-over (a context switch or two), which at one
        per record made the pulsar entry format fall behind at 5,000 records/s. The
        messages between share the batch entry, so their outcome is the last one's (the
        flush reports a failure too)."""
        callback = on_first
        last = len(records) - 1
        for i, record in enumerate(records):
            builder = new_builder()
            if offset is not None:
                builder.property(OFFSET_PROPERTY, str(offset))
                offset += 1
            key = record.key
            if key is not None:
                try:
                    builder.partition_key(key.decode())
                except UnicodeDecodeError:
                    builder.partition_key(base64.b64encode(key).decode())
                    builder.property(KEY_B64_PROPERTY, "1")
            value = record.value
            if value is None:
                builder.content(b"")
                builder.set_null_value()
            else:
                builder.content(value)
            timestamp = record.timestamp
            if timestamp >= 0:
                builder.event_timestamp(timestamp)
            if record.headers:
                for k, v in to_properties(record.headers).items():
                    builder.property(k, v)
            send(builder.build(), callback)
            callback = on_last if i + 1 == last else None

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await close_quietly(self.bridge, producer)


def chain(inner: asyncio.Future, outer: asyncio.Future) -> None:
    """`outer` gets `inner`'s outcome."""
    def done(fut: asyncio.Future) -> None:
        if outer.done():
            return
        if fut.cancelled():
            outer.cancel()
        elif fut.exception() is not None:
            outer.set_exception(fut.exception())
        else:
            outer.set_result(fut.result())
    inner.add_done_callback(done)
