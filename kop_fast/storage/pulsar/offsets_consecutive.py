"""`--offset-mode consecutive`: Kafka offsets 0, 1, 2, ... per partition, kept in Pulsar itself.

Writing. The partition's owner (the one proxy that serves it: server/cluster.py)
keeps `next offset`. Before its first append, and again after a pause (below), it
learns the end from Pulsar: the last entry's `kafka.offset` + its record count. Each
append takes the next base offset synchronously (appends are stored in call order),
stamps it into the stored batch's base offset (bytes 0..8: the CRC does not cover
them) and into the message's `kafka.offset` property, and resolves to it. With
`--entry-format pulsar` each record's message carries its own offset (base + i).

The numbering rule, the same on every proxy, from Pulsar alone. Messages are taken in
Pulsar's order; a Kafka-format entry counts `kafka.records` offsets, any other
message one (a Pulsar application's batch entry therefore counts its batch size):

    offset(m) = max(stamp(m), end(previous))   when m has a `kafka.offset` stamp
    offset(m) = end(previous)                   when it has none (Pulsar applications)
    end(m)    = offset(m) + count(m);   end(nothing) = 0

So messages Pulsar producers write into a partition's topic continue the sequence:
they take the offsets after the entry before them, and the owner's next append
(which learns the end again when its receipts show someone else wrote) follows
them. A stamp above the previous end (an append that failed after it took its
offsets) leaves a gap, as compacted Kafka topics have.

Where this is exact and where not: every proxy numbers a message the same way when
it reads the log forward from a known point. A single probed entry (binary search)
is taken at its stamp, which is exact unless a Pulsar application (or another
writer) wrote into the partition *while* a Kafka producer was writing there, between
the owner learning the end and its append landing. The owner sees that happen (its
receipts' entry ids jump, or a new ledger does not begin with its entry): appends
then wait, it reads the gap once every receipt is in, answers the appends stored
meanwhile with the offsets the rule gives them (`_answer`), pins those offsets in
the registry (every proxy's index takes a pinned offset over a probed stamp) and
stamps what follows correctly. Left: an entry whose pin was never written (its owner
died first) is found by a cold probe at its stamp, a few offsets low; a foreign
message written at the end of a ledger just before the owner's first entry of the
next ledger (entry 0, nothing to see in the ids) is not noticed at that append; the
owner's one-second trust window (TRUST_S: after a pause it reads the end again,
~3 ms on pulsar-lite) covers the case where that writer is another proxy that owned
the partition in between.

Reading: `offset_index.locate` (points learned from writes, reads and the owners'
ledger records; a binary search over entry ids for the rest), then a reader that
numbers forward from there (`Sequencer`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

import _pulsar

from kop_fast import codec
from kop_fast.pulsar_payload import FORMAT_PROPERTY, FORMAT_V2, OFFSET_PROPERTY, RECORDS_PROPERTY
from kop_fast.storage.pulsar import producer_tail
from kop_fast.storage.pulsar.bridge import DuplicateFilter, close_quietly, has_message_available, position_of
from kop_fast.storage.pulsar.entries import KafkaEntry, message_id, native_message, stored_parts
from kop_fast.storage.pulsar.offset_index import OffsetIndex, locate
from kop_fast.storage.pulsar.producer import chain
from kop_fast.storage.pulsar.partition_log import MAX_READERS_PER_PARTITION, PulsarPartitionLog, _first_of_all
from kop_fast.storage.pulsar.tail_reader import TailReader

log = logging.getLogger("kop_fast.partition")

# Readers note every this many entries as a point of the index (and every ledger start).
POINT_EVERY = 256
# The owner trusts its next offset this long after its last receipt (or its last look at
# Pulsar) with nothing in flight; after that it reads the end again before an append
# (another proxy may have owned the partition in the meantime).
TRUST_S = 1.0
# A probe reads past at most this many messages without a stamp (a Pulsar application's run).
PROBE_SCAN = 1000
# The end is learned by reading forward from the last entry this process knows when
# it is this close; farther, from the last stamped entry.
WALK_FROM_TAIL = 256


def stamp_of(properties) -> int | None:
    value = properties.get(OFFSET_PROPERTY)
    return int(value) if value is not None else None


class Sequencer:
    """Numbers messages read forward from a point (the rule in the module docstring);
    notes points (ledger starts, every POINT_EVERY-th entry) for the index."""

    __slots__ = ("end", "_last", "_entries", "points")

    def __init__(self, end: int) -> None:
        self.end = end  # the offset after the previous message
        self._last = (-1, -1)  # (ledger, entry) of the previous message
        self._entries = 0
        self.points: list = []

    def convert(self, msg, position):
        ledger, entry, _ = position
        properties = msg.properties()
        stamp = properties.get(OFFSET_PROPERTY)
        end = self.end
        base = end if stamp is None else max(int(stamp), end)
        if properties.get(FORMAT_PROPERTY) == FORMAT_V2:
            item = KafkaEntry(base, int(properties.get(RECORDS_PROPERTY, "0")), msg.data())
        else:
            item = native_message(msg, ledger, entry, base, properties)
        last = self._last
        if entry != last[1] or ledger != last[0]:
            self._entries += 1
            if ledger != last[0] or self._entries % POINT_EVERY == 0:
                self.points.append((ledger, entry, base))
            self._last = (ledger, entry)
        self.end = item.next_offset
        return item

    def take_points(self) -> list | None:
        points = self.points
        if not points:
            return None
        self.points = []
        return points


async def walk(reads, start: tuple[int, int] | None, end: int, stop=None, limit: int | None = None,
               keep: int | None = None) -> list:
    """Messages from `start` ((ledger, entry), inclusive; None: the first entry), numbered from
    `end` (the offset after the message before `start`), up to the topic's end as Pulsar has it
    or until `stop(position, item, stamped)` is true (that message included), at most `limit`.
    Hedged and retried like the other one-off reads; [(position, item, stamped)], only the
    last `keep` of them when given (a long read through Pulsar applications' messages)."""
    async def attempt(timeout: float):
        reader = await reads._open_reader(_pulsar.MessageId.earliest if start is None else message_id(*start))
        dedup = DuplicateFilter()
        sequencer = Sequencer(end)
        out = [] if keep is None else deque(maxlen=keep)
        taken = 0

        def take(msg) -> bool:
            position = position_of(msg)
            if not dedup.fresh_position(position):
                return False
            nonlocal taken
            stamped = OFFSET_PROPERTY in msg.properties()
            item = sequencer.convert(msg, position)
            out.append((position, item, stamped))
            taken += 1
            return (stop is not None and stop(position, item, stamped)) or (limit is not None and taken >= limit)

        try:
            if not await has_message_available(reads.bridge, reader):
                return list(out)
            while True:
                if take(await reads._read(reader, timeout)):
                    return list(out)
                while True:  # what already waits in the queue, without a round trip each
                    try:
                        msg = reader.read_next(0)
                    except _pulsar.Timeout:
                        break
                    if take(msg):
                        return list(out)
                if not await has_message_available(reads.bridge, reader):
                    # pulsar-lite: the rest of a Pulsar batch may still arrive (see one_off._queued_end)
                    while True:
                        try:
                            msg = reader.read_next(0)
                        except _pulsar.Timeout:
                            return list(out)
                        if take(msg):
                            return list(out)
        finally:
            await close_quietly(reads.bridge, reader)
    return await reads._with_retries(attempt)


class ConsecutivePartitionLog(PulsarPartitionLog):
    """A partition with consecutive offsets; the interface and the packed class's fetch path unchanged."""

    def __init__(self, *args, ledgers=None, record_ledger=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.index = OffsetIndex()
        for ledger, first_entry, offset, previous in ledgers or ():
            self.index.add_ledger_start(ledger, first_entry, offset, previous)
        self._record_ledger = record_ledger  # (ledger, first entry, offset, previous) -> awaitable
        # The floor (an earlier incarnation's last entry) ends at an offset read from Pulsar.
        self._start_floor = kwargs.get("log_start_at_least", 0)
        self._floor_loaded = self._floor_entry is None
        self._next: int | None = None
        self._confirmed_at = 0.0
        self._stale = False
        self._in_flight = 0
        self._drained: list[asyncio.Future] = []
        self._corrections: list = []  # (ledger, entry, stamp, future of the offset to answer)
        self._queue: deque = deque()  # appends waiting for the end to be learned
        self._learning: asyncio.Task | None = None
        # (ledger, entry, base, end) of the last entry this process knows (wrote or read to the end)
        self._tail: tuple[int, int, int, int] | None = None
        self.pulsar_reads = 0  # one-off reads made to map offsets (probes and walks)
        self._producer.on_failed = self._count_down
        self._learned_empty = False  # the last look at Pulsar found no entry (no floor either)

    # -- points --------------------------------------------------------------------------------
    def learn_points(self, points) -> None:
        add = self.index.add
        for point in points:
            add(*point)

    def learn_ledger(self, record) -> None:
        ledger, first_entry, offset, previous = record
        self.index.add_ledger_start(ledger, first_entry, offset, previous)

    def _learn_walk(self, messages: list) -> None:
        """Points and the tail from a forward read that ended at the topic's end."""
        last_entry = None
        base = None
        for (ledger, entry, index), item, _stamped in messages:
            if (ledger, entry) != last_entry and index <= 0:
                self.index.add(ledger, entry, item.base_offset)
                last_entry = (ledger, entry)
                base = item.base_offset
            self.observe_end(item.next_offset)
        if messages:
            (ledger, entry, _), item, _ = messages[-1]
            if last_entry != (ledger, entry) or base is None:
                return  # the read began inside the last entry: its start is not known from here
            self._set_tail(ledger, entry, base, item.next_offset)

    def _set_tail(self, ledger: int, entry: int, base: int, end: int) -> None:
        tail = self._tail
        if tail is None or (ledger, entry) >= tail[:2]:
            self._tail = (ledger, entry, base, end)
            self.index.note_ledger_end(ledger, entry)

    # -- Pulsar reads ----------------------------------------------------------------------------
    async def _walk(self, start, end, stop=None, limit=None, keep=None) -> list:
        self.pulsar_reads += 1
        return await walk(self._reads, start, end, stop, limit, keep)

    async def _probe(self, ledger: int, entry: int, before: tuple[int, int]):
        """The first entry at or after (ledger, entry) and before `before` that carries a stamp."""
        messages = await self._walk(
            (ledger, entry), 0, lambda position, item, stamped: stamped or position[:2] >= before, PROBE_SCAN, 1)
        if not messages:
            return None
        (found_ledger, found_entry, _), item, stamped = messages[-1]
        if not stamped or (found_ledger, found_entry) >= before:
            return None
        return found_ledger, found_entry, self._known_base(found_ledger, found_entry, item.base_offset)

    def _known_base(self, ledger: int, entry: int, stamp: int) -> int:
        """A probed entry's offset: its stamp, or what the index knows for it (an owner's correction)."""
        known = self.index.point_at(ledger, entry)
        return stamp if known is None or known < stamp else known

    async def _locate(self, offset: int) -> tuple[int, int, int]:
        tail = self._tail
        last = tail[:2] if tail is not None else (await self._reads.last_entry() or (0, 0))
        return await locate(self.index, offset, last, self._probe)

    # -- bounds --------------------------------------------------------------------------------
    async def _load_floor(self) -> None:
        """The offset after the earlier incarnation's last entry: this incarnation's log start."""
        if self._floor_loaded:
            return
        ledger, entry = self._floor_entry
        messages = await self._end_from_stamp(ledger, entry)
        if messages:
            self._learn_walk(messages)
            old = [item for position, item, _ in messages if position[:2] <= (ledger, entry)]
            if old:
                self._start_floor = max(self._start_floor, old[-1].next_offset)
        self._floor_loaded = True

    async def _end_from_stamp(self, ledger: int, entry: int) -> list:
        """A forward read to the end starting at the last stamped entry at or before (ledger, entry)."""
        step = 0
        before = (ledger, entry + 1)
        while True:
            at = max(entry - step, 0)
            messages = await self._walk(
                (ledger, at), 0, lambda position, item, stamped: stamped or position[:2] >= before, PROBE_SCAN, 1)
            if messages and messages[-1][2] and messages[-1][0][:2] < before:
                position, item, _ = messages[-1]
                base = self._known_base(position[0], position[1], item.base_offset)
                if position[:2] == (ledger, entry) and type(item) is KafkaEntry and base == item.base_offset:
                    return [messages[-1]]  # the entry asked about is one stamped Kafka batch: its end is known
                # Numbered forward from the stamped entry (the stamp itself may have been corrected).
                return await self._walk(position[:2], base)
            if at == 0:
                # No stamp in this ledger up to there: from the last point known before it.
                point = self.index.before_position((ledger, 0))
                if point is None:
                    return await self._walk(None, 0)
                return await self._walk(point[:2], point[2])
            step = 1 if step == 0 else step * 2

    async def _load_bounds(self) -> None:
        await self._load_floor()
        last = await self._reads.last_entry()
        floor = self._floor_entry
        if last is None or (floor is not None and last <= floor):
            self._learned_empty = floor is None  # a first entry of ours not at entry 0 follows someone else's
            self.observe_end(self._start_floor)
            if self.log_start is None:
                self.log_start = self._start_floor
            return
        tail = self._tail
        if tail is None and self._learned_empty:
            # It was empty when we learned the end, and someone wrote before our first entry:
            # number the (short) log from its start, exactly.
            self._learned_empty = False
            self._learn_walk(await self._walk(None, 0))
            tail = self._tail
        if tail is None or tail[:2] < last:
            if tail is not None and tail[0] == last[0] and last[1] - tail[1] <= WALK_FROM_TAIL:
                messages = await self._walk(tail[:2], tail[2])  # exact, Pulsar applications' messages too
            else:
                messages = await self._end_from_stamp(*last)
            self._learn_walk(messages)
        self.observe_end(self._start_floor)
        if not self._first_entry_seen:
            self._settle_log_start(await self._first_offset())

    async def _first_offset(self) -> int | None:
        floor = self._floor_entry
        if floor is not None:
            await self._load_floor()
            messages = await self._walk(floor, 0, lambda position, item, stamped: position[:2] > floor, 2)
            messages = [m for m in messages if m[0][:2] > floor]
            if not messages:
                return None
            return max(messages[0][1].base_offset, self._start_floor)
        messages = await self._walk(None, 0, limit=1)
        if not messages:
            return None
        (ledger, entry, _), item, _ = messages[0]
        self.index.add(ledger, entry, item.base_offset)
        return item.base_offset

    async def _item_at_or_after(self, offset: int):
        start = await self._start_for(offset)
        messages = await self._walk(start[:2], start[2], lambda position, item, stamped: item.next_offset > offset,
                                    keep=1)
        if not messages:
            raise LookupError(f"no record at or after offset {offset} in {self.topic}")
        return messages[-1][1]

    async def _start_for(self, offset: int) -> tuple[int, int, int]:
        """(ledger, entry, base) a forward read reaching `offset` starts at."""
        if self.index.floor(offset) is None:
            await self.bounds()
            if self.index.first() is None:
                await self._first_offset()
        return await self._locate(offset)

    async def recent_producer_batches(self, max_entries: int = 1000) -> list:
        if self.entry_format != "kafka":
            return []
        log_start, end = await self.bounds(refresh=True)
        tail = self._tail
        if end <= log_start or tail is None or max_entries <= 0:
            return []
        last = tail[:2]
        start = producer_tail.start_position(last, max_entries, self._floor_entry, last[0])
        if last[1] - max_entries + 1 < 0:
            # The window reaches into earlier ledgers: from the last point known before this
            # ledger (never the whole log), or from the first entry when none is known.
            point = self.index.before_position((last[0], 0))
            start = point[:2] if point is not None else None
            if self._floor_entry is not None and (start is None or start <= self._floor_entry):
                start = self._floor_entry
        read = producer_tail.ProducerTailRead(self.client, self.bridge, self.topic, last, self._floor_entry,
                                              max_entries, consecutive=True)
        return await read.run(start)

    async def position_for_commit(self, offset: int) -> int | None:
        """A committed offset as the packed position the subscription mirror positions by:
        pack(L, E, i) for record i of entry (L, E); the end of the log as pack(L, E + 1, 0)
        after its last entry; None while the partition is empty."""
        log_start, hwm = await self.bounds()
        if hwm <= log_start:
            return None
        max_index = codec.get_offset_layout().max_index
        if offset >= hwm:
            tail = self._tail
            if tail is None:
                return None
            return codec.pack_offset(tail[0], tail[1] + 1, 0)
        offset = max(offset, log_start)
        start = await self._start_for(offset)
        messages = await self._walk(start[:2], start[2], lambda position, item, stamped: item.next_offset > offset)
        if not messages:
            return None
        (ledger, entry, _), item, _ = messages[-1]
        entry_base = next(m[1].base_offset for m in messages if m[0][:2] == (ledger, entry))
        delta = offset - entry_base
        return codec.pack_offset(ledger, entry, min(delta, max_index))

    # -- appends -------------------------------------------------------------------------------
    def _trusted(self) -> bool:
        return self._next is not None and not self._stale and (
            self._in_flight > 0 or time.monotonic() - self._confirmed_at < TRUST_S)

    def append_batch(self, batch, record_count: int) -> asyncio.Future:
        if not self._queue and self._trusted():
            return self._send(batch, record_count)
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((bytes(batch), record_count, fut))
        self._start_learning()
        return fut

    def _send(self, batch, record_count: int) -> asyncio.Future:
        """Send one batch at the next offsets. Raises CorruptRecordError (before taking any
        offset) when the pulsar entry format finds records that do not decode."""
        if self.entry_format != "kafka":
            records = codec.decode_batches(batch)[0].records  # may raise: nothing taken yet
        base = self._next
        self._next = base + record_count
        producer = self._producer
        if self.entry_format == "kafka":
            # The one copy: the stored batch with its real base offset (the CRC does not cover it).
            data = b"".join(stored_parts(base, batch))
            parts = [producer.append_kafka_batch(data, record_count, base)]
        else:
            capacity = codec.get_offset_layout().max_index + 1
            if len(records) <= capacity:
                parts = [producer.append_native(records, bytes(batch), base)]
            else:
                parts = [producer.append_native(records[i:i + capacity], None, base + i)
                         for i in range(0, len(records), capacity)]
        # Receipts (`_stored`) or failures (the producer's `on_failed`) count them down.
        self._in_flight += len(parts)
        return parts[0] if len(parts) == 1 else _first_of_all(parts)

    def send_counts(self) -> tuple[int, int]:
        """The producer's, and the appends queued here while the next offset is learned."""
        pending, waiting = self._producer.send_counts()
        return pending, waiting + len(self._queue)

    def _count_down(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._confirmed_at = time.monotonic()
            waiters, self._drained = self._drained, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _start_learning(self) -> None:
        if self._learning is None:
            self._learning = asyncio.ensure_future(self._learn_next())

    async def _learn_next(self) -> None:
        """Learn the end from Pulsar once every append in flight has its receipt; then answer
        the appends stored while someone else wrote (`_corrections`) and send what waited.
        Appends wait (`_trusted` is false) until this is done."""
        try:
            while self._in_flight:
                waiter = asyncio.get_running_loop().create_future()
                self._drained.append(waiter)
                await waiter
            corrections, self._corrections = self._corrections, []
            try:
                _, hwm = await self.bounds(refresh=True)
            except Exception as exc:
                self._answer(corrections)
                queue, self._queue = self._queue, deque()
                for _batch, _count, fut in queue:
                    if not fut.done():
                        fut.set_exception(exc)
                return
            self._next = max(self._next or 0, hwm)
            self._answer(corrections)
            self._stale = False
            self._confirmed_at = time.monotonic()
        finally:
            self._learning = None
        queue, self._queue = self._queue, deque()
        for batch, count, fut in queue:
            try:
                sent = self._send(batch, count)
            except Exception as exc:  # a corrupt batch fails alone; the others still go
                if not fut.done():
                    fut.set_exception(exc)
                continue
            chain(sent, fut)

    def _answer(self, corrections: list) -> None:
        """Appends stored while someone else wrote: their offsets as numbered from Pulsar."""
        for ledger, entry, stamp, fut in corrections:
            effective = self.index.point_at(ledger, entry)
            effective = stamp if effective is None else max(effective, stamp)
            if effective != stamp and self._record_ledger is not None:
                # Pinned for every proxy: a probe of this entry reads only its (lower) stamp.
                task = asyncio.ensure_future(self._record_ledger(ledger, entry, effective, None))
                task.add_done_callback(_log_failure)
            log.debug("%s: entry %s stamped %d is at offset %d", self.topic, (ledger, entry), stamp, effective)
            if not fut.done():
                fut.set_result(effective)

    def _stored(self, ledger: int, entry: int, base: int, count: int, batch: bytes | None):
        tail = self._tail
        if tail is not None and entry == tail[1] + 1 and ledger == tail[0] and not self._stale:
            # The common case: right after our previous entry.
            self._tail = (ledger, entry, base, base + count)
            self._confirmed_at = time.monotonic()
            # Every entry stored through this process is a point (the index keeps the newest
            # exactly and thins the older ones): a reader for a recent offset, the end above
            # all, starts at its entry. With a point every 64 entries, a consumer reaching the
            # end of the cached run paid ~6 one-off Pulsar reads per partition to find it.
            self.index.add(ledger, entry, base)
            self._count_down()
            return PulsarPartitionLog._stored(self, ledger, entry, base, count, batch)
        return self._stored_after_a_gap(ledger, entry, base, count, batch)

    def _stored_after_a_gap(self, ledger: int, entry: int, base: int, count: int, batch: bytes | None):
        """A receipt that does not directly follow the last entry known: the first one, a new
        ledger, or someone else wrote in between (see the module docstring)."""
        self._count_down()
        tail = self._tail
        new_ledger = tail is None or ledger != tail[0]
        if tail is None and self._learned_empty and entry > 0 and not self._stale:
            # The partition was empty when the end was learned, yet our first entry is not
            # its ledger's first: someone wrote before it, and its stamp may be too low.
            log.info("%s: entries before %s were written by someone else; relearning the end",
                     self.topic, (ledger, entry))
            self._stale = True
        if tail is not None and (ledger, entry) > tail[:2]:
            expected = (tail[0], tail[1] + 1) if not new_ledger else (ledger, 0)
            if (ledger, entry) != expected and not self._stale:
                # Someone else wrote between our last entry and this one (another proxy, a
                # Pulsar application): this entry's stamp may be too low. Learn the end again
                # (reading the gap) before the next append, and answer the real offset.
                log.info("%s: entries %s..%s were written by someone else; relearning the end",
                         self.topic, expected, (ledger, entry))
                self._stale = True
        correction = None
        if self._stale:
            correction = asyncio.get_running_loop().create_future()
            self._corrections.append((ledger, entry, base, correction))
            self._start_learning()
        else:
            self._set_tail(ledger, entry, base, base + count)
        self._confirmed_at = time.monotonic()
        self.index.add(ledger, entry, base)
        if new_ledger and self._record_ledger is not None:
            previous = tail[:2] if tail is not None else None
            if previous is not None:
                self.index.note_ledger_end(*previous)
            task = asyncio.ensure_future(self._record_ledger(ledger, entry, base, previous))
            task.add_done_callback(_log_failure)
        if correction is not None:
            # Not cached at a stamp that may be too low: the cache's run ends here.
            if self.cache is not None:
                self.cache.reset()
            batch = None
        super()._stored(ledger, entry, base, count, batch)
        return correction

    # -- fetches -------------------------------------------------------------------------------
    async def _lease_reader(self, offset: int) -> TailReader:
        reused = await self._reuse_reader(offset)
        if reused is not None:
            return reused
        log_start, hwm = await self.bounds()
        if offset <= log_start and not self._start_floor and self._floor_entry is None:
            start, end = _pulsar.MessageId.earliest, 0
        elif hwm > log_start:
            ledger, entry, end = await self._start_for(min(max(offset, log_start), hwm - 1))
            start = message_id(ledger, entry)
        elif self._tail is not None:
            # Empty after the floor (or DeleteRecords): at the last entry, which take() skips.
            ledger, entry, end, _ = self._tail
            start = message_id(ledger, entry)
        else:
            start, end = _pulsar.MessageId.earliest, 0
        log.debug("%s: a reader for offset %d starts at %s numbered from %d", self.topic, offset, start, end)
        reader = TailReader(self, offset, Sequencer(end))
        reader.leased = True
        await reader.open(start)
        self._readers.append(reader)
        idle = [r for r in self._readers if not r.leased]
        if len(self._readers) > MAX_READERS_PER_PARTITION and idle:
            oldest = min(idle, key=lambda r: r.last_used)
            self._readers.remove(oldest)
            await oldest.close()
        return reader


def _log_failure(task: asyncio.Future) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("recording a ledger start failed: %r", task.exception())
