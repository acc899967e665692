"""The entry cache: only contiguous runs, exact offsets, a shared byte budget, wake-ups."""

import asyncio
import gc

import pytest

from kop_fast import codec
from kop_fast.storage.pulsar.entry_cache import CacheBudget, EntryCache
from kop_fast.storage.pulsar.entries import KafkaEntry

LEDGER = 7


def entry(entry_id: int, count: int = 3, ledger: int = LEDGER, value_size: int = 10) -> KafkaEntry:
    base = codec.pack_offset(ledger, entry_id, 0)
    records = [codec.Record(i, 1000 + i, None, bytes([entry_id % 256]) * value_size, ()) for i in range(count)]
    return KafkaEntry(base, count, bytes(codec.encode_batch(records, base_offset=0)))


def joined(parts) -> bytes:
    return b"".join(bytes(p) for p in parts)


def stored_bytes(e: KafkaEntry) -> bytes:
    return joined(e.parts)


def test_take_from_base_inside_and_gap_offsets():
    cache = EntryCache(CacheBudget(1 << 20))
    entries = [entry(i) for i in range(5, 9)]
    for i, e in zip(range(5, 9), entries):
        cache.add(LEDGER, i, e)
    # at a base offset
    parts, size, after = cache.take(entries[1].base_offset, 1)
    assert joined(parts) == stored_bytes(entries[1]) and size == entries[1].size
    assert after == entries[1].next_offset
    # inside an entry: the whole entry (the client skips the records before its offset)
    parts, _, after = cache.take(entries[1].base_offset + 2, 1)
    assert joined(parts) == stored_bytes(entries[1]) and after == entries[1].next_offset
    # in the gap after an entry: the next entry
    parts, _, after = cache.take(entries[1].next_offset, 1)
    assert joined(parts) == stored_bytes(entries[2]) and after == entries[2].next_offset
    # max_bytes: whole entries only, as many as fit
    parts, size, after = cache.take(entries[0].base_offset, entries[0].size + entries[1].size + 1)
    assert joined(parts) == stored_bytes(entries[0]) + stored_bytes(entries[1])
    assert after == entries[1].next_offset
    # the patched base offset is the real one
    patched = joined(cache.take(entries[3].base_offset, 1)[0])
    assert codec.decode_batches(patched)[0].records[0].offset == entries[3].base_offset


def test_offsets_outside_the_run_are_not_held():
    cache = EntryCache(CacheBudget(1 << 20))
    assert not cache.holds(0) and cache.take(0, 100) == ([], 0, 0)
    a, b = entry(5), entry(6)
    cache.add(LEDGER, 5, a)
    cache.add(LEDGER, 6, b)
    assert not cache.holds(a.base_offset - 1)
    assert not cache.holds(b.next_offset)  # the end: a Pulsar reader waits there
    assert cache.take(b.next_offset, 100) == ([], 0, b.next_offset)
    assert cache.end == b.next_offset


@pytest.mark.parametrize("ledger, entry_id", [(LEDGER, 8), (LEDGER + 1, 0), (LEDGER, 6)])
def test_a_discontinuity_starts_a_new_run(ledger, entry_id):
    cache = EntryCache(CacheBudget(1 << 20))
    a = entry(5)
    cache.add(LEDGER, 5, a)
    cache.add(LEDGER, 6, entry(6))
    # Entry 6 -> (ledger, entry_id): someone else may have written in between.
    c = entry(entry_id, ledger=ledger)
    cache.add(ledger, entry_id, c)
    assert not cache.holds(a.base_offset)
    assert cache.holds(c.base_offset) and len(cache) == 1


