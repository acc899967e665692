"""The consumer-group state machine, driven through GroupManager with a FakeClock.

The Harness delivers completions, persists writes (or holds them when auto_persist=False) and
asserts that no waiter is ever answered twice.
"""

from __future__ import annotations

import itertools
import struct
import subprocess
import sys
import textwrap
from pathlib import Path


from kop_fast.coordinator import (
    ErrorCode,
    FakeClock,
    GroupConfig,
    GroupManager,
    GroupState,
    HeartbeatRequest,
    JoinRequest,
    LeaveMember,
    LeaveRequest,
    OffsetCommitPartition,
    OffsetCommitRequest,
    PendingWrite,
    SyncRequest,
)
from kop_fast.coordinator import records as rec

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
        self.mgr = GroupManager(GroupConfig(**config), id_factory=lambda: f"u{next(counter)}")
        self.answers: dict[W, object] = {}
        self.auto_persist = auto_persist
        self.pending: list[PendingWrite] = []
        self.log: list[rec.Record] = []  # durably written records, in order
        self._n = itertools.count()

    @property
    def now(self) -> int:
        return self.clock.now_ms()

    def group(self, gid: str = "g"):
        return self.mgr.get(gid)

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

    def persist(self, write: PendingWrite, error: int = ErrorCode.NONE) -> None:
        if error == ErrorCode.NONE:
            self.log.extend(write.records)
        self.dispatch(self.mgr.complete_write(write, error, self.now))

    def persist_pending(self, error: int = ErrorCode.NONE) -> None:
        writes, self.pending = self.pending, []
        for write in writes:
            self.persist(write, error)

    def waiter(self, name: str) -> W:
        return W(f"{name}#{next(self._n)}")

    def answer(self, w: W):
        return self.answers.get(w)

    def advance(self, ms: int) -> None:
        self.clock.advance(ms)
        self.dispatch(self.mgr.tick(self.now))

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
        self.dispatch(self.mgr.join(req, w, self.now))
        return w

    def member_id_for(self, client: str, group: str = "g", **kw) -> str:
        """The KIP-394 first round trip: returns the id handed out with MEMBER_ID_REQUIRED."""
        r = self.answer(self.join("", group=group, client=client, **kw))
        assert r.error_code == E.MEMBER_ID_REQUIRED
        assert r.member_id.startswith(client + "-")
        return r.member_id

    def sync(self, member_id: str, generation: int, assignments=(), group: str = "g", **kw) -> W:
        w = self.waiter("sync")
        self.dispatch(self.mgr.sync(SyncRequest(group, generation, member_id, assignments, **kw), w, self.now))
        return w

    def heartbeat(self, member_id: str, generation: int, group: str = "g", instance: str | None = None) -> int:
        return self.mgr.heartbeat(HeartbeatRequest(group, generation, member_id, instance), self.now).error_code

    def leave(self, *members: LeaveMember, group: str = "g") -> W:
        w = self.waiter("leave")
        self.dispatch(self.mgr.leave(LeaveRequest(group, list(members)), w, self.now))
        return w

    def commit(self, offsets: dict, generation: int = -1, member_id: str = "", group: str = "g", **kw) -> W:
        parts = [
            OffsetCommitPartition(t, p, *(v if isinstance(v, tuple) else (v,))) for (t, p), v in offsets.items()
        ]
        w = self.waiter("commit")
        self.dispatch(
            self.mgr.commit_offsets(
                OffsetCommitRequest(group, parts, generation_id=generation, member_id=member_id, **kw), w, self.now
            )
        )
        return w

    # ------------------------------------------------------------------ scenarios

    def joined_group(self, n: int = 2, group: str = "g", **kw) -> list[str]:
        """n dynamic members through the join phase (CompletingRebalance, generation 1)."""
        ids, joins = [], []
        for i in range(n):
            mid = self.member_id_for(f"c{i}", group=group, **kw)
            ids.append(mid)
            joins.append(self.join(mid, client=f"c{i}", group=group, **kw))
        self.advance_until(lambda: all(self.answer(w) for w in joins))
        return ids

    def stable_group(self, n: int = 2, group: str = "g", **kw) -> tuple[list[str], int]:
        """n dynamic members (v4 flow) joined, synced and Stable; returns (member ids, generation)."""
        ids, joins = [], []
        for i in range(n):
            mid = self.member_id_for(f"c{i}", group=group, **kw)
            ids.append(mid)
            joins.append(self.join(mid, client=f"c{i}", group=group, **kw))
        self.advance_until(lambda: all(self.answer(w) for w in joins))
        gen = self.answer(joins[0]).generation_id
        leader = self.answer(joins[0]).leader
        syncs = [
            self.sync(mid, gen, {m: f"assign-{m}".encode() for m in ids} if mid == leader else (), group=group)
            for mid in ids
        ]
        assert all(self.answer(w).error_code == E.NONE for w in syncs)
        assert self.group(group).state is GroupState.STABLE
        return ids, gen


