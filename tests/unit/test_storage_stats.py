"""`PulsarStorage.stats` without a broker: sends pending in pulsar-client and appends waiting before
it, the entry cache's size, hits and misses, and the embedded broker's state."""

from __future__ import annotations

import asyncio

import _pulsar

from kop_fast.config import build_settings
from kop_fast.storage.api import StorageStats
from kop_fast.storage.memory import MemoryStorage
from kop_fast.storage.pulsar import producer as producer_module
from kop_fast.storage.pulsar.bridge import CompletionBridge
from kop_fast.storage.pulsar.entry_cache import CacheBudget
from kop_fast.storage.pulsar.offsets_consecutive import ConsecutivePartitionLog
from kop_fast.storage.pulsar.partition_log import PulsarFetchCursor, PulsarPartitionLog
from kop_fast.storage.pulsar.producer import PartitionProducer
from kop_fast.storage.pulsar.storage import PulsarStorage
from tests.unit.test_entry_cache import LEDGER, entry


class FakeProducer:
    """pulsar-client's producer as `PartitionProducer` uses it: sends wait until `ack`."""

    def __init__(self) -> None:
        self.callbacks = []

    def send_async(self, message, callback) -> None:
        self.callbacks.append(callback)

    def ack(self, entry_id: int) -> None:
        self.callbacks.pop(0)(_pulsar.Result.Ok, FakeMessageId(entry_id))


class FakeMessageId:
    def __init__(self, entry_id: int) -> None:
        self.entry_id_ = entry_id

    def ledger_id(self) -> int:
        return LEDGER

    def entry_id(self) -> int:
        return self.entry_id_


class FakeReader:
    """A leased tail reader that has `size` bytes for the next take."""

    def __init__(self, position: int, size: int) -> None:
        self.position = position
        self.size = size
        self.leased = True

    def take(self, offset: int, max_bytes: int):
        if not self.size:
            return [], 0
        self.position = offset + 1
        return [b"x" * self.size], self.size

    def skip_to(self, offset: int) -> None:
        self.position = offset


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def storage(**flags) -> PulsarStorage:
    return PulsarStorage(build_settings({"listen": "127.0.0.1:0", **flags}, environ={}), "pulsar://127.0.0.1:1")


def test_sends_are_pending_until_pulsar_acknowledges_them_and_wait_while_there_is_no_room(monkeypatch):
    monkeypatch.setattr(producer_module, "MAX_PENDING_MESSAGES", 2)

    async def scenario():
        stored = []
        producer = PartitionProducer(None, CompletionBridge(asyncio.get_running_loop()), "t", "kafka",
                                     lambda *args: stored.append(args))
        fake = FakeProducer()
        created = asyncio.get_running_loop().create_future()

        async def create():
            return await created

        producer._create_producer = create
        assert producer.send_counts() == (0, 0)
        futures = [producer.append_kafka_batch(b"batch%d" % i, 1) for i in range(3)]
        await settle()
        assert producer.send_counts() == (0, 3)  # no producer yet: all wait, in order
        created.set_result(fake)
        await settle()
        assert producer.send_counts() == (2, 1)  # as many as pulsar-client may hold, one waits for room
        fake.ack(0)
        await settle()
        assert producer.send_counts() == (2, 0)
        fake.ack(1)
        fake.ack(2)
        await settle()
        assert producer.send_counts() == (0, 0)
        assert all(f.done() and f.exception() is None for f in futures) and len(stored) == 3

    asyncio.run(scenario())


