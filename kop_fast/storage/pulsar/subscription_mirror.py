"""Mirrors Kafka consumer-group commits to Pulsar: subscription `<group>` follows the committed offset.

After a commit is persisted, the durable Pulsar subscription named exactly like
the group, on the committed partition's Pulsar topic, is moved so that a Pulsar
consumer attaching to it gets the first record after the committed offset.
A mirror operation subscribes (Exclusive, receiver queue 1, initial position
Earliest), acknowledges cumulatively the MessageId just before the committed
position (pulsar-lite moves a durable cursor to a cumulatively acknowledged id,
even backwards, as measured) and CLOSES the consumer so the subscription is not
kept busy. It never blocks a commit: `offer` only records the value.

Positioning rules, for a committed offset C = pack(L, E, I):

* I == 0: the next record starts entry (L, E): acknowledge (L, E-1).
* I > 0: the next record is inside entry (L, E) unless that entry is used up.
  Whether it is depends on how many records the entry holds, which only the
  entry itself says: after positioning at (L, E-1) the consumer is reopened and
  receives the entry; a Kafka-format entry gives its count (`kafka.records`),
  a Pulsar batch its batch indexes. If every record of (L, E) is before C,
  (L, E) is acknowledged too. Otherwise the subscription stays before (L, E): a
  Pulsar consumer gets the whole entry (a Kafka batch, or a Pulsar batch) that
  contains the next record, and sees the records before it again.
  (Acknowledging (L, E, I-1) inside a Pulsar batch is NOT used: measured on
  pulsar-lite 0.2.0, a cumulative ack of any batch index acknowledges the whole
  entry, which would skip the rest of the batch.)
* A commit past the high watermark means "at the end"; at or before the topic's
  first entry (asked once per topic with a probe subscription that is removed
  again) the subscription is removed and made again at Earliest, then treated
  as above; nothing is done while the topic is empty.
* E == 0 in a later ledger (after a 50,000-entry rollover): the id just before
  is unknown and the subscription is left where it is. For a group moving
  forward that is behind the commit (Pulsar consumers see records again); a
  backwards reset to exactly such an entry is not mirrored. The next commit at
  another position corrects it.

Coalescing: per (group, partition topic) at most one operation runs; the
latest offered offset wins; a value equal to the last mirrored one is dropped.
At most MAX_PENDING keys wait (more are dropped, logged). A failure (e.g. a
Pulsar application attached to the subscription, which pulsar-lite reports as a
Timeout after the operation timeout) is logged and retried with backoff.

The mirror uses its own Pulsar client: pulsar-lite answers an Exclusive conflict
by dropping the connection, which must not disturb the coordinator's consumers
and the fetch readers on the main client.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict

import _pulsar
import pulsar

from kop_fast import codec
from kop_fast.storage.pulsar.bridge import (
    CompletionBridge,
    DuplicateFilter,
    PulsarError,
    client_logger,
    close_quietly,
)
from kop_fast.pulsar_payload import FORMAT_PROPERTY, FORMAT_V2, RECORDS_PROPERTY

log = logging.getLogger("kop_fast.mirror")

MAX_PENDING = 100_000
WORKERS = 2
# Also how long an attempt blocked by an attached Pulsar consumer takes to fail (pulsar-lite
# drops the connection; the client retries until this timeout): kept short, ops are retried.
OPERATION_TIMEOUT_S = 3
RECEIVE_TIMEOUT_S = 2.0
# After the first message of a Pulsar batch, the rest of the batch is already in the
# client's queue (the whole entry arrives at once): a short wait is enough.
BATCH_TAIL_TIMEOUT_S = 0.2
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 60.0
PROBE_SUBSCRIPTION = "__kop_fast_mirror_probe"


class SubscriptionMirror:
    def __init__(self, service_url: str, loop: asyncio.AbstractEventLoop, bounds=None, translate=None,
                 client_options: dict | None = None) -> None:
        """`bounds(topic) -> awaitable (log start, high watermark) | None` of a partition topic;
        `translate(topic, offset) -> awaitable packed position | None` (consecutive offsets:
        the committed offset as pack(L, E, i), the end as pack(L, E + 1, 0); None: nothing
        to position against yet); the rules below then apply to that position."""
        self._translate = translate
        self.service_url = service_url
        self._client_options = client_options or {}
        self._loop = loop
        self._bounds = bounds
        self._client = None
        self._client_wrapper = None
        self._bridge = CompletionBridge(loop)
        self._pending: OrderedDict[tuple[str, str], int] = OrderedDict()  # waiting, not running
        self._running: dict[tuple[str, str], int] = {}
        self._mirrored: dict[tuple[str, str], int] = {}
        self._failures: dict[tuple[str, str], int] = {}
        self._retry_handles: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._first_entries: dict[str, tuple[int, int]] = {}
        self._wakeup = asyncio.Event()
        self._workers: list[asyncio.Task] = []
        self._closed = False
        self.completed = 0  # operations done (for tests and logs)

    # -- the commit side ------------------------------------------------------------------------
    def offer(self, group: str, topic: str, offset: int) -> None:
        """The group committed `offset` on Pulsar topic `topic` (one partition). Never blocks."""
        if self._closed or offset < 0:
            return
        key = (group, topic)
        if key not in self._pending and key not in self._running and self._mirrored.get(key) == offset:
            return
        if key in self._pending:
            self._pending[key] = offset
            return
        if len(self._pending) >= MAX_PENDING:
            log.warning("subscription mirror queue full; not mirroring %s on %s", group, topic)
            return
        handle = self._retry_handles.pop(key, None)
        if handle is not None:
            handle.cancel()
        self._pending[key] = offset
        self._ensure_workers()
        self._wakeup.set()

    def _ensure_workers(self) -> None:
        if not self._workers:
            self._workers = [asyncio.ensure_future(self._work()) for _ in range(WORKERS)]

    # -- workers --------------------------------------------------------------------------------
    async def _work(self) -> None:
        while not self._closed:
            key = next((k for k in self._pending if k not in self._running), None)
            if key is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            offset = self._pending.pop(key)
            self._running[key] = offset
            try:
                done = await self._mirror(key[0], key[1], offset)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (failures - 1))
                log.warning("mirroring group %s to subscription on %s failed (%r); retry in %.0f s",
                            key[0], key[1], exc, delay)
                self._schedule_retry(key, offset, delay)
            else:
                self._failures.pop(key, None)
                if done:  # else the same value is tried again when it is committed again
                    self._mirrored[key] = offset
                    self.completed += 1
            finally:
                self._running.pop(key, None)
                if key in self._pending:
                    self._wakeup.set()

    def _schedule_retry(self, key, offset: int, delay: float) -> None:
        def retry() -> None:
            self._retry_handles.pop(key, None)
            if key not in self._pending:  # a newer value may already wait
                self.offer(key[0], key[1], offset)
        self._retry_handles[key] = self._loop.call_later(delay, retry)

    # -- one operation --------------------------------------------------------------------------
    async def _mirror(self, group: str, topic: str, offset: int) -> bool:
        """Move the subscription; False when there is nothing to position against yet."""
        if self._translate is not None:
            offset = await self._translate(topic, offset)
            if offset is None:
                return False
        bounds = await self._bounds(topic) if self._bounds is not None else None
        if bounds is not None:
            if bounds[1] <= bounds[0]:
                return False  # nothing stored yet
            offset = min(offset, bounds[1])  # past the end means at the end
        first_entry = await self._first_entry(topic)
        if first_entry is None:
            return False
        ledger, entry, index = codec.unpack_offset(offset)
        if (ledger, entry) <= first_entry:
            # At (or before) the topic's first entry: the subscription starts at the beginning.
            await self._reset_to_earliest(group, topic)
            if (ledger, entry) == first_entry and index > 0:
                await self._skip_used_entry(group, topic, ledger, entry, index)
            return True
        if entry == 0:
            log.info("mirror of %s on %s: no position known before entry (%d, 0); left unchanged",
                     group, topic, ledger)
            return True
        consumer = await self._subscribe(group, topic)
        try:
            await self._ack_cumulative(consumer, ledger, entry - 1)
        finally:
            await self._close(consumer)
        if index > 0:
            await self._skip_used_entry(group, topic, ledger, entry, index)
        return True

    async def _skip_used_entry(self, group: str, topic: str, ledger: int, entry: int, index: int) -> None:
        """The subscription is just before (L, E): also acknowledge (L, E) if every record in it
        is before pack(L, E, index)."""
        consumer = await self._subscribe(group, topic)
        try:
            dedup = DuplicateFilter()
            msg = await self._receive(consumer, RECEIVE_TIMEOUT_S)
            while msg is not None and not dedup.fresh(msg):
                msg = await self._receive(consumer, RECEIVE_TIMEOUT_S)
            if msg is None:
                return  # nothing stored at or after (L, E) yet
            mid = msg.message_id()
            if (mid.ledger_id(), mid.entry_id()) != (ledger, entry):
                return  # (L, E) does not exist: the subscription already points at the next record
            used_up = False
            batch_index = mid.batch_index()
            try:
                properties = msg.properties()
            except UnicodeDecodeError:  # a foreign message with binary properties
                properties = {}
            if properties.get(FORMAT_PROPERTY) == FORMAT_V2:
                used_up = int(properties.get(RECORDS_PROPERTY, "0")) <= index
            elif batch_index < 0:
                used_up = True  # one record at pack(L, E, 0)
            else:
                last = batch_index
                while last < index:
                    nxt = await self._receive(consumer, BATCH_TAIL_TIMEOUT_S)
                    if nxt is None:
                        break
                    if not dedup.fresh(nxt):
                        continue
                    nid = nxt.message_id()
                    if (nid.ledger_id(), nid.entry_id()) != (ledger, entry):
                        break
                    last = nid.batch_index()
                used_up = last < index
            if used_up:
                await self._ack_cumulative(consumer, ledger, entry)
        finally:
            await self._close(consumer)

    async def _first_entry(self, topic: str) -> tuple[int, int] | None:
        """(ledger, entry) of the topic's first message, from a probe subscription that is
        removed again (a Reader would leave a permanent subscription in pulsar-lite)."""
        known = self._first_entries.get(topic)
        if known is not None:
            return known
        consumer = await self._subscribe(f"{PROBE_SUBSCRIPTION}_{uuid.uuid4().hex[:12]}", topic)
        try:
            msg = await self._receive(consumer, RECEIVE_TIMEOUT_S)
        finally:
            fut, cb = self._bridge.result_future()
            consumer.unsubscribe_async(cb)
            try:
                await asyncio.wait_for(fut, OPERATION_TIMEOUT_S)
            except (PulsarError, asyncio.TimeoutError):
                await self._close(consumer)
        if msg is None:
            return None
        mid = msg.message_id()
        # The first entry of a topic never changes (pulsar-lite does not trim ledgers).
        self._first_entries[topic] = known = (mid.ledger_id(), mid.entry_id())
        return known

    async def _reset_to_earliest(self, group: str, topic: str) -> None:
        consumer = await self._subscribe(group, topic)
        fut, cb = self._bridge.result_future()
        consumer.unsubscribe_async(cb)
        try:
            await fut
        except BaseException:
            await self._close(consumer)
            raise
        # Make it again, at the start: a Pulsar consumer subscribing later with the
        # default initial position (Latest) would otherwise start at the end.
        await self._close(await self._subscribe(group, topic))

    # -- pulsar helpers -------------------------------------------------------------------------
    def _pulsar_client(self):
        if self._client is None:
            self._client_wrapper = pulsar.Client(
                self.service_url, operation_timeout_seconds=OPERATION_TIMEOUT_S,
                connection_timeout_ms=10000, logger=client_logger(), **self._client_options)
            self._client = self._client_wrapper._client
        return self._client

    async def _subscribe(self, group: str, topic: str):
        conf = _pulsar.ConsumerConfiguration()
        conf.consumer_type(_pulsar.ConsumerType.Exclusive)
        conf.receiver_queue_size(1)
        conf.subscription_initial_position(_pulsar.InitialPosition.Earliest)
        fut, cb = self._bridge.value_future()
        self._pulsar_client().subscribe_async_v2(topic, group, conf, cb)
        return await fut

    async def _ack_cumulative(self, consumer, ledger: int, entry: int) -> None:
        fut, cb = self._bridge.result_future()
        consumer.acknowledge_cumulative_async(_pulsar.MessageId(-1, ledger, entry, -1), cb)
        await asyncio.wait_for(fut, OPERATION_TIMEOUT_S * 2)

    async def _receive(self, consumer, timeout: float):
        fut, cb = self._bridge.result_future()
        consumer.receive_async(cb)
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            return None

    async def _close(self, consumer) -> None:
        # Closing flushes the pending acknowledgement before the consumer goes (same connection).
        await close_quietly(self._bridge, consumer, OPERATION_TIMEOUT_S)

    # -- lifecycle ------------------------------------------------------------------------------
    def idle(self) -> bool:
        return not self._pending and not self._running

    def mirrored(self, group: str, topic: str) -> int | None:
        return self._mirrored.get((group, topic))

    async def close(self, flush_timeout: float = 2.0) -> None:
        """Finish what is queued (bounded), then stop and close the client."""
        deadline = time.monotonic() + flush_timeout
        while not self.idle() and time.monotonic() < deadline and self._workers:
            await asyncio.sleep(0.05)
        self._closed = True
        for handle in self._retry_handles.values():
            handle.cancel()
        self._retry_handles.clear()
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._workers = []
        if self._client is not None:
            await close_quietly(self._bridge, self._client)
            self._client = None