# ======================================================================================= basics


def test_single_member_join_sync_heartbeat():
    h = Harness()
    first = h.answer(h.join(client="app"))
    assert first.error_code == E.MEMBER_ID_REQUIRED
    mid = first.member_id
    assert mid == "app-u0"

    w = h.join(mid, client="app")
    assert h.answer(w) is None  # parked for the initial rebalance delay
    assert h.group().state is GroupState.PREPARING_REBALANCE
    assert h.mgr.next_deadline_ms() == h.now + 3000
    h.advance(2999)
    assert h.answer(w) is None
    h.advance(1)
    r = h.answer(w)
    assert (r.error_code, r.generation_id, r.leader, r.member_id) == (E.NONE, 1, mid, mid)
    assert (r.protocol_type, r.protocol_name) == ("consumer", "range")
    assert [(m.member_id, m.metadata) for m in r.members] == [(mid, sub("t1"))]
    assert h.group().state is GroupState.COMPLETING_REBALANCE

    s = h.answer(h.sync(mid, 1, {mid: b"A"}))
    assert (s.error_code, s.assignment, s.protocol_name) == (E.NONE, b"A", "range")
    assert h.group().state is GroupState.STABLE
    # The assignment was persisted before the answer.
    _, value = rec.decode_record(h.log[-1])
    assert value.generation == 1 and value.members[0].assignment == b"A"

    assert h.heartbeat(mid, 1) == E.NONE
    h.advance(9000)
    assert h.heartbeat(mid, 1) == E.NONE  # heartbeats keep the session alive
    h.advance(9000)
    assert h.heartbeat(mid, 1) == E.NONE
    assert h.group().state is GroupState.STABLE


def test_three_members_joining_during_initial_delay_get_one_generation():
    h = Harness()
    ids, joins = [], []
    for i in range(3):
        mid = h.member_id_for(f"c{i}")
        ids.append(mid)
        joins.append(h.join(mid, client=f"c{i}"))
        h.advance(1000)
    # t=3000: the delay expired, but members kept arriving, so it is extended once more.
    assert not any(h.answer(w) for w in joins)
    h.advance(2999)
    assert not any(h.answer(w) for w in joins)
    h.advance(1)
    rs = [h.answer(w) for w in joins]
    assert all(r.error_code == E.NONE for r in rs)
    assert {r.generation_id for r in rs} == {1}
    assert {r.leader for r in rs} == {ids[0]}  # the first member leads
    assert [m.member_id for m in rs[0].members] == ids  # only the leader sees the members
    assert rs[1].members == [] and rs[2].members == []
    assert h.group().generation_id == 1


def test_initial_delay_is_bounded_by_the_rebalance_timeout():
    h = Harness()

    def join(client):
        return h.join(h.member_id_for(client, rebalance=5000), client=client, rebalance=5000)

    joins = [join("c0")]  # t=0: delay until 3000, at most 5000 - 3000 = 2000 ms of extension
    h.advance(1000)
    joins.append(join("c1"))  # t=1000: a new member, so the delay is extended at t=3000 ...
    h.advance(2000)
    assert not any(h.answer(w) for w in joins)
    h.advance(1000)
    joins.append(join("c2"))  # t=4000: ... but only up to t=5000 whatever joins meanwhile
    h.advance(999)
    assert not any(h.answer(w) for w in joins)
    h.advance(1)
    rs = [h.answer(w) for w in joins]
    assert all(r is not None and r.generation_id == 1 for r in rs)
    assert len(rs[0].members) == 3


def test_initial_delay_is_configurable():
    h = Harness(initial_rebalance_delay_ms=0)
    w = h.join(h.member_id_for("a"), client="a")
    h.advance(0)
    assert h.answer(w).generation_id == 1


def test_member_id_required_only_for_v4_plus_dynamic_members():
    h = Harness()
    # v0-v3: no MEMBER_ID_REQUIRED round trip; the member is added with a generated id.
    w = h.join("", client="old", require_known=False)
    assert h.answer(w) is None
    assert list(h.group().members) == ["old-u0"]
    h.advance(3000)
    assert h.answer(w).member_id == "old-u0"
    # A pending id that is never used expires after the session timeout.
    h2 = Harness()
    pending = h2.member_id_for("late", session=7000)
    assert h2.group().is_pending_member(pending)
    h2.advance(7000)
    assert not h2.group().is_pending_member(pending)
    r = h2.answer(h2.join(pending, client="late"))
    assert r.error_code == E.UNKNOWN_MEMBER_ID


