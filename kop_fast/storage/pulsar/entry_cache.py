"""Recently stored Kafka-format entries, kept in memory for the fetches that follow the producer.

A Pulsar broker keeps the entries it has just written in its managed-ledger cache,
so tailing readers are served from memory. kop_fast sits one hop further out: without
a cache of its own, every record a consumer reads right after it was produced would
cross the network twice more (Pulsar to kop_fast, then kop_fast to the client) and
be copied into Python once more. The batches are already in memory when Pulsar
acknowledges them, so they are kept, up to a byte budget shared by all partitions.

Only a contiguous run of entries is kept per partition: an entry joins the run when
it directly follows the run's last entry in Pulsar (same ledger, next entry id).
Anything else (another kop_fast or a Pulsar application wrote in between, a new
ledger) starts a new run. A run is therefore exactly what a Pulsar reader would
deliver for that range, and fetches outside it go to Pulsar as before. Nothing is
cached before Pulsar has acknowledged it, so the cache never shows unstored data.

What the cache holds are ints and bytes in flat lists, never an object per entry: the
garbage collector's full collections walk every tracked object, and a cache of 150,000
`KafkaEntry` objects (each with its parts tuple and memoryview) made each one a 100 ms
pause, longer as the cache filled (the pulsar entry format at 5,000 records/s fell
further behind every minute). Flat lists of untracked objects cost a full collection
almost nothing; the parts a fetch sends are made when it takes them.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque

from kop_fast.storage.pulsar.entries import stored_parts


class CacheBudget:
    """Bytes held by all partition caches of one process; the oldest entries go first.

    Also the process's cache figures for metrics: `entries` held, and `hits` and `misses`,
    the partition reads of fetches answered from a cache and by a Pulsar reader (counted by
    the fetch cursors; with a cache of 0 bytes every read is a miss)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self.entries = 0
        self.hits = 0
        self.misses = 0
        # The entries in the order added, as three parallel queues (no object per entry):
        # the cache holding it, that cache's generation then, and the entry's base offset.
        self._owners: deque = deque()
        self._generations: deque = deque()
        self._order_bases: deque = deque()
        self._stale = 0  # entries queued here whose run was reset since

    def admit(self, cache: "EntryCache", base: int, size: int) -> None:
        self._owners.append(cache)
        self._generations.append(cache._generation)
        self._order_bases.append(base)
        self.used += size
        self.entries += 1
        while self.used > self.max_bytes and self._owners:
            owner = self._owners.popleft()
            generation = self._generations.popleft()
            oldest = self._order_bases.popleft()
            if owner._generation == generation:
                owner._evict(oldest)
            else:
                self._stale -= 1

    def dropped(self, count: int) -> None:
        """A run of `count` entries was reset: forget them here too, now and then in bulk."""
        self._stale += count
        if self._stale > 1024 and self._stale * 2 > len(self._owners):
            kept = [(o, g, b) for o, g, b in zip(self._owners, self._generations, self._order_bases)
                    if o._generation == g]
            self._owners = deque(k[0] for k in kept)
            self._generations = deque(k[1] for k in kept)
            self._order_bases = deque(k[2] for k in kept)
            self._stale = 0


class EntryCache:
    """The latest contiguous run of one partition's stored Kafka entries: for entry i of the
    run, its base offset, the offset after it and its stored bytes (base offset as stored:
    the real one is put in front when a fetch takes it)."""

    __slots__ = ("_budget", "_bases", "_nexts", "_datas", "_head", "_last", "_waiters", "_generation")

    def __init__(self, budget: CacheBudget) -> None:
        self._budget = budget
        self._bases: list[int] = []  # base offsets, ascending; [_head:] are live
        self._nexts: list[int] = []
        self._datas: list = []  # bytes; None once evicted
        self._head = 0
        self._last: tuple[int, int] | None = None  # (ledger, entry id) of the run's last entry
        self._waiters: list = []
        self._generation = 0  # bumped by reset(), so the budget can tell its records are gone

    def __len__(self) -> int:
        return len(self._datas) - self._head

    @property
    def end(self) -> int | None:
        """Offset after the run's last record (None when empty)."""
        return self._nexts[-1] if len(self) else None

    def add(self, ledger: int, entry_id: int, entry) -> None:
        """Keep an entry (`KafkaEntry`) Pulsar has just acknowledged at (ledger, entry_id)."""
        last = self._last
        if last is None or ledger != last[0] or entry_id != last[1] + 1:
            self.reset()
        self._last = (ledger, entry_id)
        if entry.size > self._budget.max_bytes:
            self.reset()  # too big to keep: the run ends here
            return
        self._bases.append(entry.base_offset)
        self._nexts.append(entry.next_offset)
        self._datas.append(entry.data)
        self._budget.admit(self, entry.base_offset, entry.size)
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def reset(self) -> None:
        live = self._datas[self._head:]
        if live:
            self._budget.used -= sum(len(data) for data in live)
            self._budget.entries -= len(live)
            self._budget.dropped(len(live))
        self._generation += 1
        self._bases = []
        self._nexts = []
        self._datas = []
        self._head = 0
        self._last = None

    def _evict(self, base: int) -> None:
        head = self._head
        if head < len(self._datas) and self._bases[head] == base:
            self._budget.used -= len(self._datas[head])
            self._budget.entries -= 1
            self._datas[head] = None
            self._head = head + 1
            if self._head > 64 and self._head * 2 > len(self._datas):
                del self._datas[:self._head]
                del self._bases[:self._head]
                del self._nexts[:self._head]
                self._head = 0

    def holds(self, offset: int) -> bool:
        """Whether a fetch at `offset` can be answered from the run."""
        return len(self) > 0 and self._bases[self._head] <= offset < self._nexts[-1]

    def take(self, offset: int, max_bytes: int) -> tuple[list, int, int]:
        """Entries from the one holding `offset` (or the next one, inside a gap between
        entries): at most max_bytes, but at least one entry. Returns (parts, size,
        offset after them); ([], 0, offset) when the run does not hold `offset`.
        The parts are `entries.stored_parts` of each entry."""
        if not self.holds(offset):
            return [], 0, offset
        bases, nexts, datas = self._bases, self._nexts, self._datas
        i = bisect_right(bases, offset, self._head) - 1
        if nexts[i] <= offset:  # in the gap after entry i: the next record is in i+1
            i += 1
        parts: list = []
        size = 0
        n = len(datas)
        while i < n:
            data = datas[i]
            entry_size = len(data)
            if parts and size + entry_size > max_bytes:
                break
            parts.extend(stored_parts(bases[i], data))
            size += entry_size
            offset = nexts[i]
            i += 1
        return parts, size, offset

    def wait_future(self, loop):
        """Resolves when the next entry is added."""
        fut = loop.create_future()
        if len(self._waiters) > 16:  # long polls that timed out while nothing was stored
            self._waiters = [w for w in self._waiters if not w.done()]
        self._waiters.append(fut)
        return fut
