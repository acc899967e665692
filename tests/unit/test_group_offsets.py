"""Offset commit / fetch / delete and retention (KIP-211), through PartitionGroups and OffsetTable."""

from __future__ import annotations

from kop_fast.coordinator import (
    GroupConfig,
    GroupState,
    LeaveMember,
    OffsetAndMetadata,
    OffsetDeleteRequest,
    OffsetFetchRequest,
    OffsetTable,
)
from kop_fast.coordinator import records as rec
from kop_fast.protocol.errors import ErrorCode
from tests.unit.group_harness import Harness, sub

E = ErrorCode
DAY = 24 * 60 * 60 * 1000
RETENTION = GroupConfig().offsets_retention_ms


def fetch(h: Harness, partitions=None, group: str = "g", require_stable: bool = False) -> dict:
    r = h.partition.fetch_offsets(OffsetFetchRequest(group, partitions, require_stable))
    assert r.error_code == E.none
    return {(p.topic, p.partition): (p.offset, p.leader_epoch, p.metadata, p.error_code) for p in r.partitions}


def delete_offsets(h: Harness, partitions, group: str = "g"):
    w = h.waiter("offdel")
    h.dispatch(h.partition.delete_offsets(OffsetDeleteRequest(group, partitions), w, h.now))
    return w


def expire(h: Harness) -> list:
    """Run retention now; persist and return the decoded tombstones."""
    out = h.partition.expire_offsets(h.now)
    decoded = [rec.decode_record(r) for w in out.writes for r in w.records]
    h.dispatch(out)
    return decoded


# ============================================================================ commit and fetch


def test_simple_commit_is_answered_and_visible_only_after_persistence():
    h = Harness(auto_persist=False)
    w = h.commit({("t", 0): (42, 7, "meta"), ("t", 1): 5})
    assert h.answer(w) is None
    assert h.group().state is GroupState.EMPTY and h.group().generation_id == 0
    # Not visible yet; a stable fetch is told the offset is in flux.
    assert fetch(h, [("t", 0)]) == {("t", 0): (-1, -1, "", E.none)}
    assert fetch(h, [("t", 0)], require_stable=True)[("t", 0)][3] == E.unstable_offset_commit
    [write] = h.pending
    assert [rec.decode_record(r)[0] for r in write.records] == [
        rec.OffsetCommitKey("g", "t", 0),
        rec.OffsetCommitKey("g", "t", 1),
    ]
    h.persist_pending()
    r = h.answer(w)
    assert [(p.topic, p.partition, p.error_code) for p in r.partitions] == [("t", 0, E.none), ("t", 1, E.none)]
    assert fetch(h, [("t", 0), ("t", 1), ("t", 2)], require_stable=True) == {
        ("t", 0): (42, 7, "meta", E.none),
        ("t", 1): (5, -1, "", E.none),
        ("t", 2): (-1, -1, "", E.none),
    }
    assert set(fetch(h)) == {("t", 0), ("t", 1)}  # partitions=None: everything committed


def test_failed_commit_write_is_reported_and_not_applied():
    h = Harness(auto_persist=False)
    w = h.commit({("t", 0): 1})
    h.persist_pending(E.not_leader_or_follower)
    assert h.answer(w).partitions[0].error_code == E.not_coordinator  # Kafka's translation
    assert fetch(h, [("t", 0)], require_stable=True) == {("t", 0): (-1, -1, "", E.none)}
    w = h.commit({("t", 0): 2})
    h.persist_pending(E.message_too_large)
    assert h.answer(w).partitions[0].error_code == E.invalid_commit_offset_size


def test_concurrent_commits_of_one_partition_keep_the_later_one():
    h = Harness(auto_persist=False)
    h.commit({("t", 0): 10})
    h.commit({("t", 0): 20})
    first, second = h.pending
    h.pending = []
    h.persist(second)
    h.persist(first)  # completes last, but was appended first: must not win
    assert fetch(h, [("t", 0)])[("t", 0)][0] == 20