def test_pending_member_delays_the_end_of_a_rebalance_until_it_joins():
    h = Harness()
    (a, b), gen = h.stable_group(2)
    c = h.member_id_for("c2")
    assert h.group().state is GroupState.STABLE  # asking for an id alone changes nothing
    ja = h.join(a, client="c0")  # leader rejoin: rebalance
    jb = h.join(b, client="c1")
    # Every member rejoined, but the id handed to c2 is still expected.
    assert h.answer(ja) is None and h.answer(jb) is None
    jc = h.join(c, client="c2")
    assert all(h.answer(w).generation_id == gen + 1 for w in (ja, jb, jc))
    assert [m.member_id for m in h.answer(ja).members] == [a, b, c]


def test_member_leaving_triggers_rebalance_and_rest_get_new_generation():
    h = Harness()
    (a, b, c), gen = h.stable_group(3)
    lw = h.leave(LeaveMember(c))
    assert h.answer(lw).members[0].error_code == E.NONE
    assert h.group().state is GroupState.PREPARING_REBALANCE
    assert h.heartbeat(a, gen) == E.REBALANCE_IN_PROGRESS
    ja = h.join(a, client="c0")
    assert h.answer(ja) is None  # b has not rejoined yet
    jb = h.join(b, client="c1")
    ra, rb = h.answer(ja), h.answer(jb)
    assert ra.generation_id == rb.generation_id == gen + 1
    assert sorted(m.member_id for m in ra.members) == sorted([a, b])

    # When the last members leave, the group becomes Empty and that is persisted.
    h.sync(a, gen + 1, {a: b"", b: b""})
    h.sync(b, gen + 1)
    h.leave(LeaveMember(a))
    h.leave(LeaveMember(b))
    g = h.group()
    assert g.state is GroupState.EMPTY and g.members == {} and g.generation_id == gen + 2
    key, value = rec.decode_record(h.log[-1])
    assert key == rec.GroupMetadataKey("g")
    assert value.members == () and value.generation == gen + 2 and value.protocol is None


def test_session_timeout_expiry_removes_a_silent_member():
    h = Harness()
    (a, b), gen = h.stable_group(2, session=10_000)
    for _ in range(3):
        h.advance(3000)
        assert h.heartbeat(a, gen) == E.NONE  # a is alive, b is silent
    h.advance(1000)  # 10 s since b's last sign of life
    assert b not in h.group().members
    assert h.group().state is GroupState.PREPARING_REBALANCE
    assert h.heartbeat(a, gen) == E.REBALANCE_IN_PROGRESS
    assert h.heartbeat(b, gen) == E.UNKNOWN_MEMBER_ID
    ja = h.join(a, client="c0")
    r = h.answer(ja)
    assert r.generation_id == gen + 1 and [m.member_id for m in r.members] == [a]


def test_rebalance_timeout_removes_members_that_did_not_rejoin():
    h = Harness()
    (a, b), gen = h.stable_group(2, session=10_000, rebalance=30_000)
    ja = h.join(a, client="c0", session=10_000, rebalance=30_000)  # leader rejoin starts a rebalance
    assert h.answer(ja) is None
    for _ in range(5):  # b keeps heartbeating but never rejoins
        h.advance(5000)
        assert h.heartbeat(b, gen) == E.REBALANCE_IN_PROGRESS
    assert h.answer(ja) is None
    h.advance(5000)  # 30 s rebalance timeout
    r = h.answer(ja)
    assert r.error_code == E.NONE and r.generation_id == gen + 1
    assert [m.member_id for m in r.members] == [a]
    assert h.heartbeat(b, gen) == E.UNKNOWN_MEMBER_ID


def test_leader_that_does_not_rejoin_is_replaced_by_a_rejoined_member():
    h = Harness()
    (a, b), gen = h.stable_group(2, session=60_000)
    # b rejoins with new metadata (e.g. a new subscription): rebalance; leader a stays silent.
    jb = h.join(b, client="c1", protocols=[("range", sub("t1", "t2"))], session=60_000)
    h.advance(30_000)
    r = h.answer(jb)
    assert r.leader == b and [m.member_id for m in r.members] == [b]
    assert a not in h.group().members


def test_followers_sync_waits_for_leader_and_persistence():
    h = Harness(auto_persist=False)
    leader, follower = h.joined_group(2)
    sf = h.sync(follower, 1)
    assert h.answer(sf) is None
    sl = h.sync(leader, 1, {leader: b"L", follower: b"F"})
    assert h.answer(sl) is None and h.answer(sf) is None  # not before persistence
    assert len(h.pending) == 1 and h.pending[0].has_waiters
    assert h.group().state is GroupState.COMPLETING_REBALANCE
    h.persist_pending()
    assert h.answer(sl).assignment == b"L" and h.answer(sf).assignment == b"F"
    assert h.group().state is GroupState.STABLE


def test_failed_assignment_write_answers_error_and_rebalances():
    h = Harness(auto_persist=False)
    ids = h.joined_group(2)
    sf = h.sync(ids[1], 1)
    sl = h.sync(ids[0], 1, {ids[0]: b"L", ids[1]: b"F"})
    h.persist_pending(E.NOT_LEADER_OR_FOLLOWER)  # translated like Kafka does
    assert h.answer(sl).error_code == E.NOT_COORDINATOR
    assert h.answer(sf).error_code == E.NOT_COORDINATOR
    assert h.group().state is GroupState.PREPARING_REBALANCE


