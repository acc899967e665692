"""Static membership (KIP-345), LeaveGroup, protocol selection and rejoins of the consumer-group
state machine, driven through PartitionGroups by the Harness."""

from __future__ import annotations

from kop_fast.coordinator import GroupState, LeaveMember
from kop_fast.coordinator import records as rec
from kop_fast.protocol.errors import ErrorCode
from tests.unit.group_harness import Harness, sub

E = ErrorCode


# ============================================================================ static membership


def test_static_member_rejoin_gets_new_id_fences_old_and_does_not_rebalance():
    h = Harness()
    ja, jb = h.static_pair()
    a, b = h.answer(ja).member_id, h.answer(jb).member_id
    assert a.startswith("i-a-") and h.answer(ja).leader == a
    log_len = len(h.log)

    # Instance i-a restarts: unknown member id, known instance id.
    r = h.answer(h.join(client="ca", instance="i-a"))
    new_a = r.member_id
    assert r.error_code == E.none and new_a != a and new_a.startswith("i-a-")
    assert r.generation_id == 1 and r.members == []
    assert r.leader == a  # the *old* leader id: a pre-v9 client must not think it leads
    g = h.group()
    assert g.state is GroupState.STABLE and g.generation_id == 1
    assert g.static_members["i-a"] == new_a and g.leader_id == new_a
    # The new member id was persisted before the answer.
    _, value = rec.decode_record(h.log[log_len])
    assert {m.member_id for m in value.members} == {new_a, b}

    # The old incarnation is fenced; the new one inherits the assignment.
    assert h.heartbeat(a, 1, instance="i-a") == E.fenced_instance_id
    assert h.answer(h.sync(a, 1, group_instance_id="i-a")).error_code == E.fenced_instance_id
    c = h.answer(h.commit({("t1", 0): 3}, generation=1, member_id=a, group_instance_id="i-a"))
    assert c.partitions[0].error_code == E.fenced_instance_id
    assert h.heartbeat(new_a, 1, instance="i-a") == E.none
    assert h.answer(h.sync(new_a, 1, group_instance_id="i-a")).assignment == b"A"
    # Unknown instance id with a member id: UNKNOWN_MEMBER_ID.
    assert h.heartbeat(new_a, 1, instance="i-zzz") == E.unknown_member_id


def test_static_leader_rejoin_with_skip_assignment_v9():
    h = Harness()
    ja, jb = h.static_pair(sync=False)
    a, b = h.answer(ja).member_id, h.answer(jb).member_id
    h.sync(a, 1, {a: b"A", b: b"B"}, group_instance_id="i-a")  # i-b never syncs
    r = h.answer(h.join(client="ca", instance="i-a", skip=True))
    assert r.skip_assignment is True and r.leader == r.member_id
    assert {m.member_id for m in r.members} == {r.member_id, b}


def test_static_rejoin_answer_waits_for_persistence_and_reverts_on_failure():
    h = Harness(auto_persist=False)
    _, jb = h.static_pair()
    b = h.answer(jb).member_id
    h.persist_pending()
    w = h.join(client="cb", instance="i-b")
    assert h.answer(w) is None and len(h.pending) == 1
    h.persist_pending(E.request_timed_out)
    r = h.answer(w)
    assert r.error_code == E.coordinator_not_available and r.member_id == ""
    # The durable (old) member id is still the valid one.
    assert h.group().static_members["i-b"] == b
    assert h.heartbeat(b, 1, instance="i-b") == E.none


def test_static_rejoin_while_completing_fences_parked_sync_and_rebalances():
    h = Harness()
    ja, jb = h.static_pair(sync=False)
    b = h.answer(jb).member_id
    parked = h.sync(b, 1, group_instance_id="i-b")  # waits for the leader
    assert h.answer(parked) is None
    w = h.join(client="cb", instance="i-b")  # i-b restarts before the leader synced
    assert h.answer(parked).error_code == E.fenced_instance_id
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
    ja, jb = h.static_pair(session=60_000, rebalance=10_000)
    a, b = h.answer(ja).member_id, h.answer(jb).member_id
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
    assert r.error_code == E.none
    assert [(m.member_id, m.group_instance_id, m.error_code) for m in r.members] == [
        (a, "i-a", E.none),
        ("", "i-b", E.none),
        (c, "i-a", E.unknown_member_id),
        ("zzz", None, E.unknown_member_id),
        ("", "i-never", E.unknown_member_id),
    ]
    assert list(h.group().members) == [c]
    assert h.group().state is GroupState.PREPARING_REBALANCE
    assert r.legacy_error_code == E.unknown_member_id


