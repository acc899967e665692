"""A Pulsar reader with its own thread reading ahead of the fetches of one partition.

Readers are kept per partition and reused while fetches continue where the
previous one stopped. Each pumps entries from Pulsar into a bounded buffer
ahead of the next fetch, so a consumer that keeps up is served from memory, and
a long poll wakes as soon as an entry arrives.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

import _pulsar

from kop_fast.storage.pulsar.bridge import DuplicateFilter, PulsarError, close_quietly, position_of
from kop_fast.storage.pulsar.entries import KafkaEntry, NativeMessage, convert_message, encode_native_group, message_id

if TYPE_CHECKING:  # the partition log owns its readers; imported for the annotation only
    from kop_fast.storage.pulsar.partition_log import PulsarPartitionLog

log = logging.getLogger("kop_fast.partition")

# A reader stops pumping once this much is buffered and waits for fetches to take it.
READER_BUFFER_BYTES = 8 * 1024 * 1024
# A reader no fetch has used for IDLE_AFTER_S reads ahead only this far: its consumer may be
# gone (a group member that left), and idle readers live READER_IDLE_S before they are closed.
IDLE_BUFFER_BYTES = 256 * 1024
IDLE_AFTER_S = 5.0
# Receiver queues. pulsar-lite stalls readers now and then (nothing delivered although
# entries exist) when large messages meet a large queue: on a 300k-record consume of
# Kafka-format entries (~400 KB each), queue 1000 gave stalls and 38-77k records/s,
# queue 10 none and 160-173k records/s (client-bound). Pulsar-native messages are small
# (one record each) and need a deep queue: 100-byte records, queue 10: 20k/s, 1000: 66k/s.
RECEIVER_QUEUE = 10
RECEIVER_QUEUE_NATIVE = 1000


class TailReader:
    """A Pulsar reader whose own thread reads ahead into a bounded buffer for the next fetches.

    The thread blocks in `read_next` (pulsar-client releases the GIL there),
    drops duplicate deliveries, converts messages, and hands them to the event
    loop in chunks: one loop wake-up per chunk instead of a thread hop per message
    (measured on 100-byte Pulsar-native messages: 19k/s with one read_next_async
    at a time).
    """

    # How long a read waits before the thread looks around: notices close(), and
    # replaces the reader when the log is known to go on further (a pulsar-lite stall;
    # this bounds the latency such a stall adds).
    READ_TIMEOUT_MS = 50
    CHUNK = 512  # messages handed to the loop at once, at most

    def __init__(self, partition: "PulsarPartitionLog", offset: int, sequencer=None) -> None:
        """`sequencer` (consecutive offsets): numbers the messages from where the reader
        starts (`offsets_consecutive.Sequencer`); None: packed offsets."""
        self.partition = partition
        self._sequencer = sequencer
        self.position = offset  # the offset the next fetch from this reader is expected at
        self._reader = None
        self._items: deque = deque()
        self._buffered = 0  # bytes in _items (and in chunks on their way to the loop)
        # Chunks posted by the reader thread and taken in by the loop: each counter has
        # one writer, so their difference (chunks on the way) needs no lock.
        self._chunks_posted = 0
        self._chunks_received = 0
        self._closed = False
        self._failed: Exception | None = None
        self._waiters: list[asyncio.Future] = []
        self.last_used = time.monotonic()
        self.last_delivery = time.monotonic()
        self._room = threading.Event()  # set while the buffer has room
        self._room.set()
        self._thread: threading.Thread | None = None
        # A fetch holds the reader it uses, so two consumers at the same offset
        # never take each other's data.
        self.leased = False

    @property
    def failed(self) -> bool:
        return self._failed is not None

    async def open(self, start) -> None:
        fut, cb = self.partition.bridge.value_future()
        self.partition.client.create_reader_async_v2(self.partition.topic, start, self._configuration(True), cb)
        self._reader = await fut
        self._start = start
        self._thread = threading.Thread(target=self._read_ahead, name=f"reader {self.partition.topic}", daemon=True)
        self._thread.start()

    def _configuration(self, inclusive: bool):
        conf = _pulsar.ReaderConfiguration()
        native = self.partition.entry_format == "pulsar"
        conf.receiver_queue_size(RECEIVER_QUEUE_NATIVE if native else RECEIVER_QUEUE)
        conf.start_message_id_inclusive(inclusive)
        return conf

    def covers(self, offset: int) -> bool:
        if self._failed is not None or self._closed or self.leased:
            return False
        if offset == self.position:
            return True
        items = self._items
        return bool(items) and items[0].base_offset <= offset < items[-1].next_offset and offset >= self.position

    def skip_to(self, offset: int) -> None:
        """The fetch got the records before `offset` elsewhere (the entry cache): go on from there."""
        if offset > self.position:
            self.position = offset

    # -- the read-ahead thread -----------------------------------------------------------------
    def _read_ahead(self) -> None:
        reader = self._reader
        post = self.partition.bridge.post
        dedup = DuplicateFilter()
        timeout = self.READ_TIMEOUT_MS
        chunk: list = []
        size = 0
        read_up_to = self.position  # offset after the last item read (or where we started)
        behind = 0  # consecutive empty reads while the log is known to go on further
        sequencer = self._sequencer
        convert = convert_message if sequencer is None else sequencer.convert
        try:
            while not self._closed:
                if not self._room.wait(0.2):
                    continue
                try:
                    # Block for the first message of a chunk, then take what is already there.
                    msg = reader.read_next(0 if chunk else timeout)
                except _pulsar.Timeout:
                    if chunk:
                        self._chunks_posted += 1
                        post(self._on_chunk, chunk, size, sequencer.take_points() if sequencer else None)
                        chunk, size = [], 0
                        continue
                    end = self.partition.high_watermark
                    behind = behind + 1 if end is not None and read_up_to < end else 0
                    if behind >= 2:
                        # Entries exist beyond what we got: pulsar-lite stalled this reader.
                        # (Each reader leaves a subscription in pulsar-lite's metadata, so
                        # only after two empty reads, not on the first slow one.)
                        reader = self._reopen_after(reader, dedup.last)
                        behind = 0
                    continue
                position = position_of(msg)
                if not dedup.fresh_position(position):
                    continue
                try:
                    item = convert(msg, position)
                except Exception:  # a message we cannot interpret must not stop the partition
                    log.exception("skipping unreadable message %s on %s", msg.message_id(), self.partition.topic)
                    continue
                chunk.append(item)
                size += item.size
                read_up_to = item.next_offset
                behind = 0
                # Hand over at once when the loop has nothing buffered (a fetch may be
                # waiting for exactly this), else gather up to a chunk per wake-up. A
                # Pulsar batch entry's messages arrive together: they go over as one chunk
                # (the next read_next(0) finds the queue empty), not one wake-up of the
                # loop (and one fetch answer) per message.
                if (len(chunk) >= self.CHUNK or size >= READER_BUFFER_BYTES // 4
                        or (type(item) is KafkaEntry
                            and not (self._items or self._chunks_posted != self._chunks_received))):
                    self._chunks_posted += 1
                    post(self._on_chunk, chunk, size, sequencer.take_points() if sequencer else None)
                    chunk, size = [], 0
        except Exception as exc:  # the reader broke (closed under us, connection lost)
            if not self._closed:
                post(self._on_failure, exc)

    def _reopen_after(self, reader, position: tuple[int, int, int]):
        """In the read-ahead thread: a new Pulsar reader going on after `position`.

        It starts *at* the last message read, inclusive, and the duplicate filter drops
        that one again: pulsar-lite fails an exclusive start at batch index -1 ("out of
        range integral type conversion") and drops the whole client connection with it.
        """
        ledger, entry, index = position
        start = self._start if ledger < 0 else message_id(ledger, entry, index)  # nothing read yet
        replacement = self.partition.client.create_reader(self.partition.topic, start, self._configuration(True))
        self._reader = replacement
        try:
            reader.close()
        except Exception:
            pass
        log.debug("reader on %s stalled at %s; reopened", self.partition.topic, position)
        return replacement

    def _on_chunk(self, chunk: list, size: int, points=None) -> None:
        self._chunks_received += 1
        if self._closed:
            return
        if points:
            self.partition.learn_points(points)
        self._items.extend(chunk)
        self._buffered += size
        if self._buffered >= READER_BUFFER_BYTES or (
                self._buffered >= IDLE_BUFFER_BYTES and time.monotonic() - self.last_used > IDLE_AFTER_S):
            self._room.clear()
        self.last_delivery = time.monotonic()
        self.partition.observe_end(chunk[-1].next_offset)
        self._wake()

    def _on_failure(self, exc: Exception) -> None:
        self._failed = exc if isinstance(exc, PulsarError) else PulsarError(None, str(exc))
        log.warning("reader on %s failed: %r", self.partition.topic, exc)
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    def mark_stalled(self) -> None:
        """pulsar-lite can stop delivering to a reader although entries exist: replace it."""
        if self._failed is None:
            self._failed = PulsarError(_pulsar.Result.Timeout, "reader stalled")

    def wait_future(self) -> asyncio.Future:
        """Resolves when something new is buffered (or the reader failed)."""
        fut = asyncio.get_running_loop().create_future()
        if self._items or self._failed is not None:
            fut.set_result(None)
        else:
            if len(self._waiters) > 16:  # long polls that timed out on an idle partition
                self._waiters = [w for w in self._waiters if not w.done()]
            self._waiters.append(fut)
        return fut

    # -- taking data for a fetch ------------------------------------------------------------
    def take(self, offset: int, max_bytes: int) -> tuple[list, int]:
        """Buffered batches at or after `offset`, at most max_bytes (but at least one batch)."""
        if self._failed is not None:
            raise self._failed
        self.last_used = time.monotonic()
        items = self._items
        parts: list = []
        size = 0
        while items:
            item = items[0]
            if item.next_offset <= offset:  # before the asked offset (or inside a gap before it)
                items.popleft()
                self._buffered -= item.size
                continue
            if parts and size + item.size > max_bytes:
                break
            if type(item) is KafkaEntry:
                items.popleft()
                self._buffered -= item.size
                parts.extend(item.parts)
                size += item.size
                self.position = item.next_offset
                continue
            # Native messages: one Kafka batch per run of consecutive messages of one entry.
            group = [items.popleft()]
            self._buffered -= item.size
            while items:
                nxt = items[0]
                if (type(nxt) is not NativeMessage or nxt.ledger != item.ledger or nxt.entry != item.entry
                        or nxt.base_offset != group[-1].next_offset):
                    break
                group.append(items.popleft())
                self._buffered -= nxt.size
            batch = encode_native_group(group)
            parts.append(batch)
            size += len(batch)
            self.position = group[-1].next_offset
        if self._buffered < READER_BUFFER_BYTES:
            self._room.set()
        return parts, size

    async def close(self) -> None:
        self._closed = True
        self._room.set()
        self._wake()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 2 * self.READ_TIMEOUT_MS / 1000 + 1)
        if self._reader is not None:
            await close_quietly(self.partition.bridge, self._reader)