def test_fetch_unknown_group_and_commit_with_generation_to_unknown_group():
    h = Harness()
    assert fetch(h, [("t", 3)], group="nope") == {("t", 3): (-1, -1, "", E.none)}
    assert fetch(h, None, group="nope") == {}
    r = h.answer(h.commit({("t", 0): 1}, generation=3, member_id="m", group="nope"))
    assert r.partitions[0].error_code == E.illegal_generation
    assert "nope" not in h.partition


def test_metadata_larger_than_the_limit_is_rejected_per_partition():
    h = Harness()
    w = h.commit({("t", 0): (1, -1, "x" * 4096), ("t", 1): (2, -1, "x" * 4097), ("t", 2): (3, -1, None)})
    assert [p.error_code for p in h.answer(w).partitions] == [E.none, E.offset_metadata_too_large, E.none]
    got = fetch(h, [("t", 0), ("t", 1), ("t", 2)])
    assert got[("t", 0)][0] == 1 and got[("t", 1)][0] == -1 and got[("t", 2)][2] == ""
    # Only too-large metadata: answered at once, nothing written.
    before = len(h.log)
    w = h.commit({("t", 5): (1, -1, "y" * 5000)})
    assert h.answer(w).partitions[0].error_code == E.offset_metadata_too_large and len(h.log) == before
    h2 = Harness(offset_metadata_max_bytes=10)
    assert h2.answer(h2.commit({("t", 0): (1, -1, "z" * 11)})).partitions[0].error_code == E.offset_metadata_too_large


def test_member_commits_follow_group_generation_rules():
    h = Harness()
    (a, b), gen = h.stable_group(2)
    ok = h.answer(h.commit({("t1", 0): 100}, generation=gen, member_id=a))
    assert ok.partitions[0].error_code == E.none
    assert fetch(h, [("t1", 0)])[("t1", 0)][0] == 100
    # A simple commit into a group that has members: only members may commit.
    assert h.answer(h.commit({("t1", 0): 1})).partitions[0].error_code == E.unknown_member_id
    # PreparingRebalance: members of the current (old) generation may still commit.
    h.join(a, client="c0")
    assert h.group().state is GroupState.PREPARING_REBALANCE
    ok = h.answer(h.commit({("t1", 0): 101}, generation=gen, member_id=b))
    assert ok.partitions[0].error_code == E.none
    # CompletingRebalance: REBALANCE_IN_PROGRESS.
    h.join(b, client="c1")
    assert h.group().state is GroupState.COMPLETING_REBALANCE
    r = h.answer(h.commit({("t1", 0): 102}, generation=gen + 1, member_id=b))
    assert r.partitions[0].error_code == E.rebalance_in_progress
    assert fetch(h, [("t1", 0)])[("t1", 0)][0] == 101


def test_simple_commit_allowed_once_the_group_is_empty():
    h = Harness()
    (a,), gen = h.stable_group(1)
    h.leave(LeaveMember(a))
    assert h.group().state is GroupState.EMPTY
    assert h.answer(h.commit({("t1", 0): 9})).partitions[0].error_code == E.none
    # A former member with its old generation is not a member any more.
    r = h.answer(h.commit({("t1", 0): 10}, generation=gen, member_id=a))
    assert r.partitions[0].error_code == E.unknown_member_id


# ================================================================================== OffsetDelete


def test_offset_delete_on_empty_group_writes_tombstones_and_kills_a_group_left_bare():
    h = Harness()
    (a,), gen = h.stable_group(1)
    h.commit({("t1", 0): 1, ("t1", 1): 2}, generation=gen, member_id=a)
    h.leave(LeaveMember(a))
    r = h.answer(delete_offsets(h, [("t1", 0)]))
    assert [(p.topic, p.partition, p.error_code) for p in r.partitions] == [("t1", 0, E.none)]
    assert rec.decode_record(h.log[-1]) == (rec.OffsetCommitKey("g", "t1", 0), None)
    assert fetch(h, [("t1", 0)])[("t1", 0)][0] == -1 and fetch(h, [("t1", 1)])[("t1", 1)][0] == 2
    assert h.group().state is GroupState.EMPTY
    delete_offsets(h, [("t1", 1)])
    # No members and no offsets left: the group is gone (its metadata tombstoned).
    assert "g" not in h.partition
    assert rec.decode_record(h.log[-1]) == (rec.GroupMetadataKey("g"), None)