def test_leave_with_wrong_instance_is_fenced():
    h = Harness()
    ja, _ = h.static_pair(sync=False)
    a = h.answer(ja).member_id
    r = h.answer(h.leave(LeaveMember(a, "i-b")))
    assert r.members[0].error_code == E.fenced_instance_id
    assert a in h.group().members


def test_leave_during_join_answers_the_parked_join_and_completes_the_rebalance():
    h = Harness()
    (a, b, c), gen = h.stable_group(3)
    jb = h.join(b, client="c1", protocols=[("range", sub("t9"))])  # new metadata: rebalance
    jc = h.join(c, client="c2")
    assert h.answer(jb) is None and h.answer(jc) is None  # a has not rejoined
    h.leave(LeaveMember(b))  # b leaves while its JoinGroup is parked
    assert h.answer(jb).error_code == E.unknown_member_id
    assert h.answer(jc) is None
    h.leave(LeaveMember(a))  # the last missing member leaves: the rebalance completes
    r = h.answer(jc)
    assert r.generation_id == gen + 1 and r.leader == c and [m.member_id for m in r.members] == [c]


def test_pending_member_can_leave():
    h = Harness()
    p = h.member_id_for("c")
    r = h.answer(h.leave(LeaveMember(p)))
    assert r.members[0].error_code == E.none
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
    assert h.answer(h.join(client="x", protocol_type="connect")).error_code == E.inconsistent_group_protocol
    # No protocol in common with every member.
    r = h.answer(h.join(client="x", protocols=[("roundrobin", b"")]))
    assert r.error_code == E.inconsistent_group_protocol
    # A known member switching to a protocol nobody else supports.
    r = h.answer(h.join(a, client="c0", protocols=[("sticky", b"")]))
    assert r.error_code == E.inconsistent_group_protocol
    # An empty group still needs a protocol type and at least one protocol.
    assert h.answer(h.join(group="g2", protocol_type="")).error_code == E.inconsistent_group_protocol
    assert h.answer(h.join(group="g2", protocols=[])).error_code == E.inconsistent_group_protocol
    assert h.group().state is GroupState.STABLE and h.group().generation_id == gen


def test_follower_rejoin_with_same_metadata_keeps_the_generation_cooperative_style():
    h = Harness()
    (a, b), gen = h.stable_group(2)
    r = h.answer(h.join(b, client="c1"))
    assert (r.error_code, r.generation_id, r.member_id, r.leader) == (E.none, gen, b, a)
    assert h.group().state is GroupState.STABLE


def test_eager_rebalance_keeps_members_that_rejoin_with_their_id():
    h = Harness()
    (a, b), gen = h.stable_group(2)
    # b changes its subscription: rebalance; both rejoin with their ids (an eager client after
    # revoking everything, or a cooperative one doing its first of two rounds).
    jb = h.join(b, client="c1", protocols=[("range", sub("t1", "t2"))])
    assert h.heartbeat(a, gen) == E.rebalance_in_progress
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
    assert h.answer(w1).error_code == E.rebalance_in_progress
    h.advance(3000)
    assert h.answer(w2).generation_id == 1


def test_group_max_size():
    h = Harness(max_size=2)
    h.stable_group(2)
    r = h.answer(h.join(client="third"))
    assert r.error_code == E.group_max_size_reached
    assert len(h.group().members) == 2


def test_the_last_member_leaving_is_answered_once_the_empty_group_is_stored():
    h = Harness()
    (a,), gen = h.stable_group(1)
    h.auto_persist = False
    w = h.leave(LeaveMember(a))
    assert h.answer(w) is None  # the group's new (empty) state is not stored yet
    h.persist_pending()
    assert h.answer(w).members[0].error_code == E.none
    assert not h.group().members
