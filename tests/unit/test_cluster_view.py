"""The cluster view (sans-io): changes applied in log order, rendezvous placement, leader epochs."""

from __future__ import annotations

from collections import Counter

from kop_fast.cluster.placement import owner_id, partition_key
from kop_fast.cluster.view import ClusterView


def join(node, instance, port, host="127.0.0.1"):
    return {"op": "join", "node": node, "instance": instance, "host": host, "port": port}


def view_of(*changes) -> ClusterView:
    view = ClusterView()
    for change in changes:
        view.apply(change)
    return view


KEYS = [partition_key("persistent://public/default/t", i) for i in range(300)]


def test_every_view_built_from_the_same_log_agrees():
    log = [join(0, "a", 1), join(1, "b", 2), join(2, "c", 3), {"op": "expire", "node": 1, "instance": "b"}]
    one, other = view_of(*log), view_of(*log)
    assert one.epoch == other.epoch == 4
    assert sorted(one.members) == [0, 2]
    assert [one.owner(k)[0].node_id for k in KEYS] == [other.owner(k)[0].node_id for k in KEYS]
    assert [one.owner(k)[1] for k in KEYS] == [other.owner(k)[1] for k in KEYS]


def test_placement_is_even_and_moves_few_partitions_when_a_member_joins():
    three = Counter(owner_id([0, 1, 2], k) for k in KEYS)
    assert set(three) == {0, 1, 2} and min(three.values()) > 60  # ~100 each
    moved = sum(owner_id([0, 1, 2], k) != owner_id([0, 1, 2, 3], k) for k in KEYS)
    assert 40 < moved < 110  # ~1/4 of 300 move, all of them to the newcomer
    assert all(owner_id([0, 1, 2, 3], k) == 3 for k in KEYS if owner_id([0, 1, 2], k) != owner_id([0, 1, 2, 3], k))


def test_leader_epoch_grows_only_for_partitions_that_move():
    view = view_of(join(0, "a", 1), join(1, "b", 2))
    before = {k: view.owner(k) for k in KEYS}
    view.apply(join(2, "c", 3))
    assert view.epoch == 3
    for key in KEYS:
        owner, epoch = view.owner(key)
        if owner.node_id == 2:
            assert epoch == 3
        else:
            assert (owner, epoch) == before[key]


def test_a_restart_at_the_same_address_replaces_the_dead_instance_and_moves_its_partitions():
    view = view_of(join(0, "a", 1), join(1, "b", 2))
    owned_by_b = [k for k in KEYS if view.owner(k)[0].instance == "b"]
    assert view.apply(join(1, "b2", 2))
    assert view.members[1].instance == "b2"
    assert all(view.owner(k) == (view.members[1], 3) for k in owned_by_b)  # same node id, new epoch


def test_a_clashing_node_id_is_refused_and_late_removals_do_nothing():
    view = view_of(join(0, "a", 1))
    assert not view.apply(join(0, "x", 9))  # another address: the id is taken
    assert view.member_by_instance("x") is None and view.free_node_id() == 1
    assert not view.apply({"op": "leave", "node": 0, "instance": "x"})  # not the holder
    assert not view.apply({"op": "bogus", "node": 0, "instance": "a"})
    assert not view.apply({"op": "join", "node": "nope"})
    assert view.epoch == 1 and view.members[0].instance == "a"
    assert view.apply({"op": "leave", "node": 0, "instance": "a"})
    assert view.owner(KEYS[0]) == (None, -1)


def test_a_partition_is_handed_over_once_its_previous_owner_confirmed_the_move():
    view = view_of(join(0, "a", 1), join(1, "b", 2))
    view.confirm("a", 2)
    view.confirm("b", 2)
    view.apply(join(2, "c", 3))  # epoch 3: c takes some of a's and b's partitions
    moved_from_a = [k for k in KEYS if view.owner(k)[0].instance == "c" and view_of(
        join(0, "a", 1), join(1, "b", 2)).owner(k)[0].instance == "a"]
    moved_from_b = [k for k in KEYS if view.owner(k)[0].instance == "c" and k not in moved_from_a]
    stayed = [k for k in KEYS if view.owner(k)[0].instance != "c"]
    assert moved_from_a and moved_from_b and stayed
    assert all(view.handed_over(k) for k in stayed)  # nobody waits for the newcomer
    assert not any(view.handed_over(k) for k in moved_from_a + moved_from_b)
    view.confirm("a", 3)
    assert all(view.handed_over(k) for k in moved_from_a)
    assert not any(view.handed_over(k) for k in moved_from_b)  # b has not confirmed yet
    view.confirm("b", 2)  # never backwards, never enough
    assert not any(view.handed_over(k) for k in moved_from_b)
    view.apply({"op": "expire", "node": 1, "instance": "b"})  # gone: its lease ran out
    assert all(view.handed_over(k) for k in KEYS)


def test_a_quick_succession_of_moves_waits_for_every_earlier_owner():
    view = view_of(join(0, "a", 1))
    view.confirm("a", 1)
    view.apply(join(1, "b", 2))  # epoch 2: b takes some of a's
    view.apply(join(2, "c", 3))  # epoch 3: c takes some of a's and b's
    via_b = [k for k in KEYS if view.owner(k)[0].instance == "c" and view.history[-2][1][owner_id(
        view.history[-2][1], k)].instance == "b" and view.history[-3][1][owner_id(view.history[-3][1], k)].instance == "a"]
    assert via_b
    view.confirm("b", 3)  # b stopped, but a may still serve what it lost at epoch 2
    assert not any(view.handed_over(k) for k in via_b)
    view.confirm("a", 2)
    assert all(view.handed_over(k) for k in via_b)