def test_offset_delete_refuses_topics_a_stable_consumer_group_subscribes_to():
    h = Harness()
    (a, b), gen = h.stable_group(2)  # both subscribe to t1
    h.commit({("t1", 0): 1, ("old", 0): 2}, generation=gen, member_id=a)
    r = h.answer(delete_offsets(h, [("t1", 0), ("old", 0)]))
    assert {(p.topic, p.error_code) for p in r.partitions} == {
        ("t1", E.group_subscribed_to_topic),
        ("old", E.none),
    }
    assert set(fetch(h)) == {("t1", 0)}


def test_offset_delete_errors():
    h = Harness()
    assert h.answer(delete_offsets(h, [("t", 0)], group="nope")).error_code == E.group_id_not_found
    # A non-consumer protocol type in use: the coordinator cannot tell what is consumed.
    w = h.join(h.member_id_for("c", protocol_type="connect"), client="c", protocol_type="connect")
    h.advance_until(lambda: h.answer(w))
    assert h.answer(delete_offsets(h, [("t", 0)])).error_code == E.non_empty_group
    # Unparseable consumer metadata: subscriptions unknown, so every topic counts as subscribed.
    w = h.join(h.member_id_for("c", group="g2", protocols=[("range", b"junk")]), client="c", group="g2",
               protocols=[("range", b"junk")])
    h.advance_until(lambda: h.answer(w))
    r = h.answer(delete_offsets(h, [("anything", 0)], group="g2"))
    assert r.partitions[0].error_code == E.group_subscribed_to_topic


def test_offset_delete_answer_waits_for_the_tombstones():
    h = Harness(auto_persist=False)
    h.commit({("t", 0): 1})
    h.persist_pending()
    w = delete_offsets(h, [("t", 0)])
    assert h.answer(w) is None
    h.persist_pending()
    assert h.answer(w).partitions[0].error_code == E.none


def test_commit_in_flight_when_its_offset_is_deleted_does_not_resurrect():
    h = Harness(auto_persist=False)
    h.commit({("t", 0): 1})
    h.persist_pending()
    h.commit({("t", 0): 2})
    commit_write = h.pending.pop()
    delete_offsets(h, [("t", 0)])
    h.persist(commit_write)  # the commit lands after the delete decided: the tombstone wins
    h.persist_pending()
    assert fetch(h, [("t", 0)])[("t", 0)][0] == -1


# ===================================================================================== retention


def test_offsets_of_an_empty_group_expire_retention_after_it_became_empty():
    h = Harness()
    (a,), gen = h.stable_group(1)
    h.commit({("t1", 0): 5}, generation=gen, member_id=a)
    h.clock.advance(9_000)
    assert h.heartbeat(a, gen) == E.none
    # Active and subscribed to t1: an offset older than the retention is kept.
    h.clock.advance(RETENTION + 5_000)
    assert expire(h) == []
    h.clock.advance(DAY)
    h.dispatch(h.partition.tick(h.now))  # the member's session expired: the group is Empty from now
    assert h.heartbeat(a, gen) == E.unknown_member_id
    assert h.group().state is GroupState.EMPTY
    empty_since = h.now
    assert expire(h) == []
    assert fetch(h, [("t1", 0)])[("t1", 0)][0] == 5
    h.clock.advance(RETENTION - 1)
    assert expire(h) == []
    h.clock.advance(1)
    assert h.now - empty_since == RETENTION
    tombstones = expire(h)
    assert tombstones == [(rec.OffsetCommitKey("g", "t1", 0), None), (rec.GroupMetadataKey("g"), None)]
    assert "g" not in h.partition


def test_active_consumer_group_expires_only_unsubscribed_topics_by_commit_time():
    h = Harness(offsets_retention_ms=DAY)
    (a, b), gen = h.stable_group(2, session=1_800_000)
    h.commit({("t1", 0): 1, ("gone", 0): 2}, generation=gen, member_id=a)
    h.clock.advance(DAY - 1)
    assert h.heartbeat(a, gen) == E.none and h.heartbeat(b, gen) == E.none
    assert expire(h) == []
    h.clock.advance(1)
    assert expire(h) == [(rec.OffsetCommitKey("g", "gone", 0), None)]
    assert set(fetch(h)) == {("t1", 0)}
    assert h.group().state is GroupState.STABLE


