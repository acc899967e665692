"""In-memory table of one group's committed offsets, with Kafka's pending-commit and retention
semantics.

A commit goes through two steps, as in Kafka's ``GroupMetadata``:

1. :meth:`OffsetTable.prepare` marks the partitions *pending* while the commit record is being
   written (a pending partition is reported as ``UNSTABLE_OFFSET_COMMIT`` to an OffsetFetch that
   asks for stable offsets, and never expires);
2. :meth:`OffsetTable.complete` makes the offset visible once the record is durable, or
   :meth:`OffsetTable.fail` drops the pending mark if the write failed.

Every commit carries a *sequence number* (the id of the write that persists it; ids grow in the
order writes are appended). When two commits for one partition are in flight and their writes
complete out of order, the one appended later wins, which is what a reader replaying the log would
see; Kafka uses the record's log offset for the same purpose.

Retention (KIP-211) is decided by the group (it knows its state and subscriptions); this table
only applies the rule it is given in :meth:`OffsetTable.remove_expired`.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable, Collection, Iterable, Iterator

__all__ = ["TopicPartition", "OffsetAndMetadata", "OffsetTable"]

TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class OffsetAndMetadata:
    """A committed offset as Kafka stores it."""

    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp_ms: int = -1
    # Only set by old OffsetCommit versions (v2-v4) that sent a retention time; then the offset
    # expires at this absolute time whatever the group's state (pre-KIP-211 semantics).
    expire_timestamp_ms: int | None = None


class OffsetTable:
    __slots__ = ("_committed", "_pending")

    def __init__(self) -> None:
        # partition -> (committed offset, sequence of the write that persisted it; 0 = replayed)
        self._committed: dict[TopicPartition, tuple[OffsetAndMetadata, int]] = {}
        # partition -> sequence of the newest commit still being written
        self._pending: dict[TopicPartition, int] = {}

    # ----------------------------------------------------------------------------------- reads

    def __len__(self) -> int:
        return len(self._committed)

    def __contains__(self, tp: object) -> bool:
        return tp in self._committed

    def get(self, tp: TopicPartition) -> OffsetAndMetadata | None:
        entry = self._committed.get(tp)
        return None if entry is None else entry[0]

    def items(self) -> Iterator[tuple[TopicPartition, OffsetAndMetadata]]:
        for tp, (oam, _) in self._committed.items():
            yield tp, oam

    def as_dict(self) -> dict[TopicPartition, OffsetAndMetadata]:
        return {tp: oam for tp, (oam, _) in self._committed.items()}

    def has_pending(self, tp: TopicPartition) -> bool:
        return tp in self._pending

    def has_offsets(self) -> bool:
        """True if anything is committed or being committed (Kafka's ``hasOffsets``)."""
        return bool(self._committed) or bool(self._pending)

    # ------------------------------------------------------------------------------ commit flow

    def prepare(self, tps: Iterable[TopicPartition], seq: int) -> None:
        for tp in tps:
            self._pending[tp] = seq

    def complete(self, tp: TopicPartition, oam: OffsetAndMetadata, seq: int) -> bool:
        """The write ``seq`` persisting ``oam`` succeeded; returns True if it became visible.

        A partition that is no longer pending was deleted (OffsetDelete / DeleteGroups) while the
        write was in flight; its later tombstone wins, so the commit is not applied (as in Kafka).
        """
        applied = False
        if tp in self._pending:
            current = self._committed.get(tp)
            if current is None or current[1] < seq:
                self._committed[tp] = (oam, seq)
                applied = True
            if self._pending.get(tp) == seq:
                del self._pending[tp]
        return applied

    def fail(self, tp: TopicPartition, seq: int) -> None:
        if self._pending.get(tp) == seq:
            del self._pending[tp]

    # ------------------------------------------------------------------------------- replaying

    def load(self, tp: TopicPartition, oam: OffsetAndMetadata) -> None:
        """Install an offset replayed from the log (it is durable by definition)."""
        self._committed[tp] = (oam, 0)

    # -------------------------------------------------------------------------------- removals

    def remove(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, OffsetAndMetadata]:
        """Remove the given partitions (committed and pending); returns what was committed."""
        removed: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp in tps:
            self._pending.pop(tp, None)
            entry = self._committed.pop(tp, None)
            if entry is not None:
                removed[tp] = entry[0]
        return removed

    def remove_all(self) -> dict[TopicPartition, OffsetAndMetadata]:
        return self.remove(list(self._committed) + list(self._pending))

    def remove_expired(
        self,
        now_ms: int,
        retention_ms: int,
        base_timestamp: Callable[[OffsetAndMetadata], int],
        exclude_topics: Collection[str] = (),
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """Remove and return the offsets that have expired (Kafka's ``getExpiredOffsets``).

        An offset expires when it is not pending, its topic is not in ``exclude_topics``, and
        either it has an explicit expiry time that has passed, or ``retention_ms`` has elapsed
        since ``base_timestamp(offset)``.
        """
        expired: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, (oam, _) in self._committed.items():
            if tp in self._pending or tp[0] in exclude_topics:
                continue
            if oam.expire_timestamp_ms is not None:
                if now_ms >= oam.expire_timestamp_ms:
                    expired[tp] = oam
            elif now_ms - base_timestamp(oam) >= retention_ms:
                expired[tp] = oam
        for tp in expired:
            del self._committed[tp]
        return expired
