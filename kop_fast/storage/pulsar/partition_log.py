"""One Kafka partition stored in one Pulsar topic: appends, offset bounds, and readers for fetches.

Offsets are Pulsar positions packed with `codec.pack_offset(ledger, entry, index)`:
a Kafka-format entry (one stored Kafka batch) holds offsets base+0 .. base+n-1
with base = pack(ledger, entry, 0); a Pulsar-native message at batch index i of
its entry has offset pack(ledger, entry, max(i, 0)). Offsets therefore grow with
Pulsar's own order but have gaps between entries; a fetch inside a gap returns
the next existing record.

Readers (`TailReader`) are kept per partition and reused while fetches continue
where the previous one stopped. Each pumps entries from Pulsar into a bounded
buffer ahead of the next fetch, so a consumer that keeps up is served from
memory, and a long poll wakes as soon as an entry arrives.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
import time
import uuid
from collections import deque

import _pulsar

from kop_fast import codec
from kop_fast.backend.bridge import (
    CompletionBridge,
    DuplicateFilter,
    PulsarError,
    close_quietly,
    has_message_available,
    position_of,
)
from kop_fast.backend.entry_cache import CacheBudget, EntryCache
from kop_fast.pulsar_payload import (
    FORMAT_PROPERTY,
    FORMAT_V2,
    KEY_B64_PROPERTY,
    RECORDS_PROPERTY,
    RESERVED_PROPERTIES,
)

log = logging.getLogger("kop_fast.partition")

# A reader stops pumping once this much is buffered and waits for fetches to take it.
READER_BUFFER_BYTES = 8 * 1024 * 1024
# Receiver queues. pulsar-lite stalls readers now and then (nothing delivered although
# entries exist) when large messages meet a large queue: on a 300k-record consume of
# Kafka-format entries (~400 KB each), queue 1000 gave stalls and 38-77k records/s,
# queue 10 none and 160-173k records/s (client-bound). Pulsar-native messages are small
# (one record each) and need a deep queue: 100-byte records, queue 10: 20k/s, 1000: 66k/s.
RECEIVER_QUEUE = 10
RECEIVER_QUEUE_NATIVE = 1000
MAX_READERS_PER_PARTITION = 8
READER_IDLE_S = 60.0
SEND_TIMEOUT_MS = 30000
# Messages a producer may have unacknowledged in pulsar-client; appends beyond wait in order.
MAX_PENDING_MESSAGES = 100_000
ONE_OFF_RECEIVER_QUEUE = 1
# One-off reads (log bounds, time search) give a reader this long, then retry with a new
# one: pulsar-lite now and then stalls a reader (seen: 1 of 8 first-offset reads opened at
# once). A read normally takes 1-2 ms, so the first wait is short; later ones grow, so a
# slow machine still gets its answer.
ONE_OFF_READ_TIMEOUTS_S = (0.25, 0.5, 1.0, 2.0, 2.0)
# ...and a reader still silent after this long gets a second one beside it; the first
# answer wins. A stall cost a consumer's ListOffsets (and the Fetch behind it) the whole
# first timeout: 250 ms of a 0.4 s benchmark phase, in 2 of 6 runs of 8 partitions.
ONE_OFF_HEDGE_S = 0.05
_OK = _pulsar.Result.Ok


def message_id(ledger: int, entry: int, batch_index: int = -1):
    return _pulsar.MessageId(-1, ledger, entry, batch_index)


class KafkaEntry:
    """A stored Kafka batch as read back: fetch sends `parts` (base offset patched, no copy of the rest)."""

    __slots__ = ("base_offset", "next_offset", "parts", "size", "data")

    def __init__(self, base_offset: int, count: int, data: bytes) -> None:
        self.base_offset = base_offset
        self.next_offset = base_offset + count
        self.data = data
        # The stored base offset is the producer's (0); the real one replaces it on the way out.
        self.parts = (base_offset.to_bytes(8, "big", signed=True), memoryview(data)[8:])
        self.size = len(data)

    @property
    def max_timestamp(self) -> int:
        return int.from_bytes(self.data[35:43], "big", signed=True)

    def records(self) -> list:
        patched = bytearray(self.data)
        codec.patch_base_offset(patched, self.base_offset)
        return codec.decode_batches(patched)[0].records


async def hedged(attempt, timeout: float, hedge_after: float):
    """attempt(timeout); if it has not finished after `hedge_after` seconds, a second
    attempt(timeout) runs beside it. The first to succeed wins and the other is cancelled
    (attempts close their readers on the way out); if both fail, the later error is raised."""
    tasks = [asyncio.ensure_future(attempt(timeout))]
    try:
        done, _ = await asyncio.wait(tasks, timeout=hedge_after)
        if not done:
            tasks.append(asyncio.ensure_future(attempt(timeout)))
        pending, error = set(tasks), None
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is None:
                    return task.result()
                error = task.exception()
        raise error
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()


class NativeMessage:
    """One message a Pulsar application wrote (or entry format `pulsar`), as a Kafka record."""

    __slots__ = ("base_offset", "next_offset", "ledger", "entry", "record", "size")

    def __init__(self, ledger: int, entry: int, offset: int, record) -> None:
        self.ledger = ledger
        self.entry = entry
        self.base_offset = offset
        self.next_offset = offset + 1
        self.record = record
        self.size = 64 + (len(record.value) if record.value else 0) + (len(record.key) if record.key else 0)

    @property
    def max_timestamp(self) -> int:
        return self.record.timestamp

    def records(self) -> list:
        return [self.record]


def convert_message(msg, position: tuple[int, int, int] | None = None) -> KafkaEntry | NativeMessage:
    """A pulsar-client Message as what Fetch sends."""
    ledger, entry, index = position or position_of(msg)
    properties = msg.properties()
    if properties.get(FORMAT_PROPERTY) == FORMAT_V2:
        count = int(properties.get(RECORDS_PROPERTY, "0"))
        return KafkaEntry(codec.pack_offset(ledger, entry, 0), count, msg.data())
    offset = codec.pack_offset(ledger, entry, index if index > 0 else 0)
    key = msg.partition_key()
    if key:
        key = base64.b64decode(key) if properties.get(KEY_B64_PROPERTY) == "1" else key.encode()
    else:
        key = None
    value = None if msg.has_null_value() else msg.data()
    timestamp = msg.event_timestamp() or msg.publish_timestamp()
    if not properties:
        headers = ()
    elif KEY_B64_PROPERTY in properties:
        headers = codec.properties_to_headers({k: v for k, v in properties.items() if k not in RESERVED_PROPERTIES})
    else:
        headers = codec.properties_to_headers(properties)
    return NativeMessage(ledger, entry, offset, codec.Record(offset, timestamp, key, value, headers))


def encode_native_group(group: list[NativeMessage]) -> bytes:
    """Messages of one Pulsar entry with consecutive indexes as one Kafka batch."""
    return codec.encode_batch([m.record for m in group], base_offset=group[0].base_offset)


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

    def __init__(self, log_: "PartitionLog", offset: int) -> None:
        self.log = log_
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
        fut, cb = self.log.bridge.value_future()
        self.log.client.create_reader_async_v2(self.log.topic, start, self._configuration(True), cb)
        self._reader = await fut
        self._start = start
        self._thread = threading.Thread(target=self._read_ahead, name=f"reader {self.log.topic}", daemon=True)
        self._thread.start()

    def _configuration(self, inclusive: bool):
        conf = _pulsar.ReaderConfiguration()
        native = self.log.entry_format == "pulsar"
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
        post = self.log.bridge.post
        dedup = DuplicateFilter()
        timeout = self.READ_TIMEOUT_MS
        chunk: list = []
        size = 0
        read_up_to = self.position  # offset after the last item read (or where we started)
        behind = 0  # consecutive empty reads while the log is known to go on further
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
                        post(self._on_chunk, chunk, size)
                        chunk, size = [], 0
                        continue
                    end = self.log.high_watermark
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
                    item = convert_message(msg, position)
                except Exception:  # a message we cannot interpret must not stop the partition
                    log.exception("skipping unreadable message %s on %s", msg.message_id(), self.log.topic)
                    continue
                chunk.append(item)
                size += item.size
                read_up_to = item.next_offset
                behind = 0
                # Hand over at once when the loop has nothing buffered (a fetch may be
                # waiting for exactly this), else gather up to a chunk per wake-up.
                if (len(chunk) >= self.CHUNK or size >= READER_BUFFER_BYTES // 4
                        or not (self._items or self._chunks_posted != self._chunks_received)):
                    self._chunks_posted += 1
                    post(self._on_chunk, chunk, size)
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
        replacement = self.log.client.create_reader(self.log.topic, start, self._configuration(True))
        self._reader = replacement
        try:
            reader.close()
        except Exception:
            pass
        log.debug("reader on %s stalled at %s; reopened", self.log.topic, position)
        return replacement

    def _on_chunk(self, chunk: list, size: int) -> None:
        self._chunks_received += 1
        if self._closed:
            return
        self._items.extend(chunk)
        self._buffered += size
        if self._buffered >= READER_BUFFER_BYTES:
            self._room.clear()
        self.last_delivery = time.monotonic()
        self.log.observe_end(chunk[-1].next_offset)
        self._wake()

    def _on_failure(self, exc: Exception) -> None:
        self._failed = exc if isinstance(exc, PulsarError) else PulsarError(None, str(exc))
        log.warning("reader on %s failed: %r", self.log.topic, exc)
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
            await close_quietly(self.log.bridge, self._reader)


class PartitionLog:
    def __init__(self, client: _pulsar.Client, bridge: CompletionBridge, topic: str, entry_format: str,
                 cache_budget: CacheBudget | None = None) -> None:
        self.client = client
        self.bridge = bridge
        self.topic = topic
        self.entry_format = entry_format
        # Entries this process stored, for fetches that follow the producer. A pulsar-format
        # entry is kept as the Kafka batch its records came in (same records, same offsets).
        self.cache = EntryCache(cache_budget) if (
            cache_budget is not None and cache_budget.max_bytes > 0) else None
        self.high_watermark: int | None = None
        self.log_start: int | None = None
        # True once Pulsar has shown the topic's first entry: the log start is then settled
        # (until then it is unknown, or only "empty topic", which another writer can end).
        self._first_entry_seen = False
        self._log_start_task: asyncio.Future | None = None
        self._producer = None
        self._producer_task: asyncio.Future | None = None
        self._load_task: asyncio.Task | None = None
        self._readers: list[TailReader] = []
        self._backlog: deque = deque()  # (weight, send, future, args) waiting for a producer or room
        self._unacknowledged = 0  # messages sent and not yet acknowledged (or failed)

    # -- offsets bounds --------------------------------------------------------------------------
    def observe_end(self, next_offset: int) -> None:
        if self.high_watermark is None or next_offset > self.high_watermark:
            self.high_watermark = next_offset

    async def bounds(self, refresh: bool = False) -> tuple[int, int]:
        """(log start offset, high watermark), loaded from Pulsar on first use.

        Other kop_fast processes (and Pulsar applications) append to the same topic;
        this process sees their entries when one of its readers passes them. Where a
        stale end would give a wrong answer (a fetch beyond it, ListOffsets), callers
        ask for `refresh`, which reads the end from Pulsar again (concurrent callers
        share one read).
        """
        if refresh or self.high_watermark is None or self.log_start is None:
            task = self._load_task
            if task is None or task.done():
                task = self._load_task = asyncio.ensure_future(self._load_bounds())
            await asyncio.shield(task)
        return self.log_start, self.high_watermark

    async def _load_bounds(self) -> None:
        last = await self._last_message_position()
        if last is None:
            self.observe_end(0)
            if self.log_start is None:
                self.log_start = 0
            return
        ledger, entry = last
        known = self.high_watermark
        if known is None or known <= codec.pack_offset(ledger, entry, 0):
            # Only read the last entry (for its record count) when what we have seen ends
            # before it; when this process wrote or read it, the end is already known.
            self.observe_end(await self._end_of_entries_from(message_id(ledger, entry)))
        if not self._first_entry_seen:
            self._settle_log_start(await self._first_offset())

    def _settle_log_start(self, first: int | None) -> None:
        if first is not None:
            self.log_start, self._first_entry_seen = first, True
        else:
            self.log_start = self.high_watermark

    def _settle_log_start_soon(self) -> None:
        """After an append, find the first entry in the background (once): a consumer that
        starts from the beginning of what was just written, the usual next step, then gets
        its ListOffsets EARLIEST answered from memory instead of a ~10 ms Pulsar read."""
        if self._first_entry_seen or self._log_start_task is not None:
            return
        self._log_start_task = asyncio.ensure_future(self._find_log_start())

    async def _find_log_start(self) -> None:
        try:
            first = await self._first_offset()
        except Exception as exc:  # noqa: BLE001 - only a head start: EARLIEST asks again
            log.debug("finding the first entry of %s failed: %r", self.topic, exc)
            first = None
        if first is not None and not self._first_entry_seen:
            self._settle_log_start(first)

    async def earliest_offset(self) -> int:
        """The log start, for ListOffsets EARLIEST. Once the first entry has been seen it is
        answered from memory: appends by other processes never move it (Pulsar retention
        could, and a fetch below the new start still finds the next entry). Before that,
        Pulsar is asked again every time, since another writer may have ended "empty"."""
        if self._first_entry_seen:
            return self.log_start
        first = await self._first_offset()
        if first is not None:
            self._settle_log_start(first)
            return first
        log_start, _ = await self.bounds(refresh=True)
        return log_start

    async def _last_message_position(self) -> tuple[int, int] | None:
        """Ledger and entry of the topic's last entry (a short-lived probe subscription asks Pulsar)."""
        conf = _pulsar.ConsumerConfiguration()
        conf.consumer_type(_pulsar.ConsumerType.Exclusive)
        conf.receiver_queue_size(1)
        name = f"__kop_fast_probe_{uuid.uuid4().hex[:12]}"
        fut, cb = self.bridge.value_future()
        self.client.subscribe_async_v2(self.topic, name, conf, cb)
        consumer = await fut
        try:
            fut, cb = self.bridge.result_future()
            consumer.get_last_message_id_async(cb)
            try:
                mid = await fut
            except PulsarError as exc:
                if exc.result == _pulsar.Result.UnknownError:  # pulsar-lite: "Topic has no messages"
                    return None
                raise
            if mid.ledger_id() < 0 or mid.entry_id() < 0:
                return None
            return mid.ledger_id(), mid.entry_id()
        finally:
            # Never leave a durable subscription behind: it would pin the backlog.
            fut, cb = self.bridge.result_future()
            consumer.unsubscribe_async(cb)
            try:
                await asyncio.wait_for(fut, 10)
            except (PulsarError, asyncio.TimeoutError):
                log.warning("could not remove probe subscription %s on %s", name, self.topic)

    async def _open_reader(self, start):
        conf = _pulsar.ReaderConfiguration()
        # One-off reads take one or two entries: a deeper queue would make pulsar-lite push
        # entries nobody reads (measured: the first-offset lookup on a topic of 1 MB
        # entries took 19 ms with queue 10).
        conf.receiver_queue_size(ONE_OFF_RECEIVER_QUEUE)
        conf.start_message_id_inclusive(True)
        fut, cb = self.bridge.value_future()
        self.client.create_reader_async_v2(self.topic, start, conf, cb)
        return await fut

    async def _close_reader(self, reader) -> None:
        await close_quietly(self.bridge, reader)

    async def _read(self, reader, timeout_s: float = 10.0):
        fut, cb = self.bridge.result_future()
        reader.read_next_async(cb)
        return await asyncio.wait_for(fut, timeout_s)

    async def _with_retries(self, attempt):
        """Run a one-off read, attempt(timeout); pulsar-lite can stall a reader, and a fresh one usually goes on."""
        for n, timeout in enumerate(ONE_OFF_READ_TIMEOUTS_S):
            try:
                return await hedged(attempt, timeout, ONE_OFF_HEDGE_S)
            except (asyncio.TimeoutError, PulsarError):
                if n == len(ONE_OFF_READ_TIMEOUTS_S) - 1:
                    raise
                log.info("a read on %s stalled; retrying with a new reader", self.topic)

    async def _end_of_entries_from(self, start) -> int:
        """Offset after the last record, reading from `start` (the last entry) to the end."""
        async def attempt(timeout: float):
            reader = await self._open_reader(start)
            dedup = DuplicateFilter()
            try:
                end = 0
                while True:
                    msg = await self._read(reader, timeout)
                    if dedup.fresh(msg):
                        end = max(end, convert_message(msg).next_offset)
                    if not await has_message_available(self.bridge, reader):
                        return end
            finally:
                await self._close_reader(reader)
        return await self._with_retries(attempt)

    async def _first_offset(self) -> int | None:
        async def attempt(timeout: float):
            reader = await self._open_reader(_pulsar.MessageId.earliest)
            try:
                if not await has_message_available(self.bridge, reader):
                    return None
                return convert_message(await self._read(reader, timeout)).base_offset
            finally:
                await self._close_reader(reader)
        return await self._with_retries(attempt)

    # -- time index ---------------------------------------------------------------------------
    async def _item_at_or_after(self, offset: int):
        """The first stored item holding an offset >= `offset` (short-lived readers)."""
        return await self._with_retries(lambda timeout: self._probe(offset, timeout))

    async def _probe(self, offset: int, timeout: float):
        ledger, entry, index = codec.unpack_offset(offset)
        reader = await self._open_reader(message_id(ledger, entry))
        dedup = DuplicateFilter()
        try:
            first = True
            while True:
                msg = await self._read(reader, timeout)
                if not dedup.fresh(msg):
                    continue
                item = convert_message(msg)
                if item.next_offset > offset:
                    return item
                if first and type(item) is NativeMessage and item.entry == entry and index > 0:
                    # Inside a Pulsar batch: let the client skip to the index instead of
                    # handing us every message before it.
                    await self._close_reader(reader)
                    reader = await self._open_reader(message_id(ledger, entry, index))
                    dedup = DuplicateFilter()
                first = False
        finally:
            await self._close_reader(reader)

    async def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record with a timestamp >= the one asked, or None.

        Binary search over stored entries by their max timestamp (as Kafka's time
        index does), a reader per probe; then the records of the entry found.
        """
        log_start, hwm = await self.bounds()
        lo, hi = log_start, hwm
        candidate = None
        while lo < hi:
            mid = (lo + hi) // 2
            item = await self._item_at_or_after(mid)
            if item.base_offset >= hi:
                hi = mid  # [mid, hi) is a gap between entries: no record there
            elif item.max_timestamp < timestamp:
                lo = item.next_offset
            else:
                candidate = item
                if item.base_offset <= lo:
                    break
                hi = item.base_offset
        if candidate is None:
            return None
        for record in candidate.records():
            if record.timestamp >= timestamp:
                return record.offset, record.timestamp
        return None

    async def last_record(self) -> tuple[int, int] | None:
        """(offset, timestamp) of the last record."""
        log_start, hwm = await self.bounds()
        if hwm <= log_start:
            return None
        item = await self._item_at_or_after(hwm - 1)
        record = item.records()[-1]
        return record.offset, record.timestamp

    # -- appends ------------------------------------------------------------------------------
    # Appends are plain functions returning futures, not coroutines: the order in which
    # handlers call them is the order in which Pulsar stores the data, also while the
    # producer is still being created (they wait in `_backlog`, FIFO).

    def append_kafka_batch(self, batch: bytes, record_count: int) -> asyncio.Future:
        """Store one verified Kafka batch as one Pulsar message; the future gives its base offset."""
        fut = asyncio.get_running_loop().create_future()
        self._submit(1, self._send_kafka_batch, fut, batch, record_count)
        return fut

    def append_native(self, records, batch: bytes | None = None) -> asyncio.Future:
        """Store each record as a Pulsar message, all in one Pulsar batch entry; the future gives the first offset.

        `batch`, the Kafka batch the records came in, is kept in the entry cache when
        they all land in one entry: it then holds exactly that entry's records at the
        same offsets (pack(ledger, entry, i) = base + i)."""
        fut = asyncio.get_running_loop().create_future()
        self._submit(len(records), self._send_native, fut, records, batch)
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
        try:
            send(fut, *args)
        except Exception as exc:  # e.g. AlreadyClosed, raised synchronously by pulsar-client
            self._acknowledged(weight)
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

    def producer_failed(self) -> None:
        """Forget the producer after a failure; the next append makes a new one."""
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.close_async(lambda *_: None)
        if self._backlog and self._producer_task is None:  # appends waiting for room go on
            self._producer_task = asyncio.ensure_future(self._start_producer())

    def _send_kafka_batch(self, fut, batch: bytes, record_count: int) -> None:
        builder = _pulsar.MessageBuilder()
        builder.content(batch)
        builder.property(FORMAT_PROPERTY, FORMAT_V2)
        builder.property(RECORDS_PROPERTY, str(record_count))
        bridge = self.bridge
        self._producer.send_async(
            builder.build(),
            lambda result, mid: bridge.post(self._kafka_batch_sent, fut, result, mid, batch, record_count))

    def _kafka_batch_sent(self, fut, result, mid, batch: bytes, record_count: int) -> None:
        self._acknowledged(1)
        if result != _OK:
            if not fut.done():
                fut.set_exception(PulsarError(result))
            return
        ledger, entry = mid.ledger_id(), mid.entry_id()
        base = codec.pack_offset(ledger, entry, 0)
        self.observe_end(base + record_count)
        self._settle_log_start_soon()
        if self.cache is not None:
            # Also when the producer's future is gone (acks=0, a closed connection): the
            # entry is stored, and the run of cached entries must not skip it.
            self.cache.add(ledger, entry, KafkaEntry(base, record_count, batch))
        if not fut.done():
            fut.set_result(base)

    def _send_native(self, fut, records, batch: bytes | None) -> None:
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
                if not fut.done():
                    fut.set_exception(PulsarError(state["failed"]))
                return
            mid = state["first"]
            ledger, entry, index = mid.ledger_id(), mid.entry_id(), max(mid.batch_index(), 0)
            base = codec.pack_offset(ledger, entry, index)
            self.observe_end(base + count)
            self._settle_log_start_soon()
            last = state["last"] or mid
            if (self.cache is not None and batch is not None and index == 0
                    and (last.ledger_id(), last.entry_id()) == (ledger, entry)):
                self.cache.add(ledger, entry, KafkaEntry(base, count, batch))
            if not fut.done():
                fut.set_result(base)

        def on_first(result, mid):
            if result == _OK:
                state["first"] = mid
            else:
                state["failed"] = result
            bridge.post(finish)

        def on_other(result, mid):
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
        to_properties = codec.headers_to_properties
        try:
            self._send_records(records, send, new_builder, to_properties, on_first, on_other)
        except Exception:
            state["done"] = True  # the caller reports the failure; callbacks of what was sent change nothing
            raise
        producer.flush_async(on_flush)

    @staticmethod
    def _send_records(records, send, new_builder, to_properties, on_first, on_other) -> None:
        callback = on_first
        for record in records:
            builder = new_builder()
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
            callback = on_other

    # -- readers ------------------------------------------------------------------------------
    async def reader_for(self, offset: int) -> TailReader:
        """A reader positioned to serve a fetch at `offset` (reused when one already is)."""
        for reader in self._readers:
            if reader.covers(offset):
                reader.leased = True
                return reader
        for reader in [r for r in self._readers if r.failed]:
            self._readers.remove(reader)
            await reader.close()
        log_start, hwm = await self.bounds()
        if offset <= log_start:
            start = _pulsar.MessageId.earliest
        else:
            # Start at the entry holding `offset` (or the last entry, at the high watermark),
            # inclusive: a reader placed past the end would wait forever.
            ledger, entry, _ = codec.unpack_offset(min(offset, hwm))
            start = message_id(ledger, entry)
        reader = TailReader(self, offset)
        reader.leased = True
        await reader.open(start)
        self._readers.append(reader)
        idle = [r for r in self._readers if not r.leased]
        if len(self._readers) > MAX_READERS_PER_PARTITION and idle:
            oldest = min(idle, key=lambda r: r.last_used)
            self._readers.remove(oldest)
            await oldest.close()
        return reader

    def advance_idle_readers(self, offset: int, after: int) -> None:
        """A fetch at `offset` got the records up to `after` from the entry cache: readers
        positioned at `offset` skip them, so the next fetch at `after` can reuse one."""
        for reader in self._readers:
            if reader.position == offset and not reader.leased:
                reader.skip_to(after)

    async def close_idle_readers(self, now: float) -> None:
        idle = [r for r in self._readers if not r.leased and now - r.last_used > READER_IDLE_S]
        for reader in idle:
            self._readers.remove(reader)
            await reader.close()

    async def close(self) -> None:
        if self._log_start_task is not None and not self._log_start_task.done():
            self._log_start_task.cancel()
        await asyncio.gather(*(reader.close() for reader in self._readers), return_exceptions=True)
        self._readers.clear()
        producer, self._producer = self._producer, None
        if producer is not None:
            await close_quietly(self.bridge, producer)