def test_simple_group_offsets_expire_by_commit_time_and_the_group_dies():
    h = Harness(offsets_retention_ms=DAY)
    h.commit({("t", 0): 1})
    h.clock.advance(DAY // 2)
    h.commit({("t", 1): 1})
    h.clock.advance(DAY // 2)
    assert expire(h) == [(rec.OffsetCommitKey("g", "t", 0), None)]
    h.clock.advance(DAY // 2)
    # Generation 0: the group never wrote metadata, so no group tombstone.
    assert expire(h) == [(rec.OffsetCommitKey("g", "t", 1), None)]
    assert "g" not in h.partition


def test_explicit_retention_time_from_old_commit_versions():
    h = Harness()
    h.commit({("t", 0): 1}, retention_time_ms=1000)
    _, value = rec.decode_record(h.log[-1])
    assert value.expire_timestamp_ms == h.now + 1000
    h.clock.advance(999)
    assert expire(h) == []
    h.clock.advance(1)
    assert expire(h) == [(rec.OffsetCommitKey("g", "t", 0), None)]


def test_pending_commits_never_expire():
    h = Harness(auto_persist=False, offsets_retention_ms=1000)
    h.commit({("t", 0): 1})
    h.persist_pending()
    h.clock.advance(2000)
    h.commit({("t", 0): 2})
    assert expire(h) == []  # a new commit for it is being written
    h.persist_pending()
    assert fetch(h, [("t", 0)])[("t", 0)][0] == 2


def test_tick_runs_retention_every_check_interval():
    h = Harness(offsets_retention_ms=1000, offsets_retention_check_interval_ms=60_000)
    h.commit({("t", 0): 1})
    assert h.partition.next_deadline_ms() == h.now + 60_000
    h.advance(59_999)
    assert "g" in h.partition
    h.advance(1)
    assert "g" not in h.partition
    assert rec.decode_record(h.log[-1]) == (rec.OffsetCommitKey("g", "t", 0), None)
    assert h.partition.next_deadline_ms() == h.now + 60_000


# =================================================================================== OffsetTable


def test_offset_table_commit_flow():
    t = OffsetTable()
    a, b = OffsetAndMetadata(1), OffsetAndMetadata(2)
    t.prepare([("t", 0)], 5)
    t.prepare([("t", 0)], 6)
    assert t.has_pending(("t", 0)) and t.has_offsets() and t.get(("t", 0)) is None
    assert t.complete(("t", 0), b, 6) is True
    assert t.complete(("t", 0), a, 5) is False  # older write: ignored
    assert t.get(("t", 0)) == b and not t.has_pending(("t", 0))
    t.prepare([("t", 1)], 7)
    t.fail(("t", 1), 7)
    assert t.get(("t", 1)) is None and not t.has_pending(("t", 1))
    assert t.remove([("t", 0), ("t", 9)]) == {("t", 0): b}
    assert not t.has_offsets()


def test_offset_table_expiry_rules():
    t = OffsetTable()
    t.load(("keep", 0), OffsetAndMetadata(1, commit_timestamp_ms=0))
    t.load(("old", 0), OffsetAndMetadata(1, commit_timestamp_ms=0))
    t.load(("fixed", 0), OffsetAndMetadata(1, commit_timestamp_ms=0, expire_timestamp_ms=50))
    t.load(("new", 0), OffsetAndMetadata(1, commit_timestamp_ms=90))
    expired = t.remove_expired(100, 100, lambda o: o.commit_timestamp_ms, exclude_topics={"keep"})
    assert set(expired) == {("old", 0), ("fixed", 0)}
    assert sorted(tp for tp, _ in t.items()) == [("keep", 0), ("new", 0)]


def test_subscription_parsing_for_consumer_protocol():
    h = Harness()
    w = h.join(h.member_id_for("c", protocols=[("range", sub("x", "y"))]), client="c",
               protocols=[("range", sub("x", "y"))])
    h.advance_until(lambda: h.answer(w))
    assert h.group().subscribed_topics == {"x", "y"}
