"""Consecutive offsets -> Pulsar positions: a bounded sparse index and the binary search behind it.

Sans-io (no pulsar import): the search gets its Pulsar reads as a `probe` coroutine, so
tests drive it with a list standing in for a topic.

A *point* says: the entry at Pulsar position (ledger, entry) starts at Kafka offset
`base`. Points are exact when they come from what this process wrote (receipts) or
read (readers number every message they pass: see offsets_consecutive.py), and from
the partition owners' ledger records in the topic registry.

`locate(offset)` answers an entry start at or before `offset` from which a reader
going forward reaches it: the entry holding `offset` when that entry carries its
own offset (every entry kop_fast writes does), else the last such entry before it
(Pulsar applications' messages carry none; their offsets follow the entry before).
Between the nearest known points below and above, it binary-searches Pulsar:
within a ledger entry ids are contiguous, so it halves the range of entry ids,
reading one entry per step (`probe`: the first entry at or after a position that
carries an offset). The ids of a ledger's entries end where the next ledger
begins; where that end is unknown the range is the whole id space of a ledger
(2^21), and a probe past the end lands in a later ledger, which is then a point
like any other. Cost: log2(entries between the two points) probes, at most
~21 per ledger the search crosses, and the points it learns make the next
search shorter.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

# Entry ids a ledger may hold, for a search whose ledger end is unknown.
LEDGER_ID_SPACE = 1 << 21
MAX_POINTS = 4096


class OffsetIndex:
    """Sorted points (base offset, (ledger, entry)), bounded; ledger starts are kept apart, unbounded
    (one per ledger: a ledger holds up to 50,000 entries in Pulsar's default configuration)."""

    __slots__ = ("_bases", "_positions", "_max", "ledger_ends", "_ledger_bases", "_ledger_positions")

    def __init__(self, max_points: int = MAX_POINTS) -> None:
        self._bases: list[int] = []
        self._positions: list[tuple[int, int]] = []
        self._max = max_points
        # ledger -> its last entry id, where known (owners' ledger records, the partition's last entry)
        self.ledger_ends: dict[int, int] = {}
        self._ledger_bases: list[int] = []
        self._ledger_positions: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return len(self._bases)

    def add(self, ledger: int, entry: int, base: int) -> None:
        pinned = _at(self._ledger_bases, self._ledger_positions, (ledger, entry))
        if pinned is not None and pinned > base:
            base = pinned
        _insert(self._bases, self._positions, (ledger, entry), base)
        if len(self._bases) > self._max:
            self._thin()

    def add_ledger_start(self, ledger: int, entry: int, base: int,
                         previous: tuple[int, int] | None = None) -> None:
        _insert(self._ledger_bases, self._ledger_positions, (ledger, entry), base)
        if previous is not None and previous[0] < ledger:
            self.note_ledger_end(*previous)

    def note_ledger_end(self, ledger: int, entry: int) -> None:
        if entry > self.ledger_ends.get(ledger, -1):
            self.ledger_ends[ledger] = entry

    def _thin(self) -> None:
        """Every other point of the older half goes (the newest, where reads and writes are, stay)."""
        half = len(self._bases) // 2
        keep = list(range(0, half, 2)) + list(range(half, len(self._bases)))
        self._bases = [self._bases[i] for i in keep]
        self._positions = [self._positions[i] for i in keep]

    def floor(self, offset: int) -> tuple[int, int, int] | None:
        """(ledger, entry, base) of the known entry start with the largest base <= offset."""
        best = None
        for bases, positions in ((self._bases, self._positions), (self._ledger_bases, self._ledger_positions)):
            i = bisect_right(bases, offset) - 1
            if i >= 0 and (best is None or bases[i] > best[2]):
                best = (*positions[i], bases[i])
        return best

    def above(self, offset: int) -> tuple[int, int, int] | None:
        """(ledger, entry, base) of the known entry start with the smallest base > offset."""
        best = None
        for bases, positions in ((self._bases, self._positions), (self._ledger_bases, self._ledger_positions)):
            i = bisect_right(bases, offset)
            if i < len(bases) and (best is None or bases[i] < best[2]):
                best = (*positions[i], bases[i])
        return best

    def before_position(self, position: tuple[int, int]) -> tuple[int, int, int] | None:
        """The known point with the largest position < `position`."""
        best = None
        for bases, positions in ((self._bases, self._positions), (self._ledger_bases, self._ledger_positions)):
            i = bisect_left(positions, position) - 1
            if i >= 0 and (best is None or positions[i] > best[:2]):
                best = (*positions[i], bases[i])
        return best

    def point_at(self, ledger: int, entry: int) -> int | None:
        """The base offset known for the entry at (ledger, entry), or None."""
        known = [b for b in (_at(self._bases, self._positions, (ledger, entry)),
                             _at(self._ledger_bases, self._ledger_positions, (ledger, entry))) if b is not None]
        return max(known) if known else None

    def first(self) -> tuple[int, int, int] | None:
        best = None
        for bases, positions in ((self._bases, self._positions), (self._ledger_bases, self._ledger_positions)):
            if bases and (best is None or positions[0] < best[:2]):
                best = (*positions[0], bases[0])
        return best


def _at(bases: list, positions: list, position: tuple[int, int]) -> int | None:
    i = bisect_left(positions, position)
    return bases[i] if i < len(positions) and positions[i] == position else None


def _insert(bases: list, positions: list, position: tuple[int, int], base: int) -> None:
    """Insert keeping both lists ascending; a point that contradicts the new one goes."""
    if not positions or position > positions[-1]:
        while bases and bases[-1] > base:  # contradicts the new point: the newer answer wins
            bases.pop()
            positions.pop()
        bases.append(base)
        positions.append(position)
        return
    i = bisect_left(positions, position)
    if i < len(positions) and positions[i] == position:
        if base > bases[i]:  # a stamp is a lower bound of the offset derived from the log
            bases[i] = base
        return
    if (i > 0 and bases[i - 1] > base) or (i < len(bases) and bases[i] < base):
        return  # out of order with its neighbours: keep what is there
    bases.insert(i, base)
    positions.insert(i, position)


async def locate(index: OffsetIndex, offset: int, last: tuple[int, int], probe) -> tuple[int, int, int]:
    """(ledger, entry, base) to read forward from to reach `offset` (see the module docstring).

    `last`: the partition's last entry (exclusive search bound when no point lies above);
    `probe(ledger, entry, before)`: the first entry at or after (ledger, entry) and before
    position `before` that carries its own offset, as (ledger, entry, base), or None.
    The index must know at least one point at or below `offset` (the log start)."""
    lo = index.floor(offset)
    if lo is None:
        raise LookupError(f"no known entry at or before offset {offset}")
    above = index.above(offset)
    hi = above[:2] if above is not None else (last[0], last[1] + 1)
    while True:
        ledger, entry, _ = lo
        if ledger == hi[0]:
            top = hi[1]
        else:
            end = index.ledger_ends.get(ledger)
            top = end + 1 if end is not None else LEDGER_ID_SPACE
        if entry + 1 >= top:
            if ledger == hi[0]:
                return lo
            # The ledger ends after `lo`: the next entry is the first of a later ledger.
            found = _known(index, await probe(ledger, entry + 1, hi))
            if found is None or found[2] > offset:
                return lo
            index.add(*found)
            lo = found
            continue
        mid = (entry + 1 + top) // 2
        found = _known(index, await probe(ledger, mid, hi))
        if found is None or found[2] > offset:
            if found is not None:
                index.add(*found)
            hi = (ledger, mid)
        else:
            index.add(*found)
            lo = found


def _known(index: OffsetIndex, found):
    """A probed entry at the larger of its stamp and what the index knows for it (an owner's correction)."""
    if found is None:
        return None
    known = index.point_at(found[0], found[1])
    return found if known is None or known <= found[2] else (found[0], found[1], known)