def test_leader_forgetting_a_member_gives_it_an_empty_assignment():
    h = Harness()
    ids = h.joined_group(2)
    sf = h.sync(ids[1], 1)
    h.sync(ids[0], 1, {ids[0]: b"L", "stranger": b"?"})
    assert h.answer(sf).error_code == E.NONE and h.answer(sf).assignment == b""


def test_sync_errors():
    h = Harness()
    (a, b), gen = h.stable_group(2)
    assert h.answer(h.sync("nobody", gen)).error_code == E.UNKNOWN_MEMBER_ID
    assert h.answer(h.sync(a, gen, group="other")).error_code == E.UNKNOWN_MEMBER_ID
    assert h.answer(h.sync(a, gen + 7)).error_code == E.ILLEGAL_GENERATION
    # v5 protocol checks
    assert h.answer(h.sync(a, gen, protocol_type="connect")).error_code == E.INCONSISTENT_GROUP_PROTOCOL
    assert h.answer(h.sync(a, gen, protocol_name="roundrobin")).error_code == E.INCONSISTENT_GROUP_PROTOCOL
    ok = h.answer(h.sync(b, gen, protocol_type="consumer", protocol_name="range"))
    assert ok.error_code == E.NONE and ok.assignment == f"assign-{b}".encode()
    h.join(a, client="c0")  # rebalance
    assert h.answer(h.sync(b, gen)).error_code == E.REBALANCE_IN_PROGRESS


def test_member_that_never_syncs_is_removed_after_the_rebalance_timeout():
    h = Harness()
    (a, b), gen = h.stable_group(2, session=10_000, rebalance=20_000)
    ja = h.join(a, client="c0", rebalance=20_000)
    h.join(b, client="c1", rebalance=20_000)
    gen2 = h.answer(ja).generation_id
    sa = h.sync(a, gen2, {a: b"A", b: b"B"})
    assert h.answer(sa).error_code == E.NONE
    for _ in range(4):  # b heartbeats (so its session lives) but never syncs
        h.advance(5000)
        h.heartbeat(a, gen2)
        h.heartbeat(b, gen2)
    assert b not in h.group().members
    assert h.group().state is GroupState.PREPARING_REBALANCE


def test_stale_generation_gets_illegal_generation():
    h = Harness()
    (a, b), gen = h.stable_group(2)
    h.join(a, client="c0")
    h.join(b, client="c1")
    assert h.group().generation_id == gen + 1
    assert h.heartbeat(a, gen) == E.ILLEGAL_GENERATION
    assert h.answer(h.sync(a, gen)).error_code == E.ILLEGAL_GENERATION
    c = h.answer(h.commit({("t1", 0): 5}, generation=gen, member_id=a))
    assert c.error_code == E.ILLEGAL_GENERATION
    assert [p.error_code for p in c.partitions] == [E.ILLEGAL_GENERATION]


def test_unknown_member_gets_unknown_member_id():
    h = Harness()
    (a, _), gen = h.stable_group(2)
    assert h.heartbeat("ghost", gen) == E.UNKNOWN_MEMBER_ID
    assert h.answer(h.join("ghost", client="x")).error_code == E.UNKNOWN_MEMBER_ID
    assert h.answer(h.join("ghost", client="x", group="nogroup")).error_code == E.UNKNOWN_MEMBER_ID
    assert "nogroup" not in h.mgr  # a member id never creates a group
    assert h.heartbeat(a, gen, group="nogroup") == E.UNKNOWN_MEMBER_ID
    c = h.answer(h.commit({("t1", 0): 1}, generation=gen, member_id="ghost"))
    assert c.partitions[0].error_code == E.UNKNOWN_MEMBER_ID
    lv = h.answer(h.leave(LeaveMember("ghost")))
    assert lv.error_code == E.NONE and lv.members[0].error_code == E.UNKNOWN_MEMBER_ID
    assert lv.legacy_error_code == E.UNKNOWN_MEMBER_ID


def test_invalid_session_timeout_and_group_id():
    h = Harness(min_session_timeout_ms=6000, max_session_timeout_ms=1_800_000)
    assert h.answer(h.join(session=5999)).error_code == E.INVALID_SESSION_TIMEOUT
    assert h.answer(h.join(session=1_800_001)).error_code == E.INVALID_SESSION_TIMEOUT
    assert h.answer(h.join(session=6000)).error_code == E.MEMBER_ID_REQUIRED
    assert h.answer(h.join(group="")).error_code == E.INVALID_GROUP_ID
    h2 = Harness(min_session_timeout_ms=1000)
    assert h2.answer(h2.join(session=1000)).error_code == E.MEMBER_ID_REQUIRED


