"""Consecutive offsets: the sparse index, the binary search over entry ids, and the numbering rule.

A fake topic (a list of ledgers, each a list of entries with a stamp or None and a
record count) stands in for Pulsar: `probe` reads it like a one-off reader would.
"""

from __future__ import annotations

import asyncio
import math
import random

import pytest

from kop_fast.storage.pulsar.offset_index import LEDGER_ID_SPACE, OffsetIndex, locate
from kop_fast.storage.pulsar.offsets_consecutive import Sequencer

pytest.importorskip("_pulsar")


class FakeTopic:
    """Ledgers of entries: (stamp or None, record count, is a Kafka batch)."""

    def __init__(self, ledgers: dict[int, list[tuple]]) -> None:
        self.ledgers = ledgers
        self.reads = 0

    def positions(self):
        for ledger in sorted(self.ledgers):
            for entry, item in enumerate(self.ledgers[ledger]):
                yield (ledger, entry), item

    def numbered(self) -> list[tuple]:
        """(position, offset, count) of every entry by the rule: max(stamp, previous end), or the previous end."""
        out, end = [], 0
        for position, (stamp, count, _) in self.positions():
            base = end if stamp is None else max(stamp, end)
            out.append((position, base, count))
            end = base + count
        return out

    def last(self) -> tuple[int, int]:
        ledger = max(self.ledgers)
        return ledger, len(self.ledgers[ledger]) - 1

    async def probe(self, ledger: int, entry: int, before: tuple[int, int]):
        self.reads += 1
        for position, (stamp, _count, _) in self.positions():
            if position < (ledger, entry):
                continue
            if position >= before:
                return None
            if stamp is not None:
                return (*position, stamp)
        return None


def kop_entries(counts, start=0):
    out, offset = [], start
    for n in counts:
        out.append((offset, n, True))
        offset += n
    return out, offset


def run(coro):
    return asyncio.run(coro)


def entry_holding(numbered, offset):
    return max((p for p in numbered if p[1] <= offset), key=lambda p: p[1])


def test_index_floor_and_above_and_thinning():
    index = OffsetIndex(max_points=8)
    for i in range(20):
        index.add(1, i, i * 10)
    assert len(index) <= 8
    assert index.floor(195) == (1, 19, 190)
    assert index.above(185) == (1, 19, 190)
    assert index.floor(-1) is None
    point = index.floor(55)
    assert point[2] <= 55 and point[1] == point[2] // 10  # what survived thinning is still exact


def test_a_stamp_never_lowers_what_is_known():
    index = OffsetIndex()
    index.add(3, 5, 100)
    index.add(3, 5, 90)  # a probe reads a lower stamp of an entry whose real offset is known
    assert index.point_at(3, 5) == 100
    index.add_ledger_start(3, 7, 140)  # pinned (an owner's correction)
    index.add(3, 7, 130)
    assert index.point_at(3, 7) == 140


@pytest.mark.parametrize("seed", range(5))
def test_locate_finds_the_entry_holding_the_offset_in_log_reads(seed):
    rng = random.Random(seed)
    counts = [rng.choice([1, 1, 2, 5, 100]) for _ in range(5000)]
    entries, end = kop_entries(counts)
    topic = FakeTopic({7: entries})
    numbered = topic.numbered()
    for _ in range(30):
        target = rng.randrange(end)
        index = OffsetIndex()
        index.add(7, 0, 0)  # the log start, as bounds() learns it
        topic.reads = 0
        ledger, entry, base = run(locate(index, target, topic.last(), topic.probe))
        assert ((ledger, entry), base) == entry_holding(numbered, target)[:2]
        assert topic.reads <= math.ceil(math.log2(len(entries))) + 1


