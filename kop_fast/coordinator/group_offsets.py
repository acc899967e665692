"""The offset requests of a group: OffsetCommit, OffsetFetch, OffsetDelete (KIP-496), and
offset retention (KIP-211). The offsets themselves are in the group's
:class:`~kop_fast.coordinator.offsets.OffsetTable`."""

from __future__ import annotations

from typing import Any
from collections.abc import Mapping

from kop_fast.protocol.errors import ErrorCode

from . import records as rec
from .errors import group_store_error, offset_commit_store_error
from .group_base import COMPLETING, CONSUMER_PROTOCOL_TYPE, DEAD, EMPTY, PREPARING, STABLE, GroupBase
from .messages import UNKNOWN_MEMBER_ID, Output, commit_error_response
from .messages import OffsetCommitPartitionResult, OffsetCommitRequest, OffsetCommitResponse
from .messages import OffsetDeletePartitionResult, OffsetDeleteRequest, OffsetDeleteResponse
from .messages import OffsetFetchPartitionResult, OffsetFetchRequest, OffsetFetchResponse
from .offsets import OffsetAndMetadata, TopicPartition

__all__ = ["GroupOffsets"]


def _java_length(s: str) -> int:
    """``String.length()`` in Java: UTF-16 code units (what offset.metadata.max.bytes limits)."""
    return len(s) if s.isascii() else len(s.encode("utf-16-le")) // 2


