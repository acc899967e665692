"""One Kafka partition stored in one Pulsar topic: appends, offset bounds, time search, fetch cursors.

The pieces live beside this module: `entries` (Pulsar messages as Kafka data and
the offset mapping), `producer` (ordered appends), `tail_reader` (read-ahead
readers, kept and reused across fetches), `one_off` (short, hedged reads of the
first and last entries and of the entry at an offset), `entry_cache` (batches
this process stored, for fetches right behind the producer), `producer_tail`
(idempotent producers' batches among the last entries, for a new owner's table).
"""

from __future__ import annotations

import asyncio
import logging
import time

import _pulsar

from kop_fast import codec
from kop_fast.storage.api import StorageError
from kop_fast.storage.pulsar import producer_tail
from kop_fast.storage.pulsar.bridge import CompletionBridge
from kop_fast.storage.pulsar.entry_cache import CacheBudget, EntryCache
from kop_fast.storage.pulsar.entries import KafkaEntry, message_id
from kop_fast.storage.pulsar.one_off import OneOffReads
from kop_fast.storage.pulsar.producer import PartitionProducer
from kop_fast.storage.pulsar.tail_reader import TailReader

log = logging.getLogger("kop_fast.partition")

MAX_READERS_PER_PARTITION = 8
READER_IDLE_S = 60.0
# A reader that has delivered nothing this long to a fetch that got nothing, while the
# log has records beyond it, is replaced (pulsar-lite stalls readers now and then).
STALL_S = 2.0
# A fetch at the end of the cached run waits for the cache alone (no Pulsar reader) while
# this process stored an entry of the partition less than this long ago: what it stores
# next joins the run and wakes the fetch. A Pulsar reader there would read (and, in the
# pulsar entry format, convert message by message) everything the cache already serves.
# After a pause a reader is opened as before, so what others (Pulsar applications,
# another proxy) write at the end is seen within this time plus the fetch's wait.
CACHE_FOLLOW_S = 1.0


