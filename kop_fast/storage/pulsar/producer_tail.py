"""The idempotent-producer batches among a partition's last stored entries, read back from Pulsar.

A proxy that takes over a partition rebuilds its producer-state table from
these (`ProducerStateTable.restore`), so a retry of a batch the previous owner
already stored is still answered with its offset instead of being stored twice.

Only the `kafka` entry format keeps producer ids: each entry is one Kafka batch
as sent, whose header says producer id, epoch, base sequence and record count.
Messages of Pulsar applications in such a topic carry none and are skipped (they
still count as entries).

Where the read starts: Pulsar entry ids are consecutive within a ledger, so the
last `max_entries` entries start at entry `last - max_entries + 1` of the last
entry's ledger. When that would be before the ledger's first entry and the log
began in an earlier ledger (Pulsar rolled the ledger over), the ids of the
earlier ledgers are unknown to a client: the read then starts at the first entry
and keeps only the last `max_entries` (slower, but nothing is missed).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque

import _pulsar

from kop_fast import codec
from kop_fast.pulsar_payload import FORMAT_PROPERTY, FORMAT_V2, OFFSET_PROPERTY
from kop_fast.storage.api import StorageError, StorageErrorKind
from kop_fast.storage.pulsar.bridge import CompletionBridge, DuplicateFilter, close_quietly, position_of
from kop_fast.storage.pulsar.entries import message_id
from kop_fast.storage.pulsar.one_off import OneOffReads

log = logging.getLogger("kop_fast.partition")

#: (producer id, producer epoch, first sequence, last sequence, base offset)
ProducerBatch = tuple[int, int, int, int, int]

# Kafka v2 batch header, from byte 43: producerId int64, producerEpoch int16,
# baseSequence int32, recordCount int32 (the codec's `batch_infos` reads the same fields).
_PRODUCER_FIELDS = struct.Struct(">qhii")
_PRODUCER_FIELDS_AT = 43
_SEQ_MODULUS = 1 << 31
# Stalls in a row (nothing delivered although the known last entry is not reached yet)
# before giving up; each gets a fresh reader and waits longer, as the one-off reads do.
# pulsar-lite stalls readers now and then; a reader's first message also takes a
# round trip more than the later ones.
STALL_TIMEOUTS_S = (0.25, 0.5, 1.0, 2.0, 2.0)
# Entries are whole Kafka batches (up to ~1 MB): pulsar-lite stalls large messages in
# deep queues (see tail_reader.RECEIVER_QUEUE); 100 keeps small entries flowing.
RECEIVER_QUEUE = 100
ROLE_PREFIX = "kop-fast-producer-tail"
OPEN_TIMEOUT_S = 10.0


def producer_fields(batch: bytes) -> tuple[int, int, int, int] | None:
    """(producer id, epoch, base sequence, record count) from a stored batch's header, or None."""
    if len(batch) < _PRODUCER_FIELDS_AT + _PRODUCER_FIELDS.size:
        return None
    return _PRODUCER_FIELDS.unpack_from(batch, _PRODUCER_FIELDS_AT)


async def recent_producer_batches(reads: OneOffReads, bounds, floor: tuple[int, int] | None,
                                  max_entries: int) -> list[ProducerBatch]:
    """The producer batches among the last `max_entries` entries, in log order.

    `bounds()`: the partition's (log start, high watermark), read from Pulsar again (the
    end as Pulsar has it now, found the way Fetch finds it: no reader is ever started past
    the end, and an empty topic is not an error); `floor`: the last entry of an earlier
    incarnation of the topic."""
    if max_entries <= 0:
        return []
    log_start, end = await bounds()
    if end <= log_start:
        return []
    last = codec.unpack_offset(end - 1)[:2]
    first_ledger = codec.unpack_offset(log_start)[0]
    read = ProducerTailRead(reads.client, reads.bridge, reads.topic, last, floor, max_entries)
    return await read.run(start_position(last, max_entries, floor, first_ledger))


def start_position(last: tuple[int, int], max_entries: int, floor: tuple[int, int] | None,
                   first_ledger: int) -> tuple[int, int] | None:
    """Where to start reading so the last `max_entries` entries up to `last` are seen.

    (ledger, entry) to start at (inclusive), or None for "from the first entry, keep
    the tail" (the window reaches into ledgers before `last`'s, whose ids a client
    does not know). `floor`: the last entry of an earlier incarnation of the topic,
    never read back past (it exists, so the read may start at it and skip it).
    `first_ledger`: the ledger of the partition's log start.
    """
    ledger, entry = last
    start = entry - max_entries + 1
    if start < 0:
        if first_ledger < ledger and (floor is None or floor[0] < ledger):
            return floor
        start = 0  # the log began in this ledger: its entry 0 (or the floor) is far enough back
    if floor is not None and (ledger, start) <= floor:
        return floor
    return ledger, start