def test_budget_evicts_oldest_first_across_partitions():
    one = entry(0)
    budget = CacheBudget(3 * one.size)
    x, y = EntryCache(budget), EntryCache(budget)
    ex = [entry(i) for i in range(3)]
    ey = [entry(i, ledger=9) for i in range(2)]
    x.add(LEDGER, 0, ex[0])
    y.add(9, 0, ey[0])
    x.add(LEDGER, 1, ex[1])
    assert budget.used == 3 * one.size
    y.add(9, 1, ey[1])  # over budget: x's entry 0, the oldest, goes
    assert not x.holds(ex[0].base_offset) and x.holds(ex[1].base_offset)
    assert y.holds(ey[0].base_offset)
    x.add(LEDGER, 2, ex[2])  # next oldest: y's entry 0
    assert not y.holds(ey[0].base_offset) and y.holds(ey[1].base_offset)
    assert budget.used == 3 * one.size == sum(e.size for e in (ex[1], ex[2], ey[1]))


def test_reset_then_eviction_counts_bytes_once():
    one = entry(0)
    budget = CacheBudget(4 * one.size)
    cache = EntryCache(budget)
    cache.add(LEDGER, 0, entry(0))
    cache.add(LEDGER, 1, entry(1))
    cache.add(LEDGER, 5, entry(5))  # gap: the first two are dropped
    assert budget.used == one.size
    for i in range(6, 12):  # evictions pass over the dropped records
        cache.add(LEDGER, i, entry(i))
    assert budget.used == 4 * one.size
    assert len(cache) == 4 and cache.holds(entry(8).base_offset) and not cache.holds(entry(7).base_offset)


def test_stale_records_do_not_pile_up():
    budget = CacheBudget(1 << 30)
    cache = EntryCache(budget)
    for i in range(3000):
        cache.add(LEDGER, 2 * i, entry(2 * i, count=1, value_size=1))  # never contiguous
    assert len(cache) == 1
    assert len(budget._owners) < 2100  # rebuilt, not 3000 records keeping dead entries alive


def test_oversized_entry_is_not_kept_and_ends_the_run():
    budget = CacheBudget(entry(0).size * 2)
    cache = EntryCache(budget)
    cache.add(LEDGER, 0, entry(0))
    huge = entry(1, count=50)
    cache.add(LEDGER, 1, huge)
    assert len(cache) == 0 and budget.used == 0
    cache.add(LEDGER, 2, entry(2))  # cannot join a run whose previous entry is missing
    assert len(cache) == 1 and not cache.holds(huge.base_offset)


def test_disabled_budget_keeps_nothing():
    budget = CacheBudget(0)
    cache = EntryCache(budget)
    cache.add(LEDGER, 0, entry(0))
    assert len(cache) == 0 and budget.used == 0


def test_waiters_wake_on_add_and_timed_out_ones_are_pruned():
    loop = asyncio.new_event_loop()
    try:
        cache = EntryCache(CacheBudget(1 << 20))
        stale = [cache.wait_future(loop) for _ in range(40)]
        for fut in stale:
            fut.cancel()
        fut = cache.wait_future(loop)
        assert len(cache._waiters) < 30
        assert not fut.done()
        cache.add(LEDGER, 0, entry(0))
        assert fut.done() and cache._waiters == []
    finally:
        loop.close()


def test_cached_entries_leave_no_objects_for_the_garbage_collector():
    """A full collection walks every tracked object: 150,000 cached KafkaEntry objects made
    it a 100 ms pause. The cache keeps ints and bytes in flat lists instead."""
    budget = CacheBudget(1 << 30)
    cache = EntryCache(budget)
    data = entry(0).data
    gc.collect()
    before = len(gc.get_objects())
    for i in range(3000):
        cache.add(LEDGER, i, KafkaEntry(3 * i, 3, data))
    gc.collect()
    assert len(gc.get_objects()) - before < 50
    assert len(cache) == 3000 and budget.used == 3000 * len(data)
    parts, size, after = cache.take(3 * 1500 + 1, 1)
    assert (size, after) == (len(data), 3 * 1501) and joined(parts)[:8] == (3 * 1500).to_bytes(8, "big")