class PulsarPartitionLog:
    def __init__(self, client: _pulsar.Client, bridge: CompletionBridge, topic: str, entry_format: str,
                 cache_budget: CacheBudget | None = None, floor: tuple[int, int] | None = None,
                 log_start_at_least: int = 0, truncate=None) -> None:
        """`floor`: the last entry an earlier incarnation of the topic left in this Pulsar
        topic (this one starts after it); `log_start_at_least`: the log start DeleteRecords
        moved to; `truncate(offset)`: records a new log start for every proxy."""
        self.client = client
        self.bridge = bridge
        self.name = self.topic = topic
        self.entry_format = entry_format
        # Entries this process stored, for fetches that follow the producer. A pulsar-format
        # entry is kept as the Kafka batch its records came in (same records, same offsets).
        self.cache = EntryCache(cache_budget) if (
            cache_budget is not None and cache_budget.max_bytes > 0) else None
        # Where fetch cursors count cache hits and misses (shared by the process's partitions).
        self.cache_budget = cache_budget if cache_budget is not None else CacheBudget(0)
        self.high_watermark: int | None = None
        self.log_start: int | None = None
        # True once Pulsar has shown the topic's first entry: the log start is then settled
        # (until then it is unknown, or only "empty topic", which another writer can end).
        self._first_entry_seen = False
        self._log_start_task: asyncio.Future | None = None
        self._load_task: asyncio.Task | None = None
        self._readers: list[TailReader] = []
        self._stored_at = 0.0  # monotonic time of the last entry stored through this process
        self._reads = OneOffReads(client, bridge, topic)
        self._producer = PartitionProducer(client, bridge, topic, entry_format, self._stored)
        self._floor_entry = floor
        # The lowest offset this partition may still return.
        self._start_floor = max(codec.pack_offset(floor[0], floor[1] + 1, 0) if floor else 0, log_start_at_least)
        self._truncate = truncate

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
        last = await self._reads.last_entry()
        if last is None:
            self.observe_end(self._start_floor)
            if self.log_start is None:
                self.log_start = self._start_floor
            return
        ledger, entry = last
        known = self.high_watermark
        if known is None or known <= codec.pack_offset(ledger, entry, 0):
            # Only read the last entry (for its record count) when what we have seen ends
            # before it; when this process wrote or read it, the end is already known.
            self.observe_end(await self._reads.end_of_entries_from(ledger, entry))
        # Entries of an earlier incarnation (or deleted records) end below the floor.
        self.observe_end(self._start_floor)
        if not self._first_entry_seen:
            self._settle_log_start(await self._first_offset())

    def _settle_log_start(self, first: int | None) -> None:
        if first is not None:
            self.log_start, self._first_entry_seen = max(first, self._start_floor), True
        else:
            self.log_start = self.high_watermark

    # The offset mapping (packed: Pulsar positions; offsets_consecutive.py overrides these).
    async def _first_offset(self) -> int | None:
        return await self._reads.first_offset()

    async def _item_at_or_after(self, offset: int):
        return await self._reads.item_at_or_after(offset)

    def raise_log_start(self, offset: int) -> None:
        """DeleteRecords moved the log start (through any proxy): nothing below it is returned."""
        self._start_floor = max(self._start_floor, offset)
        if self.log_start is not None and self.log_start < offset:
            self.log_start = offset
        if self.high_watermark is not None:
            self.observe_end(offset)

    async def delete_records(self, before: int) -> int:
        log_start, hwm = await self.bounds(refresh=True)
        before = min(before, hwm)
        if before > log_start:
            if self._truncate is None:
                raise StorageError(f"cannot delete records of {self.topic}")
            await self._truncate(before)
            self.raise_log_start(before)
        return self.log_start

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
            return self.log_start
        log_start, _ = await self.bounds(refresh=True)
        return log_start

    async def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record with a timestamp >= the one asked, or None.

        Binary search over stored entries by their max timestamp (as Kafka's time
        index does), a reader per probe; then the records of the entry found.
        """
        log_start, hwm = await self.bounds()
        lo = log_start
        while lo < hwm:
            candidate = await self._first_entry_reaching(timestamp, lo, hwm)
            if candidate is None:
                return None
            for record in candidate.records():
                # An entry can straddle the log start (DeleteRecords): what is below it is gone.
                if record.offset >= log_start and record.timestamp >= timestamp:
                    return record.offset, record.timestamp
            lo = candidate.next_offset
        return None

    async def _first_entry_reaching(self, timestamp: int, lo: int, hi: int):
        """The first entry in [lo, hi) whose max timestamp is >= `timestamp`, or None."""
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
        return candidate

    async def last_record(self) -> tuple[int, int] | None:
        """(offset, timestamp) of the last record."""
        log_start, hwm = await self.bounds()
        if hwm <= log_start:
            return None
        item = await self._item_at_or_after(hwm - 1)
        record = item.records()[-1]
        return record.offset, record.timestamp

    async def recent_producer_batches(self, max_entries: int = 1000) -> list[tuple[int, int, int, int, int]]:
        """Idempotent producers' batches among the last `max_entries` entries (`producer_tail`)."""
        if self.entry_format != "kafka":
            return []  # one Pulsar message per record: no producer ids are stored
        return await producer_tail.recent_producer_batches(
            self._reads, lambda: self.bounds(refresh=True), self._floor_entry, max_entries)

    # -- appends ------------------------------------------------------------------------------
    def append_batch(self, batch, record_count: int) -> asyncio.Future:
        """Store one verified Kafka batch (a view of the request frame); the future gives its base offset."""
        producer = self._producer
        # Records one entry can hold: index values 0..max_index.
        capacity = codec.get_offset_layout().max_index + 1
        # The one copy taken here is what pulsar-client is handed and what the entry cache
        # keeps (it must not pin the whole request frame).
        if self.entry_format == "kafka":
            if record_count <= capacity:
                return producer.append_kafka_batch(bytes(batch), record_count)
            # Never truncate: split so each stored entry fits the offset index space. A full
            # entry spans exactly `capacity` offsets, so when the parts land in consecutive
            # entries of one ledger the records keep the offsets base+i the client computes.
            parts = codec.split_batch(bytes(batch), capacity)
            return _first_of_all([producer.append_kafka_batch(p, codec.verify_batches(p)[1]) for p in parts])
        records = codec.decode_batches(batch)[0].records
        if len(records) <= capacity:
            # The batch as sent is also how Fetch may show this entry (the entry cache).
            return producer.append_native(records, bytes(batch))
        return _first_of_all([producer.append_native(records[i:i + capacity])
                              for i in range(0, len(records), capacity)])

    def _stored(self, ledger: int, entry: int, base: int, count: int, batch: bytes | None) -> None:
        self._stored_at = time.monotonic()
        self.observe_end(base + count)
        self._settle_log_start_soon()
        if self.cache is not None and batch is not None:
            self.cache.add(ledger, entry, KafkaEntry(base, count, batch))

    # -- fetches ------------------------------------------------------------------------------
    async def open_fetch(self, offset: int) -> "PulsarFetchCursor":
        cache = self.cache
        # Served from memory: no Pulsar reader needed (nor opened).
        if cache is not None and (cache.holds(offset) or self._cache_follows(offset)):
            reader = None
        else:
            reader = await self._lease_reader(offset)
        return PulsarFetchCursor(self, offset, reader)

    def _cache_follows(self, offset: int) -> bool:
        """A fetch at the end that the cache will answer (CACHE_FOLLOW_S)."""
        cache = self.cache
        return (offset == cache.end == self.high_watermark
                and time.monotonic() - self._stored_at < CACHE_FOLLOW_S)

    async def _reuse_reader(self, offset: int) -> TailReader | None:
        """A reader already positioned for `offset`, leased; failed readers are dropped."""
        for reader in self._readers:
            if reader.covers(offset):
                reader.leased = True
                return reader
        for reader in [r for r in self._readers if r.failed]:
            self._readers.remove(reader)
            await reader.close()
        return None

    async def _lease_reader(self, offset: int) -> TailReader:
        """A reader positioned to serve a fetch at `offset` (reused when one already is)."""
        reused = await self._reuse_reader(offset)
        if reused is not None:
            return reused
        log_start, hwm = await self.bounds()
        floor = self._floor_entry
        if offset <= log_start and not self._start_floor:
            start = _pulsar.MessageId.earliest
        else:
            # Start at the entry holding `offset` (or the last entry, at the high watermark),
            # inclusive: a reader placed past the end would wait forever. At or below an
            # earlier incarnation's last entry, start there: that entry exists (the offset
            # after it may not), and take() skips it.
            ledger, entry, _ = codec.unpack_offset(min(offset, hwm))
            if floor is not None and (ledger, entry) <= floor:
                ledger, entry = floor
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

    def handle_counts(self) -> tuple[int, int]:
        """(open producers, open tail readers) of this partition (metrics)."""
        return int(self._producer.is_open), len(self._readers)

    def send_counts(self) -> tuple[int, int]:
        """(messages pending in pulsar-client, appends waiting before it) of this partition (metrics)."""
        return self._producer.send_counts()

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
        await self._producer.close()