def test_the_storage_sums_sends_of_every_partition_and_the_consecutive_queue():
    async def scenario():
        s = storage(offset_mode="consecutive")
        s.bridge = CompletionBridge(asyncio.get_running_loop())
        packed = PulsarPartitionLog(None, s.bridge, "a", "kafka", s.cache_budget)
        fake = packed._producer._producer = FakeProducer()
        packed._first_entry_seen = True  # no background look for the first entry (there is no Pulsar)
        consecutive = ConsecutivePartitionLog(None, s.bridge, "b", "kafka", s.cache_budget)
        s._partitions = {("a", "a"): packed, ("b", "b"): consecutive}
        assert s.stats() == StorageStats(embedded_up=None)
        packed.append_batch(b"x" * 70, 1)
        packed.append_batch(b"y" * 70, 1)
        # The consecutive log does not know its next offset yet: the append waits while it is learned.
        queued = consecutive.append_batch(b"z" * 70, 1)
        stats = s.stats()
        assert (stats.sends_pending, stats.appends_waiting) == (2, 1)
        await settle()  # learning the end fails here (no Pulsar): the queued append fails, the queue empties
        assert queued.done() and queued.exception() is not None
        fake.ack(0)
        await settle()
        assert (s.stats().sends_pending, s.stats().appends_waiting) == (1, 0)

    asyncio.run(scenario())


def test_cache_entries_bytes_hits_and_misses():
    s = storage(read_cache_mb=1)
    partition = PulsarPartitionLog(None, None, "t", "kafka", s.cache_budget)
    s._partitions = {("t", "t"): partition}
    a, b = entry(5), entry(6)
    partition.cache.add(LEDGER, 5, a)
    partition.cache.add(LEDGER, 6, b)
    stats = s.stats()
    assert (stats.cache_entries, stats.cache_bytes, stats.cache_hits, stats.cache_misses) == (2, a.size + b.size, 0, 0)

    cursor = PulsarFetchCursor(partition, a.base_offset, None)
    assert cursor.take(1)[1] == a.size
    assert cursor.take(1)[1] == b.size
    assert cursor.take(1) == ([], 0)  # at the end, no reader: nothing read, nothing counted
    assert (s.stats().cache_hits, s.stats().cache_misses) == (2, 0)

    # Outside the cached run: a Pulsar reader answers.
    cursor = PulsarFetchCursor(partition, b.next_offset, FakeReader(b.next_offset, 10))
    assert cursor.take(100)[1] == 10
    cursor._reader.size = 0
    assert cursor.take(100) == ([], 0)  # nothing delivered: no miss
    assert (s.stats().cache_hits, s.stats().cache_misses) == (2, 1)

    # Evicted and reset entries leave the figures.
    partition.cache.add(LEDGER, 9, entry(9))  # not after entry 6: a new run
    assert (s.stats().cache_entries, s.stats().cache_bytes) == (1, entry(9).size)
    partition.cache.reset()
    assert (s.stats().cache_entries, s.stats().cache_bytes) == (0, 0)


def test_entries_evicted_by_the_budget_leave_the_figures():
    one = entry(0)
    s = storage()
    s.cache_budget = CacheBudget(2 * one.size)
    partition = PulsarPartitionLog(None, None, "t", "kafka", s.cache_budget)
    for i in range(5):
        partition.cache.add(LEDGER, i, entry(i))
    assert len(partition.cache) == 2
    assert (s.stats().cache_entries, s.stats().cache_bytes) == (2, 2 * one.size)


def test_without_a_cache_every_read_is_a_miss():
    s = storage(read_cache_mb=0)
    partition = PulsarPartitionLog(None, None, "t", "kafka", s.cache_budget)
    assert partition.cache is None
    cursor = PulsarFetchCursor(partition, 0, FakeReader(0, 10))
    assert cursor.take(100)[1] == 10
    assert (s.stats().cache_hits, s.stats().cache_misses, s.stats().cache_entries) == (0, 1, 0)


def test_the_embedded_broker_is_reported_only_when_this_process_runs_it():
    assert storage().stats().embedded_up is None
    supervisor = type("Supervisor", (), {"up": True, "restarts": 0})()
    s = PulsarStorage(build_settings({"listen": "127.0.0.1:0"}, environ={}), "pulsar://127.0.0.1:1",
                      embedded=supervisor)
    assert (s.stats().embedded_up, s.stats().embedded_restarts) == (True, 0)
    supervisor.up, supervisor.restarts = False, 3
    assert (s.stats().embedded_up, s.stats().embedded_restarts) == (False, 3)


def test_the_memory_storage_answers_zeros_and_runs_no_broker():
    assert MemoryStorage().stats() == StorageStats(0, 0, 0, 0, 0, 0, None, 0)