class ProducerTailRead:
    """One read of a partition's tail, from a start position to its known last entry."""

    def __init__(self, client: _pulsar.Client, bridge: CompletionBridge, topic: str,
                 last: tuple[int, int], floor: tuple[int, int] | None, max_entries: int,
                 consecutive: bool = False) -> None:
        """`consecutive`: base offsets are the entries' `kafka.offset` stamps (and batches are
        never split across entries); otherwise packed positions."""
        self.consecutive = consecutive
        self.client = client
        self.bridge = bridge
        self.topic = topic
        self.last = last
        self.floor = floor
        # One slot per entry: (ledger, entry) and its producer batch, or None for an entry
        # without one. Bounded, so a read from the first entry keeps only the tail.
        self._entries: deque = deque(maxlen=max_entries)
        self._dedup = DuplicateFilter()

    async def run(self, start: tuple[int, int] | None) -> list[ProducerBatch]:
        start_id = _pulsar.MessageId.earliest if start is None else message_id(*start)
        stalls = 0
        reader = await self._open(start_id)
        try:
            while not self._done():
                try:
                    msg = await self._read(reader, STALL_TIMEOUTS_S[stalls])
                except asyncio.TimeoutError:
                    stalls += 1
                    if stalls == len(STALL_TIMEOUTS_S):
                        raise StorageError(f"reading the producer batches of {self.topic} stalled at "
                                           f"{self._dedup.last}", StorageErrorKind.TIMED_OUT) from None
                    log.info("reading the producer batches of %s stalled; reopening", self.topic)
                    await close_quietly(self.bridge, reader)
                    reader = await self._open(self._resume_id(start_id))
                    continue
                stalls = 0
                self._take(msg)
                self._take_queued(reader)
        finally:
            await close_quietly(self.bridge, reader)
        return [batch for _, batch in self._entries if batch is not None]

    async def _open(self, start_id):
        conf = _pulsar.ReaderConfiguration()
        conf.receiver_queue_size(RECEIVER_QUEUE)
        conf.start_message_id_inclusive(True)
        # Named apart from the fetch readers' `reader-*` subscriptions in Pulsar's metadata.
        conf.subscription_role_prefix(ROLE_PREFIX)
        fut, cb = self.bridge.value_future()
        self.client.create_reader_async_v2(self.topic, start_id, conf, cb)
        try:
            return await asyncio.wait_for(fut, OPEN_TIMEOUT_S)
        except asyncio.TimeoutError:  # a reader that arrives later is closed by the bridge
            raise StorageError(f"opening a reader on {self.topic} timed out", StorageErrorKind.TIMED_OUT) from None

    async def _read(self, reader, timeout_s: float):
        fut, cb = self.bridge.result_future()
        reader.read_next_async(cb)
        return await asyncio.wait_for(fut, timeout_s)

    def _done(self) -> bool:
        return self._dedup.last[:2] >= self.last

    def _resume_id(self, start_id):
        """A new reader starts *at* the last message read, inclusive, and the duplicate filter
        drops it again: pulsar-lite fails an exclusive start at batch index -1 (see tail_reader)."""
        ledger, entry, index = self._dedup.last
        return start_id if ledger < 0 else message_id(ledger, entry, index)

    def _take_queued(self, reader) -> None:
        """What already waits in the reader's queue, without a loop round trip per message."""
        while not self._done():
            try:
                msg = reader.read_next(0)
            except _pulsar.Timeout:
                return
            self._take(msg)

    def _take(self, msg) -> None:
        position = position_of(msg)
        if not self._dedup.fresh_position(position):
            return
        ledger, entry, _ = position
        if (ledger, entry) > self.last or (self.floor is not None and (ledger, entry) <= self.floor):
            return  # appended after the read began, or an earlier incarnation's entry
        entries = self._entries
        if entries and entries[-1][0] == (ledger, entry):
            return  # another message of the same Pulsar batch entry (a Pulsar application's)
        entries.append(((ledger, entry), self._producer_batch(msg, ledger, entry)))

    def _producer_batch(self, msg, ledger: int, entry: int) -> ProducerBatch | None:
        properties = msg.properties()
        if properties.get(FORMAT_PROPERTY) != FORMAT_V2:
            return None
        fields = producer_fields(msg.data())
        if fields is None or fields[0] < 0:
            return None
        producer_id, epoch, first, count = fields
        if self.consecutive:
            stamp = properties.get(OFFSET_PROPERTY)
            if stamp is None:
                return None
            return producer_id, epoch, first, (first + count - 1) % _SEQ_MODULUS, int(stamp)
        base = codec.pack_offset(ledger, entry, 0)
        batch = (producer_id, epoch, first, (first + count - 1) % _SEQ_MODULUS, base)
        previous = self._entries[-1] if self._entries else None
        if previous is not None and _continues_split(previous, batch, ledger, entry, count):
            # A batch larger than an entry's offset space was stored in consecutive entries
            # (`append_batch` splits it): the client knows it as one, at the first part's offset.
            self._entries.pop()
            prev = previous[1]
            batch = (producer_id, epoch, prev[2], batch[3], prev[4])
        return batch


def _continues_split(previous, batch: ProducerBatch, ledger: int, entry: int, count: int) -> bool:
    """Whether `batch` (at ledger/entry) is a later part of the split batch `previous` ends.

    Parts before the last hold exactly one entry's offset space of records, follow each
    other in one ledger and continue the sequence. (A real batch of exactly that many
    records followed by its successor looks the same: that successor's retry is then
    answered DUPLICATE_SEQUENCE, which stores nothing twice either.)"""
    (prev_ledger, prev_entry), prev = previous
    if prev is None or (prev_ledger, prev_entry + 1) != (ledger, entry):
        return False
    capacity = codec.get_offset_layout().max_index + 1
    prev_count = (prev[3] - prev[2]) % _SEQ_MODULUS + 1
    return (prev[0], prev[1]) == batch[:2] and prev_count % capacity == 0 \
        and batch[2] == (prev[3] + 1) % _SEQ_MODULUS and count <= capacity