# ============================================================================ static membership


def test_static_member_rejoin_gets_new_id_fences_old_and_does_not_rebalance():
    h = Harness()
    ja = h.join(client="ca", instance="i-a")
    jb = h.join(client="cb", instance="i-b")
    h.advance_until(lambda: h.answer(ja) and h.answer(jb))
    a, b = h.answer(ja).member_id, h.answer(jb).member_id
    assert a.startswith("i-a-") and h.answer(ja).leader == a
    h.sync(a, 1, {a: b"A", b: b"B"}, group_instance_id="i-a")
    h.sync(b, 1, group_instance_id="i-b")
    log_len = len(h.log)

    # Instance i-a restarts: unknown member id, known instance id.
    r = h.answer(h.join(client="ca", instance="i-a"))
    new_a = r.member_id
    assert r.error_code == E.NONE and new_a != a and new_a.startswith("i-a-")
    assert r.generation_id == 1 and r.members == []
    assert r.leader == a  # the *old* leader id: a pre-v9 client must not think it leads
    g = h.group()
    assert g.state is GroupState.STABLE and g.generation_id == 1
    assert g.static_members["i-a"] == new_a and g.leader_id == new_a
    # The new member id was persisted before the answer.
    _, value = rec.decode_record(h.log[log_len])
    assert {m.member_id for m in value.members} == {new_a, b}

    # The old incarnation is fenced; the new one inherits the assignment.
    assert h.heartbeat(a, 1, instance="i-a") == E.FENCED_INSTANCE_ID
    assert h.answer(h.sync(a, 1, group_instance_id="i-a")).error_code == E.FENCED_INSTANCE_ID
    c = h.answer(h.commit({("t1", 0): 3}, generation=1, member_id=a, group_instance_id="i-a"))
    assert c.partitions[0].error_code == E.FENCED_INSTANCE_ID
    assert h.heartbeat(new_a, 1, instance="i-a") == E.NONE
    assert h.answer(h.sync(new_a, 1, group_instance_id="i-a")).assignment == b"A"
    # Unknown instance id with a member id: UNKNOWN_MEMBER_ID.
    assert h.heartbeat(new_a, 1, instance="i-zzz") == E.UNKNOWN_MEMBER_ID


def test_static_leader_rejoin_with_skip_assignment_v9():
    h = Harness()
    ja = h.join(client="ca", instance="i-a")
    jb = h.join(client="cb", instance="i-b")
    h.advance_until(lambda: h.answer(ja) and h.answer(jb))
    a, b = h.answer(ja).member_id, h.answer(jb).member_id
    h.sync(a, 1, {a: b"A", b: b"B"}, group_instance_id="i-a")
    r = h.answer(h.join(client="ca", instance="i-a", skip=True))
    assert r.skip_assignment is True and r.leader == r.member_id
    assert {m.member_id for m in r.members} == {r.member_id, b}


def test_static_rejoin_answer_waits_for_persistence_and_reverts_on_failure():
    h = Harness(auto_persist=False)
    ja = h.join(client="ca", instance="i-a")
    jb = h.join(client="cb", instance="i-b")
    h.advance_until(lambda: h.answer(ja) and h.answer(jb))
    a, b = h.answer(ja).member_id, h.answer(jb).member_id
    h.sync(a, 1, {a: b"A", b: b"B"}, group_instance_id="i-a")
    h.sync(b, 1, group_instance_id="i-b")
    h.persist_pending()
    w = h.join(client="cb", instance="i-b")
    assert h.answer(w) is None and len(h.pending) == 1
    h.persist_pending(E.REQUEST_TIMED_OUT)
    r = h.answer(w)
    assert r.error_code == E.COORDINATOR_NOT_AVAILABLE and r.member_id == ""
    # The durable (old) member id is still the valid one.
    assert h.group().static_members["i-b"] == b
    assert h.heartbeat(b, 1, instance="i-b") == E.NONE


def test_static_rejoin_while_completing_fences_parked_sync_and_rebalances():
    h = Harness()
    ja = h.join(client="ca", instance="i-a")
    jb = h.join(client="cb", instance="i-b")
    h.advance_until(lambda: h.answer(ja) and h.answer(jb))
    b = h.answer(jb).member_id
    parked = h.sync(b, 1, group_instance_id="i-b")  # waits for the leader
    assert h.answer(parked) is None
    w = h.join(client="cb", instance="i-b")  # i-b restarts before the leader synced
    assert h.answer(parked).error_code == E.FENCED_INSTANCE_ID
    assert h.group().state is GroupState.PREPARING_REBALANCE
    a = h.answer(ja).member_id
    ja2 = h.join(a, client="ca", instance="i-a")
    assert h.answer(w).generation_id == h.answer(ja2).generation_id == 2


