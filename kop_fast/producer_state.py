"""Idempotent producers: per (partition, producer id) sequence tracking, as Kafka brokers do (sans-io).

A batch from an idempotent producer carries producer id, epoch and the sequence
number of its first record. The broker accepts the next expected sequence,
answers a retry of one of the last five batches with the offset it already got
(so a retried batch is never stored twice), and rejects gaps
(OUT_OF_ORDER_SEQUENCE_NUMBER), older duplicates (DUPLICATE_SEQUENCE_NUMBER) and
fenced epochs (INVALID_PRODUCER_EPOCH).

State is kept in memory per kop_fast process. A process that takes a partition
over rebuilds it from what is stored (`restore`, from the storage's
`PartitionLog.recent_producer_batches`), so retries of batches the previous
owner stored are still answered with their offsets; one that gives a partition
up forgets it (`drop_partition`). A producer not found there is unknown, and its
next batch is accepted as its new starting point (KIP-360's behaviour for
unknown producers).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from enum import IntEnum

_SEQ_MODULUS = 1 << 31
RECENT_BATCHES = 5  # Kafka's max.in.flight.requests.per.connection bound for idempotence
MAX_PRODUCERS = 100_000


class SequenceCheck(IntEnum):
    ACCEPT = 0
    DUPLICATE_OF_RECENT = 1  # answer with the cached offset, store nothing
    DUPLICATE_IN_FLIGHT = 2  # the original is still being written: ask the client to retry later
    DUPLICATE_SEQUENCE = 46
    OUT_OF_ORDER_SEQUENCE = 45
    INVALID_PRODUCER_EPOCH = 47


@dataclass(slots=True)
class _Producer:
    epoch: int
    last_sequence: int  # sequence of the last record of the last accepted batch
    # [first sequence, last sequence, base offset or None while Pulsar has not persisted it]
    recent: deque = field(default_factory=lambda: deque(maxlen=RECENT_BATCHES))


def _next(seq: int, n: int = 1) -> int:
    return (seq + n) % _SEQ_MODULUS


class ProducerStateTable:
    def __init__(self, max_producers: int = MAX_PRODUCERS) -> None:
        self._producers: OrderedDict[tuple, _Producer] = OrderedDict()
        self._max = max_producers

    def check(self, partition: str, producer_id: int, epoch: int, first_sequence: int,
              record_count: int) -> tuple[SequenceCheck, int | None]:
        """Classify a batch; for DUPLICATE_OF_RECENT also return the offset it was stored at."""
        if producer_id < 0:
            return SequenceCheck.ACCEPT, None
        state = self._producers.get((partition, producer_id))
        if state is None:
            return SequenceCheck.ACCEPT, None
        if epoch < state.epoch:
            return SequenceCheck.INVALID_PRODUCER_EPOCH, None
        if epoch > state.epoch:
            # A bumped epoch starts again at sequence 0.
            return (SequenceCheck.ACCEPT, None) if first_sequence == 0 else (SequenceCheck.OUT_OF_ORDER_SEQUENCE, None)
        last = _next(first_sequence, record_count - 1)
        for first, last_seen, offset in state.recent:
            if first == first_sequence and last_seen == last:
                if offset is None:
                    return SequenceCheck.DUPLICATE_IN_FLIGHT, None
                return SequenceCheck.DUPLICATE_OF_RECENT, offset
        if first_sequence == _next(state.last_sequence):
            return SequenceCheck.ACCEPT, None
        # Ahead of what we expect: a batch went missing. Behind: an old duplicate.
        distance = (first_sequence - _next(state.last_sequence)) % _SEQ_MODULUS
        if distance < _SEQ_MODULUS // 2:
            return SequenceCheck.OUT_OF_ORDER_SEQUENCE, None
        return SequenceCheck.DUPLICATE_SEQUENCE, None

    def begin(self, partition: str, producer_id: int, epoch: int, first_sequence: int,
              record_count: int) -> list | None:
        """An accepted batch is being written: later batches are checked against it already
        (idempotent producers pipeline up to five). Returns a handle for `persisted`."""
        if producer_id < 0:
            return None
        key = (partition, producer_id)
        last = _next(first_sequence, record_count - 1)
        state = self._producers.get(key)
        if state is None or epoch != state.epoch:
            state = _Producer(epoch, last)
            self._producers[key] = state
        else:
            state.last_sequence = last
            self._producers.move_to_end(key)
        entry = [first_sequence, last, None]
        state.recent.append(entry)
        if len(self._producers) > self._max:
            self._producers.popitem(last=False)
        return entry

    @staticmethod
    def persisted(handle: list | None, base_offset: int) -> None:
        if handle is not None:
            handle[2] = base_offset

    def restore(self, partition: str, batches) -> None:
        """Rebuild the state of the producers of `partition` from its stored batches:
        (producer id, epoch, first sequence, last sequence, base offset) tuples in log
        order. Each producer named there gets the epoch and last sequence of its last
        batch and its last RECENT_BATCHES batches of that epoch (a later epoch replaces
        an earlier one, as `begin` does); what the table held for it is replaced."""
        rebuilt: dict[int, _Producer] = {}
        for producer_id, epoch, first_sequence, last_sequence, base_offset in batches:
            if producer_id < 0:
                continue
            state = rebuilt.get(producer_id)
            if state is None or epoch > state.epoch:
                state = rebuilt[producer_id] = _Producer(epoch, last_sequence)
            elif epoch < state.epoch:
                continue  # a fenced epoch's batch: it never changes the current state
            state.last_sequence = last_sequence
            state.recent.append([first_sequence, last_sequence, base_offset])
        for producer_id, state in rebuilt.items():
            key = (partition, producer_id)
            self._producers[key] = state
            self._producers.move_to_end(key)
        while len(self._producers) > self._max:
            self._producers.popitem(last=False)

    def drop_partition(self, partition: str) -> None:
        """Forget every producer of `partition` (another process owns it now, or it is gone)."""
        for key in [key for key in self._producers if key[0] == partition]:
            del self._producers[key]

    def forget(self, partition: str, producer_id: int) -> None:
        """After a failed write the producer's retry must be accepted again, not fenced."""
        self._producers.pop((partition, producer_id), None)
