"""The test harness of the consumer-group state machine: a :class:`Harness` drives one
:class:`~kop_fast.coordinator.PartitionGroups` with a FakeClock.

The Harness delivers completions, persists writes (or holds them when auto_persist=False) and
asserts that no waiter is ever answered twice.
"""

from __future__ import annotations

import itertools
import struct

from kop_fast.coordinator import (
    FakeClock,
    GroupConfig,
    GroupState,
    HeartbeatRequest,
    JoinRequest,
    LeaveMember,
    LeaveRequest,
    OffsetCommitPartition,
    OffsetCommitRequest,
    PartitionGroups,
    PendingWrite,
    SyncRequest,
)
from kop_fast.coordinator import records as rec
from kop_fast.protocol.errors import ErrorCode

__all__ = ["Harness", "W", "sub"]

E = ErrorCode


def sub(*topics: str) -> bytes:
    """A ConsumerProtocolSubscription v0: version, topics, null user data."""
    b = struct.pack(">hi", 0, len(topics))
    for t in topics:
        b += struct.pack(">h", len(t)) + t.encode()
    return b + struct.pack(">i", -1)


class W:
    """A waiter token with a readable name."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"W({self.name})"


class Harness:
    def __init__(self, auto_persist: bool = True, **config) -> None:
        self.clock = FakeClock(1_000_000)
        counter = itertools.count()
        self.partition = PartitionGroups(GroupConfig(**config), id_factory=lambda: f"u{next(counter)}")
        self.answers: dict[W, object] = {}
        self.auto_persist = auto_persist
        self.pending: list[PendingWrite] = []
        self.log: list[rec.Record] = []  # durably written records, in order
        self._n = itertools.count()

    @property
    def now(self) -> int:
        return self.clock.now_ms()

    def group(self, gid: str = "g"):
        return self.partition.get(gid)

    def dispatch(self, out):
        for w, r in out.completions:
            assert w not in self.answers, f"{w} answered twice"
            self.answers[w] = r
        for write in out.writes:
            if self.auto_persist:
                self.persist(write)
            else:
                self.pending.append(write)
        return out

    def persist(self, write: PendingWrite, error: int = ErrorCode.none) -> None:
        if error == ErrorCode.none:
            self.log.extend(write.records)
        self.dispatch(self.partition.complete_write(write, error, self.now))

    def persist_pending(self, error: int = ErrorCode.none) -> None:
        writes, self.pending = self.pending, []
        for write in writes:
            self.persist(write, error)

    def waiter(self, name: str) -> W:
        return W(f"{name}#{next(self._n)}")

    def answer(self, w: W):
        return self.answers.get(w)

    def advance(self, ms: int) -> None:
        self.clock.advance(ms)
        self.dispatch(self.partition.tick(self.now))

    def advance_until(self, cond, step: int = 500, limit: int = 600_000) -> None:
        waited = 0
        while not cond():
            assert waited < limit, "condition never became true"
            self.advance(step)
            waited += step

    # -------------------------------------------------------------------- requests

    def join(
        self,
        member_id: str = "",
        *,
        group: str = "g",
        client: str = "c",
        instance: str | None = None,
        protocols=None,
        protocol_type: str = "consumer",
        session: int = 10_000,
        rebalance: int = 30_000,
        require_known: bool | None = None,
        skip: bool = False,
    ) -> W:
        if protocols is None:
            protocols = [("range", sub("t1"))]
        if require_known is None:
            require_known = instance is None  # what a v4+ client implies
        w = self.waiter(f"join-{client}")
        req = JoinRequest(
            group,
            member_id,
            client,
            "/127.0.0.1",
            session,
            rebalance,
            protocol_type,
            protocols,
            group_instance_id=instance,
            require_known_member_id=require_known,
            supports_skip_assignment=skip,
        )
        self.dispatch(self.partition.join(req, w, self.now))
        return w

    def member_id_for(self, client: str, group: str = "g", **kw) -> str:
        """The KIP-394 first round trip: returns the id handed out with MEMBER_ID_REQUIRED."""
        r = self.answer(self.join("", group=group, client=client, **kw))
        assert r.error_code == E.member_id_required
        assert r.member_id.startswith(client + "-")
        return r.member_id

    def sync(self, member_id: str, generation: int, assignments=(), group: str = "g", **kw) -> W:
        w = self.waiter("sync")
        self.dispatch(self.partition.sync(SyncRequest(group, generation, member_id, assignments, **kw), w, self.now))
        return w

    def heartbeat(self, member_id: str, generation: int, group: str = "g", instance: str | None = None) -> int:
        return self.partition.heartbeat(HeartbeatRequest(group, generation, member_id, instance), self.now).error_code

    def leave(self, *members: LeaveMember, group: str = "g") -> W:
        w = self.waiter("leave")
        self.dispatch(self.partition.leave(LeaveRequest(group, list(members)), w, self.now))
        return w

    def commit(self, offsets: dict, generation: int = -1, member_id: str = "", group: str = "g", **kw) -> W:
        parts = [
            OffsetCommitPartition(t, p, *(v if isinstance(v, tuple) else (v,))) for (t, p), v in offsets.items()
        ]
        w = self.waiter("commit")
        self.dispatch(
            self.partition.commit_offsets(
                OffsetCommitRequest(group, parts, generation_id=generation, member_id=member_id, **kw), w, self.now
            )
        )
        return w

    # ------------------------------------------------------------------ scenarios

    def _join_dynamic_members(self, n: int, group: str, **kw) -> tuple[list[str], list[W]]:
        """n dynamic members (v4 flow) through the join phase; returns their ids and JoinGroups."""
        ids, joins = [], []
        for i in range(n):
            mid = self.member_id_for(f"c{i}", group=group, **kw)
            ids.append(mid)
            joins.append(self.join(mid, client=f"c{i}", group=group, **kw))
        self.advance_until(lambda: all(self.answer(w) for w in joins))
        return ids, joins

    def joined_group(self, n: int = 2, group: str = "g", **kw) -> list[str]:
        """n dynamic members through the join phase (CompletingRebalance, generation 1)."""
        return self._join_dynamic_members(n, group, **kw)[0]

    def stable_group(self, n: int = 2, group: str = "g", **kw) -> tuple[list[str], int]:
        """n dynamic members (v4 flow) joined, synced and Stable; returns (member ids, generation)."""
        ids, joins = self._join_dynamic_members(n, group, **kw)
        gen = self.answer(joins[0]).generation_id
        leader = self.answer(joins[0]).leader
        syncs = [
            self.sync(mid, gen, {m: f"assign-{m}".encode() for m in ids} if mid == leader else (), group=group)
            for mid in ids
        ]
        assert all(self.answer(w).error_code == E.none for w in syncs)
        assert self.group(group).state is GroupState.STABLE
        return ids, gen

    def static_pair(self, *, sync: bool = True, **kw) -> tuple[W, W]:
        """Static members i-a (client ca, the leader) and i-b (client cb) through the join phase
        of generation 1; returns their JoinGroups. With ``sync``, both then send SyncGroup, the
        leader assigning b"A" to itself and b"B" to i-b."""
        ja = self.join(client="ca", instance="i-a", **kw)
        jb = self.join(client="cb", instance="i-b", **kw)
        self.advance_until(lambda: self.answer(ja) and self.answer(jb))
        if sync:
            a, b = self.answer(ja).member_id, self.answer(jb).member_id
            self.sync(a, 1, {a: b"A", b: b"B"}, group_instance_id="i-a")
            self.sync(b, 1, group_instance_id="i-b")
        return ja, jb