class GroupOffsets(GroupBase):
    """OffsetCommit, OffsetFetch, OffsetDelete and retention of a group."""

    def commit_offsets(self, req: OffsetCommitRequest, waiter: Any, now_ms: int) -> Output:
        error = self._validate_offset_commit(req)
        if error is None:
            if self.state is COMPLETING:
                # The member knows the new generation from its JoinGroup response but has not
                # synced yet; its commit would belong to an assignment it does not have.
                error = ErrorCode.rebalance_in_progress
            elif self.state in (STABLE, PREPARING):
                # Commits are still allowed while preparing: the member learns about the
                # rebalance from its next heartbeat. A commit also proves liveness.
                self._schedule_heartbeat(self.members[req.member_id], now_ms)
        if error is not None:
            return Output.of(waiter, commit_error_response(req, error))
        out = Output()
        self._store_offsets(req, waiter, now_ms, out)
        return out

    def _validate_offset_commit(self, req: OffsetCommitRequest) -> int | None:
        if self.state is DEAD:
            return ErrorCode.coordinator_not_available
        if req.generation_id < 0 and self.state is EMPTY:
            # Admin client or a consumer not using group management.
            return None
        if req.generation_id >= 0 or req.member_id != UNKNOWN_MEMBER_ID or req.group_instance_id is not None:
            error = self._validate_current_member(req.member_id, req.group_instance_id)
            if error is not None:
                return error
            if req.generation_id != self.generation_id:
                return ErrorCode.illegal_generation
            return None
        # A "simple" commit into a group that has members: only members may commit.
        return ErrorCode.unknown_member_id

    def _store_offsets(self, req: OffsetCommitRequest, waiter: Any, now: int, out: Output) -> None:
        expire_ts = None if req.retention_time_ms == -1 else now + req.retention_time_ms
        max_len = self.config.offset_metadata_max_bytes
        order: dict[TopicPartition, None] = {}
        valid: dict[TopicPartition, OffsetAndMetadata] = {}
        for p in req.partitions:
            tp = (p.topic, p.partition)
            order[tp] = None
            metadata = "" if p.metadata is None else p.metadata
            if _java_length(metadata) > max_len:
                valid.pop(tp, None)
                continue
            valid[tp] = OffsetAndMetadata(
                offset=p.offset,
                leader_epoch=p.leader_epoch,
                metadata=metadata,
                commit_timestamp_ms=now if p.commit_timestamp_ms == -1 else p.commit_timestamp_ms,
                expire_timestamp_ms=expire_ts,
            )

        def respond(error_for_valid: int, out_: Output) -> None:
            results = [
                OffsetCommitPartitionResult(
                    tp[0], tp[1], error_for_valid if tp in valid else ErrorCode.offset_metadata_too_large
                )
                for tp in order
            ]
            out_.respond(waiter, OffsetCommitResponse(ErrorCode.none, results))

        if not valid:
            respond(ErrorCode.none, out)
            return

        def on_done(error: int, now2: int, out2: Output) -> None:
            error = offset_commit_store_error(error)
            ok = error == ErrorCode.none
            if self.state is not DEAD:
                for tp, oam in valid.items():
                    if ok:
                        self.offsets.complete(tp, oam, seq)
                    else:
                        self.offsets.fail(tp, seq)
            respond(error, out2)

        records = [rec.offset_commit_record(self.group_id, t, p, oam) for (t, p), oam in valid.items()]
        write = self._write(out, records, on_done, affects_timers=False)
        seq = write.write_id  # read by on_done, which only runs once the write completes
        self.offsets.prepare(valid, seq)

    def fetch_offsets(self, req: OffsetFetchRequest) -> OffsetFetchResponse:
        """Committed offsets, whatever the group's state (groups may use Kafka only for offset
        storage). Unknown partitions get offset -1, leader epoch -1, metadata ""."""
        results: list[OffsetFetchPartitionResult] = []
        dead = self.state is DEAD
        if req.partitions is None:
            if not dead:
                for tp, oam in self.offsets.items():
                    results.append(self._fetch_one(tp, oam, req.require_stable))
        else:
            for tp in req.partitions:
                tp = (tp[0], tp[1])
                results.append(self._fetch_one(tp, None if dead else self.offsets.get(tp), req.require_stable))
        return OffsetFetchResponse(ErrorCode.none, results)

    def _fetch_one(
        self, tp: TopicPartition, oam: OffsetAndMetadata | None, require_stable: bool
    ) -> OffsetFetchPartitionResult:
        if require_stable and self.offsets.has_pending(tp):
            return OffsetFetchPartitionResult(tp[0], tp[1], error_code=ErrorCode.unstable_offset_commit)
        if oam is None:
            return OffsetFetchPartitionResult(tp[0], tp[1])
        return OffsetFetchPartitionResult(tp[0], tp[1], oam.offset, oam.leader_epoch, oam.metadata)

    def delete_offsets(self, req: OffsetDeleteRequest, waiter: Any, now_ms: int) -> Output:
        """OffsetDelete (KIP-496). Answered once the tombstones are written."""
        tps = list(dict.fromkeys((t, p) for t, p in req.partitions))
        errors: dict[TopicPartition, int] = {}
        if self.state is DEAD:
            return Output.of(waiter, OffsetDeleteResponse(ErrorCode.group_id_not_found))
        if self.state is EMPTY:
            eligible = tps
        elif self.is_consumer_group():
            eligible = []
            for tp in tps:
                if self.is_subscribed_to_topic(tp[0]):
                    errors[tp] = ErrorCode.group_subscribed_to_topic
                else:
                    eligible.append(tp)
        else:
            return Output.of(waiter, OffsetDeleteResponse(ErrorCode.non_empty_group))

        # As in Kafka, the cleanup (which may kill an Empty group left without offsets) only
        # runs when some partition was eligible.
        records = self._cleanup(self.offsets.remove(eligible), now_ms) if eligible else []

        def respond(error: int, out_: Output) -> None:
            results = [
                OffsetDeletePartitionResult(t, p, errors.get((t, p), error)) for t, p in tps
            ]
            out_.respond(waiter, OffsetDeleteResponse(ErrorCode.none, results))

        out = Output()
        if records:
            self._write(out, records, lambda error, now2, out2: respond(group_store_error(error), out2))
        else:
            respond(ErrorCode.none, out)
        return out

    def expire_offsets(self, now_ms: int) -> list[rec.Record]:
        """Remove offsets past retention (KIP-211) and return the tombstones to write. A group
        left Empty without offsets becomes Dead (its metadata tombstone is included)."""
        if self.state is DEAD:
            return []
        retention = self.config.offsets_retention_ms
        if self.protocol_type is not None and self.state is EMPTY:
            # Nobody consumes: the clock starts when the group became Empty (or, for metadata
            # written before that time was recorded, at the commit).
            state_ts = self.state_timestamp_ms
            expired = self.offsets.remove_expired(
                now_ms, retention, lambda o: state_ts if state_ts is not None else o.commit_timestamp_ms
            )
        elif self.protocol_type == CONSUMER_PROTOCOL_TYPE and self.subscribed_topics is not None:
            # Active consumer group: only offsets of topics nobody subscribes to any more expire,
            # counted from their last commit.
            expired = self.offsets.remove_expired(
                now_ms, retention, lambda o: o.commit_timestamp_ms, self.subscribed_topics
            )
        elif self.protocol_type is None:
            # A "simple" group that only stores offsets.
            expired = self.offsets.remove_expired(now_ms, retention, lambda o: o.commit_timestamp_ms)
        else:
            expired = {}
        return self._cleanup(expired, now_ms)

    def _cleanup(self, removed: Mapping[TopicPartition, OffsetAndMetadata], now: int) -> list[rec.Record]:
        """Kafka's cleanupGroupMetadata: tombstones for removed offsets, and a group with neither
        members nor offsets dies."""
        records = [rec.offset_commit_record(self.group_id, t, p, None) for t, p in removed]
        if self.state is EMPTY and not self.offsets.has_offsets():
            self._transition(DEAD, now)
            if self.generation_id > 0:  # generation 0 groups never wrote metadata (offsets only)
                records.append(rec.group_metadata_record(self.group_id, None))
        return records