def test_static_rejoin_that_changes_the_selected_protocol_rebalances():
    h = Harness()
    ja = h.join(client="ca", instance="i-a", protocols=[("range", b"1"), ("rr", b"1")])
    h.advance(3000)
    a = h.answer(ja).member_id
    h.sync(a, 1, {a: b"A"}, group_instance_id="i-a")
    w = h.join(client="ca", instance="i-a", protocols=[("rr", b"2")])
    # The only member is the one rejoining, so the forced rebalance completes at once.
    r = h.answer(w)
    assert (r.protocol_name, r.generation_id, r.leader) == ("rr", 2, r.member_id)
    assert h.group().state is GroupState.COMPLETING_REBALANCE


def test_static_member_that_did_not_rejoin_stays_in_the_next_generation():
    h = Harness()
    ja = h.join(client="ca", instance="i-a", session=60_000, rebalance=10_000)
    jb = h.join(client="cb", instance="i-b", session=60_000, rebalance=10_000)
    h.advance_until(lambda: h.answer(ja) and h.answer(jb))
    a, b = h.answer(ja).member_id, h.answer(jb).member_id
    h.sync(a, 1, {a: b"A", b: b"B"}, group_instance_id="i-a")
    h.sync(b, 1, group_instance_id="i-b")
    ja2 = h.join(a, client="ca", instance="i-a", session=60_000, rebalance=10_000)
    h.advance(10_000)
    r = h.answer(ja2)
    # b did not rejoin but is static: still a member of generation 2.
    assert r.generation_id == 2 and {m.member_id for m in r.members} == {a, b}


# ================================================================================ LeaveGroup


def test_batched_leave_v3():
    h = Harness()
    ja = h.join(client="ca", instance="i-a")
    jb = h.join(client="cb", instance="i-b")
    c = h.member_id_for("cc")
    jc = h.join(c, client="cc")
    h.advance_until(lambda: h.answer(ja) and h.answer(jb) and h.answer(jc))
    a = h.answer(ja).member_id
    assert h.answer(jb).generation_id == h.answer(jc).generation_id == 1
    lw = h.leave(
        LeaveMember(a, "i-a"),  # by member id + instance id
        LeaveMember("", "i-b", reason="admin"),  # by instance id only (admin removal)
        LeaveMember(c, "i-a"),  # instance id mapped to someone else now gone -> unknown
        LeaveMember("zzz"),
        LeaveMember("", "i-never"),
    )
    r = h.answer(lw)
    assert r.error_code == E.NONE
    assert [(m.member_id, m.group_instance_id, m.error_code) for m in r.members] == [
        (a, "i-a", E.NONE),
        ("", "i-b", E.NONE),
        (c, "i-a", E.UNKNOWN_MEMBER_ID),
        ("zzz", None, E.UNKNOWN_MEMBER_ID),
        ("", "i-never", E.UNKNOWN_MEMBER_ID),
    ]
    assert list(h.group().members) == [c]
    assert h.group().state is GroupState.PREPARING_REBALANCE
    assert r.legacy_error_code == E.UNKNOWN_MEMBER_ID


def test_leave_with_wrong_instance_is_fenced():
    h = Harness()
    ja = h.join(client="ca", instance="i-a")
    jb = h.join(client="cb", instance="i-b")
    h.advance_until(lambda: h.answer(ja) and h.answer(jb))
    a = h.answer(ja).member_id
    r = h.answer(h.leave(LeaveMember(a, "i-b")))
    assert r.members[0].error_code == E.FENCED_INSTANCE_ID
    assert a in h.group().members


def test_leave_during_join_answers_the_parked_join_and_completes_the_rebalance():
    h = Harness()
    (a, b, c), gen = h.stable_group(3)
    jb = h.join(b, client="c1", protocols=[("range", sub("t9"))])  # new metadata: rebalance
    jc = h.join(c, client="c2")
    assert h.answer(jb) is None and h.answer(jc) is None  # a has not rejoined
    h.leave(LeaveMember(b))  # b leaves while its JoinGroup is parked
    assert h.answer(jb).error_code == E.UNKNOWN_MEMBER_ID
    assert h.answer(jc) is None
    h.leave(LeaveMember(a))  # the last missing member leaves: the rebalance completes
    r = h.answer(jc)
    assert r.generation_id == gen + 1 and r.leader == c and [m.member_id for m in r.members] == [c]


def test_pending_member_can_leave():
    h = Harness()
    p = h.member_id_for("c")
    r = h.answer(h.leave(LeaveMember(p)))
    assert r.members[0].error_code == E.NONE
    assert not h.group().is_pending_member(p)


# ======================================================================== protocols and rejoin