def test_locate_across_ledgers_with_and_without_ledger_starts():
    ledgers, offset = {}, 0
    for ledger in (3, 9, 12, 40):  # ledger ids of one topic are increasing, not contiguous
        ledgers[ledger], offset = kop_entries([3] * 1000, offset)
    topic = FakeTopic(ledgers)
    numbered = topic.numbered()
    target = 3 * 2500 + 1  # in ledger 12
    reads_blind = None
    for known in (False, True):
        index = OffsetIndex()
        index.add(3, 0, 0)
        if known:
            for ledger, previous in ((9, (3, 999)), (12, (9, 999)), (40, (12, 999))):
                index.add_ledger_start(ledger, 0, numbered[[p[0] for p in numbered].index((ledger, 0))][1], previous)
        topic.reads = 0
        found = run(locate(index, target, topic.last(), topic.probe))
        assert ((found[0], found[1]), found[2]) == entry_holding(numbered, target)[:2]
        if known:
            assert topic.reads <= math.ceil(math.log2(1000)) + 1  # one ledger's ids
            assert topic.reads < reads_blind
        else:
            reads_blind = topic.reads
            assert reads_blind <= 3 * (math.log2(LEDGER_ID_SPACE) + 1)


def test_pulsar_applications_messages_continue_the_sequence_and_locate_starts_before_them():
    entries, end = kop_entries([10, 10])
    foreign = [(None, 1, False), (None, 3, False)]  # a single message, a batch of 3
    more = [(end + 4, 5, True)]  # the owner relearned the end: stamped after them
    topic = FakeTopic({1: entries + foreign + more})
    numbered = topic.numbered()
    assert [(p[1], p[2]) for p in numbered] == [(0, 10), (10, 10), (20, 1), (21, 3), (24, 5)]
    index = OffsetIndex()
    index.add(1, 0, 0)
    # Offset 22 is inside the Pulsar batch: the read starts at the last stamped entry before it.
    assert run(locate(index, 22, topic.last(), topic.probe)) == (1, 1, 10)
    assert run(locate(index, 26, topic.last(), topic.probe)) == (1, 4, 24)


def test_a_low_stamp_after_an_interleaved_write_is_numbered_after_it():
    # The owner stamped 20 not knowing a Pulsar application's message took offset 20.
    topic = FakeTopic({1: [(0, 20, True), (None, 1, False), (20, 5, True), (25, 5, True)]})
    assert [(p[1], p[2]) for p in topic.numbered()] == [(0, 20), (20, 1), (21, 5), (26, 5)]


class Msg:
    def __init__(self, properties, data=b"", key=None):
        self._properties = properties
        self._data = data
        self._key = key

    def properties(self):
        return self._properties

    def data(self):
        return self._data

    def partition_key(self):
        return self._key

    def has_null_value(self):
        return False

    def event_timestamp(self):
        return 5

    def publish_timestamp(self):
        return 6


def test_sequencer_numbers_by_the_rule_and_notes_ledger_starts():
    from kop_fast import codec

    batch = codec.encode_batch([codec.Record(i, 1, None, b"v", ()) for i in range(4)])
    kafka = {"kafka.format": "v2", "kafka.records": "4"}
    seq = Sequencer(0)
    items = [
        seq.convert(Msg({**kafka, "kafka.offset": "0"}, batch), (2, 0, -1)),
        seq.convert(Msg({}, b"p0"), (2, 1, 0)),          # a Pulsar batch of two messages
        seq.convert(Msg({}, b"p1"), (2, 1, 1)),
        seq.convert(Msg({**kafka, "kafka.offset": "5"}, batch), (2, 2, -1)),  # stamped low
        seq.convert(Msg({**kafka, "kafka.offset": "20"}, batch), (5, 0, -1)),  # a gap (a failed append)
    ]
    assert [(i.base_offset, i.next_offset) for i in items] == [(0, 4), (4, 5), (5, 6), (6, 10), (20, 24)]
    assert [r.offset for r in items[3].records()] == [6, 7, 8, 9]
    assert items[1].records()[0].headers == ()
    assert seq.take_points() == [(2, 0, 0), (5, 0, 20)]
