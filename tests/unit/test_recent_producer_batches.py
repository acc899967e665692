"""PartitionLog.recent_producer_batches: the memory storage, and the Pulsar reader's pure parts
(where the read starts, reading producer fields, split batches) without a broker."""

from __future__ import annotations

import asyncio

import pytest

from kop_fast import codec
from kop_fast.producer_state import ProducerStateTable, SequenceCheck as S
from kop_fast.pulsar_payload import FORMAT_PROPERTY, FORMAT_V2
from kop_fast.storage.memory import MemoryStorage
from kop_fast.storage.pulsar import producer_tail
from kop_fast.storage.pulsar.producer_tail import ProducerTailRead, producer_fields, start_position


def batch(n: int, pid: int = -1, epoch: int = -1, seq: int = -1) -> bytes:
    records = [codec.Record(i, 1_000 + i, None, b"v%d" % i, ()) for i in range(n)]
    return codec.encode_batch(records, producer_id=pid, producer_epoch=epoch, base_sequence=seq)


# -- the memory storage ------------------------------------------------------------------------
def test_memory_log_gives_the_idempotent_batches_among_the_last_entries():
    async def scenario():
        storage = MemoryStorage()
        topic = await storage.create_topic("t", 1)
        log = storage.partition_log(topic, 0)
        assert await log.recent_producer_batches() == []
        expected = []
        for i in range(30):
            if i % 3 == 2:
                await log.append_batch(batch(2), 2)  # not idempotent
                continue
            pid, seq = 100 + i % 3, (i // 3) * 4
            base = await log.append_batch(batch(4, pid, 1, seq), 4)
            expected.append((pid, 1, seq, seq + 3, base))
        top = (1 << 31) - 2
        base = await log.append_batch(batch(5, 9, 0, top), 5)
        expected.append((9, 0, top, 2, base))  # the last sequence wraps
        assert await log.recent_producer_batches() == expected
        # The last 10 entries are 21..30: six idempotent ones among 21..29, then the wrapped one.
        assert await log.recent_producer_batches(10) == expected[-7:]
        assert await log.recent_producer_batches(0) == []

        # What a process taking over rebuilds: a retry gets the stored offset back.
        table = ProducerStateTable()
        table.restore(log.name, await log.recent_producer_batches())
        pid, epoch, first, last, offset = expected[-2]
        assert table.check(log.name, pid, epoch, first, last - first + 1) == (S.DUPLICATE_OF_RECENT, offset)
        assert table.check(log.name, 9, 0, 3, 1) == (S.ACCEPT, None)
    asyncio.run(scenario())


# -- the Pulsar reader's pure parts ------------------------------------------------------------
def test_producer_fields_agree_with_the_codec():
    data = batch(7, pid=123456789012, epoch=5, seq=42)
    info = codec.batch_infos(data)[0]
    assert producer_fields(data) == (info[8], info[9], info[10], info[4]) == (123456789012, 5, 42, 7)
    assert producer_fields(batch(1))[0] == -1
    assert producer_fields(b"short") is None


@pytest.mark.parametrize("last, n, floor, first_ledger, start", [
    ((5, 4999), 1000, None, 5, (5, 4000)),     # the window inside the last ledger
    ((5, 500), 1000, None, 5, (5, 0)),         # fewer entries than asked: from entry 0
    ((5, 500), 1000, None, 3, None),           # reaches back into earlier ledgers: from the first entry
    ((5, 4999), 1000, (5, 4500), 5, (5, 4500)),  # never before an earlier incarnation's last entry
    ((5, 500), 1000, (5, 100), 3, (5, 100)),
    ((5, 500), 1000, (4, 100), 3, (4, 100)),   # the floor is in an earlier ledger: from there
    ((5, 0), 1, None, 5, (5, 0)),
])
def test_start_position(last, n, floor, first_ledger, start):
    assert start_position(last, n, floor, first_ledger) == start


class FakeId:
    def __init__(self, ledger, entry, index=-1):
        self.position = (ledger, entry, index)

    def ledger_id(self):
        return self.position[0]

    def entry_id(self):
        return self.position[1]

    def batch_index(self):
        return self.position[2]


class FakeMessage:
    def __init__(self, ledger, entry, data=b"", properties=None, index=-1):
        self._id = FakeId(ledger, entry, index)
        self._data = data
        self._properties = {FORMAT_PROPERTY: FORMAT_V2} if properties is None else properties

    def message_id(self):
        return self._id

    def data(self):
        return self._data

    def properties(self):
        return self._properties


def read_of(messages, last, max_entries=1000, floor=None) -> list:
    read = ProducerTailRead(None, None, "t", last, floor, max_entries)
    for msg in messages:
        read._take(msg)
    return [b for _, b in read._entries if b is not None]


def test_messages_taken_in_order_skipping_duplicates_native_messages_and_later_entries():
    pack = codec.pack_offset
    msgs = [
        FakeMessage(3, 9, batch(2, 7, 0, 0)),  # at or before the floor: an earlier incarnation
        FakeMessage(3, 10, batch(2, 7, 0, 0)),
        FakeMessage(3, 10, batch(2, 7, 0, 0)),  # a duplicate delivery
        FakeMessage(3, 11, properties={}, index=0),  # a Pulsar application's batch entry
        FakeMessage(3, 11, properties={}, index=1),
        FakeMessage(3, 12, batch(3, -1)),
        FakeMessage(3, 13, batch(1, 7, 0, 2)),
        FakeMessage(3, 14, batch(1, 7, 0, 3)),  # appended after the read began
    ]
    assert read_of(msgs, last=(3, 13), floor=(3, 9)) == [(7, 0, 0, 1, pack(3, 10)), (7, 0, 2, 2, pack(3, 13))]
    # The window counts entries, also those without producer batches: the last 3 are 11, 12, 13.
    assert read_of(msgs, last=(3, 13), max_entries=3) == [(7, 0, 2, 2, pack(3, 13))]


def test_the_parts_of_a_split_batch_are_one_batch_at_the_first_parts_offset():
    capacity = codec.get_offset_layout().max_index + 1
    whole = batch(2 * capacity + 3, pid=7, epoch=0, seq=100)
    parts = codec.split_batch(whole, capacity)
    assert len(parts) == 3
    msgs = [FakeMessage(2, 40 + i, part) for i, part in enumerate(parts)]
    msgs.append(FakeMessage(2, 43, batch(5, 7, 0, 100 + 2 * capacity + 3)))  # the next batch stays apart
    assert read_of(msgs, last=(2, 43)) == [
        (7, 0, 100, 100 + 2 * capacity + 2, codec.pack_offset(2, 40)),
        (7, 0, 100 + 2 * capacity + 3, 100 + 2 * capacity + 7, codec.pack_offset(2, 43))]
    # Parts in entries that do not follow each other are not joined (someone wrote between).
    gapped = [FakeMessage(2, 40, parts[0]), FakeMessage(2, 42, parts[1])]
    assert len(read_of(gapped, last=(2, 42))) == 2


def test_a_stalled_read_raises_timed_out(monkeypatch):
    """Nothing delivered while the last entry is not reached: a TIMED_OUT StorageError, not a hang."""
    from kop_fast.storage.api import StorageError, StorageErrorKind

    class SilentRead(ProducerTailRead):
        opened = 0

        async def _open(self, start_id):
            SilentRead.opened += 1
            return object()

        async def _read(self, reader, timeout_s):
            await asyncio.sleep(timeout_s)
            raise asyncio.TimeoutError

    async def no_close(bridge, handle, timeout=5.0):
        pass

    monkeypatch.setattr(producer_tail, "STALL_TIMEOUTS_S", (0.01, 0.01, 0.01))
    monkeypatch.setattr(producer_tail, "close_quietly", no_close)
    with pytest.raises(StorageError) as raised:
        asyncio.run(SilentRead(None, None, "t", (1, 5), None, 10).run((1, 0)))
    assert raised.value.kind == StorageErrorKind.TIMED_OUT
    assert SilentRead.opened == 3  # a fresh reader after each stall