def test_protocol_selection_by_votes_among_protocols_all_members_support():
    h = Harness()
    specs = {
        "c0": [("a", b"a0"), ("b", b"b0"), ("c", b"c0")],
        "c1": [("b", b"b1"), ("a", b"a1")],  # no "c": c is not a candidate
        "c2": [("b", b"b2"), ("c", b"c2"), ("a", b"a2")],
    }
    joins = [h.join(h.member_id_for(cl, protocols=p), client=cl, protocols=p) for cl, p in specs.items()]
    h.advance_until(lambda: all(h.answer(w) for w in joins))
    r = h.answer(joins[0])  # leader
    assert r.protocol_name == "b"  # votes: a=1 (c0), b=2 (c1, c2)
    assert [m.metadata for m in r.members] == [b"b0", b"b1", b"b2"]
    assert all(h.answer(w).protocol_name == "b" for w in joins)


def test_protocol_selection_tie_goes_to_earliest_members_preference():
    h = Harness()
    p0, p1 = [("x", b""), ("y", b"")], [("y", b""), ("x", b"")]
    j0 = h.join(h.member_id_for("c0", protocols=p0), client="c0", protocols=p0)
    h.join(h.member_id_for("c1", protocols=p1), client="c1", protocols=p1)
    h.advance_until(lambda: h.answer(j0))
    assert h.answer(j0).protocol_name == "x"


def test_inconsistent_group_protocol():
    h = Harness()
    (a, _), gen = h.stable_group(2)
    # Different protocol type.
    assert h.answer(h.join(client="x", protocol_type="connect")).error_code == E.INCONSISTENT_GROUP_PROTOCOL
    # No protocol in common with every member.
    r = h.answer(h.join(client="x", protocols=[("roundrobin", b"")]))
    assert r.error_code == E.INCONSISTENT_GROUP_PROTOCOL
    # A known member switching to a protocol nobody else supports.
    r = h.answer(h.join(a, client="c0", protocols=[("sticky", b"")]))
    assert r.error_code == E.INCONSISTENT_GROUP_PROTOCOL
    # An empty group still needs a protocol type and at least one protocol.
    assert h.answer(h.join(group="g2", protocol_type="")).error_code == E.INCONSISTENT_GROUP_PROTOCOL
    assert h.answer(h.join(group="g2", protocols=[])).error_code == E.INCONSISTENT_GROUP_PROTOCOL
    assert h.group().state is GroupState.STABLE and h.group().generation_id == gen


def test_follower_rejoin_with_same_metadata_keeps_the_generation_cooperative_style():
    h = Harness()
    (a, b), gen = h.stable_group(2)
    r = h.answer(h.join(b, client="c1"))
    assert (r.error_code, r.generation_id, r.member_id, r.leader) == (E.NONE, gen, b, a)
    assert h.group().state is GroupState.STABLE


def test_eager_rebalance_keeps_members_that_rejoin_with_their_id():
    h = Harness()
    (a, b), gen = h.stable_group(2)
    # b changes its subscription: rebalance; both rejoin with their ids (an eager client after
    # revoking everything, or a cooperative one doing its first of two rounds).
    jb = h.join(b, client="c1", protocols=[("range", sub("t1", "t2"))])
    assert h.heartbeat(a, gen) == E.REBALANCE_IN_PROGRESS
    ja = h.join(a, client="c0")
    ra, rb = h.answer(ja), h.answer(jb)
    assert (ra.member_id, rb.member_id) == (a, b)
    assert ra.generation_id == rb.generation_id == gen + 1 and ra.leader == a
    assert h.group().subscribed_topics == {"t1", "t2"}
    # Cooperative second round: same metadata, rejoin during CompletingRebalance.
    again = h.answer(h.join(b, client="c1", protocols=[("range", sub("t1", "t2"))]))
    assert again.generation_id == gen + 1 and again.members == []
    again = h.answer(h.join(a, client="c0"))
    assert again.generation_id == gen + 1 and len(again.members) == 2


def test_rejoin_resend_while_parked_answers_the_stale_request():
    h = Harness()
    mid = h.member_id_for("c")
    w1 = h.join(mid, client="c")
    w2 = h.join(mid, client="c")
    assert h.answer(w1).error_code == E.REBALANCE_IN_PROGRESS
    h.advance(3000)
    assert h.answer(w2).generation_id == 1


def test_group_max_size():
    h = Harness(max_size=2)
    h.stable_group(2)
    r = h.answer(h.join(client="third"))
    assert r.error_code == E.GROUP_MAX_SIZE_REACHED
    assert len(h.group().members) == 2


# ============================================================= describe / list / delete / misc


