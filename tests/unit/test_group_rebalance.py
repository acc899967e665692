"""Join, sync, heartbeat and rebalance timers of the consumer-group state machine (dynamic
members), driven through PartitionGroups by the Harness."""

from __future__ import annotations

from kop_fast.coordinator import GroupState, LeaveMember
from kop_fast.coordinator import records as rec
from kop_fast.protocol.errors import ErrorCode
from tests.unit.group_harness import Harness, sub

E = ErrorCode


# ======================================================================================= basics


def test_single_member_join_sync_heartbeat():
    h = Harness()
    first = h.answer(h.join(client="app"))
    assert first.error_code == E.member_id_required
    mid = first.member_id
    assert mid == "app-u0"

    w = h.join(mid, client="app")
    assert h.answer(w) is None  # parked for the initial rebalance delay
    assert h.group().state is GroupState.PREPARING_REBALANCE
    assert h.partition.next_deadline_ms() == h.now + 3000
    h.advance(2999)
    assert h.answer(w) is None
    h.advance(1)
    r = h.answer(w)
    assert (r.error_code, r.generation_id, r.leader, r.member_id) == (E.none, 1, mid, mid)
    assert (r.protocol_type, r.protocol_name) == ("consumer", "range")
    assert [(m.member_id, m.metadata) for m in r.members] == [(mid, sub("t1"))]
    assert h.group().state is GroupState.COMPLETING_REBALANCE

    s = h.answer(h.sync(mid, 1, {mid: b"A"}))
    assert (s.error_code, s.assignment, s.protocol_name) == (E.none, b"A", "range")
    assert h.group().state is GroupState.STABLE
    # The assignment was persisted before the answer.
    _, value = rec.decode_record(h.log[-1])
    assert value.generation == 1 and value.members[0].assignment == b"A"

    assert h.heartbeat(mid, 1) == E.none
    h.advance(9000)
    assert h.heartbeat(mid, 1) == E.none  # heartbeats keep the session alive
    h.advance(9000)
    assert h.heartbeat(mid, 1) == E.none
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
    assert all(r.error_code == E.none for r in rs)
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
    assert r.error_code == E.unknown_member_id


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
    assert h.answer(lw).members[0].error_code == E.none
    assert h.group().state is GroupState.PREPARING_REBALANCE
    assert h.heartbeat(a, gen) == E.rebalance_in_progress
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
        assert h.heartbeat(a, gen) == E.none  # a is alive, b is silent
    h.advance(1000)  # 10 s since b's last sign of life
    assert b not in h.group().members
    assert h.group().state is GroupState.PREPARING_REBALANCE
    assert h.heartbeat(a, gen) == E.rebalance_in_progress
    assert h.heartbeat(b, gen) == E.unknown_member_id
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
        assert h.heartbeat(b, gen) == E.rebalance_in_progress
    assert h.answer(ja) is None
    h.advance(5000)  # 30 s rebalance timeout
    r = h.answer(ja)
    assert r.error_code == E.none and r.generation_id == gen + 1
    assert [m.member_id for m in r.members] == [a]
    assert h.heartbeat(b, gen) == E.unknown_member_id


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
    h.persist_pending(E.not_leader_or_follower)  # translated like Kafka does
    assert h.answer(sl).error_code == E.not_coordinator
    assert h.answer(sf).error_code == E.not_coordinator
    assert h.group().state is GroupState.PREPARING_REBALANCE


def test_leader_forgetting_a_member_gives_it_an_empty_assignment():
    h = Harness()
    ids = h.joined_group(2)
    sf = h.sync(ids[1], 1)
    h.sync(ids[0], 1, {ids[0]: b"L", "stranger": b"?"})
    assert h.answer(sf).error_code == E.none and h.answer(sf).assignment == b""


def test_sync_errors():
    h = Harness()
    (a, b), gen = h.stable_group(2)
    assert h.answer(h.sync("nobody", gen)).error_code == E.unknown_member_id
    assert h.answer(h.sync(a, gen, group="other")).error_code == E.unknown_member_id
    assert h.answer(h.sync(a, gen + 7)).error_code == E.illegal_generation
    # v5 protocol checks
    assert h.answer(h.sync(a, gen, protocol_type="connect")).error_code == E.inconsistent_group_protocol
    assert h.answer(h.sync(a, gen, protocol_name="roundrobin")).error_code == E.inconsistent_group_protocol
    ok = h.answer(h.sync(b, gen, protocol_type="consumer", protocol_name="range"))
    assert ok.error_code == E.none and ok.assignment == f"assign-{b}".encode()
    h.join(a, client="c0")  # rebalance
    assert h.answer(h.sync(b, gen)).error_code == E.rebalance_in_progress


def test_member_that_never_syncs_is_removed_after_the_rebalance_timeout():
    h = Harness()
    (a, b), gen = h.stable_group(2, session=10_000, rebalance=20_000)
    ja = h.join(a, client="c0", rebalance=20_000)
    h.join(b, client="c1", rebalance=20_000)
    gen2 = h.answer(ja).generation_id
    sa = h.sync(a, gen2, {a: b"A", b: b"B"})
    assert h.answer(sa).error_code == E.none
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
    assert h.heartbeat(a, gen) == E.illegal_generation
    assert h.answer(h.sync(a, gen)).error_code == E.illegal_generation
    c = h.answer(h.commit({("t1", 0): 5}, generation=gen, member_id=a))
    assert c.error_code == E.illegal_generation
    assert [p.error_code for p in c.partitions] == [E.illegal_generation]


def test_unknown_member_gets_unknown_member_id():
    h = Harness()
    (a, _), gen = h.stable_group(2)
    assert h.heartbeat("ghost", gen) == E.unknown_member_id
    assert h.answer(h.join("ghost", client="x")).error_code == E.unknown_member_id
    assert h.answer(h.join("ghost", client="x", group="nogroup")).error_code == E.unknown_member_id
    assert "nogroup" not in h.partition  # a member id never creates a group
    assert h.heartbeat(a, gen, group="nogroup") == E.unknown_member_id
    c = h.answer(h.commit({("t1", 0): 1}, generation=gen, member_id="ghost"))
    assert c.partitions[0].error_code == E.unknown_member_id
    lv = h.answer(h.leave(LeaveMember("ghost")))
    assert lv.error_code == E.none and lv.members[0].error_code == E.unknown_member_id
    assert lv.legacy_error_code == E.unknown_member_id


def test_invalid_session_timeout_and_group_id():
    h = Harness(min_session_timeout_ms=6000, max_session_timeout_ms=1_800_000)
    assert h.answer(h.join(session=5999)).error_code == E.invalid_session_timeout
    assert h.answer(h.join(session=1_800_001)).error_code == E.invalid_session_timeout
    assert h.answer(h.join(session=6000)).error_code == E.member_id_required
    assert h.answer(h.join(group="")).error_code == E.invalid_group_id
    h2 = Harness(min_session_timeout_ms=1000)
    assert h2.answer(h2.join(session=1000)).error_code == E.member_id_required