def _first_of_all(futures: list) -> asyncio.Future:
    """One future for a batch stored in several entries: the first base offset, once all persisted."""
    combined = asyncio.gather(*futures)
    result = asyncio.get_running_loop().create_future()

    def done(fut: asyncio.Future) -> None:
        if fut.exception() is not None:
            result.set_exception(fut.exception())
        else:
            result.set_result(fut.result()[0])

    combined.add_done_callback(done)
    return result


class PulsarFetchCursor:
    """One fetch's hold on a partition: the entry cache first, else the reader it leased."""

    __slots__ = ("offset", "_partition", "_reader", "_served")

    def __init__(self, partition: PulsarPartitionLog, offset: int, reader: TailReader | None) -> None:
        self.offset = offset
        self._partition = partition
        self._reader = reader
        self._served = False

    def take(self, max_bytes: int) -> tuple[list, int]:
        partition = self._partition
        cache = partition.cache
        if cache is not None:
            parts, size, after = cache.take(self.offset, max_bytes)
            if size:
                # The reader this consumer used last (still waiting where this fetch began)
                # goes on from here, so the next fetch after the cached run reuses it.
                if self._reader is not None:
                    self._reader.skip_to(after)
                else:
                    partition.advance_idle_readers(self.offset, after)
                self.offset = after
                self._served = True
                partition.cache_budget.hits += 1
                return parts, size
        reader = self._reader
        if reader is None:
            return [], 0
        try:
            parts, size = reader.take(self.offset, max_bytes)
        except Exception:
            reader.leased = False
            self._reader = None
            raise
        if size:
            self.offset = reader.position
            self._served = True
            partition.cache_budget.misses += 1
        return parts, size

    def wait(self) -> list[asyncio.Future]:
        waits = []
        if self._reader is not None:
            waits.append(self._reader.wait_future())
        if self._partition.cache is not None:
            # An entry stored through this process wakes the fetch before Pulsar delivers it.
            waits.append(self._partition.cache.wait_future(asyncio.get_running_loop()))
        return waits

    def release(self) -> None:
        reader, self._reader = self._reader, None
        if reader is None:
            return
        reader.leased = False
        hwm = self._partition.high_watermark or 0
        if not self._served and reader.position < hwm and time.monotonic() - reader.last_delivery > STALL_S:
            reader.mark_stalled()