def test_describe_list_and_delete_groups():
    h = Harness()
    (a, b), gen = h.stable_group(2)
    h.commit({("t9", 0): 1}, group="simple")  # an offsets-only group, Empty

    d = h.mgr.describe_group("g")
    assert (d.error_code, d.state, d.protocol_type, d.protocol_data) == (E.NONE, "Stable", "consumer", "range")
    assert [(m.member_id, m.client_id, m.metadata, m.assignment) for m in d.members] == [
        (a, "c0", sub("t1"), f"assign-{a}".encode()),
        (b, "c1", sub("t1"), f"assign-{b}".encode()),
    ]
    assert h.mgr.describe_group("missing").state == "Dead"
    assert h.mgr.describe_group("missing").error_code == E.NONE
    assert h.mgr.describe_group("missing", api_version=6).error_code == E.GROUP_ID_NOT_FOUND

    listed = h.mgr.list_groups()
    assert {(x.group_id, x.protocol_type, x.state) for x in listed.groups} == {
        ("g", "consumer", "Stable"),
        ("simple", "", "Empty"),
    }
    assert [x.group_id for x in h.mgr.list_groups(["empty"]).groups] == ["simple"]
    assert [x.group_id for x in h.mgr.list_groups(["Stable", "Dead"]).groups] == ["g"]
    assert h.mgr.list_groups(types_filter=["consumer"]).groups == []
    assert len(h.mgr.list_groups(types_filter=["Classic"]).groups) == 2

    h.join(a, client="c0")  # non-Stable: no metadata in describe
    d = h.mgr.describe_group("g")
    assert d.state == "PreparingRebalance" and d.protocol_data == "" and d.members[0].metadata == b""

    w = h.waiter("del")
    h.dispatch(h.mgr.delete_groups(["g", "simple", "missing"], w, h.now))
    res = {r.group_id: r.error_code for r in h.answer(w).results}
    assert res == {"g": E.NON_EMPTY_GROUP, "simple": E.NONE, "missing": E.GROUP_ID_NOT_FOUND}
    assert "simple" not in h.mgr and "g" in h.mgr
    tomb = [rec.decode_record(r) for r in h.log if r.value is None]
    assert (rec.OffsetCommitKey("simple", "t9", 0), None) in tomb


def test_delete_group_answer_waits_for_tombstones():
    h = Harness(auto_persist=False)
    ids = [h.member_id_for("c0")]
    h.join(ids[0], client="c0")
    h.advance(3000)
    h.sync(ids[0], 1, {ids[0]: b"x"})
    h.persist_pending()
    h.leave(LeaveMember(ids[0]))
    h.persist_pending()
    assert h.group().state is GroupState.EMPTY
    w = h.waiter("del")
    h.dispatch(h.mgr.delete_groups(["g"], w, h.now))
    assert h.answer(w) is None and "g" not in h.mgr
    assert [rec.decode_record(r) for r in h.pending[0].records] == [(rec.GroupMetadataKey("g"), None)]
    h.persist_pending()
    assert h.answer(w).results[0].error_code == E.NONE
    assert h.mgr.describe_group("g", api_version=6).error_code == E.GROUP_ID_NOT_FOUND


def test_unload_answers_parked_requests_with_not_coordinator():
    h = Harness()
    w = h.join(h.member_id_for("c"), client="c")
    h.dispatch(h.mgr.unload(["g"], h.now))
    assert h.answer(w).error_code == E.NOT_COORDINATOR
    assert "g" not in h.mgr
    # Only the periodic retention check is left.
    assert h.mgr.next_deadline_ms() == 1_000_000 + GroupConfig().offsets_retention_check_interval_ms


def test_loading_answers():
    h = Harness()
    h.mgr.loading = True
    assert h.answer(h.join()).error_code == E.COORDINATOR_LOAD_IN_PROGRESS
    assert h.heartbeat("m", 1) == E.NONE  # Kafka answers heartbeats blindly while loading
    assert h.answer(h.sync("m", 1)).error_code == E.REBALANCE_IN_PROGRESS
    assert h.answer(h.commit({("t", 0): 1})).partitions[0].error_code == E.COORDINATOR_LOAD_IN_PROGRESS
    assert h.mgr.list_groups().error_code == E.COORDINATOR_LOAD_IN_PROGRESS


def test_next_deadline_tracks_timers_and_tick_is_idempotent():
    h = Harness()
    (a, b), gen = h.stable_group(2, session=10_000)
    d = h.mgr.next_deadline_ms()
    assert d is not None and h.now < d <= h.now + 10_000
    before = dict(h.answers)
    h.dispatch(h.mgr.tick(h.now))  # nothing due
    assert h.answers == before and h.group().state is GroupState.STABLE


def test_coordinator_modules_import_neither_asyncio_nor_pulsar():
    root = Path(__file__).resolve().parents[2]
    code = textwrap.dedent(
        f"""
        import sys, types
        # Bypass kop_fast/__init__.py so only the coordinator package is measured.
        pkg = types.ModuleType("kop_fast")
        pkg.__path__ = [{str(root / "kop_fast")!r}]
        sys.modules["kop_fast"] = pkg
        import kop_fast.coordinator
        import kop_fast.coordinator.group, kop_fast.coordinator.manager, kop_fast.coordinator.records
        import kop_fast.coordinator.offsets, kop_fast.coordinator.clock, kop_fast.coordinator.errors
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("asyncio", "pulsar", "_pulsar", "uvloop"))
        print(",".join(bad))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"coordinator pulled in I/O modules: {proc.stdout.strip()}"
